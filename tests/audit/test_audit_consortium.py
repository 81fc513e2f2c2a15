"""An outside auditor of a consortium task (issue 19, item 4), and a hospital's copy of the run
(item 5): the holdout is committed in the spec, handed to auditors and checked before use; a
check that could not run is "not checked", never "ok", and sets its own exit code."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.audit import AGGREGATION, EVALUATION, GLOBALS, SCORES, SPEC, UPDATES
from fedchain.cli import app
from fedchain.task import TaskSpec

from ._consortium import Consortium, run_consortium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

runner = CliRunner()
#: The files the coordinator publishes for hospitals (docs/audit.md, "What the coordinator
#: publishes"): not the store, not the holdout.
HOSPITAL_COPY = ("summary.json", "task.json", "deployment.json", "final_model.safetensors")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    made = run_consortium(tmp_path_factory.mktemp("consortium"))
    try:
        yield made
    finally:
        made.chain.close()


@pytest.fixture
def auditor(tmp_path: Path, consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An auditor's directory holding what the coordinator handed over: the deployment file,
    the spec, the store and a copy of the holdout (under another name)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(consortium.root / "deployment.json", tmp_path / "deployment.json")
    shutil.copy(consortium.run / "task.json", tmp_path / "task.json")
    shutil.copytree(consortium.run / "store", tmp_path / "store")
    shutil.copy(consortium.holdout, tmp_path / "holdout-copy.csv")
    return tmp_path


def _ledger_audit(consortium: Consortium, *extra: str) -> list[str]:
    return [
        "audit",
        "--deployment", "deployment.json",
        "--rpc-url", consortium.chain.url,
        "--store", "store",
        *extra,
    ]  # fmt: skip


def test_an_auditor_recomputes_a_csv_task_from_the_holdout_handed_over(
    consortium: Consortium, auditor: Path
) -> None:
    # Execute
    done = runner.invoke(
        app,
        _ledger_audit(
            consortium, "--spec", "task.json", "--recompute", "--data", "holdout-copy.csv",
            "--json", "verdict.json",
        ),
    )  # fmt: skip
    # Assert: every check ran and passed, the recomputations among them
    assert done.exit_code == 0, done.output
    document = json.loads((auditor / "verdict.json").read_text())
    assert (document["ok"], document["failed"], document["not_checked"]) == (True, 0, 0)
    rows = {row["check"]: row for row in document["checks"]}
    assert {AGGREGATION, EVALUATION, SCORES} <= set(rows)
    assert rows[SCORES]["detail"] == "6 scores and rewards in 2 rounds"
    assert "unknown dataset" not in done.output


def test_a_holdout_that_is_not_the_committed_one_is_refused_in_one_line(
    consortium: Consortium, auditor: Path
) -> None:
    # Prepare: a hospital's file, not the holdout the spec commits to
    spec = TaskSpec.load(auditor / "task.json")
    other = consortium.root / "data" / "hospital-a.csv"
    # Execute
    done = runner.invoke(
        app, _ledger_audit(consortium, "--spec", "task.json", "--recompute", "--data", str(other))
    )
    # Assert: refused before anything is checked, naming both hashes
    assert done.exit_code == 2, done.output
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert f"{other} hashes to 0x" in line
    assert f"the task spec names {spec.data_hash}" in line
    assert "it is not the task's data holdout file" in line


def test_without_the_holdout_the_auditor_is_told_it_is_committed_and_where_to_get_it(
    consortium: Consortium, auditor: Path
) -> None:
    # Execute
    done = runner.invoke(app, _ledger_audit(consortium, "--spec", "task.json", "--recompute"))
    # Assert
    assert done.exit_code == 2, done.output
    (line,) = done.stderr.strip().splitlines()
    assert "the task's holdout file (SHA-256 0x" in line
    assert "the coordinator hands it to auditors" in line
    assert "--data" in line


def test_a_spec_not_given_is_not_checked_never_ok_and_exits_3(
    consortium: Consortium, auditor: Path
) -> None:
    # Execute
    done = runner.invoke(app, _ledger_audit(consortium, "--json", "verdict.json"))
    # Assert: the spec row is "not checked" in the table and the JSON, and counted
    assert done.exit_code == 3, done.output
    document = json.loads((auditor / "verdict.json").read_text())
    (spec_row,) = [row for row in document["checks"] if row["check"] == SPEC]
    assert (spec_row["ok"], spec_row["status"]) == (False, "not checked")
    assert "--spec" in spec_row["detail"]
    assert (document["ok"], document["failed"], document["not_checked"]) == (False, 0, 1)
    assert "not checked" in done.output
    assert "1 of" in done.output
    assert "rows not checked" in done.output
    assert "every check passed" not in done.output


@pytest.fixture
def hospital_copy(tmp_path: Path, consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hospital's copy of the run: the published files only, on a machine where the
    coordinator's holdout path does not exist."""
    copy = tmp_path / "run"
    copy.mkdir()
    for name in HOSPITAL_COPY:
        shutil.copy(consortium.run / name, copy / name)
    summary = json.loads((copy / "summary.json").read_text())
    summary["settings"]["holdout"] = "csv:/coordinator/only/holdout.csv"  # another machine
    (copy / "summary.json").write_text(json.dumps(summary))
    monkeypatch.chdir(tmp_path)
    return copy


