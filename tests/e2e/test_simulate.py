"""A real federation end to end: Flower's simulation engine, real training, a real chain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import RoundId, RoundState, TaskId
from fedchain.federation.run_artifacts import RunRecord
from fedchain.hashing import file_hash, to_hex
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    """The defaults: breast-cancer, 10 clients, dirichlet:0.5, 10 rounds, embedded chain."""
    out = tmp_path_factory.mktemp("default")
    return simulate(RunSettings(out=str(out)))


@pytest.fixture(scope="module")
def no_ledger_run(tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    """The default job without a ledger, in process (no second Ray start)."""
    out = tmp_path_factory.mktemp("none")
    return run_inprocess(RunSettings(out=str(out), chain="none"))


def test_defaults_reach_the_quality_target(default_run: RunRecord) -> None:
    final = default_run.reports[-1]
    assert final.accuracy is not None
    assert final.accuracy >= 0.95


def test_every_round_is_committed_on_chain_as_summarised(default_run: RunRecord) -> None:
    # Prepare
    out = default_run.settings.out_dir
    summary = json.loads((out / "summary.json").read_text())
    events = json.loads((out / "ledger.json").read_text())
    # Assert
    assert [r["round"] for r in summary["rounds"]] == list(range(1, 11))
    committed = [e for e in events if e["event"] == "RoundCommitted"]
    assert [e["args"]["globalModelHash"] for e in committed] == [
        r["global_model_hash"] for r in summary["rounds"]
    ]
    recorded = [e for e in events if e["event"] == "CommitmentRecorded"]
    assert len(recorded) == 10 * 10
    for r in summary["rounds"]:
        assert r["accepted"] == 10
        assert r["rejected"] == 0
        assert r["gas_used"] > 0
        for p in r["participants"]:
            assert p["update_hash"].startswith("0x")
            assert p["num_examples"] > 0
    assert (
        summary["spec_hash"]
        == events[[e["event"] for e in events].index("TaskCreated")]["args"]["specHash"]
    )
    total = sum(int(v) for v in summary["rewards"].values())
    earned = [int(r["budget"]) - int(r["unearned"]) for r in summary["rounds"]]
    assert all(0 <= e <= default_run.settings.reward_per_round for e in earned)
    assert total == sum(earned) > 0  # what is not earned stays in the task's pool


def test_models_are_content_addressed_and_the_final_one_exported(default_run: RunRecord) -> None:
    out = default_run.settings.out_dir
    for report in default_run.reports:
        digest = report.global_model_hash[2:]
        path = out / "store" / f"{digest}.safetensors"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    final = out / "final_model.safetensors"
    assert to_hex(file_hash(final)) == default_run.final_model_hash == report.global_model_hash
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = (out / "task.json").read_bytes().rstrip(b"\n")
    assert (
        "0x" + hashlib.sha256(spec).hexdigest()
        == json.loads((out / "summary.json").read_text())["spec_hash"]
    )


def test_the_saved_embedded_chain_reopens_and_holds_the_run(default_run: RunRecord) -> None:
    # Prepare
    out = default_run.settings.out_dir
    deployment = Deployment.load(out / "deployment.json")
    # Execute
    chain = EmbeddedChain.replay(out / "chain")
    gateway = LedgerGateway(chain.w3, deployment, devnet_account(0))
    # Assert
    task = gateway.task(TaskId(1))
    assert task.last_round == 10
    assert to_hex(task.head_model_hash) == default_run.final_model_hash
    assert gateway.round(TaskId(1), RoundId(10)).state == RoundState.COMMITTED


def test_the_saved_chain_detects_tampering(default_run: RunRecord, tmp_path: Path) -> None:
    # Prepare
    journal = tmp_path / "chain"
    journal.mkdir()
    lines = (default_run.settings.out_dir / "chain" / "blocks.jsonl").read_text().splitlines()
    entry = json.loads(lines[5])
    entry["hash"] = "0x" + "00" * 32
    lines[5] = json.dumps(entry)
    (journal / "blocks.jsonl").write_text("\n".join(lines) + "\n")
    # Execute / Assert
    with pytest.raises(Exception, match="does not re-execute"):
        EmbeddedChain.replay(journal)


def test_no_ledger_trains_the_identical_federation(
    default_run: RunRecord, no_ledger_run: RunRecord
) -> None:
    """Same seed, same models: the ledger records the federation without changing it (and
    the in-process engine trains the simulation engine's models)."""
    with_ledger = [r.global_model_hash for r in default_run.reports]
    without = [r.global_model_hash for r in no_ledger_run.reports]
    assert with_ledger == without
    assert no_ledger_run.chain == {"kind": "none"}
    assert not any(r.committed for r in no_ledger_run.reports)


def test_digits_with_the_cnn_reaches_the_quality_target(tmp_path: Path) -> None:
    """Digits with the other defaults (10 clients, dirichlet:0.5, 10 rounds); no ledger needed
    for a quality check, and the ledger changes no model (test above); in process."""
    record = run_inprocess(RunSettings(dataset="digits", chain="none", out=str(tmp_path)))
    assert record.spec.model == "cnn"
    final = record.reports[-1]
    assert final.accuracy is not None
    assert final.accuracy >= 0.90
