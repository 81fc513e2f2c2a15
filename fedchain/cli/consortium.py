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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fedchain.chain.records import TaskTerms
from fedchain.cli._common import DEFAULT_RPC_URL, account_app, app, console, fail, signer
from fedchain.consortium.deployment import (
    CONNECTION,
    DEFAULT_SUPERLINK_ADDRESS,
    DEFAULT_SUPERLINK_PORT,
)
from fedchain.errors import FedchainError
from fedchain.settings import RunSettings

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
#: The coordinator's app-signing key in a test consortium's directory (and its .pub).
APP_KEY = "app.key"
DEFAULT_SIGNATURES = Path(".fedchain/app-signatures")
DEFAULT_COORDINATOR_DIR = Path(".fedchain/coordinator")

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
    from fedchain.consortium.app_signing import create_app_key
    from fedchain.consortium.certs import create_consortium

    made = create_consortium(directory, host or [], node, days)
    app_key = create_app_key(directory / APP_KEY)
    console.print(f"CA certificate      {made.ca_cert}")
    console.print(f"SuperLink TLS cert  {made.superlink_cert} (key {made.superlink_key})")
    for name, key in made.node_keys.items():
        console.print(f"SuperNode {name:<9} {key} and {key.with_suffix('.pub')}")
    console.print(f"app-signing key     {directory / APP_KEY} and {app_key} (hospitals pin it)")


@certs_app.command("app-key")
def certs_app_key(
    path: Annotated[Path, typer.Argument(help="Private key file to create (mode 600).")],
) -> None:
    """Coordinator: create the key that signs every app bundle (PATH and PATH.pub, Ed25519)."""
    from fedchain.consortium.app_signing import create_app_key

    public = create_app_key(path)
    console.print(f"private key {path} (mode 600: `fedchain server run --app-key` signs with it)")
    console.print(f"public key  {public} (every hospital pins it: `fedchain client --app-key`)")


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


def _reader(deployment: Path, rpc_url: str | None) -> Any:
    """A gateway that only reads (its account, made here, never signs anything)."""
    from eth_account import Account

    from fedchain.chain.backends import RpcChain
    from fedchain.chain.deployments import Deployment
    from fedchain.chain.gateway import LedgerGateway

    loaded = Deployment.load(deployment)
    url = rpc_url or loaded.rpc_url or DEFAULT_RPC_URL
    return LedgerGateway(RpcChain(url).w3, loaded, Account.create()), url


