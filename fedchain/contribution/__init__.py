"""Contribution accounting: scores per participant and the integer rewards they earn."""

from fedchain.contribution.rewards import SCORE_SCALE, split_budget, to_fixed_point

__all__ = ["SCORE_SCALE", "split_budget", "to_fixed_point"]
