"""``gtg``: a truncated Monte-Carlo Shapley estimate in the style of GTG-Shapley.

GTG-Shapley (Liu, Chen, Zhou, Yu and Wu, "GTG-Shapley: Efficient and Accurate Participant
Contribution Evaluation in Federated Learning", ACM TIST 2022) rebuilds coalition models from
the submitted updates instead of retraining, and saves utility evaluations three ways, all
kept here:

* between-round truncation: a round whose global utility barely moved
  (``|U(N) - U(empty)| < eps_round``) scores everyone 0 after 2 evaluations;
* within-permutation truncation: once a prefix's utility is within ``eps_trunc`` of ``U(N)``,
  the remaining marginal gains of that permutation are taken as 0 without evaluating them;
* guided sampling: permutations come in cycles in which every participant leads equally often,
  so its first-position gain, usually the largest, is never missed.

Guided cycles here are built from one random cyclic order of the participants: its ``n``
rotations, each read forwards and backwards (``2n`` permutations, every participant leading
twice). Besides leading, every participant then takes every position exactly twice per cycle,
which removes the variance due to the position (marginal gains shrink as coalitions grow), and
the prefixes of all ``2n`` permutations are the same ``n (n - 1)`` arcs of the cycle, so the
backward half costs no evaluation: a cycle evaluates at most ``n (n - 1) + 2`` coalitions (58
for 8 participants, 23% of exact Shapley's 256). On 8-client breast-cancer rounds this had about
half the error of independent random permutations for the same evaluations.

Participants whose updates are identical (same example count, same update, bit for bit) are
interchangeable in the round's game: every coalition's utility is the same with one or the
other. Their Shapley values are therefore equal, and the estimate averages over each such group,
which removes the sampling noise between them without biasing anyone's score.

Sampling stops on convergence (every score's standard error small against the scores) or after
``max_permutations``; a stop rule on the change of the running means over the last permutations
(the paper's) could not stop after one cycle on easy rounds nor tell them from hard ones.
Evaluations are cached per round, so coalitions that permutations share cost one evaluation.
"""

from __future__ import annotations

import hashlib
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

__all__ = [
    "DEFAULT_CONVERGENCE_TOL",
    "DEFAULT_EPS_ROUND",
    "DEFAULT_EPS_TRUNC",
    "DEFAULT_MAX_PERMUTATIONS",
    "GTGScorer",
]

# Defaults, tuned on real rounds of 8 participants (tests/unit/contribution/test_real_round.py).
#: Absolute, in utility units (e.g. holdout loss): a round that moved less made no progress.
DEFAULT_EPS_ROUND = 1e-6
#: Relative to the round's gain |U(N) - U(empty)|.
DEFAULT_EPS_TRUNC = 0.001
#: Converged once every score's estimated standard error is below this share of the mean
#: absolute score.
DEFAULT_CONVERGENCE_TOL = 0.1
#: Upper bound on sampled permutations (rounded up to whole cycles).
DEFAULT_MAX_PERMUTATIONS = 1000


