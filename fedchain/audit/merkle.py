"""Auditing merkle-mode rounds off chain: signatures, leaves and roots against the chain.

In merkle mode the chain holds each round's reward root, not its commitments, so the auditor
checks off chain what the contract checks in relayed mode, from the round records published with
the run (:mod:`fedchain.federation.merkle_rounds`):

- the record is the one the chain names (its SHA-256 is the round's ``recordHash``; the copy in
  ``rounds/`` or, failing that, the content store's);
- the root rebuilt from the published leaves is the chain's root, with its leaf count and total;
  every published proof verifies;
- every leaf has its participant's signed commitment and every signature recovers (EIP-712, this
  chain and ledger) to that participant, with the same update hash and example count;
- each participant appears once, and each leaf pays a member of the task when the round opened,
  at its member index and with no more examples than the dataset size it consented to, by the
  audit's one rule (:class:`fedchain.audit.lineage.Membership`, the contract's): a leaf that
  breaks it is grounds to void the root during its challenge period.

:func:`audit_merkle_rounds` works on plain data (run directory, chain roots, participants);
:func:`audit_merkle_run` reads those from a ledger gateway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.audit.lineage import (
    CommitmentEntry,
    LedgerLineage,
    Membership,
    Position,
    RewardEntry,
    RoundLineage,
    memberships,
)
from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.chain.lineage_reads import checksum_address
from fedchain.chain.merkle import RewardLeaf, RewardTree, verify_proof
from fedchain.chain.signing import LedgerDomain, recover_signer
from fedchain.federation.merkle_rounds import (
    ROUNDS_DIR,
    ChainRoot,
    MerkleRecordError,
    MerkleRound,
    chain_roots,
    record_path,
)
from fedchain.store import ModelCorrupted, ModelNotInStore, ModelStore

__all__ = [
    "ChainRoot",
    "MerkleProblem",
    "audit_merkle_rounds",
    "audit_merkle_run",
    "chain_roots",
    "commit_positions",
    "round_entries",
]


@dataclass(frozen=True)
class MerkleProblem:
    """One thing wrong with a merkle round; ``participant`` is empty when it is the round's."""

    round: int
    participant: str
    problem: str

    def __str__(self) -> str:
        who = f" {self.participant}" if self.participant else ""
        return f"round {self.round}{who}: {self.problem}"


def commit_positions(events: Iterable[LedgerEvent], task_id: int) -> dict[int, Position]:
    """Round -> where its ``RoundCommitted`` event sits, for one task."""
    return {
        int(e.args["round"]): (e.block_number, e.log_index)
        for e in events
        if e.name == "RoundCommitted" and int(e.args["taskId"]) == task_id
    }


def audit_merkle_run(out: Path, gateway: LedgerGateway, task_id: int) -> list[MerkleProblem]:
    """:func:`audit_merkle_rounds` with the roots and participants read from the chain."""
    events = gateway.events()
    return audit_merkle_rounds(
        out,
        chain_roots(events, task_id),
        gateway.domain,
        task_id,
        participants=memberships(events, task_id),
        committed=commit_positions(events, task_id),
    )


def audit_merkle_rounds(
    out: Path,
    roots: Mapping[int, ChainRoot],
    domain: LedgerDomain,
    task_id: int,
    *,
    participants: Mapping[str, Membership],
    committed: Mapping[int, Position],
) -> list[MerkleProblem]:
    """Check every merkle round of a run against the chain; an empty list means all is well.

    Parameters
    ----------
    out : pathlib.Path
        The run directory (``rounds/`` and ``store/`` are read).
    roots : Mapping[int, ChainRoot]
        The chain's roots by round (:func:`chain_roots`).
    domain : LedgerDomain
        The chain id and ledger address the signatures must be for.
    task_id : int
        The task the rounds belong to.
    participants : Mapping[str, Membership]
        The task's members by address (:func:`fedchain.audit.lineage.memberships`).
    committed : Mapping[int, Position]
        Where each round was committed (:func:`commit_positions`); a round missing here is
        taken as committed at its root's block, after every event of that block.

    Returns
    -------
    list[MerkleProblem]
        Every problem found, each with its round and, where it is one participant's, its address.
    """
    problems: list[MerkleProblem] = []
    store = ModelStore(out / "store")
    members = _by_address(participants)
    for round_id, chain in sorted(roots.items()):
        record, found = _record(out, store, round_id, chain)
        problems += found
        at = committed.get(round_id, _end_of_block(chain.block_number))
        if record is not None:
            problems += _check_record(record, round_id, chain, domain, task_id, members, at)
    folder = out / ROUNDS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if not path.stem.isdigit() or int(path.stem) not in roots:
            problems.append(
                MerkleProblem(
                    int(path.stem) if path.stem.isdigit() else 0,
                    "",
                    f"{path} is published but the chain holds no root for it",
                )
            )
    return problems


