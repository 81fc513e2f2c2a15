"""A consortium's two roles on one ledger: a hospital's ClientApp (its CSV file and keystore
from the node config) and a ServerApp given an existing task (checked before any round)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedchain import record_keys
from fedchain.chain.accounts import PASSWORD_ENV, devnet_account, new_keystore
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import KeystoreError
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import Commitment, RoundId, SignedCommitment
from fedchain.chain.signing import recover_signer
from fedchain.consortium.deployment import CreatedTask, create_task
from fedchain.federation.consent_policy import NODE_CONSENT_POLICY, ConsentEntry, record_consent
from fedchain.federation.coordinator import TaskMismatchError, _coordinator_key, _existing_task
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.participant import consent_to, participant_account, train_reply
from fedchain.federation.workload import initial_weights, site_data
from fedchain.hashing import model_hash
from fedchain.ml.data import load_breast_cancer
from fedchain.settings import RunSettings

# A consortium task: its holdout is a file of the coordinator's (here the built-in set, whole).
TASK = RunSettings(
    model="logreg",
    chain="rpc",
    rpc_url="http://127.0.0.1:1",  # never reached: the tests hand the gateway over
    holdout="breast-cancer",
    dataset="site-csv",
    partition="sites",
    reward_per_round=10**21,
    standardize="local",  # these tests are about consent and keys, not the task's statistics
)
SITE_ROWS = 40
PASSWORD = "hospital devnet test"


@pytest.fixture(scope="module")
def chain() -> LedgerGateway:
    return deploy(EmbeddedChain().w3, devnet_account(0))


@pytest.fixture(scope="module")
def task(chain: LedgerGateway) -> CreatedTask:
    return create_task(chain, TASK, fund=2 * TASK.reward_per_round)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A hospital's node config: its CSV file (some rows of breast-cancer) and its keystore."""
    data = load_breast_cancer()
    path = tmp_path / "site.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(data.input_shape[0])), "label"])
        for features, label in zip(data.features[:SITE_ROWS], data.labels[:SITE_ROWS], strict=True):
            writer.writerow([*(repr(float(v)) for v in features), int(label)])
    keystore = tmp_path / "site.json"
    new_keystore(keystore, PASSWORD)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return {record_keys.NODE_DATA_PATH: str(path), record_keys.NODE_KEYSTORE: str(keystore)}


def test_a_hospital_trains_on_its_csv_file_and_signs_with_its_keystore(
    chain: LedgerGateway, task: CreatedTask, site: dict[str, str]
) -> None:
    # Prepare: round 1 open on the task's initial model, served over RPC as to a real client
    initial = initial_weights(TASK, (30,), 2)
    chain.open_round(task.task_id, RoundId(1), model_hash(initial))
    bridge = RpcBridge(chain.w3)
    config = ConfigRecord(
        {
            "server-round": 1,
            record_keys.CONFIG_TASK_ID: int(task.task_id),
            record_keys.CONFIG_CHAIN_ID: chain.domain.chain_id,
            record_keys.CONFIG_LEDGER: chain.domain.verifying_contract,
            record_keys.CONFIG_RPC_URL: bridge.url,
            record_keys.CONFIG_NUM_CLASSES: 2,
        }
    )
    content = RecordDict(
        {record_keys.RECORD_ARRAYS: numpy_to_arrays(initial), record_keys.RECORD_CONFIG: config}
    )
    message = Message(content, dst_node_id=7, message_type="train")
    site[NODE_CONSENT_POLICY] = _join(chain, task, site)
    context = Context(run_id=1, node_id=7, node_config=site, state=RecordDict(), run_config={})
    try:
        # Execute
        reply = train_reply(message, context, TASK)
    finally:
        bridge.close()
    # Assert
    update = arrays_to_numpy(reply.content.array_records[record_keys.RECORD_ARRAYS])
    commitment = reply.content.config_records[record_keys.RECORD_COMMITMENT]
    assert commitment[record_keys.COMMIT_NUM_EXAMPLES] == SITE_ROWS  # its own file, every row
    assert model_hash(update) != model_hash(initial)
    signed = SignedCommitment(
        Commitment(task.task_id, RoundId(1), model_hash(update), SITE_ROWS),
        str(commitment[record_keys.COMMIT_PARTICIPANT]),
        bytes(commitment[record_keys.COMMIT_SIGNATURE]),  # type: ignore[arg-type]
    )
    keystore_address = commitment[record_keys.COMMIT_PARTICIPANT]
    assert recover_signer(chain.domain, signed) == keystore_address
    assert keystore_address not in {devnet_account(i).address for i in range(20)}


