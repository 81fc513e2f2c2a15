"""`fedchain audit` and `verify-model` on a real run: the clean run passes, and each tampering
(one thing at a time, on a copy of the run) fails the audit and names the round and participant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from typer.testing import CliRunner

from fedchain.audit import (
    CHAIN,
    GLOBALS,
    MEMBERS,
    SPEC,
    UPDATES,
    Check,
    Verdict,
    audit_run,
)
from fedchain.cli import app
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess
from fedchain.task import TaskSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small seeded federation: 3 clients, 2 rounds, leave-one-out scores, embedded chain.

    FedAdam, whose server-side optimiser carries state from round to round, so the replay must
    run the rounds in order as the server did. In process (the same records as under the
    simulation engine, without starting Ray).
    """
    out = tmp_path_factory.mktemp("clean") / "run"
    settings = RunSettings(
        num_clients=3,
        num_rounds=2,
        partition="iid",
        strategy="fedadam",
        contribution="loo",
        out=str(out),
    )
    run_inprocess(settings)
    return out


@pytest.fixture
def run(clean_run: Path, tmp_path: Path) -> Path:
    """A copy of the clean run, to tamper with."""
    copy = tmp_path / "run"
    shutil.copytree(clean_run, copy)
    return copy


def _summary(run: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return summary


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _stored(run: Path, digest: str) -> Path:
    return run / "store" / f"{digest[2:]}.safetensors"


def _only_failures(verdict: Verdict) -> list[Check]:
    assert not verdict.ok
    return list(verdict.failures)


def test_the_clean_run_passes_every_check_with_recomputation(clean_run: Path) -> None:
    # Execute
    verdict = audit_run(clean_run, recompute=True, spec_file=clean_run / "task.json")
    # Assert
    assert verdict.ok, verdict.failures
    kinds = [c.check for c in verdict.checks]
    assert len(kinds) == len(set(kinds))  # one row per check kind when all pass
    for expected in (
        "chain reopened; saved blocks re-execute",
        "task spec hash matches the chain",
        "each round builds on the previous global model",
        "commitments signed by eligible members",
        "global models in store and hashes match",
        "stored updates match their commitments",
        "aggregation reproduces the global model",
        "evaluation reproduces the recorded accuracy and loss",
        "scores and rewards recompute",
        "round rewards within the budget, paid to members only",
        "members joined by their own signed consent",
        "refunds and sweeps within what funders are owed",
        "claims within attributions",
    ):
        assert expected in kinds
    rows = {c.check: c for c in verdict.checks}
    assert "6 commitments" in rows["commitments signed by eligible members"].detail
    assert "3 members, each by its own consent" in rows[MEMBERS].detail
    assert (
        "2 rounds reproduced bit-exactly" in rows["aggregation reproduces the global model"].detail
    )
    document = verdict.to_json()
    assert document["ok"] is True
    assert set(document["checks"][0]) == {
        *("check", "ok", "status", "task", "round", "participant", "detail")
    }
    assert (document["failed"], document["not_checked"]) == (0, 0)


def test_a_byte_of_a_stored_global_model_is_named_by_its_round(run: Path) -> None:
    # Prepare
    _flip_last_byte(_stored(run, _summary(run)["rounds"][0]["global_model_hash"]))
    # Execute
    failures = _only_failures(audit_run(run))
    # Assert
    assert [(c.check, c.round) for c in failures] == [(GLOBALS, 1)]
    assert "altered" in failures[0].detail


def test_a_byte_of_a_stored_update_is_named_by_round_and_participant(run: Path) -> None:
    # Prepare
    victim = _summary(run)["rounds"][1]["participants"][2]
    _flip_last_byte(_stored(run, victim["update_hash"]))
    # Execute
    verdict = audit_run(run, recompute=True)
    failures = _only_failures(verdict)
    # Assert: the store check fails and names it; the replay of that round cannot run, so its
    # rows are not checked (never "ok") and say why
    assert [(c.check, c.round, c.participant) for c in failures] == [
        (UPDATES, 2, victim["address"])
    ]
    assert {(c.round, c.participant) for c in verdict.unchecked} == {(2, victim["address"])}
    assert {c.check for c in verdict.unchecked} == {
        "aggregation reproduces the global model",
        "evaluation reproduces the recorded accuracy and loss",
        "scores and rewards recompute",
    }
    assert all(c.status == "not checked" for c in verdict.unchecked)
    assert verdict.exit_code == 1  # a failure outranks what could not be checked


def test_an_update_altered_in_round_1_also_stops_the_replay_of_round_2(run: Path) -> None:
    # Prepare
    victim = _summary(run)["rounds"][0]["participants"][0]
    _flip_last_byte(_stored(run, victim["update_hash"]))
    # Execute
    verdict = audit_run(run, recompute=True)
    failures = _only_failures(verdict)
    # Assert: FedAdam's state after round 1 is unknown, so round 2 cannot be recomputed either
    replayed = [
        c for c in verdict.unchecked if c.check == "aggregation reproduces the global model"
    ]
    assert [(c.round, c.participant) for c in replayed] == [(1, victim["address"]), (2, None)]
    assert "carries state from round 1" in replayed[1].detail
    assert [(c.check, c.round) for c in failures if c.check == UPDATES] == [(UPDATES, 1)]


def test_an_altered_spec_file_is_named(run: Path) -> None:
    # Prepare: the spec as a coordinator might quietly change it afterwards
    spec = TaskSpec.load(run / "task.json")
    altered = TaskSpec(**{**spec.__dict__, "learning_rate": spec.learning_rate * 2})
    altered.save(run / "task.json")
    # Execute
    failures = _only_failures(audit_run(run))
    # Assert
    assert [c.check for c in failures] == [SPEC]
    assert "task.json" in failures[0].detail
    assert failures[0].task == 1


def test_a_spec_file_of_another_task_given_with_spec_is_named(run: Path, tmp_path: Path) -> None:
    # Prepare
    spec = TaskSpec.load(run / "task.json")
    other = tmp_path / "other-task.json"
    TaskSpec(**{**spec.__dict__, "seed": spec.seed + 1}).save(other)
    # Execute
    failures = _only_failures(audit_run(run, spec_file=other))
    # Assert: task.json still matches; only the given file is named
    assert [c.check for c in failures] == [SPEC]
    assert "--spec" in failures[0].detail
    assert str(other) in failures[0].detail


def test_a_deleted_store_file_is_named_by_its_round(run: Path) -> None:
    # Prepare
    _stored(run, _summary(run)["rounds"][1]["global_model_hash"]).unlink()
    # Execute
    failures = _only_failures(audit_run(run))
    # Assert
    assert [(c.check, c.round) for c in failures] == [(GLOBALS, 2)]
    assert "not in the store" in failures[0].detail


def test_a_deleted_update_is_named_by_round_and_participant(run: Path) -> None:
    # Prepare
    victim = _summary(run)["rounds"][0]["participants"][0]
    _stored(run, victim["update_hash"]).unlink()
    # Execute
    failures = _only_failures(audit_run(run))
    # Assert
    assert [(c.check, c.round, c.participant) for c in failures] == [
        (UPDATES, 1, victim["address"])
    ]


def test_an_altered_journal_block_is_named_with_its_round(run: Path) -> None:
    # Prepare: change the recorded hash of the block that committed round 2
    commit_tx = _summary(run)["rounds"][1]["tx_hash"]
    journal = run / "chain" / "blocks.jsonl"
    lines = journal.read_text().splitlines()
    index = next(
        i
        for i, line in enumerate(lines)
        if "0x" + keccak(hexstr=json.loads(line)["tx"]).hex() == commit_tx
    )
    entry = json.loads(lines[index])
    entry["hash"] = entry["hash"][:-1] + ("0" if entry["hash"][-1] != "0" else "1")
    lines[index] = json.dumps(entry)
    journal.write_text("\n".join(lines) + "\n")
    # Execute
    failures = _only_failures(audit_run(run))
    # Assert
    assert [(c.check, c.round) for c in failures] == [(CHAIN, 2)]
    assert f"line {index + 1}" in failures[0].detail
    assert "commitRound" in failures[0].detail


def test_the_final_model_file_must_be_the_last_global_model(run: Path) -> None:
    # Prepare
    first_global = _stored(run, _summary(run)["rounds"][0]["global_model_hash"])
    shutil.copyfile(first_global, run / "final_model.safetensors")
    # Execute
    failures = _only_failures(audit_run(run))
    # Assert
    assert [(c.check, c.round) for c in failures] == [
        ("final model is the last committed global model", 2)
    ]


# ------------------------------------------------------------------ the command line

runner = CliRunner()


def test_audit_command_passes_the_clean_run_and_writes_json(
    clean_run: Path, tmp_path: Path
) -> None:
    # Prepare
    report = tmp_path / "verdict.json"
    # Execute
    done = runner.invoke(app, ["audit", "--run", str(clean_run), "--json", str(report)])
    # Assert
    assert done.exit_code == 0, done.output
    assert "every check passed" in done.output
    document = json.loads(report.read_text())
    assert document["ok"] is True
    assert all(row["ok"] for row in document["checks"])


def test_audit_command_fails_a_tampered_run_and_prints_json_to_stdout(run: Path) -> None:
    # Prepare
    victim = _summary(run)["rounds"][1]["participants"][1]
    _flip_last_byte(_stored(run, victim["update_hash"]))
    # Execute
    done = runner.invoke(app, ["audit", "--run", str(run), "--json", "-"])
    # Assert
    assert done.exit_code == 1
    document = json.loads(done.stdout)
    assert document["ok"] is False
    (failure,) = [row for row in document["checks"] if not row["ok"]]
    assert (failure["check"], failure["round"]) == (UPDATES, 2)
    assert failure["participant"] == victim["address"]
    assert "FAIL" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "--run", "RUN", "--ledger", "0x" + "11" * 20],
        ["audit", "--run", "RUN", "--task", "1"],
        ["audit", "--run", "/nonexistent/run"],
        ["audit", "--ledger", "0x" + "11" * 20],  # no --rpc-url
        ["audit", "--run", "RUN", "--spec", "/nonexistent/task.json"],
    ],
)
def test_audit_usage_errors_exit_2(clean_run: Path, args: list[str]) -> None:
    done = runner.invoke(app, [a.replace("RUN", str(clean_run)) for a in args])
    assert done.exit_code == 2, done.output


