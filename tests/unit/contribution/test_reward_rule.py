"""The reward rule on whole rounds (score_round): copies share one reward, discarded updates earn
nothing, a round with a tiny gain pays a tiny amount, and the rule is under the scoring hash."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fedchain.contribution.duplicates import duplicate_groups
from fedchain.contribution.rewards import RewardRule, split_budget, to_fixed_point
from fedchain.contribution.round import RoundScoring, score_round, weighted_mean

BUDGET = 10**6
RULE = RewardRule(full_gain=0.01)
TARGET = np.array([1.0, -1.0, 0.5, 2.0])
Weights = dict[str, np.ndarray[Any, Any]]


def _round(
    updates: Sequence[np.ndarray[Any, Any]],
    *,
    method: str = "shapley",
    rule: RewardRule | None = RULE,
    weights: Sequence[float] | None = None,
    parent: np.ndarray[Any, Any] | None = None,
    examples: Sequence[int] | None = None,
) -> RoundScoring:
    """A round whose aggregation is the example-weighted mean and whose loss is the squared
    distance to TARGET; participant ``i`` is address ``0x0i``."""
    models: list[Weights] = [{"w": np.asarray(u, dtype=np.float64)} for u in updates]
    counts = list(examples or [10] * len(models))

    def aggregate(indices: Sequence[int]) -> Weights:
        return weighted_mean([models[i] for i in indices], [counts[i] for i in indices])

    return score_round(
        method=method,
        addresses=[f"0x{i:02d}" for i in range(len(models))],
        updates=models,
        examples=counts,
        parent={"w": np.zeros(4) if parent is None else parent},
        global_model=aggregate(range(len(models))),
        aggregate=aggregate,
        loss=lambda model: float(np.sum((model["w"] - TARGET) ** 2)),
        budget=BUDGET,
        seed=3,
        holdout_hash="0x" + "11" * 32,
        rule=rule,
        update_weights=weights,
    )


def _honest(count: int = 3) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    return [TARGET * 0.5 + rng.normal(scale=0.3, size=4) for _ in range(count)]


SYBIL = TARGET * 0.8 + np.array([0.1, -0.2, 0.05, 0.1])  # a useful update: it earns


@pytest.mark.parametrize("method", ["shapley", "gtg", "loo", "data-size"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_k_copies_earn_no_more_together_than_one_copy_alone(method: str, k: int) -> None:
    # Prepare
    honest = _honest()
    # Execute
    alone = _round([*honest, SYBIL], method=method)
    copies = _round([*honest, *[SYBIL] * k], method=method)
    # Assert: the copies share the one copy's reward; nobody else's changes
    sybils = [f"0x{i:02d}" for i in range(3, 3 + k)]
    assert alone.rewards["0x03"] > 0
    assert sum(copies.rewards[s] for s in sybils) <= alone.rewards["0x03"]
    assert all(copies.rewards[s] == alone.rewards["0x03"] // k for s in sybils)
    assert [copies.rewards[f"0x{i:02d}"] for i in range(3)] == [
        alone.rewards[f"0x{i:02d}"] for i in range(3)
    ]
    assert copies.duplicate_of == {s: "0x03" for s in sybils[1:]}


def test_copies_under_a_little_noise_share_one_reward_too() -> None:
    # Prepare: each copy moved by a millionth of its length, so none hashes like another
    rng = np.random.default_rng(1)
    noisy = [SYBIL + rng.normal(scale=1e-6, size=4) for _ in range(3)]
    # Execute
    alone = _round([*_honest(), noisy[0]])
    copies = _round([*_honest(), *noisy])
    # Assert
    assert sum(copies.rewards[f"0x{i:02d}"] for i in (3, 4, 5)) <= alone.rewards["0x03"]


def test_without_the_rule_copies_multiply_their_reward() -> None:
    # The rule before issue 15, kept for tasks whose spec predates it: what the rule prevents.
    alone = _round([*_honest(), SYBIL], rule=None)
    copies = _round([*_honest(), *[SYBIL] * 3], rule=None)
    assert sum(copies.rewards[f"0x{i:02d}"] for i in (3, 4, 5)) > 1.5 * alone.rewards["0x03"]


@pytest.mark.parametrize("method", ["loo", "gtg", "data-size", "cosine"])
def test_an_update_the_aggregation_discarded_earns_nothing(method: str) -> None:
    # Prepare: a useful update, weighted 0 by the round's robust rule
    weights = [0.4, 0.3, 0.3, 0.0]
    # Execute
    counted = _round([*_honest(), SYBIL], method=method)
    discarded = _round([*_honest(), SYBIL], method=method, weights=weights)
    # Assert
    assert counted.rewards["0x03"] > 0
    assert discarded.scores["0x03"] == counted.scores["0x03"]  # measured, but not paid
    assert discarded.rewards["0x03"] == 0
    assert discarded.eligible == {"0x00": True, "0x01": True, "0x02": True, "0x03": False}


def test_an_update_weighted_under_a_tenth_of_an_equal_share_earns_nothing() -> None:
    # 4 updates: a tenth of an equal share is 0.025
    below = _round([*_honest(), SYBIL], weights=[0.33, 0.33, 0.32, 0.02])
    above = _round([*_honest(), SYBIL], weights=[0.33, 0.33, 0.31, 0.03])
    assert below.rewards["0x03"] == 0
    assert above.rewards["0x03"] > 0


def test_a_round_with_a_tiny_gain_pays_a_tiny_amount_and_keeps_the_rest() -> None:
    # Prepare: a nearly converged model; honest updates and an attacker each gain a little
    parent = TARGET + 0.01
    rng = np.random.default_rng(2)
    honest = [TARGET + 0.008 + rng.normal(scale=1e-3, size=4) for _ in range(3)]
    attacker = parent - 0.003  # a small step the right way: a tiny positive score
    # Execute
    before = _round([*honest, attacker], method="loo", rule=None, parent=parent)
    after = _round([*honest, attacker], method="loo", parent=parent)
    # Assert: renormalised, the attacker took a large share; per unit of gain, a tiny amount
    fixed = {a: to_fixed_point(s) for a, s in after.scores.items()}
    positive = sum(s for s in fixed.values() if s > 0)
    assert fixed["0x03"] > 0
    assert positive < to_fixed_point(RULE.full_gain)
    assert before.rewards["0x03"] > 0.2 * BUDGET
    assert after.rewards["0x03"] <= BUDGET * fixed["0x03"] // 10_000 + 1
    assert after.rewards["0x03"] < 0.01 * BUDGET
    assert after.unearned == BUDGET - sum(after.rewards.values()) > 0.9 * BUDGET


def test_the_unearned_budget_is_recorded_and_zero_when_the_gain_is_full() -> None:
    full = _round([*_honest(), SYBIL])
    assert sum(full.rewards.values()) + full.unearned == BUDGET
    assert full.unearned == 0


def test_without_the_rule_rewards_are_the_split_of_the_whole_budget() -> None:
    legacy = _round([*_honest(), SYBIL], rule=None, weights=[0.0, 0.0, 0.0, 1.0])
    fixed = {a: to_fixed_point(s) for a, s in legacy.scores.items()}
    assert legacy.rewards == split_budget(fixed, BUDGET)  # the weights are not read
    assert legacy.eligible == {}
    assert legacy.duplicate_of == {}


def test_the_rule_is_under_the_scoring_hash() -> None:
    updates = [*_honest(), SYBIL]
    hashes = {
        _round(updates, rule=None).scoring_hash,
        _round(updates, rule=RULE).scoring_hash,
        _round(updates, rule=RewardRule(full_gain=0.02)).scoring_hash,
    }
    assert len(hashes) == 3
    # A method whose scores are no gain is paid with a full gain of 0, whatever the task's
    assert (
        _round(updates, method="data-size", rule=RULE).scoring_hash
        == _round(updates, method="data-size", rule=RewardRule(full_gain=0.02)).scoring_hash
    )


# ---------------------------------------------------------------------- near-duplicate groups


def test_equal_deltas_form_one_group_led_by_the_first() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 2.0])
    assert duplicate_groups([b, a, b, a, b]) == [0, 1, 0, 1, 0]


def test_deltas_within_both_thresholds_are_grouped_and_outside_either_are_not() -> None:
    base = np.array([3.0, 4.0, 0.0])  # length 5
    turned = np.array([3.0, 4.0, 0.4])  # cosine 0.997: another direction
    longer = base * 1.02  # 2 % longer
    close = base * 1.005 + np.array([0.0, 0.0, 0.1])  # cosine 0.9998, 0.5 % longer
    assert duplicate_groups([base, turned, longer, close]) == [0, 1, 2, 0]


def test_a_chain_of_near_duplicates_is_one_group() -> None:
    steps = [np.array([1.0, 0.0]) * (1 + 0.008 * i) for i in range(4)]  # each 0.8 % longer
    assert duplicate_groups(steps) == [0, 0, 0, 0]


def test_zero_deltas_are_duplicates_of_each_other_only() -> None:
    zero, small = np.zeros(3), np.array([1e-9, 0.0, 0.0])
    assert duplicate_groups([small, zero, zero]) == [0, 1, 1]


def test_honest_like_updates_are_not_grouped() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(size=50)
    deltas = [common + rng.normal(scale=0.3, size=50) for _ in range(10)]  # cosines about 0.9
    assert duplicate_groups(deltas) == list(range(10))
