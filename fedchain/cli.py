"""The ``fedchain`` command line (typer + rich)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from fedchain.consortium_cli import register as register_consortium_commands
from fedchain.errors import FedchainError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedchain.artifacts import RunRecord as RunRecordT
    from fedchain.audit import ModelProvenance as ProvenanceT
    from fedchain.audit import OpenedRun as OpenedRunT
    from fedchain.audit import Verdict as VerdictT
    from fedchain.settings import RunSettings as RunSettingsT
    from fedchain.strategy import RoundReport as RoundReportT

__all__ = ["app", "main"]

app = typer.Typer(
    name="fedchain",
    help="Federated learning with on-chain contribution accounting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
account_app = typer.Typer(help="Encrypted keystores for participants and coordinators.")
app.add_typer(account_app, name="account")
register_consortium_commands(app, account_app)  # certs, task, participant, server, client

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DEVNET_CHAIN_IDS = frozenset({31337, 1337})
DEFAULT_RPC_URL = "http://127.0.0.1:8545"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def devnet(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8545,
    state: Annotated[Path, typer.Option(help="State file: the chain survives a restart.")] = Path(
        ".fedchain/devnet-state.json"
    ),
) -> None:
    """Run a local anvil devnet on 127.0.0.1 until Ctrl-C, its state kept in a file."""
    from fedchain.chain.accounts import devnet_accounts
    from fedchain.chain.backends import AnvilChain

    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)  # before anvil starts: a stop always saves the state
    state.parent.mkdir(parents=True, exist_ok=True)
    chain = AnvilChain(port=port, state_file=state).start()
    console.print(f"anvil devnet at [bold]{chain.url}[/] (chain id {chain.w3.eth.chain_id})")
    console.print(f"state file: {state}")
    console.print("funded DEVNET TEST accounts (public test mnemonic, never for real value):")
    for index, account in enumerate(devnet_accounts(4)):
        console.print(f"  [{index}] {account.address}")
    console.print("stop with Ctrl-C")
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        chain.close()
        console.print("devnet stopped; state saved")


@app.command()
def deploy(
    rpc_url: Annotated[str, typer.Option(help="Node to deploy to.")] = DEFAULT_RPC_URL,
    out: Annotated[Path, typer.Option(help="Deployment file to write.")] = Path(
        "fedchain-deployment.json"
    ),
    keystore: Annotated[
        Path | None, typer.Option(help="Deployer keystore (password: prompt or env).")
    ] = None,
    devnet_account: Annotated[
        int | None, typer.Option(help="Use DEVNET TEST key N instead (devnets only).")
    ] = None,
) -> None:
    """Deploy the ledger and a dev reward token; write the deployment file later commands read."""
    from fedchain.chain.backends import RpcChain
    from fedchain.chain.gateway import deploy as deploy_contracts

    chain = RpcChain(rpc_url)
    deployer = _signer(keystore, devnet_account, int(chain.w3.eth.chain_id))
    gateway = deploy_contracts(chain.w3, deployer)
    deployment = gateway.deployment.__class__(**{**vars(gateway.deployment), "rpc_url": rpc_url})
    deployment.save(out)
    console.print(f"ledger  {deployment.ledger}")
    console.print(f"token   {deployment.token}")
    console.print(f"chain   {deployment.chain_id}, from block {deployment.block}")
    console.print(f"wrote {out}")


def _signer(
    keystore: Path | None,
    devnet_index: int | None,
    chain_id: int,
    devnet_ids: frozenset[int] | set[int] = DEVNET_CHAIN_IDS,
) -> LocalAccount:
    from fedchain.chain.accounts import devnet_account, keystore_password, load_keystore

    if keystore is not None and devnet_index is not None:
        raise _fail("give --keystore or --devnet-account, not both", 2)
    if keystore is not None:
        return load_keystore(keystore, keystore_password())
    if devnet_index is None:
        raise _fail("no signer: give --keystore PATH (or --devnet-account N on a devnet)", 2)
    if chain_id not in devnet_ids:
        raise _fail(
            f"chain {chain_id} is not a devnet: DEVNET TEST keys are public, use --keystore", 2
        )
    return devnet_account(devnet_index)


@account_app.command("new")
def account_new(
    path: Annotated[Path, typer.Argument(help="Keystore file to create (mode 600).")],
) -> None:
    """Create a key and store it encrypted; prints only its address."""
    from fedchain.chain.accounts import keystore_password, new_keystore

    address = new_keystore(path, keystore_password(confirm=True))
    console.print(f"address {address}")
    console.print(f"keystore {path} (mode 600): back it up, the key exists nowhere else")


@account_app.command("show")
def account_show(
    path: Annotated[Path, typer.Argument(help="Keystore file.")],
) -> None:
    """Print a keystore's address (decrypting it proves the password)."""
    from fedchain.chain.accounts import keystore_password, load_keystore

    console.print(load_keystore(path, keystore_password()).address)


