"""The participant's side: verify the global model against the chain, train, sign."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedchain import record_keys
from fedchain.attacks import SIGN_FLIP_SCALE
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.records import Commitment, RoundId, SignedCommitment
from fedchain.chain.signing import recover_signer
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.participant import ModelNotOnChainError, participant_account, train_reply
from fedchain.federation.workload import holdout, initial_weights
from fedchain.hashing import model_hash
from fedchain.settings import RunSettings

from .conftest import BUDGET, sha

SETTINGS = RunSettings(num_clients=4, model="logreg")


@pytest.fixture
def chain_task(ledger):  # type: ignore[no-untyped-def]
    """A task whose initial model is SETTINGS' model, with round 1 open, served over RPC."""
    hold = holdout(SETTINGS)
    initial = initial_weights(SETTINGS, hold.input_shape, hold.num_classes)
    gateway = ledger.gateway
    task_id, _ = gateway.create_task(sha("spec"), model_hash(initial), BUDGET)
    gateway.open_round(task_id, RoundId(1), model_hash(initial))
    bridge = RpcBridge(gateway.w3)
    yield gateway, task_id, initial, bridge.url
    bridge.close()


def _message(
    gateway, task_id, weights, url: str, round_id: int = 1, wait_s: float = 120.0
) -> Message:  # type: ignore[no-untyped-def]
    config = ConfigRecord(
        {
            "server-round": round_id,
            record_keys.CONFIG_TASK_ID: int(task_id),
            record_keys.CONFIG_CHAIN_ID: gateway.domain.chain_id,
            record_keys.CONFIG_LEDGER: gateway.domain.verifying_contract,
            record_keys.CONFIG_RPC_URL: url,
            record_keys.CONFIG_CHAIN_WAIT_S: wait_s,
        }
    )
    content = RecordDict(
        {record_keys.RECORD_ARRAYS: numpy_to_arrays(weights), record_keys.RECORD_CONFIG: config}
    )
    return Message(content, dst_node_id=7, message_type="train")


def _context(partition_id: int) -> Context:
    node_config = {record_keys.NODE_PARTITION_ID: partition_id, record_keys.NODE_NUM_PARTITIONS: 4}
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def test_trains_on_the_chains_model_and_signs_its_update(chain_task) -> None:  # type: ignore[no-untyped-def]
    # Prepare
    gateway, task_id, initial, url = chain_task
    # Execute
    reply = train_reply(_message(gateway, task_id, initial, url), _context(0), SETTINGS)
    # Assert
    update = arrays_to_numpy(reply.content.array_records[record_keys.RECORD_ARRAYS])
    commitment = reply.content.config_records[record_keys.RECORD_COMMITMENT]
    assert bytes(commitment[record_keys.COMMIT_UPDATE_HASH]) == model_hash(update)  # type: ignore[arg-type]
    assert model_hash(update) != model_hash(initial)  # it really trained
    signed = SignedCommitment(
        Commitment(
            task_id,
            RoundId(1),
            model_hash(update),
            int(commitment[record_keys.COMMIT_NUM_EXAMPLES]),
        ),  # type: ignore[arg-type]
        str(commitment[record_keys.COMMIT_PARTICIPANT]),
        bytes(commitment[record_keys.COMMIT_SIGNATURE]),  # type: ignore[arg-type]
    )
    assert recover_signer(gateway.domain, signed) == participant_account(_context(0)).address


def test_refuses_a_model_the_chain_did_not_commit(chain_task) -> None:  # type: ignore[no-untyped-def]
    # Prepare
    gateway, task_id, initial, url = chain_task
    tampered = {k: v.copy() for k, v in initial.items()}
    first = next(iter(tampered))
    tampered[first].flat[0] += 1.0
    # Execute / Assert
    with pytest.raises(ModelNotOnChainError, match="refused: the model received hashes to"):
        train_reply(_message(gateway, task_id, tampered, url), _context(1), SETTINGS)


