"""The federation on anvil, with clients submitting their own commitments, and via `flwr run .`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fedchain.chain.backends import free_port
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate

from ._processes import Started

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.anvil
def test_a_federation_on_anvil_records_every_round(tmp_path: Path) -> None:
    # Execute
    record = simulate(RunSettings(num_clients=4, num_rounds=3, chain="anvil", out=str(tmp_path)))
    # Assert
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chain"]["kind"] == "anvil"
    assert summary["chain"]["chain_id"] == 31337
    committed = [e for e in record.events if e.name == "RoundCommitted"]
    assert [e.args["round"] for e in committed] == [1, 2, 3]
    assert [e.args["globalModelHash"] for e in committed] == [
        r.global_model_hash for r in record.reports
    ]
    assert all(r["accepted"] == 4 for r in summary["rounds"])


def test_direct_mode_clients_submit_their_own_commitments(tmp_path: Path) -> None:
    # Execute
    record = simulate(RunSettings(num_clients=3, num_rounds=2, direct=True, out=str(tmp_path)))
    # Assert
    commitments = [e for e in record.events if e.name == "CommitmentRecorded"]
    assert len(commitments) == 6
    assert all(e.args["relayed"] is False for e in commitments)  # none relayed a second time
    assert all(r.committed and r.accuracy is not None for r in record.reports)
    rewarded = [e for e in record.events if e.name == "RewardAttributed"]
    assert len(rewarded) == 6


def _local_superlink(env: dict[str, str], home: Path) -> Started:
    """The SuperLink `flwr run` would start for a local simulation (the command of Flower
    1.41's flwr/cli/local_superlink.py), but on the free ports ``env`` names: `flwr run` starts
    its own detached on fixed ports (39091, 39093) and leaves it running, and a later `flwr run`
    of the user's would attach to it; or this test would attach to the user's."""
    return Started(
        "flower-superlink",
        [str(Path(sys.executable).parent / "flower-superlink"), "--insecure", "--simulation",
         "--isolation", "subprocess",
         "--control-api-address", f"127.0.0.1:{env['FLWR_LOCAL_CONTROL_API_PORT']}",
         "--host", "127.0.0.1", "--port", env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"],
         "--database", str(home / "state.db")],
        home / "superlink.log",
        env,
        home,
    )  # fmt: skip


def _wait_until_healthy(superlink: Started, port: str, timeout_s: float = 60.0) -> None:
    """Wait for the health endpoint `flwr run` probes before it would start a SuperLink."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert superlink.process.poll() is None, f"the SuperLink exited\n{superlink.tail()}"
        assert time.monotonic() < deadline, f"the SuperLink did not start\n{superlink.tail()}"
        time.sleep(0.2)


def test_flwr_run_runs_the_app_on_the_embedded_chain(tmp_path: Path) -> None:
    """The repo is a Flower App: `flwr run .` runs the simulation with the ledger, on a local
    SuperLink that the test starts on free ports and stops."""
    # Prepare
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["FLWR_HOME"] = str(tmp_path / "flwr-home")
    env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(free_port())
    env["FLWR_LOCAL_CONTROL_API_PORT"] = str(free_port())
    # The simulation's Ray on loopback only, as `fedchain simulate` keeps its own: Ray's
    # single-machine mode (fedchain.simulation.ray_placement), inherited from the SuperLink.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # And a Ray of its own: without an address, Flower's ray.init() joins the cluster last
    # recorded in /tmp/ray (test_ray_cluster's, on the other worker), and hung once it stopped.
    env["RAY_ADDRESS"] = "local"
    # Flower's simulation asks two CPUs a client: the session's one-CPU Ray (conftest) would
    # never place one.
    env.pop("RAY_OVERRIDE_RESOURCES", None)
    home = tmp_path / "superlink"
    home.mkdir()
    out = tmp_path / "run"
    config = f"num-server-rounds=1 out='{out}'"
    superlink = _local_superlink(env, home)
    try:
        _wait_until_healthy(superlink, env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"])
        # Execute
        done = subprocess.run(
            ["flwr", "run", ".", "--run-config", config, "--federation-config",
             "num-supernodes=4", "--stream"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        superlink.stop()
    # Assert
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Starting local SuperLink" not in done.stdout + done.stderr  # it used the test's
    assert superlink.process.returncode is not None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chain"]["kind"] == "embedded"
    assert summary["rounds"][0]["committed"] is True
    assert summary["rounds"][0]["accepted"] == 4  # one per simulated node
    assert summary["settings"]["num-clients"] == 4
