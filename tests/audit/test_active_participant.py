"""One rule for "active when the round committed", the contract's: what ran before the commit in
its block counts, what ran after it does not.

``commitRound`` checks each relayed signer's role at the moment it runs, so a withdrawal earlier
in the same block makes the signer inactive and one later in that block does not. A merkle round
(``commitRoundRoot``) checks nobody on chain: the audit checks its published leaves by the same
rule. The signature check and the merkle check once disagreed when a withdrawal (or a
registration) landed in the commit's block: the merkle check compared block numbers only.

Here the ledger's events are written out directly (block number, log index), so every order
within a block can be set; ``test_active_participant_anvil.py`` makes the same blocks on a node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.audit import MERKLE, SIGNATURES, audit_lineage
from fedchain.audit.lineage import Membership, rebuild_lineage
from fedchain.audit.merkle import MerkleProblem, audit_merkle_run
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.gateway import LedgerEvent
from fedchain.chain.merkle import RewardLeaf
from fedchain.chain.records import Commitment, RoundId, TaskId
from fedchain.chain.signing import LedgerDomain, sign_commitment
from fedchain.federation.merkle_rounds import MerkleRound, publish
from fedchain.store import ModelStore

DOMAIN = LedgerDomain(31337, "0x" + "11" * 20)
TOKEN = "0x" + "22" * 20
TASK, ROUND, COMMIT_BLOCK = 1, 1, 9


def _hex32(tag: str) -> str:
    return "0x" + hashlib.sha256(tag.encode()).hexdigest()


@dataclass
class _Ledger:
    """The events of a ledger, read back as the gateway gives them (no node behind it)."""

    domain: LedgerDomain
    recorded: list[LedgerEvent]

    def events(self) -> list[LedgerEvent]:
        return list(self.recorded)


class _Block:
    """Events of one block, each with the next log index (as a node numbers them)."""

    def __init__(self, number: int) -> None:
        self.number, self.events = number, []  # type: list[LedgerEvent]

    def tx(self, *logs: tuple[str, dict[str, Any]]) -> _Block:
        tx_hash = _hex32(f"tx-{self.number}-{len(self.events)}")
        for name, args in logs:
            self.events.append(LedgerEvent(name, args, self.number, tx_hash, len(self.events)))
        return self


def _registered(who: str) -> tuple[str, dict[str, Any]]:
    return "ParticipantRegistered", {"participant": who, "orgHash": _hex32(who)}


def _withdrew(who: str) -> tuple[str, dict[str, Any]]:
    return "ParticipantWithdrew", {"participant": who}


def _commit_root(record: MerkleRound) -> list[tuple[str, dict[str, Any]]]:
    """``commitRoundRoot``'s two events."""
    root = record.round_root()
    at = {"taskId": TASK, "round": ROUND}
    return [
        (
            "RoundRootCommitted",
            {
                **at,
                "root": "0x" + root.root.hex(),
                "recordHash": "0x" + root.record_hash.hex(),
                "leafCount": root.leaf_count,
                "totalReward": root.total_reward,
            },
        ),
        (
            "RoundCommitted",
            {
                **at,
                "globalModelHash": _hex32("global"),
                "accuracyPpm": 900_000,
                "lossPpm": 250_000,
                "scoringHash": _hex32("scoring"),
                "commitmentCount": root.leaf_count,
                "totalReward": root.total_reward,
            },
        ),
    ]


def _record(people: Sequence[LocalAccount]) -> MerkleRound:
    signed = [
        sign_commitment(
            p,
            DOMAIN,
            Commitment(TaskId(TASK), RoundId(ROUND), bytes.fromhex(_hex32(p.address)[2:]), 10),
        )
        for p in people
    ]
    leaves = [RewardLeaf(s.participant, s.commitment.update_hash, 10, 500_000, 100) for s in signed]
    return MerkleRound.build(DOMAIN, TASK, ROUND, leaves, signed)


