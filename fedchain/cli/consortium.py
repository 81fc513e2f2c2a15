"""The consortium commands of ``fedchain``: certs, task, participant, server, client, account fund.

A coordinator deploys the ledger, creates and funds a task, registers the hospitals and runs the
Flower SuperLink; each hospital runs a SuperNode over TLS, authenticated by its node key, whose
ClientApp trains on the hospital's own CSV file and signs with its own keystore. The
step-by-step is docs/consortium.md. :func:`register` adds these commands to ``fedchain.cli``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fedchain.cli._common import DEFAULT_RPC_URL, account_app, app, console, fail, signer
from fedchain.consortium.deployment import (
    CONNECTION,
    DEFAULT_SUPERLINK_ADDRESS,
    DEFAULT_SUPERLINK_PORT,
)
from fedchain.errors import FedchainError

__all__ = ["certs_app", "participant_app", "server_app", "task_app"]

task_app = typer.Typer(help="Tasks on the ledger (coordinator).", no_args_is_help=True)
participant_app = typer.Typer(
    help="Organisations registered on the ledger (registrar).", no_args_is_help=True
)
certs_app = typer.Typer(
    help="TLS certificates and SuperNode keys of a consortium.", no_args_is_help=True
)
server_app = typer.Typer(
    help="The coordinator's Flower SuperLink, its SuperNodes and runs.", no_args_is_help=True
)

DEFAULT_DEPLOYMENT = Path("fedchain-deployment.json")
DEFAULT_CA = Path("certs/ca.crt")

DeploymentOption = Annotated[
    Path, typer.Option(help="Deployment file written by `fedchain deploy`.")
]
RpcUrlOption = Annotated[
    str | None, typer.Option(help="Chain node (default: the deployment file's).")
]
KeystoreOption = Annotated[
    Path | None, typer.Option(help="Coordinator keystore (password: prompt or env).")
]
DevnetOption = Annotated[
    int | None, typer.Option(help="Sign with DEVNET TEST key N instead (devnets only).")
]
SuperlinkOption = Annotated[str, typer.Option(help="The SuperLink's address, HOST:PORT.")]
CaOption = Annotated[Path, typer.Option(help="The consortium's CA certificate.")]


# ---------------------------------------------------------------------- account fund


def account_fund(
    address: Annotated[str, typer.Argument(help="Account to send gas money to.")],
    amount: Annotated[str, typer.Option(help="Amount of the chain's native currency.")] = "1",
    rpc_url: Annotated[str, typer.Option(help="Chain node.")] = "http://127.0.0.1:8545",
    keystore: Annotated[
        Path | None, typer.Option(help="Sender's keystore (password: prompt or env).")
    ] = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Send gas money (e.g. to a new coordinator keystore on a devnet)."""
    from eth_utils.address import is_address

    from fedchain.chain.backends import RpcChain
    from fedchain.chain.gateway import send_native
    from fedchain.consortium.deployment import token_amount

    if not is_address(address):
        raise fail(f"{address!r} is not an account address (0x followed by 40 hex digits)", 2)
    wei = token_amount(amount, 18)
    chain = RpcChain(rpc_url)
    sender = signer(keystore, devnet_account, int(chain.w3.eth.chain_id))
    result = send_native(chain.w3, sender, address, wei)
    console.print(f"sent {amount} to {address} (tx {result.tx_hash})")


# ---------------------------------------------------------------------- certs

HostOption = Annotated[
    list[str] | None,
    typer.Option(help="Name or IP SuperNodes reach the SuperLink by (repeat).", show_default=False),
]
DaysOption = Annotated[int, typer.Option(help="Validity in days.")]


@certs_app.command("ca")
def certs_ca(
    directory: Annotated[Path, typer.Argument(help="Directory for the CA and SuperLink files.")],
    host: HostOption = None,
    days: DaysOption = 365,
    name: Annotated[str, typer.Option(help="The consortium's name.")] = "",
) -> None:
    """Coordinator: create the consortium's CA and the SuperLink's TLS certificate."""
    from fedchain.consortium.certs import create_ca

    ca, server = create_ca(directory, host or [], days, name)
    console.print(f"CA certificate      {ca}  (give it to every hospital)")
    console.print(f"SuperLink TLS cert  {server}  (key {directory / 'superlink.key'}, mode 600)")
    console.print(
        f"CA key              {directory / 'ca.key'}  (mode 600: keep it off the SuperLink)"
    )


