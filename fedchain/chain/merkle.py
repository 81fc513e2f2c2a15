"""Reward trees of merkle commit mode, in OpenZeppelin's StandardMerkleTree format.

A round committed in merkle mode puts one root on chain over its reward leaves
``(taskId, round, index, participant, updateHash, numExamples, score, amount)``: each leaf is
bound to its task and round, and its index is the participant's member index in the task, so a
participant has at most one claimable leaf per round (the contract keeps a claimed bitmap by
index). Leaves and tree follow
``@openzeppelin/merkle-tree`` (``StandardMerkleTree``, format ``standard-v1``) exactly, so the npm
library and this module build the same root and proofs for the same leaves, and the Ledger checks
them with OpenZeppelin's ``MerkleProof``:

- a leaf is ``keccak256(keccak256(abi.encode(values)))`` (double hashing: no 64-byte leaf can pass
  for an inner node);
- an inner node is ``keccak256`` of its two children in ascending order (sorted pairs, so a proof
  is a list of siblings without left/right flags);
- leaves are sorted by hash, then laid out as a complete binary tree in one array: the root at
  index 0, the children of ``i`` at ``2i + 1`` and ``2i + 2``, leaf ``k`` (in hash order) at
  ``len(tree) - 1 - k``.

Examples
--------
>>> leaf = RewardLeaf(1, 1, 0, "0x" + "11" * 20, b"\\x22" * 32, 100, 500_000, 10**18)
>>> tree = RewardTree.of([leaf])
>>> tree.root == leaf.hash(), tree.proof(0)
(True, [])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from fedchain.errors import FedchainError

__all__ = [
    "LEAF_ENCODING",
    "TREE_FORMAT",
    "LeafClaim",
    "MerkleError",
    "RewardLeaf",
    "RewardRootRecord",
    "RewardTree",
    "RoundRoot",
    "node_hash",
    "process_proof",
    "verify_proof",
]

#: ABI types of a reward leaf, as ``StandardMerkleTree.of(values, LEAF_ENCODING)`` takes them.
LEAF_ENCODING: tuple[str, ...] = (
    "uint256",
    "uint256",
    "uint256",
    "address",
    "bytes32",
    "uint256",
    "int256",
    "uint256",
)
#: The ``format`` field of a dumped StandardMerkleTree.
TREE_FORMAT = "standard-v1"

_UINT256_MAX = 2**256 - 1
_INT256_MIN, _INT256_MAX = -(2**255), 2**255 - 1


class MerkleError(FedchainError, ValueError):
    """A reward leaf, tree or proof is malformed or does not match."""


@dataclass(frozen=True)
class RewardLeaf:
    """One participant's entry of a round's reward tree.

    Parameters
    ----------
    task_id : int
        The task of the round.
    round : int
        The round.
    index : int
        The participant's member index in the task (``Ledger.getMembership(...).index``).
    participant : str
        The participant's address (stored checksummed).
    update_hash : bytes
        SHA-256 of its update, as it signed it (32 bytes).
    num_examples : int
        The examples it trained on, as it signed it.
    score : int
        Its contribution score, fixed point (1e6 = 1.0); may be negative.
    amount : int
        The reward tokens it earned in the round.
    """

    task_id: int
    round: int
    index: int
    participant: str
    update_hash: bytes
    num_examples: int
    score: int
    amount: int

    def __post_init__(self) -> None:
        if not is_address(self.participant):
            raise MerkleError(f"leaf participant {self.participant!r} is not an address")
        object.__setattr__(self, "participant", to_checksum_address(self.participant))
        if len(self.update_hash) != 32:
            raise MerkleError(f"leaf update hash must be 32 bytes, got {len(self.update_hash)}")
        for name, value, low, high in (
            ("task_id", self.task_id, 0, _UINT256_MAX),
            ("round", self.round, 0, _UINT256_MAX),
            ("index", self.index, 0, _UINT256_MAX),
            ("num_examples", self.num_examples, 0, _UINT256_MAX),
            ("score", self.score, _INT256_MIN, _INT256_MAX),
            ("amount", self.amount, 0, _UINT256_MAX),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise MerkleError(f"leaf {name} {value!r} is not an integer in [{low}, {high}]")

    def values(self) -> tuple[int, int, int, str, bytes, int, int, int]:
        """The leaf's values in :data:`LEAF_ENCODING` order."""
        return (
            self.task_id,
            self.round,
            self.index,
            self.participant,
            self.update_hash,
            self.num_examples,
            self.score,
            self.amount,
        )

    def struct(self) -> tuple[str, bytes, int, int, int, int]:
        """The leaf as the contract's ``RewardLeaf`` struct (task and round are arguments)."""
        return (
            self.participant,
            self.update_hash,
            self.num_examples,
            self.score,
            self.amount,
            self.index,
        )

    def hash(self) -> bytes:
        """``keccak256(bytes.concat(keccak256(abi.encode(...))))``, as the Ledger computes it."""
        return keccak(keccak(abi_encode(list(LEAF_ENCODING), list(self.values()))))

    def to_json(self) -> list[str]:
        """The leaf as JSON values (numbers as decimal strings, bytes as 0x-hex), the form the
        npm library reads in a dumped tree."""
        return [
            str(self.task_id),
            str(self.round),
            str(self.index),
            self.participant,
            "0x" + self.update_hash.hex(),
            str(self.num_examples),
            str(self.score),
            str(self.amount),
        ]

    @classmethod
    def from_json(cls, values: Sequence[Any]) -> RewardLeaf:
        """A leaf from :meth:`to_json`'s form (numbers may also be JSON integers)."""
        try:
            task_id, round_id, index, participant, update_hash, examples, score, amount = values
            return cls(
                _integer(task_id),
                _integer(round_id),
                _integer(index),
                str(participant),
                _hex_bytes(update_hash),
                _integer(examples),
                _integer(score),
                _integer(amount),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MerkleError):
                raise
            raise MerkleError(f"malformed reward leaf {values!r}: {exc}") from exc