def test_waits_for_the_chain_to_open_its_round_then_trains(chain_task) -> None:  # type: ignore[no-untyped-def]
    # Prepare: round 2 is sent before the coordinator's transactions close 1 and open 2
    gateway, task_id, initial, url = chain_task

    def coordinator_catches_up() -> None:
        time.sleep(0.3)
        gateway.fail_round(task_id, RoundId(1), "no replies")
        gateway.open_round(task_id, RoundId(2), model_hash(initial))

    catching_up = threading.Thread(target=coordinator_catches_up)
    catching_up.start()

    # Execute
    try:
        reply = train_reply(
            _message(gateway, task_id, initial, url, round_id=2), _context(2), SETTINGS
        )
    finally:
        catching_up.join()

    # Assert: it trained for round 2, after the chain opened it
    commitment = reply.content.config_records[record_keys.RECORD_COMMITMENT]
    update = arrays_to_numpy(reply.content.array_records[record_keys.RECORD_ARRAYS])
    assert bytes(commitment[record_keys.COMMIT_UPDATE_HASH]) == model_hash(update)  # type: ignore[arg-type]
    assert gateway.task_head(task_id) == (model_hash(initial), RoundId(2))


def test_refuses_when_the_chain_never_opens_its_round(chain_task) -> None:  # type: ignore[no-untyped-def]
    # Prepare
    gateway, task_id, initial, url = chain_task
    message = _message(gateway, task_id, initial, url, round_id=2, wait_s=0.2)

    # Execute / Assert
    with pytest.raises(ModelNotOnChainError, match="has not opened round 2 of task"):
        train_reply(message, _context(3), SETTINGS)


def test_simulated_participants_sign_with_their_devnet_test_keys() -> None:
    assert participant_account(_context(0)).address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_an_attacker_signs_its_forged_update_with_its_own_key(chain_task) -> None:  # type: ignore[no-untyped-def]
    # Prepare: partitions 2 and 3 of 4 flip the sign of their update
    gateway, task_id, initial, url = chain_task
    attacked = SETTINGS.with_changes(attack="sign-flip:0.5")
    message = _message(gateway, task_id, initial, url)
    # Execute
    honest = train_reply(message, _context(3), SETTINGS)
    forged = train_reply(message, _context(3), attacked)
    # Assert: the update is the flipped honest one, committed and signed by the attacker
    honest_update = arrays_to_numpy(honest.content.array_records[record_keys.RECORD_ARRAYS])
    update = arrays_to_numpy(forged.content.array_records[record_keys.RECORD_ARRAYS])
    for name, weights in initial.items():
        expected = weights - SIGN_FLIP_SCALE * (honest_update[name] - weights)
        np.testing.assert_allclose(update[name], expected, rtol=1e-5, atol=1e-6)
    commitment = forged.content.config_records[record_keys.RECORD_COMMITMENT]
    assert bytes(commitment[record_keys.COMMIT_UPDATE_HASH]) == model_hash(update)  # type: ignore[arg-type]
    examples = int(commitment[record_keys.COMMIT_NUM_EXAMPLES])  # type: ignore[arg-type]
    signed = SignedCommitment(
        Commitment(task_id, RoundId(1), model_hash(update), examples),
        str(commitment[record_keys.COMMIT_PARTICIPANT]),
        bytes(commitment[record_keys.COMMIT_SIGNATURE]),  # type: ignore[arg-type]
    )
    assert recover_signer(gateway.domain, signed) == participant_account(_context(3)).address


def test_without_a_ledger_a_participant_names_itself_unsigned() -> None:
    # Prepare
    hold = holdout(SETTINGS)
    initial = initial_weights(SETTINGS, hold.input_shape, hold.num_classes)
    content = RecordDict(
        {
            record_keys.RECORD_ARRAYS: numpy_to_arrays(initial),
            record_keys.RECORD_CONFIG: ConfigRecord({"server-round": 1}),
        }
    )
    # Execute
    reply = train_reply(
        Message(content, dst_node_id=7, message_type="train"), _context(1), SETTINGS
    )
    # Assert
    assert record_keys.RECORD_COMMITMENT not in reply.content.config_records
    declared = reply.content.config_records[record_keys.RECORD_PARTICIPANT]
    assert declared[record_keys.COMMIT_PARTICIPANT] == participant_account(_context(1)).address