#: `task create`'s defaults: the simulation's settings and the contract's task terms.
_TASK_DEFAULT = RunSettings()
_TERMS_DEFAULT = TaskTerms()


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
    rounds: Annotated[
        int, typer.Option(help="Rounds of the run (funding: budget x rounds).")
    ] = _TASK_DEFAULT.num_rounds,
    budget: Annotated[str, typer.Option(help="Reward tokens per round.")] = str(
        _TASK_DEFAULT.reward_per_round // 10**18
    ),
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
    ] = _TASK_DEFAULT.label_column,
    features: Annotated[
        str,
        typer.Option(
            help="Feature columns a,b,c of every CSV (default: the holdout's other numeric ones)."
        ),
    ] = "",
    model: Annotated[
        str, typer.Option(help="auto, logreg, mlp, cnn, mlp-1m or mlp-10m.")
    ] = _TASK_DEFAULT.model,
    strategy: Annotated[
        str, typer.Option(help="fedavg, fedprox, fedadam, fedmedian, ..., cclip, fltrust.")
    ] = _TASK_DEFAULT.strategy,
    pre_aggregation: Annotated[
        str, typer.Option(help="nnm or bucketing:S, a step before the robust rule.")
    ] = _TASK_DEFAULT.pre_aggregation,
    local_epochs: Annotated[
        int, typer.Option(help="Local epochs per round.")
    ] = _TASK_DEFAULT.local_epochs,
    lr: Annotated[float, typer.Option(help="Local learning rate.")] = _TASK_DEFAULT.learning_rate,
    batch_size: Annotated[int, typer.Option(help="Local batch size.")] = _TASK_DEFAULT.batch_size,
    standardize: Annotated[
        str,
        typer.Option(
            help="local (each site on its own rows) or task (every site with the holdout's "
            "statistics, recorded in the spec)."
        ),
    ] = _TASK_DEFAULT.standardize,
    contribution: Annotated[
        str, typer.Option(help="data-size, loo, shapley, gtg or cosine.")
    ] = _TASK_DEFAULT.contribution,
    reward_full_gain: Annotated[
        float,
        typer.Option(help="The holdout gain that earns a round's whole budget (0: always all)."),
    ] = _TASK_DEFAULT.reward_full_gain,
    seed: Annotated[
        int, typer.Option(help="Seed of the initial model and the scoring.")
    ] = _TASK_DEFAULT.seed,
    min_nodes: Annotated[
        int, typer.Option(help="SuperNodes needed to start a round.")
    ] = _TASK_DEFAULT.min_train_nodes,
    min_round_duration: Annotated[
        int, typer.Option(help="Seconds the ledger makes a round last at least (0: one block).")
    ] = _TERMS_DEFAULT.min_round_duration,
    challenge_period: Annotated[
        int,
        typer.Option(help="Merkle rounds: seconds a root can be challenged before it pays."),
    ] = _TERMS_DEFAULT.challenge_period,
    claim_period: Annotated[
        int,
        typer.Option(
            help="Seconds after the task closes that rewards stay claimable before funders "
            "can sweep them."
        ),
    ] = _TERMS_DEFAULT.claim_period,
    run_out: Annotated[
        Path, typer.Option(help="Where the ServerApp writes the run's artifacts.")
    ] = Path("runs/consortium"),
    out: Annotated[Path, typer.Option(help="The task's run config file to write.")] = Path(
        "fedchain-task.toml"
    ),
    coordinator_dir: Annotated[
        Path, typer.Option(help="Your private task files (keystore, holdout, artifact paths).")
    ] = DEFAULT_COORDINATOR_DIR,
) -> None:
    """Coordinator: create and fund a task on the ledger; write its Flower run config."""
    from fedchain.consortium.deployment import (
        coordinator_file,
        create_task,
        public_settings,
        settings_from_spec,
        token_amount,
        write_coordinator_file,
        write_run_config,
    )
    from fedchain.federation.workload import site_columns
    from fedchain.ml.data import absolute_dataset_spec
    from fedchain.task import SITES_PARTITION, TaskSpec, decode_names, encode_names

    if keystore is None and devnet_account not in (None, 0):
        raise fail(
            "on a devnet the ServerApp signs with DEVNET TEST key 0: use --devnet-account 0 "
            "or --keystore",
            2,
        )
    if out.exists():
        raise fail(f"{out} exists: choose another --out, a run config is never lost", 2)
    try:  # the options and the holdout checked as the task will read them, before anything
        options = RunSettings(  # is sent
            num_rounds=rounds,
            dataset=dataset,
            partition=SITES_PARTITION,
            model=model,
            strategy=strategy.lower(),
            pre_aggregation=pre_aggregation,
            local_epochs=local_epochs,
            learning_rate=lr,
            batch_size=batch_size,
            standardize=standardize,
            min_train_nodes=min_nodes,
            seed=seed,
            contribution=contribution,
            reward_full_gain=reward_full_gain,
            holdout=absolute_dataset_spec(holdout),
            label_column=label_column,
            features=encode_names(decode_names(features)),
        )
        terms = TaskTerms(min_round_duration, challenge_period, claim_period)
        if spec is None:
            site_columns(options)
    except FedchainError as exc:
        raise fail(str(exc), 2) from None
    gateway, url = _gateway(deployment, rpc_url, keystore, devnet_account)
    decimals = gateway.token_decimals(reward_token)
    per_round = token_amount(budget, decimals)
    pool = token_amount(fund, decimals) if fund is not None else per_round * rounds
    settings = options.with_changes(
        chain="rpc",
        rpc_url=url,
        deployment=str(deployment.resolve()),
        reward_per_round=per_round,
        out=str(run_out.resolve()),
        keystore=str(keystore.resolve()) if keystore is not None else "",
    )
    if spec is not None:
        settings = settings_from_spec(TaskSpec.load(spec), settings)
    settings = site_columns(settings)  # the sites read the holdout's columns and classes
    created = create_task(gateway, settings, fund=pool, token=reward_token, terms=terms)
    ledger = gateway.deployment
    header = (
        f"fedchain task {created.task_id} on chain {ledger.chain_id}, ledger {ledger.ledger}.\n"
        f"Its Flower run config: submit it with `fedchain server run --task {out}`.\n"
        "Every SuperNode receives it: it holds no secret and no path of the coordinator's\n"
        f"(those are in {coordinator_file(coordinator_dir, created.task_id)}, mode 600)."
    )
    write_coordinator_file(coordinator_dir, created.settings)
    write_run_config(out, public_settings(created.settings), header)
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


NodeDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Your node's directory: its consent policy (default .fedchain/<keystore name>)."
    ),
]


@task_app.command("show")
def task_show(
    task_id: Annotated[int | None, typer.Option("--task-id", help="The task's id.")] = None,
    task: Annotated[
        Path | None, typer.Option(help="The task's run config (fedchain-task.toml).")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(help="The task's spec file (default: the .json beside the run config)."),
    ] = None,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
) -> None:
    """Anyone: a task as the chain records it, and its spec checked against the chain's hash.

    The chain holds the spec's SHA-256; the spec itself is the file the coordinator publishes
    (``fedchain-task.json``). It is shown only if it hashes to the chain's spec hash.
    """
    from fedchain.chain.records import TaskId
    from fedchain.task import TaskSpec, TaskSpecError

    if task_id is None and task is None:
        raise fail("name the task: --task-id N or --task fedchain-task.toml", 2)
    if task_id is None and task is not None:
        task_id = _run_config(task).task_id
    spec_file = spec or (task.with_suffix(".json") if task is not None else None)
    gateway, url = _reader(deployment, rpc_url)
    record = gateway.task(TaskId(int(task_id or 0)))
    if not record.coordinator or int(record.coordinator, 16) == 0:
        raise fail(f"no task {task_id} on the ledger {gateway.deployment.ledger} at {url}", 1)
    console.print(
        f"task {task_id} on chain {gateway.deployment.chain_id}, ledger {gateway.deployment.ledger}"
    )
    console.print(f"coordinator   {record.coordinator}")
    console.print(f"status        {record.status.name.lower()}, last round {record.last_round}")
    console.print(f"spec hash     0x{record.spec_hash.hex()} (on chain)")
    console.print(f"members       {record.member_count}")
    if spec_file is None:
        console.print("spec          not shown: give --spec FILE (the coordinator publishes it)")
        return
    try:
        loaded = TaskSpec.load(spec_file)
    except TaskSpecError as exc:
        raise fail(str(exc), 2) from None
    if loaded.spec_hash() != record.spec_hash:
        raise fail(
            f"{spec_file} hashes to 0x{loaded.spec_hash().hex()}, not the chain's spec hash: "
            "it is not this task's spec; ask the coordinator for the published one",
            1,
        )
    console.print(f"spec          {spec_file}: matches the chain's hash")
    for name, value in json.loads(loaded.canonical()).items():
        console.print(f"  {name:<20} {value}")


