"""Robust rules as Flower strategies: centered clipping, FLTrust, any rule after a pre-aggregation
step, and Flower's Krum and MultiKrum saying which updates they kept.

Every strategy here sets ``last_update_weights`` after each ``aggregate_train``: one weight per
reply, in the order of the replies, non-negative and summing to 1 (0 = discarded; all 0 when
FLTrust trusted no update), or ``None`` when the rule cannot say (a coordinate-wise median).

A rule that needs the round's parent model, or state carried across rounds, takes them from
``prime``, which the ledger wrapper (and the audit's replay) calls before each round's
aggregation with a :class:`RoundHistory` read from the run's record: the parent model, and the
model the parent was aggregated from. Nothing is kept in server memory from round to round, so
an auditor and a resumed run rebuild the same state bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg, Krum, MultiKrum

from fedchain.errors import FedchainError, SettingsError
from fedchain.federation.messages import Weights, arrays_to_numpy, numpy_to_arrays
from fedchain.robust import PreAggregation
from fedchain.robust_rules import (
    Aggregate,
    Matrix,
    Mixed,
    Vector,
    bucket_permutation,
    bucketing,
    centered_clipping,
    coordinate_median,
    fltrust,
    krum_select,
    multi_krum,
    nearest_neighbour_mixing,
    propagate,
    trimmed_mean,
)

__all__ = [
    "ROOT_EXAMPLES",
    "RULES",
    "RobustAggregation",
    "RoundHistory",
    "SelectingKrum",
    "SelectingMultiKrum",
    "ServerUpdate",
    "StrategyNotPrimed",
    "root_size",
]

#: The rules :class:`RobustAggregation` runs, by strategy name.
RULES = ("cclip", "fltrust", "krum", "multikrum", "fedmedian", "fedtrimmedavg")

#: The server's own update for FLTrust: the parent model trained in a round on a root set of the
#: given number of examples (0: all the root data).
ServerUpdate = Callable[[Mapping[str, np.ndarray[Any, Any]], int, int], Weights]


class StrategyNotPrimed(FedchainError, RuntimeError):
    """A strategy that needs the round's history was asked to aggregate without it."""


@dataclass(frozen=True)
class RoundHistory:
    """What a strategy may know of the run before a round: the round, its parent model, the
    model the parent was aggregated from (``None`` when the parent is the initial model), and
    the example counts of the round's accepted updates, in aggregation order (empty when not
    known: FLTrust then trains on all its root data)."""

    round: int
    parent: Weights
    previous: Weights | None = None
    examples: tuple[int, ...] = ()


#: The paper's root-set size (Cao et al. 2021): FLTrust's server trains on at least this many.
ROOT_EXAMPLES = 100


