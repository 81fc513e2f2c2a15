"""A run on a CSV file audited elsewhere: the spec names the file by its SHA-256, not by the path
it was given, and ``audit --recompute --data PATH`` recomputes from any copy of it, refusing a
file that is not the task's before anything is recomputed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sklearn.datasets import load_wine
from typer.testing import CliRunner

from fedchain.audit import AGGREGATION, EVALUATION, SCORES
from fedchain.cli import app
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess
from fedchain.task import TaskSpec

pytestmark = pytest.mark.slow

runner = CliRunner()
CLASSES = ("bad", "good", "great")  # wine's classes 0, 1, 2 as names


def _wine_csv(path: Path) -> Path:
    """scikit-learn's wine table with a patient-style id column and class names as labels."""
    features, labels = load_wine(return_X_y=True)
    names = [f"f{i}" for i in range(features.shape[1])]
    lines = [",".join(["id", *names, "quality"])]
    for i, (row, label) in enumerate(zip(features, labels, strict=True)):
        lines.append(",".join([f"W{i}", *(repr(float(v)) for v in row), CLASSES[label]]))
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small run (3 clients, 2 rounds, embedded chain, in-process) started in ``work/`` on
    ``--dataset csv:../data/wine.csv``, as a user types it; returns the site's root."""
    root = tmp_path_factory.mktemp("site")
    _wine_csv(root / "data" / "wine.csv")
    (root / "work").mkdir()
    settings = RunSettings(
        num_clients=3,
        num_rounds=2,
        partition="iid",
        dataset="csv:../data/wine.csv",
        label_column="quality",
        contribution="loo",
        out=str(root / "work" / "run"),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root / "work")
        run_inprocess(settings)
    return root


@pytest.fixture
def auditor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An auditor's directory, two levels down: ``../data/wine.csv`` does not exist from here."""
    here = tmp_path / "auditor" / "checks"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    return here


def test_the_spec_names_the_csv_by_its_hash_and_task_json_is_the_hashed_bytes(
    site: Path,
) -> None:
    # Prepare
    run = site / "work" / "run"
    data = (site / "data" / "wine.csv").read_bytes()
    # Execute
    spec_bytes = (run / "task.json").read_bytes()
    spec = TaskSpec.load(run / "task.json")
    summary = json.loads((run / "summary.json").read_text())
    # Assert: `sha256sum task.json` is the spec hash on chain, and covers the data's hash
    assert "0x" + hashlib.sha256(spec_bytes).hexdigest() == summary["spec_hash"]
    assert spec.data_hash == "0x" + hashlib.sha256(data).hexdigest()
    assert spec.dataset == "csv:wine.csv"
    assert b"../data" not in spec_bytes
    assert (spec.label_column, spec.classes) == ("quality", CLASSES)
    assert spec.features == tuple(f"f{i}" for i in range(13))  # not the id column
    assert spec.num_classes == 3


def test_audit_recompute_with_data_passes_from_another_directory(site: Path, auditor: Path) -> None:
    # Prepare: the auditor's own copy of the file, under another name
    copy = auditor / "wine-copy.csv"
    shutil.copy(site / "data" / "wine.csv", copy)
    run = site / "work" / "run"
    verdict = auditor / "verdict.json"
    # Execute
    done = runner.invoke(
        app,
        ["audit", "--run", str(run), "--recompute", "--data", copy.name, "--json", str(verdict)],
    )
    # Assert: every check passed, the three recomputations among them
    assert done.exit_code == 0, done.output
    rows = json.loads(verdict.read_text())["checks"]
    assert all(row["ok"] for row in rows)
    assert {AGGREGATION, EVALUATION, SCORES} <= {row["check"] for row in rows}
    (scores,) = [row for row in rows if row["check"] == SCORES]
    assert scores["detail"] == "6 scores and rewards in 2 rounds"


def test_audit_recompute_without_data_says_where_it_looked_and_to_pass_it(
    site: Path, auditor: Path
) -> None:
    # Execute
    done = runner.invoke(app, ["audit", "--run", str(site / "work" / "run"), "--recompute"])
    # Assert
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert (
        "no data file at ../data/wine.csv: point --data at a copy of the task's data" in (lines[0])
    )


def test_a_data_file_that_is_not_the_tasks_is_refused_before_recomputing(
    site: Path, auditor: Path
) -> None:
    # Prepare: one row fewer
    text = (site / "data" / "wine.csv").read_text().splitlines()
    other = auditor / "wine.csv"
    other.write_text("\n".join(text[:-1]) + "\n")
    run = site / "work" / "run"
    # Execute
    done = runner.invoke(app, ["audit", "--run", str(run), "--recompute", "--data", str(other)])
    scores = runner.invoke(app, ["scores", "--run", str(run), "--data", str(other)])
    # Assert: one line, and no verdict table (nothing was recomputed)
    for result in (done, scores):
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"{other} hashes to 0x" in lines[0]
        assert "it is not the task's data csv:wine.csv" in lines[0]


def test_data_without_recompute_is_refused(site: Path, auditor: Path) -> None:
    done = runner.invoke(
        app, ["audit", "--run", str(site / "work" / "run"), "--data", str(site / "data")]
    )
    assert done.exit_code == 2, done.output
    assert "--data is read to recompute the rounds: add --recompute" in done.stderr
