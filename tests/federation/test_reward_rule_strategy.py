"""The ledger strategy pays by the task's reward rule: it reads how much the wrapped strategy
weighted each update, pays nothing for a discarded one, and commits less than the budget when
the round's gain is small (the rest stays in the pool, derivable from the chain)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from fedchain.federation.ledger_strategy import LedgerLink, LedgerStrategy
from fedchain.federation.messages import arrays_to_numpy
from fedchain.hashing import model_hash
from fedchain.store import ModelStore

from .conftest import BUDGET, Ledger, make_reply, template
from .test_ledger_strategy import _open

Weights = dict[str, np.ndarray[Any, Any]]


class _Discarding(FedAvg):  # type: ignore[misc]
    """FedAvg that says it gave ``discard`` (an update hash) weight 0, like a robust rule."""

    def __init__(self, discard: bytes | None, weights: list[float] | None = None) -> None:
        super().__init__(fraction_evaluate=0.0)
        self.discard, self.given = discard, weights
        self.last_update_weights: list[float] | None = None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        kept = [model_hash(arrays_to_numpy(m.content.array_records["arrays"])) != self.discard
                for m in replies]  # fmt: skip
        self.last_update_weights = self.given or [k / sum(kept) for k in kept]
        return super().aggregate_train(server_round, replies)  # type: ignore[no-any-return]


def _bias(value: float) -> Weights:
    weights = template()
    weights["layer.bias"] = np.full((3,), value, dtype=np.float32)
    return weights


def _loss(weights: Weights) -> tuple[float, float]:
    """A holdout on which the bias should be 1: every update helps a little."""
    return 0.9, 0.3 + 1e-3 * float(np.mean((weights["layer.bias"] - 1.0) ** 2))


def _strategy(ledger: Ledger, store: Path, inner: Any, contribution: str) -> LedgerStrategy:
    return LedgerStrategy(
        inner,
        link=LedgerLink(ledger.gateway, ledger.task_id, "unused"),
        store=ModelStore(store),
        evaluate=_loss,
        template=template(),
        reward_per_round=BUDGET,
        contribution=contribution,
        reward_full_gain=0.01,
    )


def _round(strategy: LedgerStrategy, ledger: Ledger, updates: list[Weights]) -> None:
    _open(strategy, ledger)
    replies = [
        make_reply(ledger, i + 1, p, u, examples=10)
        for i, (p, u) in enumerate(zip(ledger.participants, updates, strict=False))
    ]
    strategy.aggregate_train(1, replies)
    strategy.flush()


def _committed_total(ledger: Ledger) -> int:
    events = [e for e in ledger.gateway.events() if e.name == "RoundCommitted"]
    return int(events[0].args["totalReward"])


def test_an_update_the_wrapped_strategy_discarded_earns_nothing(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    updates = [_bias(0.5), _bias(0.6), _bias(0.7)]
    strategy = _strategy(ledger, store_dir, _Discarding(model_hash(updates[2])), "data-size")
    # Execute
    _round(strategy, ledger, updates)
    # Assert
    outcomes = {p.address: p for p in strategy.reports[0].participants if p.accepted}
    discarded = outcomes[ledger.participants[2].address]
    assert (discarded.weight, discarded.eligible, discarded.reward) == (0.0, False, 0)
    kept = [outcomes[p.address] for p in ledger.participants[:2]]
    assert [(p.weight, p.eligible, p.reward) for p in kept] == [(0.5, True, BUDGET // 2)] * 2
    assert ledger.gateway.owed(ledger.participants[2].address) == 0


def test_weights_that_do_not_fit_the_round_are_ignored_and_say_so(
    ledger: Ledger, store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: two weights for three updates
    inner = _Discarding(None, weights=[0.0, 1.0])
    strategy = _strategy(ledger, store_dir, inner, "data-size")
    # Execute
    with caplog.at_level(logging.WARNING):
        _round(strategy, ledger, [_bias(0.5), _bias(0.6), _bias(0.7)])
    # Assert
    accepted = [p for p in strategy.reports[0].participants if p.accepted]
    assert all(p.eligible and p.weight is None and p.reward > 0 for p in accepted)
    assert "2 update weights for 3 updates" in caplog.text


def test_a_round_with_a_small_gain_commits_less_than_the_budget_and_records_the_rest(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: the three updates together lower the loss by far less than the full gain 0.01
    strategy = _strategy(ledger, store_dir, _Discarding(None), "loo")
    # Execute
    _round(strategy, ledger, [_bias(0.5), _bias(0.6), _bias(0.7)])
    # Assert
    report = strategy.reports[0]
    paid = sum(p.reward for p in report.participants)
    assert 0 < paid < BUDGET // 10
    assert report.unearned == BUDGET - paid
    assert _committed_total(ledger) == BUDGET - report.unearned  # derivable from the chain


def test_copies_under_several_keys_share_one_reward(ledger: Ledger, store_dir: Path) -> None:
    # Prepare: participants 1 and 2 send the same update
    strategy = _strategy(ledger, store_dir, _Discarding(None), "data-size")
    # Execute
    _round(strategy, ledger, [_bias(0.5), _bias(0.7), _bias(0.7)])
    # Assert: two groups, each half the budget; the copies split theirs
    first, *copies = (ledger.participants[i].address for i in range(3))
    outcomes = {p.address: p for p in strategy.reports[0].participants if p.accepted}
    assert outcomes[first].reward == BUDGET // 2
    assert [outcomes[c].reward for c in copies] == [BUDGET // 4] * 2
    representative = min(copies, key=lambda c: c.lower())
    assert {c: outcomes[c].duplicate_of for c in copies} == {
        c: ("" if c == representative else representative) for c in copies
    }