@app.command("ledger-demo")
def ledger_demo() -> None:
    """One scripted round on the embedded chain: deploy, commit, reward, claim; print the record."""
    from fedchain.chain.scripted import scripted_round

    record = scripted_round()
    table = Table(title="events recorded on the embedded chain")
    for column in ("block", "event", "details"):
        table.add_column(column)
    for event in record.events:
        details = ", ".join(f"{k}={_short(v)}" for k, v in event.args.items())
        table.add_row(str(event.block_number), event.name, details)
    console.print(table)
    for line in record.summary:
        console.print(line)


@app.command()
def simulate(
    clients: Annotated[int, typer.Option(help="Number of simulated clients.")] = 10,
    rounds: Annotated[int, typer.Option(help="Number of rounds.")] = 10,
    dataset: Annotated[
        str, typer.Option(help="breast-cancer, digits or csv:PATH.")
    ] = "breast-cancer",
    partition: Annotated[
        str, typer.Option(help="iid, dirichlet:ALPHA or quantity[:ALPHA].")
    ] = "dirichlet:0.5",
    strategy: Annotated[
        str,
        typer.Option(
            help="fedavg, fedprox, fedadam, fedmedian, fedtrimmedavg, krum, multikrum, bulyan."
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
) -> None:
    """Simulate a federation on this machine, every round recorded on chain."""
    from fedchain.settings import RunSettings

    if resume is not None:
        from fedchain.resume import load_run_settings

        _run_simulation(load_run_settings(resume), resume=True)
        return
    try:
        settings = RunSettings(
            num_rounds=rounds,
            num_clients=clients,
            dataset=dataset,
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
            out=str(out),
            dropout=dropout,
            round_timeout=round_timeout,
            min_train_nodes=min_train_nodes,
            commit_mode=commit_mode,
        )
        _validate_workload(settings)
    except FedchainError as exc:  # a bad option: one line, exit code 2
        raise _fail(str(exc), 2) from None
    _run_simulation(settings)


def _validate_workload(settings: RunSettingsT) -> None:
    """Parse the data and model options before any engine starts; bad ones exit with code 2."""
    from fedchain.ml.data import SYNTHETIC, SYNTHETIC_DEFAULT_SIZE, load_dataset, split_holdout
    from fedchain.ml.models import MODEL_NAMES
    from fedchain.ml.partition import MIN_CLIENT_SAMPLES, parse_partition_scheme

    parse_partition_scheme(settings.partition)
    if settings.model not in ("auto", *MODEL_NAMES):
        raise _settings_error(f"unknown model {settings.model!r}: auto, {', '.join(MODEL_NAMES)}")
    data = load_dataset(settings.dataset, label_column=settings.label_column)
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

    from fedchain.simulation import simulate as run

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

    html = write_report(settings.out_dir, _audit_verdict(settings.out_dir))
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


RunOption = Annotated[
    Path, typer.Option("--run", help="A run directory (fedchain simulate --out).")
]
RpcOption = Annotated[
    str | None, typer.Option(help="Node holding the run's chain (default: the saved one).")
]


@app.command()
def rewards(run: RunOption = Path("runs/latest"), rpc_url: RpcOption = None) -> None:
    """Each participant's attributed, claimed and claimable rewards, read from the chain."""
    from fedchain.audit import open_run

    opened = open_run(run, rpc_url)
    try:
        if opened.settings.commit_mode == "merkle":
            _merkle_rewards(opened)
            return
        gateway = opened.gateway
        attributed: dict[str, int] = {}
        for event in gateway.events():
            if event.name == "RewardAttributed" and event.args["taskId"] == opened.task_id:
                who = str(event.args["participant"])
                attributed[who] = attributed.get(who, 0) + int(event.args["amount"])
        token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
        table = Table(title=f"rewards of task {opened.task_id} (token {token})")
        for column in ("participant", "attributed", "claimed", "claimable"):
            table.add_column(column, justify="left" if column == "participant" else "right")
        for who, amount in sorted(attributed.items(), key=lambda kv: -kv[1]):
            claimed, owed = gateway.claimed(who, token), gateway.owed(who, token)
            table.add_row(who, _tokens(amount), _tokens(claimed), _tokens(owed))
        console.print(table)
    finally:
        opened.close()


def _merkle_rewards(opened: OpenedRunT) -> None:
    """``fedchain rewards`` of a merkle-mode run: the leaves published with the run, checked
    against the roots on chain; claimable = proven but not pulled + not yet proven."""
    from fedchain.merkle_rounds import reward_balances, verified_records

    gateway = opened.gateway
    records = verified_records(opened.out, gateway, opened.task_id)
    balances = reward_balances(records, gateway.events(), opened.task_id)
    token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
    table = Table(title=f"rewards of task {opened.task_id} (token {token}, merkle mode)")
    for column in ("participant", "attributed", "claimed", "claimable"):
        table.add_column(column, justify="left" if column == "participant" else "right")
    for b in sorted(balances, key=lambda b: -b.attributed):
        claimed, owed = gateway.claimed(b.participant, token), gateway.owed(b.participant, token)
        table.add_row(
            b.participant, _tokens(b.attributed), _tokens(claimed), _tokens(owed + b.unproven)
        )
    console.print(table)


@app.command()
def claim(
    run: RunOption = Path("runs/latest"),
    rpc_url: RpcOption = None,
    keystore: Annotated[
        Path | None, typer.Option(help="The participant's keystore (password: prompt or env).")
    ] = None,
    devnet_account: Annotated[
        int | None, typer.Option(help="Claim as DEVNET TEST key N (devnets and simulations).")
    ] = None,
) -> None:
    """Pull everything the ledger owes this participant (a saved embedded chain keeps the claim)."""
    from fedchain.audit import open_run

    opened = open_run(run, rpc_url, resume=True)
    try:
        gateway = opened.gateway
        chain_id = gateway.deployment.chain_id
        devnet_ids = DEVNET_CHAIN_IDS | ({chain_id} if opened.backend.kind == "embedded" else set())
        signer = _signer(keystore, devnet_account, chain_id, devnet_ids)
        token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
        if opened.settings.commit_mode == "merkle":
            _prove_leaves(opened, signer)
        paid, result = gateway.as_account(signer).claim(token)
        if paid == 0:
            console.print(f"{signer.address} has nothing to claim")
        else:
            console.print(f"{signer.address} claimed {_tokens(paid)} (tx {result.tx_hash})")
    finally:
        opened.close()


def _prove_leaves(opened: OpenedRunT, signer: LocalAccount) -> None:
    """Merkle mode: prove the signer's unclaimed leaves (every round, one transaction)."""
    from fedchain.chain.records import TaskId
    from fedchain.merkle_rounds import unclaimed_leaves, verified_records

    gateway = opened.gateway
    records = verified_records(opened.out, gateway, opened.task_id)
    claims = unclaimed_leaves(records, gateway.events(), opened.task_id, signer.address)
    if claims:
        result = gateway.as_account(signer).claim_leaves(TaskId(opened.task_id), claims)
        rounds = ", ".join(str(c.round) for c in claims)
        console.print(f"proved {len(claims)} reward leaves (rounds {rounds}; tx {result.tx_hash})")


@app.command()
def scores(run: RunOption = Path("runs/latest"), rpc_url: RpcOption = None) -> None:
    """Recompute every round's aggregation, evaluation, scores and rewards and check the whole
    run: the same as `fedchain audit --recompute`. Exit code 0 only when every check passes."""
    from fedchain.audit import AuditError, audit_run

    try:
        verdict = audit_run(run, rpc_url=rpc_url, recompute=True)
    except AuditError as exc:
        raise _fail(str(exc), 2) from None
    _print_verdict(verdict, f"audit of {run} (recomputed)")
    if not verdict.ok:
        raise typer.Exit(1)


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
    store: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Content store (default: the run's)."),
    ] = None,
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
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="FILE|-", help="Write the verdict as JSON to FILE, or - (stdout)."
        ),
    ] = None,
) -> None:
    """Rebuild each task's lineage from the chain and check it against the content store.
    Exit code 0 only when every check passes, 1 when one fails, 2 on bad options."""
    from fedchain.audit import AuditError, audit_ledger, audit_run, open_ledger

    try:
        if ledger or deployment:
            if run is not None:
                raise AuditError("give --run, or --ledger/--deployment, not both")
            source = open_ledger(rpc_url=rpc_url, ledger=ledger, deployment=deployment)
            try:
                verdict = audit_ledger(
                    source, store=store, spec_file=spec, task=task, recompute=recompute
                )
            finally:
                source.close()
            title = f"audit of ledger {source.gateway.deployment.ledger}"
        else:
            if task is not None:
                raise AuditError("--task selects a task of --ledger/--deployment; a run has one")
            run = run or Path("runs/latest")
            verdict = audit_run(
                run, rpc_url=rpc_url, recompute=recompute, spec_file=spec, store=store
            )
            title = f"audit of {run}"
    except AuditError as exc:
        raise _fail(str(exc), 2) from None
    _write_verdict(verdict, json_out)
    _print_verdict(verdict, title, stderr=json_out == "-")
    if not verdict.ok:
        raise typer.Exit(1)


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
        cells += ["[green]ok[/]" if c.ok else "[bold red]FAIL[/]", c.detail]
        table.add_row(*cells)
    out.print(table)
    failed = len(verdict.failures)
    if failed:
        out.print(f"[bold red]verdict: {failed} of {len(verdict.checks)} rows failed[/]")
    else:
        out.print(f"[bold green]verdict: every check passed[/] ({len(verdict.checks)} rows)")


