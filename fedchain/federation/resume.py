"""Resuming a run after the server died: what a run keeps on disk, and where to start again.

A run keeps, in its output directory, from its first round on:

- ``run.json``: the run settings and the task's id on the ledger (written once the task exists);
- ``deployment.json``: where the ledger lives;
- ``rounds.jsonl``: one line per round as aggregated, written *before* its chain write is queued
  (so every round the chain holds has its line), and one line when that write was mined.

``fedchain simulate --resume OUT`` reads the task and its head from the chain (the source of
truth), loads the head's global model from the store and checks its hash against the chain before
anything is written, rebuilds the record of the rounds already on chain from ``rounds.jsonl``
(each checked against the chain), and runs the remaining rounds from there.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.chain.records import RoundId, RoundState, TaskId
from fedchain.errors import FedchainError
from fedchain.federation.round_report import ParticipantOutcome, RoundReport
from fedchain.hashing import model_hash, to_hex
from fedchain.settings import RunSettings
from fedchain.store import ModelCorrupted, ModelNotInStore, run_store

__all__ = [
    "ROUNDS_FILE",
    "RUN_FILE",
    "ResumeError",
    "ResumePoint",
    "RunJournal",
    "find_resume_point",
    "load_run_settings",
]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
ROUNDS_FILE = "rounds.jsonl"
_AGGREGATED, _RECORDED = "aggregated", "recorded"

Weights = dict[str, np.ndarray[Any, Any]]


class ResumeError(FedchainError, ValueError):
    """A run cannot be resumed as it is on disk and on chain; nothing was written."""


@dataclass
class RunJournal:
    """Writes what a resumed run needs into the run's output directory, as the run goes."""

    out: Path

    def start(self, settings: RunSettings, task_id: int) -> None:
        """Record the settings and the task (atomically); the rounds journal starts empty."""
        document = {"settings": settings.to_run_config(), "task_id": task_id}
        temporary = self.out / (RUN_FILE + ".tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(temporary, self.out / RUN_FILE)
        (self.out / ROUNDS_FILE).write_text("")

    def aggregated(self, report: RoundReport) -> None:
        """A round as aggregated, before its chain write is queued."""
        self._append({"stage": _AGGREGATED, "report": asdict(report)})

    def recorded(self, report: RoundReport) -> None:
        """A round's chain write was mined."""
        self._append(
            {
                "stage": _RECORDED,
                "round": report.round,
                "committed": report.committed,
                "tx_hash": report.tx_hash,
            }
        )

    def _append(self, entry: dict[str, Any]) -> None:
        with (self.out / ROUNDS_FILE).open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def load_run_settings(out: Path) -> RunSettings:
    """The settings of the run in ``out`` (its ``out`` set to ``out`` itself)."""
    document = _run_document(out)
    try:
        settings = RunSettings.from_run_config(document["settings"])
    except (KeyError, TypeError) as exc:
        raise ResumeError(f"{out / RUN_FILE} holds no run settings: {exc}") from exc
    return settings.with_changes(out=str(out))


def _run_document(out: Path) -> dict[str, Any]:
    path = out / RUN_FILE
    if not path.is_file():
        raise ResumeError(
            f"nothing to resume in {out}: no {RUN_FILE} (a run writes it once its task is on "
            "chain); start a new run with `fedchain simulate --out DIR`"
        )
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResumeError(f"{path} is not JSON ({exc}): the run cannot be resumed") from exc
    if not isinstance(document, dict) or not isinstance(document.get("task_id"), int):
        raise ResumeError(f"{path} names no task: the run cannot be resumed")
    return document


@dataclass
class ResumePoint:
    """Where a run goes on: its task, the first round still to run, the model to start from, and
    the record of the rounds already on chain."""

    task_id: TaskId
    next_round: int
    head_hash: bytes
    head: Weights
    reports: list[RoundReport] = field(default_factory=list)


def find_resume_point(out: Path, gateway: LedgerGateway, spec_hash: bytes) -> ResumePoint:
    """Read where the run in ``out`` stands on chain, and check everything before any write.

    Raises
    ------
    ResumeError
        When the chain does not hold the run's task, the head model is missing from the store or
        does not hash to the chain's head, or the journal disagrees with the chain.
    """
    task_id = TaskId(int(_run_document(out)["task_id"]))
    task = gateway.task(task_id)
    if task.spec_hash != spec_hash:
        raise ResumeError(
            f"task {task_id} on chain has spec hash {to_hex(task.spec_hash)}, but the run in "
            f"{out} describes {to_hex(spec_hash)}: this chain does not hold this run"
        )
    last = int(task.last_round)
    done = last
    if last and gateway.round(task_id, RoundId(last)).state == RoundState.OPEN:
        done = last - 1  # opened but neither committed nor failed: run it again
    head = _head_model(out, task.head_model_hash)
    reports = _recorded_reports(out, gateway, task_id, done)
    log.info("resuming task %d after round %d from model %s", task_id, done, to_hex(head[0]))
    return ResumePoint(task_id, done + 1, head[0], head[1], reports)


def _head_model(out: Path, head: bytes) -> tuple[bytes, Weights]:
    store = run_store(out, str(_run_document(out).get("settings", {}).get("store", "")))
    try:
        weights = store.get(head)
    except ModelNotInStore as exc:
        raise ResumeError(
            f"the chain's head model {to_hex(head)} is not in {store.location}: the run cannot "
            "resume without it (restore the store from a backup)"
        ) from exc
    except ModelCorrupted as exc:
        raise ResumeError(
            f"the stored head model does not match the chain ({exc}): nothing was written; "
            "restore the store from a backup"
        ) from exc
    if model_hash(weights) != head:
        raise ResumeError(
            f"the stored model {to_hex(head)} does not hash to the chain's head: nothing was "
            "written; restore the store from a backup"
        )
    return head, weights


def _journal(out: Path) -> tuple[dict[int, RoundReport], dict[int, str]]:
    """Each round's last aggregated report in ``rounds.jsonl`` (a torn last line is ignored)."""
    path = out / ROUNDS_FILE
    reports: dict[int, RoundReport] = {}
    recorded: dict[int, str] = {}
    if not path.is_file():
        return reports, recorded
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the process died while writing it
            raise ResumeError(f"{path} line {number} is not JSON: the journal was altered") from (
                None
            )
        if entry.get("stage") == _AGGREGATED:
            data = dict(entry["report"])
            data["participants"] = [ParticipantOutcome(**p) for p in data["participants"]]
            report = RoundReport(**data)
            reports[report.round] = report
        elif entry.get("stage") == _RECORDED:
            recorded[int(entry["round"])] = str(entry.get("tx_hash") or "")
    return reports, recorded


def _recorded_reports(
    out: Path, gateway: LedgerGateway, task_id: TaskId, done: int
) -> list[RoundReport]:
    """The reports of rounds 1..done, from the journal, each checked against the chain."""
    journal, _ = _journal(out)
    missing = [r for r in range(1, done + 1) if r not in journal]
    if missing:
        raise ResumeError(
            f"{out / ROUNDS_FILE} has no record of rounds {missing}, which the chain holds: the "
            "journal is incomplete, the run cannot be resumed"
        )
    closing = _closing_events(gateway.events(), task_id)
    reports = []
    for round_id in range(1, done + 1):
        report = journal[round_id]
        record = gateway.round(task_id, RoundId(round_id))
        event = closing.get(round_id)
        if record.state == RoundState.COMMITTED:
            if to_hex(record.global_model_hash) != report.global_model_hash:
                raise ResumeError(
                    f"round {round_id} is committed with model {to_hex(record.global_model_hash)}"
                    f" but the journal says {report.global_model_hash}: the journal does not "
                    "belong to this chain"
                )
            report.committed = True
        elif record.state == RoundState.FAILED:
            report.committed = False
        else:
            raise ResumeError(f"round {round_id} is {record.state.name.lower()} on chain")
        if event is not None:
            receipt = gateway.w3.eth.get_transaction_receipt(event.tx_hash)  # type: ignore[arg-type]
            report.tx_hash, report.gas_used = event.tx_hash, int(receipt["gasUsed"])
        reports.append(report)
    return reports


def _closing_events(events: list[LedgerEvent], task_id: int) -> dict[int, LedgerEvent]:
    """Each round's RoundCommitted or RoundFailed event."""
    return {
        int(e.args["round"]): e
        for e in events
        if e.name in ("RoundCommitted", "RoundFailed") and e.args.get("taskId") == task_id
    }