@dataclass(frozen=True)
class GTGScorer:
    """Monte-Carlo permutation estimate of the Shapley values, with GTG-Shapley's truncations.

    Parameters
    ----------
    eps_round
        Between-round truncation, absolute in utility units: if
        ``|U(N) - U(empty)| < eps_round`` every score is 0 (2 evaluations).
    eps_trunc
        Within-permutation truncation, relative to the round's gain: once a prefix ``S`` has
        ``|U(N) - U(S)| < eps_trunc * |U(N) - U(empty)|`` the rest of the permutation gains 0.
        Larger saves evaluations and biases the estimate towards early positions.
    convergence_tol
        Checked after each cycle: stop once every score's estimated standard error (from the
        spread of its gains at each position) is below ``convergence_tol`` times the mean
        absolute score. Relative to the scores' scale rather than to each score, so that
        participants scoring about 0 (free-riders) do not keep the sampling going forever.
    max_permutations
        Upper bound on permutations; sampling stops after the cycle that reaches it, so at
        least one cycle (``2n`` permutations) always runs.

    Raises
    ------
    ScoringError
        For a parameter out of range.
    """

    method: ClassVar[str] = "gtg"

    eps_round: float = DEFAULT_EPS_ROUND
    eps_trunc: float = DEFAULT_EPS_TRUNC
    convergence_tol: float = DEFAULT_CONVERGENCE_TOL
    max_permutations: int = DEFAULT_MAX_PERMUTATIONS

    def __post_init__(self) -> None:
        for name in ("eps_round", "eps_trunc", "convergence_tol"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ScoringError(
                    f"gtg parameter {name} must be a finite number >= 0, got {value!r}"
                )
        for name in ("max_permutations",):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ScoringError(f"gtg parameter {name} must be an integer >= 1, got {value!r}")

    def params(self) -> dict[str, ParamValue]:
        """The parameters, by name, as recorded on chain."""
        return {
            "eps_round": self.eps_round,
            "eps_trunc": self.eps_trunc,
            "convergence_tol": self.convergence_tol,
            "max_permutations": self.max_permutations,
        }

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
        """Estimate the round's Shapley values.

        ``deltas``, when given, only serve to find interchangeable participants (identical
        updates and example counts), whose estimates are averaged.

        Parameters
        ----------
        seed
            Seeds ``numpy.random.default_rng``, the only source of randomness: the same
            utility values and seed give the same scores.

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
        empty_value = cached(frozenset())
        full_value = cached(everyone)
        gain = full_value - empty_value
        if abs(gain) < self.eps_round:
            return self._result([0.0] * n, cached)
        threshold = self.eps_trunc * abs(gain)
        rng = np.random.default_rng(seed)
        # Marginal gains by participant and position: sums and sums of squares. Every cycle puts
        # every participant at every position twice, so the plain mean over permutations is the
        # position-stratified mean, and the per-position spread gives its standard error.
        sums = np.zeros((n, n), dtype=np.float64)
        squares = np.zeros((n, n), dtype=np.float64)
        permutations = 0
        while True:
            cycle = [int(p) for p in rng.permutation(n)]
            for step in (1, -1):
                for start in range(n):
                    order = [cycle[(start + step * k) % n] for k in range(n)]
                    previous = empty_value
                    coalition: frozenset[int] = frozenset()
                    for position, player in enumerate(order):
                        if abs(full_value - previous) < threshold:
                            break  # the rest of this permutation gains 0: sums unchanged
                        coalition = coalition | {player}
                        value = cached(coalition)
                        sums[player, position] += value - previous
                        squares[player, position] += (value - previous) ** 2
                        previous = value
                    permutations += 1
            if permutations >= self.max_permutations or self._converged(
                sums, squares, permutations // n
            ):
                break
        estimate = sums.sum(axis=1) / permutations
        return self._result(_symmetrized(estimate, num_examples, deltas).tolist(), cached)

    def _converged(
        self, sums: NDArray[np.float64], squares: NDArray[np.float64], samples: int
    ) -> bool:
        """Whether every score's standard error is below ``convergence_tol`` of the scale."""
        n = sums.shape[0]
        scores = sums.sum(axis=1) / (samples * n)
        scale = float(np.mean(np.abs(scores)))
        if scale == 0.0:
            return True  # every marginal so far was truncated to 0: nothing left to learn
        # Sample variance of each participant's gains at each position (samples per cell).
        variance = np.maximum(squares - sums**2 / samples, 0.0) / (samples - 1)
        standard_error = np.sqrt(variance.sum(axis=1) / samples) / n
        return float(standard_error.max()) < self.convergence_tol * scale

    def _result(self, scores: list[float], cached: CachedUtility) -> RoundScores:
        return RoundScores(
            tuple(scores), evaluations=cached.evaluations, method=self.method, params=self.params()
        )


def _symmetrized(
    estimate: NDArray[np.float64],
    num_examples: Sequence[int],
    deltas: Sequence[NDArray[np.floating]] | None,
) -> NDArray[np.float64]:
    """Each score averaged over the participants interchangeable with it (none without deltas)."""
    if deltas is None:
        return estimate
    groups: dict[tuple[int, bytes], list[int]] = {}
    for index, (count, delta) in enumerate(zip(num_examples, deltas, strict=True)):
        digest = hashlib.sha256(np.ascontiguousarray(delta).tobytes()).digest()
        groups.setdefault((count, digest), []).append(index)
    result = estimate.copy()
    for members in groups.values():
        result[members] = estimate[members].mean()
    return result
