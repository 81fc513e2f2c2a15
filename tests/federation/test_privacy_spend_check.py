"""The server refuses, before relaying, a reply whose signed privacy spend the contract would
skip (issue 17): above the task's cap, or below the participant's recorded spend."""

from __future__ import annotations

import pytest

from fedchain.chain.records import Membership
from fedchain.federation.ledger_strategy import _spend_problem

MEMBER = Membership(1, 0, 0, 100, b"\x00" * 32, epsilon_spent=2_000_000)


@pytest.mark.parametrize(
    ("epsilon", "cap", "expected"),
    [
        (2_000_000, 8_000_000, ""),  # the same spend as last round
        (8_000_000, 8_000_000, ""),  # at the cap
        (8_000_001, 8_000_000, "above the task's cap 8000000"),
        (1_999_999, 8_000_000, "below the 2000000 it has on record"),
        (1, 0, "above the task's cap 0"),  # a task without DP terms
    ],
)
def test_a_spend_the_contract_would_skip_is_refused_with_its_reason(
    epsilon: int, cap: int, expected: str
) -> None:
    # Execute
    problem = _spend_problem(MEMBER, epsilon, cap)

    # Assert
    assert (problem == "") is (expected == "")
    assert expected in problem


def test_without_dp_a_zero_spend_is_accepted() -> None:
    # Execute / Assert
    assert _spend_problem(Membership(1, 0, 0, 100, b"\x00" * 32), 0, 0) == ""
