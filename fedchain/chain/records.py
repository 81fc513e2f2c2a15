"""Value objects of the ledger: ids, commitments, rounds, tasks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

from fedchain.chain.errors import RecordError

__all__ = [
    "Commitment",
    "ParticipantRecord",
    "ParticipantStatus",
    "Reward",
    "RoundId",
    "RoundOutcome",
    "RoundRecord",
    "RoundState",
    "SignedCommitment",
    "TaskId",
    "TaskRecord",
]

TaskId = NewType("TaskId", int)
RoundId = NewType("RoundId", int)

_HASH_BYTES = 32
_SIGNATURE_BYTES = 65


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != _HASH_BYTES:
        raise RecordError(f"{name} must be 32 bytes (a SHA-256), got {len(value)}")


class ParticipantStatus(enum.IntEnum):
    """Mirror of ``Ledger.ParticipantStatus``."""

    NONE = 0
    ACTIVE = 1
    WITHDRAWN = 2


class RoundState(enum.IntEnum):
    """Mirror of ``Ledger.RoundState``."""

    NONE = 0
    OPEN = 1
    COMMITTED = 2
    FAILED = 3


@dataclass(frozen=True)
class Commitment:
    """What a participant commits to for one round: the hash of its update and its data size."""

    task_id: TaskId
    round: RoundId
    update_hash: bytes
    num_examples: int

    def __post_init__(self) -> None:
        _check_hash("update_hash", self.update_hash)
        if self.num_examples < 0:
            raise RecordError(f"num_examples must be >= 0, got {self.num_examples}")


@dataclass(frozen=True)
class SignedCommitment:
    """A commitment with its signer's 65-byte EIP-712 signature (r || s || v)."""

    commitment: Commitment
    participant: str
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != _SIGNATURE_BYTES:
            raise RecordError(f"signature must be 65 bytes, got {len(self.signature)}")

    def compact(self) -> tuple[bytes, bytes]:
        """The EIP-2098 compact form (r, yParityAndS) the contract takes."""
        r, s, v = self.signature[:32], self.signature[32:64], self.signature[64]
        parity = (v - 27) if v >= 27 else v
        vs = (int.from_bytes(s, "big") | (parity << 255)).to_bytes(32, "big")
        return r, vs


@dataclass(frozen=True)
class RoundOutcome:
    """The committed global model and its holdout evaluation (integers, as on chain)."""

    global_model_hash: bytes
    accuracy_ppm: int
    loss_ppm: int
    scoring_hash: bytes = b"\x00" * 32

    def __post_init__(self) -> None:
        _check_hash("global_model_hash", self.global_model_hash)
        _check_hash("scoring_hash", self.scoring_hash)
        if not 0 <= self.accuracy_ppm <= 1_000_000:
            raise RecordError(f"accuracy_ppm must be within 0..1e6, got {self.accuracy_ppm}")
        if not 0 <= self.loss_ppm < 2**64:
            raise RecordError(f"loss_ppm must fit in uint64, got {self.loss_ppm}")


@dataclass(frozen=True)
class Reward:
    """A participant's score (fixed point, 1e6 = 1.0) and the tokens it earns in a round."""

    participant: str
    score: int
    amount: int

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise RecordError(f"reward amount must be >= 0, got {self.amount}")


@dataclass(frozen=True)
class TaskRecord:
    """A task as stored on chain."""

    task_id: TaskId
    spec_hash: bytes
    head_model_hash: bytes
    token: str
    last_round: RoundId
    coordinator: str
    reward_per_round: int
    funded: int
    attributed: int


@dataclass(frozen=True)
class RoundRecord:
    """A round as stored on chain."""

    state: RoundState
    direct_count: int
    commitment_count: int
    parent_model_hash: bytes
    global_model_hash: bytes


@dataclass(frozen=True)
class ParticipantRecord:
    """A participant as stored on chain."""

    status: ParticipantStatus
    registered_at: int
    withdrawn_at: int
    org_hash: bytes
