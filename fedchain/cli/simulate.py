"""``fedchain simulate``: a federation on this machine, every round recorded on chain."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fedchain.attacks import ATTACK_KINDS
from fedchain.cli._common import (
    NO_RUN_EXIT,
    app,
    audit_verdict,
    console,
    fail,
    tokens,
)
from fedchain.cli._signals import Interrupt, exit_now, interrupts, signal_name
from fedchain.errors import FedchainError
from fedchain.settings import CONTRIBUTION_METHODS, OPTION_FIELDS, RunSettings

if TYPE_CHECKING:
    from fedchain.federation.round_report import RoundReport as RoundReportT
    from fedchain.federation.run_artifacts import RunRecord as RunRecordT
    from fedchain.settings import RunSettings as RunSettingsT

#: The options' defaults: RunSettings' (one place for every default; pyproject's
#: [tool.flwr.app.config] is checked against them too).
_DEFAULT: dict[str, Any] = {f.name: f.default for f in fields(RunSettings)}


@app.command()
def simulate(
    clients: Annotated[int, typer.Option(help="Number of simulated clients.")] = _DEFAULT[
        "num_clients"
    ],
    rounds: Annotated[int, typer.Option(help="Number of rounds.")] = _DEFAULT["num_rounds"],
    dataset: Annotated[
        str, typer.Option(help="breast-cancer, digits, synthetic[:N] or csv:PATH.")
    ] = _DEFAULT["dataset"],
    label_column: Annotated[
        str, typer.Option(help="csv:PATH only: the column of class ids or class names.")
    ] = _DEFAULT["label_column"],
    features: Annotated[
        str,
        typer.Option(help="csv:PATH only: feature columns a,b,c (default: every other numeric)."),
    ] = _DEFAULT["features"],
    partition: Annotated[
        str, typer.Option(help="iid, dirichlet:ALPHA or quantity[:ALPHA].")
    ] = _DEFAULT["partition"],
    strategy: Annotated[
        str,
        typer.Option(
            help="fedavg, fedprox, fedadam, fedmedian, fedtrimmedavg, krum, multikrum, bulyan, "
            "cclip (centered clipping) or fltrust (trust from the server's holdout)."
        ),
    ] = _DEFAULT["strategy"],
    model: Annotated[
        str, typer.Option(help="auto, logreg, mlp, cnn, mlp-1m or mlp-10m.")
    ] = _DEFAULT["model"],
    local_epochs: Annotated[int, typer.Option(help="Local epochs per round.")] = _DEFAULT[
        "local_epochs"
    ],
    lr: Annotated[float, typer.Option(help="Local learning rate.")] = _DEFAULT["learning_rate"],
    batch_size: Annotated[int, typer.Option(help="Local batch size.")] = _DEFAULT["batch_size"],
    fraction: Annotated[
        float, typer.Option(help="Fraction of clients sampled per round.")
    ] = _DEFAULT["fraction_train"],
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed gives the same hashes.")
    ] = _DEFAULT["seed"],
    chain: Annotated[str, typer.Option(help="embedded, anvil or none.")] = _DEFAULT["chain"],
    rpc_url: Annotated[str | None, typer.Option(help="Use this node instead (a devnet).")] = None,
    direct: Annotated[
        bool, typer.Option(help="Clients also submit their commitments themselves.")
    ] = _DEFAULT["direct"],
    contribution: Annotated[
        str, typer.Option(help=f"{', '.join(CONTRIBUTION_METHODS)}.")
    ] = _DEFAULT["contribution"],
    attack: Annotated[
        str,
        typer.Option(
            help="KIND:FRACTION of simulated attackers, e.g. sign-flip:0.3; KIND is "
            f"{', '.join(ATTACK_KINDS)}."
        ),
    ] = _DEFAULT["attack"],
    byzantine: Annotated[
        int,
        typer.Option(help="Attackers the robust strategies tolerate; -1 derives it from --attack."),
    ] = _DEFAULT["byzantine"],
    pre_aggregation: Annotated[
        str,
        typer.Option(
            help="A step before the robust rule (cclip, krum, multikrum, fedmedian, "
            "fedtrimmedavg): nnm (nearest-neighbour mixing) or bucketing:S (buckets of S)."
        ),
    ] = _DEFAULT["pre_aggregation"],
    out: Annotated[
        Path,
        typer.Option(help="Directory for the run's artifacts (refused if it holds a run)."),
    ] = Path(_DEFAULT["out"]),
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run in --out: its files are deleted first.")
    ] = False,
    store: Annotated[
        str,
        typer.Option(
            metavar="DIR|URL",
            help="The content store: a folder or any fsspec URL, e.g. s3://bucket/prefix "
            "(credentials and endpoint from the environment: AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL). Default: --out's store/.",
        ),
    ] = _DEFAULT["store"],
    dropout: Annotated[
        float, typer.Option(help="Probability that a sampled client fails or times out.")
    ] = _DEFAULT["dropout"],
    round_timeout: Annotated[
        float, typer.Option(help="Seconds the server waits for a round's replies.")
    ] = _DEFAULT["round_timeout"],
    min_train_nodes: Annotated[
        int, typer.Option(help="Valid updates a round needs; fewer and it is recorded failed.")
    ] = _DEFAULT["min_train_nodes"],
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Go on with the killed run in this directory from the last round on chain "
            "(its own settings; the other options are ignored)."
        ),
    ] = None,
    commit_mode: Annotated[
        str, typer.Option(help="relayed (signatures checked on chain) or merkle (one root).")
    ] = _DEFAULT["commit_mode"],
    standardize: Annotated[
        str,
        typer.Option(
            help="local (each client on its own rows) or task (everyone with the holdout's "
            "statistics, recorded in the task spec)."
        ),
    ] = _DEFAULT["standardize"],
    dp: Annotated[
        str,
        typer.Option(
            help="Differential privacy: EPSILON[:DELTA] (delta 1e-5 by default), the cap each "
            "site's epsilon may reach over the task (DP-SGD with Opacus). Off by default."
        ),
    ] = _DEFAULT["dp"],
    dp_rounds: Annotated[
        int,
        typer.Option(
            help="--dp only: the rounds each site's noise is planned over (0: --rounds); fewer "
            "than --rounds and sites stop, their budget spent, after that many."
        ),
    ] = _DEFAULT["dp_rounds"],
    dp_clip_norm: Annotated[
        float, typer.Option(help="--dp only: the per-example gradient norm DP-SGD clips to.")
    ] = _DEFAULT["dp_clip_norm"],
    dp_accountant: Annotated[
        str,
        typer.Option(
            help="--dp only: the accountant every epsilon is counted with: prv (Opacus' "
            "privacy random variables, the tightest) or rdp (Renyi DP)."
        ),
    ] = _DEFAULT["dp_accountant"],
    ray_address: Annotated[
        str,
        typer.Option(
            help="HOST:PORT of an existing Ray cluster's head (as `ray start --head` prints it) "
            "to run the clients on; by default a Ray of the run's own on this machine."
        ),
    ] = _DEFAULT["ray_address"],
) -> None:
    """Simulate a federation on this machine, every round recorded on chain."""
    from fedchain.ml.data import absolute_dataset_spec
    from fedchain.simulation.preflight import check_out, check_runnable, clear_run
    from fedchain.task import decode_names, encode_names

    if resume is not None:
        _resume(resume)
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
            store=_store_location(store),
            dropout=dropout,
            round_timeout=round_timeout,
            min_train_nodes=min_train_nodes,
            commit_mode=commit_mode,
            standardize=standardize,
            dp=dp,
            dp_rounds=dp_rounds,
            dp_clip_norm=dp_clip_norm,
            dp_accountant=dp_accountant,
            ray_address=ray_address,
        )
        check_out(
            out, overwrite, option="--out", replace="pass --overwrite", resume=f"--resume {out}"
        )
        check_runnable(settings)  # scorer limits, the model for the data, the node: nothing written
    except FedchainError as exc:  # a bad option: one line naming the flag, exit code 2
        raise fail(_with_flags(str(exc)), 2) from None
    if overwrite:
        clear_run(settings.out_dir)
    _run_simulation(settings)


def _store_location(store: str) -> str:
    """A store URL as given; a folder made absolute (as --dataset), so the run's settings name
    the same folder from any directory."""
    from fedchain.storage import is_remote, local_path

    return store if not store or is_remote(store) else str(Path(local_path(store)).absolute())


def _resume(out: Path) -> None:
    from fedchain.federation.resume import RUN_FILE, load_run_settings

    if not (out / RUN_FILE).is_file():
        raise fail(
            f"nothing to resume in {out}: no {RUN_FILE} (a run writes it once its task is on "
            "chain); start a new run with `fedchain simulate --out DIR`",
            NO_RUN_EXIT,
        )
    _run_simulation(load_run_settings(out), resume=True)


def _with_flags(message: str) -> str:
    """``message`` with the run-config keys it names as simulate's flags (``num-clients`` ->
    ``--clients``): kebab-case keys anywhere, ``key=value`` as ``--flag value``, and a one-word
    key when the message starts with it ("dropout must lie in ...")."""
    import inspect
    import re

    from fedchain.settings import config_key

    for option in inspect.signature(simulate).parameters:
        field = OPTION_FIELDS.get(option, option)
        if field not in _DEFAULT:
            continue
        key, flag = re.escape(config_key(field)), "--" + option.replace("_", "-")
        message = re.sub(rf"(?<![\w-]){key}=", flag + " ", message)
        if "-" in config_key(field):
            message = re.sub(rf"(?<![\w-]){key}(?![\w-])", flag, message)
        else:
            message = re.sub(rf"^{key}(?= )", flag, message)
    return message


def _run_simulation(settings: RunSettingsT, resume: bool = False) -> None:
    """Run it with progress shown; Ctrl-C or SIGTERM stop it resumable (exit 130 / 143)."""
    from fedchain.simulation.flower_engine import SimulationStopped
    from fedchain.simulation.flower_engine import simulate as run

    recorded: list[int] = []
    with _progress(settings) as show, interrupts() as interrupt:
        interrupt.last_words = lambda signum: _stopped_line(settings, signum, recorded, True)

        def on_round(report: RoundReportT) -> None:
            recorded.append(report.round)
            show(report)

        try:
            record = run(settings, on_round, resume)
        except (SimulationStopped, KeyboardInterrupt):
            record = None
    if record is None:  # stopped: the run is on disk; out at once, past Ray's slow teardown
        signum = _signum(interrupt)
        exit_now(128 + signum, _stopped_line(settings, signum, recorded))
    _print_rounds(record)
    _print_rewards(record)
    from fedchain.report import write_report

    html = write_report(settings.out_dir, audit_verdict(settings.out_dir))
    console.print(
        f"artifacts in [bold]{settings.out}[/]: summary.json, ledger.json, "
        "accuracy.png, final_model.safetensors, store/"
    )
    console.print(f"report: [bold]{html}[/]")


def _signum(interrupt: Interrupt) -> int:
    import signal

    return interrupt.signum or signal.SIGINT  # no signal seen: a KeyboardInterrupt of our own


def _stopped_line(
    settings: RunSettingsT, signum: int, recorded: list[int], at_once: bool = False
) -> str:
    """The one line a stopped run ends with: how it was stopped and how to go on."""
    from fedchain.federation.resume import RUN_FILE
    from fedchain.simulation.preflight import run_entries

    out = settings.out_dir
    how = f"stopped{' at once' if at_once else ''} by {signal_name(signum)}"
    if recorded:
        how += f" after round {max(recorded)} of {settings.num_rounds}"
    if (out / RUN_FILE).is_file():
        return f"{how}: go on with `fedchain simulate --resume {out}`"
    if run_entries(out):
        return (
            f"{how} before the run's task was on chain, nothing to resume: start again with "
            f"`fedchain simulate --out {out} --overwrite`"
        )
    return f"{how} before the run started: nothing was written"


@contextlib.contextmanager
def _progress(settings: RunSettingsT) -> Iterator[Callable[[RoundReportT], None]]:
    """A progress bar on a terminal; elsewhere (a file, a CI log) a plain line per round."""
    if not console.is_terminal:
        yield lambda report: console.print(
            _round_line(report, settings.num_rounds), highlight=False, soft_wrap=True
        )
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as progress:
        bar = progress.add_task("starting the federation…", total=settings.num_rounds)

        def show(report: RoundReportT) -> None:
            acc = f"accuracy {report.accuracy:.3f}" if report.accuracy is not None else "failed"
            progress.update(bar, advance=1, description=f"round {report.round}: {acc}")

        yield show


def _round_line(report: RoundReportT, num_rounds: int) -> str:
    """``round 3/10: accuracy 0.9412, 10 accepted, 0 rejected`` (and absent ones, if any)."""
    if report.accuracy is not None:
        result = f"accuracy {report.accuracy:.4f}"
    else:
        result = f"failed ({report.failed_reason})" if report.failed_reason else "failed"
    accepted = sum(p.accepted for p in report.participants)
    rejected = sum(not p.accepted and not p.absent for p in report.participants)
    absent = sum(p.absent for p in report.participants)
    line = f"round {report.round}/{num_rounds}: {result}, {accepted} accepted, {rejected} rejected"
    return line + (f", {absent} absent" if absent else "")


def _print_rewards(record: RunRecordT) -> None:
    """Each participant's total reward over the run (token base units: 10**18 a token)."""
    if record.chain.get("kind") == "none":
        return
    totals = dict.fromkeys(record.roles, 0)
    accepted = dict.fromkeys(record.roles, 0)
    for report in record.reports:
        for p in report.participants:
            if p.accepted and p.address:
                totals[p.address] = totals.get(p.address, 0) + p.reward
                accepted[p.address] = accepted.get(p.address, 0) + 1
    roles = any(role != "honest" for role in record.roles.values())
    from fedchain.report import RewardToken

    recorded = record.token
    token = RewardToken(recorded.address, recorded.symbol, recorded.decimals) if recorded else None
    table = Table(title=f"rewards of task {record.task_id}")
    for column in ("participant", *(["role"] if roles else []), "rounds accepted", "reward"):
        table.add_column(column, justify="left" if column in ("participant", "role") else "right")
    for address in sorted(totals, key=lambda a: (-totals[a], a)):
        role = [record.roles.get(address, "honest")] if roles else []
        table.add_row(address, *role, str(accepted[address]), tokens(totals[address], token))
    console.print(table)
    console.print(f"rewards paid {tokens(sum(totals.values()), token)} in all")


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
