"""A ledger's history rebuilt from its events alone: tasks, participants, rounds, commitments,
global models, evaluations, rewards and claims.

Nothing here trusts a run's own files: every fact comes from a decoded ledger event or, for the
signatures of relayed commitments (recorded as ``CommitmentRecorded`` events without them), from
the calldata of the round's ``commitRound`` transaction. :mod:`fedchain.audit` checks the lineage
against the content store; ``fedchain verify-model`` looks a model up in it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.chain.lineage_reads import (
    checksum_address,
    ledger_calls,
    transaction_calls,
    transaction_sender,
)
from fedchain.chain.signing import LedgerDomain
from fedchain.federation.merkle_rounds import ChainRoot

__all__ = [
    "Claim",
    "CommitmentEntry",
    "LedgerLineage",
    "Membership",
    "ModelSighting",
    "Position",
    "RewardEntry",
    "RoundLineage",
    "TaskLineage",
    "attributed_by_participant",
    "compact_to_signature",
    "find_model",
    "ledger_calls",
    "memberships",
    "rebuild_lineage",
]

#: Where an event sits in the chain: (block number, log index). Compared as a tuple, it orders
#: events as they were executed: a node numbers the logs of a block across its transactions.
#: (eth-tester numbers them within each transaction, but the embedded chain mines one
#: transaction per block, so there too no two transactions share a block.)
Position = tuple[int, int]


@dataclass(frozen=True)
class CommitmentEntry:
    """One ``CommitmentRecorded`` event, with the proof of who made it.

    A relayed commitment carries the participant's EIP-712 signature (65 bytes, r || s || v) read
    from the commit transaction's calldata; a direct one was sent by the participant itself, so
    its proof is the transaction's sender.
    """

    participant: str
    update_hash: str
    num_examples: int
    relayed: bool
    position: Position
    tx_hash: str
    signature: bytes | None = None
    sender: str | None = None
    problem: str = ""  # why the proof could not be read


@dataclass(frozen=True)
class RewardEntry:
    """One ``RewardAttributed`` event: the fixed-point score and the token amount."""

    participant: str
    score: int
    amount: int


@dataclass
class RoundLineage:
    """One round of a task as the ledger recorded it."""

    round: int
    parent_hash: str
    opened: Position
    state: str = "open"  # open, committed or failed
    global_hash: str | None = None
    accuracy_ppm: int | None = None
    loss_ppm: int | None = None
    scoring_hash: str | None = None
    commitment_count: int = 0
    total_reward: int = 0
    commit_tx: str | None = None
    closed: Position | None = None
    failed_reason: str = ""
    commitments: list[CommitmentEntry] = field(default_factory=list)
    rewards: list[RewardEntry] = field(default_factory=list)
    #: Merkle mode: the ``RoundRootCommitted`` event (commitments and rewards are published off
    #: chain, see :func:`fedchain.audit.merkle.attach_merkle_records`).
    root: ChainRoot | None = None

    @property
    def accepted(self) -> list[CommitmentEntry]:
        """The commitments whose updates were aggregated, in the server's canonical order.

        The coordinator attributes a reward (possibly zero) to every update it accepted, so the
        accepted commitments are those of the rewarded participants, in the server's order.
        """
        from fedchain.federation.coalitions import aggregation_order

        rewarded = {r.participant for r in self.rewards}
        chosen = [c for c in self.commitments if c.participant in rewarded]
        return sorted(chosen, key=lambda c: aggregation_order(c.update_hash, c.participant))


@dataclass
class TaskLineage:
    """A task and its rounds, in order."""

    task_id: int
    spec_hash: str
    initial_model_hash: str
    token: str
    reward_per_round: int
    coordinator: str
    created: Position
    rounds: dict[int, RoundLineage] = field(default_factory=dict)

    def ordered_rounds(self) -> list[RoundLineage]:
        return [self.rounds[r] for r in sorted(self.rounds)]

    def committed_rounds(self) -> list[RoundLineage]:
        return [r for r in self.ordered_rounds() if r.state == "committed"]


@dataclass
class Membership:
    """A participant's registration and, once it withdrew, its withdrawal.

    This is the one definition of an active participant the audit uses: what the contract
    checks (its ``PARTICIPANT_ROLE``) when a commitment is recorded or a round committed. A
    registration or withdrawal counts from its own event on, so one earlier in the same block
    (a lower log index) counts and one later in that block does not.
    """

    participant: str
    org_hash: str
    registered: Position
    withdrawn: Position | None = None

    def active_at(self, position: Position) -> bool:
        """Whether the participant was registered and had not withdrawn at ``position``."""
        return self.registered < position and (self.withdrawn is None or position < self.withdrawn)

    def inactive_reason(self, position: Position, what: str = "that") -> str:
        """Why the participant was not active at ``position``, the position of ``what`` (for
        example "the commitment"); "" when it was."""
        if not self.registered < position:
            return f"registered only at block {self.registered[0]}, after {what}"
        if self.withdrawn is not None and not position < self.withdrawn:
            return f"withdrew at block {self.withdrawn[0]}, before {what}"
        return ""


@dataclass(frozen=True)
class Claim:
    """One ``RewardClaimed`` event."""

    participant: str
    token: str
    amount: int
    position: Position


@dataclass
class LedgerLineage:
    """Everything one ledger recorded, rebuilt from its events."""

    domain: LedgerDomain
    tasks: dict[int, TaskLineage] = field(default_factory=dict)
    members: dict[str, Membership] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # events naming an unknown task or round


@dataclass(frozen=True)
class ModelSighting:
    """Where the ledger recorded a model hash."""

    task_id: int
    round: int  # 0 for a task's initial model
    kind: str  # "global model", "initial model" or "update"
    participant: str | None = None


def compact_to_signature(r: bytes, vs: bytes) -> bytes:
    """The 65-byte signature (r || s || v, v = 27 or 28) of an EIP-2098 compact one."""
    packed = int.from_bytes(vs, "big")
    s = packed & ((1 << 255) - 1)
    v = 27 + (packed >> 255)
    return bytes(r) + s.to_bytes(32, "big") + bytes([v])


def rebuild_lineage(
    gateway: LedgerGateway, events: Sequence[LedgerEvent] | None = None
) -> LedgerLineage:
    """Rebuild every task of the gateway's ledger from its events, in chain order.

    Parameters
    ----------
    gateway : LedgerGateway
        The ledger to read (any account: nothing is written).
    events : sequence of LedgerEvent, optional
        The ledger's events, if already read.

    Returns
    -------
    LedgerLineage
        Tasks with their rounds, commitments (with their signatures or senders), rewards;
        participants' registrations and withdrawals; claims.
    """
    events = list(gateway.events() if events is None else events)
    lineage = LedgerLineage(domain=gateway.domain)
    for event in events:
        _apply(lineage, event)
    _attach_proofs(gateway, lineage)
    return lineage


def _apply(lineage: LedgerLineage, event: LedgerEvent) -> None:
    a, here = event.args, (event.block_number, event.log_index)
    name = event.name
    if name == "TaskCreated":
        task_id = int(a["taskId"])
        lineage.tasks[task_id] = TaskLineage(
            task_id=task_id,
            spec_hash=str(a["specHash"]),
            initial_model_hash=str(a["initialModelHash"]),
            token=checksum_address(a["token"]),
            reward_per_round=int(a["rewardPerRound"]),
            coordinator=checksum_address(a["coordinator"]),
            created=here,
        )
    elif name in _MEMBER_EVENTS:
        _apply_membership(lineage.members, event)
    elif name == "RewardClaimed":
        claim = Claim(
            checksum_address(a["participant"]), checksum_address(a["token"]), int(a["amount"]), here
        )
        lineage.claims.append(claim)
    elif name in _ROUND_EVENTS:
        _apply_round(lineage, event)


def memberships(events: Sequence[LedgerEvent]) -> dict[str, Membership]:
    """Every participant's registration and withdrawal, by checksummed address."""
    members: dict[str, Membership] = {}
    for event in events:
        if event.name in _MEMBER_EVENTS:
            _apply_membership(members, event)
    return members


