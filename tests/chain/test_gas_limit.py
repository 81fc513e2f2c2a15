"""A write's calldata and gas limit: encoded without web3's normalisers, limited from one
execution of the call (``eth_createAccessList``), with the estimate as the fallback."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from fedchain.chain._transport import calldata
from fedchain.chain.backends import AnvilChain, RpcChain
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import LedgerRoundOutOfOrder
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import RoundId

from ._support import PASS, UNKNOWN_METHOD, Federation, FlakyProxy, h, outcome


def test_calldata_is_the_encoding_web3_gives(
    gw: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    # Prepare: a commit with nested tuples, relayed signatures and rewards
    fed = Federation(gw)
    signed = [fed.sign(a, 1, 1) for a in accounts[1:4]]
    relayed = [
        (
            s.participant,
            s.commitment.update_hash,
            s.commitment.num_examples,
            s.commitment.epsilon,
            *s.compact(),
        )
        for s in signed
    ]
    paid = [(s.participant, 7, 10**18) for s in signed]
    o = outcome("g1")
    call = gw.ledger.functions.commitRound(
        1, 1, relayed, (o.global_model_hash, o.accuracy_ppm, o.loss_ppm, o.scoring_hash), paid
    )

    # Execute
    ours = calldata(call)

    # Assert
    assert ours == call._encode_transaction_data()
    assert ours[:10] == "0x" + keccak(text=call.signature)[:4].hex()


def test_calldata_refuses_arguments_by_name(gw: LedgerGateway) -> None:
    # Prepare
    call = gw.ledger.functions.openRound(taskId=1, round=1, parentModelHash=h("init"))

    # Execute / Assert
    with pytest.raises(TypeError, match="pass the contract arguments by position"):
        calldata(call)


@pytest.fixture
def gw_via_proxy(
    anvil: AnvilChain, proxy: FlakyProxy, accounts: list[LocalAccount]
) -> LedgerGateway:
    """The coordinator's gateway on a fresh ledger, reaching anvil through the proxy."""
    direct = deploy(anvil.w3, accounts[0])
    return LedgerGateway(RpcChain(proxy.url).w3, direct.deployment, accounts[0])


def _committed_round(gw: LedgerGateway, people: list[LocalAccount]) -> str:
    """Create, fund, open and commit a round relaying ``people``: the commit's transaction."""
    fed = Federation(gw)
    task_id = fed.task(funding=1_000)
    fed.register(*people)
    fed.open(task_id, 1)
    rewards = {p.address: 10 for p in people}
    return str(fed.commit(task_id, 1, people, model="g1", rewards=rewards).tx_hash)


@pytest.mark.anvil
def test_a_write_is_limited_from_one_execution_not_the_estimate(
    anvil: AnvilChain, proxy: FlakyProxy, gw_via_proxy: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    # Prepare
    proxy.reset(lambda n, method, k: PASS)

    # Execute
    tx_hash = _committed_round(gw_via_proxy, accounts[1:6])

    # Assert: no estimate was asked for; the limit covers the gas used, with the margin
    tx = anvil.w3.eth.get_transaction(tx_hash)
    receipt = anvil.w3.eth.get_transaction_receipt(tx_hash)
    assert proxy.methods["eth_estimateGas"] == 0
    assert proxy.methods["eth_createAccessList"] >= 5  # task, approve, fund, register, open, ...
    assert receipt["status"] == 1
    assert receipt["gasUsed"] < tx["gas"] < receipt["gasUsed"] * 1.35


@pytest.mark.anvil
def test_a_write_that_earns_a_refund_gets_enough_gas(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare: a reward to claim; claiming clears the owed balance, so part of its gas is refunded
    coordinator, alice = accounts[0], accounts[1]
    gw = deploy(anvil.w3, coordinator)
    _committed_round(gw, [alice])
    gw.transfer_eth(alice.address, 10**18)

    # Execute
    amount, result = gw.as_account(alice).claim()

    # Assert
    assert amount == 10
    assert gw.owed(alice.address) == 0
    assert anvil.w3.eth.get_transaction_receipt(result.tx_hash)["status"] == 1


@pytest.mark.anvil
def test_a_node_without_create_access_list_is_estimated_instead(
    anvil: AnvilChain, proxy: FlakyProxy, gw_via_proxy: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    # Prepare: the node answers eth_createAccessList as unknown
    proxy.reset(lambda n, method, k: UNKNOWN_METHOD if method == "eth_createAccessList" else PASS)

    # Execute
    tx_hash = _committed_round(gw_via_proxy, accounts[1:4])

    # Assert
    assert anvil.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    assert proxy.injected[UNKNOWN_METHOD] == proxy.methods["eth_createAccessList"] > 0
    assert proxy.methods["eth_estimateGas"] == proxy.methods["eth_createAccessList"]


@pytest.mark.anvil
def test_a_revert_found_by_the_execution_is_raised_typed(
    proxy: FlakyProxy, gw_via_proxy: LedgerGateway
) -> None:
    # Prepare
    gw = gw_via_proxy
    task_id = Federation(gw).task(funding=0)
    proxy.reset(lambda n, method, k: PASS)

    # Execute
    with pytest.raises(LedgerRoundOutOfOrder) as caught:
        gw.open_round(task_id, RoundId(2), h("init"))

    # Assert: the execution found the revert; nothing was sent
    assert caught.value.arguments == {"taskId": task_id, "expected": 1, "got": 2}
    assert proxy.methods["eth_createAccessList"] == 1
    assert proxy.methods["eth_sendRawTransaction"] == 0
