"""The ledger wrapper primes a strategy that defines ``prime`` with the round's history, read from
the run's record: the parent, the model the parent was aggregated from, and the accepted updates'
example counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flwr.serverapp.strategy import FedAvg

from fedchain.federation.ledger_strategy import LedgerStrategy
from fedchain.federation.robust_strategies import RoundHistory
from fedchain.federation.round_report import RoundReport
from fedchain.hashing import model_hash, to_hex
from fedchain.store import ModelStore

from .conftest import Weights, template, update


class _Recording(FedAvg):
    """FedAvg that keeps every history it was primed with."""

    def __init__(self) -> None:
        super().__init__(fraction_evaluate=0.0)
        self.primed: list[RoundHistory] = []

    def prime(self, history: RoundHistory) -> None:
        self.primed.append(history)


def _strategy(store: Path, inner: Any) -> LedgerStrategy:
    return LedgerStrategy(
        inner,
        link=None,
        store=ModelStore(store),
        evaluate=lambda weights: (0.75, 0.5),
        template=template(),
        reward_per_round=1000,
    )


def _at_round(strategy: LedgerStrategy, round_id: int, parent: Weights) -> None:
    """What configure_train records of a round, without a Flower grid."""
    strategy._parents[round_id] = model_hash(parent)
    strategy._parent_weights[round_id] = parent


def _equal(a: Weights | None, b: Weights) -> bool:
    return a is not None and a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_the_previous_model_comes_from_the_round_that_produced_the_parent(
    store_dir: Path,
) -> None:
    # Prepare: round 1 made m1 from m0; round 2 failed (no global model); round 3 starts at m1.
    # The reports are what a resumed run restores from its journal, checked against the chain.
    m0, m1 = update(0), update(1)
    inner = _Recording()
    strategy = _strategy(store_dir, inner)
    strategy.store.put(m0)
    strategy.reports += [
        RoundReport(1, to_hex(model_hash(m0)), global_model_hash=to_hex(model_hash(m1))),
        RoundReport(2, to_hex(model_hash(m1)), failed_reason="1 valid updates, 2 needed"),
    ]
    _at_round(strategy, 3, m1)
    # Execute
    strategy._prime_inner(3, [40, 52, 47])
    # Assert
    (history,) = inner.primed
    assert history.round == 3
    assert history.examples == (40, 52, 47)  # FLTrust's root-set size is their median
    assert _equal(history.parent, m1)
    assert _equal(history.previous, m0)


def test_a_run_from_the_initial_model_has_no_previous_model(store_dir: Path) -> None:
    inner = _Recording()
    strategy = _strategy(store_dir, inner)
    _at_round(strategy, 1, template())
    strategy._prime_inner(1, [10])
    assert inner.primed[0].previous is None


def test_a_strategy_without_prime_is_left_alone(store_dir: Path) -> None:
    strategy = _strategy(store_dir, FedAvg(fraction_evaluate=0.0))
    _at_round(strategy, 1, template())
    strategy._prime_inner(1, [10])  # no AttributeError
    assert not hasattr(strategy.inner, "prime")