_MEMBER_EVENTS = frozenset({"ParticipantRegistered", "ParticipantWithdrew"})


def _apply_membership(members: dict[str, Membership], event: LedgerEvent) -> None:
    who, here = checksum_address(event.args["participant"]), (event.block_number, event.log_index)
    if event.name == "ParticipantRegistered":
        members[who] = Membership(who, str(event.args["orgHash"]), here)
    elif who in members:  # the contract lets only a registered participant withdraw
        members[who].withdrawn = here


def _apply_round(lineage: LedgerLineage, event: LedgerEvent) -> None:
    a, here = event.args, (event.block_number, event.log_index)
    task = lineage.tasks.get(int(a["taskId"]))
    round_id = int(a["round"])
    if task is None:
        lineage.orphans.append(f"{event.name} of unknown task {a['taskId']} at block {here[0]}")
        return
    if event.name == "RoundOpened":
        task.rounds[round_id] = RoundLineage(round_id, str(a["parentModelHash"]), here)
        return
    entry = task.rounds.get(round_id)
    if entry is None:
        lineage.orphans.append(
            f"{event.name} of task {task.task_id} round {round_id} (never opened) "
            f"at block {here[0]}"
        )
        return
    if event.name == "CommitmentRecorded":
        entry.commitments.append(
            CommitmentEntry(
                participant=checksum_address(a["participant"]),
                update_hash=str(a["updateHash"]).lower(),
                num_examples=int(a["numExamples"]),
                relayed=bool(a["relayed"]),
                position=here,
                tx_hash=event.tx_hash,
            )
        )
    elif event.name == "RewardAttributed":
        entry.rewards.append(
            RewardEntry(checksum_address(a["participant"]), int(a["score"]), int(a["amount"]))
        )
    elif event.name == "RoundCommitted":
        entry.state, entry.closed, entry.commit_tx = "committed", here, event.tx_hash
        entry.global_hash = str(a["globalModelHash"]).lower()
        entry.accuracy_ppm, entry.loss_ppm = int(a["accuracyPpm"]), int(a["lossPpm"])
        entry.scoring_hash = str(a["scoringHash"]).lower()
        entry.commitment_count, entry.total_reward = (
            int(a["commitmentCount"]),
            int(a["totalReward"]),
        )
    elif event.name == "RoundRootCommitted":
        entry.root = ChainRoot(
            root=str(a["root"]).lower(),
            record_hash=str(a["recordHash"]).lower(),
            leaf_count=int(a["leafCount"]),
            total_reward=int(a["totalReward"]),
            block_number=here[0],
        )
    elif event.name == "RoundFailed":
        entry.state, entry.closed, entry.failed_reason = "failed", here, str(a["reason"])


