"""Auditing a run or a ledger: rebuild each task's lineage from the chain, check it against the
content store, and (with ``recompute``) recompute every round.

Everything is read back from the chain's events and the content store, never from the server's
own summary (a run directory only says where the chain, the store and the spec are): the task's
``TaskCreated`` gives the spec hash and the initial model, ``RoundOpened`` each round's parent,
``CommitmentRecorded`` the updates (by hash) with the signatures read from the commit
transaction's calldata, ``RoundCommitted`` the global model, its evaluation and the scoring hash,
``RewardAttributed`` the scores and rewards, ``RewardClaimed`` the claims. The verdict is one row
per check kind when everything passes, and one failing row per failure, naming its round and
participant.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.audit.lineage import (
    CommitmentEntry,
    LedgerLineage,
    ModelSighting,
    RoundLineage,
    TaskLineage,
    attributed_by_participant,
    find_model,
    ledger_calls,
    rebuild_lineage,
)
from fedchain.chain.backends import (
    AnvilChain,
    ChainBackend,
    EmbeddedChain,
    JournalMismatch,
    RpcChain,
)
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerGateway
from fedchain.contribution.rewards import to_fixed_point
from fedchain.errors import FedchainError
from fedchain.hashing import ModelFileError, file_hash, load, model_hash, to_hex
from fedchain.settings import RunSettings
from fedchain.store import ModelCorrupted, ModelNotInStore, ModelStore
from fedchain.task import TaskSpec, TaskSpecError

__all__ = [
    "ANVIL_STATE_FILE",
    "CHECKS",
    "AuditError",
    "Check",
    "LedgerSource",
    "ModelProvenance",
    "OpenedRun",
    "ScoreCheck",
    "Verdict",
    "audit_ledger",
    "audit_lineage",
    "audit_run",
    "open_ledger",
    "open_run",
    "recompute_scores",
    "verify_model",
]

Weights = dict[str, np.ndarray[Any, Any]]

#: Where ``simulate --chain anvil`` keeps the anvil's state, relative to the run directory.
ANVIL_STATE_FILE = Path("chain") / "anvil-state.json"
_ZERO_ADDRESS = "0x" + "00" * 20

# The check kinds, in the order the verdict lists them.
CHAIN = "chain reopened; saved blocks re-execute"
SPEC = "task spec hash matches the chain"
LEDGER = "task and its events on the ledger"
PARENTS = "each round builds on the previous global model"
SIGNATURES = "commitments signed by registered participants"
GLOBALS = "global models in store and hashes match"
UPDATES = "stored updates match their commitments"
FINAL = "final model is the last committed global model"
BUDGET = "round rewards within the budget"
CLAIMS = "claims within attributions"
MERKLE = "merkle round records match the chain's roots"
AGGREGATION = "aggregation reproduces the global model"
EVALUATION = "evaluation reproduces the recorded accuracy and loss"
SCORES = "scores and rewards recompute"
FAILED = "failed round (listed)"
OPEN = "round left open (listed)"
CHECKS = (
    CHAIN,
    SPEC,
    LEDGER,
    MERKLE,
    PARENTS,
    SIGNATURES,
    GLOBALS,
    UPDATES,
    FINAL,
    BUDGET,
    CLAIMS,
    AGGREGATION,
    EVALUATION,
    SCORES,
    FAILED,
    OPEN,
)


class AuditError(FedchainError, ValueError):
    """A run or a ledger cannot be audited as given (missing files, a chain that is gone)."""


@dataclass(frozen=True)
class Check:
    """One row of a verdict: a check kind that passed, or one failure of it.

    Attributes
    ----------
    check : str
        The kind of check (one of :data:`CHECKS`).
    ok : bool
        Whether it passed.
    task, round, participant : int, int, str or None
        Where a failure is (round 0 is a task's initial model); None when not tied to one.
    detail : str
        What was checked (on success) or what is wrong and what to do (on failure).
    """

    check: str
    ok: bool
    task: int | None
    round: int | None
    participant: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "task": self.task,
            "round": self.round,
            "participant": self.participant,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Verdict:
    """The audit's result: every row, passing and failing."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True only when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "checks": [{check, ok, task, round, participant, detail}, ...]}``."""
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}


class _Rows:
    """Collects the failures of one check kind; one passing row when there are none."""

    def __init__(self, check: str, task: int | None) -> None:
        self.check, self.task = check, task
        self.failures: list[Check] = []

    def fail(self, detail: str, round: int | None = None, participant: str | None = None) -> None:
        self.failures.append(Check(self.check, False, self.task, round, participant, detail))

    def rows(self, passed: str) -> list[Check]:
        if self.failures:
            return self.failures
        return [Check(self.check, True, self.task, None, None, passed)]


