"""The coordinator's and hospital's commands, through fedchain's entry point in this process
(tests/e2e/test_deployment.py runs them as separate processes on Flower's deployment engine)."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import AnvilChain
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import ParticipantStatus, TaskId
from fedchain.cli import main
from fedchain.consortium.deployment import read_run_config, with_coordinator_paths
from fedchain.federation.consent_policy import ConsentPolicy
from fedchain.ml.data import load_breast_cancer


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def fedchain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    """`fedchain ARGS` in this process (its entry point, exit code and output), in ``cwd``."""
    monkeypatch.setenv("FEDCHAIN_KEYSTORE_PASSWORD", "devnet test")
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, cwd: Path) -> Ran:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["fedchain", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
        out, err = capsys.readouterr()
        # Rich wraps at the width of a console made before COLUMNS was set (by an earlier
        # test of the worker): compare words, not line breaks.
        return Ran(int(exited.value.code or 0), " ".join(out.split()), " ".join(err.split()))

    return run


def _holdout(path: Path, rows: int = 60) -> None:
    data = load_breast_cancer()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(30)), "label"])
        for features, label in zip(data.features[:rows], data.labels[:rows], strict=True):
            writer.writerow([*(repr(float(v)) for v in features), int(label)])


@pytest.mark.anvil
def test_a_coordinator_creates_a_funded_task_registers_a_hospital_that_joins_it(
    tmp_path: Path, fedchain: Callable[..., Ran]
) -> None:
    # Prepare
    anvil = AnvilChain().start()
    hospital = devnet_account(5).address
    _holdout(tmp_path / "holdout.csv")
    _holdout(tmp_path / "hospital.csv", rows=40)
    try:
        deployed = fedchain("deploy", "--rpc-url", anvil.url, "--devnet-account", "0", cwd=tmp_path)
        assert deployed.returncode == 0, deployed.stderr
        # Execute
        created = fedchain(
            "task", "create", "--devnet-account", "0", "--holdout", "csv:holdout.csv",
            "--rounds", "2", "--budget", "10", "--model", "logreg", "--standardize", "task",
            "--strategy", "cclip", "--pre-aggregation", "nnm", "--reward-full-gain", "0.02",
            "--min-round-duration", "30", "--claim-period", "86400", cwd=tmp_path,
        )  # fmt: skip
        added = fedchain(
            "participant", "add", hospital, "--org", "Hospital A", "--devnet-account", "0",
            cwd=tmp_path,
        )  # fmt: skip
        again = fedchain(
            "participant", "add", hospital, "--org", "Hospital A", "--devnet-account", "0",
            cwd=tmp_path,
        )  # fmt: skip
        shown = fedchain("task", "show", "--task", "fedchain-task.toml", cwd=tmp_path)
        joined = fedchain(
            "task", "join", "--task", "fedchain-task.toml", "--data", "hospital.csv",
            "--devnet-account", "5", cwd=tmp_path,
        )  # fmt: skip
        # Assert
        assert created.returncode == 0, created.stderr
        assert added.returncode == 0, added.stderr
        assert "already registered" in again.stdout
        settings = read_run_config(tmp_path / "fedchain-task.toml")
        assert settings.task_id == 1
        # No path of the coordinator's in the run config every SuperNode receives (issue 19)
        public = (tmp_path / "fedchain-task.toml").read_text()
        assert str(tmp_path) not in public
        assert (settings.holdout, settings.deployment, settings.keystore) == ("", "", "")
        private = with_coordinator_paths(settings, tmp_path / ".fedchain" / "coordinator")
        assert private.holdout == f"csv:{tmp_path / 'holdout.csv'}"
        assert private.deployment == str(tmp_path / "fedchain-deployment.json")
        assert private.out == str(tmp_path / "runs" / "consortium")
        coordinator = tmp_path / ".fedchain" / "coordinator" / "task-1.toml"
        assert coordinator.stat().st_mode & 0o777 == 0o600
        spec = (tmp_path / "fedchain-task.json").read_bytes().rstrip(b"\n")
        assert json.loads(spec)["model"] == "logreg"
        recorded = json.loads(spec)
        assert recorded["standardize"] == "task"
        assert recorded["strategy"] == "cclip"
        assert recorded["reward_full_gain"] == 0.02
        assert (settings.pre_aggregation, settings.reward_full_gain) == ("nnm", 0.02)
        gateway = LedgerGateway(
            anvil.w3, Deployment.load(tmp_path / "fedchain-deployment.json"), devnet_account(0)
        )
        task = gateway.task(TaskId(1))
        assert task.spec_hash == hashlib.sha256(spec).digest()
        assert task.reward_per_round == 10 * 10**18
        assert task.funded == 20 * 10**18
        assert (task.min_round_duration, task.challenge_period) == (30, 0)
        assert task.claim_period == 86400
        record = gateway.participant(hospital)
        assert record.status == ParticipantStatus.REGISTERED
        assert record.name == "Hospital A"
        assert record.org_hash == hashlib.sha256(b"Hospital A").digest()
        assert joined.returncode == 0, joined.stderr
        assert "dataset size 40" in joined.stdout
        member = gateway.membership(TaskId(1), hospital)
        assert (member.joined_round, member.dataset_size) == (1, 40)
        policy = ConsentPolicy.load(tmp_path / ".fedchain" / "devnet" / "consent-policy.json")
        assert [(e.task_id, e.participant, e.spec_hash) for e in policy.entries] == [
            (1, hospital, task.spec_hash)
        ]
        assert shown.returncode == 0, shown.stderr
        assert f"0x{task.spec_hash.hex()}" in shown.stdout
        assert "matches the chain's hash" in shown.stdout
        assert "learning_rate 0.05" in shown.stdout
    finally:
        anvil.close()


@pytest.mark.anvil
def test_a_hospital_leaves_and_the_coordinator_closes_and_refunds_the_task(
    tmp_path: Path, fedchain: Callable[..., Ran]
) -> None:
    # Prepare: a task (20 tokens funded), a registered hospital that joined it
    anvil = AnvilChain().start()
    hospital = devnet_account(5).address
    _holdout(tmp_path / "holdout.csv")
    _holdout(tmp_path / "hospital.csv", rows=40)
    try:
        steps = [
            ("deploy", "--rpc-url", anvil.url, "--devnet-account", "0"),
            ("task", "create", "--devnet-account", "0", "--holdout", "csv:holdout.csv",
             "--rounds", "2", "--budget", "10", "--model", "logreg"),
            ("participant", "add", hospital, "--name", "Hospital A", "--uri", "https://a.example",
             "--devnet-account", "0"),
            ("task", "join", "--task", "fedchain-task.toml", "--data", "hospital.csv",
             "--devnet-account", "5"),
        ]  # fmt: skip
        for step in steps:
            done = fedchain(*step, cwd=tmp_path)
            assert done.returncode == 0, (step, done.stderr)
        # Execute
        left = fedchain("task", "leave", "--task-id", "1", "--devnet-account", "5", cwd=tmp_path)
        early = fedchain("task", "refund", "--task-id", "1", "--devnet-account", "0", cwd=tmp_path)
        closed = fedchain("task", "close", "--task-id", "1", "--devnet-account", "0", cwd=tmp_path)
        refunded = fedchain(
            "task", "refund", "--task-id", "1", "--devnet-account", "0", cwd=tmp_path
        )
        again = fedchain("task", "refund", "--task-id", "1", "--devnet-account", "0", cwd=tmp_path)
        sweep = fedchain("task", "sweep", "--task-id", "1", "--devnet-account", "0", cwd=tmp_path)
        cancel = fedchain("task", "cancel", "--task-id", "1", "--devnet-account", "0", cwd=tmp_path)
        # Assert
        assert left.returncode == 0, left.stderr
        assert "not a member from round 1" in left.stdout
        assert early.returncode == 1
        assert "fedchain task close" in early.stderr
        assert closed.returncode == 0, closed.stderr
        assert "task 1 closed" in closed.stdout
        assert refunded.returncode == 0, refunded.stderr
        assert "refund: 20.000000 tokens" in refunded.stdout
        assert "nothing to refund" in again.stdout
        assert sweep.returncode == 1
        assert "claim deadline" in sweep.stderr
        assert "already closed" in cancel.stdout
        gateway = LedgerGateway(
            anvil.w3, Deployment.load(tmp_path / "fedchain-deployment.json"), devnet_account(0)
        )
        assert gateway.membership(TaskId(1), hospital).left_round == 1
        assert gateway.participant(hospital).uri == "https://a.example"
        assert gateway.task(TaskId(1)).refunded == 20 * 10**18
    finally:
        anvil.close()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["participant", "add", "0x12", "--org", "A"], 2, "is not an account address"),
        (["task", "create", "--holdout", "csv:h.csv", "--out", "taken.toml"], 2, "exists"),
        (["task", "create", "--holdout", "csv:h.csv", "--devnet-account", "3"], 2, "key 0"),
        (["task", "create", "--holdout", "csv:h.csv", "--standardize", "x"], 2, "standardize"),
        (["task", "create", "--holdout", "csv:h.csv", "--claim-period", "0"], 2, "claim period"),
        (["certs", "node-key", "taken.toml"], 1, "exists"),
        (["server", "start", "--certs", "nowhere"], 1, "fedchain certs ca"),
        (["server", "run", "--task", "missing.toml"], 1, "fedchain task create"),
        (
            [
                "client",
                "--data",
                "missing.csv",
                "--keystore",
                "k.json",
                "--node-key",
                "n.key",
                "--app-key",
                "app.pub",
            ],
            1,
            "no CSV file at missing.csv",
        ),
    ],
)
def test_bad_input_gives_one_line_that_says_what_to_do(
    tmp_path: Path, fedchain: Callable[..., Ran], args: list[str], code: int, message: str
) -> None:
    # Prepare
    (tmp_path / "taken.toml").write_text("# a run config of another task\n")
    # Execute
    done = fedchain(*args, cwd=tmp_path)
    # Assert
    assert done.returncode == code, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:")
    assert message in lines[0]
    assert (tmp_path / "taken.toml").read_text() == "# a run config of another task\n"
