"""gtg's defaults changed (issue 18: two cycles at 50 participants, then the control variate);
a round scored under the earlier defaults must still recompute to what was recorded. The
scoring hash commits to the parameters, so the auditor's ``recorded_hash`` picks them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest

from fedchain.contribution.gtg import EARLIER_DEFAULTS, GTGScorer
from fedchain.contribution.registry import build_scorer, earlier_params
from fedchain.contribution.round import RoundScoring, score_round, scoring_record, weighted_mean

Weights = dict[str, np.ndarray[Any, Any]]
SEED, HOLDOUT = 5, "0x" + "cd" * 32


def _round(n: int) -> tuple[list[Weights], list[int]]:
    rng = np.random.default_rng(3)
    updates = [{"w": rng.normal(0.0, 1.0, 8).astype(np.float32)} for _ in range(n)]
    return updates, [int(c) for c in rng.integers(5, 60, n)]


def _score(recorded_hash: bytes | None, scorer: Any = None) -> RoundScoring:
    """A 70-participant round (two cycles of the current defaults, one of the earlier)."""
    updates, examples = _round(70)
    target = np.linspace(-1.0, 1.0, 8)

    def loss(model: Any) -> float:
        return float(np.square(model["w"] - target).sum() + np.abs(model["w"]).sum())

    def aggregate(indices: Any) -> Weights:
        return weighted_mean([updates[i] for i in indices], [examples[i] for i in indices])

    aggregate.weighted_mean = True  # type: ignore[attr-defined]  # as FedAvg's: walks add

    def curvature(center: Any, directions: Any) -> Any:
        # The loss's expansion: gradient 2 (w - t) + sign(w), Hessian 2 I.
        slope = 2.0 * (center["w"] - target) + np.sign(center["w"])
        stacked = np.stack([d["w"] for d in directions])
        return loss(center), stacked @ slope, 2.0 * stacked @ stacked.T

    return score_round(
        method="gtg",
        addresses=[f"0x{i:040x}" for i in range(len(updates))],
        updates=updates,
        examples=examples,
        parent={"w": np.zeros(8, np.float32)},
        global_model=weighted_mean(updates, examples),
        aggregate=aggregate,
        loss=loss,
        curvature=curvature,
        budget=10**18,
        seed=SEED,
        holdout_hash=HOLDOUT,
        recorded_hash=recorded_hash,
    )


def _hash_of(params: dict[str, Any]) -> bytes:
    record = scoring_record("gtg", params, SEED, HOLDOUT)
    return hashlib.sha256(
        json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    ).digest()


def test_the_defaults_changed_and_the_earlier_ones_are_kept() -> None:
    assert earlier_params("gtg") == EARLIER_DEFAULTS
    assert earlier_params("loo") == ()
    assert GTGScorer().params() not in EARLIER_DEFAULTS
    assert GTGScorer().params()["control_variate"] == 1
    assert [e["max_permutations"] for e in EARLIER_DEFAULTS] == [200, 100]
    assert all(e["control_variate"] == 0 for e in EARLIER_DEFAULTS)


@pytest.mark.parametrize("which", [0, 1])
def test_a_round_scored_under_the_earlier_defaults_recomputes_with_them(which: int) -> None:
    # Recorded as the scorer records them: without the control variate, the parameters
    # scores had before it existed.
    earlier = build_scorer("gtg", **EARLIER_DEFAULTS[which]).params()
    assert "control_variate" not in earlier

    recomputed = _score(_hash_of(earlier))
    current = _score(None)

    assert dict(recomputed.params) == earlier
    assert recomputed.scoring_hash == _hash_of(earlier)
    assert dict(current.params) == build_scorer("gtg").params()
    # Without the control variate the estimate differs: other scores, so picking matters.
    assert recomputed.scores != current.scores


def test_the_current_defaults_and_an_unknown_hash_score_with_the_current_defaults() -> None:
    current = _score(None)
    assert _score(current.scoring_hash).scores == current.scores
    unknown = _score(b"\x00" * 32)
    assert unknown.scores == current.scores
    assert unknown.scoring_hash == current.scoring_hash  # the caller reports the difference
