"""``cosine``: gradient similarity of each update with the aggregate; no holdout needed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from fedchain.contribution.base import (
    ParamValue,
    RoundScores,
    ScoringError,
    Utility,
    check_round,
)

__all__ = ["CosineScorer", "weighted_mean_delta"]


def weighted_mean_delta(
    deltas: Sequence[NDArray[np.floating]], num_examples: Sequence[int]
) -> NDArray[np.float64]:
    """The FedAvg aggregate of ``deltas``: their mean weighted by ``num_examples``.

    Falls back to the plain mean when no participant reports an example.
    """
    stacked = np.stack([np.asarray(d, dtype=np.float64).ravel() for d in deltas])
    weights = np.asarray(num_examples, dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(deltas))
    return np.asarray((weights / weights.sum()) @ stacked, dtype=np.float64)


@dataclass(frozen=True)
class CosineScorer:
    """Score = cosine similarity of the participant's update with the aggregated update.

    Uses only the updates (``deltas``: each participant's flattened weights minus the parent
    model), so it needs no holdout and no utility evaluation. Scores lie in ``[-1, 1]``; an
    update pointing against the round's direction scores negative and earns nothing. A zero
    update (a participant returning the parent model) scores 0. It does not see quality: an
    update aligned with a poor aggregate scores high, and tiny noise can align by chance, so
    prefer a holdout-based method when a holdout exists.
    """

    method: ClassVar[str] = "cosine"

    def params(self) -> dict[str, ParamValue]:
        """No parameters."""
        return {}

    def score(
        self,
        n: int,
        utility: Utility,
        *,
        num_examples: Sequence[int],
        deltas: Sequence[NDArray[np.floating]] | None,
        aggregate_delta: NDArray[np.floating] | None = None,
        seed: int = 0,
    ) -> RoundScores:
        """Score the round by cosine similarity; ``utility`` and ``seed`` are unused.

        Parameters
        ----------
        deltas
            Required: one flattened update minus the parent model per participant.
        aggregate_delta
            The aggregated update minus the parent model; ``None`` means the example-weighted
            mean of ``deltas`` (FedAvg's aggregate).

        Raises
        ------
        ScoringError
            If ``deltas`` is missing or does not hold ``n`` arrays of the aggregate's size.
        """
        check_round(n, num_examples)
        if deltas is None:
            raise ScoringError(
                "the cosine method needs each participant's update minus the parent model "
                "(deltas); pass them, or use a holdout-based method such as 'loo' or 'gtg'"
            )
        if len(deltas) != n:
            raise ScoringError(f"got {len(deltas)} deltas for {n} participants: pass one each")
        if n == 0:
            return RoundScores((), evaluations=0, method=self.method, params=self.params())
        flat = [np.asarray(d, dtype=np.float64).ravel() for d in deltas]
        aggregate = (
            weighted_mean_delta(flat, num_examples)
            if aggregate_delta is None
            else np.asarray(aggregate_delta, dtype=np.float64).ravel()
        )
        sizes = sorted({d.size for d in flat} | {aggregate.size})
        if len(sizes) != 1:
            raise ScoringError(
                f"deltas and the aggregate differ in size ({sizes}): flatten every update of "
                "the same model, in the same parameter order"
            )
        aggregate_norm = float(np.linalg.norm(aggregate))
        scores = []
        for delta in flat:
            norm = float(np.linalg.norm(delta))
            if norm == 0.0 or aggregate_norm == 0.0:
                scores.append(0.0)  # no direction to compare
                continue
            cosine = float(delta @ aggregate) / (norm * aggregate_norm)
            scores.append(min(1.0, max(-1.0, cosine)) if math.isfinite(cosine) else 0.0)
        return RoundScores(tuple(scores), evaluations=0, method=self.method, params=self.params())
