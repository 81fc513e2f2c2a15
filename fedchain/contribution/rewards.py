"""From scores to rewards: integer token amounts for measured, positive contribution only.

The rule (docs/contribution.md, "The reward rule"), for a task whose spec sets a full gain ``G``:

1. *Eligible*: a participant whose update the round's aggregation weighted below a tenth of an
   equal share (``weight < ELIGIBLE_SHARE / n``; the robust rule discarded it, or nearly so) earns
   nothing. A rule that cannot say how much each update counted makes everyone eligible.
2. *One reward per near-duplicate group* (:mod:`fedchain.contribution.duplicates`): the group is
   scored once, as one participant, and its amount is split evenly between its members.
3. *Paid per unit of measured gain*: the round earns ``E = budget * min(1, S / G)`` where ``S`` is
   the sum of the positive scores of the eligible groups; ``E`` is split in proportion to those
   scores, so each group earns about ``budget * s / max(G, S)``. What is not earned
   (``budget - E``, and the tokens an even split between members or an ineligible member leaves)
   stays in the task's pool. Methods whose scores are not a gain (``data-size``, ``cosine``)
   split the whole budget: ``G = 0``.

Everything is computed from the fixed-point scores recorded on chain with exact integer and
rational arithmetic, so anyone recomputes the same amounts on any machine.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from fedchain.contribution.base import ScoringError
from fedchain.contribution.duplicates import DUPLICATE_COSINE, DUPLICATE_NORM_TOLERANCE

__all__ = [
    "ELIGIBLE_SHARE",
    "SCORE_SCALE",
    "RewardRule",
    "earned_budget",
    "eligible",
    "pay",
    "split_budget",
    "to_fixed_point",
]

#: Scores go on chain as fixed-point integers: 1e6 is 1.0.
SCORE_SCALE = 10**6
#: An update weighted below this fraction of an equal share (``1 / n``) earns nothing.
ELIGIBLE_SHARE = 0.1


def to_fixed_point(score: float) -> int:
    """A score as the fixed-point integer recorded on chain."""
    return round(score * SCORE_SCALE)


@dataclass(frozen=True)
class RewardRule:
    """The parameters of the reward rule, recorded under the round's scoring hash.

    Attributes
    ----------
    full_gain
        Measured gain (utility units) that earns the whole budget; 0 splits the whole budget
        whatever the gain (methods whose scores are not a gain).
    eligible_share
        An update weighted below ``eligible_share / n`` earns nothing.
    duplicate_cosine, duplicate_norm_tolerance
        When two updates are near-duplicates (:func:`fedchain.contribution.duplicates
        .duplicate_groups`).
    """

    full_gain: float
    eligible_share: float = ELIGIBLE_SHARE
    duplicate_cosine: float = DUPLICATE_COSINE
    duplicate_norm_tolerance: float = DUPLICATE_NORM_TOLERANCE

    def params(self) -> dict[str, float | int]:
        """The rule as recorded (the full gain in fixed point, as the amounts use it)."""
        return {
            "full_gain": to_fixed_point(self.full_gain),
            "eligible_share": self.eligible_share,
            "duplicate_cosine": self.duplicate_cosine,
            "duplicate_norm_tolerance": self.duplicate_norm_tolerance,
        }


def eligible(weights: Sequence[float] | None, n: int, share: float = ELIGIBLE_SHARE) -> list[bool]:
    """Whether each of ``n`` updates counted enough in the aggregation to earn a reward.

    ``weights`` are the aggregation's normalised weights, one per update (``None``: the rule
    cannot say, and every update is eligible).

    Raises
    ------
    ScoringError
        If ``weights`` does not hold ``n`` weights.
    """
    if weights is None:
        return [True] * n
    if len(weights) != n:
        raise ScoringError(
            f"{len(weights)} aggregation weights for {n} updates: the strategy must give one "
            "weight per reply it aggregated, in the replies' order"
        )
    return [float(w) >= share / n for w in weights]


def earned_budget(positive_total: int, full_gain: int, budget: int) -> int:
    """What a round earns: ``budget * min(1, positive_total / full_gain)``, floored.

    ``positive_total`` and ``full_gain`` are fixed-point; a ``full_gain`` of 0 earns the whole
    budget as soon as any score is positive.
    """
    if positive_total <= 0:
        return 0
    if full_gain <= 0 or positive_total >= full_gain:
        return budget
    return budget * positive_total // full_gain


def pay(
    scores: Mapping[str, int],
    budget: int,
    *,
    full_gain: int,
    eligible: Mapping[str, bool],
    groups: Mapping[str, str],
) -> dict[str, int]:
    """Each participant's reward under the rule (see the module's docstring).

    Parameters
    ----------
    scores
        Fixed-point scores by participant; a group's score is its representative's.
    budget
        The round's budget.
    full_gain
        Fixed-point gain that earns the whole budget (0: the whole budget is split).
    eligible
        Whether each participant's update counted enough in the aggregation.
    groups
        Each participant's group representative (itself when it has no near-duplicate).
    """
    members: dict[str, list[str]] = defaultdict(list)
    for who, representative in groups.items():
        members[representative].append(who)
    positive = {
        rep: scores[rep]
        for rep, group in members.items()
        if scores[rep] > 0 and any(eligible[who] for who in group)
    }
    earned = earned_budget(sum(positive.values()), full_gain, budget)
    by_group = split_budget(positive, earned)
    amounts = dict.fromkeys(scores, 0)
    for rep, amount in by_group.items():
        group = members[rep]
        for who in group:
            if eligible[who]:
                amounts[who] = amount // len(group)  # an even split; the rest stays in the pool
    return amounts


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