_ROUND_EVENTS = frozenset(
    {
        "RoundOpened",
        "CommitmentRecorded",
        "RewardAttributed",
        "RoundRootCommitted",
        "RoundCommitted",
        "RoundFailed",
    }
)


def _attach_proofs(gateway: LedgerGateway, lineage: LedgerLineage) -> None:
    """Give each relayed commitment its signature (from the commit transaction's calldata) and
    each direct one its transaction's sender."""
    for task in lineage.tasks.values():
        for entry in task.rounds.values():
            signatures, problem = _relayed_signatures(gateway, entry)
            proven = []
            for c in entry.commitments:
                if c.relayed:
                    signature = signatures.get(c.participant)
                    why = problem or ("" if signature else "not in the commit transaction")
                    proven.append(replace(c, signature=signature, problem=why))
                else:
                    sender, why = _sender(gateway, c.tx_hash)
                    proven.append(replace(c, sender=sender, problem=why))
            entry.commitments = proven


def _relayed_signatures(
    gateway: LedgerGateway, entry: RoundLineage
) -> tuple[dict[str, bytes], str]:
    """participant -> 65-byte signature, decoded from the round's ``commitRound`` calldata."""
    relayed_txs = {c.tx_hash for c in entry.commitments if c.relayed}
    if not relayed_txs:
        return {}, ""
    signatures: dict[str, bytes] = {}
    for tx_hash in relayed_txs:
        try:
            calls = transaction_calls(gateway, tx_hash)
        except Exception as exc:
            return {}, f"commit transaction {tx_hash} cannot be decoded: {exc}"
        commits = [args for name, args in calls if name == "commitRound"]
        if len(commits) != 1:
            names = ", ".join(name for name, _ in calls)
            return {}, f"transaction {tx_hash} calls {names}, not one commitRound"
        for item in commits[0]["commitments"]:
            participant, _, _, r, vs = _commitment_fields(item)
            signatures[checksum_address(participant)] = compact_to_signature(r, vs)
    return signatures, ""


def _commitment_fields(item: Any) -> tuple[str, bytes, int, bytes, bytes]:
    """A decoded ``SignedCommitment`` (a dict or a tuple, depending on web3's decoder)."""
    if isinstance(item, dict):
        return (
            str(item["participant"]),
            bytes(item["updateHash"]),
            int(item["numExamples"]),
            bytes(item["r"]),
            bytes(item["vs"]),
        )
    participant, update_hash, examples, r, vs = item
    return str(participant), bytes(update_hash), int(examples), bytes(r), bytes(vs)


def _sender(gateway: LedgerGateway, tx_hash: str) -> tuple[str | None, str]:
    try:
        return transaction_sender(gateway, tx_hash), ""
    except Exception as exc:  # a node that cannot serve it: a finding of the audit, not a crash
        return None, f"transaction {tx_hash} cannot be read: {exc}"


def find_model(lineage: LedgerLineage, digest: str) -> list[ModelSighting]:
    """Every place the ledger recorded the model hash ``digest`` (0x hex)."""
    wanted = digest.lower()
    return list(_sightings(lineage, wanted))


def _sightings(lineage: LedgerLineage, wanted: str) -> Iterator[ModelSighting]:
    for task in lineage.tasks.values():
        if task.initial_model_hash.lower() == wanted:
            yield ModelSighting(task.task_id, 0, "initial model")
        for entry in task.ordered_rounds():
            if entry.state == "committed" and entry.global_hash == wanted:
                yield ModelSighting(task.task_id, entry.round, "global model")
            for c in entry.commitments:
                if c.update_hash == wanted:
                    yield ModelSighting(task.task_id, entry.round, "update", c.participant)


def attributed_by_participant(lineage: LedgerLineage) -> dict[tuple[str, str], int]:
    """(participant, token) -> tokens attributed over every task of the ledger."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for task in lineage.tasks.values():
        for entry in task.rounds.values():
            for reward in entry.rewards:
                totals[reward.participant, task.token] += reward.amount
    return dict(totals)