def test_scores_on_a_hospitals_copy_names_what_is_missing_and_how_to_get_it(
    consortium: Consortium, hospital_copy: Path
) -> None:
    # Execute
    done = runner.invoke(app, ["scores", "--run", "run", "--rpc-url", consortium.chain.url])
    # Assert: one line, both missing inputs, where each comes from
    assert done.exit_code == 2, done.output
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "cannot recompute the run at run:" in line
    assert "the content store (run/store does not exist" in line
    assert "pass --store DIR" in line
    assert "no data file at /coordinator/only/holdout.csv" in line
    assert "the task's holdout file (SHA-256 0x" in line


def test_a_recomputed_report_of_a_hospitals_copy_names_what_is_missing(
    consortium: Consortium, hospital_copy: Path
) -> None:
    # Execute
    done = runner.invoke(app, ["report", "--run", "run", "--recompute"])
    # Assert: refused in one line, no report written
    assert done.exit_code == 2, done.output
    (line,) = done.stderr.strip().splitlines()
    assert "cannot recompute the run at run:" in line
    assert not (hospital_copy / "report.html").exists()


def test_scores_on_a_hospitals_copy_with_the_store_and_holdout_recomputes(
    consortium: Consortium, hospital_copy: Path
) -> None:
    # Execute
    done = runner.invoke(
        app,
        [
            "scores", "--run", "run", "--rpc-url", consortium.chain.url,
            "--store", str(consortium.run / "store"), "--data", str(consortium.holdout),
        ],
    )  # fmt: skip
    # Assert
    assert done.exit_code == 0, done.output
    assert "every check passed" in done.output


def test_the_audit_of_a_hospitals_copy_lists_the_store_checks_as_not_checked(
    consortium: Consortium, hospital_copy: Path
) -> None:
    # Execute
    done = runner.invoke(
        app, ["audit", "--run", "run", "--rpc-url", consortium.chain.url, "--json", "v.json"]
    )
    # Assert: the chain checks pass; the store's cannot run here, and say so
    assert done.exit_code == 3, done.output
    document = json.loads(Path("v.json").read_text())
    unchecked = {row["check"] for row in document["checks"] if row["status"] == "not checked"}
    assert unchecked == {GLOBALS, UPDATES}
    assert document["failed"] == 0


def test_the_coordinators_store_of_each_sites_updates_is_its_own_only(
    consortium: Consortium,
) -> None:
    # Execute
    store = consortium.run / "store"
    modes = {stat.S_IMODE(f.stat().st_mode) for f in store.iterdir()}
    # Assert: the updates, the global models and the initial model, owner only
    assert len(list(store.iterdir())) >= 9
    assert modes == {0o600}
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
