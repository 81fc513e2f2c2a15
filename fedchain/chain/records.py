"""Value objects of the ledger: ids, commitments, rounds, tasks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

from fedchain.chain.errors import RecordError
from fedchain.privacy import PrivacyTerms, to_micro

__all__ = [
    "EPSILON_CAP_MAX",
    "Commitment",
    "Consent",
    "FunderRecord",
    "Membership",
    "ParticipantRecord",
    "ParticipantStatus",
    "Reward",
    "RoundId",
    "RoundOutcome",
    "RoundRecord",
    "RoundState",
    "SignedCommitment",
    "SignedConsent",
    "SkipReason",
    "TaskId",
    "TaskRecord",
    "TaskStatus",
    "TaskTerms",
    "VoidReason",
    "party_label",
    "privacy_task_terms",
]

TaskId = NewType("TaskId", int)
RoundId = NewType("RoundId", int)

_HASH_BYTES = 32
#: The largest privacy cap a task can carry: ``Ledger.TaskTerms.epsilonCap`` is a uint32 of
#: micro-epsilon (epsilon 4,294.97, far past any meaningful guarantee), so the spend packs into
#: the membership word the commit path reads anyway.
EPSILON_CAP_MAX = 2**32 - 1
_SIGNATURE_BYTES = 65


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != _HASH_BYTES:
        raise RecordError(f"{name} must be 32 bytes (a SHA-256), got {len(value)}")


class ParticipantStatus(enum.IntEnum):
    """Mirror of ``OrganisationRegistry.ParticipantStatus``: whether an organisation may join
    tasks (registered by the registrar) or not any more (revoked, final)."""

    NONE = 0
    REGISTERED = 1
    REVOKED = 2


class TaskStatus(enum.IntEnum):
    """Mirror of ``Ledger.TaskStatus``."""

    NONE = 0
    ACTIVE = 1
    CLOSED = 2
    CANCELLED = 3


class SkipReason(enum.IntEnum):
    """Mirror of ``Ledger.SkipReason``: why a relayed commitment, consent or reward was skipped."""

    COMMITTED_DIRECTLY = 0
    NOT_MEMBER = 1
    LEFT = 2
    EXAMPLES_ABOVE_DATASET = 3
    ALREADY_MEMBER = 4
    EPSILON_ABOVE_CAP = 5
    EPSILON_DECREASED = 6

    def describe(self) -> str:
        return _SKIP_TEXT[self]


_SKIP_TEXT = {
    SkipReason.COMMITTED_DIRECTLY: "committed directly (its own commitment counts)",
    SkipReason.NOT_MEMBER: "not a member of the task for this round",
    SkipReason.LEFT: "left the task before this round",
    SkipReason.EXAMPLES_ABOVE_DATASET: "claims more examples than the dataset size it consented",
    SkipReason.ALREADY_MEMBER: "already a member",
    SkipReason.EPSILON_ABOVE_CAP: "signed a privacy spend above the task's epsilon cap",
    SkipReason.EPSILON_DECREASED: "signed a privacy spend below the one it had on record",
}


class VoidReason(enum.IntEnum):
    """Mirror of ``Ledger.VoidReason``: what a challenger proved wrong with a reward leaf."""

    NOT_MEMBER = 0
    INDEX_MISMATCH = 1
    EXAMPLES_ABOVE_DATASET = 2


class RoundState(enum.IntEnum):
    """Mirror of ``Ledger.RoundState``."""

    NONE = 0
    OPEN = 1
    COMMITTED = 2
    FAILED = 3


@dataclass(frozen=True)
class Commitment:
    """What a participant commits to for one round: the hash of its update, its data size and
    its cumulative privacy spend after the round (micro-epsilon; 0 without DP terms)."""

    task_id: TaskId
    round: RoundId
    update_hash: bytes
    num_examples: int
    epsilon: int = 0

    def __post_init__(self) -> None:
        _check_hash("update_hash", self.update_hash)
        if self.num_examples < 0:
            raise RecordError(f"num_examples must be >= 0, got {self.num_examples}")
        if self.epsilon < 0:
            raise RecordError(f"epsilon (micro-epsilon) must be >= 0, got {self.epsilon}")


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
        return _compact(self.signature)


def _compact(signature: bytes) -> tuple[bytes, bytes]:
    r, s, v = signature[:32], signature[32:64], signature[64]
    parity = (v - 27) if v >= 27 else v
    vs = (int.from_bytes(s, "big") | (parity << 255)).to_bytes(32, "big")
    return r, vs


@dataclass(frozen=True)
class Consent:
    """What a participant consents to when it joins a task: the task's spec, its dataset size
    (no commitment of it may claim more examples) and the SHA-256 of its training data."""

    task_id: TaskId
    spec_hash: bytes
    dataset_size: int
    data_hash: bytes

    def __post_init__(self) -> None:
        _check_hash("spec_hash", self.spec_hash)
        _check_hash("data_hash", self.data_hash)
        if not 0 <= self.dataset_size < 2**64:
            raise RecordError(f"dataset_size must fit in uint64, got {self.dataset_size}")


@dataclass(frozen=True)
class SignedConsent:
    """A consent with its signer's 65-byte EIP-712 signature (r || s || v)."""

    consent: Consent
    participant: str
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != _SIGNATURE_BYTES:
            raise RecordError(f"signature must be 65 bytes, got {len(self.signature)}")

    def compact(self) -> tuple[bytes, bytes]:
        """The EIP-2098 compact form (r, yParityAndS) the contract takes."""
        return _compact(self.signature)


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
    reserved: int = 0
    refunded: int = 0
    swept: int = 0
    status: TaskStatus = TaskStatus.ACTIVE
    min_round_duration: int = 0
    challenge_period: int = 0
    claim_period: int = 0
    claim_deadline: int = 0
    round_opened_at: int = 0
    round_opened_block: int = 0
    member_count: int = 0
    epsilon_cap: int = 0  # micro-epsilon; 0 = no DP terms (issue 17)

    @property
    def unattributed(self) -> int:
        """What the pool holds that no round has taken: refundable once the task ends."""
        return self.funded - self.attributed


