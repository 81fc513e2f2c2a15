"""docs/api.md's example, run as written: a small federation in process, audited, its model found.

The example's code blocks run in one namespace in an empty directory; the tests then check what
they left: the Run's fields against the files, the verdict, the model's provenance, the report.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fedchain
from fedchain.api import Run, RunExistsError

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# The options of the doc's example, for the rerun below.
EXAMPLE = {"clients": 3, "rounds": 2, "engine": "inprocess", "chain": "embedded", "out": "runs/api"}


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.M | re.S)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The doc's example run in an empty directory: (that directory, the names it left)."""
    where = tmp_path_factory.mktemp("api-doc")
    namespace: dict[str, Any] = {"__name__": "__api_doc__"}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        for block in python_blocks(DOC.read_text()):
            exec(compile(block, str(DOC), "exec"), namespace)  # the doc as a reader runs it
        yield where, namespace


def test_the_doc_shows_the_example_this_test_runs() -> None:
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 2
    for name, value in EXAMPLE.items():
        assert f"{name}={json.dumps(value)}" in blocks[0]


def test_the_example_returns_the_run_it_wrote(
    example: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    where, names = example
    run: Run = names["run"]
    monkeypatch.chdir(where)
    # Execute
    reopened = Run.open("runs/api")
    # Assert
    assert run == reopened
    assert run.out == Path("runs/api")
    assert run.final_model == Path("runs/api/final_model.safetensors")
    assert run.summary["settings"]["num-clients"] == 3
    assert [r["round"] for r in run.rounds] == [1, 2]
    assert all(r["committed"] for r in run.rounds)
    assert run.rounds[-1]["global_model_hash"] == run.final_model_hash
    assert len(run.rewards) == 3
    assert all(isinstance(amount, int) and amount >= 0 for amount in run.rewards.values())
    assert sum(run.rewards.values()) > 0
    assert sum(run.rewards.values()) == sum(int(a) for a in run.summary["rewards"].values())
    digest = hashlib.sha256(run.final_model.read_bytes()).hexdigest()
    assert run.final_model_hash == "0x" + digest


def test_the_example_audits_the_run_and_finds_its_model(
    example: tuple[Path, dict[str, Any]],
) -> None:
    # Prepare
    where, names = example
    verdict, provenance = names["verdict"], names["provenance"]
    # Assert
    assert verdict.ok
    assert len(verdict.checks) >= 8
    assert not verdict.failures
    assert provenance.recorded
    assert [(s.task_id, s.round, s.kind) for s in provenance.sightings] == [(1, 2, "global model")]
    assert (where / "runs" / "api" / "report.html").stat().st_size > 10_000


def test_a_second_run_into_the_same_out_is_refused_unless_overwrite(
    example: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    where, names = example
    monkeypatch.chdir(where)
    summary = (where / "runs" / "api" / "summary.json").read_bytes()
    written = (where / "runs" / "api" / "summary.json").stat().st_mtime_ns
    (where / "runs" / "api" / "notes.txt").write_text("mine")  # not the run's: kept
    # Execute
    with pytest.raises(RunExistsError) as refused:
        fedchain.simulate(**EXAMPLE)
    kept = (where / "runs" / "api" / "summary.json").read_bytes()
    again = fedchain.simulate(**EXAMPLE, overwrite=True)
    # Assert
    assert "runs/api already holds a run" in str(refused.value)
    assert kept == summary  # nothing written by the refused run
    assert (where / "runs" / "api" / "summary.json").stat().st_mtime_ns > written  # run again
    assert not (where / "runs" / "api" / "report.html").exists()  # the old run's, deleted
    assert (where / "runs" / "api" / "notes.txt").read_text() == "mine"
    assert again.final_model_hash == names["run"].final_model_hash  # the same seed, same model
    assert fedchain.audit_run(again).ok
