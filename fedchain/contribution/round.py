"""Scoring one round: coalitions rebuilt from the submitted updates, utility on the holdout.

The server calls :func:`score_round` after aggregating; an auditor calls the same function on the
updates from the content store, so the scores recorded on chain can be recomputed exactly.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedchain.contribution.base import RoundScores
from fedchain.contribution.registry import build_scorer
from fedchain.contribution.rewards import split_budget, to_fixed_point

__all__ = [
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


@dataclass(frozen=True)
class RoundScoring:
    """The scores of a round's accepted participants, their rewards, and what produced them."""

    scores: dict[str, float]
    rewards: dict[str, int]
    method: str
    params: dict[str, Any]
    seed: int
    evaluations: int
    seconds: float
    scoring_hash: bytes


def scoring_seed(task_seed: int, round_id: int) -> int:
    """The seed of a round's scoring: anyone can derive it from the task spec."""
    return task_seed * 1_000_003 + round_id


def scoring_record(
    method: str, params: Mapping[str, Any], seed: int, holdout_hash: str
) -> dict[str, Any]:
    """What the on-chain scoring hash commits to (canonical JSON, sorted keys)."""
    return {
        "method": method,
        "params": dict(params),
        "seed": seed,
        "holdout_hash": holdout_hash,
        "utility": UTILITY,
    }


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
) -> RoundScoring:
    """Score the round's accepted participants and split ``budget`` among them.

    ``aggregate(indices)`` rebuilds a coalition's model with the round's aggregation (indices in
    ascending order); the full coalition is ``global_model`` and the empty one ``parent``.
    """
    start = time.perf_counter()
    everyone = frozenset(range(len(updates)))

    def utility(coalition: frozenset[int]) -> float:
        if not coalition:
            return -loss(parent)
        if coalition == everyone:
            return -loss(global_model)
        return -loss(aggregate(sorted(coalition)))

    names = list(parent)
    base = _flat(parent, names)
    deltas = [_flat(u, names) - base for u in updates]
    scorer = build_scorer(method)
    result: RoundScores = scorer.score(
        len(updates),
        utility,
        num_examples=list(examples),
        deltas=deltas,
        aggregate_delta=_flat(global_model, names) - base,
        seed=seed,
    )
    scores = {a: float(s) for a, s in zip(addresses, result.scores, strict=True)}
    params = dict(scorer.params())
    # The budget is split by the fixed-point scores recorded on chain, so the rewards follow from
    # the recorded scores alone, and a last-bit float difference cannot move a token.
    fixed = {a: to_fixed_point(s) for a, s in scores.items()}
    return RoundScoring(
        scores=scores,
        rewards=split_budget(fixed, budget),
        method=method,
        params=params,
        seed=seed,
        evaluations=result.evaluations,
        seconds=time.perf_counter() - start,
        scoring_hash=_hash(scoring_record(method, params, seed, holdout_hash)),
    )
