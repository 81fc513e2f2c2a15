"""What a participant does each round: verify the global model, train, hash, sign, reply.

The data and the key stay here; what leaves is the update, its metrics and the signed
commitment. Used by the Flower handlers in client_app.py.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedchain.attacks import Trainer, flipped_labels, parse_attack
from fedchain.chain.accounts import devnet_account, environment_password, load_keystore
from fedchain.chain.records import Commitment, Consent, RoundId, SignedConsent, TaskId
from fedchain.chain.signing import LedgerDomain, sign_commitment, sign_consent
from fedchain.errors import FedchainError
from fedchain.federation import consent_policy
from fedchain.federation.dropouts import act_out, fate
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.privacy_budget import epsilon_after_round, record_round
from fedchain.federation.workload import client_data, site_data, train_locally
from fedchain.hashing import model_hash, to_hex
from fedchain.ml.data import Dataset, dataset_hash
from fedchain.privacy import METRIC_DP_EPSILON, to_micro
from fedchain.record_keys import (
    COMMIT_EPSILON,
    COMMIT_NUM_EXAMPLES,
    COMMIT_PARTICIPANT,
    COMMIT_SIGNATURE,
    COMMIT_UPDATE_HASH,
    CONFIG_CHAIN_ID,
    CONFIG_CHAIN_WAIT_S,
    CONFIG_DIRECT,
    CONFIG_LEDGER,
    CONFIG_NUM_CLASSES,
    CONFIG_RPC_URL,
    CONFIG_TASK_ID,
    METRIC_NUM_EXAMPLES,
    METRIC_TRAIN_LOSS,
    NODE_DATA_PATH,
    NODE_KEYSTORE,
    NODE_NUM_PARTITIONS,
    NODE_PARTITION_ID,
    NODE_RPC_URL,
    RECORD_ARRAYS,
    RECORD_COMMITMENT,
    RECORD_CONFIG,
    RECORD_METRICS,
    RECORD_PARTICIPANT,
)
from fedchain.settings import RunSettings

__all__ = [
    "ModelNotOnChainError",
    "consent_to",
    "participant_account",
    "simulated_consent",
    "train_reply",
]

log = logging.getLogger(__name__)

Weights = dict[str, np.ndarray[Any, Any]]

#: Simulated participant p signs with DEVNET TEST key 1 + p (key 0 is the coordinator's).
FIRST_PARTICIPANT_KEY = 1
#: How long a client waits for the chain to catch up with the round it was sent.
DEFAULT_CHAIN_WAIT_S = 120.0
_POLL_MIN_S = 0.005
_POLL_MAX_S = 1.0


class ModelNotOnChainError(FedchainError, ValueError):
    """The model received is not the global model the chain committed: training is refused."""


@dataclass(frozen=True)
class _LedgerView:
    """What the train config says about the ledger, for this round."""

    task_id: TaskId
    round_id: RoundId
    domain: LedgerDomain
    rpc_url: str
    direct: bool
    wait_s: float


def participant_account(context: Context) -> LocalAccount:
    """The participant's key: its keystore on a real node, a DEVNET TEST key in simulation."""
    keystore = context.node_config.get(NODE_KEYSTORE)
    if keystore:
        return _keystore_account(str(keystore))
    partition_id = int(context.node_config[NODE_PARTITION_ID])
    return devnet_account(FIRST_PARTICIPANT_KEY + partition_id)


@cache
def _keystore_account(path: str) -> LocalAccount:
    hint = "start the SuperNode with `fedchain client`, which asks for it"
    return load_keystore(Path(path), environment_password(hint))


def consent_to(
    account: LocalAccount, domain: LedgerDomain, task_id: TaskId, spec_hash: bytes, data: Dataset
) -> SignedConsent:
    """The participant's signed consent to a task: the task's spec hash, the number of examples
    of its training data (no commitment of it may claim more) and the data's SHA-256
    (:func:`fedchain.ml.data.dataset_hash`: the canonical bytes of its preprocessed features
    and labels, the arrays it trains on)."""
    consent = Consent(task_id, spec_hash, len(data), dataset_hash(data))
    return sign_consent(account, domain, consent)


def simulated_consent(
    settings: RunSettings,
    partition_id: int,
    domain: LedgerDomain,
    task_id: TaskId,
    spec_hash: bytes,
) -> SignedConsent:
    """Simulated participant ``partition_id``'s consent, signed with its own DEVNET TEST key over
    the data it holds (its partition; a sybil's, the copies it holds)."""
    plan = parse_attack(settings.attack)
    held = plan.data_partition(partition_id, settings.num_clients) if plan else partition_id
    data = client_data(settings, held, settings.num_clients)
    account = devnet_account(FIRST_PARTICIPANT_KEY + partition_id)  # DEVNET TEST key
    return consent_to(account, domain, task_id, spec_hash, data)


