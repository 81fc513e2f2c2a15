"""A consortium on Flower's deployment engine, as separate processes on 127.0.0.1.

anvil, a SuperLink (TLS, SuperNode authentication) and three hospital SuperNodes, each with its
own keystore and CSV file, set up with the commands of docs/consortium.md. The run has two
rounds; hospital C's SuperNode is killed (SIGKILL, its whole process tree) as round 2 reaches
it. The tests then read the chain and the run's artifacts. One run serves every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from fedchain.chain.accounts import load_keystore
from fedchain.chain.backends import AnvilChain, free_port
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerEvent, LedgerGateway

from ._processes import Started, stop_all

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROOT = Path(__file__).resolve().parents[2]
HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
KILLED = "hospital-c"
ROUNDS = 2
START_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 1500.0
# DEVNET TEST passwords of throwaway keystores made for this test only.
COORDINATOR_PASSWORD = "coordinator devnet test"


@dataclass
class Consortium:
    """What the run left: its directories, processes, logs, the chain and the artifacts."""

    root: Path
    anvil: AnvilChain
    superlink_port: int
    processes: dict[str, Started] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    node_ids: dict[str, int] = field(default_factory=dict)
    run_output: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    events: list[LedgerEvent] = field(default_factory=list)
    task_id: int = 0

    def env(self, flwr_home: str, password: str | None = None) -> dict[str, str]:
        env = {**os.environ, "FLWR_HOME": str(self.root / flwr_home), "COLUMNS": "200"}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        env.pop("FEDCHAIN_KEYSTORE_PASSWORD", None)
        if password is not None:
            env["FEDCHAIN_KEYSTORE_PASSWORD"] = password
        return env

    def fedchain(self, *args: str, password: str | None = None) -> str:
        """One `fedchain` command, as the guide runs it; fails the test with its output."""
        done = subprocess.run(
            [sys.executable, "-m", "fedchain", *args],
            cwd=self.root,
            env=self.env("flwr-cli", password),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"fedchain {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, password: str | None = None) -> Started:
        started = Started(
            name,
            [sys.executable, "-m", "fedchain", *args],
            self.root / f"{name}.log",
            self.env(f"flwr-{name}", password),
            self.root,
        )
        self.processes[name] = started
        return started

    def stop(self) -> None:
        stop_all(list(self.processes.values()))
        self.anvil.close()


def _password(hospital: str) -> str:
    return f"{hospital} devnet test"


def _keystore(path: Path, password: str) -> str:
    """A DEVNET TEST keystore, encrypted with a light KDF (pbkdf2, 1,000 rounds) instead of
    `fedchain account new`'s scrypt: every command and every ClientApp process decrypts its key
    once, and scrypt's deliberate cost, paid some twenty times, would dominate this test."""
    account = Account.create()
    encrypted = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=1000)
    path.write_text(json.dumps(encrypted))
    path.chmod(0o600)
    return str(account.address)


