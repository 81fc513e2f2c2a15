"""A coalition's model is the round's own aggregation of its members, bit for bit, whichever way
the aggregator reaches it: fedchain's robust rules on the updates directly, Flower's strategies
on replies whose serialized arrays are reused from coalition to coalition."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fedchain.federation.coalitions import CoalitionAggregator
from fedchain.federation.flower_strategies import build_strategy
from fedchain.federation.messages import Weights, arrays_to_numpy, numpy_to_arrays, train_reply
from fedchain.federation.robust_strategies import RobustAggregation, RoundHistory
from fedchain.robust import parse_pre_aggregation
from fedchain.settings import RunSettings

pytestmark = pytest.mark.timeout(60)


def _model(rng: np.random.Generator) -> Weights:
    return {
        "w": rng.normal(0.0, 1.0, (4, 3)).astype(np.float32),
        "b": rng.normal(0.0, 1.0, 3).astype(np.float32),
    }


def _round(n: int) -> tuple[Weights, Weights, list[Weights], list[int]]:
    rng = np.random.default_rng(7)
    parent, previous = _model(rng), _model(rng)
    updates = [
        {k: v + rng.normal(0.0, 0.1, v.shape).astype(np.float32) for k, v in parent.items()}
        for _ in range(n)
    ]
    return parent, previous, updates, [int(c) for c in rng.integers(5, 60, n)]


def _server_update(parent: Any, round_id: int, size: int) -> Weights:
    """A deterministic stand-in for FLTrust's root-data training (same bits every call)."""
    return {
        k: np.asarray(v) + np.float32(0.05 * (i + 1)) for i, (k, v) in enumerate(parent.items())
    }


def _by_messages(strategy: Any, updates: Sequence[Weights], examples: Sequence[int]) -> Weights:
    replies = [train_reply(numpy_to_arrays(u), e) for u, e in zip(updates, examples, strict=True)]
    arrays, _ = copy.deepcopy(strategy).aggregate_train(1, replies)
    assert arrays is not None
    return arrays_to_numpy(arrays)


def _same_bits(a: Weights, b: Weights) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a
    )


@pytest.mark.parametrize(
    ("rule", "pre"), [("fltrust", None), ("cclip", None), ("cclip", "nnm"), ("krum", "nnm")]
)
def test_a_robust_rule_aggregates_a_coalition_as_its_messages_would(
    rule: str, pre: str | None
) -> None:
    # Prepare
    parent, previous, updates, examples = _round(7)
    strategy = RobustAggregation(
        rule,
        byzantine=1,
        pre_aggregation=parse_pre_aggregation(pre or ""),
        server_update=_server_update,
        fraction_evaluate=0.0,
    )
    strategy.prime(RoundHistory(1, parent, previous, tuple(examples)))
    aggregator = CoalitionAggregator(strategy, 1, updates, examples)
    coalition = [0, 2, 3, 5, 6]

    # Execute
    direct = aggregator(coalition)

    # Assert
    expected = _by_messages(
        strategy, [updates[i] for i in coalition], [examples[i] for i in coalition]
    )
    assert _same_bits(direct, expected)


def test_a_flower_strategy_gets_fresh_replies_for_every_coalition() -> None:
    # Prepare: Bulyan reads its replies with keep_input=False, emptying their records
    _, _, updates, examples = _round(9)
    strategy = build_strategy(RunSettings(strategy="bulyan", byzantine=1), 9)
    aggregator = CoalitionAggregator(strategy, 1, updates, examples)

    # Execute: the same coalition twice, after another that shares its members
    first = aggregator(list(range(8)))
    aggregator(list(range(1, 9)))
    again = aggregator(list(range(8)))

    # Assert
    expected = _by_messages(strategy, updates[:8], examples[:8])
    assert _same_bits(first, expected)
    assert _same_bits(again, expected)