def _run_config(path: Path) -> Any:
    from fedchain.consortium.deployment import read_run_config

    try:
        return read_run_config(path)
    except FedchainError as exc:
        raise fail(str(exc), 2) from None


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
    spec: Annotated[
        Path | None,
        typer.Option(help="The task's spec you reviewed (default: the .json beside --task)."),
    ] = None,
    node_dir: NodeDirOption = None,
) -> None:
    """Hospital: join a task with your own consent to its spec, your dataset size and the
    SHA-256 of your training data (no commitment of yours may claim more examples); your node's
    consent policy then lets it train for this task, and no other."""
    from fedchain.chain.records import TaskId
    from fedchain.federation.consent_policy import (
        POLICY_FILE,
        ConsentEntry,
        node_directory,
        record_consent,
    )
    from fedchain.federation.workload import site_data
    from fedchain.ml.data import dataset_hash
    from fedchain.task import TaskSpec, TaskSpecError

    settings = _run_config(task)
    spec_file = spec or task.with_suffix(".json")
    try:
        reviewed = TaskSpec.load(spec_file)
        rows = site_data(
            str(data.resolve()),
            settings.label_column,
            None,
            settings.features,
            settings.classes,
            standardize=settings.standardize,
            standardize_stats=settings.standardize_stats,
        )
    except TaskSpecError as exc:
        raise fail(f"{exc}: review the task's spec (`fedchain task show`) first", 2) from None
    except FedchainError as exc:
        raise fail(str(exc), 2) from None
    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    task_id = TaskId(settings.task_id)
    size, digest = len(rows), dataset_hash(rows)
    result = gateway.join_task(task_id, size, digest, spec_hash=reviewed.spec_hash())
    done = "already a member" if result.already_recorded else f"joined (tx {result.tx_hash})"
    console.print(f"{gateway.account.address} {done} task {task_id}")
    console.print(f"dataset size {size}, data hash 0x{digest.hex()}")
    policy = node_directory(keystore or Path("devnet"), node_dir) / POLICY_FILE
    ledger = gateway.deployment
    entry = ConsentEntry(
        ledger.chain_id, ledger.ledger, int(task_id), gateway.account.address, reviewed
    )
    record_consent(policy, entry)
    console.print(
        f"consent policy {policy}: your node trains for task {task_id} "
        f"(spec 0x{entry.spec_hash.hex()})"
    )


@task_app.command("leave")
def task_leave(
    task_id: TaskIdOption,
    deployment: DeploymentOption = DEFAULT_DEPLOYMENT,
    rpc_url: RpcUrlOption = None,
    keystore: ParticipantKeystore = None,
    devnet_account: DevnetOption = None,
    node_dir: NodeDirOption = None,
) -> None:
    """Hospital: leave a task from its first uncommitted round on (final for the task;
    rewards of committed rounds stay yours); your node refuses its rounds from then on."""
    from fedchain.chain.records import TaskId
    from fedchain.federation.consent_policy import POLICY_FILE, node_directory, withdraw_consent

    gateway, _ = _gateway(deployment, rpc_url, keystore, devnet_account)
    result = gateway.leave_task(TaskId(task_id))
    left = gateway.membership(TaskId(task_id), gateway.account.address).left_round
    done = "had left already" if result.already_recorded else f"left (tx {result.tx_hash})"
    console.print(f"{gateway.account.address} {done}: not a member from round {left}")
    policy = node_directory(keystore or Path("devnet"), node_dir) / POLICY_FILE
    ledger = gateway.deployment
    if withdraw_consent(policy, ledger.chain_id, ledger.ledger, task_id):
        console.print(f"consent policy {policy}: task {task_id} removed")


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


PasswordFileOption = Annotated[
    Path | None,
    typer.Option(help="A file (mode 600) holding the keystore password (default: a prompt)."),
]


