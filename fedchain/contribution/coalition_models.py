"""Coalition models built incrementally, for rounds aggregated by the example-weighted mean.

Under FedAvg (and FedProx, which aggregates the same way) a coalition's model is the mean of its
members' updates weighted by their example counts. A permutation-based scorer walks an order
prefix by prefix, so each prefix's model is the previous prefix's weighted sum plus one update:
one model addition per step instead of a fresh weighted sum of up to ``n`` updates (and, on the
server, no Flower messages or strategy copies per coalition). Rebuilding coalitions through the
strategy took 78 % of ``gtg``'s scoring time at 50 participants (py-spy, docs/contribution.md).

Arithmetic, the same on the server and for an auditor: the sum is kept in float64, each term
``count * update`` exact (a float32 times an integer below 2**29 fits float64's 53 bits), added
in the order the walk reached the members; the model is ``sum / total_count`` cast to each
tensor's dtype. Building the same coalition from scratch in the same order
(:func:`weighted_sum_model`) gives the same bits. Flower's FedAvg sums float32 products, so it
differs from this by its own rounding: at most one float32 step of the largest update value per
update added (tests/unit/contribution/test_scoring_at_scale.py), far below the 1e-6 to which
scores are recorded. The server and the auditor both build coalitions this way, so what they
compare is bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fedchain.contribution.base import CachedUtility, Coalition, Utility

__all__ = ["Curvature", "QuadraticSurrogate", "WeightedMeanUtility", "weighted_sum_model"]

Weights = Mapping[str, np.ndarray[Any, Any]]
#: The holdout loss to second order at a point along directions: ``L(c)``, ``[g . d_i]``,
#: ``[d_i^T H d_j]`` (fedchain.federation.holdout_eval.HoldoutEvaluator.curvature).
Curvature = Callable[
    [Weights, Sequence[Weights]], tuple[float, np.ndarray[Any, Any], np.ndarray[Any, Any]]
]


def _term(update: Weights, name: str, count: int) -> np.ndarray[Any, Any]:
    """``count * update[name]`` in float64, exactly."""
    return np.multiply(update[name], count, dtype=np.float64)


def _model(acc: Mapping[str, np.ndarray[Any, Any]], total: int, like: Weights) -> dict[str, Any]:
    return {name: (acc[name] / total).astype(like[name].dtype, copy=False) for name in like}


def weighted_sum_model(
    updates: Sequence[Weights], examples: Sequence[int], order: Sequence[int]
) -> dict[str, np.ndarray[Any, Any]]:
    """The coalition ``order``'s model built from scratch, adding its members in that order.

    The reference :class:`WeightedMeanUtility` walks must equal to the bit.
    """
    acc, total = _weighted_sum(updates, examples, order)
    return _model(acc, total, updates[order[0]])


def _weighted_sum(
    updates: Sequence[Weights], examples: Sequence[int], order: Sequence[int]
) -> tuple[dict[str, np.ndarray[Any, Any]], int]:
    """``sum count * update`` over ``order`` in float64, added in that order, and the count."""
    first = updates[order[0]]
    acc = {name: np.zeros(np.shape(first[name]), dtype=np.float64) for name in first}
    for i in order:
        for name in acc:
            acc[name] += _term(updates[i], name, int(examples[i]))
    return acc, sum(int(examples[i]) for i in order)


class WeightedMeanUtility(CachedUtility):
    """A round's utility whose prefix walks add one update per step.

    Parameters
    ----------
    fn
        The utility of a coalition evaluated directly (the empty and the full coalition, and
        every coalition of the methods that do not walk orders): unchanged by this class.
    updates, examples
        The players' updates and example counts (player ``i`` is ``updates[i]``).
    utility_of
        The utility of a coalition's model, e.g. minus its holdout loss.
    curvature
        When the utility is minus a holdout loss: that loss to second order
        (:data:`Curvature`), which gives :meth:`surrogate`.
    """

    def __init__(
        self,
        fn: Utility,
        *,
        updates: Sequence[Weights],
        examples: Sequence[int],
        utility_of: Callable[[dict[str, np.ndarray[Any, Any]]], float],
        curvature: Curvature | None = None,
    ) -> None:
        super().__init__(fn)
        self._updates = updates
        self._examples = [int(count) for count in examples]
        self._utility_of = utility_of
        self._curvature = curvature
        self._surrogate: QuadraticSurrogate | None = None

    def prefixes(self, order: Sequence[int]) -> Iterator[float]:
        """The utilities of ``order``'s prefixes, each model one addition from the previous.

        A prefix already valued (cached) costs one addition and no evaluation.
        """
        first = self._updates[order[0]]
        acc = {name: np.zeros(first[name].shape, dtype=np.float64) for name in first}
        total = 0
        members: set[int] = set()
        for player in order:
            count = self._examples[player]
            for name in acc:
                acc[name] += _term(self._updates[player], name, count)
            total += count
            members.add(player)
            key: Coalition = frozenset(members)
            value = self._values.get(key)
            if value is None:
                value = float(self._utility_of(_model(acc, total, first)))
                self._values[key] = value
            yield value

    def surrogate(self) -> QuadraticSurrogate | None:
        """The utility to second order around the grand coalition's model, or None without
        ``curvature``. Built on first use (one gradient and one Hessian-vector product per
        player), so scorers that do not use it do not pay for it."""
        if self._curvature is None or not self._updates:
            return None
        if self._surrogate is None:
            center = _center(self._updates, self._examples)
            directions = [
                {name: np.asarray(u[name], np.float64) - center[name] for name in center}
                for u in self._updates
            ]
            loss, slopes, hessian = self._curvature(center, directions)
            self._surrogate = QuadraticSurrogate(
                empty=self(frozenset()),
                loss=loss,
                slopes=slopes,
                hessian=hessian,
                examples=np.asarray(self._examples, dtype=np.float64),
            )
        return self._surrogate


def _center(updates: Sequence[Weights], examples: Sequence[int]) -> dict[str, np.ndarray[Any, Any]]:
    """The example-weighted mean of every update, in float64."""
    acc, total = _weighted_sum(updates, examples, range(len(updates)))
    return {name: value / total for name, value in acc.items()}


class QuadraticSurrogate:
    """A round's utility, minus the holdout loss, to second order: a control variate for
    ``gtg``.

    A coalition ``S``'s model is ``c + D_S`` with ``c`` the grand coalition's model and
    ``D_S = sum_S n_i d_i / N_S`` (``d_i`` player ``i``'s update minus ``c``, ``n_i`` its
    examples, ``N_S`` their sum); so ``-L(c + D_S)`` is, to second order,
    ``g(S) = -(L(c) + A_S / N_S + Q_S / (2 N_S^2))`` with ``A_S = sum_S n_i g.d_i`` and
    ``Q_S = sum_{i, j in S} n_i n_j d_i^T H d_j``. ``g`` costs a few additions per coalition
    where the utility costs a holdout pass, so its Shapley values can be estimated to any
    precision; ``g(empty)`` is the utility's own (the parent model is no mean of updates).

    Parameters
    ----------
    empty
        The utility of the empty coalition.
    loss, slopes, hessian
        ``L(c)``, ``[g . d_i]`` and ``[d_i^T H d_j]``.
    examples
        ``[n_i]``.
    """

    def __init__(
        self,
        *,
        empty: float,
        loss: float,
        slopes: np.ndarray[Any, Any],
        hessian: np.ndarray[Any, Any],
        examples: np.ndarray[Any, Any],
    ) -> None:
        self.empty = float(empty)
        self._loss = float(loss)
        self._weighted = examples * slopes  # n_i g.d_i
        self._pairs = np.outer(examples, examples) * hessian  # n_i n_j d_i^T H d_j
        self._examples = examples
        self.n = int(examples.shape[0])

    def _value(
        self, total: np.ndarray[Any, Any], slope: np.ndarray[Any, Any], quad: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """``g`` from ``N_S``, ``A_S`` and ``Q_S`` (arrays); ``empty`` where ``N_S`` is 0."""
        safe = np.where(total > 0, total, 1.0)
        value = -(self._loss + slope / safe + quad / (2.0 * safe * safe))
        return np.where(total > 0, value, self.empty)

    def prefixes(self, order: Sequence[int]) -> np.ndarray[Any, Any]:
        """``g`` of each prefix of ``order`` (lengths 1 to ``len(order)``)."""
        index = np.asarray(order, dtype=np.intp)
        quad = self._pairs[np.ix_(index, index)].cumsum(axis=0).cumsum(axis=1).diagonal()
        return self._value(self._examples[index].cumsum(), self._weighted[index].cumsum(), quad)

    def first_strata(self) -> np.ndarray[Any, Any]:
        """Each player's mean marginal gain of ``g`` at positions 0 and 1, exactly (as
        fedchain.contribution.gtg's first strata of the utility)."""
        n, ex, w, p = self.n, self._examples, self._weighted, self._pairs
        singles = self._value(ex, w, p.diagonal())
        strata = np.zeros((n, 2), dtype=np.float64)
        strata[:, 0] = singles - self.empty
        if n < 2:
            return strata
        pairs = self._value(
            ex[:, None] + ex[None, :],
            w[:, None] + w[None, :],
            p.diagonal()[:, None] + p.diagonal()[None, :] + 2.0 * p,
        )
        gains = pairs - singles[None, :]  # [i, j]: i joining j
        np.fill_diagonal(gains, 0.0)
        strata[:, 1] = gains.sum(axis=1) / (n - 1)
        return strata

    def shapley(self, cycles: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
        """``g``'s Shapley values estimated over ``cycles`` guided cycles (``2n`` permutations
        each, as ``gtg`` samples them), positions 0 and 1 exact.

        A cycle's ``2n`` permutations have as prefixes the arcs of one cyclic order; every
        arc's ``N``, ``A`` and ``Q`` come from prefix sums over the order written twice (``Q``
        from a 2-D prefix sum), so a cycle costs ``O(n^2)`` array operations.
        """
        n = self.n
        sums = np.zeros(n, dtype=np.float64)
        starts = np.arange(n)[:, None]
        steps = np.arange(2, n)[None, :]  # positions 0 and 1 are exact, below
        for _ in range(cycles):
            cycle = rng.permutation(n)
            table = self._arcs(np.concatenate([cycle, cycle]))  # [start, length]
            # Forwards from s: the player at position k is cycle[s + k].
            forward = table[starts, steps + 1] - table[starts, steps]
            np.add.at(sums, cycle[(starts + steps) % n], forward)
            # Backwards from s: the prefix of length k + 1 is the arc starting at s - k.
            first = (starts - steps) % n
            backward = table[first, steps + 1] - table[(first + 1) % n, steps]
            np.add.at(sums, cycle[first], backward)
        # Every player takes each position twice per cycle: the mean over positions.
        sampled = sums / (2 * cycles)
        estimate: np.ndarray[Any, Any] = (sampled + self.first_strata().sum(axis=1)) / n
        return estimate

    def _arcs(self, doubled: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``g`` of every arc of the cyclic order: ``[start, length]``, lengths 0 to ``n``."""
        n = self.n
        total = np.concatenate([[0.0], self._examples[doubled].cumsum()])
        slope = np.concatenate([[0.0], self._weighted[doubled].cumsum()])
        block = np.zeros((2 * n + 1, 2 * n + 1), dtype=np.float64)
        block[1:, 1:] = self._pairs[np.ix_(doubled, doubled)].cumsum(axis=0).cumsum(axis=1)
        start = np.arange(n)[:, None]
        end = start + np.arange(n + 1)[None, :]
        quad = block[end, end] - block[start, end] - block[end, start] + block[start, start]
        return self._value(total[end] - total[start], slope[end] - slope[start], quad)
