"""The contribution methods by name: ``build_scorer("gtg", eps_trunc=0.01)``."""

from __future__ import annotations

from collections.abc import Callable

from fedchain.contribution.base import SCORER_NAMES, ParamValue, Scorer, ScoringError
from fedchain.contribution.cosine import CosineScorer
from fedchain.contribution.data_size import DataSizeScorer
from fedchain.contribution.gtg import EARLIER_DEFAULTS as GTG_EARLIER_DEFAULTS
from fedchain.contribution.gtg import GTGScorer
from fedchain.contribution.loo import LeaveOneOutScorer
from fedchain.contribution.shapley import ShapleyScorer

__all__ = ["SCORERS", "build_scorer", "earlier_params"]

SCORERS: dict[str, Callable[..., Scorer]] = {
    "data-size": DataSizeScorer,
    "loo": LeaveOneOutScorer,
    "shapley": ShapleyScorer,
    "gtg": GTGScorer,
    "cosine": CosineScorer,
}

#: Each method's defaults before its current ones, newest first: rounds scored under them are
#: recomputed with them (see :func:`fedchain.contribution.round.score_round`).
EARLIER_PARAMS: dict[str, tuple[dict[str, ParamValue], ...]] = {"gtg": GTG_EARLIER_DEFAULTS}


def earlier_params(name: str) -> tuple[dict[str, ParamValue], ...]:
    """The earlier default parameters of method ``name``, newest first (none for most)."""
    return EARLIER_PARAMS.get(name.strip().lower(), ())


def build_scorer(name: str, **params: ParamValue) -> Scorer:
    """Build a scorer by name, e.g. ``build_scorer("gtg", eps_trunc=0.01)``.

    Parameters
    ----------
    name
        One of ``SCORER_NAMES``: ``"data-size"``, ``"loo"``, ``"shapley"``, ``"gtg"``,
        ``"cosine"`` (case and surrounding spaces are ignored).
    **params
        Keyword parameters of the method; omitted ones take their documented defaults.

    Raises
    ------
    ScoringError
        For an unknown name (the message lists the valid ones) or a parameter the method does
        not have or rejects.
    """
    key = name.strip().lower()
    factory = SCORERS.get(key)
    if factory is None:
        raise ScoringError(
            f"unknown contribution method {name!r}: use one of {', '.join(SCORER_NAMES)}"
        )
    try:
        return factory(**params)
    except TypeError as error:
        # A misspelled keyword: say which parameters exist instead of a bare TypeError.
        valid = ", ".join(factory().params()) or "none"
        raise ScoringError(
            f"bad parameters {sorted(params)} for contribution method {key!r}: {error}. "
            f"Its parameters are: {valid}"
        ) from None
