"""The federation on anvil, with clients submitting their own commitments, and via `flwr run .`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate

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


def test_flwr_run_runs_the_app_on_the_embedded_chain(tmp_path: Path) -> None:
    """The repo is a Flower App: `flwr run .` runs the simulation with the ledger."""
    # Prepare
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["FLWR_HOME"] = str(tmp_path / "flwr-home")
    out = tmp_path / "run"
    config = f"num-server-rounds=1 out='{out}'"
    # Execute
    done = subprocess.run(
        [
            "flwr",
            "run",
            ".",
            "--run-config",
            config,
            "--federation-config",
            "num-supernodes=4",
            "--stream",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chain"]["kind"] == "embedded"
    assert summary["rounds"][0]["committed"] is True
    assert summary["rounds"][0]["accepted"] == 4  # one per simulated node
    assert summary["settings"]["num-clients"] == 4
