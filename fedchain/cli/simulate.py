"""``fedchain simulate``: a federation on this machine, every round recorded on chain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fedchain.cli._common import (
    app,
    audit_verdict,
    console,
    fail,
)
from fedchain.errors import FedchainError

if TYPE_CHECKING:
    from fedchain.federation.round_report import RoundReport as RoundReportT
    from fedchain.federation.run_artifacts import RunRecord as RunRecordT
    from fedchain.settings import RunSettings as RunSettingsT


@app.command()
def simulate(
    clients: Annotated[int, typer.Option(help="Number of simulated clients.")] = 10,
    rounds: Annotated[int, typer.Option(help="Number of rounds.")] = 10,
    dataset: Annotated[
        str, typer.Option(help="breast-cancer, digits, synthetic[:N] or csv:PATH.")
    ] = "breast-cancer",
    label_column: Annotated[
        str, typer.Option(help="csv:PATH only: the column of class ids or class names.")
    ] = "label",
    features: Annotated[
        str,
        typer.Option(help="csv:PATH only: feature columns a,b,c (default: every other numeric)."),
    ] = "",
    partition: Annotated[
        str, typer.Option(help="iid, dirichlet:ALPHA or quantity[:ALPHA].")
    ] = "dirichlet:0.5",
    strategy: Annotated[
        str,
        typer.Option(
            help="fedavg, fedprox, fedadam, fedmedian, fedtrimmedavg, krum, multikrum, bulyan, "
            "cclip (centered clipping) or fltrust (trust from the server's holdout)."
        ),
    ] = "fedavg",
    model: Annotated[str, typer.Option(help="auto, logreg, mlp or cnn.")] = "auto",
    local_epochs: Annotated[int, typer.Option(help="Local epochs per round.")] = 1,
    lr: Annotated[float, typer.Option(help="Local learning rate.")] = 0.05,
    batch_size: Annotated[int, typer.Option(help="Local batch size.")] = 16,
    fraction: Annotated[float, typer.Option(help="Fraction of clients sampled per round.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same hashes.")] = 0,
    chain: Annotated[str, typer.Option(help="embedded, anvil or none.")] = "embedded",
    rpc_url: Annotated[str | None, typer.Option(help="Use this node instead (a devnet).")] = None,
    direct: Annotated[
        bool, typer.Option(help="Clients also submit their commitments themselves.")
    ] = False,
    contribution: Annotated[
        str, typer.Option(help="data-size, loo, shapley, gtg or cosine.")
    ] = "data-size",
    attack: Annotated[
        str,
        typer.Option(
            help="KIND:FRACTION of simulated attackers, e.g. sign-flip:0.3; KIND is sign-flip, "
            "gaussian, label-flip, free-rider, noisy-free-rider or alie."
        ),
    ] = "",
    byzantine: Annotated[
        int,
        typer.Option(help="Attackers the robust strategies tolerate; -1 derives it from --attack."),
    ] = -1,
    pre_aggregation: Annotated[
        str,
        typer.Option(
            help="A step before the robust rule (cclip, krum, multikrum, fedmedian, "
            "fedtrimmedavg): nnm (nearest-neighbour mixing) or bucketing:S (buckets of S)."
        ),
    ] = "",
    out: Annotated[Path, typer.Option(help="Directory for the run's artifacts.")] = Path(
        "runs/latest"
    ),
    dropout: Annotated[
        float, typer.Option(help="Probability that a sampled client fails or times out.")
    ] = 0.0,
    round_timeout: Annotated[
        float, typer.Option(help="Seconds the server waits for a round's replies.")
    ] = 3600.0,
    min_train_nodes: Annotated[
        int, typer.Option(help="Valid updates a round needs; fewer and it is recorded failed.")
    ] = 2,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Go on with the killed run in this directory from the last round on chain "
            "(its own settings; the other options are ignored)."
        ),
    ] = None,
    commit_mode: Annotated[
        str, typer.Option(help="relayed (signatures checked on chain) or merkle (one root).")
    ] = "relayed",
    standardize: Annotated[
        str,
        typer.Option(
            help="local (each client on its own rows) or task (everyone with the holdout's "
            "statistics, recorded in the task spec)."
        ),
    ] = "local",
) -> None:
    """Simulate a federation on this machine, every round recorded on chain."""
    from fedchain.ml.data import absolute_dataset_spec
    from fedchain.settings import RunSettings
    from fedchain.task import decode_names, encode_names

    if resume is not None:
        from fedchain.federation.resume import load_run_settings

        _run_simulation(load_run_settings(resume), resume=True)
        return
    try:
        settings = RunSettings(
            num_rounds=rounds,
            num_clients=clients,
            dataset=absolute_dataset_spec(dataset),  # the same file from any directory
            label_column=label_column,
            features=encode_names(decode_names(features)),
            partition=partition,
            strategy=strategy.lower(),
            model=model,
            local_epochs=local_epochs,
            learning_rate=lr,
            batch_size=batch_size,
            fraction_train=fraction,
            seed=seed,
            chain="rpc" if rpc_url else chain,
            rpc_url=rpc_url or "",
            direct=direct,
            contribution=contribution,
            attack=attack,
            byzantine=byzantine,
            pre_aggregation=pre_aggregation,
            out=str(out),
            dropout=dropout,
            round_timeout=round_timeout,
            min_train_nodes=min_train_nodes,
            commit_mode=commit_mode,
            standardize=standardize,
        )
        _validate_workload(settings)
    except FedchainError as exc:  # a bad option: one line, exit code 2
        raise fail(str(exc), 2) from None
    _run_simulation(settings)


def _validate_workload(settings: RunSettingsT) -> None:
    """Parse the data and model options before any engine starts; bad ones exit with code 2."""
    from fedchain.federation.workload import run_dataset
    from fedchain.ml.data import SYNTHETIC, SYNTHETIC_DEFAULT_SIZE, split_holdout
    from fedchain.ml.models import MODEL_NAMES
    from fedchain.ml.partition import MIN_CLIENT_SAMPLES, parse_partition_scheme

    parse_partition_scheme(settings.partition)
    if settings.model not in ("auto", *MODEL_NAMES):
        raise _settings_error(f"unknown model {settings.model!r}: auto, {', '.join(MODEL_NAMES)}")
    data = run_dataset(settings)  # a CSV's columns and classes checked here
    train, _ = split_holdout(data, settings.holdout_fraction, settings.seed)
    if len(train) < MIN_CLIENT_SAMPLES * settings.num_clients:
        # Rows that leave MIN_CLIENT_SAMPLES per client after the holdout (per-class rounding
        # of the stratified split can take a few more).
        needed = MIN_CLIENT_SAMPLES * settings.num_clients
        rows = int(needed / (1 - settings.holdout_fraction)) + 10
        raise _settings_error(
            f"{len(train)} training examples of {settings.dataset} cannot give "
            f"{settings.num_clients} clients {MIN_CLIENT_SAMPLES} examples each: use fewer "
            f"clients or more data, e.g. --dataset {SYNTHETIC} (generated, "
            f"{SYNTHETIC_DEFAULT_SIZE:,} rows) or {SYNTHETIC}:N with N >= {rows}"
        )


def _settings_error(message: str) -> Exception:
    from fedchain.settings import SettingsError

    return SettingsError(message)


def _run_simulation(settings: RunSettingsT, resume: bool = False) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fedchain.simulation.flower_engine import simulate as run

    with Progress(
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as progress:
        bar = progress.add_task("starting the federation…", total=settings.num_rounds)

        def on_round(report: RoundReportT) -> None:
            acc = f"accuracy {report.accuracy:.3f}" if report.accuracy is not None else "failed"
            progress.update(bar, advance=1, description=f"round {report.round}: {acc}")

        record = run(settings, on_round, resume)
    _print_rounds(record)
    from fedchain.report import write_report

    html = write_report(settings.out_dir, audit_verdict(settings.out_dir))
    console.print(
        f"artifacts in [bold]{settings.out}[/]: summary.json, ledger.json, "
        "accuracy.png, final_model.safetensors, store/"
    )
    console.print(f"report: [bold]{html}[/]")


def _print_rounds(record: RunRecordT) -> None:
    table = Table(
        title=f"{record.spec.dataset} · {record.spec.model} · {record.spec.strategy} "
        f"· chain {record.chain['kind']}"
    )
    columns = ("round", "accuracy", "loss", "accepted", "rejected", "absent", "gas", "global model")
    for column in columns:
        table.add_column(column, justify="right" if column != "global model" else "left")
    for r in record.reports:
        accepted = sum(p.accepted for p in r.participants)
        rejected = sum(not p.accepted and not p.absent for p in r.participants)
        table.add_row(
            str(r.round),
            f"{r.accuracy:.4f}" if r.accuracy is not None else "—",
            f"{r.loss:.4f}" if r.loss is not None else "—",
            str(accepted),
            str(rejected),
            str(sum(p.absent for p in r.participants)),
            f"{r.gas_used:,}",
            (r.global_model_hash[:14] + "…") if r.global_model_hash else r.failed_reason,
        )
    console.print(table)
    console.print(f"final model {record.final_model_hash}")
    if record.peak_rss_bytes is not None:
        console.print(
            f"peak memory {record.peak_rss_bytes / 2**20:,.0f} MiB resident, whole process tree "
            f"(server + Ray, {record.peak_rss_processes} processes at the peak)"
        )
