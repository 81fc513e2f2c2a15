"""Coalitions of a round's updates rebuilt with the round's own aggregation, for scoring.

The server and any auditor recomputing a round order and aggregate the accepted updates the same
way, so both get bit-identical coalition models.
"""

from __future__ import annotations

import contextlib
import copy
import gc
from collections.abc import Iterator, Mapping, Sequence

from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAvg, Strategy

from fedchain.contribution.round import weighted_mean
from fedchain.federation.messages import Weights, arrays_to_numpy, numpy_to_arrays, train_reply
from fedchain.federation.robust_strategies import RobustAggregation
from fedchain.record_keys import METRIC_NUM_EXAMPLES

__all__ = ["CoalitionAggregator", "aggregation_order", "coalition_aggregator", "frozen_heap"]


def aggregation_order(update_hash: str, address: str) -> tuple[str, str]:
    """The sort key of a round's accepted updates, for the server and anyone recomputing it.

    By update hash, then by participant: free-riders returning the same model share a hash, and
    their order still moves the last bits of a float sum.
    """
    return update_hash.lower(), address.lower()


def coalition_aggregator(
    inner: Strategy,
    server_round: int,
    updates: Sequence[Weights],
    examples: Sequence[int],
) -> CoalitionAggregator:
    """Rebuild a coalition's model with the round's aggregation (for contribution scoring).

    Each coalition is aggregated by a copy of ``inner`` on fresh replies (strategies may consume
    their inputs, and stateful ones, like FedAdam, must not see coalitions); when the strategy
    cannot aggregate so few replies (Krum needs more), the example-weighted mean stands in.
    """
    return CoalitionAggregator(inner, server_round, updates, examples)


class CoalitionAggregator:
    """A coalition's model by the round's aggregation; ``weighted_mean`` says whether that is
    FedAvg's example-weighted mean, so a scorer may build coalitions incrementally instead
    (fedchain.contribution.coalition_models)."""

    def __init__(
        self,
        inner: Strategy,
        server_round: int,
        updates: Sequence[Weights],
        examples: Sequence[int],
    ) -> None:
        self.inner, self.server_round = inner, server_round
        self.updates, self.examples = updates, examples
        self._serialized: dict[int, dict[str, Array]] = {}
        self.weighted_mean = (
            type(inner).aggregate_train is FedAvg.aggregate_train
            and getattr(inner, "weighted_by_key", None) == METRIC_NUM_EXAMPLES
        )

    def __call__(self, indices: Sequence[int]) -> Weights:
        """The model of the coalition ``indices`` (ascending)."""
        updates, examples = self.updates, self.examples
        try:
            model = self._aggregate(indices)
        except Exception:  # a strategy refusing a small coalition is not an error here
            model = None
        if model is None:
            return weighted_mean([updates[i] for i in indices], [examples[i] for i in indices])
        return model

    def _arrays(self, i: int) -> Mapping[str, Array]:
        """Update ``i`` serialized once for all its coalitions; each reply gets its own record
        (a strategy may empty it), the Arrays' bytes are immutable."""
        if i not in self._serialized:
            self._serialized[i] = dict(numpy_to_arrays(self.updates[i]).items())
        return self._serialized[i]

    def _aggregate(self, indices: Sequence[int]) -> Weights | None:
        if isinstance(self.inner, RobustAggregation):  # the same bits, without the messages
            models = [self.updates[i] for i in indices]
            return self.inner.aggregate_models(self.server_round, models)[0]
        replies = [
            train_reply(ArrayRecord(dict(self._arrays(i))), self.examples[i]) for i in indices
        ]
        with frozen_heap():
            arrays, _ = copy.deepcopy(self.inner).aggregate_train(self.server_round, replies)
        return None if arrays is None else arrays_to_numpy(arrays)


_frozen_depth = 0


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Let the objects that exist now out of garbage collection for the block (``gc.freeze``).

    Flower's Bulyan forces a full collection for every reply it reads
    (``ArrayRecord.to_numpy_ndarrays(keep_input=False)``); with PyTorch loaded one takes about
    half a second, and contribution scoring aggregates many coalitions per round. Objects made
    inside the block are still collected. Reentrant: only the outermost block unfreezes.
    """
    global _frozen_depth  # noqa: PLW0603 - one process-wide heap, one counter
    if _frozen_depth == 0:
        gc.freeze()
    _frozen_depth += 1
    try:
        yield
    finally:
        _frozen_depth -= 1
        if _frozen_depth == 0:
            gc.unfreeze()