@certs_app.command("node-key")
def certs_node_key(
    path: Annotated[Path, typer.Argument(help="Private key file to create (mode 600).")],
) -> None:
    """Hospital: create the SuperNode's authentication key pair (PATH and PATH.pub)."""
    from fedchain.consortium.certs import create_node_key

    public = create_node_key(path)
    console.print(f"private key {path} (mode 600: it stays on this machine)")
    console.print(f"public key  {public} (send it to the coordinator to register)")


@certs_app.command("consortium")
def certs_consortium(
    directory: Annotated[Path, typer.Argument(help="Directory for every file.")],
    node: Annotated[list[str], typer.Option(help="A SuperNode name, e.g. hospital-a (repeat).")],
    host: HostOption = None,
    days: DaysOption = 365,
) -> None:
    """A test consortium in one directory: CA, SuperLink certificate, one key pair per node."""
    from fedchain.consortium.certs import create_consortium

    made = create_consortium(directory, host or [], node, days)
    console.print(f"CA certificate      {made.ca_cert}")
    console.print(f"SuperLink TLS cert  {made.superlink_cert} (key {made.superlink_key})")
    for name, key in made.node_keys.items():
        console.print(f"SuperNode {name:<9} {key} and {key.with_suffix('.pub')}")


# ---------------------------------------------------------------------- task, participant


def _gateway(
    deployment: Path, rpc_url: str | None, keystore: Path | None, devnet_account: int | None
) -> Any:
    from fedchain.chain.backends import RpcChain
    from fedchain.chain.deployments import Deployment
    from fedchain.chain.gateway import LedgerGateway

    loaded = Deployment.load(deployment)
    url = rpc_url or loaded.rpc_url or DEFAULT_RPC_URL
    chain = RpcChain(url)
    account = signer(keystore, devnet_account, int(chain.w3.eth.chain_id))
    return LedgerGateway(chain.w3, loaded, account), url


