"""``shapley``: exact Shapley values within a round, over every coalition of its participants."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from fedchain.contribution.base import (
    CachedUtility,
    ParamValue,
    RoundScores,
    ScoringError,
    Utility,
    check_round,
)

__all__ = ["MAX_SHAPLEY_PARTICIPANTS", "ShapleyScorer", "shapley_weights"]

#: Largest round exact Shapley accepts: it evaluates all 2**n coalitions, 4096 at n = 12 (a few
#: seconds with a small model and holdout), and every extra participant doubles that.
MAX_SHAPLEY_PARTICIPANTS = 12


def shapley_weights(n: int) -> list[float]:
    """Weight ``|S|! (n - |S| - 1)! / n!`` of a marginal gain over a coalition of each size.

    Entry ``s`` is the weight of ``U(S + {i}) - U(S)`` for ``|S| = s``, ``s = 0 .. n-1``;
    computed from exact integers so every machine gets the same floats.
    """
    return [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]


@dataclass(frozen=True)
class ShapleyScorer:
    """Exact Shapley values: ``phi_i = sum over S not containing i of w(|S|) (U(S+i) - U(S))``.

    The reference the other methods are judged against: efficient (scores sum to
    ``U(N) - U(empty)``), symmetric (interchangeable participants score the same) and null
    players score 0. It needs ``2**n`` utility evaluations, so rounds of more than
    ``MAX_SHAPLEY_PARTICIPANTS`` participants are refused; use ``gtg`` for those.
    """

    method: ClassVar[str] = "shapley"

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
        """Score the round exactly; the deltas and ``seed`` are unused.

        Raises
        ------
        ScoringError
            For inconsistent ``num_examples``, or ``n > MAX_SHAPLEY_PARTICIPANTS``.
        """
        check_round(n, num_examples)
        if n > MAX_SHAPLEY_PARTICIPANTS:
            raise ScoringError(
                f"exact Shapley needs 2**{n} = {2**n} utility evaluations for {n} participants; "
                f"it accepts at most {MAX_SHAPLEY_PARTICIPANTS}. Use the 'gtg' method "
                "(--contribution gtg), its Monte-Carlo estimate, for rounds this large"
            )
        cached = CachedUtility(utility)
        # Coalitions as bit masks: bit i set = participant i in. Ascending order, so the
        # utility sees the same sequence of calls on every run.
        values = np.array(
            [cached(frozenset(i for i in range(n) if mask >> i & 1)) for mask in range(1 << n)],
            dtype=np.float64,
        )
        masks = np.arange(1 << n)
        sizes = np.array([bin(mask).count("1") for mask in range(1 << n)])
        weights = np.array(shapley_weights(n), dtype=np.float64)
        scores = []
        for i in range(n):
            without = masks[(masks >> i & 1) == 0]
            gains = weights[sizes[without]] * (values[without | (1 << i)] - values[without])
            # fsum is correctly rounded: the sum does not depend on numpy's summation order.
            scores.append(math.fsum(gains.tolist()))
        return RoundScores(
            tuple(scores), evaluations=cached.evaluations, method=self.method, params=self.params()
        )
