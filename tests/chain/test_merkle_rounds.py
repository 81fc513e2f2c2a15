"""Merkle mode through the gateway: commit a root, publish the record, claim leaves, audit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.audit.merkle import audit_merkle_run, round_entries
from fedchain.chain.errors import (
    LedgerLeafAlreadyClaimed,
    LedgerLeafProofInvalid,
    LedgerNotTaskCoordinator,
    LedgerRoundBudgetExceeded,
)
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.merkle import LeafClaim, RewardLeaf
from fedchain.chain.records import RoundId, SignedCommitment, TaskId
from fedchain.chain.signing import sign_commitment
from fedchain.federation.merkle_rounds import (
    MerkleRecordError,
    MerkleRound,
    publish,
    record_path,
    reward_balances,
    unclaimed_leaves,
    verified_records,
)
from fedchain.store import ModelStore

from ._support import Federation, names, outcome

AMOUNTS = (100, 250, 0)


def _round(fed: Federation, task: TaskId, round_id: int, people: list[LocalAccount]) -> MerkleRound:
    """Sign one commitment per participant and build the round's record."""
    signed = [fed.sign(p, task, round_id, num_examples=10 + i) for i, p in enumerate(people)]
    leaves = [
        RewardLeaf(
            task_id=task,
            round=round_id,
            index=fed.gw.membership(task, s.participant).index,
            participant=s.participant,
            update_hash=s.commitment.update_hash,
            num_examples=s.commitment.num_examples,
            score=-5 + i,
            amount=a,
        )
        for i, (s, a) in enumerate(zip(signed, AMOUNTS, strict=False))
    ]
    return MerkleRound.build(fed.gw.domain, task, round_id, leaves, signed)


@pytest.fixture
def people(accounts: list[LocalAccount]) -> list[LocalAccount]:
    return accounts[1:4]


@pytest.fixture
def committed(
    fed: Federation, people: list[LocalAccount], tmp_path: Path
) -> tuple[TaskId, MerkleRound, Path]:
    """Task with round 1 committed by root, its record published under ``tmp_path``."""
    fed.register(*people)
    task = fed.task()
    fed.open(task, 1)
    record = _round(fed, task, 1, people)
    publish(record, tmp_path, ModelStore(tmp_path / "store"))
    fed.gw.commit_round_root(task, RoundId(1), record.round_root(), outcome())
    return task, record, tmp_path


def test_commit_round_root_records_the_root_and_no_commitments(
    gw: LedgerGateway, committed: tuple[TaskId, MerkleRound, Path]
) -> None:
    # Prepare
    task, record, out = committed
    # Execute
    events = gw.events()
    again = gw.commit_round_root(task, RoundId(1), record.round_root(), outcome())
    # Assert
    assert "RoundRootCommitted" in names(events)
    assert "RoundCommitted" in names(events)
    assert "CommitmentRecorded" not in names(events)
    assert "RewardAttributed" not in names(events)
    stored = gw.reward_root(task, RoundId(1))
    assert stored.root == record.tree.root
    assert stored.total == sum(AMOUNTS)
    assert stored.claimed == 0
    assert gw.task(task).head_model_hash == outcome().global_model_hash
    assert again.already_recorded  # idempotent: a retried commit is recognised
    assert record_path(out, 1).read_bytes() == record.encode()
    assert (out / "store" / f"{record.record_hash().hex()}.json").read_bytes() == record.encode()


def test_the_contract_hashes_leaves_as_python_does(
    gw: LedgerGateway, committed: tuple[TaskId, MerkleRound, Path]
) -> None:
    # Prepare
    _, record, _ = committed
    # Execute
    hashes = [gw.reward_leaf_hash(leaf) for leaf in record.tree.leaves]
    # Assert
    assert hashes == [leaf.hash() for leaf in record.tree.leaves]


def test_leaves_are_claimed_once_and_paid(
    gw: LedgerGateway, committed: tuple[TaskId, MerkleRound, Path], people: list[LocalAccount]
) -> None:
    # Prepare
    task, _, out = committed
    who = people[1]
    records = verified_records(out, gw, task)
    claims = unclaimed_leaves(records, gw.events(), task, who.address)
    mine = gw.as_account(who)
    before = gw.token_balance(who.address)
    # Execute
    mine.claim_leaves(task, claims)
    paid, _ = mine.claim()
    # Assert
    assert [c.leaf.amount for c in claims] == [250]
    assert paid == 250
    assert gw.token_balance(who.address) == before + 250
    assert gw.leaf_claimed(task, RoundId(1), claims[0].leaf.index)
    assert unclaimed_leaves(records, gw.events(), task, who.address) == []
    balances = {b.participant: b for b in reward_balances(records, gw.events(), task)}
    assert balances[who.address].proven == 250
    assert balances[people[0].address].unproven == 100
    with pytest.raises(LedgerLeafAlreadyClaimed, match="claimed already"):
        mine.claim_leaves(task, claims)