@dataclass(frozen=True)
class RoundRoot:
    """What a round commits in merkle mode besides its outcome (``Ledger.RoundRoot``)."""

    root: bytes
    record_hash: bytes  # SHA-256 of the published round record
    leaf_count: int
    total_reward: int

    def __post_init__(self) -> None:
        if len(self.root) != 32 or len(self.record_hash) != 32:
            raise MerkleError("a round root and its record hash must be 32 bytes each")
        if not 0 <= self.leaf_count < 2**32 or self.total_reward < 0:
            raise MerkleError(
                f"leaf count {self.leaf_count} or total {self.total_reward} out of range"
            )


@dataclass(frozen=True)
class RewardRootRecord:
    """A committed reward root as stored on chain (``Ledger.RewardRoot``), with what has been
    claimed against it; claimable from ``claimable_at`` (a timestamp) unless voided."""

    root: bytes
    total: int
    claimed: int
    declared_leaf_count: int = 0
    claimed_count: int = 0
    claimable_at: int = 0
    voided: bool = False


@dataclass(frozen=True)
class LeafClaim:
    """A reward leaf of round ``round`` with its proof, as ``Ledger.claimLeaves`` takes it."""

    round: int
    leaf: RewardLeaf
    proof: tuple[bytes, ...]


def node_hash(a: bytes, b: bytes) -> bytes:
    """An inner node: keccak256 of the two children, the smaller first."""
    return keccak(a + b if a <= b else b + a)


