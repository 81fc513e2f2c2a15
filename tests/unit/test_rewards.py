"""Scores to integer rewards that sum to the budget exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fedchain.contribution.rewards import split_budget, to_fixed_point


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
