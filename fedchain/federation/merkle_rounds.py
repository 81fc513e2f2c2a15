"""The published record of a round committed in merkle mode: its leaves, proofs and signatures.

In merkle mode (``--commit-mode merkle``) the chain holds one reward root per round, not the
round's commitments. What the root commits to is published with the run, as one canonical JSON
document per round:

- ``<out>/rounds/<round>.json``, whose SHA-256 is the ``recordHash`` of the round's
  ``RoundRootCommitted`` event (so ``sha256sum rounds/3.json`` equals it), and
- the same bytes in the content store, ``<out>/store/<sha256>.json``.

The record holds the reward tree (OpenZeppelin's ``standard-v1`` dump: ``StandardMerkleTree.load``
reads it), each leaf's proof, and each participant's EIP-712 signed commitment, so anyone can check
every signature off chain (:mod:`fedchain.audit.merkle`) and each participant can claim its leaves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.chain.merkle import (
    LeafClaim,
    MerkleError,
    RewardLeaf,
    RewardTree,
    RoundRoot,
)
from fedchain.chain.records import Commitment, RoundId, SignedCommitment, TaskId
from fedchain.chain.signing import LedgerDomain
from fedchain.errors import FedchainError
from fedchain.store import ModelStore

__all__ = [
    "RECORD_FORMAT",
    "ROUNDS_DIR",
    "ChainRoot",
    "MerkleRecordError",
    "MerkleRound",
    "RewardBalance",
    "chain_roots",
    "load_records",
    "publish",
    "record_path",
    "reward_balances",
    "unclaimed_leaves",
    "verified_records",
]

RECORD_FORMAT = "fedchain-merkle-round-v2"
#: Where a run keeps its round records, under its output directory.
ROUNDS_DIR = "rounds"


class MerkleRecordError(FedchainError, ValueError):
    """A published round record is missing, malformed, or does not match the chain."""


@dataclass(frozen=True)
class ChainRoot:
    """A round's ``RoundRootCommitted`` event: what the chain holds of a merkle round."""

    root: str  # 0x-hex
    record_hash: str  # 0x-hex
    leaf_count: int
    total_reward: int
    block_number: int


