"""The coordinator's side of a run: chain, task, participants, the wrapped strategy, artifacts.

``server_app.py`` calls :func:`run_federation` from its main; ``fedchain simulate`` runs that
ServerApp under Flower's simulation engine.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from flwr.app import ConfigRecord
from flwr.serverapp import Grid

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import AnvilChain, ChainBackend, EmbeddedChain, RpcChain
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.deploy import deploy
from fedchain.chain.deployments import Deployment
from fedchain.chain.errors import ChainError
from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.chain.queue import WriteQueue
from fedchain.chain.records import TaskId, privacy_task_terms
from fedchain.federation.flower_strategies import build_strategy
from fedchain.federation.holdout_eval import HoldoutEvaluator
from fedchain.federation.ledger_strategy import LedgerLink, LedgerStrategy
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.participant import FIRST_PARTICIPANT_KEY, simulated_consent
from fedchain.federation.resume import ResumeError, ResumePoint, RunJournal, find_resume_point
from fedchain.federation.round_report import RoundReport
from fedchain.federation.run_artifacts import RunRecord, read_reward_token, write_artifacts
from fedchain.federation.workload import (
    Holdout,
    holdout,
    initial_weights,
    model_name,
    spec_data,
)
from fedchain.hashing import ModelHash, model_hash, save_canonical, to_hex
from fedchain.record_keys import CONFIG_NUM_CLASSES
from fedchain.settings import RunSettings
from fedchain.store import run_store
from fedchain.task import TaskSpec, privacy_fields

__all__ = ["ChainSession", "TaskMismatchError", "check_resume", "run_federation", "task_spec"]

log = logging.getLogger(__name__)

#: Chains whose keys are the public DEVNET TEST keys (anvil, Hardhat, ganache ids).
_DEVNET_CHAIN_IDS = frozenset({31337, 1337})
_PARTICIPANT_GAS_WEI = 10**18
#: Organisations registered (and consents relayed) per transaction: a registration is about
#: 100,000 gas (its name and metadata hash stored), a relayed consent about 60,000, so 100 take
#: at most 10 M gas, a third of a 30 M gas block (1,000 in one transaction would exceed any block).
REGISTRATION_BATCH = 100
#: The name a simulation's coordinator is registered under (so the record names every party).
COORDINATOR_NAME = "Simulation coordinator"


class TaskMismatchError(ChainError, ValueError):
    """The run config does not describe the existing task it names (task-id)."""


@dataclass
class ChainSession:
    """A chain reached for one run: the backend, the coordinator's gateway, the clients' URL."""

    backend: ChainBackend
    gateway: LedgerGateway
    client_rpc_url: str
    bridge: RpcBridge | None = None
    devnet: bool = True
    events: list[LedgerEvent] = field(default_factory=list)

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
        self.backend.close()


@contextlib.contextmanager
def _write_queue(session: ChainSession | None) -> Iterator[WriteQueue]:
    # A node can lose what it mined (a devnet killed between two saves of its state): the queue
    # then checks, while idle, that the node still holds its last write. The embedded chain is
    # in this process and cannot.
    probe = None
    if session is not None and session.backend.kind != "embedded":
        probe = session.gateway.check_durable
    queue = WriteQueue(probe=probe)
    try:
        yield queue
    finally:
        queue.close()


def _coordinator_key(settings: RunSettings) -> LocalAccount:
    """The coordinator's keystore (password from FEDCHAIN_KEYSTORE_PASSWORD on the coordinator's
    machine), or DEVNET TEST key 0 for devnets and simulations."""
    if settings.keystore:
        from fedchain.chain.accounts import environment_password, load_keystore

        hint = "start the SuperLink with `fedchain server start --keystore FILE`, which asks"
        return load_keystore(Path(settings.keystore), environment_password(hint))
    return devnet_account(0)  # DEVNET TEST key 0: devnets and simulations only


@contextlib.contextmanager
def open_chain(settings: RunSettings, resume: bool = False) -> Iterator[ChainSession | None]:
    """Reach the chain the settings name, deploy if needed; close it afterwards.

    With ``resume``, reach the run's own chain again (the saved embedded chain, the anvil state
    file, or the node) and its deployment, instead of deploying.
    """
    if not settings.ledger_enabled:
        yield None
        return
    session = _reconnect(settings) if resume else _connect(settings)
    try:
        yield session
    finally:
        session.close()


#: Where a run keeps its chain: the embedded chain's journal, anvil's state file.
_CHAIN_DIR = "chain"
_ANVIL_STATE = "anvil-state.json"
_DEPLOYMENT_FILE = "deployment.json"


def _connect(settings: RunSettings) -> ChainSession:
    coordinator = _coordinator_key(settings)
    chain_dir = settings.out_dir / _CHAIN_DIR
    if settings.chain in ("embedded", "anvil") and chain_dir.exists():
        shutil.rmtree(chain_dir)  # a new run starts a new chain
    if settings.chain == "embedded":
        embedded = EmbeddedChain(journal=chain_dir)
        gateway = deploy(embedded.w3, coordinator)
        bridge = RpcBridge(embedded.w3)
        return ChainSession(embedded, gateway, bridge.url, bridge)
    if settings.chain == "anvil":
        # Its state file (dumped every second and on exit) lets `--resume` find the chain again.
        chain_dir.mkdir(parents=True)
        anvil = AnvilChain(state_file=chain_dir / _ANVIL_STATE).start()
        return ChainSession(anvil, deploy(anvil.w3, coordinator), anvil.url)
    rpc = RpcChain(settings.rpc_url)
    chain_id = int(rpc.w3.eth.chain_id)
    if chain_id not in _DEVNET_CHAIN_IDS and not settings.keystore:
        raise ChainError(
            f"chain {chain_id} at {settings.rpc_url} is not a devnet: simulations sign with public "
            "DEVNET TEST keys; run the coordinator with its keystore instead"
        )
    if settings.deployment:
        gateway = LedgerGateway(rpc.w3, Deployment.load(Path(settings.deployment)), coordinator)
    else:
        gateway = deploy(rpc.w3, coordinator)
    return ChainSession(rpc, gateway, settings.rpc_url)


def _reconnect(settings: RunSettings, keep: bool = True) -> ChainSession:
    """The chain of the run in ``settings.out``, as it was left, with its deployment.

    Without ``keep`` the chain is only read: a saved embedded chain records nothing new.
    """
    coordinator = _coordinator_key(settings)
    out = settings.out_dir
    if not (out / _DEPLOYMENT_FILE).is_file():
        raise ResumeError(f"nothing to resume in {out}: no {_DEPLOYMENT_FILE}")
    deployment = Deployment.load(out / _DEPLOYMENT_FILE)
    if settings.chain == "embedded":
        embedded = EmbeddedChain.replay(out / _CHAIN_DIR, resume=keep)
        gateway = LedgerGateway(embedded.w3, deployment, coordinator)
        if not keep:
            return ChainSession(embedded, gateway, "")
        bridge = RpcBridge(embedded.w3)
        return ChainSession(embedded, gateway, bridge.url, bridge)
    if settings.chain == "anvil":
        state = out / _CHAIN_DIR / _ANVIL_STATE
        if not state.is_file():
            raise ChainError(f"the run's anvil state file {state} is gone: the run cannot resume")
        anvil = AnvilChain(state_file=state, save_state=keep).start()
        return ChainSession(anvil, LedgerGateway(anvil.w3, deployment, coordinator), anvil.url)
    rpc = RpcChain(settings.rpc_url)
    return ChainSession(rpc, LedgerGateway(rpc.w3, deployment, coordinator), settings.rpc_url)


def check_resume(settings: RunSettings) -> ResumePoint:
    """Where the run in ``settings.out`` would go on, read from its chain and checked (its head
    model against the store, its journal against the chain); nothing is written.

    Raises
    ------
    ResumeError
        When the run cannot be resumed, with the reason.
    """
    if not settings.ledger_enabled:
        raise ResumeError("a run without a ledger (--chain none) keeps no record to resume from")
    hold = holdout(settings)
    initial = initial_weights(settings, hold.input_shape, hold.num_classes)
    spec = _spec(settings, hold, model_hash(initial))
    session = _reconnect(settings, keep=False)
    try:
        return find_resume_point(settings.out_dir, session.gateway, spec.spec_hash())
    finally:
        session.close()


def _prepare_task(
    session: ChainSession,
    settings: RunSettings,
    spec: TaskSpec,
    initial: ModelHash,
    queue: WriteQueue,
) -> TaskId:
    """Create the task; queue its funding, the simulated participants' registration and their
    joining the task.

    With ``task-id`` set (a consortium: ``fedchain task create`` made and funded the task,
    ``fedchain participant add`` registered the hospitals, each joined with
    ``fedchain task join``), check that the chain holds that task
    for this spec, untouched, and use it.
    """
    gateway = session.gateway
    if settings.task_id:
        return _existing_task(gateway, settings, spec, initial)
    terms = privacy_task_terms(spec.privacy)  # the privacy cap, with DP terms
    task_id, _ = gateway.create_task(
        spec.spec_hash(), initial, settings.reward_per_round, terms=terms
    )
    queue.remember(
        partial(
            gateway.ensure_task,
            task_id,
            spec.spec_hash(),
            initial,
            settings.reward_per_round,
            terms=terms,
        )
    )
    _prepare_participants(session, settings, task_id, spec.spec_hash(), queue)
    return task_id


def _prepare_participants(
    session: ChainSession,
    settings: RunSettings,
    task_id: TaskId,
    spec_hash: bytes,
    queue: WriteQueue,
) -> None:
    """Queue the task's funding, the simulated organisations' registration (the coordinator's
    account is also the registrar in a simulation) and their consents to the task (each signed
    by its participant's own key, relayed in batches); each is recognised as done when the chain
    already holds it (a resumed run queues them again)."""
    gateway = session.gateway
    if settings.reward_per_round:
        budget = settings.reward_per_round * settings.num_rounds
        queue.submit(lambda: gateway.ensure_funded(task_id, budget))
    ids = range(settings.num_clients)
    addresses = [devnet_account(FIRST_PARTICIPANT_KEY + p).address for p in ids]  # DEVNET TEST
    organisations = [
        (a, simulated_name(p), _org_hash(p), "") for p, a in zip(ids, addresses, strict=True)
    ]
    consents = [simulated_consent(settings, p, gateway.domain, task_id, spec_hash) for p in ids]
    # The coordinator's own account is registered too, only to be named in the run's record.
    coordinator = (gateway.account.address, COORDINATOR_NAME, _org_hash(-1), "")
    for start in range(0, len(addresses), REGISTRATION_BATCH):
        end = start + REGISTRATION_BATCH
        batch = [coordinator, *organisations[start:end]] if start == 0 else organisations[start:end]
        queue.submit(partial(gateway.register_organisations, batch))
        queue.submit(partial(gateway.join_task_for, task_id, consents[start:end]))
    if settings.direct:
        for address in addresses:
            queue.submit(partial(gateway.ensure_balance, address, _PARTICIPANT_GAS_WEI))


def _existing_task(
    gateway: LedgerGateway, settings: RunSettings, spec: TaskSpec, initial: ModelHash
) -> TaskId:
    task_id = TaskId(settings.task_id)
    task = gateway.task(task_id)
    if task.spec_hash == b"\x00" * 32:
        raise TaskMismatchError(
            f"no task {task_id} on the ledger {gateway.deployment.ledger}: check task-id and "
            "deployment, or create the task with `fedchain task create`"
        )
    if task.coordinator.lower() != gateway.account.address.lower():
        raise TaskMismatchError(
            f"task {task_id} is coordinated by {task.coordinator}, but this run signs as "
            f"{gateway.account.address}: set keystore to that coordinator's keystore"
        )
    if task.reward_per_round != settings.reward_per_round:
        raise TaskMismatchError(
            f"task {task_id} pays {task.reward_per_round} per round, the run config "
            f"reward-per-round is {settings.reward_per_round}: use the task's run config"
        )
    if task.spec_hash != spec.spec_hash():
        raise TaskMismatchError(
            f"task {task_id} on chain has spec hash {to_hex(task.spec_hash)}, but this run config "
            f"describes {to_hex(spec.spec_hash())}: run with the run config `fedchain task create` "
            "wrote for this task, or create a new task"
        )
    terms = privacy_task_terms(spec.privacy)
    cap = terms.epsilon_cap if terms is not None else 0
    if task.epsilon_cap != cap:
        raise TaskMismatchError(
            f"task {task_id} on chain has a privacy cap of {task.epsilon_cap} micro-epsilon, the "
            f"spec's DP terms give {cap}: create the task with `fedchain task create`"
        )
    if task.last_round != 0 or task.head_model_hash != initial:
        raise TaskMismatchError(
            f"task {task_id} already has rounds up to {task.last_round}: create a new task with "
            "`fedchain task create`"
        )
    return task_id


def _roles(settings: RunSettings) -> dict[str, str]:
    """Each simulated participant's role: honest, or the attack it plays."""
    from fedchain.attacks import parse_attack

    plan = parse_attack(settings.attack)
    roles: dict[str, str] = {}
    for partition_id in range(settings.num_clients):
        address = devnet_account(FIRST_PARTICIPANT_KEY + partition_id).address
        roles[address] = plan.role(partition_id, settings.num_clients) if plan else "honest"
    return roles


def simulated_name(partition_id: int) -> str:
    """The registered name of simulated participant ``partition_id``'s organisation."""
    return f"Simulated site {partition_id}"


def _org_hash(partition_id: int) -> bytes:
    import hashlib

    return hashlib.sha256(f"simulated organisation {partition_id}".encode()).digest()


def _spec(settings: RunSettings, hold: Holdout, initial: ModelHash) -> TaskSpec:
    return TaskSpec(
        **spec_data(settings),  # the data by its hash, never by its path
        model=model_name(settings, hold.input_shape),
        num_classes=hold.num_classes,
        input_shape=hold.input_shape,
        strategy=settings.strategy,
        local_epochs=settings.local_epochs,
        learning_rate=settings.learning_rate,
        batch_size=settings.batch_size,
        proximal_mu=settings.proximal_mu,
        holdout_hash=to_hex(hold.data_hash),
        holdout_fraction=settings.holdout_fraction,
        initial_model_hash=to_hex(initial),
        partition=settings.partition,
        seed=settings.seed,
        contribution=settings.contribution,
        reward_full_gain=settings.reward_full_gain,
        pre_aggregation=settings.pre_aggregation,
        **privacy_fields(settings),  # the DP terms; none without DP (the spec keeps its bytes)
    )


def run_federation(
    grid: Grid,
    settings: RunSettings,
    on_round: Callable[[RoundReport], None] | None = None,
    resume: bool = False,
) -> RunRecord:
    """Run every round of the federation, recording each on chain; write the run's artifacts.

    With ``resume``, go on with the run in ``settings.out`` from the last round its chain holds
    (see :mod:`fedchain.federation.resume`); the record written at the end covers every round.
    """
    num_nodes = len(list(grid.get_node_ids()))
    if num_nodes and num_nodes != settings.num_clients:
        log.warning(
            "%d nodes connected, %d clients configured: using %d",
            num_nodes,
            settings.num_clients,
            num_nodes,
        )
        settings = settings.with_changes(num_clients=max(num_nodes, 2))
    out = settings.out_dir
    hold = holdout(settings)
    initial = initial_weights(settings, hold.input_shape, hold.num_classes)
    spec = _spec(settings, hold, model_hash(initial))
    if resume and not settings.ledger_enabled:
        raise ResumeError("a run without a ledger (--chain none) keeps no record to resume from")
    out.mkdir(parents=True, exist_ok=True)
    store = run_store(out, settings.store)
    journal = RunJournal(out)

    with open_chain(settings, resume) as session, _write_queue(session) as queue:
        link, task_id, point = None, None, None
        if session is not None:
            task_id, point = _begin(session, settings, spec, initial, queue, resume=resume)
            link = LedgerLink(
                session.gateway, task_id, session.client_rpc_url, settings.direct, queue,
                commit_mode=settings.commit_mode, records=out,
            )  # fmt: skip
        else:
            store.put(initial)
            spec.save(out / "task.json")

        def recorded(report: RoundReport) -> None:
            if session is not None:
                journal.recorded(report)
            if on_round is not None:
                on_round(report)

        first_round = point.next_round if point is not None else 1
        start_weights = point.head if point is not None else initial
        strategy = LedgerStrategy(
            build_strategy(settings, settings.num_clients),
            link=link,
            store=store,
            evaluate=HoldoutEvaluator(settings, hold.data),
            template=initial,
            reward_per_round=settings.reward_per_round,
            min_accepted=settings.min_train_nodes,
            on_round=recorded,
            contribution=settings.contribution,
            task_seed=settings.seed,
            holdout_hash=to_hex(hold.data_hash),
            first_round=first_round,
            on_aggregated=journal.aggregated if session is not None else None,
            last_round=settings.num_rounds,
            reward_full_gain=spec.reward_full_gain,
        )
        if point is not None:
            strategy.reports.extend(point.reports)
        final = start_weights
        if first_round <= settings.num_rounds:
            result = strategy.start(
                grid,
                numpy_to_arrays(start_weights),
                num_rounds=settings.num_rounds - first_round + 1,
                timeout=settings.round_timeout,
                train_config=ConfigRecord(
                    {
                        "local-epochs": settings.local_epochs,
                        CONFIG_NUM_CLASSES: hold.num_classes,
                    }
                ),
            )
            if len(result.arrays):
                final = arrays_to_numpy(result.arrays)
        strategy.flush()  # every round on chain before the record is read back
        final_hash = save_canonical(final, out / "final_model.safetensors")
        chain, events = _read_back(session, settings)
        token = None
        if session is not None and task_id is not None:
            token = read_reward_token(session.gateway, task_id)
    record = RunRecord(
        roles=_roles(settings),
        settings=settings,
        spec=spec,
        chain=chain,
        task_id=task_id,
        reports=strategy.reports,
        final_model_hash=to_hex(final_hash),
        events=events,
        token=token,
    )
    write_artifacts(record, out)
    return record


def _begin(
    session: ChainSession,
    settings: RunSettings,
    spec: TaskSpec,
    initial: dict[str, Any],
    queue: WriteQueue,
    *,
    resume: bool,
) -> tuple[TaskId, ResumePoint | None]:
    """The run's task on chain: created (a new run), or found with where to go on (resume)."""
    out = settings.out_dir
    if resume:
        point = find_resume_point(out, session.gateway, spec.spec_hash())
        if not settings.task_id:  # a consortium's participants join by themselves
            _prepare_participants(session, settings, point.task_id, spec.spec_hash(), queue)
        return point.task_id, point
    session.gateway.deployment.save(out / _DEPLOYMENT_FILE)
    initial_hash = run_store(out, settings.store).put(initial)
    spec.save(out / "task.json")
    task_id = _prepare_task(session, settings, spec, initial_hash, queue)
    RunJournal(out).start(settings, task_id)
    return task_id, None


def _read_back(
    session: ChainSession | None, settings: RunSettings
) -> tuple[dict[str, Any], list[LedgerEvent]]:
    """The run's chain and every ledger event on it, read back for the record."""
    chain: dict[str, Any] = {"kind": settings.chain}
    if session is None:
        return chain, []
    gateway = session.gateway
    chain.update(
        chain_id=gateway.deployment.chain_id,
        ledger=gateway.deployment.ledger,
        token=gateway.deployment.token,
        from_block=gateway.deployment.block,
        rpc_url=session.backend.url,
    )
    events = gateway.events()
    gateway.deployment.save(settings.out_dir / _DEPLOYMENT_FILE)
    return chain, events


def task_spec(settings: RunSettings) -> TaskSpec:
    """The spec a run of ``settings`` records: what ``fedchain task create`` puts on chain."""
    hold = holdout(settings)
    initial = initial_weights(settings, hold.input_shape, hold.num_classes)
    return _spec(settings, hold, model_hash(initial))
