"""Dropped clients at the ledger strategy: absent, paid nothing, and too few fail the round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import Error, Message
from flwr.serverapp.strategy import FedAvg

from fedchain.chain.records import RoundId, RoundState
from fedchain.federation.ledger_strategy import LedgerLink, LedgerStrategy
from fedchain.hashing import model_hash, to_hex
from fedchain.store import ModelStore

from .conftest import BUDGET, Ledger, instruction, make_reply, template, update

RAY_REASON = (
    "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'\x1b[36mray::ClientAppActor"
    '.run()\x1b[39m (pid=1)\n  File "client_app.py", line 161\nException ClientAppException '
    "occurred. Message: simulated dropout: client 2 failed in round 1'>"
)


def _strategy(ledger: Ledger, store: Path, min_accepted: int, inner: Any = None) -> LedgerStrategy:
    return LedgerStrategy(
        inner or FedAvg(fraction_evaluate=0.0),
        link=LedgerLink(ledger.gateway, ledger.task_id, "unused"),
        store=ModelStore(store),
        evaluate=lambda weights: (0.75, 0.5),
        template=template(),
        reward_per_round=BUDGET,
        min_accepted=min_accepted,
    )


def _open(strategy: LedgerStrategy, ledger: Ledger, sampled: list[int]) -> None:
    """What configure_train does first, without a Flower grid: round 1 sent to ``sampled``."""
    parent = model_hash(template())
    strategy._started[1] = 0.0
    strategy._parents[1] = parent
    strategy._parent_weights[1] = template()
    strategy._sampled[1] = sampled
    ledger.gateway.open_round(ledger.task_id, RoundId(1), parent)


def _failed_reply(node_id: int) -> Message:
    return Message(Error(code=2, reason=RAY_REASON), reply_to=instruction(node_id))


def test_failed_and_silent_clients_are_absent_and_earn_nothing(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: 4 sampled, 2 answer, node 3 fails, node 4 never answers (timed out)
    strategy = _strategy(ledger, store_dir, min_accepted=2)
    _open(strategy, ledger, [1, 2, 3, 4])
    replies = [
        make_reply(ledger, 1, ledger.participants[0], update(0)),
        make_reply(ledger, 2, ledger.participants[1], update(1)),
        _failed_reply(3),
    ]
    # Execute
    arrays, _ = strategy.aggregate_train(1, replies)
    strategy.flush()
    # Assert
    assert arrays is not None
    report = strategy.reports[0]
    assert report.committed
    absent = {p.node_id: p for p in report.participants if p.absent}
    assert sorted(absent) == [3, 4]
    assert absent[3].reason == "client error: simulated dropout: client 2 failed in round 1"
    assert absent[4].reason == "no reply within the round timeout"
    assert all(p.reward == 0 and not p.accepted for p in absent.values())
    assert sum(p.reward for p in report.participants) == BUDGET
    recorded = [e for e in ledger.gateway.events() if e.name == "CommitmentRecorded"]
    assert len(recorded) == 2


def test_fewer_valid_updates_than_min_train_nodes_fail_the_round_without_a_model(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: 3 needed, 2 answer, 1 fails, 1 silent
    strategy = _strategy(ledger, store_dir, min_accepted=3)
    _open(strategy, ledger, [1, 2, 3, 4])
    replies = [
        make_reply(ledger, 1, ledger.participants[0], update(0)),
        make_reply(ledger, 2, ledger.participants[1], update(1)),
        _failed_reply(3),
    ]
    # Execute
    arrays, metrics = strategy.aggregate_train(1, replies)
    strategy.flush()
    # Assert: no model, a failed round on chain with its reason, nothing attributed
    assert arrays is None
    assert metrics is None
    assert ledger.gateway.round(ledger.task_id, RoundId(1)).state == RoundState.FAILED
    events = ledger.gateway.events()
    failed = [e.args["reason"] for e in events if e.name == "RoundFailed"]
    assert failed == ["2 valid updates, 3 needed"]
    assert not [e for e in events if e.name in ("RoundCommitted", "RewardAttributed")]
    assert ledger.gateway.task(ledger.task_id).head_model_hash == model_hash(template())
    report = strategy.reports[0]
    assert report.tx_hash == next(e.tx_hash for e in events if e.name == "RoundFailed")
    assert sum(p.absent for p in report.participants) == 2


def test_a_strategy_that_cannot_aggregate_fails_the_round_instead_of_the_run(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    class Refusing(FedAvg):  # type: ignore[misc]
        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            raise ValueError("needs more replies")

    strategy = _strategy(ledger, store_dir, min_accepted=1, inner=Refusing(fraction_evaluate=0.0))
    _open(strategy, ledger, [1, 2])
    replies = [make_reply(ledger, i + 1, ledger.participants[i], update(i)) for i in range(2)]
    # Execute
    arrays, _ = strategy.aggregate_train(1, replies)
    strategy.flush()
    # Assert
    assert arrays is None
    assert strategy.reports[0].failed_reason == "Refusing could not aggregate: needs more replies"
    assert ledger.gateway.round(ledger.task_id, RoundId(1)).state == RoundState.FAILED
    assert to_hex(ledger.gateway.task(ledger.task_id).head_model_hash) == to_hex(
        model_hash(template())
    )