@dataclass(frozen=True)
class MerkleRound:
    """One round's published record: the reward tree, the proofs, the signed commitments."""

    domain: LedgerDomain
    task_id: int
    round: int
    tree: RewardTree
    commitments: tuple[SignedCommitment, ...]

    @classmethod
    def build(
        cls,
        domain: LedgerDomain,
        task_id: int,
        round_id: int,
        leaves: Iterable[RewardLeaf],
        commitments: Iterable[SignedCommitment],
    ) -> MerkleRound:
        """The record of a round; leaves and commitments are kept in participant order."""
        ordered = sorted(leaves, key=lambda leaf: int(leaf.participant, 16))
        signed = sorted(commitments, key=lambda s: int(s.participant, 16))
        return cls(domain, task_id, round_id, RewardTree.of(ordered), tuple(signed))

    def round_root(self) -> RoundRoot:
        """What ``commitRoundRoot`` takes: root, record hash, leaf count, total."""
        return RoundRoot(self.tree.root, self.record_hash(), len(self.tree), self.tree.total())

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON document (see :meth:`encode` for its exact bytes)."""
        return {
            "format": RECORD_FORMAT,
            "chain_id": self.domain.chain_id,
            "ledger": to_checksum_address(self.domain.verifying_contract),
            "task_id": self.task_id,
            "round": self.round,
            "root": "0x" + self.tree.root.hex(),
            "total_reward": str(self.tree.total()),
            "tree": self.tree.dump(),
            "proofs": [["0x" + p.hex() for p in self.tree.proof(i)] for i in range(len(self.tree))],
            "commitments": [_commitment_json(s) for s in self.commitments],
        }

    def encode(self) -> bytes:
        """The canonical bytes: sorted keys, no spaces; their SHA-256 is the record hash."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    def record_hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    def claims_of(self, address: str) -> list[LeafClaim]:
        """The leaves of ``address`` in this round, each with its proof."""
        who = address.lower()
        return [
            LeafClaim(self.round, leaf, tuple(self.tree.proof(i)))
            for i, leaf in enumerate(self.tree.leaves)
            if leaf.participant.lower() == who
        ]

    @classmethod
    def decode(cls, data: bytes, source: str = "the record") -> MerkleRound:
        """A record from its bytes; the tree is checked node by node."""
        try:
            doc = json.loads(data)
            if doc.get("format") != RECORD_FORMAT:
                raise MerkleRecordError(
                    f"{source} is not a merkle round record (format {doc.get('format')!r}, "
                    f"expected {RECORD_FORMAT})"
                )
            domain = LedgerDomain(int(doc["chain_id"]), to_checksum_address(doc["ledger"]))
            task_id, round_id = int(doc["task_id"]), int(doc["round"])
            tree = RewardTree.load(doc["tree"])
            commitments = tuple(
                SignedCommitment(
                    Commitment(
                        TaskId(task_id),
                        RoundId(round_id),
                        bytes.fromhex(str(c["update_hash"])[2:]),
                        int(c["num_examples"]),
                        int(c.get("epsilon", 0)),
                    ),
                    to_checksum_address(c["participant"]),
                    bytes.fromhex(str(c["signature"])[2:]),
                )
                for c in doc["commitments"]
            )
        except MerkleRecordError:
            raise
        except (MerkleError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MerkleRecordError(f"{source} is malformed: {exc}") from exc
        return cls(domain, task_id, round_id, tree, commitments)


def record_path(out: Path, round_id: int) -> Path:
    """``<out>/rounds/<round>.json``."""
    return out / ROUNDS_DIR / f"{round_id}.json"


def publish(record: MerkleRound, out: Path, store: ModelStore) -> bytes:
    """Write the record to ``<out>/rounds/<round>.json`` and to the content store; its hash."""
    data = record.encode()
    path = record_path(out, record.round)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    return bytes(store.put_document(data))


def load_records(out: Path) -> dict[int, MerkleRound]:
    """Every round record published in a run directory, by round."""
    records: dict[int, MerkleRound] = {}
    folder = out / ROUNDS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = MerkleRound.decode(path.read_bytes(), str(path))
        if path.stem != str(record.round):
            raise MerkleRecordError(f"{path} holds the record of round {record.round}")
        records[record.round] = record
    return records


def verified_records(out: Path, gateway: LedgerGateway, task_id: int) -> dict[int, MerkleRound]:
    """The run's records whose roots equal the roots on chain; any other is an error.

    Raises
    ------
    MerkleRecordError
        If a committed root has no record, or a record's tree has another root.
    """
    records = load_records(out)
    roots = chain_roots(gateway.events(), task_id)
    for round_id, chain in sorted(roots.items()):
        root = chain.root
        record = records.get(round_id)
        if record is None:
            raise MerkleRecordError(
                f"round {round_id} is committed by root {root} but {record_path(out, round_id)} "
                "is missing: copy the run's rounds/ (or its store) from the coordinator"
            )
        if "0x" + record.tree.root.hex() != root:
            raise MerkleRecordError(
                f"the record of round {round_id} has root 0x{record.tree.root.hex()}, the chain "
                f"{root}: the record was altered; run `fedchain audit` to see what differs"
            )
    return {r: records[r] for r in sorted(roots)}


def chain_roots(events: Iterable[LedgerEvent], task_id: int) -> dict[int, ChainRoot]:
    """Round -> its ``RoundRootCommitted`` event, for one task."""
    return {
        int(e.args["round"]): ChainRoot(
            root=str(e.args["root"]),
            record_hash=str(e.args["recordHash"]),
            leaf_count=int(e.args["declaredLeafCount"]),
            total_reward=int(e.args["declaredTotalReward"]),
            block_number=e.block_number,
        )
        for e in events
        if e.name == "RoundRootCommitted" and int(e.args["taskId"]) == task_id
    }


def _claimed_leaves(events: Iterable[LedgerEvent], task_id: int) -> set[tuple[int, str]]:
    return {
        (int(e.args["round"]), str(e.args["leaf"]))
        for e in events
        if e.name == "RewardLeafClaimed" and int(e.args["taskId"]) == task_id
    }


def unclaimed_leaves(
    records: Mapping[int, MerkleRound], events: Iterable[LedgerEvent], task_id: int, address: str
) -> list[LeafClaim]:
    """The leaves of ``address`` with a positive amount not yet claimed on chain."""
    done = _claimed_leaves(events, task_id)
    return [
        claim
        for record in records.values()
        for claim in record.claims_of(address)
        if claim.leaf.amount > 0 and (claim.round, "0x" + claim.leaf.hash().hex()) not in done
    ]


@dataclass(frozen=True)
class RewardBalance:
    """A participant's rewards in merkle mode: attributed by the trees, proven so far on chain."""

    participant: str
    attributed: int
    proven: int

    @property
    def unproven(self) -> int:
        return self.attributed - self.proven


def reward_balances(
    records: Mapping[int, MerkleRound], events: Sequence[LedgerEvent], task_id: int
) -> list[RewardBalance]:
    """Every participant's attributed and proven rewards over the run's rounds."""
    done = _claimed_leaves(events, task_id)
    attributed: dict[str, int] = {}
    proven: dict[str, int] = {}
    for record in records.values():
        for leaf in record.tree.leaves:
            who = leaf.participant
            attributed[who] = attributed.get(who, 0) + leaf.amount
            if (record.round, "0x" + leaf.hash().hex()) in done:
                proven[who] = proven.get(who, 0) + leaf.amount
    return [RewardBalance(who, amount, proven.get(who, 0)) for who, amount in attributed.items()]


def _commitment_json(s: SignedCommitment) -> dict[str, Any]:
    """A signed commitment as the record keeps it; its privacy spend only when it has one, so
    records of runs without DP keep their bytes (and their hashes)."""
    doc: dict[str, Any] = {
        "participant": to_checksum_address(s.participant),
        "update_hash": "0x" + s.commitment.update_hash.hex(),
        "num_examples": s.commitment.num_examples,
        "signature": "0x" + s.signature.hex(),
    }
    if s.commitment.epsilon:
        doc["epsilon"] = s.commitment.epsilon
    return doc
