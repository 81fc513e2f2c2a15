"""Block context: on the embedded chain a transaction executes with the time and randomness of
the block it is mined in; on every chain a transaction is estimated in the block it will be
mined in (the pending one), which the ledger's rule "no commit in the round's opening block"
needs.

The ledger reads ``block.timestamp`` (a round's opening time, the minimum round duration, the
challenge and claim periods). py-evm stamps a pending block with the wall clock, and the embedded
chain mines it with the parent's time plus BLOCK_INTERVAL_S: a transaction used to read a time
that neither its mined block nor a replay of the chain has.
"""

from __future__ import annotations

import time

from eth_account.signers.local import LocalAccount

from fedchain.chain.backends import BLOCK_INTERVAL_S, AnvilChain, EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import RoundId, TaskTerms

from ._support import Federation, h


def test_a_transaction_reads_the_time_of_the_block_it_is_mined_in(
    fed: Federation, gw: LedgerGateway, embedded: EmbeddedChain
) -> None:
    # Prepare: a task, then the wall clock moves on past the chain's own time
    task_id = fed.task()
    time.sleep(1.1)
    # Execute
    opened = gw.open_round(task_id, RoundId(1), h("init"))
    # Assert: the stored opening time is the mined block's, one interval after its parent
    block = embedded.w3.eth.get_block(opened.block_number)
    parent = embedded.w3.eth.get_block(opened.block_number - 1)
    assert block["timestamp"] == parent["timestamp"] + BLOCK_INTERVAL_S
    assert gw.task(task_id).round_opened_at == block["timestamp"]


def _commit_right_after_opening(fed: Federation, members: list[LocalAccount]) -> None:
    # Prepare: the ledger refuses a commit in the round's opening block, which is the latest
    # block when the commit's gas is estimated (an estimate there reverts)
    fed.register(*members)
    task_id = fed.task()
    opened = fed.gw.open_round(task_id, RoundId(1), h("init"))
    # Execute
    committed = fed.commit(task_id, 1, members)
    # Assert
    assert committed.block_number == opened.block_number + 1
    assert fed.gw.task(task_id).round_opened_block == opened.block_number


def test_a_round_is_committed_right_after_the_block_that_opened_it(
    fed: Federation, accounts: list[LocalAccount]
) -> None:
    _commit_right_after_opening(fed, accounts[1:3])


def test_anvil_estimates_the_commit_in_the_pending_block(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    _commit_right_after_opening(Federation(deploy(anvil.w3, accounts[0])), accounts[1:3])


def test_a_commit_waits_for_the_tasks_minimum_round_duration_on_a_live_node(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare: a task whose rounds last at least 3 s, on a node whose blocks take the wall
    # clock's time; the commit used to be sent at once and revert (LedgerRoundTooShort)
    fed = Federation(deploy(anvil.w3, accounts[0]))
    fed.register(*accounts[1:3])
    spec_hash, initial = h("spec"), h("init")
    task_id, _ = fed.gw.create_task(spec_hash, initial, 100, terms=TaskTerms(min_round_duration=3))
    fed.gw.fund_task(task_id, 1_000)
    fed.join(task_id, *accounts[1:3])
    opened = fed.gw.open_round(task_id, RoundId(1), initial)
    started = time.monotonic()
    # Execute
    committed = fed.commit(task_id, 1, accounts[1:3])
    # Assert: it waited, and the chain recorded a round that lasted its minimum
    assert time.monotonic() - started >= 2.0
    opened_at = anvil.w3.eth.get_block(opened.block_number)["timestamp"]
    committed_at = anvil.w3.eth.get_block(committed.block_number)["timestamp"]
    assert committed_at - opened_at >= 3
