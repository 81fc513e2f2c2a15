"""The participant's cheap read of a task's head model and round, from storage words."""

from __future__ import annotations

import hashlib

import pytest

from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import AnvilChain, EmbeddedChain, RpcChain
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import RoundId, RoundOutcome


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _exercise(gateway: LedgerGateway, reader: LedgerGateway) -> None:
    """Two tasks, rounds opened, committed and failed: task_head always equals getTask."""
    first, _ = gateway.create_task(_sha("a"), _sha("init a"), 0)
    second, _ = gateway.create_task(_sha("b"), _sha("init b"), 0)
    for task_id in (first, second):
        assert reader.task_head(task_id) == (_sha(f"init {'a' if task_id == first else 'b'}"), 0)
    parent = _sha("init a")
    for round_no in range(1, 4):
        gateway.open_round(first, RoundId(round_no), parent)
        assert reader.task_head(first) == (parent, round_no)
        if round_no == 2:
            gateway.fail_round(first, RoundId(round_no), "too few updates")
        else:
            parent = _sha(f"global {round_no}")
            gateway.commit_round(first, RoundId(round_no), [], RoundOutcome(parent, 1, 1), [])
        record = gateway.task(first)
        assert reader.task_head(first) == (record.head_model_hash, record.last_round)
    assert reader.task_head(second) == (_sha("init b"), 0)


def test_task_head_matches_the_contracts_view_in_process() -> None:
    gateway = deploy(EmbeddedChain().w3, devnet_accounts(1)[0])
    _exercise(gateway, gateway)


def test_task_head_matches_over_json_rpc_through_the_bridge() -> None:
    # Prepare
    chain = EmbeddedChain()
    gateway = deploy(chain.w3, devnet_accounts(1)[0])
    bridge = RpcBridge(chain.w3)
    try:
        reader = LedgerGateway(RpcChain(bridge.url).w3, gateway.deployment, gateway.account)
        # Execute / Assert
        _exercise(gateway, reader)
    finally:
        bridge.close()


@pytest.mark.anvil
def test_task_head_matches_on_anvil() -> None:
    anvil = AnvilChain().start()
    try:
        gateway = deploy(anvil.w3, devnet_accounts(1)[0])
        _exercise(gateway, gateway)
    finally:
        anvil.close()