# ---------------------------------------------------------------------- reaching the chain


@dataclass
class LedgerSource:
    """A ledger reachable again: its chain, a read-only gateway, and what the run says of it."""

    backend: ChainBackend
    gateway: LedgerGateway
    description: str
    out: Path | None = None
    summary: dict[str, Any] | None = None

    def close(self) -> None:
        self.backend.close()


@dataclass
class OpenedRun:
    """A run directory with its chain reachable again."""

    out: Path
    backend: ChainBackend
    gateway: LedgerGateway
    spec: TaskSpec
    settings: RunSettings
    task_id: int

    def close(self) -> None:
        self.backend.close()


def _read_summary(out: Path) -> dict[str, Any]:
    path = out / "summary.json"
    if not path.exists():
        raise AuditError(f"no run at {out}: expected summary.json there (see `fedchain simulate`)")
    try:
        summary: dict[str, Any] = json.loads(path.read_text())
        return summary
    except json.JSONDecodeError as exc:
        raise AuditError(f"{path} is not JSON ({exc}): rerun the simulation") from exc


def _open_run_chain(
    out: Path, summary: dict[str, Any], rpc_url: str | None, resume: bool
) -> tuple[ChainBackend, str]:
    kind = summary["chain"]["kind"]
    if kind == "none":
        raise AuditError(f"the run at {out} had no ledger (--chain none): nothing to verify")
    if rpc_url:
        return RpcChain(rpc_url), f"the node at {rpc_url}"
    if kind == "embedded":
        chain = EmbeddedChain.replay(out / "chain", resume=resume)
        blocks = int(chain.w3.eth.block_number)
        return chain, f"{out / 'chain'}: {blocks} blocks re-executed, every block hash matches"
    if kind == "anvil":
        state = out / ANVIL_STATE_FILE
        if not state.is_file():
            raise AuditError(
                f"the anvil chain of the run at {out} was not saved ({state} is missing): pass "
                "--rpc-url of a node that holds it"
            )
        # Read-only commands load the state without dumping it back; a claim keeps its change.
        node = AnvilChain(state_file=state, save_state=resume).start()
        return node, f"anvil restarted from {state}"
    if summary["chain"].get("rpc_url"):
        url = str(summary["chain"]["rpc_url"])
        return RpcChain(url), f"the node at {url}"
    raise AuditError(f"the {kind} chain of the run at {out} is unknown: pass --rpc-url")


def _read_gateway(backend: ChainBackend, deployment: Deployment) -> LedgerGateway:
    from fedchain.chain.accounts import devnet_account

    # Reads need no key; DEVNET TEST key 0 only signs if a claim is made with it.
    try:
        return LedgerGateway(backend.w3, deployment, devnet_account(0))
    except Exception:
        backend.close()
        raise


def open_run(out: Path, rpc_url: str | None = None, resume: bool = False) -> OpenedRun:
    """Reopen a run's chain: the saved embedded chain re-executed, the saved anvil state
    restarted, or the node at ``rpc_url``. With ``resume``, what is sent to it is kept."""
    summary = _read_summary(out)
    backend, _ = _open_run_chain(out, summary, rpc_url, resume)
    gateway = _read_gateway(backend, Deployment.load(out / "deployment.json"))
    try:
        spec = TaskSpec.load(out / "task.json")
    except TaskSpecError:
        backend.close()
        raise
    return OpenedRun(
        out=out,
        backend=backend,
        gateway=gateway,
        spec=spec,
        settings=RunSettings.from_run_config(summary["settings"]),
        task_id=int(summary["task_id"]),
    )


