"""A run standardized with the task's statistics audits clean with ``--recompute``, and a task
whose spec on chain records other statistics than its holdout's is named by the recomputation."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.audit import EVALUATION, SPEC, audit_run
from fedchain.federation import workload
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess
from fedchain.task import TaskSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small run (3 clients, 2 rounds, embedded chain, in-process) with ``standardize=task``."""
    out = tmp_path_factory.mktemp("standardized") / "run"
    settings = RunSettings(
        num_clients=3, num_rounds=2, contribution="loo", standardize="task", out=str(out)
    )
    run_inprocess(settings)
    return out


def test_a_task_standardized_run_recomputes(run: Path) -> None:
    # Execute
    verdict = audit_run(run, recompute=True)
    spec = TaskSpec.load(run / "task.json")
    # Assert
    assert verdict.ok, [c.detail for c in verdict.failures]
    assert EVALUATION in {c.check for c in verdict.checks}
    assert spec.standardize == "task"
    assert len(spec.feature_mean) == len(spec.feature_scale) == 30


def test_a_spec_whose_statistics_are_not_the_holdouts_fails_the_recomputation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a coordinator that records other statistics on chain than its holdout's (which
    # the clients used)
    honest = workload._spec_standardization

    def shifted(settings: RunSettings) -> object:
        fields = honest(settings)
        return {**fields, "feature_mean": tuple(m + 1.0 for m in fields["feature_mean"])}

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(workload, "_spec_standardization", shifted)
        run_inprocess(RunSettings(num_clients=3, num_rounds=1, standardize="task", out=str(out)))
    # Execute
    verdict = audit_run(out, recompute=True)
    # Assert: the spec matches the chain, the recomputation names the statistics
    failed = {c.check for c in verdict.failures}
    assert SPEC not in failed
    evaluation = [c for c in verdict.failures if c.check == EVALUATION]
    assert evaluation, [c.detail for c in verdict.failures]
    assert all("standardization statistics" in c.detail for c in evaluation)
