"""Checking a run from the chain: ``audit``, ``scores``, ``verify-model`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from fedchain.cli._common import (
    RpcOption,
    RunOption,
    app,
    audit_verdict,
    console,
    err_console,
    fail,
    require_run,
)

if TYPE_CHECKING:
    from fedchain.audit import ModelProvenance as ProvenanceT
    from fedchain.audit import Verdict as VerdictT
    from fedchain.audit.lineage import RoundLineage


DataOption = Annotated[
    Path | None,
    typer.Option(
        help="The task's data file to recompute with: its CSV file, or a consortium's holdout "
        "(checked first against the SHA-256 the spec commits to); default: the path the run "
        "was given.",
    ),
]


StoreOption = Annotated[
    str | None,
    typer.Option(
        metavar="DIR|URL",
        help="The content store: a folder or an fsspec URL such as s3://bucket/prefix "
        "(credentials and endpoint from the environment, e.g. AWS_ENDPOINT_URL); default: the "
        "run's.",
    ),
]


def _check_store(store: str | None) -> None:
    """Refuse a store that is no folder, or a URL that does not answer: exit code 2, one line,
    before the chain is opened."""
    from fedchain.storage import StoreUnreachable, is_remote, local_path
    from fedchain.store import ModelStore

    if store is None:
        return
    if not is_remote(store):
        if not Path(local_path(store)).is_dir():
            raise fail(f"--store {store} is not a directory: give the run's store/ folder", 2)
        return
    try:
        ModelStore(store).check()
    except StoreUnreachable as exc:
        raise fail(str(exc), 2) from None


@app.command()
def audit(
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="A run directory (default runs/latest, unless --ledger or "
            "--deployment names a ledger).",
        ),
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option(help="Node holding the chain (default: the run's saved chain).")
    ] = None,
    ledger: Annotated[
        str | None, typer.Option(help="Ledger address: audit it at --rpc-url, without a run.")
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="A deployment file, instead of a run."),
    ] = None,
    store: StoreOption = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A task spec file that must hash to the task's spec hash (needed to recompute "
            "without a run).",
        ),
    ] = None,
    task: Annotated[
        int | None, typer.Option(help="Audit only this task of the ledger (default: all).")
    ] = None,
    recompute: Annotated[
        bool, typer.Option(help="Recompute aggregation, evaluation, scores and rewards.")
    ] = False,
    data: DataOption = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="FILE|-", help="Write the verdict as JSON to FILE, or - (stdout)."
        ),
    ] = None,
) -> None:
    """Rebuild each task's lineage from the chain and check it against the content store.

    Exit code 0 only when every check ran and passed; 1 when one failed; 3 when none failed but
    one could not run ("not checked": no --spec, no --store, a model missing); 2 on bad options
    (nothing checked)."""
    from fedchain.audit import AuditError, audit_ledger, audit_run, open_ledger

    _check_store(store)
    try:
        if ledger or deployment:
            if run is not None:
                raise AuditError("give --run, or --ledger/--deployment, not both")
            source = open_ledger(rpc_url=rpc_url, ledger=ledger, deployment=deployment)
            try:
                verdict = audit_ledger(
                    source, store=store, spec_file=spec, task=task, recompute=recompute, data=data
                )
            finally:
                source.close()
            title = f"audit of ledger {source.gateway.deployment.ledger}"
        else:
            if task is not None:
                raise AuditError("--task selects a task of --ledger/--deployment; a run has one")
            run = run or Path("runs/latest")
            verdict = audit_run(
                run, rpc_url=rpc_url, recompute=recompute, spec_file=spec, store=store, data=data
            )
            title = f"audit of {run}"
    except AuditError as exc:
        raise fail(str(exc), 2) from None
    _write_verdict(verdict, json_out)
    _print_verdict(verdict, title, stderr=json_out == "-")
    if verdict.exit_code:
        raise typer.Exit(verdict.exit_code)


def _write_verdict(verdict: VerdictT, json_out: str | None) -> None:
    import json

    if json_out is None:
        return
    text = json.dumps(verdict.to_json(), indent=2)
    if json_out == "-":
        print(text)  # plain stdout, for pipes
    else:
        Path(json_out).write_text(text + "\n")


def _print_verdict(verdict: VerdictT, title: str, stderr: bool = False) -> None:
    out = err_console if stderr else console
    tasks = {c.task for c in verdict.checks if c.task is not None}
    table = Table(title=title + (f" · task {next(iter(tasks))}" if len(tasks) == 1 else ""))
    columns = ["check", *(["task"] if len(tasks) > 1 else []), "round", "participant"]
    for column in [*columns, "result", "detail"]:
        table.add_column(
            column,
            no_wrap=column in ("round", "participant", "result", "task"),
            min_width=42 if column == "participant" and _any_participant(verdict) else None,
        )
    for c in verdict.checks:
        cells = [c.check, *([str(c.task or "")] if len(tasks) > 1 else [])]
        cells += ["" if c.round is None else str(c.round), c.participant or ""]
        cells += [_RESULT[c.status], c.detail]
        table.add_row(*cells)
    out.print(table)
    out.print(_summary(verdict))


_RESULT = {
    "ok": "[green]ok[/]",
    "FAIL": "[bold red]FAIL[/]",
    "not checked": "[yellow]not checked[/]",
}


def _summary(verdict: VerdictT) -> str:
    """The verdict's last line: failures first, then what could not be checked."""
    rows, failed, unchecked = len(verdict.checks), len(verdict.failures), len(verdict.unchecked)
    if failed:
        also = f", {unchecked} not checked" if unchecked else ""
        return f"[bold red]verdict: {failed} of {rows} rows failed{also}[/]"
    if unchecked:
        return (
            f"[bold yellow]verdict: {unchecked} of {rows} rows not checked[/] (none failed; "
            "a check not made is not a pass: give what their detail names)"
        )
    return f"[bold green]verdict: every check passed[/] ({rows} rows)"


