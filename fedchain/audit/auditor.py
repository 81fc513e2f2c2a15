"""The auditor's three ways in: a run directory (:func:`audit_run`), a ledger reached without
one (:func:`audit_ledger`), or a lineage already rebuilt (:func:`audit_lineage`); each gives a
:class:`~fedchain.audit.verdict.Verdict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedchain.audit.checks import check_lineage
from fedchain.audit.lineage import LedgerLineage, rebuild_lineage
from fedchain.audit.sources import (
    AuditError,
    LedgerSource,
    journal_context,
    journal_round,
    open_ledger,
    read_summary,
)
from fedchain.audit.verdict import CHAIN, Check, Verdict
from fedchain.chain.backends import JournalMismatch
from fedchain.hashing import file_hash, to_hex
from fedchain.ml.data import CSV_PREFIX, parse_dataset_spec
from fedchain.settings import RunSettings
from fedchain.storage import StoreUnreachable
from fedchain.store import ModelStore, run_store
from fedchain.task import TaskSpec, TaskSpecError

__all__ = ["MissingDataError", "audit_ledger", "audit_lineage", "audit_run", "check_data"]


class MissingDataError(AuditError):
    """The task's data file, needed to recompute, is not at hand."""


def audit_run(
    out: Path,
    *,
    rpc_url: str | None = None,
    recompute: bool = False,
    spec_file: Path | None = None,
    store: str | Path | None = None,
    data: Path | None = None,
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
    store : str or Path, optional
        The content store (a folder or an fsspec URL such as ``s3://bucket/prefix``), if not
        the run's own (its settings' ``store``, else ``<out>/store``).
    data : Path, optional
        The task's data file (a CSV file, or a consortium's holdout) to recompute with, instead
        of the path the run's settings name (which may be relative to where it ran, or on the
        coordinator's machine); checked first, see :func:`check_data`.

    Returns
    -------
    Verdict
        Every check's rows; ``verdict.ok`` only when all ran and passed. Without a store
        (a hospital's copy of a run) the store checks are rows not checked.

    Raises
    ------
    MissingDataError
        With ``recompute``, if the store or the task's data file is missing (all named).
    AuditError
        If ``out`` is not an auditable run (no summary.json, no ledger, a chain that is gone),
        or the data to recompute with is not the task's.
    """
    summary = read_summary(out)
    specs = [("task.json", out / "task.json")] + ([("--spec", spec_file)] if spec_file else [])
    settings = RunSettings.from_run_config(summary.get("settings", {}))
    content = _open_store(str(store) if store is not None else settings.store, out)
    if recompute:
        _check_recompute_inputs(out, content, specs, settings, data)
    else:
        check_data(specs, settings, data, recompute)
    task_id = summary.get("task_id")
    task = int(task_id) if task_id is not None else None
    try:
        source = open_ledger(run=out, rpc_url=rpc_url)
    except JournalMismatch as exc:
        detail = f"{exc}{journal_context(exc)}"
        return Verdict((Check(CHAIN, False, task, journal_round(exc), None, detail),))
    try:
        chain_rows = [Check(CHAIN, True, task, None, None, source.description)]
        checks = check_lineage(
            rebuild_lineage(source.gateway),
            store=content if _present(content) else None,  # else: not checked
            tasks=[task] if task is not None else None,
            specs=specs,
            base_settings=settings,
            recompute=recompute,
            final_model=out / "final_model.safetensors",
            run_dir=out,
            data=data,
        )
    finally:
        source.close()
    return Verdict.of(chain_rows + checks)


def _check_recompute_inputs(
    out: Path,
    store: ModelStore,
    specs: Sequence[tuple[str, Path]],
    settings: RunSettings,
    data: Path | None,
) -> None:
    """Refuse to recompute a run without what it needs, naming everything missing at once
    (a hospital's copy of a run has neither the store nor the holdout)."""
    missing = []
    if not _present(store):
        missing.append(
            f"the content store ({store.location} does not exist: get the store/ directory the "
            "coordinator publishes and pass --store DIR)"
        )
    try:
        check_data(specs, settings, data, recompute=True)
    except MissingDataError as exc:
        missing.append(str(exc))
    if missing:
        raise MissingDataError(f"cannot recompute the run at {out}: " + "; and ".join(missing))


def _open_store(location: str, out: Path | None = None) -> ModelStore:
    """The content store at ``location`` (default ``<out>/store``); a URL must answer first.

    Raises
    ------
    AuditError
        If the store is at a URL that cannot be opened or listed.
    """
    try:
        store = run_store(out, location) if out is not None else ModelStore(location)
        store.check()
    except StoreUnreachable as exc:
        raise AuditError(str(exc)) from None
    return store


def _present(store: ModelStore) -> bool:
    """Whether there is a store to check: a URL (checked reachable) or an existing folder."""
    return store.remote or store.root.is_dir()


def audit_ledger(
    source: LedgerSource,
    *,
    store: str | Path | None,
    spec_file: Path | None = None,
    task: int | None = None,
    recompute: bool = False,
    data: Path | None = None,
) -> Verdict:
    """Audit every task of a ledger (or ``task``) without a run directory.

    The store is the content store the coordinator published (``store/<sha256>.safetensors``);
    without one, the checks that need models fail and say so. Recomputing needs the task spec
    (``spec_file``): the holdout, the model and the strategy are rebuilt from it, from the
    task's CSV file ``data`` when it names one (checked first, see :func:`check_data`).
    """
    check_data([("--spec", spec_file)] if spec_file else [], None, data, recompute)
    return audit_lineage(
        rebuild_lineage(source.gateway),
        store=store,
        spec_file=spec_file,
        task=task,
        recompute=recompute,
        data=data,
    )


def audit_lineage(
    lineage: LedgerLineage,
    *,
    store: str | Path | None,
    spec_file: Path | None = None,
    task: int | None = None,
    recompute: bool = False,
    data: Path | None = None,
) -> Verdict:
    """Audit a lineage already rebuilt (:func:`fedchain.audit.lineage.rebuild_lineage`); see
    :func:`audit_ledger`."""
    specs = [("--spec", spec_file)] if spec_file else []
    check_data(specs, None, data, recompute)
    return Verdict.of(
        check_lineage(
            lineage,
            store=_open_store(str(store)) if store is not None else None,
            tasks=[task] if task is not None else None,
            specs=specs,
            base_settings=None,
            recompute=recompute,
            data=data,
        )
    )


def check_data(
    specs: Sequence[tuple[str, Path]],
    base: RunSettings | None,
    data: Path | None,
    recompute: bool,
) -> None:
    """Refuse, before anything is recomputed, data that is not the task's.

    The first spec file that loads names the task's data file (a simulation's CSV file, or a
    consortium's holdout file) by its SHA-256: ``data`` (or without it the file the run's
    settings ``base`` name) must hash to it. A built-in dataset takes no ``data``; an older spec
    without a data hash leaves the check to the holdout hash, when the rounds are replayed.

    Raises
    ------
    MissingDataError
        If the task's data file is needed and there is none (no ``data``, or no file there).
    AuditError
        If ``data`` is given without ``recompute`` or for a built-in dataset, or the file
        hashes to another value than the spec's.
    """
    if data is not None and not recompute:
        raise AuditError("--data is read to recompute the rounds: add --recompute")
    spec = _first_spec(specs)
    if not recompute or spec is None:
        return  # without a spec, the spec check says what is missing
    if not spec.data_hash:
        if data is not None and not (spec.data_on_sites or spec.dataset.startswith(CSV_PREFIX)):
            raise AuditError(f"the task's data is {spec.dataset}, built in: drop --data")
        if spec.data_on_sites and data is None and _own_data(spec, base) is None:
            raise MissingDataError(
                "the task's holdout file is needed to recompute: ask the coordinator for it and "
                "pass --data FILE (its arrays are checked against the spec's holdout hash)"
            )
        return
    path = data if data is not None else _own_data(spec, base)
    what = _data_name(spec)
    if path is None:
        raise MissingDataError(f"{what} is needed to recompute: point --data at a copy")
    if not path.is_file():
        raise MissingDataError(f"no data file at {path}: point --data at a copy of {what}")
    actual = to_hex(file_hash(path))
    if actual != spec.data_hash.lower():
        name = "holdout file" if spec.data_on_sites else spec.dataset
        raise AuditError(
            f"{path} hashes to {actual}, the task spec names {spec.data_hash}: it is not the "
            f"task's data {name}; point --data at the file the task used"
        )


def _data_name(spec: TaskSpec) -> str:
    """The data file a spec commits to, as the messages name it."""
    if spec.data_on_sites:
        return (
            f"the task's holdout file (SHA-256 {spec.data_hash}, committed in the spec; the "
            "coordinator hands it to auditors)"
        )
    return f"the task's data {spec.dataset} (SHA-256 {spec.data_hash})"


def _first_spec(specs: Sequence[tuple[str, Path]]) -> TaskSpec | None:
    for _, path in specs:
        try:
            return TaskSpec.load(path)
        except TaskSpecError:
            continue
    return None


def _own_data(spec: TaskSpec, base: RunSettings | None) -> Path | None:
    """The task's data file as the run's settings name it (relative to where the run ran)."""
    if base is None:
        return None
    source = base.holdout if spec.data_on_sites else base.dataset
    if not source.startswith(CSV_PREFIX):
        return None
    return parse_dataset_spec(source).path