def _record(
    out: Path | None, store: ModelStore, round_id: int, chain: ChainRoot
) -> tuple[MerkleRound | None, list[MerkleProblem]]:
    """The round's record as the chain names it: rounds/<r>.json if it hashes right, else the
    content store's copy (the only place looked at without a run directory)."""
    problems = []
    path = record_path(out, round_id) if out is not None else None
    candidates: list[tuple[bytes, str]] = []
    if path is None:
        pass
    elif path.is_file():
        data = path.read_bytes()
        if "0x" + hashlib.sha256(data).hexdigest() == chain.record_hash:
            candidates.append((data, str(path)))
        else:
            problems.append(
                MerkleProblem(
                    round_id,
                    "",
                    f"{path} is not the record committed on chain (SHA-256 "
                    f"0x{hashlib.sha256(data).hexdigest()}, chain {chain.record_hash})",
                )
            )
    else:
        problems.append(MerkleProblem(round_id, "", f"{path} is missing"))
    if not candidates:
        try:
            candidates.append((store.get_document(chain.record_hash), "the store's copy"))
        except (ModelNotInStore, ModelCorrupted) as exc:
            problems.append(MerkleProblem(round_id, "", f"no intact copy in the store: {exc}"))
            return None, problems
    data, source = candidates[0]
    try:
        return MerkleRound.decode(data, source), problems
    except MerkleRecordError as exc:
        problems.append(MerkleProblem(round_id, "", str(exc)))
        return None, problems


def _end_of_block(block: int) -> Position:
    """After every event of ``block``: where a commit whose own event is missing is checked."""
    return block, 1 << 62


def _by_address(members: Mapping[str, Membership]) -> dict[str, Membership]:
    """The memberships keyed by checksummed address, whatever case they were given in."""
    return {checksum_address(who): m for who, m in members.items()}


def _check_record(  # noqa: PLR0917 - private, two call sites
    record: MerkleRound,
    round_id: int,
    chain: ChainRoot,
    domain: LedgerDomain,
    task_id: int,
    members: Mapping[str, Membership],
    committed: Position,
) -> list[MerkleProblem]:
    """The problems of one round's record; ``members`` by checksummed address, ``committed``
    where the round was committed."""
    problems: list[MerkleProblem] = []

    def problem(participant: str, text: str) -> None:
        problems.append(MerkleProblem(round_id, participant, text))

    if (record.domain, record.task_id, record.round) != (domain, task_id, round_id):
        problem(
            "",
            f"the record is for task {record.task_id} round {record.round} on chain "
            f"{record.domain.chain_id} ledger {record.domain.verifying_contract}, not task "
            f"{task_id} round {round_id} on chain {domain.chain_id} ledger "
            f"{domain.verifying_contract}",
        )
    leaves = record.tree.leaves
    rebuilt = RewardTree.of(leaves)
    if "0x" + rebuilt.root.hex() != chain.root:
        problem("", f"the leaves rebuild root 0x{rebuilt.root.hex()}, the chain holds {chain.root}")
    if len(leaves) != chain.leaf_count:
        problem("", f"{len(leaves)} leaves published, {chain.leaf_count} committed")
    if rebuilt.total() != chain.total_reward:
        problem("", f"the leaves total {rebuilt.total()}, {chain.total_reward} committed")
    proofs = record.to_json()["proofs"]
    signed = {s.participant.lower(): s for s in record.commitments}
    if len(signed) != len(record.commitments):
        problem("", "a participant has two signed commitments")
    seen: set[str] = set()
    for i, leaf in enumerate(leaves):
        who = leaf.participant
        if who.lower() in seen:
            problem(who, "appears in two leaves")
        seen.add(who.lower())
        proof = [bytes.fromhex(p[2:]) for p in proofs[i]]
        if not verify_proof(bytes.fromhex(chain.root[2:]), leaf, proof):
            problem(who, "the published proof does not lead to the chain's root")
        for text in _leaf_membership_problems(leaf, round_id, task_id, members):
            problem(who, text)
        s = signed.get(who.lower())
        if s is None:
            problem(who, "has a reward leaf but no signed commitment")
            continue
        if (s.commitment.update_hash, s.commitment.num_examples) != (
            leaf.update_hash,
            leaf.num_examples,
        ):
            problem(who, "the leaf's update hash or example count differs from what it signed")
        try:
            signer = recover_signer(domain, s)
        except Exception as exc:  # any malformed signature is a finding, not a crash
            problem(who, f"the signature does not recover: {exc}")
            continue
        if signer.lower() != who.lower():
            problem(who, f"the commitment is signed by {signer}, not by the participant")
    for who in sorted(set(signed) - seen):
        problem(signed[who].participant, "has a signed commitment but no reward leaf")
    return problems


