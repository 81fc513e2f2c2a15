"""The ``fedchain`` command line (typer + rich)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedchain.errors import FedchainError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedchain.artifacts import RunRecord as RunRecordT
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
        str, typer.Option(help="KIND:FRACTION of simulated attackers, e.g. free-rider:0.2.")
    ] = "",
    out: Annotated[Path, typer.Option(help="Directory for the run's artifacts.")] = Path(
        "runs/latest"
    ),
) -> None:
    """Simulate a federation on this machine, every round recorded on chain."""
    from fedchain.settings import RunSettings

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
            out=str(out),
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


def _run_simulation(settings: RunSettingsT) -> None:
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

        record = run(settings, on_round)
    _print_rounds(record)
    console.print(
        f"artifacts in [bold]{settings.out}[/]: summary.json, ledger.json, "
        "accuracy.png, final_model.safetensors, store/"
    )


def _print_rounds(record: RunRecordT) -> None:
    table = Table(
        title=f"{record.spec.dataset} · {record.spec.model} · {record.spec.strategy} "
        f"· chain {record.chain['kind']}"
    )
    for column in ("round", "accuracy", "loss", "accepted", "rejected", "gas", "global model"):
        table.add_column(column, justify="right" if column != "global model" else "left")
    for r in record.reports:
        accepted = sum(p.accepted for p in r.participants)
        rejected = sum(not p.accepted for p in r.participants)
        table.add_row(
            str(r.round),
            f"{r.accuracy:.4f}" if r.accuracy is not None else "—",
            f"{r.loss:.4f}" if r.loss is not None else "—",
            str(accepted),
            str(rejected),
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
        paid, result = gateway.as_account(signer).claim(token)
        if paid == 0:
            console.print(f"{signer.address} has nothing to claim")
        else:
            console.print(f"{signer.address} claimed {_tokens(paid)} (tx {result.tx_hash})")
    finally:
        opened.close()


@app.command()
def scores(run: RunOption = Path("runs/latest"), rpc_url: RpcOption = None) -> None:
    """Recompute every round's contribution scores from the store and the holdout; compare them
    with the chain. Exit code 0 only when every score and reward matches."""
    from fedchain.audit import open_run, recompute_scores

    opened = open_run(run, rpc_url)
    try:
        checks = recompute_scores(opened)
    finally:
        opened.close()
    bad = [c for c in checks if not c.ok]
    table = Table(title=f"scores of {run}: {len(checks) - len(bad)}/{len(checks)} match")
    for column in ("round", "participant", "recorded", "recomputed", "reward", "verdict"):
        table.add_column(column)
    for c in bad or checks[-min(len(checks), 10) :]:
        verdict = "ok" if c.ok else (c.detail or "MISMATCH")
        table.add_row(
            str(c.round), c.participant, str(c.recorded_score), str(c.recomputed_score),
            f"{c.recorded_reward} / {c.recomputed_reward}", verdict,
        )  # fmt: skip
    console.print(table)
    if bad:
        raise _fail(f"{len(bad)} recorded scores or rewards do not recompute", 1)
    console.print(f"every score of {len(checks)} recomputes exactly")


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