def train_reply(message: Message, context: Context, settings: RunSettings) -> Message:
    """Handle one train message: the reply carries arrays, metrics and the signed commitment."""
    content = message.content
    config = content.config_records[RECORD_CONFIG]
    partition_id = int(context.node_config.get(NODE_PARTITION_ID, 0))
    server_round = int(config["server-round"])  # type: ignore[arg-type]
    dropped = fate(settings.seed, server_round, partition_id, settings.dropout)
    if dropped is not None:  # a simulated dropout: no update this round
        act_out(dropped, server_round, partition_id, settings.round_timeout)
    view = _ledger_view(config)
    site = context.node_config.get(NODE_DATA_PATH)
    consent = _consented(view, settings, config, context) if site else None
    weights = arrays_to_numpy(next(iter(content.array_records.values())))
    received = model_hash(weights)
    if view is not None:
        _verify_on_chain(view, received, context)

    mu = float(config.get("proximal-mu", settings.proximal_mu))  # type: ignore[arg-type]
    examples: int | None = None  # what the reply claims; None: the examples it trained on
    if site:  # a hospital's SuperNode: its own CSV file, named in its node config only
        num_classes = int(config.get(CONFIG_NUM_CLASSES, 0)) or None  # type: ignore[arg-type]
        data = site_data(
            str(site),
            settings.label_column,
            num_classes,
            settings.features,
            settings.classes,
            standardize=settings.standardize,
            standardize_stats=settings.standardize_stats,
        )
        epsilon = epsilon_after_round(settings, len(data), context)  # refused past the cap
        seed = _seed(settings, server_round, 0)
        update, loss = train_locally(settings, data, weights, seed=seed, proximal_mu=mu)
    else:  # a simulated client: its partition of the run's dataset
        partitions = int(context.node_config.get(NODE_NUM_PARTITIONS, settings.num_clients))
        data = client_data(settings, partition_id, partitions)
        epsilon = epsilon_after_round(settings, len(data), context)  # refused past the cap
        seed = _seed(settings, server_round, partition_id)
        plan = parse_attack(settings.attack)
        if plan is not None and partition_id in plan.attackers(partitions):
            train = _attacker_training(
                settings, weights, received, server_round=server_round, partitions=partitions, mu=mu
            )
            # A simulated attacker forges its update (and may lie about its example count); it
            # still signs both below with its own key.
            update, loss = plan.forge(weights, partition_id, partitions, train=train, seed=seed)
            examples = plan.claimed_examples(
                partition_id, partitions, lambda p: len(client_data(settings, p, partitions))
            )
        else:
            update, loss = train_locally(settings, data, weights, seed=seed, proximal_mu=mu)
    examples = examples if examples is not None else len(data)
    metrics: dict[str, int | float] = {
        METRIC_NUM_EXAMPLES: examples,
        METRIC_TRAIN_LOSS: float(loss),
    }
    if epsilon is not None:  # DP: the site's cumulative epsilon once this update is out
        metrics[METRIC_DP_EPSILON] = epsilon
        record_round(context)

    records: dict[str, Any] = {
        RECORD_ARRAYS: numpy_to_arrays(update),
        RECORD_METRICS: MetricRecord(metrics),  # type: ignore[arg-type]
    }
    if view is not None:
        spent = to_micro(epsilon) if epsilon is not None else 0  # the chain's fixed point
        records[RECORD_COMMITMENT] = _commit(view, model_hash(update), examples, spent, context)
    if consent is not None and view is not None:
        _log_round(
            consent,
            view,
            received,
            loss=float(loss),
            examples=examples,
            commitment=records[RECORD_COMMITMENT],
        )
    elif NODE_KEYSTORE in context.node_config or NODE_PARTITION_ID in context.node_config:
        # No ledger: the address still names the participant in the run's record.
        records[RECORD_PARTICIPANT] = ConfigRecord(
            {COMMIT_PARTICIPANT: participant_account(context).address}
        )
    return Message(RecordDict(records), reply_to=message)


