"""The checks of a ledger's lineage against the content store and the task spec: one task's
chain-only checks (spec, events, parents, signatures, budget), its store checks (global models,
updates, final model), its recomputation (:mod:`fedchain.audit.replay`), the merkle rounds'
records, and the ledger-wide claims.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from fedchain.audit.lineage import (
    CommitmentEntry,
    LedgerLineage,
    Membership,
    RoundLineage,
    TaskLineage,
    attributed_by_participant,
)
from fedchain.audit.merkle import attach_merkle_records
from fedchain.audit.privacy import check_privacy
from fedchain.audit.replay import replay_task, settings_for
from fedchain.audit.verdict import (
    AGGREGATION,
    BUDGET,
    CLAIMS,
    EVALUATION,
    FAILED,
    FINAL,
    FUNDS,
    GLOBALS,
    LEDGER,
    MEMBERS,
    MERKLE,
    OPEN,
    PARENTS,
    SCORES,
    SIGNATURES,
    SPEC,
    UPDATES,
    VOIDED,
    Check,
    Rows,
)
from fedchain.chain.records import (
    Commitment,
    Consent,
    RoundId,
    SignedCommitment,
    SignedConsent,
    TaskId,
)
from fedchain.chain.signing import recover_consent_signer, recover_signer
from fedchain.hashing import file_hash, to_hex
from fedchain.settings import RunSettings
from fedchain.store import ModelStore
from fedchain.task import TaskSpec, TaskSpecError

__all__ = ["check_lineage"]


def check_lineage(
    lineage: LedgerLineage,
    *,
    store: ModelStore | None,
    tasks: Sequence[int] | None,
    specs: Sequence[tuple[str, Path]],
    base_settings: RunSettings | None,
    recompute: bool,
    final_model: Path | None = None,
    run_dir: Path | None = None,
    data: Path | None = None,
) -> list[Check]:
    """Every check of ``tasks`` (all the ledger's when None), in no particular order.

    Parameters
    ----------
    lineage : LedgerLineage
        The ledger's history (:func:`fedchain.audit.lineage.rebuild_lineage`).
    store : ModelStore, optional
        The content store; without one, the checks that need models fail and say so.
    tasks : sequence of int, optional
        The tasks to audit.
    specs : sequence of (label, path)
        Task spec files that must hash to the task's spec hash; the first that does is the
        spec a recomputation rebuilds the rounds from.
    base_settings : RunSettings, optional
        The run's settings, under the spec's fields, for a recomputation.
    recompute : bool
        Also recompute every round.
    final_model : Path, optional
        A run's final model file, which must be the last committed global model.
    run_dir : Path, optional
        A run directory, whose ``rounds/`` holds merkle rounds' records.
    data : Path, optional
        The task's CSV file a recomputation reads, instead of the run's own path.
    """
    wanted = list(lineage.tasks) if tasks is None else list(tasks)
    checks = [Check(LEDGER, False, None, None, None, orphan) for orphan in lineage.orphans]
    if not wanted:
        return [
            Check(LEDGER, False, None, None, None, "the ledger holds no task: nothing to audit")
        ]
    checks += _merkle_records(lineage, store, run_dir, wanted)
    for task_id in wanted:
        task = lineage.tasks.get(task_id)
        if task is None:
            ledger = lineage.domain.verifying_contract
            detail = f"task {task_id} is not on the ledger {ledger}: check --task or the chain"
            checks.append(Check(LEDGER, False, task_id, None, None, detail))
            continue
        audit = _TaskAudit(lineage, task, store, specs, base_settings, data=data)
        checks += audit.run(recompute, final_model)
    checks += _claims(lineage, wanted)
    return checks


def _merkle_records(
    lineage: LedgerLineage, store: ModelStore | None, run_dir: Path | None, tasks: Sequence[int]
) -> list[Check]:
    """Merkle rounds: their published records checked against the roots, and taken as the
    rounds' commitments and rewards for every other check."""
    merkle = [
        (t, r.round) for t in tasks if t in lineage.tasks
        for r in lineage.tasks[t].rounds.values() if r.root is not None
    ]  # fmt: skip
    if not merkle:
        return []
    if store is None:
        detail = "no store given: the rounds' published records cannot be read (--store DIR)"
        return [Check.not_checked(MERKLE, t, detail, r) for t, r in merkle]
    problems = [(t, p) for t, p in attach_merkle_records(lineage, store, run_dir) if t in tasks]
    if not problems:
        detail = f"{len(merkle)} rounds: roots, proofs and signed commitments match"
        return [Check(MERKLE, True, None, None, None, detail)]
    return [Check(MERKLE, False, t, p.round, p.participant or None, p.problem) for t, p in problems]


class _TaskAudit:
    """The checks of one task."""

    def __init__(
        self,
        lineage: LedgerLineage,
        task: TaskLineage,
        store: ModelStore | None,
        specs: Sequence[tuple[str, Path]],
        base_settings: RunSettings | None,
        *,
        data: Path | None = None,
    ) -> None:
        self.lineage, self.task, self.store = lineage, task, store
        self.specs, self.base_settings, self.data = specs, base_settings, data
        self.spec: TaskSpec | None = None  # the first spec given that matches the chain

    def run(self, recompute: bool, final_model: Path | None) -> list[Check]:
        rows = self._spec() + self._ledger() + self._parents() + self._members()
        rows += self._signatures() + self._globals() + self._updates() + self._budget()
        rows += check_privacy(self.task, self.spec, given=bool(self.specs))
        rows += self._funds() + self._listed()
        if final_model is not None:
            rows += self._final(final_model)
        if recompute:
            rows += self._recompute()
        return rows

    # ---------------------------------------------------------------- chain-only checks

    def _spec(self) -> list[Check]:
        rows = Rows(SPEC, self.task.task_id)
        for label, path in self.specs:
            try:
                spec = TaskSpec.load(path)
            except TaskSpecError as exc:
                rows.fail(f"{label} {path}: {exc}")
                continue
            actual = "0x" + spec.spec_hash().hex()
            if actual != self.task.spec_hash.lower():
                rows.fail(
                    f"{label} {path} hashes to {actual}, the chain recorded "
                    f"{self.task.spec_hash}: the spec was altered or is another task's"
                )
            elif self.spec is None:
                self.spec = spec
        if not self.specs:
            detail = (
                "no spec file given: pass --spec FILE (the task.json the coordinator publishes)"
            )
            return [Check.not_checked(SPEC, self.task.task_id, detail)]
        names = ", ".join(f"{label} {path}" for label, path in self.specs)
        return rows.rows(f"{names} hash to {self.task.spec_hash}")

    def _duration(self, rows: Rows, entry: RoundLineage) -> None:
        """A committed round lasted at least the task's minimum round duration (the ledger
        enforces it; the audit checks what the chain recorded)."""
        least = self.task.terms[0]
        if not least or entry.opened_at is None or entry.closed_at is None:
            return
        lasted = entry.closed_at - entry.opened_at
        if lasted < least:
            rows.fail(
                f"committed {lasted} s after it opened, under the task's minimum round "
                f"duration of {least} s",
                entry.round,
            )

    def _ledger(self) -> list[Check]:
        rows = Rows(LEDGER, self.task.task_id)
        numbers = sorted(self.task.rounds)
        if numbers != list(range(1, len(numbers) + 1)):
            rows.fail(f"rounds {numbers} are not numbered 1, 2, 3, …: a round is missing")
        for entry in self.task.ordered_rounds():
            if entry.state != "committed":
                continue
            relayed_or_direct = len(entry.commitments)
            # A merkle round counts only on-chain (direct) commitments; its signed ones are in
            # its published record, checked against the root.
            if entry.root is None and relayed_or_direct != entry.commitment_count:
                rows.fail(
                    f"{relayed_or_direct} commitment events, the commit counted "
                    f"{entry.commitment_count}",
                    entry.round,
                )
            paid = sum(r.amount for r in entry.rewards)
            if paid != entry.total_reward:
                rows.fail(
                    f"rewards sum to {paid}, the commit recorded {entry.total_reward}", entry.round
                )
            self._duration(rows, entry)
            settled = entry.settled
            if settled is not None and settled != (paid, self.task.reward_per_round - paid):
                rows.fail(
                    f"the round settled {settled[0]} attributed and {settled[1]} unearned, its "
                    f"rewards sum to {paid} of a {self.task.reward_per_round} budget",
                    entry.round,
                )
        rounds = len(self.task.rounds)
        return rows.rows(f"task {self.task.task_id}: {rounds} rounds opened, events consistent")

    def _parents(self) -> list[Check]:
        rows = Rows(PARENTS, self.task.task_id)
        expected, source = self.task.initial_model_hash.lower(), "the task's initial model"
        for entry in self.task.ordered_rounds():
            if entry.parent_hash.lower() != expected:
                rows.fail(
                    f"round {entry.round} opened on {entry.parent_hash}, but {source} is "
                    f"{expected}",
                    entry.round,
                )
            if entry.state == "committed" and entry.global_hash:
                expected, source = entry.global_hash, f"round {entry.round}'s global model"
        count = len(self.task.rounds)
        initial = _short(self.task.initial_model_hash)
        return rows.rows(f"{count} rounds, round 1 on the initial model {initial}")

    def _signatures(self) -> list[Check]:
        rows = Rows(SIGNATURES, self.task.task_id)
        count = 0
        for entry in self.task.ordered_rounds():
            for c in entry.commitments:
                count += 1
                problem = (
                    c.problem or self._unproven(entry.round, c) or self._inactive(entry.round, c)
                )
                if problem:
                    rows.fail(problem, entry.round, c.participant)
        return rows.rows(f"{count} commitments, each by a member eligible for its round")

    def _unproven(self, round_id: int, c: CommitmentEntry) -> str:
        """Why the commitment is not proven to be its participant's ("" when it is)."""
        if not c.relayed:
            signer, how = c.sender or "", "direct transaction"
        else:
            assert c.signature is not None
            try:
                commitment = Commitment(
                    TaskId(self.task.task_id),
                    RoundId(round_id),
                    bytes.fromhex(c.update_hash[2:]),
                    c.num_examples,
                    c.epsilon,
                )
                signed = SignedCommitment(commitment, c.participant, c.signature)
                signer, how = recover_signer(self.lineage.domain, signed), "signature"
            except (ValueError, TypeError) as exc:
                return f"signature does not recover: {exc}"
        if signer.lower() != c.participant.lower():
            return f"{how} is by {signer}, not the participant"
        return ""

    def _inactive(self, round_id: int, c: CommitmentEntry) -> str:
        """Why the participant could not commit in ``round_id`` ("" when it could)."""
        member = self.task.members.get(c.participant)
        if member is None:
            return f"signer never joined task {self.task.task_id}"
        reason = member.ineligible_reason(round_id)
        return f"signer {reason}" if reason else ""

    def _members(self) -> list[Check]:
        """Each member joined by its own consent (a relayed consent's signature recovers to it
        for this task's spec, its dataset size and data hash; a direct join was sent by it), as
        a registered organisation."""
        rows = Rows(MEMBERS, self.task.task_id)
        for member in self.task.members.values():
            problem = member.problem or self._consent_problem(member)
            if problem:
                rows.fail(problem, member.joined_round, member.participant)
        left = sum(1 for m in self.task.members.values() if m.left_round)
        return rows.rows(
            f"{len(self.task.members)} members, each by its own consent to the spec; {left} left"
        )

    def _consent_problem(self, member: Membership) -> str:
        org = self.lineage.organisations.get(member.participant)
        if org is None or not org.registered < member.joined:
            return "joined without being a registered organisation"
        if org.revoked is not None and org.revoked < member.joined:
            return "joined after its organisation was revoked"
        if not member.relayed:
            if (member.sender or "").lower() != member.participant.lower():
                return f"its direct join was sent by {member.sender}"
            return ""
        assert member.signature is not None
        try:
            consent = Consent(
                TaskId(self.task.task_id),
                bytes.fromhex(self.task.spec_hash[2:]),
                member.dataset_size,
                bytes.fromhex(member.data_hash[2:]),
            )
            signer = recover_consent_signer(
                self.lineage.domain, SignedConsent(consent, member.participant, member.signature)
            )
        except (ValueError, TypeError) as exc:
            return f"consent signature does not recover: {exc}"
        if signer.lower() != member.participant.lower():
            return f"its consent is signed by {signer}, not by the member"
        return ""

    def _budget(self) -> list[Check]:
        rows = Rows(BUDGET, self.task.task_id)
        budget = self.task.reward_per_round
        unearned = 0  # what the rounds left in the pool: budget - attributed
        for entry in self.task.committed_rounds():
            paid = sum(r.amount for r in entry.rewards)
            if paid > budget:
                rows.fail(f"{paid} attributed, the budget is {budget}", entry.round)
            unearned += max(0, budget - paid)
            for reward in (*entry.rewards, *entry.leaf_claims):
                member = self.task.members.get(reward.participant)
                if reward.amount == 0:
                    continue
                if member is None:
                    why = f"never joined task {self.task.task_id}"
                else:
                    why = member.ineligible_reason(entry.round)
                if why:
                    rows.fail(
                        f"{reward.amount} paid to a non-member: it {why}",
                        entry.round,
                        reward.participant,
                    )
        rounds = len(self.task.committed_rounds())
        return rows.rows(
            f"{rounds} rounds, each at most {_tokens(budget)} tokens, to members only; "
            f"{_tokens(unearned)} unearned, left in the pool"
        )

    def _funds(self) -> list[Check]:
        """Refunds and sweeps: only after the task ended, to its funders, pro rata and within
        what was unattributed (refunds) or reserved and never proven (sweeps)."""
        task = self.task
        rows = Rows(FUNDS, task.task_id)
        funded = task.funded
        refunded, swept = sum(task.refunds.values()), sum(task.sweeps.values())
        if (refunded or swept) and task.status == "active":
            rows.fail(f"{refunded} refunded and {swept} swept while the task is still active")
        for book, what, pool in (
            (task.refunds, "refunded", task.unattributed_at_close + self._voided_after_close()),
            (task.sweeps, "swept", self._unproven_reserve()),
        ):
            for funder, amount in book.items():
                share = pool * task.funders.get(funder, 0) // funded if funded else 0
                if amount > share:
                    rows.fail(
                        f"{what} {amount}, its pro-rata share is at most {share}",
                        participant=funder,
                    )
        status = task.status if task.status == "active" else f"{task.status} by {task.closed_by}"
        return rows.rows(
            f"task {status}: {_tokens(funded)} funded, {_tokens(refunded)} refunded, "
            f"{_tokens(swept)} swept"
        )

    def _voided_after_close(self) -> int:
        """Reserves voided back into the pool: refundable too (entitlements only grow)."""
        return sum(r.voided[3] for r in self.task.rounds.values() if r.voided is not None)

    def _unproven_reserve(self) -> int:
        """Merkle totals committed, not voided, less the leaves proven: what sweeps may pay."""
        total = 0
        for entry in self.task.committed_rounds():
            if entry.root is None or entry.voided is not None:
                continue
            total += entry.root.total_reward - sum(c.amount for c in entry.leaf_claims)
        return total

    def _listed(self) -> list[Check]:
        rows: list[Check] = []
        for entry in self.task.ordered_rounds():
            if entry.state == "failed":
                rows.append(
                    Check(FAILED, True, self.task.task_id, entry.round, None, entry.failed_reason)
                )
            elif entry.state == "open":
                detail = "opened, never committed nor failed (the run stopped?)"
                rows.append(Check(OPEN, True, self.task.task_id, entry.round, None, detail))
            if entry.voided is not None:
                who, reason, challenger, returned = entry.voided
                detail = (
                    f"voided by {challenger}: a leaf paying {who} ({reason.replace('_', ' ')}); "
                    f"{returned} returned to the pool, the round's model stands"
                )
                rows.append(Check(VOIDED, True, self.task.task_id, entry.round, who, detail))
        return rows

    # ---------------------------------------------------------------- store checks

    def _no_store(self, check: str) -> list[Check]:
        detail = "no content store: pass --store DIR (the store/ the coordinator publishes)"
        return [Check.not_checked(check, self.task.task_id, detail)]

    def _globals(self) -> list[Check]:
        if self.store is None:
            return self._no_store(GLOBALS)
        rows = Rows(GLOBALS, self.task.task_id)
        problem = _stored_problem(self.store, self.task.initial_model_hash)
        if problem:
            rows.fail(f"initial model: {problem}", 0)
        committed = self.task.committed_rounds()
        for entry in committed:
            assert entry.global_hash is not None
            problem = _stored_problem(self.store, entry.global_hash)
            if problem:
                rows.fail(f"global model: {problem}", entry.round)
        return rows.rows(f"{len(committed)} rounds and the initial model")

    def _updates(self) -> list[Check]:
        if self.store is None:
            return self._no_store(UPDATES)
        rows = Rows(UPDATES, self.task.task_id)
        count = 0
        for entry in self.task.committed_rounds():
            for c in entry.accepted:
                count += 1
                problem = _stored_problem(self.store, c.update_hash)
                if problem:
                    rows.fail(f"stored update: {problem}", entry.round, c.participant)
        return rows.rows(f"{count} accepted updates")

    def _final(self, path: Path) -> list[Check]:
        committed = self.task.committed_rounds()
        last = committed[-1].global_hash if committed else self.task.initial_model_hash
        where = committed[-1].round if committed else 0
        if not path.is_file():
            detail = f"{path} is missing: get the run's final model from the coordinator"
            return [Check.not_checked(FINAL, self.task.task_id, detail, where)]
        actual = to_hex(file_hash(path))
        if actual != last:
            detail = f"{path.name} hashes to {actual}, round {where}'s global model is {last}"
            return [Check(FINAL, False, self.task.task_id, where, None, detail)]
        return [Check(FINAL, True, self.task.task_id, None, None, f"round {where}: {_short(last)}")]

    # ---------------------------------------------------------------- recomputation

    def _recompute(self) -> list[Check]:
        rows = {k: Rows(k, self.task.task_id) for k in (AGGREGATION, EVALUATION, SCORES)}
        if self.store is None:
            return [c for k in rows for c in self._no_store(k)]
        if self.spec is None:
            detail = "no task spec matching the chain's spec hash: pass --spec FILE"
            return [Check.not_checked(k, self.task.task_id, detail) for k in rows]
        settings = settings_for(self.spec, self.base_settings, self.lineage, self.task, self.data)
        results = replay_task(self.task, self.store, self.spec, settings)
        scored = 0
        for result in results:
            if result.blocked:  # one row per check kind, not one per participant
                # The missing or altered model fails the store checks; here it is unchecked.
                for kind_rows in rows.values():
                    kind_rows.not_checked(result.blocked, result.round, result.blocked_by)
                continue
            for kind, problem in (
                (AGGREGATION, result.aggregation),
                (EVALUATION, result.evaluation),
                (SCORES, result.unearned),
            ):
                if problem:
                    rows[kind].fail(problem, result.round)
            for s in result.scores:
                scored += 1
                if not s.ok:
                    rows[SCORES].fail(s.describe(), result.round, s.participant)
        rounds = len(results)
        return (
            rows[AGGREGATION].rows(f"{rounds} rounds reproduced bit-exactly")
            + rows[EVALUATION].rows(f"{rounds} rounds: accuracy and loss on the holdout")
            + rows[SCORES].rows(f"{scored} scores and rewards in {rounds} rounds")
        )


def _claims(lineage: LedgerLineage, tasks: Sequence[int]) -> list[Check]:
    """Claims never exceed attributions, per participant and token (ledger-wide: a claim pulls
    every task's rewards in that token)."""
    tokens = {lineage.tasks[t].token for t in tasks if t in lineage.tasks}
    first = tasks[0] if len(tasks) == 1 else None
    rows = Rows(CLAIMS, first)
    attributed = attributed_by_participant(lineage)
    claimed: dict[tuple[str, str], int] = defaultdict(int)
    for claim in lineage.claims:
        if claim.token in tokens:
            claimed[claim.participant, claim.token] += claim.amount
    for (who, token), amount in sorted(claimed.items()):
        owed = attributed.get((who, token), 0)
        if amount > owed:
            rows.fail(f"claimed {amount} of token {token}, attributed {owed}", participant=who)
    return rows.rows(f"{len(claimed)} participants claimed, none more than attributed")


def _stored_problem(store: ModelStore, digest: str) -> str:
    """Why the stored file of ``digest`` does not check out, or "" when it does."""
    stored = store.stored_hash(digest)
    if stored is None:
        return f"{digest} is not in the store at {store.location}"
    actual = to_hex(stored)
    if actual != digest.lower():
        return f"{store.name(digest)} hashes to {actual}: the file was altered"
    return ""


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "none"


def _tokens(amount: int) -> str:
    return f"{amount / 10**18:,.6f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------- replaying rounds
