"""The robust rules replay bit-exactly in an audit with recomputation: centered clipping (its
center from the chain's previous global models) after bucketing (its shuffle from the task's
seed and round), and FLTrust (the server's update retrained on the holdout rebuilt from the spec).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.audit import audit_run
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "changes",
    [
        {"strategy": "cclip", "pre_aggregation": "bucketing:2", "byzantine": 1},
        {"strategy": "fltrust", "attack": "sign-flip:0.2"},
    ],
    ids=["bucketing+cclip", "fltrust"],
)
def test_a_robust_run_passes_the_audit_with_recomputation(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    # Prepare: 3 rounds, so round 3's center is round 2's update; leave-one-out scores rebuild
    # coalitions with the primed strategy
    out = tmp_path / "run"
    settings = RunSettings(
        num_clients=5,
        num_rounds=3,
        partition="iid",
        contribution="loo",
        chain="embedded",
        out=str(out),
        **changes,  # type: ignore[arg-type]
    )
    run_inprocess(settings)
    # Execute
    verdict = audit_run(out, recompute=True)
    # Assert
    assert verdict.ok, verdict.failures
    rows = {c.check: c for c in verdict.checks}
    assert (
        "3 rounds reproduced bit-exactly" in rows["aggregation reproduces the global model"].detail
    )
    assert rows["scores and rewards recompute"].ok
