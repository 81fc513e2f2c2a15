"""The common interface of the contribution scorers: utility, cache, scores, errors, factory.

A round's participants are numbered ``0 .. n-1``. A *coalition* is a ``frozenset`` of those
numbers and its *utility* is the holdout quality of the model rebuilt from the coalition's
updates with the round's aggregation; the empty coalition is the round's parent model (no update
applied). Scorers only see the utility as a function, so this package needs no Flower, no web3 and
no PyTorch: the server (or an auditor) supplies the utility, the scorer decides which coalitions
to evaluate.

Every scorer is deterministic for a seed, so anyone holding the stored updates and the holdout
recomputes the same scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from fedchain.errors import FedchainError

__all__ = [
    "SCORER_NAMES",
    "CachedUtility",
    "Coalition",
    "ParamValue",
    "PrefixUtility",
    "RoundScores",
    "Scorer",
    "ScoringError",
    "Utility",
    "check_round",
]

#: A set of participants, by their index in the round.
Coalition = frozenset[int]
#: The utility of a coalition; the empty coalition is the round's parent model.
Utility = Callable[[Coalition], float]
#: A scorer parameter as recorded on chain.
ParamValue = float | int | str

#: Names accepted by :func:`build_scorer`, in the order they are documented.
SCORER_NAMES = ("data-size", "loo", "shapley", "gtg", "cosine")


class ScoringError(FedchainError, ValueError):
    """Contribution scoring cannot run with these inputs or parameters."""


class CachedUtility:
    """A utility that evaluates each coalition at most once.

    Scorers of one round ask for the same coalitions again and again (a Monte-Carlo estimate
    revisits short prefixes; leave-one-out and Shapley share the grand coalition), and each
    evaluation rebuilds a model and runs the holdout. Create one per round: the cache assumes
    the updates and the holdout do not change.

    Parameters
    ----------
    fn
        The utility to wrap.

    Attributes
    ----------
    evaluations
        Number of distinct coalitions evaluated so far (cache hits are free).
    """

    def __init__(self, fn: Utility) -> None:
        self._fn = fn
        self._values: dict[Coalition, float] = {}

    def __call__(self, coalition: Coalition) -> float:
        """The utility of ``coalition``, evaluated on first use only."""
        key = frozenset(coalition)
        value = self._values.get(key)
        if value is None:
            value = float(self._fn(key))
            self._values[key] = value
        return value

    def prefixes(self, order: Sequence[int]) -> Iterator[float]:
        """The utilities of ``order``'s prefixes, ``{order[0]}``, ``{order[0], order[1]}``, ...

        Lazily: a caller that stops early (a truncated permutation) evaluates no further.
        """
        members: set[int] = set()
        for player in order:
            members.add(player)
            yield self(frozenset(members))

    @property
    def evaluations(self) -> int:
        """Number of distinct coalitions evaluated so far."""
        return len(self._values)


@runtime_checkable
class PrefixUtility(Protocol):
    """A utility that also values the successive prefixes of an order of participants.

    Permutation-based scorers (``gtg``) walk orders prefix by prefix; an implementation that
    knows how coalitions are built (:class:`fedchain.contribution.coalition_models.
    WeightedMeanUtility`: one model addition per prefix) makes each step cheap.
    """

    def __call__(self, coalition: Coalition) -> float:
        """The utility of ``coalition``."""
        ...

    def prefixes(self, order: Sequence[int]) -> Iterator[float]:
        """The utilities of ``order``'s prefixes, lazily, shortest first."""
        ...

    @property
    def evaluations(self) -> int:
        """Distinct coalitions evaluated so far."""
        ...


@dataclass(frozen=True)
class RoundScores:
    """The scores of one round.

    Attributes
    ----------
    scores
        One score per participant, in the round's order. Higher is better; only positive scores
        earn rewards (see :func:`fedchain.contribution.rewards.split_budget`).
    evaluations
        Distinct coalitions whose utility was evaluated (0 for methods that need none).
    method
        The scorer's name, e.g. ``"gtg"``.
    params
        The scorer's parameters (read-only), recorded on chain with the method and the seed.
    """

    scores: tuple[float, ...]
    evaluations: int
    method: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@runtime_checkable
class Scorer(Protocol):
    """A contribution scoring method (the port the server and the auditor score through)."""

    @property
    def method(self) -> str:
        """The method's name, e.g. ``"gtg"``, as recorded on chain."""
        ...

    def params(self) -> dict[str, ParamValue]:
        """The method's parameters, by name, as they are recorded on chain."""
        ...

    def score(
        self,
        n: int,
        utility: Utility,
        *,
        num_examples: Sequence[int],
        deltas: Sequence[NDArray[np.floating]] | None,
        aggregate_delta: NDArray[np.floating] | None,
        seed: int,
    ) -> RoundScores:
        """Score the ``n`` participants of one round.

        Parameters
        ----------
        n
            Number of participants.
        utility
            Utility of a coalition of participant indices; wrapped in a :class:`CachedUtility`
            by the scorer, so it may be a plain function.
        num_examples
            Examples each participant trained on (its aggregation weight).
        deltas
            Each participant's flattened update minus the parent model (used by ``cosine`` only).
        aggregate_delta
            The aggregated update minus the parent model (``cosine`` only; computed from
            ``deltas`` weighted by ``num_examples`` when ``None``).
        seed
            Seed of any randomness; the same inputs and seed give the same scores.

        Raises
        ------
        ScoringError
            For inconsistent inputs or a round the method cannot score.
        """
        ...


def check_round(n: int, num_examples: Sequence[int]) -> None:
    """Validate the inputs every scorer shares.

    Raises
    ------
    ScoringError
        If ``n`` is negative, ``num_examples`` does not have ``n`` entries, or one is negative.
    """
    if n < 0:
        raise ScoringError(f"the number of participants must be >= 0, got {n}")
    if len(num_examples) != n:
        raise ScoringError(
            f"num_examples has {len(num_examples)} entries for {n} participants: "
            "pass one count per participant, in the round's order"
        )
    negative = [i for i, count in enumerate(num_examples) if count < 0]
    if negative:
        raise ScoringError(f"num_examples must be >= 0; negative for participants {negative}")