def _set_up(c: Consortium) -> None:
    """The set-up of docs/consortium.md, part 1; the SuperLink starts while the chain is set up."""
    c.fedchain("certs", "consortium", "certs", *(f"--node={h}" for h in (*HOSPITALS, "intruder")))
    coordinator = _keystore(c.root / "coordinator.json", COORDINATOR_PASSWORD)
    c.start(
        "superlink", "server", "start", "--certs", "certs", "--port", str(c.superlink_port),
        "--database", str(c.root / "superlink" / "state.db"), "--keystore", "coordinator.json",
        password=COORDINATOR_PASSWORD,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "consortium_data.py"), "data", "--sites", "3"],
        cwd=c.root,
        check=True,
        capture_output=True,
        timeout=300,
    )
    url = c.anvil.url
    c.fedchain("account", "fund", coordinator, "--amount", "10", "--devnet-account", "0",
               "--rpc-url", url)  # fmt: skip
    c.fedchain("deploy", "--rpc-url", url, "--keystore", "coordinator.json",
               password=COORDINATOR_PASSWORD)  # fmt: skip
    created = c.fedchain(
        "task", "create", "--keystore", "coordinator.json", "--holdout", "csv:data/holdout.csv",
        "--rounds", str(ROUNDS), "--budget", "1000", "--run-out", "runs/consortium",
        password=COORDINATOR_PASSWORD,
    )  # fmt: skip
    c.task_id = int(created.split("task ", 1)[1].split()[0])
    for hospital in HOSPITALS:
        c.addresses[hospital] = _keystore(c.root / f"{hospital}.json", _password(hospital))
        c.fedchain("participant", "add", c.addresses[hospital], "--name", hospital.title(),
                   "--keystore", "coordinator.json", password=COORDINATOR_PASSWORD)  # fmt: skip
        # Each hospital joins the task itself: its own consent, dataset size and data hash.
        c.fedchain("account", "fund", c.addresses[hospital], "--amount", "1",
                   "--devnet-account", "0", "--rpc-url", url)  # fmt: skip
        c.fedchain("task", "join", "--task", "fedchain-task.toml", "--data",
                   f"data/{hospital}.csv", "--keystore", f"{hospital}.json",
                   password=_password(hospital))  # fmt: skip


def _start_federation(c: Consortium) -> None:
    """The registration of the three SuperNode keys, then the SuperNodes (and an intruder)."""
    superlink = f"127.0.0.1:{c.superlink_port}"
    c.processes["superlink"].wait_for(
        rf"running on https://127\.0\.0\.1:{c.superlink_port}", START_TIMEOUT_S
    )
    c.fedchain("server", "register", *(f"certs/{h}.pub" for h in HOSPITALS),
               "--superlink", superlink, "--ca", "certs/ca.crt")  # fmt: skip
    for hospital in (*HOSPITALS, "intruder"):  # the intruder's key was never registered
        keystore = "hospital-a" if hospital == "intruder" else hospital
        c.start(
            hospital, "client", "--data", f"data/{keystore}.csv", "--keystore",
            f"{keystore}.json", "--node-key", f"certs/{hospital}.key", "--superlink", superlink,
            "--ca", "certs/ca.crt", "--runtime-port", str(free_port()),
            password=_password(keystore),
        )  # fmt: skip
    for hospital in HOSPITALS:
        found = c.processes[hospital].wait_for(r"SuperNode ID: (\d+)", START_TIMEOUT_S)
        c.node_ids[hospital] = int(found[0].group(1))


def _run(c: Consortium) -> None:
    """`fedchain server run`; hospital C dies as round 2's message reaches it."""
    run = c.start(
        "run", "server", "run", "--task", "fedchain-task.toml", "--superlink",
        f"127.0.0.1:{c.superlink_port}", "--ca", "certs/ca.crt",
    )  # fmt: skip
    killed = c.processes[KILLED]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    killed.wait_for(r"Receiving: train message", RUN_TIMEOUT_S, count=2)
    killed.kill()
    while run.process.poll() is None:
        assert time.monotonic() < deadline, f"the run did not end\n{run.tail()}"
        time.sleep(1)
    c.run_output = run.text()
    assert run.process.returncode == 0, run.tail(120)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    root = tmp_path_factory.mktemp("consortium")
    c = Consortium(root, AnvilChain(), free_port())
    try:
        c.anvil.start()
        _set_up(c)
        _start_federation(c)
        _run(c)
        c.summary = json.loads((root / "runs" / "consortium" / "summary.json").read_text())
        deployment = Deployment.load(root / "fedchain-deployment.json")
        reader = LedgerGateway(
            c.anvil.w3, deployment, load_keystore(root / "coordinator.json", COORDINATOR_PASSWORD)
        )
        c.events = [e for e in reader.events() if e.args.get("taskId") == c.task_id]
        yield c
    finally:
        c.stop()