def _any_participant(verdict: VerdictT) -> bool:
    return any(c.participant for c in verdict.checks)


@app.command()
def scores(
    run: RunOption = Path("runs/latest"),
    rpc_url: RpcOption = None,
    store: StoreOption = None,
    data: DataOption = None,
) -> None:
    """Recompute every round's aggregation, evaluation, scores and rewards and check the whole
    run: the same as `fedchain audit --recompute`, with the same exit codes (0 only when every
    check ran and passed). A copy of a run without the store or the holdout is refused with
    what is missing and where to get it."""
    from fedchain.audit import AuditError, audit_run

    _check_store(store)
    try:
        verdict = audit_run(run, rpc_url=rpc_url, recompute=True, store=store, data=data)
    except AuditError as exc:
        raise fail(str(exc), 2) from None
    _print_verdict(verdict, f"audit of {run} (recomputed)")
    if verdict.exit_code:
        raise typer.Exit(verdict.exit_code)


@app.command("verify-model")
def verify_model(
    file: Annotated[Path, typer.Argument(help="The model file to verify (safetensors).")],
    run: Annotated[
        Path | None, typer.Option("--run", help="A run directory (default runs/latest).")
    ] = None,
    rpc_url: RpcOption = None,
    ledger: Annotated[
        str | None, typer.Option(help="Ledger address at --rpc-url, instead of a run.")
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="A deployment file, instead of a run."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Hash a model file and show where the chain recorded it: task, round, evaluation,
    participants and their rewards. Exit code 1 when it was never recorded."""
    from fedchain.audit import AuditError, open_ledger
    from fedchain.audit import verify_model as find

    if not file.is_file():
        raise fail(f"no file at {file}: give the model file to verify", 2)
    _check_store(store)
    try:
        if not (ledger or deployment):
            run = run or Path("runs/latest")
        source = open_ledger(run=run, rpc_url=rpc_url, ledger=ledger, deployment=deployment)
    except AuditError as exc:
        raise fail(str(exc), 2) from None
    try:
        provenance = find(file, source, run, store or "")
    finally:
        source.close()
    _print_provenance(provenance)
    if provenance.recorded and run is not None:
        from fedchain.cli.rewards import privacy_line

        line = privacy_line(run)  # the task's DP terms, from the run's spec
        if line is not None:
            console.print(line)
    if not provenance.recorded:
        raise typer.Exit(1)


def _print_provenance(p: ProvenanceT) -> None:
    from fedchain.audit.lineage import party

    console.print(f"file    {p.path}")
    console.print(f"sha256  {p.model_hash}")
    if not p.recorded:
        what = "" if p.readable else " (and it is not a safetensors model file)"
        console.print(
            f"[bold red]not recorded:[/] no task, round or update of ledger "
            f"{p.lineage.domain.verifying_contract} has this hash{what}; do not use it as "
            "this federation's model"
        )
        return
    for sighting in p.sightings:
        entry = p.round_of(sighting)
        if sighting.kind == "initial model":
            console.print(f"[bold green]recorded:[/] the initial model of task {sighting.task_id}")
            continue
        if sighting.kind == "update":
            console.print(
                f"[bold green]recorded:[/] the update of "
                f"{party(p.lineage, sighting.participant or '')} in task "
                f"{sighting.task_id}, round {sighting.round}"
            )
            continue
        assert entry is not None
        console.print(
            f"[bold green]recorded:[/] the global model of task {sighting.task_id}, round "
            f"{sighting.round}"
        )
        console.print(
            f"holdout accuracy {(entry.accuracy_ppm or 0) / 1e6:.4f}, loss "
            f"{(entry.loss_ppm or 0) / 1e6:.4f}; committed in tx {entry.commit_tx}"
        )
        console.print(_parties_line(p, sighting.task_id, entry))
        rewards = {r.participant: r for r in entry.rewards}
        table = Table(title=f"participants of round {sighting.round}", box=box.SIMPLE_HEAD)
        for column in ("participant", "examples", "score", "reward"):
            table.add_column(
                column,
                justify="left" if column == "participant" else "right",
                no_wrap=column == "participant",
                min_width=42 if column == "participant" else None,
            )
        for c in entry.commitments:
            reward = rewards.get(c.participant)
            table.add_row(
                party(p.lineage, c.participant),
                str(c.num_examples),
                f"{reward.score / 1e6:.6f}" if reward else "not accepted",
                f"{reward.amount / 10**18:,.2f}" if reward else "—",
            )
        console.print(table)


def _parties_line(p: ProvenanceT, task_id: int, entry: RoundLineage) -> str:
    """Who answers for the round: the task's coordinator and the registrar(s) that admitted
    its participants, each "Name (0x… whole address)" as the registry names them."""
    from fedchain.audit.lineage import party

    lineage = p.lineage
    task = lineage.tasks[task_id]
    registrars = sorted(
        {
            party(lineage, org.registrar)
            for c in entry.commitments
            if (org := lineage.organisations.get(c.participant)) is not None
        }
    )
    admitted = f"; participants registered by {', '.join(registrars)}" if registrars else ""
    return f"coordinator {party(lineage, task.coordinator)}{admitted}"


@app.command()
def report(
    run: RunOption = Path("runs/latest"),
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default: DIR/report.html).")
    ] = None,
    recompute: Annotated[
        bool, typer.Option(help="Audit with the aggregation and scores recomputed.")
    ] = False,
) -> None:
    """Write the run's self-contained HTML report (one file, plots embedded): task spec, rounds,
    plots, participants and the audit verdict."""
    from fedchain.audit import AuditError
    from fedchain.report import write_report

    require_run(run)
    try:
        verdict = audit_verdict(run, recompute)
    except AuditError as exc:  # recomputing without the store or the data: say what is missing
        raise fail(str(exc), 2) from None
    written = write_report(run, verdict, out)
    console.print(f"report of {run}: [bold]{written}[/] ({written.stat().st_size:,} bytes)")
