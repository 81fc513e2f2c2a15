"""A hospital's node trains only for what it consented to (issue 19, item 1).

Its ClientApp refuses, before it reads its data: a message naming no task, a task not in its
consent policy, a run whose settings are not those of the consented spec, a task whose spec hash
on chain is not the consented one, and any round from the one it left the task. Each refusal is
checked with a data path that does not exist: a refusal that came after touching the data would
be a dataset error instead.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedchain import record_keys
from fedchain.chain.accounts import PASSWORD_ENV, devnet_account
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.bridge import RpcBridge
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import RoundId, TaskId
from fedchain.consortium.deployment import CreatedTask, create_task
from fedchain.federation.consent_policy import (
    NODE_CONSENT_POLICY,
    ConsentEntry,
    ConsentPolicy,
    ConsentRefusedError,
    record_consent,
    withdraw_consent,
)
from fedchain.federation.messages import numpy_to_arrays
from fedchain.federation.participant import train_reply
from fedchain.federation.workload import initial_weights
from fedchain.hashing import model_hash
from fedchain.ml.data import load_breast_cancer
from fedchain.settings import RunSettings

TASK = RunSettings(
    model="logreg",
    chain="rpc",
    rpc_url="http://127.0.0.1:1",  # never reached: the node config names the bridge
    holdout="breast-cancer",
    dataset="site-csv",
    partition="sites",
    reward_per_round=10**21,
    standardize="local",  # these tests are about consent and keys, not the task's statistics
)
PASSWORD = "hospital devnet test"
HOSPITAL_KEY = 7  # DEVNET TEST key: the embedded chain funds it, so it pays its own gas
ROWS = 30


class Hospital:
    """One hospital on one ledger: its keystore, CSV file, node directory and a task."""

    def __init__(self, root: Path, chain: LedgerGateway, task: CreatedTask, url: str) -> None:
        self.root, self.chain, self.task, self.url = root, chain, task, url
        self.account = devnet_account(HOSPITAL_KEY)
        self.keystore = root / "hospital.json"
        encrypted = Account.encrypt(self.account.key, PASSWORD, kdf="pbkdf2", iterations=1000)
        self.keystore.write_text(json.dumps(encrypted))
        self.data = root / "hospital.csv"
        _write_csv(self.data)
        self.policy = root / "node" / "consent-policy.json"

    def entry(self, task: CreatedTask | None = None) -> ConsentEntry:
        task = task or self.task
        domain = self.chain.domain
        return ConsentEntry(
            domain.chain_id,
            domain.verifying_contract,
            int(task.task_id),
            self.account.address,
            task.spec,
        )

    def node_config(self, data: Path | None = None) -> dict[str, str]:
        return {
            record_keys.NODE_DATA_PATH: str(data or self.data),
            record_keys.NODE_KEYSTORE: str(self.keystore),
            record_keys.NODE_RPC_URL: self.url,
            NODE_CONSENT_POLICY: str(self.policy),
        }

    def message(
        self, round_id: int, task: CreatedTask | None = None, *, task_id: bool = True
    ) -> Message:
        task = task or self.task
        weights = initial_weights(TASK, (30,), 2)
        config: dict[str, int | str] = {"server-round": round_id, record_keys.CONFIG_NUM_CLASSES: 2}
        if task_id:
            config |= {
                record_keys.CONFIG_TASK_ID: int(task.task_id),
                record_keys.CONFIG_CHAIN_ID: self.chain.domain.chain_id,
                record_keys.CONFIG_LEDGER: self.chain.domain.verifying_contract,
                record_keys.CONFIG_RPC_URL: self.url,
                record_keys.CONFIG_CHAIN_WAIT_S: 5,
            }
        content = RecordDict(
            {
                record_keys.RECORD_ARRAYS: numpy_to_arrays(weights),
                record_keys.RECORD_CONFIG: ConfigRecord(config),
            }
        )
        return Message(content, dst_node_id=7, message_type="train")

    def train(
        self, message: Message, settings: RunSettings = TASK, data: Path | None = None
    ) -> Message:
        context = Context(
            run_id=1,
            node_id=7,
            node_config=self.node_config(data),
            state=RecordDict(),
            run_config={},
        )
        return train_reply(message, context, settings)

    def join(self, task: CreatedTask) -> None:
        """Join on chain with its own key, and record the consent in its node's policy."""
        own = self.chain.as_account(self.account)
        own.join_task(task.task_id, ROWS, b"\x01" * 32, spec_hash=task.spec.spec_hash())
        record_consent(self.policy, self.entry(task))


