"""``data-size``: each participant's share of the round's training examples (the baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from fedchain.contribution.base import ParamValue, RoundScores, Utility, check_round

__all__ = ["DataSizeScorer"]


@dataclass(frozen=True)
class DataSizeScorer:
    """Score = the participant's examples / all examples of the round.

    Needs no holdout and no utility evaluation, and rewards a participant that trains on many
    examples whatever they are worth (and a free-rider that merely claims many): it is the
    baseline the measured methods are compared against. Scores sum to 1, or are all 0 when no
    participant reports an example.
    """

    method: ClassVar[str] = "data-size"

    def params(self) -> dict[str, ParamValue]:
        """No parameters."""
        return {}

    def score(
        self,
        n: int,
        utility: Utility,
        *,
        num_examples: Sequence[int],
        deltas: Sequence[NDArray[np.floating]] | None = None,
        aggregate_delta: NDArray[np.floating] | None = None,
        seed: int = 0,
    ) -> RoundScores:
        """Score the round by example counts; ``utility``, the deltas and ``seed`` are unused.

        Raises
        ------
        ScoringError
            For inconsistent ``num_examples``.
        """
        check_round(n, num_examples)
        total = sum(int(count) for count in num_examples)
        scores = tuple(int(count) / total if total else 0.0 for count in num_examples)
        return RoundScores(scores, evaluations=0, method=self.method, params=self.params())
