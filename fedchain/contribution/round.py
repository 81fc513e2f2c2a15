"""Scoring one round: coalitions rebuilt from the submitted updates, utility on the holdout.

The server calls :func:`score_round` after aggregating; an auditor calls the same function on the
updates from the content store, so the scores recorded on chain can be recomputed exactly.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fedchain.contribution.base import RoundScores, Scorer, Utility
from fedchain.contribution.coalition_models import Curvature, WeightedMeanUtility
from fedchain.contribution.duplicates import duplicate_groups
from fedchain.contribution.registry import build_scorer, earlier_params
from fedchain.contribution.rewards import RewardRule, eligible, pay, split_budget, to_fixed_point

__all__ = [
    "GAIN_METHODS",
    "UTILITY",
    "RoundScoring",
    "score_round",
    "scoring_record",
    "scoring_seed",
    "weighted_mean",
]

Weights = Mapping[str, np.ndarray[Any, Any]]
#: What a coalition is worth: minus the holdout cross-entropy of its aggregated model. Loss is
#: smooth where accuracy moves in steps of one holdout example, so marginal gains are measurable.
UTILITY = "negative-holdout-loss"
#: Methods whose scores are measured gains in utility units, paid per unit of gain under a
#: :class:`~fedchain.contribution.rewards.RewardRule`; the others split the whole budget.
GAIN_METHODS = frozenset({"loo", "shapley", "gtg"})


@dataclass(frozen=True)
class RoundScoring:
    """The scores of a round's accepted participants, their rewards, and what produced them.

    ``unearned`` is the part of the budget no participant earned (it stays in the task's pool);
    ``eligible`` says whose update counted enough in the aggregation to earn, ``duplicate_of``
    names the group representative of each near-duplicate update (absent: none); both are empty
    under the rule before issue 15 (``rule=None``).
    """

    scores: dict[str, float]
    rewards: dict[str, int]
    method: str
    params: dict[str, Any]
    seed: int
    evaluations: int
    seconds: float
    scoring_hash: bytes
    unearned: int = 0
    eligible: dict[str, bool] = field(default_factory=dict)
    duplicate_of: dict[str, str] = field(default_factory=dict)


def scoring_seed(task_seed: int, round_id: int) -> int:
    """The seed of a round's scoring: anyone can derive it from the task spec."""
    return task_seed * 1_000_003 + round_id


def scoring_record(
    method: str,
    params: Mapping[str, Any],
    seed: int,
    holdout_hash: str,
    rule: RewardRule | None = None,
) -> dict[str, Any]:
    """What the on-chain scoring hash commits to (canonical JSON, sorted keys): with a reward
    rule, its parameters too (a round scored before issue 15 keeps its record)."""
    record: dict[str, Any] = {
        "method": method,
        "params": dict(params),
        "seed": seed,
        "holdout_hash": holdout_hash,
        "utility": UTILITY,
    }
    if rule is not None:
        record["rewards"] = _paid_rule(method, rule).params()
    return record


def _paid_rule(method: str, rule: RewardRule) -> RewardRule:
    """The rule as it pays ``method``: a method whose scores are no gain splits the budget."""
    return rule if method in GAIN_METHODS else replace(rule, full_gain=0.0)


def _hash(record: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).digest()


def weighted_mean(
    updates: Sequence[Weights], examples: Sequence[int]
) -> dict[str, np.ndarray[Any, Any]]:
    """FedAvg of ``updates`` weighted by examples (the fallback coalition aggregation)."""
    total = float(sum(examples))
    mean: dict[str, np.ndarray[Any, Any]] = {}
    for name, first in updates[0].items():
        acc = np.zeros(first.shape, dtype=np.float64)
        for update, count in zip(updates, examples, strict=True):
            acc += update[name] * (count / total)
        mean[name] = acc.astype(first.dtype)
    return mean


def _flat(weights: Weights, names: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.concatenate([np.asarray(weights[n], dtype=np.float64).ravel() for n in names])


def score_round(
    *,
    method: str,
    addresses: Sequence[str],
    updates: Sequence[Weights],
    examples: Sequence[int],
    parent: Weights,
    global_model: Weights,
    aggregate: Callable[[Sequence[int]], Weights],
    loss: Callable[[Weights], float],
    budget: int,
    seed: int,
    holdout_hash: str,
    rule: RewardRule | None = None,
    update_weights: Sequence[float] | None = None,
    recorded_hash: bytes | None = None,
    curvature: Curvature | None = None,
) -> RoundScoring:
    """Score the round's accepted participants and pay them out of ``budget``.

    ``recorded_hash`` (an auditor's: the scoring hash a ledger recorded for the round) picks the
    method's parameters: the current defaults, or the earlier defaults whose scoring record
    hashes to it (a round scored before they changed recomputes as it was scored); without it,
    or when none matches, the current defaults.

    ``aggregate(indices)`` rebuilds a coalition's model with the round's aggregation (indices in
    ascending order); the full coalition is ``global_model`` and the empty one ``parent``.
    ``curvature``, ``loss`` to second order (the holdout evaluator's), gives ``gtg`` its
    control variate; the server and the auditor must both give it or neither.

    With a reward ``rule`` (:mod:`fedchain.contribution.rewards`), near-duplicate updates play
    the game as one participant (their group's first member, the others' updates left out of
    every coalition), an update ``update_weights`` (the aggregation's weight of each update,
    ``None`` when unknown) weighted near zero earns nothing, and a method measuring a gain pays
    per unit of it. Without one, the rule before issue 15: every update plays, and the whole
    budget is split over the positive scores.
    """
    start = time.perf_counter()
    names = list(parent)
    base = _flat(parent, names)
    deltas = [_flat(u, names) - base for u in updates]
    if rule is None:
        groups = list(range(len(updates)))
    else:
        groups = duplicate_groups(
            deltas, cosine=rule.duplicate_cosine, norm_tolerance=rule.duplicate_norm_tolerance
        )
    players = sorted(set(groups))  # the representatives, in aggregation order
    scorer = _scorer(method, seed, holdout_hash, rule, recorded_hash)
    result, params = _play(
        scorer,
        players,
        _Round(
            updates, examples, deltas, parent, global_model, aggregate, loss, base, names, curvature
        ),
        seed,
    )
    by_player = dict(zip(players, result.scores, strict=True))
    scores = {a: float(by_player[groups[i]]) for i, a in enumerate(addresses)}
    # The budget is split by the fixed-point scores recorded on chain, so the rewards follow from
    # the recorded scores (and the rule) alone, and a last-bit float difference cannot move a
    # token.
    fixed = {a: to_fixed_point(s) for a, s in scores.items()}
    if rule is None:
        rewards, counted, duplicate_of = split_budget(fixed, budget), {}, {}
    else:
        counts = eligible(update_weights, len(addresses), rule.eligible_share)
        counted = dict(zip(addresses, counts, strict=True))
        representative = {a: addresses[groups[i]] for i, a in enumerate(addresses)}
        duplicate_of = {a: r for a, r in representative.items() if a != r}
        paid = _paid_rule(method, rule)
        rewards = pay(
            fixed,
            budget,
            full_gain=to_fixed_point(paid.full_gain),
            eligible=counted,
            groups=representative,
        )
    return RoundScoring(
        scores=scores,
        rewards=rewards,
        method=method,
        params=params,
        seed=seed,
        evaluations=result.evaluations,
        seconds=time.perf_counter() - start,
        scoring_hash=_hash(scoring_record(method, params, seed, holdout_hash, rule)),
        unearned=budget - sum(rewards.values()),
        eligible=counted,
        duplicate_of=duplicate_of,
    )


@dataclass(frozen=True)
class _Round:
    """What the scorer's game is built from."""

    updates: Sequence[Weights]
    examples: Sequence[int]
    deltas: Sequence[np.ndarray[Any, Any]]
    parent: Weights
    global_model: Weights
    aggregate: Callable[[Sequence[int]], Weights]
    loss: Callable[[Weights], float]
    base: np.ndarray[Any, Any]
    names: Sequence[str]
    curvature: Curvature | None = None


def _scorer(
    method: str,
    seed: int,
    holdout_hash: str,
    rule: RewardRule | None,
    recorded_hash: bytes | None,
) -> Scorer:
    """The scorer with the current defaults, or with the earlier defaults ``recorded_hash``
    commits to."""
    scorer = build_scorer(method)
    if recorded_hash is None:
        return scorer
    for params in (scorer.params(), *earlier_params(method)):
        candidate = build_scorer(method, **params)
        # As recorded: the scorer's own params (an earlier default may name one it omits).
        record = scoring_record(method, candidate.params(), seed, holdout_hash, rule)
        if _hash(record) == recorded_hash:
            return candidate
    return scorer  # none matches: the caller reports the differing hash


def _play(
    scorer: Scorer, players: Sequence[int], game: _Round, seed: int
) -> tuple[RoundScores, dict[str, Any]]:
    """Score ``players`` (indices of updates, ascending) in the round's game: a coalition of
    players is worth minus the holdout loss of the model aggregated from their updates alone."""
    everyone = frozenset(range(len(players)))
    full = len(players) == len(game.updates)  # no duplicate left out: the round's own model
    grand = game.global_model if full else game.aggregate(list(players))

    def utility(coalition: frozenset[int]) -> float:
        if not coalition:
            return -game.loss(game.parent)
        if coalition == everyone:
            return -game.loss(grand)
        return -game.loss(game.aggregate([players[i] for i in sorted(coalition)]))

    result: RoundScores = scorer.score(
        len(players),
        _incremental(utility, players, game),
        num_examples=[game.examples[p] for p in players],
        deltas=[game.deltas[p] for p in players],
        aggregate_delta=_flat(grand, game.names) - game.base,
        seed=seed,
    )
    return result, dict(scorer.params())


def _incremental(utility: Utility, players: Sequence[int], game: _Round) -> Utility:
    """``utility`` with prefix walks that add one update per step, when the round's aggregation
    says (``aggregate.weighted_mean``) it is the example-weighted mean and every count is
    positive; else ``utility`` unchanged. Direct evaluations stay ``utility``'s own, so only
    permutation walks (``gtg``) change: ``loo`` and exact ``shapley`` score as before."""
    examples = [int(game.examples[p]) for p in players]
    if not getattr(game.aggregate, "weighted_mean", False) or min(examples, default=0) <= 0:
        return utility
    return WeightedMeanUtility(
        utility,
        updates=[game.updates[p] for p in players],
        examples=examples,
        utility_of=lambda model: -game.loss(model),
        curvature=game.curvature,
    )
