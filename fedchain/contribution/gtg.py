"""``gtg``: a truncated Monte-Carlo Shapley estimate in the style of GTG-Shapley.

GTG-Shapley (Liu, Chen, Yu, Liu and Cui, "GTG-Shapley: Efficient and Accurate Participant
Contribution Evaluation in Federated Learning", ACM TIST 13(4), 2022; reference implementation
github.com/liuzelei13/GTG-Shapley, compared in docs/contribution.md) rebuilds coalition models from
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

Positions 0 and 1 are not sampled but computed exactly (rounds of at most ``exact_pairs``
participants): joining no one is ``U({i}) - U(empty)``, joining one other participant is the
mean of ``U({i, j}) - U({j})`` over every ``j``, ``n (n + 1) / 2`` evaluations in all. On a
50-participant round of the issue 18 command, position 1 held half of the sampled estimate's
variance and positions 2 to 7 another 43 % (position 0 has none: it is one coalition), while
positions 16 and later held about 1 %: so the early positions are exact and the late ones are
what within-permutation truncation drops. The permutation walks reuse the cached singles and
pairs, so their first two steps cost nothing.

When the round's aggregation is the example-weighted mean (FedAvg, FedProx), the utility walks
each permutation adding one update per prefix (:mod:`fedchain.contribution.coalition_models`)
instead of aggregating every coalition from scratch.

A control variate, when the utility offers its second-order expansion ``g`` (minus the
holdout loss of a weighted mean of updates: :class:`fedchain.contribution.coalition_models.
QuadraticSurrogate`): Shapley values are linear in the game, so the estimate is ``g``'s Shapley
values, estimated over ``surrogate_cycles`` cycles at a few additions per coalition, plus the
sampled Shapley values of ``U - g``. On a 50-participant round the residual's marginal gains had
0.2 % of the utility's variance, so one cycle estimates the scores about as closely as 40 cycles
of plain sampling would (docs/contribution.md, "The control variate"). Unbiased whatever ``g``
is; truncated walks take the rest of a permutation's residual as 0.

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
    PrefixUtility,
    RoundScores,
    ScoringError,
    Utility,
    check_round,
)
from fedchain.contribution.coalition_models import QuadraticSurrogate

__all__ = [
    "DEFAULT_CONTROL_VARIATE",
    "DEFAULT_CONVERGENCE_TOL",
    "DEFAULT_CV_CONVERGENCE_TOL",
    "DEFAULT_CV_MAX_PERMUTATIONS",
    "DEFAULT_EPS_ROUND",
    "DEFAULT_EPS_TRUNC",
    "DEFAULT_EXACT_PAIRS",
    "DEFAULT_MAX_PERMUTATIONS",
    "DEFAULT_SURROGATE_CYCLES",
    "DEFAULT_WALK_DEPTH",
    "EARLIER_DEFAULTS",
    "GTGScorer",
]

# Defaults, tuned on real rounds of 8 participants (tests/unit/contribution/test_real_round.py)
# and of 50 (scripts/bench_scoring.py --at-scale); docs/contribution.md compares them with the
# paper's.
#: Absolute, in utility units (e.g. holdout loss): a round that moved less made no progress.
DEFAULT_EPS_ROUND = 1e-6
#: Relative to the round's gain |U(N) - U(empty)|.
DEFAULT_EPS_TRUNC = 0.01
#: Converged once every score's estimated standard error is below this share of the mean
#: absolute score.
DEFAULT_CONVERGENCE_TOL = 0.1
#: Upper bound on sampled permutations (rounded up to whole cycles): two cycles at 50
#: participants, about 5,500 holdout evaluations, the most that fit 5 s of scoring there.
DEFAULT_MAX_PERMUTATIONS = 200
#: Rounds of at most this many participants get positions 0 and 1 exactly (n (n + 1) / 2
#: evaluations: 136 at 16 participants). Under the control variate those positions carry
#: little of the residual's variance, so larger rounds sample them instead.
DEFAULT_EXACT_PAIRS = 16
#: 1: estimate the Shapley values of the utility's second-order expansion to this many
#: guided cycles, and sample only the utility's difference from it (the control variate).
DEFAULT_CONTROL_VARIATE = 1
DEFAULT_SURROGATE_CYCLES = 2000
#: Under the control variate, walks stop after this many positions (0: never): the residual
#: is close to 0 for coalitions of many members, whose models are close to the expansion's
#: centre, so later positions are not sampled (their residual counted 0) and a cycle costs
#: about ``n * walk_depth`` evaluations instead of ``n (n - 1)``.
DEFAULT_WALK_DEPTH = 12
#: Under the control variate: the convergence rule's tolerance and the permutation budget
#: (cycles cost about a fifth of plain ones at 50 participants, so more fit the time).
DEFAULT_CV_CONVERGENCE_TOL = 0.03
DEFAULT_CV_MAX_PERMUTATIONS = 400
#: The defaults before these, newest first. The scoring hash a ledger records commits to the
#: parameters, so an auditor finds among these the ones a round was scored with and recomputes
#: it with them (fedchain.contribution.round.score_round). Scores under defaults older than
#: these (before issue 18's incremental coalitions) came from another algorithm: not recomputable.
EARLIER_DEFAULTS: tuple[dict[str, ParamValue], ...] = (
    # Issue 18's second step (commit dde7d1a): two cycles, no control variate.
    {
        "eps_round": 1e-6,
        "eps_trunc": 0.01,
        "convergence_tol": 0.1,
        "max_permutations": 200,
        "exact_pairs": 64,
        "control_variate": 0,
    },
    # Issue 18's first step (commit 3450675): one cycle at 50 participants.
    {
        "eps_round": 1e-6,
        "eps_trunc": 0.01,
        "convergence_tol": 0.1,
        "max_permutations": 100,
        "exact_pairs": 64,
        "control_variate": 0,
    },
)


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
    exact_pairs
        Rounds of at most this many participants get positions 0 and 1 exactly.
    control_variate
        1: when the utility offers a second-order expansion (``surrogate()``, e.g.
        :class:`fedchain.contribution.coalition_models.WeightedMeanUtility` given the
        holdout's curvature), the scores are the expansion's Shapley values, estimated over
        ``surrogate_cycles`` cycles at a few additions per coalition, plus the sampled
        Shapley values of the utility's difference from it. 0, or a utility without one: plain
        sampling. Set 0 for the scores before issue 18's second step.
    surrogate_cycles
        Guided cycles of the expansion's estimate.
    walk_depth
        Under the control variate, the positions each walk samples (0: all); the residual of
        later positions is counted 0.
    cv_convergence_tol, cv_max_permutations
        Under the control variate, ``convergence_tol`` and ``max_permutations``' roles.

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
    exact_pairs: int = DEFAULT_EXACT_PAIRS
    control_variate: int = DEFAULT_CONTROL_VARIATE
    surrogate_cycles: int = DEFAULT_SURROGATE_CYCLES
    walk_depth: int = DEFAULT_WALK_DEPTH
    cv_convergence_tol: float = DEFAULT_CV_CONVERGENCE_TOL
    cv_max_permutations: int = DEFAULT_CV_MAX_PERMUTATIONS

    def __post_init__(self) -> None:
        for name in ("eps_round", "eps_trunc", "convergence_tol", "cv_convergence_tol"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ScoringError(
                    f"gtg parameter {name} must be a finite number >= 0, got {value!r}"
                )
        limits = (  # name, least, most (None: unbounded)
            ("max_permutations", 1, None),
            ("exact_pairs", 0, None),
            ("control_variate", 0, 1),
            ("surrogate_cycles", 1, None),
            ("walk_depth", 0, None),
            ("cv_max_permutations", 1, None),
        )
        for name, least, most in limits:
            value = getattr(self, name)
            top = value if most is None else most
            if not (isinstance(value, int) and least <= value <= top):
                bound = f">= {least}" if most is None else f"from {least} to {most}"
                raise ScoringError(
                    f"gtg parameter {name} must be an integer {bound}, got {value!r}"
                )

    def params(self) -> dict[str, ParamValue]:
        """The parameters, by name, as recorded on chain. Without the control variate, the
        record scores made before it had (so their scoring hashes still match)."""
        params: dict[str, ParamValue] = {
            "eps_round": self.eps_round,
            "eps_trunc": self.eps_trunc,
            "convergence_tol": self.convergence_tol,
            "max_permutations": self.max_permutations,
            "exact_pairs": self.exact_pairs,
        }
        if self.control_variate:
            params["control_variate"] = self.control_variate
            params["surrogate_cycles"] = self.surrogate_cycles
            params["walk_depth"] = self.walk_depth
            params["cv_convergence_tol"] = self.cv_convergence_tol
            params["cv_max_permutations"] = self.cv_max_permutations
        return params

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
        # A utility that walks prefixes itself (one model addition per step) is used as is.
        cached = utility if isinstance(utility, PrefixUtility) else CachedUtility(utility)
        if n == 0:
            return RoundScores((), evaluations=0, method=self.method, params=self.params())
        everyone = frozenset(range(n))
        empty_value = cached(frozenset())
        full_value = cached(everyone)
        gain = full_value - empty_value
        if abs(gain) < self.eps_round:
            return self._result([0.0] * n, cached)
        threshold = self.eps_trunc * abs(gain)
        surrogate = self._surrogate(cached)
        # Without a surrogate it is 0 everywhere: the plain estimate.
        base = (
            np.zeros(n)
            if surrogate is None
            else surrogate.shapley(self.surrogate_cycles, np.random.default_rng([seed, 1]))
        )
        exact = _first_strata(cached, n, empty_value) if n <= self.exact_pairs else None
        if exact is not None and surrogate is not None:
            exact = exact - surrogate.first_strata()  # the residual's, exactly
        depth = n if surrogate is None or not self.walk_depth else min(n, self.walk_depth)
        budget, tolerance = (
            (self.max_permutations, self.convergence_tol)
            if surrogate is None
            else (self.cv_max_permutations, self.cv_convergence_tol)
        )
        rng = np.random.default_rng(seed)
        # Marginal gains (of the utility less the surrogate, if any) by participant and
        # position: sums and sums of squares. Every cycle puts every participant at every
        # position twice, so the plain mean over permutations is the position-stratified mean,
        # and the per-position spread gives its standard error.
        sums = np.zeros((n, n), dtype=np.float64)
        squares = np.zeros((n, n), dtype=np.float64)
        permutations = 0
        while True:
            cycle = [int(p) for p in rng.permutation(n)]
            for step in (1, -1):
                for start in range(n):
                    order = [cycle[(start + step * k) % n] for k in range(depth)]
                    control = None if surrogate is None else surrogate.prefixes(order)
                    bounds = (empty_value, full_value, threshold)
                    self._walk(cached, order, bounds, (sums, squares), control)
                    permutations += 1
            if exact is not None:  # positions 0 and 1 known exactly: no sampling error there
                sums[:, :2] = exact * (permutations // n)
                squares[:, :2] = exact**2 * (permutations // n)
            if permutations >= budget or self._converged(
                sums, squares, permutations // n, base, tolerance
            ):
                break
        estimate = base + sums.sum(axis=1) / permutations
        return self._result(_symmetrized(estimate, num_examples, deltas).tolist(), cached)

    def _surrogate(self, cached: PrefixUtility) -> QuadraticSurrogate | None:
        """The utility's second-order expansion when the control variate is on and it has
        one."""
        if not self.control_variate:
            return None
        offer = getattr(cached, "surrogate", None)
        return None if offer is None else offer()

    @staticmethod
    def _walk(
        cached: PrefixUtility,
        order: Sequence[int],
        bounds: tuple[float, float, float],
        moments: tuple[NDArray[np.float64], NDArray[np.float64]],
        control: NDArray[np.float64] | None = None,
    ) -> None:
        """Add one permutation's marginal gains, truncated once a prefix is within the
        threshold of ``U(N)`` (``bounds``: ``U(empty)``, ``U(N)``, threshold). With
        ``control`` (the surrogate's value of each prefix), the gains are the utility's less
        the surrogate's; truncated, the rest of the permutation gains what the surrogate
        gains."""
        previous, full_value, threshold = bounds
        sums, squares = moments
        before = previous  # the surrogate's value of the previous prefix (empty: the same)
        prefixes = cached.prefixes(order)
        try:
            for position, player in enumerate(order):
                if abs(full_value - previous) < threshold:
                    break  # the rest of this permutation adds 0 to the sums
                value = next(prefixes)
                gain = value - previous
                if control is not None:
                    gain -= control[position] - before
                    before = float(control[position])
                sums[player, position] += gain
                squares[player, position] += gain**2
                previous = value
        finally:
            close = getattr(prefixes, "close", None)
            if close is not None:
                close()

    def _converged(
        self,
        sums: NDArray[np.float64],
        squares: NDArray[np.float64],
        samples: int,
        base: NDArray[np.float64],
        tolerance: float,
    ) -> bool:
        """Whether every score's standard error is below ``convergence_tol`` of the scale
        (``base``: the surrogate's Shapley values the sampled residual adds to)."""
        n = sums.shape[0]
        scores = base + sums.sum(axis=1) / (samples * n)
        scale = float(np.mean(np.abs(scores)))
        if scale == 0.0:
            return True  # every marginal so far was truncated to 0: nothing left to learn
        # Sample variance of each participant's gains at each position (samples per cell).
        variance = np.maximum(squares - sums**2 / samples, 0.0) / (samples - 1)
        standard_error = np.sqrt(variance.sum(axis=1) / samples) / n
        return float(standard_error.max()) < tolerance * scale

    def _result(self, scores: list[float], cached: PrefixUtility) -> RoundScores:
        return RoundScores(
            tuple(scores), evaluations=cached.evaluations, method=self.method, params=self.params()
        )


def _first_strata(cached: PrefixUtility, n: int, empty_value: float) -> NDArray[np.float64]:
    """Each participant's mean marginal gain at positions 0 and 1, exactly.

    Column 0: joining no one, ``U({i}) - U(empty)`` (``n`` evaluations); column 1: joining one
    other participant, the mean over ``j`` of ``U({i, j}) - U({j})`` (``n (n - 1) / 2``
    evaluations, 1,225 at 50 participants). Sampled, position 1 held half of the estimate's
    variance on a 50-participant round (docs/contribution.md).
    """
    singles = np.array([next(iter(cached.prefixes((i,)))) for i in range(n)], dtype=np.float64)
    strata = np.zeros((n, 2), dtype=np.float64)
    strata[:, 0] = singles - empty_value
    if n < 2:
        return strata
    for i in range(n):
        for j in range(i + 1, n):
            pair = list(cached.prefixes((i, j)))[1]
            strata[i, 1] += pair - singles[j]
            strata[j, 1] += pair - singles[i]
    strata[:, 1] /= n - 1
    return strata


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