def _join(chain: LedgerGateway, task: CreatedTask, site: dict[str, str]) -> str:
    """The hospital joins the task (its signed consent, relayed) and records it in its node's
    consent policy, as `fedchain task join` does; returns the policy's path."""
    account = participant_account(
        Context(run_id=1, node_id=7, node_config=site, state=RecordDict(), run_config={})
    )
    chain.register_organisation(account.address, "Hospital", b"\x03" * 32)
    data = site_data(site[record_keys.NODE_DATA_PATH], TASK.label_column, 2, "", "")
    signed = consent_to(account, chain.domain, task.task_id, task.spec.spec_hash(), data)
    chain.join_task_for(task.task_id, [signed])
    policy = Path(site[record_keys.NODE_DATA_PATH]).parent / "node" / "consent-policy.json"
    domain = chain.domain
    entry = ConsentEntry(
        domain.chain_id, domain.verifying_contract, int(task.task_id), account.address, task.spec
    )
    record_consent(policy, entry)
    return str(policy)


def _initial(task: CreatedTask) -> bytes:
    return bytes.fromhex(task.spec.initial_model_hash[2:])


def test_the_serverapp_takes_the_existing_task_its_run_config_names(
    chain: LedgerGateway, tmp_path: Path
) -> None:
    # Prepare: a task of its own, untouched
    created = create_task(chain, TASK, fund=0)
    # Execute / Assert
    assert _existing_task(chain, created.settings, created.spec, _initial(created)) == (
        created.task_id
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task_id": 999}, "no task 999"),
        ({"learning_rate": 0.5}, "describes"),
        ({"reward_per_round": 1}, "pays"),
    ],
)
def test_a_run_config_that_does_not_describe_the_task_is_refused(
    chain: LedgerGateway, change: dict[str, object], message: str
) -> None:
    # Prepare
    created = create_task(chain, TASK, fund=0)
    settings = created.settings.with_changes(**change)
    from fedchain.federation.coordinator import task_spec

    # Execute / Assert
    with pytest.raises(TaskMismatchError, match=message):
        _existing_task(chain, settings, task_spec(settings), _initial(created))


def test_another_coordinators_task_or_one_already_run_is_refused(chain: LedgerGateway) -> None:
    # Prepare
    created = create_task(chain, TASK, fund=0)
    other = chain.as_account(devnet_account(1))
    started = create_task(chain, TASK, fund=0)
    chain.open_round(started.task_id, RoundId(1), _initial(started))
    # Execute / Assert
    with pytest.raises(TaskMismatchError, match="coordinated by"):
        _existing_task(other, created.settings, created.spec, _initial(created))
    with pytest.raises(TaskMismatchError, match="already has rounds"):
        _existing_task(chain, started.settings, started.spec, _initial(started))


def test_without_the_password_in_their_environment_the_apps_say_how_to_start(
    site: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a ServerApp or ClientApp under Flower has no terminal to ask on
    monkeypatch.delenv(PASSWORD_ENV)
    context = Context(run_id=1, node_id=7, node_config=site, state=RecordDict(), run_config={})
    # Execute / Assert
    with pytest.raises(KeystoreError, match="fedchain client"):
        participant_account(context)
    with pytest.raises(KeystoreError, match="fedchain server start --keystore"):
        _coordinator_key(TASK.with_changes(keystore=site[record_keys.NODE_KEYSTORE]))
