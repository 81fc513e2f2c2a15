"""Contribution accounting: scores per participant and the integer rewards they earn."""

from fedchain.contribution.base import (
    SCORER_NAMES,
    CachedUtility,
    RoundScores,
    Scorer,
    ScoringError,
    Utility,
)
from fedchain.contribution.registry import build_scorer
from fedchain.contribution.rewards import SCORE_SCALE, split_budget, to_fixed_point

__all__ = [
    "SCORER_NAMES",
    "SCORE_SCALE",
    "CachedUtility",
    "RoundScores",
    "Scorer",
    "ScoringError",
    "Utility",
    "build_scorer",
    "split_budget",
    "to_fixed_point",
]