def process_proof(leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` (``MerkleProof.processProof``)."""
    computed = leaf_hash
    for sibling in proof:
        if len(sibling) != 32:
            raise MerkleError(f"a proof element must be 32 bytes, got {len(sibling)}")
        computed = node_hash(computed, sibling)
    return computed


def verify_proof(root: bytes, leaf: RewardLeaf, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` proves ``leaf`` against ``root`` (``MerkleProof.verify``)."""
    return process_proof(leaf.hash(), proof) == root


class RewardTree:
    """A StandardMerkleTree over reward leaves: its root, proofs, and its ``standard-v1`` dump.

    Build one with :meth:`of` (or :meth:`load` a dump); leaves keep the order they were given in,
    and ``proof(i)`` proves the ``i``-th of them.
    """

    def __init__(
        self, nodes: Sequence[bytes], leaves: Sequence[RewardLeaf], tree_index: Sequence[int]
    ) -> None:
        self._nodes = list(nodes)
        self._leaves = list(leaves)
        self._tree_index = list(tree_index)

    @classmethod
    def of(cls, leaves: Sequence[RewardLeaf]) -> RewardTree:
        """The tree ``StandardMerkleTree.of(leaves, LEAF_ENCODING)`` builds (sorted leaves)."""
        if not leaves:
            raise MerkleError("a reward tree needs at least one leaf: commit a round with none")
        hashed = sorted(
            ((leaf.hash(), i) for i, leaf in enumerate(leaves)), key=lambda hv: hv[0]
        )  # stable, as the JavaScript sort
        size = 2 * len(hashed) - 1
        nodes = [b""] * size
        tree_index = [0] * len(leaves)
        for k, (digest, value_index) in enumerate(hashed):
            nodes[size - 1 - k] = digest
            tree_index[value_index] = size - 1 - k
        for i in range(size - 1 - len(hashed), -1, -1):
            nodes[i] = node_hash(nodes[2 * i + 1], nodes[2 * i + 2])
        return cls(nodes, leaves, tree_index)

    @property
    def root(self) -> bytes:
        return self._nodes[0]

    @property
    def leaves(self) -> list[RewardLeaf]:
        return list(self._leaves)

    def __len__(self) -> int:
        return len(self._leaves)

    def total(self) -> int:
        """The sum of the leaves' amounts: the round's total reward."""
        return sum(leaf.amount for leaf in self._leaves)

    def proof(self, index: int) -> list[bytes]:
        """The proof of the ``index``-th leaf: its siblings from the leaf up to the root."""
        if not 0 <= index < len(self._leaves):
            raise MerkleError(f"no leaf {index} in a tree of {len(self._leaves)}")
        node = self._tree_index[index]
        proof = []
        while node > 0:
            sibling = node - 1 if node % 2 == 0 else node + 1
            proof.append(self._nodes[sibling])
            node = (node - 1) // 2
        return proof

    def dump(self) -> dict[str, Any]:
        """The tree in StandardMerkleTree's ``dump()`` form, which ``StandardMerkleTree.load``
        reads."""
        return {
            "format": TREE_FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": ["0x" + n.hex() for n in self._nodes],
            "values": [
                {"value": leaf.to_json(), "treeIndex": index}
                for leaf, index in zip(self._leaves, self._tree_index, strict=True)
            ],
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> RewardTree:
        """A dumped tree, checked: every node hashes from its children and every value sits at
        its index. Raises :class:`MerkleError` otherwise."""
        if data.get("format") != TREE_FORMAT:
            raise MerkleError(f"unknown tree format {data.get('format')!r}: expected {TREE_FORMAT}")
        if list(data.get("leafEncoding", [])) != list(LEAF_ENCODING):
            raise MerkleError(
                f"leaf encoding {data.get('leafEncoding')!r} is not a reward leaf's "
                f"{list(LEAF_ENCODING)}"
            )
        try:
            nodes = [_hex_bytes(n) for n in data["tree"]]
            values = [
                (RewardLeaf.from_json(v["value"]), int(v["treeIndex"])) for v in data["values"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MerkleError):
                raise
            raise MerkleError(f"malformed tree dump: {exc}") from exc
        if not values or len(nodes) != 2 * len(values) - 1:
            raise MerkleError(f"a tree of {len(values)} leaves cannot have {len(nodes)} nodes")
        for i in range(len(nodes)):
            left, right = 2 * i + 1, 2 * i + 2
            if right < len(nodes) and nodes[i] != node_hash(nodes[left], nodes[right]):
                raise MerkleError(f"tree node {i} is not the hash of its children")
        if len({index for _, index in values}) != len(values):
            raise MerkleError("two leaves of the tree dump share a tree index")
        for leaf, index in values:
            if not (len(nodes) - len(values) <= index < len(nodes)) or nodes[index] != leaf.hash():
                raise MerkleError(f"the leaf of {leaf.participant} is not at tree index {index}")
        return cls(nodes, [leaf for leaf, _ in values], [index for _, index in values])


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MerkleError(f"expected 0x-hex, got {value!r}")
    raw = bytes.fromhex(value[2:])
    if len(raw) != 32:
        raise MerkleError(f"expected 32 bytes of 0x-hex, got {len(raw)}")
    return raw


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MerkleError(f"expected an integer or a decimal string, got {value!r}")
    return int(value)