def root_size(examples: Sequence[int]) -> int:
    """FLTrust's root-set size in a round: the median client's example count (the lower median),
    and at least :data:`ROOT_EXAMPLES`. Trained as a client trains on a client's number of
    examples, the server's update takes a client's number of steps, so its length, to which
    every update is rescaled, is a client's (the whole 360-row digits holdout, 23 steps against
    a client's 5 to 9, made FLTrust diverge); the floor keeps its direction, which decides every
    update's trust, from resting on a few dozen rows (on breast-cancer, 45 rows cost 3 points on
    dirichlet:0.5; 100 gained 1). Fewer than half the clients cannot move the median out of the
    honest ones' range."""
    median = sorted(examples)[(len(examples) - 1) // 2] if examples else 0
    return max(int(median), ROOT_EXAMPLES)


def _flatten(model: Mapping[str, np.ndarray[Any, Any]], names: Sequence[str]) -> Vector:
    return np.concatenate([np.asarray(model[name], dtype=np.float64).ravel() for name in names])


def _unflatten(vector: Vector, template: Weights) -> Weights:
    """``vector`` cut into the template's tensors, in their shapes and dtypes."""
    model, start = {}, 0
    for name, tensor in template.items():
        size = tensor.size
        model[name] = vector[start : start + size].reshape(tensor.shape).astype(tensor.dtype)
        start += size
    return model


class RobustAggregation(FedAvg):
    """Aggregates the replies' updates (deltas from the round's parent) with one robust rule,
    optionally after a pre-aggregation step; Flower's FedAvg for everything else.

    Parameters
    ----------
    rule
        One of :data:`RULES`: ``cclip`` (centered clipping around the previous round's
        aggregate, one iteration, radius :func:`fedchain.robust_rules.clip_radius`),
        ``fltrust`` (against ``server_update``), or ``krum``/``multikrum``/``fedmedian``/
        ``fedtrimmedavg`` run on pre-aggregated updates (plain means: mixed updates carry no
        example counts).
    byzantine
        The attackers ``f`` to tolerate (NNM mixes ``n - f`` neighbours, Krum scores ``n - f - 2``
        of them, MultiKrum keeps ``n - f`` vectors, the trimmed mean cuts ``f`` off each tail).
    pre_aggregation
        NNM or bucketing; bucketing shuffles with :func:`fedchain.robust_rules.bucket_permutation`
        from ``task_seed`` and the round.
    server_update
        FLTrust's root-data training (required for ``fltrust``).
    """

    def __init__(
        self,
        rule: str,
        *,
        byzantine: int = 0,
        pre_aggregation: PreAggregation | None = None,
        task_seed: int = 0,
        server_update: ServerUpdate | None = None,
        **common: Any,
    ) -> None:
        if rule not in RULES:
            raise SettingsError(f"unknown robust rule {rule!r}: one of {', '.join(RULES)}")
        if rule == "fltrust" and server_update is None:
            raise SettingsError("fltrust needs the server's update on its root data")
        super().__init__(**common)
        self.rule = rule
        self.byzantine = byzantine
        self.pre_aggregation = pre_aggregation
        self.task_seed = task_seed
        self.server_update = server_update
        self.last_update_weights: list[float] | None = None
        self._history: RoundHistory | None = None
        self._server_delta: Vector | None = None

    def prime(self, history: RoundHistory) -> None:
        """Take the round's parent and the model before it (see :class:`RoundHistory`); FLTrust
        trains its own update here, once per round, on :func:`root_size` examples."""
        self._history = history
        self._server_delta = None
        if self.rule == "fltrust":
            assert self.server_update is not None
            names = list(history.parent)
            size = root_size(history.examples)
            trained = self.server_update(history.parent, history.round, size)
            self._server_delta = _flatten(trained, names) - _flatten(history.parent, names)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The robust aggregate of the valid replies; sets ``last_update_weights``."""
        replies = list(replies)
        self.last_update_weights = None
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        model, weights = self.aggregate_models(
            server_round, [arrays_to_numpy(_arrays(m)) for m in valid]
        )
        if weights is not None:
            by_reply = dict(zip((id(m) for m in valid), weights.tolist(), strict=True))
            self.last_update_weights = [by_reply.get(id(m), 0.0) for m in replies]
        contents = [m.content for m in valid]
        return numpy_to_arrays(model), self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def aggregate_models(
        self, server_round: int, models: Sequence[Weights]
    ) -> tuple[Weights, Vector | None]:
        """The robust aggregate of the clients' models and each one's weight (None when the rule
        cannot say): ``aggregate_train`` without the messages, and without changing the
        strategy, so contribution scoring aggregates a round's coalitions with it directly."""
        history = self._primed(server_round)
        names = list(history.parent)
        parent = _flatten(history.parent, names)
        x = np.stack([_flatten(model, names) - parent for model in models])  # deltas
        result, weights = self._aggregate(server_round, x, history, names)
        return _unflatten(parent + result, history.parent), weights

    def _primed(self, server_round: int) -> RoundHistory:
        history = self._history
        if history is None or history.round != server_round:
            primed = "nothing" if history is None else f"round {history.round}"
            raise StrategyNotPrimed(
                f"{self.rule} aggregates round {server_round} from its parent model, but was "
                f"primed with {primed}: call prime(RoundHistory(...)) before aggregate_train "
                "(fedchain's LedgerStrategy and the audit's replay do)"
            )
        return history

    def _aggregate(
        self, server_round: int, x: Matrix, history: RoundHistory, names: list[str]
    ) -> tuple[Vector, Vector | None]:
        """The aggregated delta and each update's weight, through the pre-aggregation step."""
        mixed = self._pre_aggregate(server_round, x)
        rows = mixed.vectors if mixed is not None else x
        aggregate = self._rule(rows, history, names)
        if mixed is None:
            return aggregate.vector, aggregate.weights
        return aggregate.vector, propagate(mixed, aggregate.weights)

    def _pre_aggregate(self, server_round: int, x: Matrix) -> Mixed | None:
        pre = self.pre_aggregation
        if pre is None:
            return None
        if pre.kind == "nnm":
            return nearest_neighbour_mixing(x, self.byzantine)
        order = bucket_permutation(x.shape[0], self.task_seed, server_round)
        return bucketing(x, pre.bucket_size, order)

    def _rule(self, rows: Matrix, history: RoundHistory, names: list[str]) -> Aggregate:
        f = self.byzantine
        if self.rule == "cclip":
            center = np.zeros(rows.shape[1])
            if history.previous is not None:  # the previous round's aggregate: parent - previous
                center = _flatten(history.parent, names) - _flatten(history.previous, names)
            return centered_clipping(rows, center)
        if self.rule == "fltrust":
            assert self._server_delta is not None
            return fltrust(rows, self._server_delta)
        if self.rule == "krum":
            return multi_krum(rows, f, 1)
        if self.rule == "multikrum":
            return multi_krum(rows, f, rows.shape[0] - f)
        if self.rule == "fedmedian":
            return coordinate_median(rows)
        return trimmed_mean(rows, f)


def _arrays(message: Message) -> ArrayRecord:
    return next(iter(message.content.array_records.values()))


def _selection_weights(
    replies: list[Message], byzantine: int, count: int, weighted_by_key: str
) -> list[float] | None:
    """Flower's (Multi)Krum selection among the valid replies, as weights: the selected
    updates' shares of their examples (how Flower averages them), 0 for the others."""
    valid = [m for m in replies if not m.has_error()]
    if not valid:
        return None
    flat = np.stack(
        [np.concatenate(_arrays(m).to_numpy_ndarrays(), axis=None).ravel() for m in valid]
    )
    chosen = krum_select(flat, byzantine, count)
    examples = {
        id(valid[i]): float(next(iter(valid[i].content.metric_records.values()))[weighted_by_key])
        for i in chosen
    }
    total = sum(examples.values())
    return [examples.get(id(m), 0.0) / total for m in replies]


class SelectingKrum(Krum):
    """Flower's Krum, which also says which update it kept (``last_update_weights``)."""

    last_update_weights: list[float] | None = None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        weights = _selection_weights(replies, self.num_malicious_nodes, 1, self.weighted_by_key)
        result = super().aggregate_train(server_round, replies)
        self.last_update_weights = weights
        return result


class SelectingMultiKrum(MultiKrum):
    """Flower's MultiKrum, which also says which updates it kept (``last_update_weights``)."""

    last_update_weights: list[float] | None = None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        weights = _selection_weights(
            replies, self.num_malicious_nodes, self.num_nodes_to_select, self.weighted_by_key
        )
        result = super().aggregate_train(server_round, replies)
        self.last_update_weights = weights
        return result