def test_an_altered_leaf_or_another_round_is_refused(
    gw: LedgerGateway, committed: tuple[TaskId, MerkleRound, Path], people: list[LocalAccount]
) -> None:
    # Prepare
    task, record, _ = committed
    (claim,) = record.claims_of(people[0].address)
    leaf = claim.leaf
    richer = dataclasses.replace(leaf, amount=10**6)
    # Execute / Assert
    with pytest.raises(LedgerLeafProofInvalid, match=r"rounds/<round>\.json"):
        gw.claim_leaves(task, [LeafClaim(1, richer, claim.proof)])
    with pytest.raises(LedgerLeafProofInvalid):
        gw.claim_leaves(task, [LeafClaim(1, leaf, record.claims_of(people[1].address)[0].proof)])


def test_over_budget_and_non_coordinator_commits_are_refused(
    gw: LedgerGateway, fed: Federation, people: list[LocalAccount]
) -> None:
    # Prepare
    fed.register(*people)
    task = fed.task(budget=300)
    fed.open(task, 1)
    record = _round(fed, task, 1, people)
    over = _round(fed, task, 1, people)
    richer = MerkleRound.build(
        over.domain,
        task,
        1,
        [dataclasses.replace(leaf, amount=1000) for leaf in over.tree.leaves],
        over.commitments,
    )
    # Execute / Assert
    with pytest.raises(LedgerRoundBudgetExceeded):
        gw.commit_round_root(task, RoundId(1), richer.round_root(), outcome())
    with pytest.raises(LedgerNotTaskCoordinator):
        gw.as_account(people[0]).commit_round_root(task, RoundId(1), record.round_root(), outcome())


def test_the_audit_of_a_sound_round_finds_nothing(
    gw: LedgerGateway, committed: tuple[TaskId, MerkleRound, Path]
) -> None:
    # Prepare
    task, record, out = committed
    # Execute
    problems = audit_merkle_run(out, gw, task)
    commitments, rewards = round_entries(record)
    # Assert
    assert problems == []
    assert [c["participant"] for c in commitments] == [
        leaf.participant for leaf in record.tree.leaves
    ]
    assert sum(r["amount"] for r in rewards) == sum(AMOUNTS)


def test_the_audit_names_a_forged_signature_by_round_and_participant(
    gw: LedgerGateway,
    fed: Federation,
    people: list[LocalAccount],
    accounts: list[LocalAccount],
    tmp_path: Path,
) -> None:
    # Prepare: the victim's commitment carries a signature made with another key
    fed.register(*people)
    task = fed.task()
    fed.open(task, 1)
    honest = _round(fed, task, 1, people)
    victim = people[1].address
    forger = accounts[5]
    forged = [
        SignedCommitment(
            s.commitment, victim, sign_commitment(forger, gw.domain, s.commitment).signature
        )
        if s.participant == victim
        else s
        for s in honest.commitments
    ]
    record = MerkleRound.build(honest.domain, task, 1, honest.tree.leaves, forged)
    publish(record, tmp_path, ModelStore(tmp_path / "store"))
    gw.commit_round_root(task, RoundId(1), record.round_root(), outcome())
    # Execute
    problems = audit_merkle_run(tmp_path, gw, task)
    # Assert
    assert [(p.round, p.participant) for p in problems] == [(1, victim)]
    assert forger.address in problems[0].problem


def test_the_audit_reports_an_altered_record_and_uses_the_store_copy(
    gw: LedgerGateway, committed: tuple[TaskId, MerkleRound, Path]
) -> None:
    # Prepare: a leaf amount raised in rounds/1.json after the commit
    task, _, out = committed
    path = record_path(out, 1)
    doc = json.loads(path.read_bytes())
    doc["tree"]["values"][0]["value"][4] = "999999"
    path.write_text(json.dumps(doc))
    # Execute
    problems = audit_merkle_run(out, gw, task)
    # Assert: the content store still holds the committed record, which is sound
    assert len(problems) == 1
    assert "is not the record committed on chain" in problems[0].problem
    with pytest.raises(MerkleRecordError):
        verified_records(out, gw, task)


def test_the_audit_reports_a_missing_record_and_a_payment_to_a_non_member(
    gw: LedgerGateway,
    fed: Federation,
    people: list[LocalAccount],
    accounts: list[LocalAccount],
    tmp_path: Path,
) -> None:
    # Prepare: round 1 pays a leaf to people[2], which never joined the task (a third member,
    # who has no leaf, makes the declared count possible); round 2's record deleted everywhere
    fed.register(*people[:2], accounts[7])
    task = fed.task()
    fed.open(task, 1)
    record = _round(fed, task, 1, people)
    publish(record, tmp_path, ModelStore(tmp_path / "store"))
    gw.commit_round_root(task, RoundId(1), record.round_root(), outcome())
    fed.open(task, 2, parent="global")
    second = _round(fed, task, 2, people[:2])
    digest = publish(second, tmp_path, ModelStore(tmp_path / "store"))
    gw.commit_round_root(task, RoundId(2), second.round_root(), outcome("global 2"))
    record_path(tmp_path, 2).unlink()
    (tmp_path / "store" / f"{digest.hex()}.json").unlink()
    # Execute
    problems = audit_merkle_run(tmp_path, gw, task)
    # Assert
    first = [(p.participant, p.problem) for p in problems if p.round == 1]
    second_round = [p.problem for p in problems if p.round == 2 and not p.participant]
    assert len(first) == 1
    assert first[0][0] == people[2].address
    assert "is paid by a leaf but is not a member of task 1" in first[0][1]
    assert "rounds/2.json is missing" in second_round[0]
    assert "no intact copy in the store" in second_round[1]
