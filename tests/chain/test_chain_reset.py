"""A node that loses transactions it had mined: the lost writes are sent again, once each.

anvil's ``evm_revert`` makes a node forget its latest blocks, as an anvil killed between two dumps
of its state file does when it restarts: the coordinator's queue must notice (before its next
write, while idle, or while a transaction waits behind a nonce gap) and send every lost write
again, recognising those the chain still holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.chain.backends import AnvilChain, RpcChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway, RetryPolicy
from fedchain.chain.queue import WriteQueue
from fedchain.chain.records import Reward, RoundId, RoundState, TaskId

from ._support import PASS, Federation, FlakyProxy, h, names, outcome

pytestmark = pytest.mark.anvil

FAST = RetryPolicy(first_delay_s=0.01, max_delay_s=0.05, receipt_timeout_s=20, lost_check_s=0.2)


def _rpc(anvil: AnvilChain, method: str, *params: Any) -> Any:
    return anvil.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def _snapshot(anvil: AnvilChain) -> str:
    return str(_rpc(anvil, "evm_snapshot"))


def _forget_since(anvil: AnvilChain, snapshot: str) -> None:
    """The node loses every block mined since ``snapshot``."""
    assert _rpc(anvil, "evm_revert", snapshot) is True


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _task(gw: LedgerGateway, queue: WriteQueue, participants: list[LocalAccount]) -> TaskId:
    """Create a task as the coordinator does: created at once, the rest queued."""
    task_id, _ = gw.create_task(h("spec"), h("init"), 1_000)
    queue.remember(partial(gw.ensure_task, task_id, h("spec"), h("init"), 1_000))
    queue.submit(lambda: gw.ensure_funded(task_id, 10_000))
    addresses = [p.address for p in participants]
    queue.submit(lambda: gw.register_organisations([(a, "Org", h(a), "") for a in addresses]))
    queue.submit(lambda: Federation(gw).join(task_id, *participants))
    return task_id


def _commit(gw: LedgerGateway, task_id: TaskId, round_id: int, people: list[LocalAccount]) -> Any:
    fed = Federation(gw)
    signed = [fed.sign(p, task_id, round_id) for p in people]
    paid = [Reward(p.address, 1_000_000, 10) for p in people]
    return gw.commit_round(task_id, RoundId(round_id), signed, outcome(f"g{round_id}"), paid)


def _assert_each_once(gw: LedgerGateway, task_id: TaskId, rounds: int, people: int) -> None:
    events = [e for e in gw.events() if e.args.get("taskId") in (None, task_id)]
    assert names(events, "TaskCreated", "TaskFunded") == ["TaskCreated", "TaskFunded"]
    assert [e.args["round"] for e in events if e.name == "RoundOpened"] == list(
        range(1, rounds + 1)
    )
    assert [e.args["round"] for e in events if e.name == "RoundCommitted"] == list(
        range(1, rounds + 1)
    )
    registered = [e for e in events if e.name == "OrganisationRegistered"]
    assert len(registered) == people
    assert gw.task(task_id).attributed == 10 * people * rounds


def test_writes_the_node_lost_are_sent_again_before_the_next_one(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare: a funded task; then participants, round 1 opened and committed, which the node
    # then loses
    gw = deploy(anvil.w3, accounts[0], retry=FAST)
    people = accounts[1:3]
    queue = WriteQueue()
    task_id = _task(gw, queue, people)
    queue.flush()
    before = _snapshot(anvil)
    queue.submit(lambda: gw.open_round(task_id, RoundId(1), h("init")))
    queue.submit(lambda: _commit(gw, task_id, 1, people))
    queue.flush()
    _forget_since(anvil, before)
    assert gw.round(task_id, RoundId(1)).state == RoundState.NONE

    # Execute: the next write finds its predecessor gone
    queue.submit(lambda: gw.open_round(task_id, RoundId(2), h("g1")))
    queue.submit(lambda: _commit(gw, task_id, 2, people))
    queue.flush()
    queue.close()

    # Assert: round 1 is back, round 2 follows it, nothing twice
    _assert_each_once(gw, task_id, rounds=2, people=2)


def test_an_idle_queue_notices_the_loss_and_sends_the_writes_again(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare
    gw = deploy(anvil.w3, accounts[0], retry=FAST)
    people = accounts[1:3]
    queue = WriteQueue(probe=gw.check_durable, probe_every_s=0.1)
    task_id = _task(gw, queue, people)
    queue.submit(lambda: gw.open_round(task_id, RoundId(1), h("init")))
    queue.flush()
    before = _snapshot(anvil)
    queue.submit(lambda: _commit(gw, task_id, 1, people))
    queue.flush()

    # Execute: the node loses the commit; no further write is queued
    _forget_since(anvil, before)

    # Assert: the probe finds it gone and the commit is sent again (clients waiting for the
    # round's model would otherwise wait in vain)
    _wait_for(lambda: gw.round(task_id, RoundId(1)).state == RoundState.COMMITTED)
    queue.close()
    _assert_each_once(gw, task_id, rounds=1, people=2)


def test_a_transaction_stranded_behind_a_lost_nonce_is_recovered(
    anvil: AnvilChain, proxy: FlakyProxy, accounts: list[LocalAccount]
) -> None:
    # Prepare: the coordinator reaches anvil through a proxy; just as the commit of round 1 is
    # sent, the node loses the opening of round 1 (an earlier nonce), so the commit can never
    # be mined as it is
    direct = deploy(anvil.w3, accounts[0])
    gw = LedgerGateway(RpcChain(proxy.url).w3, direct.deployment, direct.account, FAST)
    people = accounts[1:3]
    queue = WriteQueue()
    task_id = _task(gw, queue, people)
    queue.flush()
    before = _snapshot(anvil)
    queue.submit(lambda: gw.open_round(task_id, RoundId(1), h("init")))
    queue.flush()
    sends = {"n": 0}

    def rule(n: int, method: str, k: int) -> str:
        if method == "eth_sendRawTransaction":
            sends["n"] += 1
            if sends["n"] == 1:
                _forget_since(anvil, before)
        return PASS

    proxy.reset(rule)

    # Execute
    queue.submit(lambda: _commit(gw, task_id, 1, people))
    queue.flush()
    queue.close()

    # Assert: the opening was sent again, which let the stranded commit through
    assert sends["n"] >= 2
    _assert_each_once(direct, task_id, rounds=1, people=2)