def open_ledger(
    *,
    run: Path | None = None,
    rpc_url: str | None = None,
    ledger: str | None = None,
    deployment: Path | None = None,
) -> LedgerSource:
    """Reach a ledger: a run's chain (``run``), a deployment file, or ``rpc_url`` + ``ledger``.

    Raises
    ------
    AuditError
        If the arguments name no ledger, or too many.
    fedchain.chain.backends.JournalMismatch
        If a run's saved embedded chain does not re-execute to its recorded block hashes.
    """
    if run is not None and (ledger or deployment):
        raise AuditError("give --run, or --ledger/--deployment, not both")
    if run is not None:
        summary = _read_summary(run)
        backend, description = _open_run_chain(run, summary, rpc_url, resume=False)
        gateway = _read_gateway(backend, Deployment.load(run / "deployment.json"))
        return LedgerSource(backend, gateway, description, run, summary)
    if deployment is not None:
        dep = Deployment.load(deployment)
        url = rpc_url or dep.rpc_url
        if not url:
            raise AuditError(f"{deployment} names no node: pass --rpc-url")
        if ledger and ledger.lower() != dep.ledger.lower():
            raise AuditError(f"--ledger {ledger} is not the ledger of {deployment} ({dep.ledger})")
        backend = RpcChain(url)
        return LedgerSource(backend, _read_gateway(backend, dep), f"the node at {url}")
    if not ledger or not rpc_url:
        raise AuditError(
            "name a ledger: --run DIR, --deployment FILE, or --rpc-url URL --ledger ADDR"
        )
    backend = RpcChain(rpc_url)
    w3 = backend.w3
    if not bytes(w3.eth.get_code(w3.to_checksum_address(ledger))):
        backend.close()
        raise AuditError(f"no contract at {ledger} on the node at {rpc_url}: check --ledger")
    dep = Deployment(int(w3.eth.chain_id), ledger, _ZERO_ADDRESS, 0, _ZERO_ADDRESS, rpc_url)
    return LedgerSource(backend, _read_gateway(backend, dep), f"the node at {rpc_url}")


# ---------------------------------------------------------------------- the audit


def _merkle_records(
    lineage: LedgerLineage, store: ModelStore | None, run_dir: Path | None, tasks: Sequence[int]
) -> list[Check]:
    """Merkle rounds: their published records checked against the roots, and taken as the
    rounds' commitments and rewards for every other check."""
    from fedchain.audit.merkle import attach_merkle_records

    merkle = [
        (t, r.round) for t in tasks if t in lineage.tasks
        for r in lineage.tasks[t].rounds.values() if r.root is not None
    ]  # fmt: skip
    if not merkle:
        return []
    if store is None:
        detail = "no store given: the rounds' published records cannot be read (--store DIR)"
        return [Check(MERKLE, False, t, r, None, detail) for t, r in merkle]
    problems = [(t, p) for t, p in attach_merkle_records(lineage, store, run_dir) if t in tasks]
    if not problems:
        detail = f"{len(merkle)} rounds: roots, proofs and signed commitments match"
        return [Check(MERKLE, True, None, None, None, detail)]
    return [Check(MERKLE, False, t, p.round, p.participant or None, p.problem) for t, p in problems]


def audit_run(
    out: Path,
    *,
    rpc_url: str | None = None,
    recompute: bool = False,
    spec_file: Path | None = None,
    store: Path | None = None,
) -> Verdict:
    """Audit a run directory's task: its chain, its store (``<out>/store``) and its spec.

    Parameters
    ----------
    out : Path
        The run directory (``fedchain simulate --out``).
    rpc_url : str, optional
        A node holding the run's chain, instead of the chain saved with the run.
    recompute : bool
        Also recompute every round: aggregation, evaluation, scores and rewards.
    spec_file : Path, optional
        A task spec file that must hash to the task's spec hash on chain (besides task.json).
    store : Path, optional
        The content store, if not the run's own ``<out>/store``.

    Returns
    -------
    Verdict
        Every check's rows; ``verdict.ok`` only when all passed.

    Raises
    ------
    AuditError
        If ``out`` is not an auditable run (no summary.json, no ledger, a chain that is gone).
    """
    summary = _read_summary(out)
    task_id = summary.get("task_id")
    task = int(task_id) if task_id is not None else None
    try:
        source = open_ledger(run=out, rpc_url=rpc_url)
    except JournalMismatch as exc:
        detail = f"{exc}{_journal_context(exc)}"
        return Verdict((Check(CHAIN, False, task, _journal_round(exc), None, detail),))
    try:
        chain_rows = [Check(CHAIN, True, task, None, None, source.description)]
        specs = [("task.json", out / "task.json")] + ([("--spec", spec_file)] if spec_file else [])
        settings = RunSettings.from_run_config(summary.get("settings", {}))
        checks = _audit(
            rebuild_lineage(source.gateway),
            store=ModelStore(store or out / "store"),
            tasks=[task] if task is not None else None,
            specs=specs,
            base_settings=settings,
            recompute=recompute,
            final_model=out / "final_model.safetensors",
            run_dir=out,
        )
    finally:
        source.close()
    return Verdict(tuple(chain_rows + checks))


