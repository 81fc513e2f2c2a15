"""``loo``: leave-one-out, what the round's aggregate loses without each participant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from fedchain.contribution.base import (
    CachedUtility,
    ParamValue,
    RoundScores,
    Utility,
    check_round,
)

__all__ = ["LeaveOneOutScorer"]


@dataclass(frozen=True)
class LeaveOneOutScorer:
    """Score of participant ``i`` = ``U(N) - U(N minus {i})``.

    Costs ``n + 1`` utility evaluations. Cheap and free-rider proof (removing an update that
    adds nothing changes nothing), but it undervalues redundant participants: two holders of the
    same data each look dispensable, so both score about 0, and scores need not sum to the
    round's gain. With a single participant the score is ``U(N) - U(empty)``.
    """

    method: ClassVar[str] = "loo"

    def params(self) -> dict[str, ParamValue]:
        """No parameters."""
        return {}

    def score(
        self,
        n: int,
        utility: Utility,
        *,
        num_examples: Sequence[int],
        deltas: Sequence[NDArray[np.floating]] | None = None,
        aggregate_delta: NDArray[np.floating] | None = None,
        seed: int = 0,
    ) -> RoundScores:
        """Score the round by leave-one-out; the deltas and ``seed`` are unused.

        Raises
        ------
        ScoringError
            For inconsistent ``num_examples``.
        """
        check_round(n, num_examples)
        cached = CachedUtility(utility)
        if n == 0:
            return RoundScores((), evaluations=0, method=self.method, params=self.params())
        everyone = frozenset(range(n))
        full = cached(everyone)
        scores = tuple(full - cached(everyone - {i}) for i in range(n))
        return RoundScores(
            scores, evaluations=cached.evaluations, method=self.method, params=self.params()
        )