def _ledger(
    out: Path, people: Sequence[LocalAccount], commit_block: _Block
) -> tuple[_Ledger, MerkleRound]:
    """``people`` registered, task 1 round 1 opened, then ``commit_block`` (which commits it)."""
    record = _record(people)
    publish(record, out, ModelStore(out / "store"))
    founders = _Block(1).tx(*(_registered(p.address) for p in people[:2]))
    created = _Block(2).tx(
        (
            "TaskCreated",
            {
                "taskId": TASK,
                "specHash": _hex32("spec"),
                "initialModelHash": _hex32("initial"),
                "token": TOKEN,
                "rewardPerRound": 1_000,
                "coordinator": DOMAIN.verifying_contract,
            },
        )
    )
    opened = _Block(3).tx(
        ("RoundOpened", {"taskId": TASK, "round": ROUND, "parentModelHash": _hex32("initial")})
    )
    events = founders.events + created.events + opened.events + commit_block.events
    return _Ledger(DOMAIN, events), record


@pytest.fixture(scope="module")
def people() -> list[LocalAccount]:
    return devnet_accounts(4)[1:]  # DEVNET TEST keys 1..3


def _findings(ledger: _Ledger, out: Path) -> tuple[list[MerkleProblem], dict[str, list[str]]]:
    """The merkle audit's problems, and the verdict's failing participants of the two checks."""
    problems = audit_merkle_run(out, cast(Any, ledger), TASK)
    verdict = audit_lineage(rebuild_lineage(cast(Any, ledger)), store=out / "store")
    failing = {
        kind: [c.participant or "" for c in verdict.failures if c.check == kind]
        for kind in (MERKLE, SIGNATURES)
    }
    return problems, failing


def test_a_withdrawal_before_the_commit_in_its_block_makes_the_participant_inactive(
    people: list[LocalAccount], tmp_path: Path
) -> None:
    # Prepare: bob withdraws, then the round is committed, in one block
    alice, bob = people[0].address, people[1].address
    block = _Block(COMMIT_BLOCK).tx(_withdrew(bob)).tx(*_commit_root(_record(people[:2])))
    ledger, _ = _ledger(tmp_path, people[:2], block)
    # Execute
    problems, failing = _findings(ledger, tmp_path)
    # Assert
    assert [(p.round, p.participant) for p in problems] == [(ROUND, bob)]
    assert "not active" in problems[0].problem
    assert failing == {MERKLE: [bob], SIGNATURES: [bob]}
    assert alice not in failing[SIGNATURES]


def test_a_withdrawal_after_the_commit_in_its_block_leaves_the_participant_active(
    people: list[LocalAccount], tmp_path: Path
) -> None:
    # Prepare: the round is committed, then bob withdraws, in one block
    bob = people[1].address
    block = _Block(COMMIT_BLOCK).tx(*_commit_root(_record(people[:2]))).tx(_withdrew(bob))
    ledger, _ = _ledger(tmp_path, people[:2], block)
    # Execute
    problems, failing = _findings(ledger, tmp_path)
    # Assert
    assert problems == []
    assert failing == {MERKLE: [], SIGNATURES: []}


def test_a_registration_after_the_commit_in_its_block_is_too_late(
    people: list[LocalAccount], tmp_path: Path
) -> None:
    # Prepare: carol has a leaf, and is registered in the commit's block, after the commit
    carol = people[2].address
    block = _Block(COMMIT_BLOCK).tx(*_commit_root(_record(people))).tx(_registered(carol))
    ledger, _ = _ledger(tmp_path, people, block)
    # Execute
    problems, failing = _findings(ledger, tmp_path)
    # Assert
    assert [(p.round, p.participant) for p in problems] == [(ROUND, carol)]
    assert failing == {MERKLE: [carol], SIGNATURES: [carol]}


@pytest.mark.parametrize(
    ("registered", "withdrawn", "at", "active"),
    [
        ((5, 1), None, (5, 2), True),
        ((5, 1), None, (5, 0), False),
        ((5, 1), (7, 3), (7, 2), True),
        ((5, 1), (7, 3), (7, 4), False),
        ((5, 1), (7, 3), (8, 0), False),
    ],
)
def test_membership_is_ordered_by_block_then_log_index(
    registered: tuple[int, int],
    withdrawn: tuple[int, int] | None,
    at: tuple[int, int],
    active: bool,
) -> None:
    member = Membership("0x" + "33" * 20, _hex32("org"), registered, withdrawn)
    assert member.active_at(at) is active
    assert (member.inactive_reason(at) == "") is active
