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
from fedchain.consortium.deployment import read_run_config
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
        return Ran(int(exited.value.code or 0), out, err)

    return run


def _holdout(path: Path, rows: int = 60) -> None:
    data = load_breast_cancer()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(30)), "label"])
        for features, label in zip(data.features[:rows], data.labels[:rows], strict=True):
            writer.writerow([*(repr(float(v)) for v in features), int(label)])


@pytest.mark.anvil
def test_a_coordinator_creates_a_funded_task_and_registers_a_hospital(
    tmp_path: Path, fedchain: Callable[..., Ran]
) -> None:
    # Prepare
    anvil = AnvilChain().start()
    hospital = devnet_account(5).address
    _holdout(tmp_path / "holdout.csv")
    try:
        deployed = fedchain("deploy", "--rpc-url", anvil.url, "--devnet-account", "0", cwd=tmp_path)
        assert deployed.returncode == 0, deployed.stderr
        # Execute
        created = fedchain(
            "task", "create", "--devnet-account", "0", "--holdout", "csv:holdout.csv",
            "--rounds", "2", "--budget", "10", "--model", "logreg", cwd=tmp_path,
        )  # fmt: skip
        added = fedchain(
            "participant", "add", hospital, "--org", "Hospital A", "--devnet-account", "0",
            cwd=tmp_path,
        )  # fmt: skip
        again = fedchain(
            "participant", "add", hospital, "--org", "Hospital A", "--devnet-account", "0",
            cwd=tmp_path,
        )  # fmt: skip
        # Assert
        assert created.returncode == 0, created.stderr
        assert added.returncode == 0, added.stderr
        assert "already registered" in again.stdout
        settings = read_run_config(tmp_path / "fedchain-task.toml")
        assert settings.task_id == 1
        assert settings.holdout == f"csv:{tmp_path / 'holdout.csv'}"
        assert settings.deployment == str(tmp_path / "fedchain-deployment.json")
        spec = (tmp_path / "fedchain-task.json").read_bytes().rstrip(b"\n")
        assert json.loads(spec)["model"] == "logreg"
        gateway = LedgerGateway(
            anvil.w3, Deployment.load(tmp_path / "fedchain-deployment.json"), devnet_account(0)
        )
        task = gateway.task(TaskId(1))
        assert task.spec_hash == hashlib.sha256(spec).digest()
        assert task.reward_per_round == 10 * 10**18
        assert task.funded == 20 * 10**18
        record = gateway.participant(hospital)
        assert record.status == ParticipantStatus.ACTIVE
        assert record.org_hash == hashlib.sha256(b"Hospital A").digest()
    finally:
        anvil.close()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["participant", "add", "0x12", "--org", "A"], 2, "is not an account address"),
        (["task", "create", "--holdout", "csv:h.csv", "--out", "taken.toml"], 2, "exists"),
        (["task", "create", "--holdout", "csv:h.csv", "--devnet-account", "3"], 2, "key 0"),
        (["certs", "node-key", "taken.toml"], 1, "exists"),
        (["server", "start", "--certs", "nowhere"], 1, "fedchain certs ca"),
        (["server", "run", "--task", "missing.toml"], 1, "fedchain task create"),
        (
            ["client", "--data", "missing.csv", "--keystore", "k.json", "--node-key", "n.key"],
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