def _any_participant(verdict: VerdictT) -> bool:
    return any(c.participant for c in verdict.checks)


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
) -> None:
    """Hash a model file and show where the chain recorded it: task, round, evaluation,
    participants and their rewards. Exit code 1 when it was never recorded."""
    from fedchain.audit import AuditError, open_ledger
    from fedchain.audit import verify_model as find

    if not file.is_file():
        raise _fail(f"no file at {file}: give the model file to verify", 2)
    try:
        if not (ledger or deployment):
            run = run or Path("runs/latest")
        source = open_ledger(run=run, rpc_url=rpc_url, ledger=ledger, deployment=deployment)
    except AuditError as exc:
        raise _fail(str(exc), 2) from None
    try:
        provenance = find(file, source, run)
    finally:
        source.close()
    _print_provenance(provenance)
    if not provenance.recorded:
        raise typer.Exit(1)


def _print_provenance(p: ProvenanceT) -> None:
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
                f"[bold green]recorded:[/] the update of {sighting.participant} in task "
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
                c.participant,
                str(c.num_examples),
                f"{reward.score / 1e6:.6f}" if reward else "not accepted",
                f"{reward.amount / 10**18:,.2f}" if reward else "—",
            )
        console.print(table)


def _audit_verdict(run: Path, recompute: bool = False) -> dict[str, Any] | None:
    """The audit verdict the HTML report shows (None for a run without a ledger)."""
    import json

    from fedchain.audit import audit_run

    summary = run / "summary.json"
    if not summary.exists() or json.loads(summary.read_text())["chain"]["kind"] == "none":
        return None  # the report names the missing run; a run without a chain has no ledger
    return audit_run(run, recompute=recompute).to_json()


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
    from fedchain.report import write_report

    written = write_report(run, _audit_verdict(run, recompute), out)
    console.print(f"report of {run}: [bold]{written}[/] ({written.stat().st_size:,} bytes)")


def _tokens(amount: int) -> str:
    return f"{amount / 10**18:,.6f}"


def _short(value: object) -> str:
    text = str(value)
    return text[:12] + "…" if text.startswith("0x") and len(text) > 14 else text


def main() -> None:
    """Console entry point: errors become one red line; bad options exit 2, failures 1."""
    import click

    try:
        code = app(standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        raise SystemExit(130) from None
    except click.UsageError as exc:
        err_console.print(f"[bold red]error:[/] {exc.format_message()}")
        raise SystemExit(2) from None
    except FedchainError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)