@task_app.command("create")
def task_create(
    holdout: Annotated[
        str, typer.Option(help="The coordinator's holdout, csv:PATH (column --label-column).")
    ],
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: KeystoreOption = None,
    devnet_account: DevnetOption = None,
    spec: Annotated[
        Path | None,
        typer.Option(help="A task spec (task.json) to create instead of the options below."),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Rounds of the run (funding: budget x rounds).")] = 10,
    budget: Annotated[str, typer.Option(help="Reward tokens per round.")] = "1000",
    fund: Annotated[
        str | None, typer.Option(help="Tokens moved into the pool now (default budget x rounds).")
    ] = None,
    reward_token: Annotated[
        str | None, typer.Option(help="ERC-20 rewards are paid in (default: the dev token).")
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="What the hospitals' CSV files hold, recorded in the spec.")
    ] = "site-csv",
    label_column: Annotated[
        str, typer.Option(help="The label column of every CSV: class ids or class names.")
    ] = "label",
    features: Annotated[
        str,
        typer.Option(
            help="Feature columns a,b,c of every CSV (default: the holdout's other numeric ones)."
        ),
    ] = "",
    model: Annotated[str, typer.Option(help="auto, logreg, mlp or cnn.")] = "auto",
    strategy: Annotated[
        str, typer.Option(help="fedavg, fedprox, fedadam, fedmedian, ...")
    ] = "fedavg",
    local_epochs: Annotated[int, typer.Option(help="Local epochs per round.")] = 1,
    lr: Annotated[float, typer.Option(help="Local learning rate.")] = 0.05,
    batch_size: Annotated[int, typer.Option(help="Local batch size.")] = 16,
    contribution: Annotated[
        str, typer.Option(help="data-size, loo, shapley, gtg or cosine.")
    ] = "data-size",
    seed: Annotated[int, typer.Option(help="Seed of the initial model and the scoring.")] = 0,
    min_nodes: Annotated[int, typer.Option(help="SuperNodes needed to start a round.")] = 2,
    run_out: Annotated[
        Path, typer.Option(help="Where the ServerApp writes the run's artifacts.")
    ] = Path("runs/consortium"),
    out: Annotated[Path, typer.Option(help="The task's run config file to write.")] = Path(
        "fedchain-task.toml"
    ),
) -> None:
    """Coordinator: create and fund a task on the ledger; write its Flower run config."""
    from fedchain.consortium.deployment import (
        create_task,
        settings_from_spec,
        token_amount,
        write_run_config,
    )
    from fedchain.federation.workload import site_columns
    from fedchain.ml.data import absolute_dataset_spec
    from fedchain.settings import RunSettings
    from fedchain.task import SITES_PARTITION, TaskSpec, decode_names, encode_names

    if keystore is None and devnet_account not in (None, 0):
        raise fail(
            "on a devnet the ServerApp signs with DEVNET TEST key 0: use --devnet-account 0 "
            "or --keystore",
            2,
        )
    if out.exists():
        raise fail(f"{out} exists: choose another --out, a run config is never lost", 2)
    try:  # the holdout read as the task will read it, before anything is sent
        columns = RunSettings(
            partition=SITES_PARTITION,
            holdout=absolute_dataset_spec(holdout),
            label_column=label_column,
            features=encode_names(decode_names(features)),
        )
        if spec is None:
            site_columns(columns)
    except FedchainError as exc:
        raise fail(str(exc), 2) from None
    gateway, url = _gateway(deployment, rpc_url, keystore, devnet_account)
    decimals = gateway.token_decimals(reward_token)
    per_round = token_amount(budget, decimals)
    pool = token_amount(fund, decimals) if fund is not None else per_round * rounds
    settings = RunSettings(
        num_rounds=rounds,
        dataset=dataset,
        partition=SITES_PARTITION,
        model=model,
        strategy=strategy.lower(),
        local_epochs=local_epochs,
        learning_rate=lr,
        batch_size=batch_size,
        min_train_nodes=min_nodes,
        seed=seed,
        chain="rpc",
        rpc_url=url,
        deployment=str(deployment.resolve()),
        reward_per_round=per_round,
        contribution=contribution,
        out=str(run_out.resolve()),
        label_column=label_column,
        features=columns.features,
        keystore=str(keystore.resolve()) if keystore is not None else "",
        holdout=columns.holdout,
    )
    if spec is not None:
        settings = settings_from_spec(TaskSpec.load(spec), settings)
    settings = site_columns(settings)  # the sites read the holdout's columns and classes
    created = create_task(gateway, settings, fund=pool, token=reward_token)
    ledger = gateway.deployment
    header = (
        f"fedchain task {created.task_id} on chain {ledger.chain_id}, ledger {ledger.ledger}.\n"
        f"Its Flower run config: submit it with `fedchain server run --task {out}`.\n"
        "Every SuperNode receives it: it holds no secret, only public addresses and paths on\n"
        "the coordinator's machine (the ServerApp's holdout, keystore and artifacts)."
    )
    write_run_config(out, created.settings, header)
    created.spec.save(out.with_suffix(".json"))
    console.print(f"task {created.task_id} created by {gateway.account.address}")
    console.print(f"spec hash   0x{created.spec.spec_hash().hex()} ({out.with_suffix('.json')})")
    console.print(f"model       {created.spec.model}, initial {created.spec.initial_model_hash}")
    console.print(f"holdout     {settings.holdout} ({created.spec.holdout_hash})")
    console.print(f"rewards     {budget} per round, {pool / 10**decimals:,.6f} in the pool")
    console.print(f"run config  {out}")