def audit_ledger(
    source: LedgerSource,
    *,
    store: Path | None,
    spec_file: Path | None = None,
    task: int | None = None,
    recompute: bool = False,
) -> Verdict:
    """Audit every task of a ledger (or ``task``) without a run directory.

    The store is the content store the coordinator published (``store/<sha256>.safetensors``);
    without one, the checks that need models fail and say so. Recomputing needs the task spec
    (``spec_file``): the holdout, the model and the strategy are rebuilt from it.
    """
    return audit_lineage(
        rebuild_lineage(source.gateway),
        store=store,
        spec_file=spec_file,
        task=task,
        recompute=recompute,
    )


def audit_lineage(
    lineage: LedgerLineage,
    *,
    store: Path | None,
    spec_file: Path | None = None,
    task: int | None = None,
    recompute: bool = False,
) -> Verdict:
    """Audit a lineage already rebuilt (:func:`fedchain.audit.lineage.rebuild_lineage`); see
    :func:`audit_ledger`."""
    return Verdict(
        tuple(
            _audit(
                lineage,
                store=ModelStore(store) if store is not None else None,
                tasks=[task] if task is not None else None,
                specs=[("--spec", spec_file)] if spec_file else [],
                base_settings=None,
                recompute=recompute,
            )
        )
    )


def _audit(
    lineage: LedgerLineage,
    *,
    store: ModelStore | None,
    tasks: Sequence[int] | None,
    specs: Sequence[tuple[str, Path]],
    base_settings: RunSettings | None,
    recompute: bool,
    final_model: Path | None = None,
    run_dir: Path | None = None,
) -> list[Check]:
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
        checks += _TaskAudit(lineage, task, store, specs, base_settings).run(recompute, final_model)
    checks += _claims(lineage, wanted)
    order = {name: i for i, name in enumerate(CHECKS)}
    return sorted(checks, key=lambda c: (order.get(c.check, len(order)), c.task or 0))