@server_app.command("start")
def server_start(
    certs: Annotated[Path, typer.Option(help="Directory of `fedchain certs ca`.")] = Path("certs"),
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the SuperLink's APIs.")
    ] = DEFAULT_SUPERLINK_PORT,
    database: Annotated[
        Path, typer.Option(help="SuperLink state: registered SuperNodes, runs (mode 600).")
    ] = Path(".fedchain/superlink.db"),
    keystore: Annotated[
        Path | None,
        typer.Option(
            help="The coordinator keystore the runs sign with: its password is asked now."
        ),
    ] = None,
    password_file: PasswordFileOption = None,
    app_signatures: Annotated[
        Path, typer.Option(help="Where `fedchain server run` puts the bundles' signatures.")
    ] = DEFAULT_SIGNATURES,
    coordinator_dir: Annotated[
        Path, typer.Option(help="The private task files of `fedchain task create`.")
    ] = DEFAULT_COORDINATOR_DIR,
) -> None:
    """Coordinator: run the Flower SuperLink (TLS, SuperNode authentication, control plane on
    this machine only, signed bundles) until Ctrl-C."""
    from fedchain.chain.accounts import load_keystore
    from fedchain.consortium.deployment import (
        COORDINATOR_DIR_ENV,
        flower_env,
        private_directory,
        superlink_command,
    )

    command = superlink_command(certs, host, port, database, app_signatures)
    secret: _Secret | None = None
    if keystore is not None:
        secret = _secret(password_file, database.parent)
        address = load_keystore(keystore, secret.password).address
        console.print(f"runs sign as the coordinator {address} ({keystore})")
    console.print(
        f"SuperLink on {host}:{port}: TLS ({certs / 'ca.crt'}), SuperNode authentication on; "
        "its control plane (flwr run, supernode register) serves this machine only"
    )
    console.print("register each hospital's SuperNode key: fedchain server register HOSPITAL.pub")
    env = flower_env(secret.path if secret else None)
    env[COORDINATOR_DIR_ENV] = str(private_directory(coordinator_dir))
    _run_until_stopped(command, env, secret)


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
    app_key: Annotated[
        Path | None,
        typer.Option(help="Your app-signing key: the hospitals run only bundles it signed."),
    ] = None,
    app_signatures: Annotated[
        Path, typer.Option(help="The SuperLink's signature directory (`server start`).")
    ] = DEFAULT_SIGNATURES,
    coordinator_dir: Annotated[
        Path, typer.Option(help="The private task files of `fedchain task create`.")
    ] = DEFAULT_COORDINATOR_DIR,
) -> None:
    """Coordinator: run the task on the SuperLink's SuperNodes (`flwr run`), then summarise."""
    from fedchain.consortium.app_signing import sign_bundle
    from fedchain.consortium.deployment import (
        app_dir,
        flower_env,
        flwr_command,
        read_run_config,
        write_connection,
    )

    settings = _coordinator_settings(read_run_config(task), coordinator_dir)
    write_connection(superlink, ca)
    app = app_path or app_dir()
    if app_key is not None:
        from flwr.cli.build import build_fab_from_disk

        signed = sign_bundle(build_fab_from_disk(app.resolve()), app_key, app_signatures)
        console.print(f"app bundle signed with {app_key}: {signed.stem}")
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