@participant_app.command("add")
def participant_add(
    address: Annotated[str, typer.Argument(help="The organisation's address (its keystore's).")],
    name: Annotated[
        str, typer.Option("--name", "--org", help="The organisation's name, kept on chain.")
    ],
    uri: Annotated[str, typer.Option(help="Where its metadata document is published.")] = "",
    metadata: Annotated[
        Path | None,
        typer.Option(help="Its metadata document, whose SHA-256 is kept (default: of the name)."),
    ] = None,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: KeystoreOption = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Registrar: register a hospital's organisation (name, metadata hash, URI) on the ledger.

    Registration admits the organisation; it takes part in a task only once it joins it with
    its own signed consent (`fedchain task join`). Registering again updates the record.
    """
    from eth_utils.address import is_address

    from fedchain.consortium.deployment import org_hash
    from fedchain.hashing import file_hash

    if not is_address(address):
        raise fail(f"{address!r} is not an account address (0x followed by 40 hex digits)", 2)
    if metadata is not None and not metadata.is_file():
        raise fail(f"no metadata document at {metadata}", 2)
    try:
        digest = file_hash(metadata) if metadata is not None else org_hash(name)
    except FedchainError as exc:
        raise fail(str(exc), 2) from None
    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    result = gateway.register_organisation(address, name.strip(), digest, uri)
    done = "already registered" if result.already_recorded else f"registered (tx {result.tx_hash})"
    console.print(f"{name.strip()} ({address}) {done} by {gateway.account.address}")


TaskIdOption = Annotated[int, typer.Option("--task-id", help="The task's id on the ledger.")]
ParticipantKeystore = Annotated[
    Path | None, typer.Option(help="Your keystore (password: prompt or env).")
]


@task_app.command("join")
def task_join(
    task: Annotated[
        Path, typer.Option(help="The task's run config (fedchain-task.toml) you consent to.")
    ],
    data: Annotated[Path, typer.Option(help="Your training data: the CSV your SuperNode reads.")],
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: ParticipantKeystore = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Hospital: join a task with your own consent to its spec, your dataset size and the
    SHA-256 of your training data (no commitment of yours may claim more examples)."""
    from fedchain.chain.records import TaskId
    from fedchain.consortium.deployment import read_run_config
    from fedchain.federation.workload import site_data
    from fedchain.ml.data import dataset_hash

    try:
        settings = read_run_config(task)
        rows = site_data(
            str(data.resolve()),
            settings.label_column,
            None,
            settings.features,
            settings.classes,
            standardize=settings.standardize,
            standardize_stats=settings.standardize_stats,
        )
    except FedchainError as exc:
        raise fail(str(exc), 2) from None
    spec_hash = _reviewed_spec_hash(task)
    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    task_id = TaskId(settings.task_id)
    size, digest = len(rows), dataset_hash(rows)
    result = gateway.join_task(task_id, size, digest, spec_hash=spec_hash)
    done = "already a member" if result.already_recorded else f"joined (tx {result.tx_hash})"
    console.print(f"{gateway.account.address} {done} task {task_id}")
    console.print(f"dataset size {size}, data hash 0x{digest.hex()}")


def _reviewed_spec_hash(run_config: Path) -> bytes | None:
    """The spec hash of the task spec written beside the run config (``task create`` writes
    both), which the consent names; None when it is absent (the chain's is then used)."""
    from fedchain.task import TaskSpec, TaskSpecError

    path = run_config.with_suffix(".json")
    if not path.is_file():
        return None
    try:
        return TaskSpec.load(path).spec_hash()
    except TaskSpecError as exc:
        raise fail(f"{path}: {exc}", 2) from None


@task_app.command("leave")
def task_leave(
    task_id: TaskIdOption,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: ParticipantKeystore = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Hospital: leave a task from its first uncommitted round on (final for the task;
    rewards of committed rounds stay yours)."""
    from fedchain.chain.records import TaskId

    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    result = gateway.leave_task(TaskId(task_id))
    left = gateway.membership(TaskId(task_id), gateway.account.address).left_round
    done = "had left already" if result.already_recorded else f"left (tx {result.tx_hash})"
    console.print(f"{gateway.account.address} {done}: not a member from round {left}")


def _end_task(task_id: int, cancel: bool, gateway: Any) -> None:
    from fedchain.chain.records import TaskId

    result = gateway.close_task(TaskId(task_id), cancel=cancel)
    task = gateway.task(TaskId(task_id))
    what = task.status.name.lower()
    done = f"already {what}" if result.already_recorded else f"{what} (tx {result.tx_hash})"
    console.print(f"task {task_id} {done}")
    console.print(
        f"unattributed {task.unattributed} refundable to its funders (`fedchain task refund`); "
        f"unproven merkle rewards sweepable after {task.claim_deadline} (`fedchain task sweep`)"
    )


@task_app.command("close")
def task_close(
    task_id: TaskIdOption,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: KeystoreOption = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Coordinator (or admin): close a finished task; an open round is failed and what no round
    took becomes refundable to the funders."""
    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    _end_task(task_id, False, gateway)


@task_app.command("cancel")
def task_cancel(
    task_id: TaskIdOption,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: KeystoreOption = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Coordinator (or admin): cancel an abandoned task (the same money rules as close)."""
    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    _end_task(task_id, True, gateway)


@task_app.command("refund")
def task_refund(
    task_id: TaskIdOption,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: Annotated[
        Path | None, typer.Option(help="The funder's keystore (password: prompt or env).")
    ] = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Funder: pull your pro-rata share of an ended task's unattributed tokens."""
    _pull(task_id, "refund", deployment, rpc_url, keystore, devnet_account)


@task_app.command("sweep")
def task_sweep(
    task_id: TaskIdOption,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: Annotated[
        Path | None, typer.Option(help="The funder's keystore (password: prompt or env).")
    ] = None,
    devnet_account: DevnetOption = None,
) -> None:
    """Funder: after the claim deadline, pull your share of the merkle rewards never proven."""
    _pull(task_id, "sweep", deployment, rpc_url, keystore, devnet_account)


def _pull(
    task_id: int,
    what: str,
    deployment: Path,
    rpc_url: str | None,
    keystore: Path | None,
    devnet_account: int | None,
) -> None:
    from fedchain.chain.records import TaskId

    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    paid, result = getattr(gateway, what)(TaskId(task_id))
    decimals = gateway.token_decimals(gateway.task(TaskId(task_id)).token)
    if result.already_recorded:
        console.print(f"nothing to {what}: {gateway.account.address} is owed nothing new")
        return
    console.print(f"{what}: {paid / 10**decimals:,.6f} tokens to {gateway.account.address}")


# ---------------------------------------------------------------------- server


@server_app.command("start")
def server_start(
    certs: Annotated[Path, typer.Option(help="Directory of `fedchain certs ca`.")] = Path("certs"),
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the SuperLink's APIs.")
    ] = DEFAULT_SUPERLINK_PORT,
    database: Annotated[
        Path, typer.Option(help="SuperLink state: registered SuperNodes, runs.")
    ] = Path(".fedchain/superlink.db"),
    keystore: Annotated[
        Path | None,
        typer.Option(
            help="The coordinator keystore the runs sign with: its password is asked now."
        ),
    ] = None,
) -> None:
    """Coordinator: run the Flower SuperLink (TLS, SuperNode authentication) until Ctrl-C."""
    from fedchain.chain.accounts import keystore_password, load_keystore
    from fedchain.consortium.deployment import flower_env, superlink_command

    command = superlink_command(certs, host, port, database)
    password = None
    if keystore is not None:
        password = keystore_password()
        address = load_keystore(keystore, password).address
        console.print(f"runs sign as the coordinator {address} ({keystore})")
    console.print(
        f"SuperLink on {host}:{port}: TLS ({certs / 'ca.crt'}), SuperNode authentication on"
    )
    console.print("register each hospital's SuperNode key: fedchain server register HOSPITAL.pub")
    _exec(command, flower_env(password))


@server_app.command("register")
def server_register(
    public_keys: Annotated[
        list[Path], typer.Argument(help="SuperNodes' public keys (NAME.pub), one or more.")
    ],
    superlink: SuperlinkOption = DEFAULT_SUPERLINK_ADDRESS,
    ca: CaOption = DEFAULT_CA,
) -> None:
    """Coordinator: allow SuperNodes (their public keys) to connect to the SuperLink.

    Each is registered under its file's name (hospital-a.pub: hospital-a).
    """
    from fedchain.consortium.deployment import flower_env, flwr_command, write_connection

    write_connection(superlink, ca)
    for public_key in public_keys:
        command = flwr_command(
            "supernode", "register", str(public_key), CONNECTION, "--name", public_key.stem
        )
        code = subprocess.run(command, env=flower_env(), check=False).returncode
        if code != 0:
            raise fail(f"`flwr supernode register {public_key}` failed: see above", code)


@server_app.command("run")
def server_run(
    task: Annotated[
        Path, typer.Option(help="The task's run config (`fedchain task create --out`).")
    ] = Path("fedchain-task.toml"),
    superlink: SuperlinkOption = DEFAULT_SUPERLINK_ADDRESS,
    ca: CaOption = DEFAULT_CA,
    app_path: Annotated[
        Path | None, typer.Option("--app", help="The fedchain Flower App (default: this checkout).")
    ] = None,
) -> None:
    """Coordinator: run the task on the SuperLink's SuperNodes (`flwr run`), then summarise."""
    from fedchain.consortium.deployment import (
        app_dir,
        flower_env,
        flwr_command,
        read_run_config,
        write_connection,
    )

    settings = read_run_config(task)
    write_connection(superlink, ca)
    app = app_path or app_dir()
    started = time.time()
    command = flwr_command(
        "run", str(app), CONNECTION, "--run-config", str(task.resolve()), "--stream"
    )
    code = subprocess.run(command, env=flower_env(), check=False).returncode
    summary = settings.out_dir / "summary.json"
    if code != 0:
        raise fail(f"`flwr run` exited with code {code}: see its output above", code)
    if not summary.exists() or summary.stat().st_mtime < started:
        raise fail(
            f"the run wrote no {summary}: see the ServerApp's log above (`flwr log` shows it again)"
        )
    _print_summary(json.loads(summary.read_text()), summary.parent)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    table = Table(title=f"task {summary['task_id']} on chain {summary['chain'].get('chain_id')}")
    for column in ("round", "accepted", "rejected", "absent", "accuracy", "global model"):
        table.add_column(column, justify="left" if column == "global model" else "right")
    for r in summary["rounds"]:
        accuracy = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "—"
        model = (r["global_model_hash"] or "")[:14] + "…" if r["global_model_hash"] else "failed"
        table.add_row(
            str(r["round"]),
            str(r["accepted"]),
            str(r["rejected"]),
            str(r["absent"]),
            accuracy,
            model,
        )
    console.print(table)
    console.print(f"final model {summary['final_model_hash']}; artifacts in {out}")


# ---------------------------------------------------------------------- client


def client(
    data: Annotated[Path, typer.Option(help="This hospital's CSV file (it never leaves here).")],
    keystore: Annotated[
        Path, typer.Option(help="This hospital's keystore (password: prompt or env).")
    ],
    node_key: Annotated[
        Path, typer.Option(help="The SuperNode's private key (`fedchain certs node-key`).")
    ],
    superlink: SuperlinkOption = DEFAULT_SUPERLINK_ADDRESS,
    ca: CaOption = DEFAULT_CA,
    rpc_url: Annotated[
        str | None,
        typer.Option(help="A chain node of this hospital's (default: the coordinator's)."),
    ] = None,
    runtime_port: Annotated[
        int, typer.Option(help="Local port of the SuperNode's runtime API (one per SuperNode).")
    ] = 9094,
    label_column: Annotated[str, typer.Option(help="The CSV's label column.")] = "label",
) -> None:
    """Hospital: run a SuperNode whose ClientApp trains on DATA and signs with KEYSTORE."""
    from fedchain.chain.accounts import keystore_password, load_keystore
    from fedchain.consortium.deployment import flower_env, node_config, supernode_command
    from fedchain.ml.data import load_csv

    rows = load_csv(data, label_column)
    password = keystore_password()
    account = load_keystore(keystore, password)
    command = supernode_command(
        superlink, ca, node_key, node_config(data, keystore, rpc_url), runtime_port
    )
    console.print(f"data       {data}: {len(rows)} examples, {rows.input_shape[0]} features")
    console.print(f"signs as   {account.address} ({keystore})")
    console.print(f"SuperLink  {superlink} over TLS (CA {ca}), authenticated by {node_key}")
    console.print("the data and the key stay here: only updates and signed commitments leave")
    _exec(command, flower_env(password))


def _exec(command: list[str], env: dict[str, str]) -> None:
    """Become the Flower process (same PID: Ctrl-C and signals reach it directly)."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


# The consortium commands on the ``fedchain`` app.
app.add_typer(certs_app, name="certs")
app.add_typer(task_app, name="task")
app.add_typer(participant_app, name="participant")
app.add_typer(server_app, name="server")
app.command("client")(client)
account_app.command("fund")(account_fund)