def test_scores_is_audit_with_recomputation(clean_run: Path) -> None:
    done = runner.invoke(app, ["scores", "--run", str(clean_run)])
    assert done.exit_code == 0, done.output
    assert "(recomputed)" in done.output
    assert "every check passed (16 rows)" in done.output  # the three recomputed, privacy (n/a)


def test_verify_model_finds_the_final_model_and_its_round(clean_run: Path) -> None:
    # Execute
    done = runner.invoke(
        app, ["verify-model", str(clean_run / "final_model.safetensors"), "--run", str(clean_run)]
    )
    # Assert
    assert done.exit_code == 0, done.output
    assert _summary(clean_run)["final_model_hash"] in done.output
    assert "the global model of task 1, round 2" in done.output
    for participant in _summary(clean_run)["rounds"][1]["participants"]:
        assert participant["address"] in done.output
    # Who answers for it: the coordinator and the registrar, as the chain names them
    text = " ".join(done.output.split())
    parties = _summary(clean_run)["parties"]
    (coordinator,) = [a for a, e in parties.items() if "coordinator" in e["roles"]]
    (registrar,) = [a for a, e in parties.items() if "registrar" in e["roles"]]
    assert f"coordinator {_whole(parties, coordinator)}" in text
    assert f"participants registered by {_whole(parties, registrar)}" in text


def _whole(parties: dict[str, Any], address: str) -> str:
    """A party as a command prints it: "Name (whole address)", or the bare address."""
    name = parties[address]["name"]
    return f"{name} ({address})" if name else address


def test_verify_model_finds_the_initial_model(clean_run: Path) -> None:
    spec = TaskSpec.load(clean_run / "task.json")
    done = runner.invoke(
        app,
        ["verify-model", str(_stored(clean_run, spec.initial_model_hash)), "--run", str(clean_run)],
    )
    assert done.exit_code == 0, done.output
    assert "the initial model of task 1" in done.output


@pytest.mark.parametrize("content", [b"not a model at all", b"\x00" * 64])
def test_verify_model_says_not_recorded_for_another_file(
    clean_run: Path, tmp_path: Path, content: bytes
) -> None:
    # Prepare
    stranger = tmp_path / "model.safetensors"
    stranger.write_bytes(content)
    # Execute
    done = runner.invoke(app, ["verify-model", str(stranger), "--run", str(clean_run)])
    # Assert
    assert done.exit_code == 1
    assert "not recorded" in done.output
    assert "0x" + __import__("hashlib").sha256(content).hexdigest() in done.output