def _coordinator_settings(settings: Any, directory: Path) -> Any:
    from fedchain.consortium.deployment import with_coordinator_paths

    try:
        return with_coordinator_paths(settings, directory)
    except FedchainError as exc:
        raise fail(str(exc), 2) from None


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
        Path, typer.Option(help="This hospital's keystore (password: prompt, env or file).")
    ],
    node_key: Annotated[
        Path, typer.Option(help="The SuperNode's private key (`fedchain certs node-key`).")
    ],
    app_key: Annotated[
        Path,
        typer.Option(
            help="The coordinator's app key (.pub) you pinned: only bundles it signed run."
        ),
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
    node_dir: NodeDirOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Hospital: run a SuperNode whose ClientApp trains on DATA and signs with KEYSTORE, for
    the tasks of its consent policy only (`fedchain task join`), running only app bundles the
    coordinator's pinned key signed."""
    from fedchain.chain.accounts import load_keystore
    from fedchain.consortium.app_signing import write_trusted_entities
    from fedchain.consortium.deployment import (
        flower_env,
        node_config,
        private_directory,
        supernode_command,
    )
    from fedchain.federation.consent_policy import POLICY_FILE, ConsentPolicy, node_directory
    from fedchain.ml.data import load_csv

    rows = load_csv(data, label_column)
    directory = private_directory(node_directory(keystore, node_dir))
    policy = directory / POLICY_FILE
    trusted = write_trusted_entities(app_key, directory)
    secret = _secret(password_file, directory)
    account = load_keystore(keystore, secret.password)
    config = node_config(data, keystore, rpc_url, policy)
    command = supernode_command(
        superlink, ca, node_key, config, runtime_port, trusted_entities=trusted
    )
    tasks = [e.task_id for e in ConsentPolicy.load(policy).entries]
    console.print(f"data       {data}: {len(rows)} examples, {rows.input_shape[0]} features")
    console.print(f"signs as   {account.address} ({keystore})")
    console.print(f"consents   tasks {tasks or 'none yet'} ({policy}); every other run is refused")
    console.print(f"trusts     app bundles signed by {app_key} ({trusted})")
    console.print(f"SuperLink  {superlink} over TLS (CA {ca}), authenticated by {node_key}")
    console.print("the data and the key stay here: only updates and signed commitments leave")
    _run_until_stopped(command, flower_env(secret.path), secret)


@dataclass(frozen=True)
class _Secret:
    """The keystore password, and the private file a Flower process's apps read it from."""

    password: str
    path: Path
    made_here: bool


#: Set when this command started itself again to drop the password from its environment: the
#: path of the password file it wrote then (removed when the Flower process ends).
_MADE_ENV = "FEDCHAIN_PASSWORD_FILE_MADE"


def _secret(password_file: Path | None, directory: Path) -> _Secret:
    """Read the password once (a file of mode 600, else a prompt) for a long-running process.

    Without ``--password-file`` it is written to a file of its own (mode 600, in a private
    directory), removed when the Flower process ends. A password found in the environment is
    moved to such a file and this command starts again without it: the initial environment of
    a process stays readable (``/proc/PID/environ``) for as long as it runs.
    """
    from fedchain.chain.accounts import PASSWORD_ENV, keystore_password, password_from_file

    made = os.environ.pop(_MADE_ENV, None)
    try:
        if password_file is not None:
            password = password_from_file(password_file)
            return _Secret(password, password_file, made_here=made == str(password_file))
        password = keystore_password()
    except FedchainError as exc:
        raise fail(str(exc), 2) from None
    path = _write_password(password, directory)
    if os.environ.pop(PASSWORD_ENV, None) is not None:
        _again_without_the_password(path)
    return _Secret(password, path, made_here=True)


def _write_password(password: str, directory: Path) -> Path:
    path = directory / f"keystore-password-{os.getpid()}"  # one per process using the directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    return path


def _again_without_the_password(path: Path) -> None:
    """Start this command again (same PID) with ``--password-file`` and a clean environment."""
    import sys

    env = {**os.environ, _MADE_ENV: str(path)}
    argv = [sys.executable, "-m", "fedchain", *sys.argv[1:], "--password-file", str(path)]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


def _run_until_stopped(command: list[str], env: dict[str, str], secret: _Secret | None) -> None:
    """Run the Flower process with private files (umask 077) until it ends; SIGTERM is passed
    on; the password file made here is removed."""
    import signal
    import sys

    sys.stdout.flush()
    os.umask(0o077)
    try:
        child = subprocess.Popen(command, env=env)  # Ctrl-C reaches it: same process group
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        code = child.wait()
    finally:
        if secret is not None and secret.made_here:
            secret.path.unlink(missing_ok=True)
    raise typer.Exit(code if code >= 0 else 128 - code)


# The consortium commands on the ``fedchain`` app.
app.add_typer(certs_app, name="certs")
app.add_typer(task_app, name="task")
app.add_typer(participant_app, name="participant")
app.add_typer(server_app, name="server")
app.command("client")(client)
account_app.command("fund")(account_fund)
