"""The participant's cheap read of a task's head model and round, from storage words."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, cast

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from web3 import Web3

from fedchain import record_keys
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import AnvilChain, EmbeddedChain, RpcChain
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import RoundId, RoundOutcome, TaskId
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.participant import train_reply
from fedchain.federation.workload import holdout, initial_weights
from fedchain.hashing import model_hash
from fedchain.settings import RunSettings


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _exercise(gateway: LedgerGateway, reader: LedgerGateway) -> None:
    """Two tasks, rounds opened, committed and failed: task_head always equals getTask."""
    first, _ = gateway.create_task(_sha("a"), _sha("init a"), 0)
    second, _ = gateway.create_task(_sha("b"), _sha("init b"), 0)
    for task_id in (first, second):
        assert reader.task_head(task_id) == (_sha(f"init {'a' if task_id == first else 'b'}"), 0)
    parent = _sha("init a")
    for round_no in range(1, 4):
        gateway.open_round(first, RoundId(round_no), parent)
        assert reader.task_head(first) == (parent, round_no)
        if round_no == 2:
            gateway.fail_round(first, RoundId(round_no), "too few updates")
        else:
            parent = _sha(f"global {round_no}")
            gateway.commit_round(first, RoundId(round_no), [], RoundOutcome(parent, 1, 1), [])
        record = gateway.task(first)
        assert reader.task_head(first) == (record.head_model_hash, record.last_round)
    assert reader.task_head(second) == (_sha("init b"), 0)


def test_task_head_matches_the_contracts_view_in_process() -> None:
    gateway = deploy(EmbeddedChain().w3, devnet_accounts(1)[0])
    _exercise(gateway, gateway)


def test_task_head_matches_over_json_rpc_through_the_bridge() -> None:
    # Prepare
    chain = EmbeddedChain()
    gateway = deploy(chain.w3, devnet_accounts(1)[0])
    bridge = RpcBridge(chain.w3)
    try:
        reader = LedgerGateway(RpcChain(bridge.url).w3, gateway.deployment, gateway.account)
        # Execute / Assert
        _exercise(gateway, reader)
    finally:
        bridge.close()


@pytest.mark.anvil
def test_task_head_matches_on_anvil() -> None:
    anvil = AnvilChain().start()
    try:
        gateway = deploy(anvil.w3, devnet_accounts(1)[0])
        _exercise(gateway, gateway)
    finally:
        anvil.close()


# ---------------------------------------------------------------- a block mined between the reads

G0, G1 = _sha("global 0"), _sha("global 1")


def _task_in_round_one(gateway: LedgerGateway, initial: bytes = G0) -> TaskId:
    """A task whose round 1 is open on ``initial``."""
    task_id, _ = gateway.create_task(_sha("spec"), initial, 0)
    gateway.open_round(task_id, RoundId(1), initial)
    return task_id


def _commit_round_one(gateway: LedgerGateway, task_id: TaskId, model: bytes) -> Callable[[], None]:
    """The coordinator's commit of round 1 on ``model``, opening round 2 in the same block."""

    def commit() -> None:
        outcome = RoundOutcome(model, 1, 1)
        gateway.commit_round(task_id, RoundId(1), [], outcome, [], open_next=True)

    return commit


class _MinesAfterFirstRead(RpcBridge):
    """A bridge that, once, mines ``then`` right after serving a storage read."""

    def __init__(self, w3: Web3, then: Callable[[], None]) -> None:
        super().__init__(w3)
        self._then: Callable[[], None] | None = then

    def answer(self, request: Any) -> dict[str, Any]:
        response = super().answer(request)
        if self._then is not None and request.get("method") == "eth_getStorageAt":
            then, self._then = self._then, None
            then()
        return response


