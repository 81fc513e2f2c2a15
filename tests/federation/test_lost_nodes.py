"""A hospital's node lost in a round (issue 19, item 5): recorded absent with the address it
signed with in earlier rounds and the reason Flower's SuperLink gave, not "round timeout"."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.server.superlink.linkstate.utils import NODE_UNAVAILABLE_ERROR_REASON
from flwr.serverapp.strategy import FedAvg

from fedchain.chain.records import RoundId
from fedchain.federation.ledger_strategy import LedgerLink, LedgerStrategy
from fedchain.federation.messages import arrays_to_numpy
from fedchain.hashing import model_hash, to_hex
from fedchain.store import ModelStore

from .conftest import BUDGET, Ledger, instruction, make_reply, template, update

SUPERLINK_NODE_ID = 1  # Flower's: the SuperLink answers for a lost node from its own id
NODES = [2, 3, 4]


def _strategy(ledger: Ledger, store: Path) -> LedgerStrategy:
    return LedgerStrategy(
        FedAvg(fraction_evaluate=0.0),
        link=LedgerLink(ledger.gateway, ledger.task_id, "unused"),
        store=ModelStore(store),
        evaluate=lambda weights: (0.75, 0.5),
        template=template(),
        reward_per_round=BUDGET,
        min_accepted=2,
    )


def _sent(node_id: int, round_id: int) -> Message:
    """The train message to ``node_id`` as the grid pushed it (the grid sets its id)."""
    message = instruction(node_id)
    message.metadata.__dict__["_message_id"] = f"train-{round_id}-{node_id}"
    return message


def _open(strategy: LedgerStrategy, ledger: Ledger, round_id: int, parent: dict) -> None:  # type: ignore[type-arg]
    """What configure_train does, without a Flower grid: the round sent to every node."""
    digest = model_hash(parent)
    strategy._started[round_id] = 0.0
    strategy._parents[round_id] = digest
    strategy._parent_weights[round_id] = parent
    strategy._sampled[round_id] = list(NODES)
    strategy._sent[round_id] = [_sent(n, round_id) for n in NODES]
    ledger.gateway.open_round(ledger.task_id, RoundId(round_id), digest)


def _superlink_error(node_id: int, round_id: int, code: int, reason: str) -> Message:
    """The SuperLink's error reply in place of a lost node: from its own node id, answering the
    message sent to that node."""
    asked = Message(RecordDict(), dst_node_id=SUPERLINK_NODE_ID, message_type="train")
    asked.metadata.__dict__["_message_id"] = f"train-{round_id}-{node_id}"
    return Message(Error(code=code, reason=reason), reply_to=asked)


def test_a_node_that_missed_its_heartbeat_is_absent_with_its_address_and_the_reason(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: round 1, every node answers (the server learns who signs for each node)
    strategy = _strategy(ledger, store_dir)
    sites = dict(zip(NODES, ledger.participants, strict=False))
    _open(strategy, ledger, 1, template())
    arrays, _ = strategy.aggregate_train(
        1, [make_reply(ledger, n, sites[n], update(i)) for i, n in enumerate(NODES)]
    )
    strategy.flush()
    assert arrays is not None
    _open(strategy, ledger, 2, arrays_to_numpy(arrays))
    # Round 2: node 3's SuperNode stopped (the SuperLink answers for it), node 4 says nothing
    replies = [
        make_reply(ledger, 2, sites[2], update(5), round_id=2),
        _superlink_error(3, 2, ErrorCode.NODE_UNAVAILABLE, NODE_UNAVAILABLE_ERROR_REASON),
    ]
    # Execute
    strategy.aggregate_train(2, replies)
    strategy.flush()
    # Assert
    report = strategy.reports[1]
    absent = {p.node_id: p for p in report.participants if p.absent}
    assert sorted(absent) == [3, 4]
    assert absent[3].address == sites[3].address
    assert absent[3].reason.startswith("node unavailable: its SuperNode missed its heartbeats")
    assert absent[4].address == sites[4].address  # known from round 1
    assert absent[4].reason == "no reply within the round timeout"
    assert to_hex(model_hash(arrays_to_numpy(arrays))) == report.parent_model_hash


def test_a_node_lost_before_it_ever_answered_has_the_reason_and_no_address(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    sites = dict(zip(NODES, ledger.participants, strict=False))
    _open(strategy, ledger, 1, template())
    replies = [
        make_reply(ledger, 2, sites[2], update(0)),
        make_reply(ledger, 3, sites[3], update(1)),
        _superlink_error(4, 1, ErrorCode.REPLY_MESSAGE_UNAVAILABLE, "expired"),
    ]
    # Execute
    strategy.aggregate_train(1, replies)
    strategy.flush()
    # Assert: one absent row for node 4, with the SuperLink's reason, no address yet
    (lost,) = [p for p in strategy.reports[0].participants if p.absent]
    assert (lost.node_id, lost.address) == (4, "")
    assert lost.reason == "its reply expired on the SuperLink before the server read it"
