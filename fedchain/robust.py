"""What the robust aggregation rules tolerate: attackers ``f`` among ``n`` sampled updates.

Pure arithmetic on the settings, no Flower: settings validation and the strategy factory share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedchain.attacks import parse_attack
from fedchain.errors import SettingsError

if TYPE_CHECKING:
    from fedchain.settings import RunSettings

__all__ = [
    "ROBUST_STRATEGIES",
    "byzantine_count",
    "check_tolerance",
    "sampled_count",
    "trim_fraction",
]

#: What each robust rule needs: ``n >= a * f + b`` sampled updates to tolerate ``f`` attackers
#: (median and trimmed mean: a majority of honest updates; Krum/MultiKrum: ``n > 2f + 2``,
#: Blanchard et al. 2017; Bulyan: ``n >= 4f + 3``, El Mhamdi et al. 2018).
_TOLERANCE: dict[str, tuple[int, int]] = {
    "fedmedian": (2, 1),
    "fedtrimmedavg": (2, 1),
    "krum": (2, 3),
    "multikrum": (2, 3),
    "bulyan": (4, 3),
}
ROBUST_STRATEGIES = tuple(_TOLERANCE)
#: FedTrimmedAvg cuts ``int(beta * n)`` updates off each tail: a quarter of an update above
#: ``f / n`` makes that exactly ``f`` whatever the float rounding of ``f / n``.
_TRIM_MARGIN = 0.25


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
    """Refuse a robust strategy asked to tolerate more attackers than its rule allows.

    Raises
    ------
    SettingsError
        If ``n`` sampled clients are too few for ``f`` attackers (e.g. Bulyan needs
        ``n >= 4f + 3``); the message says what to change.
    """
    rule = _TOLERANCE.get(settings.strategy)
    if rule is None:
        return
    sampled = sampled_count(settings, num_nodes or settings.num_clients)
    f = byzantine_count(settings, sampled)
    a, b = rule
    if sampled >= a * f + b:
        return
    source = (
        f"byzantine={f}"
        if settings.byzantine >= 0
        else f"byzantine={f} (derived from attack {settings.attack})"
    )
    most = max(0, (sampled - b) // a)
    raise SettingsError(
        f"{settings.strategy} tolerates f attackers among n sampled clients only if "
        f"n >= {a}f + {b}: {source} needs n >= {a * f + b}, this run samples {sampled}. "
        f"Sample more clients, set byzantine to at most {most}, or choose a rule that "
        "tolerates more: fedmedian (n >= 2f + 1) or multikrum (n >= 2f + 3)"
    )