class _TaskAudit:
    """The checks of one task."""

    def __init__(
        self,
        lineage: LedgerLineage,
        task: TaskLineage,
        store: ModelStore | None,
        specs: Sequence[tuple[str, Path]],
        base_settings: RunSettings | None,
    ) -> None:
        self.lineage, self.task, self.store = lineage, task, store
        self.specs, self.base_settings = specs, base_settings
        self.spec: TaskSpec | None = None  # the first spec given that matches the chain

    def run(self, recompute: bool, final_model: Path | None) -> list[Check]:
        rows = self._spec() + self._ledger() + self._parents() + self._signatures()
        rows += self._globals() + self._updates() + self._budget() + self._listed()
        if final_model is not None:
            rows += self._final(final_model)
        if recompute:
            rows += self._recompute()
        return rows

    # ---------------------------------------------------------------- chain-only checks

    def _spec(self) -> list[Check]:
        rows = _Rows(SPEC, self.task.task_id)
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
            return [Check(SPEC, True, self.task.task_id, None, None, "no spec file given")]
        names = ", ".join(f"{label} {path}" for label, path in self.specs)
        return rows.rows(f"{names} hash to {self.task.spec_hash}")

    def _ledger(self) -> list[Check]:
        rows = _Rows(LEDGER, self.task.task_id)
        numbers = sorted(self.task.rounds)
        if numbers != list(range(1, len(numbers) + 1)):
            rows.fail(f"rounds {numbers} are not numbered 1, 2, 3, …: a round is missing")
        for entry in self.task.ordered_rounds():
            if entry.state != "committed":
                continue
            relayed_or_direct = len(entry.commitments)
            if relayed_or_direct != entry.commitment_count:
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
        rounds = len(self.task.rounds)
        return rows.rows(f"task {self.task.task_id}: {rounds} rounds opened, events consistent")

    def _parents(self) -> list[Check]:
        rows = _Rows(PARENTS, self.task.task_id)
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
        from fedchain.chain.records import Commitment, RoundId, SignedCommitment, TaskId
        from fedchain.chain.signing import recover_signer

        rows = _Rows(SIGNATURES, self.task.task_id)
        count = 0
        for entry in self.task.ordered_rounds():
            for c in entry.commitments:
                count += 1
                if c.problem:
                    rows.fail(c.problem, entry.round, c.participant)
                    continue
                if c.relayed:
                    assert c.signature is not None
                    try:
                        commitment = Commitment(
                            TaskId(self.task.task_id),
                            RoundId(entry.round),
                            bytes.fromhex(c.update_hash[2:]),
                            c.num_examples,
                        )
                        signer = recover_signer(
                            self.lineage.domain,
                            SignedCommitment(commitment, c.participant, c.signature),
                        )
                    except (ValueError, TypeError) as exc:
                        rows.fail(f"signature does not recover: {exc}", entry.round, c.participant)
                        continue
                    how = "signature"
                else:
                    signer, how = c.sender or "", "direct transaction"
                if signer.lower() != c.participant.lower():
                    rows.fail(
                        f"{how} is by {signer}, not the participant", entry.round, c.participant
                    )
                    continue
                member = self.lineage.members.get(c.participant)
                if member is None or not member.active_at(c.position):
                    state = "never registered" if member is None else _membership(member, c)
                    rows.fail(
                        f"signer {state} at block {c.position[0]}", entry.round, c.participant
                    )
        return rows.rows(f"{count} commitments, each by a participant registered at the time")

    def _budget(self) -> list[Check]:
        rows = _Rows(BUDGET, self.task.task_id)
        budget = self.task.reward_per_round
        for entry in self.task.committed_rounds():
            paid = sum(r.amount for r in entry.rewards)
            if paid > budget:
                rows.fail(f"{paid} attributed, the budget is {budget}", entry.round)
        rounds = len(self.task.committed_rounds())
        return rows.rows(f"{rounds} rounds, each at most {_tokens(budget)} tokens")

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
        return rows

    # ---------------------------------------------------------------- store checks

    def _no_store(self, check: str) -> list[Check]:
        detail = "no content store given: pass --store DIR (the coordinator's store/)"
        return [Check(check, False, self.task.task_id, None, None, detail)]

    def _globals(self) -> list[Check]:
        if self.store is None:
            return self._no_store(GLOBALS)
        rows = _Rows(GLOBALS, self.task.task_id)
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
        rows = _Rows(UPDATES, self.task.task_id)
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
            detail = f"{path} is missing"
            return [Check(FINAL, False, self.task.task_id, where, None, detail)]
        actual = to_hex(file_hash(path))
        if actual != last:
            detail = f"{path.name} hashes to {actual}, round {where}'s global model is {last}"
            return [Check(FINAL, False, self.task.task_id, where, None, detail)]
        return [Check(FINAL, True, self.task.task_id, None, None, f"round {where}: {_short(last)}")]

    # ---------------------------------------------------------------- recomputation

    def _recompute(self) -> list[Check]:
        rows = {k: _Rows(k, self.task.task_id) for k in (AGGREGATION, EVALUATION, SCORES)}
        if self.store is None:
            return [c for k in rows for c in self._no_store(k)]
        if self.spec is None:
            detail = "no task spec matching the chain's spec hash: pass --spec FILE"
            return [Check(k, False, self.task.task_id, None, None, detail) for k in rows]
        settings = _settings_for(self.spec, self.base_settings, self.lineage, self.task)
        results = replay_task(self.task, self.store, self.spec, settings)
        scored = 0
        for result in results:
            if result.blocked:  # one row per check kind, not one per participant
                for kind_rows in rows.values():
                    kind_rows.fail(result.blocked, result.round, result.blocked_by)
                continue
            for kind, problem in (
                (AGGREGATION, result.aggregation),
                (EVALUATION, result.evaluation),
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
    rows = _Rows(CLAIMS, first)
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


def _membership(member: Any, c: CommitmentEntry) -> str:
    if member.registered >= c.position:
        return f"registered only at block {member.registered[0]}, after the commitment"
    return f"withdrew at block {member.withdrawn[0]}, before the commitment"


def _stored_problem(store: ModelStore, digest: str) -> str:
    """Why the stored file of ``digest`` does not check out, or "" when it does."""
    path = store.path(digest)
    if not path.is_file():
        return f"{digest} is not in the store at {store.root}"
    actual = to_hex(file_hash(path))
    if actual != digest.lower():
        return f"{path.name} hashes to {actual}: the file was altered"
    return ""


def _short(digest: str | None) -> str:
    return f"{digest[:12]}…" if digest else "none"


def _tokens(amount: int) -> str:
    return f"{amount / 10**18:,.6f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------- replaying rounds


@dataclass(frozen=True)
class ScoreCheck:
    """One recorded score against its recomputation."""

    round: int
    participant: str
    recorded_score: int
    recomputed_score: int
    recorded_reward: int
    recomputed_reward: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.detail
            and self.recorded_score == self.recomputed_score
            and self.recorded_reward == self.recomputed_reward
        )

    def describe(self) -> str:
        if self.ok:
            return "recomputes"
        if self.detail:
            return self.detail
        return (
            f"recorded score {self.recorded_score} and reward {self.recorded_reward}, "
            f"recomputed {self.recomputed_score} and {self.recomputed_reward}"
        )