def _write_csv(path: Path) -> None:
    data = load_breast_cancer()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(data.input_shape[0])), "label"])
        for features, label in zip(data.features[:ROWS], data.labels[:ROWS], strict=True):
            writer.writerow([*(repr(float(v)) for v in features), int(label)])


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    chain = deploy(EmbeddedChain().w3, devnet_account(0))
    address = devnet_account(HOSPITAL_KEY).address
    chain.register_organisation(address, "Hospital", b"\x02" * 32)
    task = create_task(chain, TASK, fund=3 * TASK.reward_per_round)
    bridge = RpcBridge(chain.w3)
    try:
        made = Hospital(tmp_path_factory.mktemp("hospital"), chain, task, bridge.url)
        made.join(task)
        yield made
    finally:
        bridge.close()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def _open(hospital: Hospital, task: CreatedTask, round_id: int) -> None:
    if hospital.chain.task_head(task.task_id)[1] < round_id:
        initial = model_hash(initial_weights(TASK, (30,), 2))
        hospital.chain.open_round(task.task_id, RoundId(round_id), initial)


def test_a_consented_round_is_trained_signed_and_logged(
    hospital: Hospital, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    _open(hospital, hospital.task, 1)
    # Execute
    with caplog.at_level(logging.INFO, logger="flwr"):
        reply = hospital.train(hospital.message(1))
    # Assert
    commitment = reply.content.config_records[record_keys.RECORD_COMMITMENT]
    assert commitment[record_keys.COMMIT_PARTICIPANT] == hospital.account.address
    line = next(r.getMessage() for r in caplog.records if "fedchain task" in r.getMessage())
    spec_hash = hospital.task.spec.spec_hash().hex()
    initial = model_hash(initial_weights(TASK, (30,), 2)).hex()
    assert f"task {hospital.task.task_id} round 1" in line
    assert spec_hash in line
    assert initial in line
    assert f"{ROWS} examples" in line
    assert bytes(commitment[record_keys.COMMIT_UPDATE_HASH]).hex() in line  # type: ignore[arg-type]


def test_a_message_naming_no_task_is_refused_before_the_data(hospital: Hospital) -> None:
    with pytest.raises(ConsentRefusedError, match="names no task"):
        hospital.train(hospital.message(1, task_id=False), data=hospital.root / "absent.csv")


def test_a_task_not_in_the_policy_is_refused_before_the_data(hospital: Hospital) -> None:
    # Prepare: a second task on the same ledger, never joined
    other = create_task(hospital.chain, TASK, fund=0)
    # Execute / Assert
    with pytest.raises(ConsentRefusedError, match="not in this node's consent policy"):
        hospital.train(hospital.message(1, other), data=hospital.root / "absent.csv")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"learning_rate": 0.5}, "learning-rate"),
        ({"local_epochs": 5}, "local-epochs"),
        ({"batch_size": 4}, "batch-size"),
        ({"dp": "1.0:1e-5"}, "dp"),  # noise the hospital never agreed to
    ],
)
def test_a_run_whose_settings_are_not_the_specs_is_refused(
    hospital: Hospital, change: dict[str, object], named: str
) -> None:
    with pytest.raises(ConsentRefusedError, match=named):
        hospital.train(
            hospital.message(1), TASK.with_changes(**change), data=hospital.root / "absent.csv"
        )


def test_a_policy_spec_that_is_not_the_chains_is_refused(hospital: Hospital) -> None:
    # Prepare: the policy names another spec for the task (one the settings do not fix)
    policy = ConsentPolicy.load(hospital.policy)
    original = policy.entries
    forged = replace(hospital.entry(), spec=replace(hospital.task.spec, holdout_fraction=0.3))
    ConsentPolicy((forged,)).save(hospital.policy)
    try:
        # Execute / Assert
        with pytest.raises(ConsentRefusedError, match="spec hash on chain"):
            hospital.train(hospital.message(1), data=hospital.root / "absent.csv")
    finally:
        ConsentPolicy(original).save(hospital.policy)


def test_the_policy_file_is_private_to_the_hospital(hospital: Hospital) -> None:
    assert hospital.policy.stat().st_mode & 0o777 == 0o600
    assert hospital.policy.parent.stat().st_mode & 0o777 == 0o700


def test_after_leaving_on_chain_the_next_round_is_refused(hospital: Hospital) -> None:
    # Prepare: a task of its own, joined; round 1 trained; then the hospital leaves
    task = create_task(hospital.chain, TASK, fund=0)
    hospital.join(task)
    _open(hospital, task, 1)
    hospital.train(hospital.message(1, task))
    hospital.chain.as_account(hospital.account).leave_task(TaskId(int(task.task_id)))
    # Execute / Assert: the chain says it left, even though its policy still names the task
    with pytest.raises(ConsentRefusedError, match="left the task"):
        hospital.train(hospital.message(2, task), data=hospital.root / "absent.csv")


def test_withdrawing_from_the_policy_refuses_the_task(hospital: Hospital) -> None:
    # Prepare
    task = create_task(hospital.chain, TASK, fund=0)
    hospital.join(task)
    domain = hospital.chain.domain
    # Execute
    removed = withdraw_consent(
        hospital.policy, domain.chain_id, domain.verifying_contract, int(task.task_id)
    )
    # Assert
    assert removed
    with pytest.raises(ConsentRefusedError, match="not in this node's consent policy"):
        hospital.train(hospital.message(1, task), data=hospital.root / "absent.csv")
