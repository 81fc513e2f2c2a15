"""Transient RPC failures are retried, and a retried write is recorded once.

A small JSON-RPC proxy between the gateway and anvil fails requests on purpose: HTTP 503, a closed
connection, or a transaction forwarded to anvil whose answer is then dropped (on chain, unheard).
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.chain.backends import AnvilChain, RpcChain
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import ChainError, ChainUnreachable
from fedchain.chain.gateway import LedgerGateway, RetryPolicy
from fedchain.chain.records import RoundId, RoundState, TaskId

from ._support import (
    CLOSE,
    FAIL_503,
    FORWARD_THEN_CLOSE,
    PASS,
    Federation,
    FlakyProxy,
    names,
)

pytestmark = pytest.mark.anvil

FAST = RetryPolicy(first_delay_s=0.01, max_delay_s=0.05, receipt_timeout_s=10)


@pytest.fixture
def direct(anvil: AnvilChain, coordinator: LocalAccount) -> LedgerGateway:
    """A fresh ledger, deployed and read straight on anvil, bypassing the proxy."""
    return deploy(anvil.w3, coordinator)


def through(proxy: FlakyProxy, direct: LedgerGateway, retry: RetryPolicy = FAST) -> LedgerGateway:
    """The coordinator's gateway on the same ledger, reaching anvil only through the proxy."""
    return LedgerGateway(RpcChain(proxy.url).w3, direct.deployment, direct.account, retry)


def run_round(gw: LedgerGateway, participants: list[LocalAccount]) -> TaskId:
    """create, fund, register, open round 1, commit it with every participant relayed."""
    fed = Federation(gw)
    task_id = fed.task(funding=1_000)
    fed.register(*participants)
    fed.open(task_id, 1)
    fed.commit(task_id, 1, participants, model="g1", rewards={p.address: 10 for p in participants})
    return task_id


def assert_recorded_once(
    direct: LedgerGateway, task_id: TaskId, participants: list[LocalAccount]
) -> None:
    events = direct.events()
    assert direct.round(task_id, RoundId(1)).state == RoundState.COMMITTED
    assert names(events, "TaskCreated", "TaskFunded", "RoundOpened", "RoundCommitted") == [
        "TaskCreated",
        "TaskFunded",
        "RoundOpened",
        "RoundCommitted",
    ]
    assert names(events, "OrganisationRegistered") == ["OrganisationRegistered"] * len(participants)
    assert names(events, "MemberJoined") == ["MemberJoined"] * len(participants)
    recorded = [e.args["participant"] for e in events if e.name == "CommitmentRecorded"]
    assert sorted(recorded) == sorted(p.address for p in participants)
    assert direct.task(task_id).attributed == 10 * len(participants)


@pytest.mark.parametrize("fault", [FAIL_503, CLOSE], ids=["http-503", "connection-closed"])
def test_a_round_through_a_flaky_link_is_committed_once(
    fault: str,
    proxy: FlakyProxy,
    direct: LedgerGateway,
    anvil: AnvilChain,
    accounts: list[LocalAccount],
) -> None:
    # Prepare: every 3rd request fails (HTTP 503, or its connection is closed unanswered, which
    # web3 itself does not retry: the gateway's policy must), and the first transaction reaches
    # anvil but its answer is lost
    def rule(n: int, method: str, k: int) -> str:
        if method == "eth_sendRawTransaction" and k == 1:
            return FORWARD_THEN_CLOSE
        return fault if n % 3 == 0 else PASS

    proxy.reset(rule)
    gw = through(proxy, direct)
    participants = accounts[1:4]
    nonce_before = anvil.w3.eth.get_transaction_count(direct.account.address)

    # Execute
    task_id = run_round(gw, participants)

    # Assert: failures were injected, and nothing was recorded twice
    assert proxy.injected[fault] > 0
    assert proxy.forwarded_then_dropped == ["eth_sendRawTransaction"]
    assert_recorded_once(direct, task_id, participants)
    # create, approve, fund, the registrations (one multicall), the consents relayed (one batch),
    # open, commit: 7 transactions, none duplicated
    assert anvil.w3.eth.get_transaction_count(direct.account.address) - nonce_before == 7


def test_every_call_losing_its_first_answer_still_commits_once(
    proxy: FlakyProxy,
    direct: LedgerGateway,
    anvil: AnvilChain,
    accounts: list[LocalAccount],
) -> None:
    # Prepare: the 1st, 3rd, 5th... request of every JSON-RPC method loses its connection; every
    # transaction's first send reaches anvil but its answer is lost
    def rule(n: int, method: str, k: int) -> str:
        if k % 2 == 1:
            return FORWARD_THEN_CLOSE if method == "eth_sendRawTransaction" else CLOSE
        return PASS

    gw = through(proxy, direct)
    proxy.reset(rule)
    participants = accounts[1:3]
    nonce_before = anvil.w3.eth.get_transaction_count(direct.account.address)

    # Execute
    task_id = run_round(gw, participants)

    # Assert: create, approve, fund, 2 registrations, open, commit
    assert proxy.forwarded_then_dropped.count("eth_sendRawTransaction") == 7
    assert_recorded_once(direct, task_id, participants)
    assert anvil.w3.eth.get_transaction_count(direct.account.address) - nonce_before == 7


@pytest.mark.parametrize("failure", [FAIL_503, CLOSE])
def test_a_dead_link_raises_chain_unreachable_after_the_policy_attempts(
    failure: str, proxy: FlakyProxy, direct: LedgerGateway
) -> None:
    # Prepare: a healthy link to build the gateway, then every request fails
    policy = RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.02)
    gw = through(proxy, direct, policy)
    proxy.reset(lambda n, method, k: failure)

    # Execute
    with pytest.raises(ChainUnreachable) as caught:
        gw.task_count()

    # Assert: one request per attempt, and a message that names the URL and what to do
    assert proxy.requests == policy.attempts
    assert proxy.url in str(caught.value)
    assert "`fedchain devnet`" in str(caught.value)


def test_a_nonce_taken_by_another_transaction_is_reported_as_such(
    proxy: FlakyProxy, direct: LedgerGateway, anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare: just before the gateway's transaction reaches anvil, another transaction from the
    # same key (a second process, a wallet) takes its nonce; anvil answers "nonce too low"
    coordinator = direct.account

    def rule(n: int, method: str, k: int) -> str:
        if method == "eth_sendRawTransaction" and k == 1:
            nonce = anvil.w3.eth.get_transaction_count(coordinator.address, "pending")
            base = anvil.w3.eth.get_block("latest")["baseFeePerGas"]
            competing = coordinator.sign_transaction(
                {
                    "to": coordinator.address,
                    "value": 0,
                    "gas": 21_000,
                    "nonce": nonce,
                    "chainId": direct.deployment.chain_id,
                    "maxFeePerGas": 2 * base + 1,
                    "maxPriorityFeePerGas": 1,
                }
            )
            anvil.w3.eth.send_raw_transaction(competing.raw_transaction)
        return PASS

    policy = RetryPolicy(attempts=2, first_delay_s=0.01, receipt_timeout_s=0.5)
    gw = through(proxy, direct, policy)
    proxy.reset(rule)

    # Execute: the gateway's transaction can never be mined
    with pytest.raises(ChainError) as caught:
        gw.transfer_eth(accounts[1].address, 1)

    # Assert: the caller learns of the nonce conflict, not of an unreachable chain
    assert not isinstance(caught.value, ChainUnreachable), str(caught.value)
    assert "nonce" in str(caught.value)