@dataclass(frozen=True)
class TaskTerms:
    """The terms a task is created with (``Ledger.TaskTerms``): durations in seconds, and the
    privacy cap in micro-epsilon (0: no DP terms)."""

    min_round_duration: int = 0
    challenge_period: int = 0
    claim_period: int = 90 * 24 * 3600
    epsilon_cap: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon_cap <= EPSILON_CAP_MAX:
            raise RecordError(
                f"the epsilon cap must be 0 (no DP) up to {EPSILON_CAP_MAX} micro-epsilon "
                f"(epsilon {EPSILON_CAP_MAX / 10**6:g}, the ledger's uint32), got "
                f"{self.epsilon_cap}: choose a smaller epsilon"
            )
        if self.claim_period <= self.challenge_period:
            raise RecordError(
                f"the claim period ({self.claim_period} s) must exceed the challenge period "
                f"({self.challenge_period} s)"
            )


def privacy_task_terms(privacy: PrivacyTerms | None) -> TaskTerms | None:
    """The terms that put a spec's privacy cap on chain (``to_micro`` of its epsilon), the
    default ones otherwise; None without DP terms (``createTask``: cap 0)."""
    if privacy is None:
        return None
    return TaskTerms(epsilon_cap=to_micro(privacy.epsilon))


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
    """An organisation as the registry stores it (``OrganisationRegistry.Participant``)."""

    status: ParticipantStatus
    registered_at: int
    revoked_at: int
    org_hash: bytes
    name: str = ""
    uri: str = ""

    def label(self, address: str, *, whole: bool = False) -> str:
        """ "Name (0xab12…)" (``whole``: the whole address), or the bare address of an
        unnamed account."""
        return party_label(self.name, address, whole=whole)


def party_label(name: str, address: str, *, whole: bool = False) -> str:
    """How a party is shown: "St Mary's Hospital (0xab12…)" (with ``whole``, the whole
    address, as a command's output gives it to copy), or its address without a name."""
    if not name:
        return address
    return f"{name} ({address if whole else address[:6] + '…'})"


@dataclass(frozen=True)
class Membership:
    """A participant's membership of one task (``Ledger.Membership``): eligible for the rounds
    ``[joined_round, left_round)`` (``left_round`` 0 while it is a member)."""

    joined_round: int
    left_round: int
    index: int
    dataset_size: int
    data_hash: bytes
    epsilon_spent: int = 0  # micro-epsilon of its latest recorded commitment (issue 17)

    @property
    def joined(self) -> bool:
        return self.joined_round != 0

    def eligible(self, round_id: int) -> bool:
        """Whether the member may commit and be paid in ``round_id`` (the contract's rule)."""
        return (
            self.joined_round != 0
            and self.joined_round <= round_id
            and (self.left_round == 0 or round_id < self.left_round)
        )


@dataclass(frozen=True)
class FunderRecord:
    """What a funder put into a task and was paid back (``Ledger.Funder``)."""

    contributed: int
    refunded: int
    swept: int
