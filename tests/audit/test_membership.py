"""The audit's one definition of membership (the contract's, by round) and the merkle-mode
checks built on it: a leaf paying a non-member, at another index, or above the dataset size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fedchain.audit.lineage import Membership
from fedchain.audit.merkle import audit_merkle_rounds
from fedchain.chain.merkle import RewardLeaf
from fedchain.chain.records import Commitment, RoundId, TaskId
from fedchain.chain.signing import LedgerDomain, sign_commitment
from fedchain.federation.merkle_rounds import ChainRoot, MerkleRound, publish
from fedchain.store import ModelStore

DOMAIN = LedgerDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
WHO = "0x" + "33" * 20


def _member(joined: int, left: int = 0, index: int = 0, size: int = 100) -> Membership:
    return Membership(1, WHO, index, joined, size, "0x" + "00" * 32, True, (1, 0), left_round=left)


@pytest.mark.parametrize(
    ("joined", "left", "round_id", "eligible", "member_when_opened"),
    [
        (1, 0, 1, True, True),  # a member from round 1
        (2, 0, 1, False, False),  # joined while round 1 was committed: from round 2
        (1, 3, 2, True, True),  # left from round 3: still eligible in round 2
        (1, 3, 3, False, True),  # left while round 3 was open: out of 3, but no ground to void
        (1, 3, 4, False, False),  # left before round 4 opened
    ],
)
def test_membership_counts_by_round_as_the_contract_does(
    joined: int, left: int, round_id: int, eligible: bool, member_when_opened: bool
) -> None:
    # Prepare
    member = _member(joined, left)
    # Execute / Assert
    assert member.eligible(round_id) is eligible
    assert member.member_when_opened(round_id) is member_when_opened
    assert (member.ineligible_reason(round_id) == "") is eligible


def _publish(tmp_path: Path, leaf: RewardLeaf) -> ChainRoot:
    """A merkle round of one leaf, signed by a DEVNET TEST key, published; its chain root."""
    from fedchain.chain.accounts import devnet_account

    account = devnet_account(1)
    leaf = RewardLeaf(
        leaf.task_id, leaf.round, leaf.index, account.address, leaf.update_hash,
        leaf.num_examples, leaf.score, leaf.amount,
    )  # fmt: skip
    commitment = Commitment(TaskId(1), RoundId(1), leaf.update_hash, leaf.num_examples)
    signed = sign_commitment(account, DOMAIN, commitment)
    record = MerkleRound.build(DOMAIN, 1, 1, [leaf], [signed])
    publish(record, tmp_path, ModelStore(tmp_path / "store"))
    root = record.round_root()
    return ChainRoot("0x" + root.root.hex(), "0x" + root.record_hash.hex(), 1, leaf.amount, 5)


@pytest.mark.parametrize(
    ("index", "examples", "joined", "expected"),
    [
        (0, 50, 1, None),
        (1, 50, 1, "its leaf carries index 1, its member index is 0"),
        (0, 101, 1, "above the dataset size 100 it consented to"),
        (0, 50, 2, "joined task 1 only from round 2"),
    ],
)
def test_the_merkle_audit_checks_each_leaf_against_its_membership(
    tmp_path: Path, index: int, examples: int, joined: int, expected: str | None
) -> None:
    # Prepare
    from fedchain.chain.accounts import devnet_account

    digest = hashlib.sha256(b"update").digest()
    leaf = RewardLeaf(1, 1, index, WHO, digest, examples, 1, 10)
    chain = _publish(tmp_path, leaf)
    member = _member(joined)
    member.participant = devnet_account(1).address
    # Execute
    problems = audit_merkle_rounds(
        tmp_path, {1: chain}, DOMAIN, 1,
        participants={member.participant: member}, committed={1: (6, 0)},
    )  # fmt: skip
    # Assert
    texts = [p.problem for p in problems]
    if expected is None:
        assert texts == []
    else:
        assert len(texts) == 1
        assert expected in texts[0]


def test_the_merkle_audit_flags_a_leaf_paying_a_non_member(tmp_path: Path) -> None:
    # Prepare
    leaf = RewardLeaf(1, 1, 0, WHO, hashlib.sha256(b"u").digest(), 5, 1, 10)
    chain = _publish(tmp_path, leaf)
    # Execute
    problems = audit_merkle_rounds(
        tmp_path, {1: chain}, DOMAIN, 1, participants={}, committed={1: (6, 0)}
    )
    # Assert
    assert [p.problem for p in problems] == ["is paid by a leaf but is not a member of task 1"]
