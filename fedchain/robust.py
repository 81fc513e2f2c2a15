"""What the robust aggregation rules tolerate: attackers ``f`` among ``n`` sampled updates.

Pure arithmetic on the settings, no Flower: settings validation and the strategy factory share it.
The rules themselves are in :mod:`fedchain.robust_rules`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedchain.attacks import parse_attack
from fedchain.errors import SettingsError

if TYPE_CHECKING:
    from fedchain.settings import RunSettings

__all__ = [
    "PRE_AGGREGATED",
    "ROBUST_STRATEGIES",
    "PreAggregation",
    "byzantine_count",
    "check_tolerance",
    "parse_pre_aggregation",
    "sampled_count",
    "trim_fraction",
]

#: What each robust rule needs: ``n >= a * f + b`` sampled updates to tolerate ``f`` attackers
#: (median and trimmed mean: a majority of honest updates; Krum/MultiKrum: ``n > 2f + 2``,
#: Blanchard et al. 2017; Bulyan: ``n >= 4f + 3``, El Mhamdi et al. 2018; centered clipping: a
#: majority of honest updates, since its default radius is the median distance to the center,
#: :func:`fedchain.robust_rules.clip_radius`). FLTrust needs no majority (Cao et al. 2021: its
#: trust comes from the server's root data), so it has no entry.
_TOLERANCE: dict[str, tuple[int, int]] = {
    "fedmedian": (2, 1),
    "fedtrimmedavg": (2, 1),
    "krum": (2, 3),
    "multikrum": (2, 3),
    "bulyan": (4, 3),
    "cclip": (2, 1),
}
ROBUST_STRATEGIES = tuple(_TOLERANCE)
#: The rules a pre-aggregation step may feed (fedchain.federation.robust_strategies runs them
#: on the mixed updates).
PRE_AGGREGATED = ("cclip", "krum", "multikrum", "fedmedian", "fedtrimmedavg")
#: FedTrimmedAvg cuts ``int(beta * n)`` updates off each tail: a quarter of an update above
#: ``f / n`` makes that exactly ``f`` whatever the float rounding of ``f / n``.
_TRIM_MARGIN = 0.25
_NNM = "nnm"
_BUCKETING = "bucketing"


@dataclass(frozen=True)
class PreAggregation:
    """A step run on a round's updates before the robust rule: ``nnm`` (nearest-neighbour
    mixing, Allouah et al. 2023) or ``bucketing`` into buckets of ``bucket_size`` (Karimireddy,
    He, Jaggi, ICLR 2022)."""

    kind: str
    bucket_size: int = 0

    def inputs(self, n: int) -> int:
        """How many vectors the rule then sees for ``n`` updates (bucketing: one per bucket)."""
        return math.ceil(n / self.bucket_size) if self.kind == _BUCKETING else n


def parse_pre_aggregation(spec: str) -> PreAggregation | None:
    """``""`` (none), ``"nnm"`` or ``"bucketing:S"`` (buckets of ``S >= 2`` updates).

    Raises
    ------
    SettingsError
        For any other spec; the message lists the accepted ones.
    """
    spec = spec.strip().lower()
    if not spec:
        return None
    if spec == _NNM:
        return PreAggregation(_NNM)
    kind, _, size = spec.partition(":")
    if kind == _BUCKETING and size.isdigit() and int(size) >= 2:
        return PreAggregation(_BUCKETING, int(size))
    raise SettingsError(
        f"pre-aggregation {spec!r} is not one of: '' (none), 'nnm', 'bucketing:S' with a "
        "bucket size S >= 2 (e.g. bucketing:2)"
    )


def trim_fraction(f: int, n: int) -> float:
    """FedTrimmedAvg's ``beta`` that cuts exactly ``f`` updates off each tail of ``n``.

    Flower cuts ``int(beta * m)`` of ``m`` replies, so a fixed ``beta`` cuts fewer when fewer
    reply. Where ``beta < 0.5`` allows, it is the middle of ``[f / (n - 1), (f + 1) / n)``,
    which cuts ``f`` of ``n`` and of ``n - 1`` replies alike: a client that drops out, or the
    coalitions without one participant that leave-one-out scoring rebuilds, still have ``f``
    updates cut off each tail (with ``f / n`` an attacker's noise would stay in those
    coalitions, and leave-one-out would credit the attacker for removing it).
    Otherwise ``(f + 1/4) / n``.
    """
    if n > 1 and f > 0:
        beta = (f / (n - 1) + (f + 1) / n) / 2
        if beta < 0.5 and int(beta * n) == f and int(beta * (n - 1)) == f:
            return beta
    return (f + _TRIM_MARGIN) / n


def sampled_count(settings: RunSettings, num_nodes: int) -> int:
    """How many clients a round samples (Flower's rule: ``fraction_train``, at least the min)."""
    return max(settings.min_train_nodes, int(num_nodes * settings.fraction_train))


def byzantine_count(settings: RunSettings, sampled: int) -> int:
    """The number of attackers ``f`` the robust strategies are set to tolerate.

    ``settings.byzantine`` when it is set (``>= 0``); otherwise (``-1``) derived from the
    simulated attack: ``round(fraction * sampled)``, the attackers among ``sampled`` clients
    (exactly the attackers of the run when every client is sampled), and 0 without an attack.
    """
    if settings.byzantine >= 0:
        return settings.byzantine
    plan = parse_attack(settings.attack)
    return round(plan.fraction * sampled) if plan is not None else 0


def check_tolerance(settings: RunSettings, num_nodes: int | None = None) -> None:
    """Refuse a robust strategy asked to tolerate more attackers than its rule allows, and a
    pre-aggregation step that is malformed, feeds no robust rule, or cannot tolerate them.

    With bucketing the rule sees one vector per bucket, and each attacker may spoil one bucket:
    the rule's requirement applies to the number of buckets. NNM needs ``n >= 2f + 1``
    (Allouah et al. 2023: fewer than half the updates are attackers).

    Raises
    ------
    SettingsError
        If ``n`` sampled clients are too few for ``f`` attackers (e.g. Bulyan needs
        ``n >= 4f + 3``), or the pre-aggregation is refused; the message says what to change.
    """
    pre = parse_pre_aggregation(settings.pre_aggregation)
    if pre is not None and settings.strategy not in PRE_AGGREGATED:
        raise SettingsError(
            f"pre-aggregation {settings.pre_aggregation} feeds a robust rule, and "
            f"{settings.strategy} is not one it feeds: choose one of {', '.join(PRE_AGGREGATED)}, "
            "or drop pre-aggregation"
        )
    rule = _TOLERANCE.get(settings.strategy)
    if rule is None and pre is None:
        return
    sampled = sampled_count(settings, num_nodes or settings.num_clients)
    f = byzantine_count(settings, sampled)
    if pre is not None and pre.kind == _NNM:
        _require(settings, "nnm", (2, 1), f, sampled)
    if rule is not None:
        buckets = pre is not None and pre.kind == _BUCKETING
        _require(settings, settings.strategy, rule, f, sampled, buckets=pre if buckets else None)


def _require(
    settings: RunSettings,
    what: str,
    rule: tuple[int, int],
    f: int,
    sampled: int,
    *,
    buckets: PreAggregation | None = None,
) -> None:
    """Refuse unless the ``n`` vectors ``what`` sees (the sampled updates, or their buckets)
    satisfy ``n >= a f + b``, naming what to change."""
    a, b = rule
    n = buckets.inputs(sampled) if buckets is not None else sampled
    if n >= a * f + b:
        return
    source = (
        f"byzantine={f}"
        if settings.byzantine >= 0
        else f"byzantine={f} (derived from attack={settings.attack})"
    )
    most = max(0, (n - b) // a)
    among, has = "sampled clients", f"this run samples {n}"
    if buckets is not None:
        among = "buckets"
        has = f"this run's {sampled} sampled clients make {n} buckets of {buckets.bucket_size}"
    raise SettingsError(
        f"{what} tolerates f attackers among n {among} only if n >= {a}f + {b}: {source} "
        f"needs n >= {a * f + b}, {has}. Sample more clients, set byzantine={most} or "
        "lower, or choose a rule that tolerates more: fedmedian (n >= 2f + 1) or multikrum "
        "(n >= 2f + 3)" + (", or smaller buckets" if buckets is not None else "")
    )
