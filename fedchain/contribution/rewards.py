"""From scores to rewards: integer token amounts that sum to the round budget exactly."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

__all__ = ["SCORE_SCALE", "split_budget", "to_fixed_point"]

#: Scores go on chain as fixed-point integers: 1e6 is 1.0.
SCORE_SCALE = 10**6


def to_fixed_point(score: float) -> int:
    """A score as the fixed-point integer recorded on chain."""
    return round(score * SCORE_SCALE)


def split_budget(scores: Mapping[str, float], budget: int) -> dict[str, int]:
    """Split ``budget`` in proportion to the positive scores.

    Non-positive scores earn nothing. Amounts are floored, and the remainder goes one token each
    to the largest fractional parts (ties broken by address), so the amounts sum to ``budget``
    exactly; if no score is positive, everyone gets 0. Exact rational arithmetic keeps the split
    the same on every machine.
    """
    positive = {who: Fraction(s) for who, s in scores.items() if s > 0}
    total = sum(positive.values(), Fraction(0))
    amounts = dict.fromkeys(scores, 0)
    if total == 0 or budget == 0:
        return amounts
    shares = {who: s * budget / total for who, s in positive.items()}
    for who, share in shares.items():
        amounts[who] = int(share)  # floor: shares are positive
    remainder = budget - sum(amounts.values())
    by_fraction = sorted(shares, key=lambda who: (-(shares[who] - int(shares[who])), who.lower()))
    for who in by_fraction[:remainder]:
        amounts[who] += 1
    return amounts