def _attacker_training(
    settings: RunSettings,
    weights: Weights,
    received: bytes,
    *,
    server_round: int,
    partitions: int,
    mu: float,
) -> Trainer:
    """Honest training of any partition on the received model, as a colluding attacker
    recomputes it (ALIE, IPM, sybil), remembered for the round: the colluders this process
    plays train each partition once, with the same result as training it again."""
    round_key = (settings, received, server_round, partitions, mu)
    memo = _recomputed.get(round_key)
    if memo is None:  # a new round: forget the last one's
        memo = {}
        _recomputed.clear()
        _recomputed[round_key] = memo

    def train(p: int, flip_labels: bool) -> tuple[Weights, float]:
        done = memo.get((p, flip_labels))
        if done is None:
            local = client_data(settings, p, partitions)
            if flip_labels:
                local = Dataset(
                    local.features,
                    flipped_labels(local.labels, local.num_classes),
                    local.num_classes,
                    f"{local.name}[label-flip]",
                )
            seed = _seed(settings, server_round, p)
            done = train_locally(settings, local, weights, seed=seed, proximal_mu=mu)
            memo[p, flip_labels] = done
        return done

    return train


#: The honest trainings attackers recomputed, for the current round only (at most one model
#: per partition is kept), by (partition, flipped labels).
_recomputed: dict[tuple[Any, ...], dict[tuple[int, bool], tuple[Weights, float]]] = {}


def _seed(settings: RunSettings, server_round: int, partition_id: int) -> int:
    """The seed of a partition's local training in a round."""
    return settings.seed * 1_000_003 + server_round * 1_009 + partition_id


def _ledger_view(config: ConfigRecord) -> _LedgerView | None:
    if CONFIG_TASK_ID not in config:
        return None  # a run without a ledger
    return _LedgerView(
        task_id=TaskId(int(config[CONFIG_TASK_ID])),  # type: ignore[arg-type]
        round_id=RoundId(int(config["server-round"])),  # type: ignore[arg-type]
        domain=LedgerDomain(
            int(config[CONFIG_CHAIN_ID]),  # type: ignore[arg-type]
            str(config[CONFIG_LEDGER]),
        ),
        rpc_url=str(config[CONFIG_RPC_URL]),
        direct=bool(config.get(CONFIG_DIRECT, False)),
        wait_s=float(config.get(CONFIG_CHAIN_WAIT_S, DEFAULT_CHAIN_WAIT_S)),  # type: ignore[arg-type]
    )


def _reader(view: _LedgerView, context: Context) -> Any:
    """The process's one connection to the chain: reads only, whichever participant it plays."""
    # A real node reads its own RPC endpoint; a simulated one the URL the server gave.
    url = str(context.node_config.get(NODE_RPC_URL) or view.rpc_url)
    key = (url, view.domain.chain_id, view.domain.verifying_contract)
    gateway = _connections.get(key)
    if gateway is None:
        gateway = _connections[key] = _connect(*key, participant_account(context))
    return gateway


def _writer(view: _LedgerView, context: Context, account: LocalAccount) -> Any:
    """A gateway acting as ``account`` (direct mode), on the process's connection."""
    reader = _reader(view, context)
    if reader.account.address == account.address:
        return reader
    return _acting_as(reader, account)


#: One connection per chain for the life of the client process, whichever participant it plays:
#: a thousand simulated participants must not leave a thousand connections behind (nor pay for
#: building one each: that took 40 % of a client's time at 100 clients, measured with py-spy).
_connections: dict[tuple[str, int, str], Any] = {}


@lru_cache(maxsize=16)
def _acting_as(reader: Any, account: LocalAccount) -> Any:
    return reader.as_account(account)


def _connect(url: str, chain_id: int, ledger: str, account: LocalAccount) -> Any:
    from fedchain.chain.backends import RpcChain
    from fedchain.chain.deployments import Deployment
    from fedchain.chain.gateway import LedgerGateway

    deployment = Deployment(
        chain_id=chain_id,
        ledger=ledger,
        token=ledger,  # a participant never touches the token through this gateway
        block=0,
        deployer="",
        rpc_url=url,
    )
    # No one-shot probe: the gateway's first read (the chain id) retries a flaky link.
    return LedgerGateway(RpcChain(url, probe=False).w3, deployment, account)


