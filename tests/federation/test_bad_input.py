"""Bad input reaching the server: each is a clear error, the round goes on, nothing recorded that
should not be.

The ledger strategy on the embedded chain gets two good replies and one bad one; the bad one must
be dropped with a reason that names the problem, the round must commit with the two good ones,
and the bad participant must get no commitment, no reward and no stored update. Cases already
covered by ``test_ledger_strategy.py`` (NaN, wrong shape, extra tensor, wrong hash, another
signer, unregistered signer, no commitment, client error) are not repeated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.clientapp.client_app import ClientAppException
from flwr.serverapp.strategy import FedAvg

from fedchain import record_keys
from fedchain.chain.errors import LedgerRoundAlreadyCommitted, LedgerRoundBudgetExceeded
from fedchain.chain.records import Commitment, RoundId, RoundState, TaskId
from fedchain.chain.signing import LedgerDomain, sign_commitment
from fedchain.federation.ledger_strategy import LedgerLink, LedgerStrategy
from fedchain.federation.messages import numpy_to_arrays
from fedchain.hashing import model_hash
from fedchain.ml.data import load_csv
from fedchain.ml.errors import DatasetError
from fedchain.store import ModelStore

from .conftest import (
    BUDGET,
    DATASET_SIZE,
    Ledger,
    Weights,
    instruction,
    make_reply,
    template,
    update,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

GOOD = 2  # participants 0 and 1 reply well; participant 2 (or another) sends the bad reply
BAD_NODE = 3


def _strategy(
    ledger: Ledger, store: Path, *, direct: bool = False, reward_per_round: int = BUDGET
) -> LedgerStrategy:
    return LedgerStrategy(
        FedAvg(fraction_evaluate=0.0),
        link=LedgerLink(ledger.gateway, ledger.task_id, "unused", direct=direct),
        store=ModelStore(store),
        evaluate=lambda weights: (0.75, 0.5),
        template=template(),
        reward_per_round=reward_per_round,
    )


def _open(
    strategy: LedgerStrategy, ledger: Ledger, round_id: int = 1, on_chain: bool = True
) -> None:
    """What configure_train does first, without a Flower grid."""
    parent = model_hash(template())
    strategy._started[round_id] = 0.0
    strategy._parents[round_id] = parent
    strategy._parent_weights[round_id] = template()
    strategy._sampled[round_id] = [1, 2, BAD_NODE]
    if on_chain:
        ledger.gateway.open_round(ledger.task_id, RoundId(round_id), parent)


def _good(ledger: Ledger, round_id: int = 1) -> list[Message]:
    return [
        make_reply(ledger, i + 1, ledger.participants[i], update(i), round_id=round_id)
        for i in range(GOOD)
    ]


def _signed_reply(
    ledger: Ledger,
    account: LocalAccount,
    weights: Weights,
    *,
    task_id: int | None = None,
    round_id: int = 1,
    domain: LedgerDomain | None = None,
    signature: bytes | None = None,
    examples: Any = 10,
    committed_examples: Any = 10,
    arrays: ArrayRecord | None = None,
    malleate: bool = False,
) -> Message:
    """A reply whose commitment is signed for whatever a forger chose."""
    digest = model_hash(weights)
    commitment = Commitment(TaskId(task_id or ledger.task_id), RoundId(round_id), digest, 10)
    signed = sign_commitment(account, domain or ledger.gateway.domain, commitment)
    if malleate:  # the signer's other valid signature: (r, n - s), the parity flipped
        r, s, v = signed.signature[:32], signed.signature[32:64], signed.signature[64]
        high_s = (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big")
        signature = r + high_s + bytes([55 - v])
    records: dict[str, Any] = {
        record_keys.RECORD_ARRAYS: arrays if arrays is not None else numpy_to_arrays(weights),
        record_keys.RECORD_METRICS: MetricRecord({record_keys.METRIC_NUM_EXAMPLES: examples}),
        record_keys.RECORD_COMMITMENT: ConfigRecord(
            {
                record_keys.COMMIT_PARTICIPANT: account.address,
                record_keys.COMMIT_UPDATE_HASH: digest,
                record_keys.COMMIT_NUM_EXAMPLES: committed_examples,
                record_keys.COMMIT_SIGNATURE: signature
                if signature is not None
                else signed.signature,
            }
        ),
    }
    return Message(RecordDict(records), reply_to=instruction(BAD_NODE))


def _with(**changes: np.ndarray[Any, Any]) -> Weights:
    weights = update(20)
    weights.update(changes)
    return weights


def _unreadable() -> ArrayRecord:
    """Arrays whose bytes are not a .npy payload at all."""
    record = numpy_to_arrays(update(21))
    name = next(iter(record))
    real = record[name]
    record[name] = Array(dtype=real.dtype, shape=real.shape, stype=real.stype, data=b"\x93NUMPY?")
    return record


def _bad_reply(ledger: Ledger, case: str) -> Message:
    """The bad reply of participant 2 for ``case``."""
    p, domain = ledger.participants, ledger.gateway.domain
    bias = template()["layer.bias"]
    weights = update(20)
    forged: dict[str, Any] = {
        "+inf": {"weights": _with(**{"layer.bias": np.full_like(bias, np.inf)})},
        "-inf": {"weights": _with(**{"layer.bias": np.full_like(bias, -np.inf)})},
        "float64": {"weights": _with(**{"layer.bias": np.zeros(bias.shape, np.float64)})},
        "int32": {"weights": _with(**{"layer.bias": np.zeros(bias.shape, np.int32)})},
        "missing tensor": {"weights": {"layer.weight": update(20)["layer.weight"]}},
        "renamed tensor": {
            "weights": {"layer.weight": weights["layer.weight"], "layer.b": weights["layer.bias"]}
        },
        "far larger": {"weights": _with(extra=np.zeros(1_000_000, np.float32))},
        "unreadable arrays": {"weights": weights, "arrays": _unreadable()},
        "garbage signature": {"weights": weights, "signature": b"\x01" * 65},
        "zero signature": {"weights": weights, "signature": b"\x00" * 65},
        "signature out of range": {"weights": weights, "signature": b"\xff" * 65},
        "signature with v 5": {"weights": weights, "signature": b"\x01" * 64 + b"\x05"},
        "malleated signature": {"weights": weights, "malleate": True},
        "short signature": {"weights": weights, "signature": b"\x01" * 20},
        "other chain": {"weights": weights, "domain": LedgerDomain(1, domain.verifying_contract)},
        "other contract": {
            "weights": weights,
            "domain": LedgerDomain(domain.chain_id, ledger.gateway.token.address),
        },
        "replay of round 2": {"weights": weights, "round_id": 2},
        "replay of task 2": {"weights": weights, "task_id": int(ledger.task_id) + 1},
        "non-integer examples": {"weights": weights, "committed_examples": "ten"},
        "examples differ": {"weights": weights, "committed_examples": 11},
        "zero examples": {"weights": weights, "examples": 0, "committed_examples": 0},
    }[case]
    return _signed_reply(ledger, p[2], **forged)


CASES = {
    "+inf": "NaN or infinite",
    "-inf": "NaN or infinite",
    "float64": "tensor layer.bias is float64[3], the model's is float32[3]",
    "int32": "tensor layer.bias is int32[3], the model's is float32[3]",
    "missing tensor": "missing ['layer.bias']",
    "renamed tensor": "missing ['layer.bias'], extra ['layer.b']",
    "far larger": "far larger than the model",
    "unreadable arrays": "arrays cannot be read",
    "garbage signature": "signature is by",  # a valid form: some key's, not the participant's
    "zero signature": "bad signature: the signature of",
    "signature out of range": "bad signature: the signature of",
    "signature with v 5": "bad signature: the signature of",
    "malleated signature": "upper half of the curve order",
    "short signature": "bad signature: signature must be 65 bytes",
    "other chain": "signature is by",
    "other contract": "signature is by",
    "replay of round 2": "signature is by",
    "replay of task 2": "signature is by",
    "non-integer examples": "malformed commitment",
    "examples differ": "committed 11 examples, reported 10",
    "zero examples": "must be a positive integer",
}


def _assert_round_went_on_without(
    strategy: LedgerStrategy, ledger: Ledger, store: Path, bad: LocalAccount, reason: str
) -> None:
    outcomes = {o.node_id: o for o in strategy.reports[0].participants}
    assert not outcomes[BAD_NODE].accepted
    assert reason in outcomes[BAD_NODE].reason
    assert outcomes[BAD_NODE].reward == 0
    assert all(outcomes[n].accepted for n in (1, 2))
    gateway = ledger.gateway
    record = gateway.round(ledger.task_id, RoundId(1))
    assert record.state == RoundState.COMMITTED
    assert record.commitment_count == GOOD
    recorded = {e.args["participant"] for e in gateway.events() if e.name == "CommitmentRecorded"}
    assert bad.address not in recorded
    assert gateway.owed(bad.address) == 0
    assert sum(gateway.owed(p.address) for p in ledger.participants[:GOOD]) == BUDGET
    assert model_hash(update(20)) not in ModelStore(store)  # the bad update was not kept
    assert model_hash(update(0)) in ModelStore(store)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_reply_is_dropped_with_a_clear_reason_and_the_round_commits_the_rest(
    case: str, ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    bad = _bad_reply(ledger, case)
    # Execute
    arrays, _ = strategy.aggregate_train(1, [*_good(ledger), bad])
    strategy.flush()
    # Assert
    assert arrays is not None
    _assert_round_went_on_without(strategy, ledger, store_dir, ledger.participants[2], CASES[case])


def test_a_signer_that_left_the_task_is_dropped_and_the_round_commits_the_rest(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    leaver = ledger.participants[2]
    ledger.gateway.as_account(leaver).leave_task(ledger.task_id)
    bad = make_reply(ledger, BAD_NODE, leaver, update(20))
    # Execute
    arrays, _ = strategy.aggregate_train(1, [*_good(ledger), bad])
    strategy.flush()
    # Assert
    assert arrays is not None
    reason = f"{leaver.address} left task {ledger.task_id} from round 1"
    _assert_round_went_on_without(strategy, ledger, store_dir, leaver, reason)


def test_a_signer_that_never_joined_the_task_is_dropped(ledger: Ledger, store_dir: Path) -> None:
    # Prepare: the fifth participant signs a valid commitment but never consented to the task
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    outsider = ledger.participants[4]
    bad = make_reply(ledger, BAD_NODE, outsider, update(20))
    # Execute
    arrays, _ = strategy.aggregate_train(1, [*_good(ledger), bad])
    strategy.flush()
    # Assert
    assert arrays is not None
    reason = f"{outsider.address} is not a member of task {ledger.task_id}"
    _assert_round_went_on_without(strategy, ledger, store_dir, outsider, reason)


def test_num_examples_above_the_consented_dataset_size_is_refused_before_relaying(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: participant 2 consented to 100 examples and signs a reply claiming 500
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    inflated = ledger.participants[2]
    bad = make_reply(ledger, BAD_NODE, inflated, update(20), examples=5 * DATASET_SIZE)
    # Execute
    arrays, _ = strategy.aggregate_train(1, [*_good(ledger), bad])
    strategy.flush()
    # Assert: refused with its reason, never relayed (so no CommitmentSkipped either)
    assert arrays is not None
    reason = f"num-examples {5 * DATASET_SIZE} is above the dataset size {DATASET_SIZE}"
    _assert_round_went_on_without(strategy, ledger, store_dir, inflated, reason)
    skipped = [e for e in ledger.gateway.events() if e.name == "CommitmentSkipped"]
    assert skipped == []


def test_a_reply_differing_from_its_own_direct_commitment_is_dropped(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: participant 2 committed one update on chain itself, then replies with another.
    strategy = _strategy(ledger, store_dir, direct=True)
    _open(strategy, ledger)
    two = ledger.participants[2]
    on_chain = Commitment(ledger.task_id, RoundId(1), model_hash(update(30)), 10)
    ledger.gateway.as_account(two).submit_commitment(on_chain)
    bad = make_reply(ledger, BAD_NODE, two, update(20))
    # Execute
    arrays, _ = strategy.aggregate_train(1, [*_good(ledger), bad])
    strategy.flush()
    # Assert: the chain keeps its one (direct) commitment of participant 2, nothing is relayed
    assert arrays is not None
    outcome = {o.node_id: o for o in strategy.reports[0].participants}[BAD_NODE]
    assert not outcome.accepted
    assert "a different commitment" in outcome.reason
    assert "is on chain for this round" in outcome.reason
    events = [e for e in ledger.gateway.events() if e.name == "CommitmentRecorded"]
    assert [(e.args["participant"], e.args["relayed"]) for e in events].count(
        (two.address, True)
    ) == 0
    assert ledger.gateway.owed(two.address) == 0


def test_malformed_csv_at_a_client_is_dropped_with_the_sites_message(
    ledger: Ledger, store_dir: Path, tmp_path: Path
) -> None:
    # Prepare: a site's CSV with a bad value, and the error reply Flower's simulation engine
    # makes of the ClientApp's exception (test_site_input.py shows the client raising it).
    site_file = tmp_path / "site.csv"
    site_file.write_text("age,weight,label\n61,70,0\nold,82,1\n")
    with pytest.raises(DatasetError) as raised:
        load_csv(site_file)
    wrapped = ClientAppException(str(raised.value))
    reason = str(type(wrapped)) + ":<'" + str(wrapped) + "'>"
    error = Message(Error(code=2, reason=reason), reply_to=instruction(BAD_NODE))
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    # Execute
    arrays, _ = strategy.aggregate_train(1, [*_good(ledger), error])
    strategy.flush()
    # Assert
    assert arrays is not None
    outcome = {o.node_id: o for o in strategy.reports[0].participants}[BAD_NODE]
    assert not outcome.accepted
    assert outcome.reason.startswith("client error: ")
    assert "row 2 (line 3), column 'age': 'old' is not a number" in outcome.reason
    record = ledger.gateway.round(ledger.task_id, RoundId(1))
    assert (record.state, record.commitment_count) == (RoundState.COMMITTED, GOOD)


def test_rewards_above_the_tasks_budget_are_refused_and_nothing_is_attributed(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: a server configured to pay twice the budget the task holds on chain.
    strategy = _strategy(ledger, store_dir, reward_per_round=2 * BUDGET)
    _open(strategy, ledger)
    # Execute / Assert: a clear error naming the budget, and the round stays open, unpaid
    strategy.aggregate_train(1, _good(ledger))
    with pytest.raises(LedgerRoundBudgetExceeded, match=f"above the task's round budget {BUDGET}"):
        strategy.flush()
    gateway = ledger.gateway
    assert gateway.round(ledger.task_id, RoundId(1)).state == RoundState.OPEN
    assert gateway.task(ledger.task_id).attributed == 0
    assert not [e for e in gateway.events() if e.name in ("CommitmentRecorded", "RewardAttributed")]


def test_a_round_committed_twice_keeps_the_first_record(ledger: Ledger, store_dir: Path) -> None:
    # Prepare: round 1 committed, then a server replays it with other replies.
    first = _strategy(ledger, store_dir)
    _open(first, ledger)
    arrays, _ = first.aggregate_train(1, _good(ledger))
    first.flush()
    assert arrays is not None
    committed = ledger.gateway.round(ledger.task_id, RoundId(1))
    owed = [ledger.gateway.owed(p.address) for p in ledger.participants[:3]]
    again = _strategy(ledger, store_dir)
    _open(again, ledger, on_chain=False)
    replay = [make_reply(ledger, BAD_NODE, ledger.participants[2], update(40))]
    # Execute / Assert
    again.aggregate_train(1, replay)
    with pytest.raises(LedgerRoundAlreadyCommitted, match="is already committed: it cannot change"):
        again.flush()
    assert ledger.gateway.round(ledger.task_id, RoundId(1)) == committed
    assert [ledger.gateway.owed(p.address) for p in ledger.participants[:3]] == owed
