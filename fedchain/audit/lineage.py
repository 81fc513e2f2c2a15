"""A ledger's history rebuilt from its events alone: organisations, tasks, their members,
funders, rounds, commitments, global models, evaluations, rewards, claims, refunds and sweeps.

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
from fedchain.chain.records import SkipReason, VoidReason, party_label
from fedchain.chain.signing import LedgerDomain
from fedchain.federation.merkle_rounds import ChainRoot

__all__ = [
    "Claim",
    "CommitmentEntry",
    "LedgerLineage",
    "Membership",
    "ModelSighting",
    "Organisation",
    "Position",
    "RewardEntry",
    "RoundLineage",
    "SkipEntry",
    "TaskLineage",
    "attributed_by_participant",
    "compact_to_signature",
    "find_model",
    "ledger_calls",
    "memberships",
    "organisations",
    "party",
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
    epsilon: int = 0  # the signed cumulative privacy spend, micro-epsilon (issue 17)


@dataclass(frozen=True)
class RewardEntry:
    """One ``RewardAttributed`` event: the fixed-point score and the token amount."""

    participant: str
    score: int
    amount: int


@dataclass(frozen=True)
class SkipEntry:
    """A ``CommitmentSkipped`` or ``RewardSkipped`` event: what the ledger did not count."""

    participant: str
    reason: str  # SkipReason's name, lower case
    amount: int = 0  # of a skipped reward


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
    skipped_commitments: list[SkipEntry] = field(default_factory=list)
    skipped_rewards: list[SkipEntry] = field(default_factory=list)
    #: The ``RoundSettled`` event: (attributed, unearned).
    settled: tuple[int, int] | None = None
    #: Merkle mode: the ``RoundRootVoided`` event (participant, reason, challenger, returned).
    voided: tuple[str, str, str, int] | None = None
    #: Merkle mode: the ``RewardLeafClaimed`` events.
    leaf_claims: list[RewardEntry] = field(default_factory=list)
    #: The times (Unix s) of the blocks that opened and closed the round; read only for a task
    #: with a minimum round duration (:func:`_attach_times`).
    opened_at: int | None = None
    closed_at: int | None = None

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
    #: The ``TaskTermsSet`` event: minimum round duration, challenge and claim periods (s).
    terms: tuple[int, int, int] = (0, 0, 0)
    #: The ``TaskTermsSet`` privacy cap, micro-epsilon (0: no DP terms; issue 17).
    epsilon_cap: int = 0
    status: str = "active"  # active, closed or cancelled
    closed_by: str = ""
    claim_deadline: int = 0
    unattributed_at_close: int = 0
    members: dict[str, Membership] = field(default_factory=dict)
    funders: dict[str, int] = field(default_factory=dict)  # funder -> contributed
    refunds: dict[str, int] = field(default_factory=dict)  # funder -> refunded
    sweeps: dict[str, int] = field(default_factory=dict)  # funder -> swept
    coordinators: list[tuple[str, str]] = field(default_factory=list)  # (previous, new)
    consents_skipped: list[SkipEntry] = field(default_factory=list)

    @property
    def funded(self) -> int:
        return sum(self.funders.values())

    def ordered_rounds(self) -> list[RoundLineage]:
        return [self.rounds[r] for r in sorted(self.rounds)]

    def committed_rounds(self) -> list[RoundLineage]:
        return [r for r in self.ordered_rounds() if r.state == "committed"]


@dataclass
class Membership:
    """A participant's membership of one task: its consent (``MemberJoined``) and, once it left
    or was removed, from which round.

    This is the one definition of membership the audit uses, the contract's: a member is
    eligible for the rounds ``[joined_round, left_round)`` (``left_round`` 0 while it is a
    member). Both bounds are the task's first uncommitted round when the event happened, so the
    eligibility of a committed round never changes.
    """

    task_id: int
    participant: str
    index: int
    joined_round: int
    dataset_size: int
    data_hash: str
    relayed: bool
    joined: Position
    tx_hash: str = ""
    left_round: int = 0
    left: Position | None = None
    removed_by: str = ""  # the coordinator that removed it ("" when it left by itself)
    #: The EIP-712 consent signature (65 bytes) of a relayed join, from its calldata.
    signature: bytes | None = None
    sender: str | None = None  # a direct join's transaction sender
    problem: str = ""  # why the consent's proof could not be read

    def eligible(self, round_id: int) -> bool:
        """Whether the participant could commit and be paid in ``round_id``."""
        return self.joined_round <= round_id and (
            self.left_round == 0 or round_id < self.left_round
        )

    def member_when_opened(self, round_id: int) -> bool:
        """Whether it was a member when ``round_id`` opened (a leaf paying it cannot void the
        round's root, even if it left during the round)."""
        return self.joined_round <= round_id and (
            self.left_round == 0 or self.left_round >= round_id
        )

    def ineligible_reason(self, round_id: int) -> str:
        """Why it could not commit or be paid in ``round_id`` ("" when it could)."""
        if round_id < self.joined_round:
            return f"joined task {self.task_id} only from round {self.joined_round}"
        if self.left_round and round_id >= self.left_round:
            how = f"was removed by {self.removed_by}" if self.removed_by else "left"
            return f"{how} from round {self.left_round} of task {self.task_id}"
        return ""


@dataclass
class Organisation:
    """An organisation as the registry recorded it: its last registration, and revocation."""

    account: str
    name: str
    metadata_hash: str
    uri: str
    registrar: str
    registered: Position
    revoked: Position | None = None

    def label(self, *, whole: bool = False) -> str:
        """ "Name (0xab12…)" as the report shows a party (``whole``: the whole address)."""
        return party_label(self.name, self.account, whole=whole)


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
    organisations: dict[str, Organisation] = field(default_factory=dict)
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
        Organisations; tasks with their members (consents and leavings), funders, rounds,
        commitments (with their signatures or senders), rewards, refunds and sweeps; claims.
    """
    events = list(gateway.events() if events is None else events)
    lineage = LedgerLineage(domain=gateway.domain)
    for event in events:
        _apply(lineage, event)
    _attach_proofs(gateway, lineage)
    _attach_consents(gateway, lineage)
    _attach_times(gateway, lineage)
    return lineage


def _attach_times(gateway: LedgerGateway, lineage: LedgerLineage) -> None:
    """The block times of each round of a task with a minimum round duration (two reads a
    round; tasks without one need none)."""
    times: dict[int, int] = {}

    def at(block: int) -> int:
        if block not in times:
            times[block] = gateway.block_timestamp(block)
        return times[block]

    for task in lineage.tasks.values():
        if not task.terms[0]:
            continue
        for entry in task.rounds.values():
            entry.opened_at = at(entry.opened[0])
            if entry.closed is not None:
                entry.closed_at = at(entry.closed[0])


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
    elif name in _TASK_EVENTS:
        _apply_task(lineage, event)
    elif name in _REGISTRY_EVENTS:
        _apply_registry(lineage.organisations, event)
    elif name == "RewardClaimed":
        claim = Claim(
            checksum_address(a["participant"]), checksum_address(a["token"]), int(a["amount"]), here
        )
        lineage.claims.append(claim)
    elif name in _ROUND_EVENTS:
        _apply_round(lineage, event)


def memberships(events: Sequence[LedgerEvent], task_id: int) -> dict[str, Membership]:
    """Every member of task ``task_id`` (joins, leavings, removals), by checksummed address."""
    task = TaskLineage(task_id, "", "", "", 0, "", (0, 0))
    for event in events:
        if event.name in _MEMBER_EVENTS and int(event.args["taskId"]) == task_id:
            _apply_membership(task, event)
    return task.members


def organisations(events: Sequence[LedgerEvent]) -> dict[str, Organisation]:
    """Every organisation the registry recorded, by checksummed address."""
    found: dict[str, Organisation] = {}
    for event in events:
        if event.name in _REGISTRY_EVENTS:
            _apply_registry(found, event)
    return found


_REGISTRY_EVENTS = frozenset({"OrganisationRegistered", "OrganisationRevoked"})
_MEMBER_EVENTS = frozenset({"MemberJoined", "MemberLeft", "MemberRemoved"})
_TASK_EVENTS = _MEMBER_EVENTS | {
    "TaskTermsSet",
    "TaskFunded",
    "TaskClosed",
    "TaskCancelled",
    "FundsRefunded",
    "UnclaimedSwept",
    "TaskCoordinatorChanged",
    "ConsentSkipped",
}


def _apply_registry(found: dict[str, Organisation], event: LedgerEvent) -> None:
    a, here = event.args, (event.block_number, event.log_index)
    who = checksum_address(a["account"])
    if event.name == "OrganisationRegistered":
        previous = found.get(who)
        found[who] = Organisation(
            who,
            str(a["name"]),
            str(a["metadataHash"]),
            str(a["uri"]),
            checksum_address(a["registrar"]),
            previous.registered if previous else here,
        )
    elif who in found:
        found[who].revoked = here


def _apply_task(lineage: LedgerLineage, event: LedgerEvent) -> None:
    a, here = event.args, (event.block_number, event.log_index)
    task = lineage.tasks.get(int(a["taskId"]))
    if task is None:
        lineage.orphans.append(f"{event.name} of unknown task {a['taskId']} at block {here[0]}")
        return
    name = event.name
    if name in _MEMBER_EVENTS:
        _apply_membership(task, event)
    elif name == "TaskTermsSet":
        task.terms = (int(a["minRoundDuration"]), int(a["challengePeriod"]), int(a["claimPeriod"]))
        task.epsilon_cap = int(a["epsilonCap"])
    elif name == "TaskFunded":
        funder = checksum_address(a["funder"])
        task.funders[funder] = task.funders.get(funder, 0) + int(a["amount"])
    elif name in ("TaskClosed", "TaskCancelled"):
        task.status = "closed" if name == "TaskClosed" else "cancelled"
        task.closed_by = checksum_address(a["by"])
        task.claim_deadline = int(a["claimDeadline"])
        task.unattributed_at_close = int(a["unattributed"])
    elif name in ("FundsRefunded", "UnclaimedSwept"):
        book = task.refunds if name == "FundsRefunded" else task.sweeps
        funder = checksum_address(a["funder"])
        book[funder] = book.get(funder, 0) + int(a["amount"])
    elif name == "TaskCoordinatorChanged":
        task.coordinators.append(
            (checksum_address(a["previous"]), checksum_address(a["coordinator"]))
        )
        task.coordinator = checksum_address(a["coordinator"])
    elif name == "ConsentSkipped":
        reason = SkipReason(int(a["reason"])).name.lower()
        task.consents_skipped.append(SkipEntry(checksum_address(a["participant"]), reason))


def _apply_membership(task: TaskLineage, event: LedgerEvent) -> None:
    a, here = event.args, (event.block_number, event.log_index)
    who = checksum_address(a["participant"])
    if event.name == "MemberJoined":
        task.members[who] = Membership(
            task_id=task.task_id,
            participant=who,
            index=int(a["memberIndex"]),
            joined_round=int(a["fromRound"]),
            dataset_size=int(a["datasetSize"]),
            data_hash=str(a["dataHash"]),
            relayed=bool(a["relayed"]),
            joined=here,
            tx_hash=event.tx_hash,
        )
        return
    member = task.members.get(who)
    if member is None:  # the contract lets only a member leave: an inconsistent ledger
        return
    member.left_round, member.left = int(a["fromRound"]), here
    if event.name == "MemberRemoved":
        member.removed_by = checksum_address(a["by"])


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
                epsilon=int(a["epsilon"]),
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
            leaf_count=int(a["declaredLeafCount"]),
            total_reward=int(a["declaredTotalReward"]),
            block_number=here[0],
        )
    elif event.name == "RoundFailed":
        entry.state, entry.closed, entry.failed_reason = "failed", here, str(a["reason"])
    else:
        _apply_round_extra(entry, event)


def _apply_round_extra(entry: RoundLineage, event: LedgerEvent) -> None:
    """The events issue 16 added to a round: skips, its settlement, voids and leaf claims."""
    a = event.args
    if event.name in ("CommitmentSkipped", "RewardSkipped"):
        skip = SkipEntry(
            checksum_address(a["participant"]),
            SkipReason(int(a["reason"])).name.lower(),
            int(a.get("amount", 0)),
        )
        book = (
            entry.skipped_commitments
            if event.name == "CommitmentSkipped"
            else entry.skipped_rewards
        )
        book.append(skip)
    elif event.name == "RoundSettled":
        entry.settled = (int(a["attributed"]), int(a["unearned"]))
    elif event.name == "RoundRootVoided":
        entry.voided = (
            checksum_address(a["participant"]),
            VoidReason(int(a["reason"])).name.lower(),
            checksum_address(a["challenger"]),
            int(a["returned"]),
        )
    elif event.name == "RewardLeafClaimed":
        entry.leaf_claims.append(
            RewardEntry(checksum_address(a["participant"]), int(a["score"]), int(a["amount"]))
        )


_ROUND_EVENTS = frozenset(
    {
        "RoundOpened",
        "CommitmentRecorded",
        "RewardAttributed",
        "RoundRootCommitted",
        "RoundCommitted",
        "RoundFailed",
        "CommitmentSkipped",
        "RewardSkipped",
        "RoundSettled",
        "RoundRootVoided",
        "RewardLeafClaimed",
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
            participant, _, _, _, r, vs = _commitment_fields(item)
            signatures[checksum_address(participant)] = compact_to_signature(r, vs)
    return signatures, ""


def _commitment_fields(item: Any) -> tuple[str, bytes, int, int, bytes, bytes]:
    """A decoded ``SignedCommitment`` (a dict or a tuple, depending on web3's decoder)."""
    if isinstance(item, dict):
        return (
            str(item["participant"]),
            bytes(item["updateHash"]),
            int(item["numExamples"]),
            int(item["epsilon"]),
            bytes(item["r"]),
            bytes(item["vs"]),
        )
    participant, update_hash, examples, epsilon, r, vs = item
    return str(participant), bytes(update_hash), int(examples), int(epsilon), bytes(r), bytes(vs)


def _attach_consents(gateway: LedgerGateway, lineage: LedgerLineage) -> None:
    """Give each relayed join its consent signature (from the ``joinTaskFor`` or
    ``joinTaskForBatch`` calldata) and each direct join its transaction's sender."""
    for task in lineage.tasks.values():
        signatures: dict[str, dict[str, bytes]] = {}
        for member in task.members.values():
            if not member.relayed:
                member.sender, member.problem = _sender(gateway, member.tx_hash)
                continue
            if member.tx_hash not in signatures:
                signatures[member.tx_hash] = _consent_signatures(gateway, member.tx_hash)
            member.signature = signatures[member.tx_hash].get(member.participant)
            if member.signature is None:
                member.problem = f"no signed consent in its join transaction {member.tx_hash}"


def _consent_signatures(gateway: LedgerGateway, tx_hash: str) -> dict[str, bytes]:
    """participant -> 65-byte consent signature, in a join transaction's calldata."""
    try:
        calls = transaction_calls(gateway, tx_hash)
    except Exception:  # the member's problem says its consent could not be read
        return {}
    found: dict[str, bytes] = {}
    for name, args in calls:
        consents = [args["consent"]] if name == "joinTaskFor" else args.get("consents", [])
        if name not in ("joinTaskFor", "joinTaskForBatch"):
            continue
        for item in consents:
            participant, r, vs = _consent_fields(item)
            found[checksum_address(participant)] = compact_to_signature(r, vs)
    return found


def _consent_fields(item: Any) -> tuple[str, bytes, bytes]:
    """A decoded ``SignedConsent``: participant, r, vs (a dict or a tuple)."""
    if isinstance(item, dict):
        return str(item["participant"]), bytes(item["r"]), bytes(item["vs"])
    participant, _, _, r, vs = item
    return str(participant), bytes(r), bytes(vs)


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
    """(participant, token) -> tokens credited over every task of the ledger: relayed rounds'
    rewards, and the merkle leaves proven on chain (a participant can claim nothing more)."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for task in lineage.tasks.values():
        for entry in task.rounds.values():
            credited = entry.leaf_claims if entry.root is not None else entry.rewards
            for reward in credited:
                totals[reward.participant, task.token] += reward.amount
    return dict(totals)


def party(lineage: LedgerLineage, address: str) -> str:
    """``address`` as "Name (0x…whole address)" when the registry named it, else the bare
    address (a command's output: the address stays whole, to copy)."""
    org = lineage.organisations.get(checksum_address(address))
    return org.label(whole=True) if org is not None else address