def test_task_head_reads_one_block_when_a_commit_lands_between_its_reads_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: the coordinator's commit of round 1 (opening round 2 on G1) lands right after
    # the reader's first storage word is read
    chain = EmbeddedChain()
    gateway = deploy(chain.w3, devnet_accounts(1)[0])
    task_id = _task_in_round_one(gateway)
    pending = [_commit_round_one(gateway, task_id, G1)]
    read = chain.w3.eth.get_storage_at

    def read_then_mine(*args: Any, **kwargs: Any) -> Any:
        word = read(*args, **kwargs)
        if pending:
            pending.pop()()
        return word

    monkeypatch.setattr(chain.w3.eth, "get_storage_at", read_then_mine)

    # Execute
    head = gateway.task_head(task_id)

    # Assert: the pair the chain held before the commit, never the old head with the new round
    assert not pending  # the block did land between the reads
    assert head == (G0, RoundId(1))
    assert gateway.task_head(task_id) == (G1, RoundId(2))


def test_task_head_reads_one_block_when_a_commit_lands_between_its_reads_over_json_rpc() -> None:
    # Prepare: a node that mines the commit of round 1 right after serving the first storage read
    chain = EmbeddedChain()
    gateway = deploy(chain.w3, devnet_accounts(1)[0])
    task_id = _task_in_round_one(gateway)
    bridge = _MinesAfterFirstRead(chain.w3, _commit_round_one(gateway, task_id, G1))
    try:
        reader = LedgerGateway(RpcChain(bridge.url).w3, gateway.deployment, gateway.account)

        # Execute
        head = reader.task_head(task_id)

        # Assert
        assert gateway.task(task_id).last_round == 2  # the block did land between the reads
        assert head == (G0, RoundId(1))
        assert reader.task_head(task_id) == (G1, RoundId(2))
    finally:
        bridge.close()


@pytest.fixture
def flower_identity() -> None:
    """Messages outside a running Flower app need the identity Flower sets for its processes."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0


@pytest.mark.usefixtures("flower_identity")
def test_an_honest_participant_is_not_refused_when_the_commit_lands_between_the_reads() -> None:
    # Prepare: round 2 is sent with round 1's global model; the chain's commit of round 1 (which
    # opens round 2 on that model) lands between the participant's two storage reads
    settings = RunSettings(num_clients=4, model="logreg")
    hold = holdout(settings)
    weights = initial_weights(settings, hold.input_shape, hold.num_classes)
    chain = EmbeddedChain()
    gateway = deploy(chain.w3, devnet_accounts(1)[0])
    task_id = _task_in_round_one(gateway)
    commit = _commit_round_one(gateway, task_id, model_hash(weights))
    bridge = _MinesAfterFirstRead(chain.w3, commit)
    try:
        message = _train_message(gateway, task_id, weights, bridge.url, RoundId(2))
        context = Context(
            run_id=1,
            node_id=7,
            node_config={record_keys.NODE_PARTITION_ID: 0, record_keys.NODE_NUM_PARTITIONS: 4},
            state=RecordDict(),
            run_config={},
        )

        # Execute: a refusal would raise ModelNotOnChainError
        reply = train_reply(message, context, settings)
    finally:
        bridge.close()

    # Assert: it trained and committed to its update for round 2
    commitment = reply.content.config_records[record_keys.RECORD_COMMITMENT]
    update = arrays_to_numpy(reply.content.array_records[record_keys.RECORD_ARRAYS])
    assert bytes(cast(bytes, commitment[record_keys.COMMIT_UPDATE_HASH])) == model_hash(update)
    assert gateway.task_head(task_id) == (model_hash(weights), RoundId(2))


def _train_message(
    gateway: LedgerGateway, task_id: TaskId, weights: Any, url: str, round_id: RoundId
) -> Message:
    config = ConfigRecord(
        {
            "server-round": int(round_id),
            record_keys.CONFIG_TASK_ID: int(task_id),
            record_keys.CONFIG_CHAIN_ID: gateway.domain.chain_id,
            record_keys.CONFIG_LEDGER: gateway.domain.verifying_contract,
            record_keys.CONFIG_RPC_URL: url,
            record_keys.CONFIG_CHAIN_WAIT_S: 30.0,
        }
    )
    content = RecordDict(
        {record_keys.RECORD_ARRAYS: numpy_to_arrays(weights), record_keys.RECORD_CONFIG: config}
    )
    return Message(content, dst_node_id=7, message_type="train")
