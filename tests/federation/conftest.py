"""Fixtures for the federation tests: a ledger on the embedded chain and hand-made replies."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

from fedchain import record_keys
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import Commitment, Consent, RoundId, TaskId
from fedchain.chain.signing import sign_commitment, sign_consent
from fedchain.federation.messages import numpy_to_arrays
from fedchain.hashing import model_hash

Weights = dict[str, np.ndarray[Any, Any]]
BUDGET = 1_000_000
#: The dataset size each member consents with: the replies claim 10 examples by default.
DATASET_SIZE = 100


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def template() -> Weights:
    return {
        "layer.weight": np.zeros((3, 4), dtype=np.float32),
        "layer.bias": np.zeros((3,), dtype=np.float32),
    }


def update(seed: int) -> Weights:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=v.shape).astype(np.float32) for k, v in template().items()}


@dataclass
class Ledger:
    gateway: LedgerGateway
    task_id: TaskId
    participants: list[LocalAccount]


@pytest.fixture
def ledger() -> Ledger:
    coordinator, *participants = devnet_accounts(6)
    gateway = deploy(EmbeddedChain().w3, coordinator)
    task_id, _ = gateway.create_task(sha("spec"), model_hash(template()), BUDGET)
    gateway.fund_task(task_id, 10 * BUDGET)
    members = participants[:4]  # the fifth never joins the task
    gateway.register_organisations([(p.address, f"Site {p.address[:6]}", sha(p.address), "")
                                    for p in members])  # fmt: skip
    consents = [
        sign_consent(p, gateway.domain, Consent(task_id, sha("spec"), DATASET_SIZE, sha(p.address)))
        for p in members
    ]
    gateway.join_task_for(task_id, consents)
    return Ledger(gateway, task_id, participants)


def instruction(node_id: int) -> Message:
    """A train message as the server would send it to ``node_id``."""
    content = RecordDict({record_keys.RECORD_ARRAYS: numpy_to_arrays(template())})
    return Message(content, dst_node_id=node_id, message_type="train")


ReplyMaker = Callable[..., Message]


def make_reply(
    ledger: Ledger,
    node_id: int,
    account: LocalAccount,
    weights: Weights,
    *,
    round_id: int = 1,
    examples: int = 10,
    signer: LocalAccount | None = None,
    claimed_hash: bytes | None = None,
    commitment: bool = True,
) -> Message:
    """A client's train reply; keyword arguments forge what a bad client would."""
    records: dict[str, Any] = {
        record_keys.RECORD_ARRAYS: numpy_to_arrays(weights),
        record_keys.RECORD_METRICS: MetricRecord({record_keys.METRIC_NUM_EXAMPLES: examples}),
    }
    if commitment:
        digest = claimed_hash or model_hash(weights)
        c = Commitment(ledger.task_id, RoundId(round_id), digest, examples)
        signed = sign_commitment(signer or account, ledger.gateway.domain, c)
        records[record_keys.RECORD_COMMITMENT] = ConfigRecord(
            {
                record_keys.COMMIT_PARTICIPANT: account.address,
                record_keys.COMMIT_UPDATE_HASH: digest,
                record_keys.COMMIT_NUM_EXAMPLES: examples,
                record_keys.COMMIT_SIGNATURE: signed.signature,
            }
        )
    return Message(RecordDict(records), reply_to=instruction(node_id))


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(autouse=True)
def flower_identity() -> None:
    """Messages outside a running Flower app need the identity Flower sets for its processes."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
