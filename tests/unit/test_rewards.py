"""Scores to integer rewards: the split of the whole budget, and the reward rule of issue 15
(eligibility, one reward per group of copies, payment per unit of measured gain)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedchain.contribution.base import ScoringError
from fedchain.contribution.rewards import (
    earned_budget,
    eligible,
    pay,
    split_budget,
    to_fixed_point,
)


def test_split_is_proportional_and_exact() -> None:
    amounts = split_budget({"0xa": 1.0, "0xb": 1.0, "0xc": 1.0}, 100)
    assert sorted(amounts.values()) == [33, 33, 34]
    assert sum(amounts.values()) == 100


def test_non_positive_scores_earn_nothing() -> None:
    amounts = split_budget({"0xa": 3.0, "0xb": -1.0, "0xc": 0.0}, 90)
    assert amounts == {"0xa": 90, "0xb": 0, "0xc": 0}


def test_no_positive_score_pays_nobody() -> None:
    assert split_budget({"0xa": -1.0, "0xb": 0.0}, 90) == {"0xa": 0, "0xb": 0}


def test_remainders_go_deterministically_by_fraction_then_address() -> None:
    first = split_budget({"0xb": 1.0, "0xa": 1.0}, 3)
    again = split_budget({"0xa": 1.0, "0xb": 1.0}, 3)
    assert first == again == {"0xa": 2, "0xb": 1}


@given(
    st.dictionaries(
        st.text(alphabet="0123456789abcdef", min_size=1, max_size=6),
        st.floats(min_value=-10, max_value=10, allow_nan=False),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=0, max_value=10**24),
)
def test_amounts_sum_to_the_budget_when_any_score_is_positive(
    scores: dict[str, float], budget: int
) -> None:
    amounts = split_budget(scores, budget)
    positive = any(s > 0 for s in scores.values())
    assert sum(amounts.values()) == (budget if positive else 0)
    assert all(a >= 0 for a in amounts.values())
    assert all(amounts[w] == 0 for w, s in scores.items() if s <= 0)


def test_scores_are_fixed_point_millionths() -> None:
    assert to_fixed_point(0.25) == 250_000
    assert to_fixed_point(-0.5) == -500_000


# ---------------------------------------------------------------------- the reward rule (issue 15)

BUDGET = 10**6
FULL_GAIN = 10_000  # 0.01 in fixed point


def _pay(
    scores: dict[str, int],
    *,
    full_gain: int = FULL_GAIN,
    ineligible: frozenset[str] = frozenset(),
    groups: dict[str, str] | None = None,
) -> dict[str, int]:
    return pay(
        scores,
        BUDGET,
        full_gain=full_gain,
        eligible={who: who not in ineligible for who in scores},
        groups=groups or {who: who for who in scores},
    )


def test_a_tiny_positive_score_earns_a_tiny_amount_when_honest_gains_are_tiny() -> None:
    # Prepare: a nearly converged round; honest gains of 0.00005 each, the attacker 0.0001
    scores = {"0xh1": 50, "0xh2": 50, "0xatt": 100}
    # Execute
    before = split_budget(scores, BUDGET)
    after = _pay(scores)
    # Assert: renormalised, the attacker took half the budget; per unit of gain, 1 %
    assert before["0xatt"] == BUDGET // 2
    assert after == {"0xh1": 5_000, "0xh2": 5_000, "0xatt": 10_000}
    assert sum(after.values()) == BUDGET * 200 // FULL_GAIN  # the rest stays in the pool


def test_a_round_that_gained_the_full_gain_or_more_pays_the_whole_budget_as_before() -> None:
    scores = {"0xa": 30_000, "0xb": 10_000, "0xc": -5_000}
    assert (
        _pay(scores) == split_budget(scores, BUDGET) == {"0xa": 750_000, "0xb": 250_000, "0xc": 0}
    )


def test_a_full_gain_of_zero_splits_the_whole_budget_whatever_the_gain() -> None:
    assert _pay({"0xa": 1, "0xb": 3}, full_gain=0) == {"0xa": 250_000, "0xb": 750_000}


def test_an_ineligible_participant_earns_nothing_and_does_not_dilute_the_others() -> None:
    amounts = _pay({"0xa": 20_000, "0xdiscarded": 20_000}, ineligible=frozenset({"0xdiscarded"}))
    assert amounts == {"0xa": BUDGET, "0xdiscarded": 0}


def test_a_group_of_copies_shares_the_reward_of_one() -> None:
    # Prepare: three keys sending one update, scored once through their representative 0xs1
    scores = {"0xh": 6_000, "0xs1": 4_000, "0xs2": 4_000, "0xs3": 4_000}
    groups = {"0xh": "0xh", "0xs1": "0xs1", "0xs2": "0xs1", "0xs3": "0xs1"}
    # Execute
    together = _pay(scores, groups=groups)
    alone = _pay({"0xh": 6_000, "0xs1": 4_000})
    # Assert
    assert together["0xh"] == alone["0xh"] == 600_000
    assert [together[s] for s in ("0xs1", "0xs2", "0xs3")] == [133_333] * 3
    assert sum(together[s] for s in ("0xs1", "0xs2", "0xs3")) <= alone["0xs1"]


def test_a_copy_the_aggregation_discarded_loses_its_share_of_the_group() -> None:
    groups = {"0xs1": "0xs1", "0xs2": "0xs1"}
    amounts = _pay({"0xs1": 10_000, "0xs2": 10_000}, groups=groups, ineligible=frozenset({"0xs2"}))
    assert amounts == {"0xs1": BUDGET // 2, "0xs2": 0}


@pytest.mark.parametrize(
    ("total", "earned"),
    [(0, 0), (-5, 0), (1, 100), (5_000, BUDGET // 2), (10_000, BUDGET), (10**9, BUDGET)],
)
def test_a_round_earns_the_budget_in_proportion_to_its_gain_up_to_the_full_gain(
    total: int, earned: int
) -> None:
    assert earned_budget(total, FULL_GAIN, BUDGET) == earned


@given(
    st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**24),
)
def test_amounts_never_exceed_what_the_gain_earns(
    values: list[int], full_gain: int, budget: int
) -> None:
    scores = {f"0x{i:02x}": s for i, s in enumerate(values)}
    amounts = pay(
        scores,
        budget,
        full_gain=full_gain,
        eligible=dict.fromkeys(scores, True),
        groups={w: w for w in scores},
    )
    positive = sum(s for s in values if s > 0)
    assert sum(amounts.values()) == earned_budget(positive, full_gain, budget) <= budget
    assert all(amounts[w] == 0 for w, s in scores.items() if s <= 0)


def test_every_update_is_eligible_when_the_strategy_cannot_say() -> None:
    assert eligible(None, 3) == [True, True, True]


def test_an_update_weighted_under_a_tenth_of_an_equal_share_is_ineligible() -> None:
    # 4 updates: an equal share is 0.25, a tenth of it 0.025
    assert eligible([0.0, 0.024, 0.026, 0.95], 4) == [False, False, True, True]


def test_weights_that_do_not_match_the_updates_are_refused() -> None:
    with pytest.raises(ScoringError, match="one weight per reply"):
        eligible([0.5, 0.5], 3)