@dataclass
class RoundReplay:
    """One committed round recomputed: problems found ("" when it reproduced) and the scores."""

    round: int
    aggregation: str = ""
    evaluation: str = ""
    scores: list[ScoreCheck] = field(default_factory=list)
    blocked: str = ""  # why the round could not be replayed at all
    blocked_by: str | None = None  # the participant whose stored update is at fault


def _settings_for(
    spec: TaskSpec, base: RunSettings | None, lineage: LedgerLineage, task: TaskLineage
) -> RunSettings:
    """The settings a round is recomputed with: the spec's fields over the run's settings.

    Without a run, the number of clients (which sizes Krum's and Bulyan's tolerance) is the
    number of participants registered when round 1 opened.
    """
    if base is None:
        first = task.ordered_rounds()[0].opened if task.rounds else (1 << 62, 0)
        registered = sum(m.active_at(first) for m in lineage.members.values())
        base = RunSettings(num_clients=max(2, registered))
    return spec.training_settings(base)


def replay_task(
    task: TaskLineage, store: ModelStore, spec: TaskSpec, settings: RunSettings
) -> list[RoundReplay]:
    """Recompute every committed round of ``task`` as the server ran it.

    One strategy instance aggregates the rounds in order (FedAdam keeps state across rounds),
    each from the accepted updates in canonical order (by update hash); the global model is
    evaluated on the holdout rebuilt from the spec, and the round's scores and rewards are
    recomputed with the same coalition aggregation, seed and budget.
    """
    from fedchain.federation.flower_strategies import build_strategy
    from fedchain.federation.workload import holdout

    with _quiet_flower():
        strategy = build_strategy(settings, settings.num_clients)
        return _replay_task(task, store, spec, settings, strategy=strategy, hold=holdout(settings))