def _verify_on_chain(view: _LedgerView, received: bytes, context: Context) -> None:
    """Refuse to train on anything but the global model the chain holds for this task.

    The coordinator may send the round before its transactions are mined, so this waits until
    the chain has opened the round (after committing the previous one), then compares.
    """
    checked = (view.rpc_url, view.domain.verifying_contract, view.task_id, view.round_id, received)
    if checked in _verified:
        return
    gateway = _reader(view, context)
    began = time.monotonic()
    head, last_round = gateway.task_head(view.task_id)
    while last_round < view.round_id:
        waited = time.monotonic() - began
        if waited > view.wait_s:
            raise ModelNotOnChainError(
                f"refused: the chain has not opened round {view.round_id} of task "
                f"{view.task_id} within {view.wait_s:.0f} s, so the model cannot be checked"
            )
        # Poll at a quarter of the time waited so far: the round starts at most a quarter
        # late, and a long wait (a public chain's blocks) costs the node few requests.
        time.sleep(min(max(waited / 4, _POLL_MIN_S), _POLL_MAX_S))
        head, last_round = gateway.task_head(view.task_id)
    if head != received:
        raise ModelNotOnChainError(
            f"refused: the model received hashes to {to_hex(received)}, but the chain's latest "
            f"global model of task {view.task_id} is {to_hex(head)}"
        )
    _verified.append(checked)


#: What this process has verified: (chain, ledger, task, round, model) where the chain had the
#: round open on that very model. A round's parent never changes once opened, so the fact stays
#: true, and the other participants this process plays in the same round need not ask the
#: chain again (the question took a third of a client's time at 100 clients on anvil).
_verified: deque[tuple[str, str, int, int, bytes]] = deque(maxlen=64)


def _commit(
    view: _LedgerView, update_hash: bytes, examples: int, epsilon: int, context: Context
) -> ConfigRecord:
    account = participant_account(context)
    commitment = Commitment(view.task_id, view.round_id, update_hash, examples, epsilon)
    signed = sign_commitment(account, view.domain, commitment)
    if view.direct:
        _writer(view, context, account).submit_commitment(commitment)
    return ConfigRecord(
        {
            COMMIT_PARTICIPANT: signed.participant,
            COMMIT_UPDATE_HASH: signed.commitment.update_hash,
            COMMIT_NUM_EXAMPLES: examples,
            COMMIT_SIGNATURE: signed.signature,
            COMMIT_EPSILON: epsilon,
        }
    )


def _consented(
    view: _LedgerView | None, settings: RunSettings, config: ConfigRecord, context: Context
) -> consent_policy.ConsentEntry:
    """A hospital's node trains only for a task in its consent policy, with the settings of
    the spec it consented to, while it is a member on chain: checked before its data is read."""
    refused = consent_policy.ConsentRefusedError
    if view is None:
        raise refused(
            "refused: the message names no task (no task-id): a hospital's node trains only "
            "for a task it joined with `fedchain task join`"
        )
    path = context.node_config.get(consent_policy.NODE_CONSENT_POLICY)
    if not path:
        raise refused(
            "refused: this node has no consent policy: start it with `fedchain client` after "
            "`fedchain task join`"
        )
    domain = view.domain
    entry = consent_policy.ConsentPolicy.load(Path(str(path))).entry(
        domain.chain_id, domain.verifying_contract, view.task_id
    )
    if entry is None:
        raise refused(
            f"refused: task {view.task_id} of ledger {domain.verifying_contract} (chain "
            f"{domain.chain_id}) is not in this node's consent policy {path}: review it with "
            "`fedchain task show`, then join it with `fedchain task join`"
        )
    signer = participant_account(context).address
    if entry.participant.lower() != signer.lower():
        raise refused(
            f"refused: task {view.task_id} was joined by {entry.participant}, this node signs "
            f"as {signer}: start it with the keystore that joined"
        )
    num_classes = int(config.get(CONFIG_NUM_CLASSES, 0)) or None  # type: ignore[arg-type]
    mu = float(config.get("proximal-mu", settings.proximal_mu))  # type: ignore[arg-type]
    consent_policy.check_settings(entry, settings, num_classes, mu)
    consent_policy.check_chain(entry, _reader(view, context), int(view.round_id))
    return entry


def _log_round(
    entry: consent_policy.ConsentEntry,
    view: _LedgerView,
    received: bytes,
    *,
    loss: float,
    examples: int,
    commitment: ConfigRecord,
) -> None:
    """The hospital's own record of a round, in its SuperNode's log."""
    from flwr.common.logger import log as flower_log

    flower_log(
        logging.INFO,
        "fedchain task %d round %d: spec 0x%s consented; model %s = chain's global model; "
        "trained on %d examples, loss %.4f; signed commitment update %s by %s",
        view.task_id,
        view.round_id,
        entry.spec_hash.hex(),
        to_hex(received),
        examples,
        loss,
        to_hex(bytes(commitment[COMMIT_UPDATE_HASH])),  # type: ignore[arg-type]
        commitment[COMMIT_PARTICIPANT],
    )