def _of(c: Consortium, name: str, round_: int | None = None) -> list[LedgerEvent]:
    return [e for e in c.events if e.name == name and round_ in (None, e.args.get("round"))]


def test_both_rounds_are_committed_with_the_global_models_on_chain(c: Consortium) -> None:
    committed = _of(c, "RoundCommitted")
    assert [e.args["round"] for e in committed] == [1, 2]
    rounds = c.summary["rounds"]
    assert [e.args["globalModelHash"] for e in committed] == [
        r["global_model_hash"] for r in rounds
    ]
    assert all(r["committed"] for r in rounds)
    opened = _of(c, "RoundOpened", 2)
    assert opened[0].args["parentModelHash"] == rounds[0]["global_model_hash"]
    final = c.root / "runs" / "consortium" / "final_model.safetensors"
    assert "0x" + hashlib.sha256(final.read_bytes()).hexdigest() == rounds[1]["global_model_hash"]


def test_round_one_holds_a_commitment_signed_by_each_hospital_key(c: Consortium) -> None:
    # The contract checked each EIP-712 signature against the participant it names.
    commitments = _of(c, "CommitmentRecorded", 1)
    assert sorted(e.args["participant"] for e in commitments) == sorted(c.addresses.values())
    assert all(e.args["relayed"] for e in commitments)
    updates = {p["address"]: p["update_hash"] for p in c.summary["rounds"][0]["participants"]}
    assert {e.args["participant"]: e.args["updateHash"] for e in commitments} == updates


def test_the_supernode_killed_in_round_two_is_absent_and_the_others_complete_it(
    c: Consortium,
) -> None:
    survivors = sorted(c.addresses[h] for h in HOSPITALS if h != KILLED)
    commitments = _of(c, "CommitmentRecorded", 2)
    assert sorted(e.args["participant"] for e in commitments) == survivors
    rewarded = _of(c, "RewardAttributed", 2)
    assert sorted(e.args["participant"] for e in rewarded) == survivors
    second = c.summary["rounds"][1]
    assert second["accepted"] == 2
    killed = [p for p in second["participants"] if p["node_id"] == c.node_ids[KILLED]]
    assert killed
    assert all(p["absent"] and not p["accepted"] and p["reward"] == "0" for p in killed)


def test_the_data_and_the_keys_never_reach_the_coordinators_side(c: Consortium) -> None:
    # Everything the SuperLink, its ServerApp and `flwr run` wrote: state, logs, artifacts.
    written = [c.root / d for d in ("superlink", "flwr-superlink", "flwr-cli", "flwr-run", "runs")]
    files = [p for d in written for p in d.rglob("*") if p.is_file()]
    files += [c.processes[name].log for name in ("superlink", "run")]
    secrets = []
    for hospital in HOSPITALS:
        secrets.append(str(c.root / "data" / f"{hospital}.csv").encode())
        secrets.append(str(c.root / f"{hospital}.json").encode())
        keystore = json.loads((c.root / f"{hospital}.json").read_text())
        secrets.append(keystore["crypto"]["ciphertext"].encode())
        first_row = (c.root / "data" / f"{hospital}.csv").read_text().splitlines()[1]
        secrets.append(first_row.encode())
    assert len(files) > 10
    for path in files:
        content = path.read_bytes()
        leaked = [s.decode() for s in secrets if s in content]
        assert not leaked, f"{path} holds {leaked}"


def test_supernodes_reach_the_superlink_over_tls_and_only_registered_ones_join(
    c: Consortium,
) -> None:
    assert f"running on https://127.0.0.1:{c.superlink_port}" in c.processes["superlink"].text()
    intruder = c.processes["intruder"]
    assert intruder.process.poll() not in (None, 0)
    assert "Failed to activate SuperNode" in intruder.text()
    assert "No SuperNode found with the given public key" in c.processes["superlink"].text()


@pytest.fixture
def c(consortium: Consortium) -> Consortium:
    return consortium