@contextlib.contextmanager
def _quiet_flower() -> Iterator[None]:
    """Flower logs every aggregation at INFO; an audit replays many."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _replay_task(
    task: TaskLineage,
    store: ModelStore,
    spec: TaskSpec,
    settings: RunSettings,
    *,
    strategy: Any,
    hold: Any,
) -> list[RoundReplay]:
    hold_problem = ""
    if to_hex(hold.data_hash) != spec.holdout_hash:
        hold_problem = (
            f"the holdout rebuilt from the spec hashes to {to_hex(hold.data_hash)}, the spec "
            f"names {spec.holdout_hash}: the data or the spec differs from the run's"
        )
    replay = _Replay(
        strategy,
        spec,
        settings,
        hold,
        hold_problem,
        task.reward_per_round,
    )
    broken = ""  # the round a stateful strategy's replay broke at
    results = []
    for entry in task.committed_rounds():
        result = RoundReplay(entry.round)
        results.append(result)
        loaded = _load_round(store, entry)
        if isinstance(loaded, tuple):
            result.blocked, result.blocked_by = loaded
        elif broken:
            result.blocked = f"{replay.strategy_name} carries state from {broken}"
        if result.blocked:
            result.blocked = f"cannot recompute: {result.blocked}"
            result.scores = [
                ScoreCheck(entry.round, c.participant, 0, 0, 0, 0, detail=result.blocked)
                for c in entry.accepted
            ]
            if replay.stateful and not broken:
                broken = f"round {entry.round}, which cannot be replayed"
            continue
        assert not isinstance(loaded, tuple)
        replay.round(entry, loaded, result)
    return results


@dataclass
class _LoadedRound:
    parent: Weights
    global_model: Weights | None
    updates: list[Weights]
    examples: list[int]
    addresses: list[str]


def _load_round(store: ModelStore, entry: RoundLineage) -> _LoadedRound | tuple[str, str | None]:
    """The round's parent, global model and accepted updates, or why they cannot be read (and
    whose update it is)."""
    accepted = entry.accepted
    updates = []
    for c in accepted:
        update, problem = _load(store, c.update_hash)
        if update is None:
            return f"stored update of {c.participant}: {problem}", c.participant
        updates.append(update)
    parent, problem = _load(store, entry.parent_hash)
    if parent is None:
        return f"parent model: {problem}", None
    global_model, _ = _load(store, entry.global_hash or "")
    return _LoadedRound(
        parent,
        global_model,
        updates,
        [c.num_examples for c in accepted],
        [c.participant for c in accepted],
    )


@dataclass
class _Replay:
    """The server's side of a task, replayed round after round."""

    strategy: Any  # a Flower Strategy (untyped there)
    spec: TaskSpec
    settings: RunSettings
    hold: Any
    hold_problem: str
    budget: int

    @property
    def strategy_name(self) -> str:
        return type(self.strategy).__name__

    @property
    def stateful(self) -> bool:
        return _is_stateful(self.strategy)

    def round(self, entry: RoundLineage, loaded: _LoadedRound, result: RoundReplay) -> None:
        recomputed = self._aggregate(entry, loaded, result)
        global_model = loaded.global_model if loaded.global_model is not None else recomputed
        problem = self.hold_problem
        if global_model is None:
            problem = "no global model: neither stored nor recomputed"
        if problem:
            result.evaluation = problem
            result.scores = [
                ScoreCheck(entry.round, a, 0, 0, 0, 0, detail=problem) for a in loaded.addresses
            ]
            return
        assert global_model is not None
        self._evaluate(entry, global_model, result)
        self._score(entry, loaded, global_model, result)

    def _aggregate(
        self, entry: RoundLineage, loaded: _LoadedRound, result: RoundReplay
    ) -> Weights | None:
        from fedchain.federation.messages import arrays_to_numpy

        _prime(self.strategy, loaded.parent)
        replies = _replies(loaded.updates, loaded.examples)
        arrays, _ = self.strategy.aggregate_train(entry.round, replies)
        if arrays is None:
            result.aggregation = f"{self.strategy_name} produced no model from the accepted updates"
            return None
        recomputed = arrays_to_numpy(arrays)
        digest = to_hex(model_hash(recomputed))
        if digest != entry.global_hash:
            result.aggregation = (
                f"the {len(loaded.updates)} accepted updates aggregate to {digest}, the chain "
                f"recorded {entry.global_hash}"
            )
        return recomputed

    def _loss(self, model: Mapping[str, np.ndarray[Any, Any]]) -> float:
        from fedchain.federation.workload import evaluate_weights

        return evaluate_weights(self.settings, self.hold.data, model)[1]

    def _evaluate(self, entry: RoundLineage, global_model: Weights, result: RoundReplay) -> None:
        from fedchain.federation.workload import evaluate_weights

        accuracy, loss = evaluate_weights(self.settings, self.hold.data, global_model)
        got = (round(accuracy * 1_000_000), round(loss * 1_000_000))
        if got != (entry.accuracy_ppm, entry.loss_ppm):
            result.evaluation = (
                f"accuracy {got[0]} ppm and loss {got[1]} ppm on the holdout; the chain "
                f"recorded {entry.accuracy_ppm} and {entry.loss_ppm}"
            )

    def _score(
        self,
        entry: RoundLineage,
        loaded: _LoadedRound,
        global_model: Weights,
        result: RoundReplay,
    ) -> None:
        from fedchain.contribution.round import score_round, scoring_seed
        from fedchain.federation.coalitions import coalition_aggregator

        scoring = score_round(
            method=self.spec.contribution,
            addresses=loaded.addresses,
            updates=loaded.updates,
            examples=loaded.examples,
            parent=loaded.parent,
            global_model=global_model,
            aggregate=coalition_aggregator(
                self.strategy, entry.round, loaded.updates, loaded.examples
            ),
            loss=self._loss,
            budget=self.budget,
            seed=scoring_seed(self.spec.seed, entry.round),
            holdout_hash=self.spec.holdout_hash,
        )
        recorded = {r.participant: r for r in entry.rewards}
        hash_problem = ""
        if to_hex(scoring.scoring_hash) != entry.scoring_hash:
            hash_problem = "the scoring hash differs from the chain's: another method or seed"
        for address in loaded.addresses:
            reward = recorded.get(address)
            result.scores.append(
                ScoreCheck(
                    round=entry.round,
                    participant=address,
                    recorded_score=reward.score if reward else 0,
                    recomputed_score=to_fixed_point(scoring.scores[address]),
                    recorded_reward=reward.amount if reward else 0,
                    recomputed_reward=scoring.rewards[address],
                    detail=hash_problem or ("" if reward else "no reward recorded"),
                )
            )


def _replies(updates: Sequence[Weights], examples: Sequence[int]) -> list[Any]:
    """Train replies as the server received them: the update and its number of examples."""
    from flwr.app import MetricRecord, RecordDict

    from fedchain.federation.messages import numpy_to_arrays, reply_message
    from fedchain.record_keys import METRIC_NUM_EXAMPLES, RECORD_ARRAYS, RECORD_METRICS

    return [
        reply_message(
            RecordDict(
                {
                    RECORD_ARRAYS: numpy_to_arrays(u),
                    RECORD_METRICS: MetricRecord({METRIC_NUM_EXAMPLES: int(n)}),
                }
            )
        )
        for u, n in zip(updates, examples, strict=True)
    ]


