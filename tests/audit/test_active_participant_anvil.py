"""A withdrawal in the block of a merkle round's commit, both orders, on a real node.

anvil mines both transactions in one block (automine off, the first one paying the higher tip),
and the audit reads the block back as it would any ledger: the withdrawal before the commit makes
the participant inactive for that round, the one after does not, in the merkle check and in the
signature check alike. (The embedded chain cannot show this: it mines each transaction in its own
block, and eth-tester numbers a log within its transaction, not within its block.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from fedchain.audit import MERKLE, SIGNATURES, audit_lineage
from fedchain.audit.lineage import rebuild_lineage
from fedchain.audit.merkle import audit_merkle_run
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import AnvilChain, find_anvil
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import ChainError
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.merkle import RewardLeaf
from fedchain.chain.records import Commitment, RoundId, TaskId
from fedchain.chain.signing import sign_commitment
from fedchain.federation.merkle_rounds import MerkleRound, publish
from fedchain.store import ModelStore

pytestmark = pytest.mark.anvil
GWEI = 10**9


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilChain]:
    try:
        find_anvil()
    except ChainError as exc:  # `make test` installs it: its absence is a failure, not a skip
        pytest.fail(f"anvil is required for this test: {exc}")
    chain = AnvilChain().start()
    yield chain
    chain.close()


def _digest(tag: str) -> bytes:
    return Web3.keccak(text=tag)


def _signed_tx(w3: Web3, account: LocalAccount, call: Any, tip_gwei: int) -> bytes:
    tx = call.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address),
            "gas": 1_000_000,
            "maxFeePerGas": 200 * GWEI,
            "maxPriorityFeePerGas": tip_gwei * GWEI,
            "chainId": w3.eth.chain_id,
        }
    )
    return bytes(account.sign_transaction(tx).raw_transaction)


def _in_one_block(w3: Web3, first: bytes, second: bytes) -> list[Any]:
    """Mine ``first`` then ``second`` in one block; their receipts."""
    w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    try:
        hashes = [w3.eth.send_raw_transaction(raw) for raw in (first, second)]
        w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    finally:
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])
    return [w3.eth.get_transaction_receipt(h) for h in hashes]


def _merkle_round(
    gw: LedgerGateway, people: list[LocalAccount], out: Path
) -> tuple[TaskId, MerkleRound]:
    """``people`` registered, task created and funded, round 1 opened, its record published."""
    gw.register_participants([p.address for p in people], [_digest("org")] * len(people))
    task, _ = gw.create_task(_digest("spec"), _digest("initial"), 1_000)
    gw.fund_task(task, 10_000)
    gw.open_round(task, RoundId(1), _digest("initial"))
    signed = [
        sign_commitment(p, gw.domain, Commitment(task, RoundId(1), _digest(p.address), 10))
        for p in people
    ]
    leaves = [RewardLeaf(s.participant, s.commitment.update_hash, 10, 500_000, 100) for s in signed]
    record = MerkleRound.build(gw.domain, task, 1, leaves, signed)
    publish(record, out, ModelStore(out / "store"))
    return task, record


@pytest.mark.parametrize("withdrawal", ["before", "after"])
def test_a_withdrawal_in_the_commit_block_counts_only_before_the_commit(
    anvil: AnvilChain, tmp_path: Path, withdrawal: str
) -> None:
    # Prepare
    coordinator, alice, bob = devnet_accounts(3)  # DEVNET TEST keys 0..2
    gw = deploy(anvil.w3, coordinator)
    task, record = _merkle_round(gw, [alice, bob], tmp_path)
    root = record.round_root()
    commit = gw.ledger.functions.commitRoundRoot(
        task,
        1,
        (root.root, root.record_hash, root.leaf_count, root.total_reward),
        (_digest("global"), 900_000, 250_000, _digest("scoring")),
    )
    withdraw = gw.ledger.functions.withdraw()
    txs = {"before": [(bob, withdraw), (coordinator, commit)]}
    txs["after"] = txs["before"][::-1]
    (early, first_call), (late, second_call) = txs[withdrawal]
    first = _signed_tx(anvil.w3, early, first_call, tip_gwei=5)  # anvil mines higher tips first
    second = _signed_tx(anvil.w3, late, second_call, tip_gwei=1)
    # Execute
    receipts = _in_one_block(anvil.w3, first, second)
    problems = audit_merkle_run(tmp_path, gw, task)
    verdict = audit_lineage(rebuild_lineage(gw), store=tmp_path / "store")
    # Assert: one block, in the order asked, both succeeded
    assert [r["status"] for r in receipts] == [1, 1]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"]
    assert receipts[0]["transactionIndex"] < receipts[1]["transactionIndex"]
    failing = {
        kind: [c.participant for c in verdict.failures if c.check == kind]
        for kind in (MERKLE, SIGNATURES)
    }
    if withdrawal == "before":
        assert [(p.round, p.participant) for p in problems] == [(1, bob.address)]
        assert failing == {MERKLE: [bob.address], SIGNATURES: [bob.address]}
    else:
        assert problems == []
        assert failing == {MERKLE: [], SIGNATURES: []}
