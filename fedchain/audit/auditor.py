"""The auditor's three ways in: a run directory (:func:`audit_run`), a ledger reached without
one (:func:`audit_ledger`), or a lineage already rebuilt (:func:`audit_lineage`); each gives a
:class:`~fedchain.audit.verdict.Verdict`.
"""

from __future__ import annotations

from pathlib import Path

from fedchain.audit.checks import check_lineage
from fedchain.audit.lineage import LedgerLineage, rebuild_lineage
from fedchain.audit.sources import (
    LedgerSource,
    journal_context,
    journal_round,
    open_ledger,
    read_summary,
)
from fedchain.audit.verdict import CHAIN, Check, Verdict
from fedchain.chain.backends import JournalMismatch
from fedchain.settings import RunSettings
from fedchain.store import ModelStore

__all__ = ["audit_ledger", "audit_lineage", "audit_run"]


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
    summary = read_summary(out)
    task_id = summary.get("task_id")
    task = int(task_id) if task_id is not None else None
    try:
        source = open_ledger(run=out, rpc_url=rpc_url)
    except JournalMismatch as exc:
        detail = f"{exc}{journal_context(exc)}"
        return Verdict((Check(CHAIN, False, task, journal_round(exc), None, detail),))
    try:
        chain_rows = [Check(CHAIN, True, task, None, None, source.description)]
        specs = [("task.json", out / "task.json")] + ([("--spec", spec_file)] if spec_file else [])
        settings = RunSettings.from_run_config(summary.get("settings", {}))
        checks = check_lineage(
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
    return Verdict.of(chain_rows + checks)


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
    return Verdict.of(
        check_lineage(
            lineage,
            store=ModelStore(store) if store is not None else None,
            tasks=[task] if task is not None else None,
            specs=[("--spec", spec_file)] if spec_file else [],
            base_settings=None,
            recompute=recompute,
        )
    )
