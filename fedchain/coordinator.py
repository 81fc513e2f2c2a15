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

from fedchain.artifacts import RunRecord, write_artifacts
from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import AnvilChain, ChainBackend, EmbeddedChain, RpcChain
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.deployments import Deployment
from fedchain.chain.errors import ChainError
from fedchain.chain.gateway import LedgerEvent, LedgerGateway, deploy
from fedchain.chain.queue import WriteQueue
from fedchain.chain.records import TaskId
from fedchain.hashing import ModelHash, save_canonical, to_hex
from fedchain.participant import FIRST_PARTICIPANT_KEY
from fedchain.settings import RunSettings
from fedchain.store import ModelStore
from fedchain.strategies import build_strategy
from fedchain.strategy import (
    LedgerLink,
    LedgerStrategy,
    RoundReport,
    arrays_to_numpy,
    numpy_to_arrays,
)
from fedchain.task import TaskSpec
from fedchain.workload import Holdout, evaluate_weights, holdout, initial_weights, model_name

__all__ = ["ChainSession", "run_federation"]

log = logging.getLogger(__name__)

#: Chains whose keys are the public DEVNET TEST keys (anvil, Hardhat, ganache ids).
_DEVNET_CHAIN_IDS = frozenset({31337, 1337})
_PARTICIPANT_GAS_WEI = 10**18
#: Participants registered per transaction: about 72,000 gas each, so 200 take 14.4 M gas, under
#: half of a 30 M gas block (1,000 in one transaction would exceed any block).
REGISTRATION_BATCH = 200


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
def _write_queue() -> Iterator[WriteQueue]:
    queue = WriteQueue()
    try:
        yield queue
    finally:
        queue.close()


def _coordinator_key() -> LocalAccount:
    return devnet_account(0)  # DEVNET TEST key 0: devnets and simulations only


@contextlib.contextmanager
def open_chain(settings: RunSettings) -> Iterator[ChainSession | None]:
    """Reach the chain the settings name, deploy if needed; close it afterwards."""
    if not settings.ledger_enabled:
        yield None
        return
    session = _connect(settings)
    try:
        yield session
    finally:
        session.close()


def _connect(settings: RunSettings) -> ChainSession:
    coordinator = _coordinator_key()
    if settings.chain == "embedded":
        journal = settings.out_dir / "chain"
        if journal.exists():
            shutil.rmtree(journal)  # a new run starts a new chain
        embedded = EmbeddedChain(journal=journal)
        gateway = deploy(embedded.w3, coordinator)
        bridge = RpcBridge(embedded.w3)
        return ChainSession(embedded, gateway, bridge.url, bridge)
    if settings.chain == "anvil":
        anvil = AnvilChain().start()
        return ChainSession(anvil, deploy(anvil.w3, coordinator), anvil.url)
    rpc = RpcChain(settings.rpc_url)
    chain_id = int(rpc.w3.eth.chain_id)
    if chain_id not in _DEVNET_CHAIN_IDS:
        raise ChainError(
            f"chain {chain_id} at {settings.rpc_url} is not a devnet: simulations sign with public "
            "DEVNET TEST keys; run the coordinator with its keystore instead"
        )
    if settings.deployment:
        gateway = LedgerGateway(rpc.w3, Deployment.load(Path(settings.deployment)), coordinator)
    else:
        gateway = deploy(rpc.w3, coordinator)
    return ChainSession(rpc, gateway, settings.rpc_url)


def _prepare_task(
    session: ChainSession,
    settings: RunSettings,
    spec: TaskSpec,
    initial: ModelHash,
    queue: WriteQueue,
) -> TaskId:
    """Create the task; queue its funding and the simulated participants' registration."""
    gateway = session.gateway
    task_id, _ = gateway.create_task(spec.spec_hash(), initial, settings.reward_per_round)
    if settings.reward_per_round:
        budget = settings.reward_per_round * settings.num_rounds
        queue.submit(lambda: gateway.fund_task(task_id, budget))
    ids = range(settings.num_clients)
    addresses = [devnet_account(FIRST_PARTICIPANT_KEY + p).address for p in ids]  # DEVNET TEST
    orgs = [_org_hash(p) for p in ids]
    for start in range(0, len(addresses), REGISTRATION_BATCH):
        end = start + REGISTRATION_BATCH
        queue.submit(partial(gateway.register_participants, addresses[start:end], orgs[start:end]))
    if settings.direct:
        for address in addresses:
            queue.submit(partial(gateway.transfer_eth, address, _PARTICIPANT_GAS_WEI))
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


def _org_hash(partition_id: int) -> bytes:
    import hashlib

    return hashlib.sha256(f"simulated organisation {partition_id}".encode()).digest()


def _spec(settings: RunSettings, hold: Holdout, initial: ModelHash) -> TaskSpec:
    return TaskSpec(
        dataset=settings.dataset,
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
    )


def run_federation(
    grid: Grid, settings: RunSettings, on_round: Callable[[RoundReport], None] | None = None
) -> RunRecord:
    """Run every round of the federation, recording each on chain; write the run's artifacts."""
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
    out.mkdir(parents=True, exist_ok=True)
    store = ModelStore(out / "store")
    hold = holdout(settings)
    initial = initial_weights(settings, hold.input_shape, hold.num_classes)
    initial_hash = store.put(initial)
    spec = _spec(settings, hold, initial_hash)
    spec.save(out / "task.json")

    with open_chain(settings) as session, _write_queue() as queue:
        link, task_id = None, None
        if session is not None:
            task_id = _prepare_task(session, settings, spec, initial_hash, queue)
            link = LedgerLink(
                session.gateway, task_id, session.client_rpc_url, settings.direct, queue
            )
        strategy = LedgerStrategy(
            build_strategy(settings, settings.num_clients),
            link=link,
            store=store,
            evaluate=lambda weights: evaluate_weights(settings, hold.data, weights),
            template=initial,
            reward_per_round=settings.reward_per_round,
            on_round=on_round,
            contribution=settings.contribution,
            task_seed=settings.seed,
            holdout_hash=to_hex(hold.data_hash),
        )
        result = strategy.start(
            grid,
            numpy_to_arrays(initial),
            num_rounds=settings.num_rounds,
            train_config=ConfigRecord({"local-epochs": settings.local_epochs}),
        )
        strategy.flush()  # every round on chain before the record is read back
        final = arrays_to_numpy(result.arrays) if len(result.arrays) else initial
        final_hash = save_canonical(final, out / "final_model.safetensors")
        chain: dict[str, Any] = {"kind": settings.chain}
        events: list[LedgerEvent] = []
        if session is not None:
            gateway = session.gateway
            chain.update(
                chain_id=gateway.deployment.chain_id,
                ledger=gateway.deployment.ledger,
                token=gateway.deployment.token,
                from_block=gateway.deployment.block,
                rpc_url=session.backend.url,
            )
            events = gateway.events()
            gateway.deployment.save(out / "deployment.json")
    record = RunRecord(
        roles=_roles(settings),
        settings=settings,
        spec=spec,
        chain=chain,
        task_id=task_id,
        reports=strategy.reports,
        final_model_hash=to_hex(final_hash),
        events=events,
    )
    write_artifacts(record, out)
    return record