def _is_stateful(strategy: Any) -> bool:
    from flwr.serverapp.strategy.fedopt import FedOpt

    return isinstance(strategy, FedOpt)


def _prime(strategy: Any, parent: Weights) -> None:
    """What ``configure_train`` tells a server-side optimiser: the round's starting model."""
    if _is_stateful(strategy):
        strategy.current_arrays = {k: np.asarray(v) for k, v in parent.items()}


def _load(store: ModelStore, digest: str) -> tuple[Weights | None, str]:
    """A stored model by its 0x hash, or why it cannot be read (missing, or altered)."""
    try:
        return store.get(digest), ""
    except (ModelNotInStore, ModelCorrupted) as exc:
        return None, str(exc)
    except ValueError as exc:  # not a model hash at all
        return None, str(exc)


def recompute_scores(run: OpenedRun) -> list[ScoreCheck]:
    """Recompute every committed round's scores and rewards and compare them with the chain."""
    from fedchain.audit.merkle import attach_merkle_records

    lineage = rebuild_lineage(run.gateway)
    task = lineage.tasks.get(run.task_id)
    if task is None:
        raise AuditError(f"task {run.task_id} is not on the ledger: is this the run's chain?")
    store = ModelStore(run.out / "store")
    attach_merkle_records(lineage, store, run.out)  # merkle rounds publish their entries
    settings = _settings_for(run.spec, run.settings, lineage, task)
    results = replay_task(task, store, run.spec, settings)
    return [s for r in results for s in r.scores]


# ---------------------------------------------------------------------- the journal


def _journal_call(exc: JournalMismatch) -> tuple[str, dict[str, Any]] | None:
    """The ledger function and arguments of the journal's failing transaction, if it decodes."""
    from eth_account.typed_transactions.typed_transaction import TypedTransaction
    from hexbytes import HexBytes
    from web3 import Web3

    from fedchain.chain._artifacts import load_artifact

    try:
        raw = bytes.fromhex(exc.tx[2:] if exc.tx.startswith("0x") else exc.tx)
        data = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["data"]
        contract = Web3().eth.contract(abi=load_artifact("Ledger")["abi"])
        calls = ledger_calls(contract, bytes(HexBytes(data)))
    except Exception:
        return None
    return calls[0]  # a commit batched with the next round's opening: the commit


def _journal_round(exc: JournalMismatch) -> int | None:
    call = _journal_call(exc)
    if call is None or "round" not in call[1]:
        return None
    return int(call[1]["round"])


def _journal_context(exc: JournalMismatch) -> str:
    call = _journal_call(exc)
    if call is None:
        return " (the transaction there does not decode as a ledger call)"
    name, args = call
    where = f" of task {args['taskId']}, round {args['round']}" if "round" in args else ""
    return f" (the transaction there is {name}{where})"


# ---------------------------------------------------------------------- verify-model


@dataclass(frozen=True)
class ModelProvenance:
    """Where a model file was recorded on a ledger."""

    path: Path
    model_hash: str
    readable: bool  # whether the file loads as safetensors
    sightings: tuple[ModelSighting, ...]
    lineage: LedgerLineage

    @property
    def recorded(self) -> bool:
        return bool(self.sightings)

    def round_of(self, sighting: ModelSighting) -> RoundLineage | None:
        task = self.lineage.tasks.get(sighting.task_id)
        return task.rounds.get(sighting.round) if task else None


def verify_model(path: Path, source: LedgerSource, run: Path | None = None) -> ModelProvenance:
    """Hash a model file (SHA-256 of its bytes) and find where the ledger recorded it.

    With the ``run`` directory, merkle rounds show their participants too (from the records
    the run published).

    Raises
    ------
    AuditError
        If ``path`` is not a readable file.
    """
    if not path.is_file():
        raise AuditError(f"no file at {path}: give the model file to verify")
    digest = to_hex(file_hash(path))
    try:
        load(path)
        readable = True
    except ModelFileError:
        readable = False
    lineage = rebuild_lineage(source.gateway)
    if run is not None:
        from fedchain.audit.merkle import attach_merkle_records

        attach_merkle_records(lineage, ModelStore(run / "store"), run)
    return ModelProvenance(path, digest, readable, tuple(find_model(lineage, digest)), lineage)