def _leaf_membership_problems(
    leaf: RewardLeaf, round_id: int, task_id: int, members: Mapping[str, Membership]
) -> list[str]:
    """What makes a leaf grounds to void its root (the contract's rule), or binds it elsewhere."""
    who, problems = leaf.participant, []
    member = members.get(checksum_address(who))
    if member is None:
        problems.append(f"is paid by a leaf but is not a member of task {task_id}")
    elif not member.member_when_opened(round_id):
        problems.append(f"is paid by a leaf but {member.ineligible_reason(round_id)}")
    elif leaf.index != member.index:
        problems.append(f"its leaf carries index {leaf.index}, its member index is {member.index}")
    elif leaf.num_examples > member.dataset_size:
        problems.append(
            f"its leaf claims {leaf.num_examples} examples, above the dataset size "
            f"{member.dataset_size} it consented to"
        )
    if (leaf.task_id, leaf.round) != (task_id, round_id):
        problems.append(f"its leaf is bound to task {leaf.task_id} round {leaf.round}")
    return problems


def attach_merkle_records(
    lineage: LedgerLineage, store: ModelStore, out: Path | None = None
) -> list[tuple[int, MerkleProblem]]:
    """Give each merkle round of ``lineage`` the commitments and rewards of its published record.

    The chain holds only a merkle round's root and record hash; its record (``out/rounds/`` or
    the store) is checked against them (:func:`audit_merkle_rounds`' checks), and its signed
    commitments and reward leaves then take the place of the events a relayed round has, so
    every other audit check (signatures, stored updates, recomputation, budgets, claims) covers
    merkle rounds too. Returns the problems found, each with its task.
    """
    found: list[tuple[int, MerkleProblem]] = []
    for task in lineage.tasks.values():
        members = _by_address(task.members)
        for entry in task.ordered_rounds():
            if entry.root is None:
                continue
            record, problems = _record(out, store, entry.round, entry.root)
            if record is not None:
                at = entry.closed or _end_of_block(entry.root.block_number)
                problems += _check_record(
                    record, entry.round, entry.root, lineage.domain, task.task_id, members, at
                )
                entry.commitments, entry.rewards = _lineage_entries(record, entry, at)
            found += [(task.task_id, p) for p in problems]
    return found


def _lineage_entries(
    record: MerkleRound, entry: RoundLineage, committed: Position
) -> tuple[list[CommitmentEntry], list[RewardEntry]]:
    """The record's commitments and rewards as events would give them; the commitments sit
    where the round was committed (signed for the round, proven at its commit)."""
    commitments = [
        CommitmentEntry(
            participant=checksum_address(s.participant),
            update_hash="0x" + s.commitment.update_hash.hex(),
            num_examples=s.commitment.num_examples,
            relayed=True,
            epsilon=s.commitment.epsilon,
            position=committed,
            tx_hash=entry.commit_tx or "",
            signature=s.signature,
        )
        for s in record.commitments
    ]
    rewards = [
        RewardEntry(checksum_address(leaf.participant), leaf.score, leaf.amount)
        for leaf in record.tree.leaves
    ]
    return commitments, rewards


def round_entries(record: MerkleRound) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A merkle round's commitments and rewards in the form of the ``CommitmentRecorded`` and
    ``RewardAttributed`` event arguments, so relayed-mode tooling (score recomputation) can take
    a merkle round once :func:`audit_merkle_rounds` has found it sound."""
    commitments = [
        {
            "taskId": record.task_id,
            "round": record.round,
            "participant": leaf.participant,
            "updateHash": "0x" + leaf.update_hash.hex(),
            "numExamples": leaf.num_examples,
            "relayed": True,
        }
        for leaf in record.tree.leaves
    ]
    rewards = [
        {
            "taskId": record.task_id,
            "round": record.round,
            "participant": leaf.participant,
            "score": leaf.score,
            "amount": leaf.amount,
        }
        for leaf in record.tree.leaves
    ]
    return commitments, rewards
