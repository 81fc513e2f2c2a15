"""The ledger strategy around Flower strategies, on hand-made replies and the embedded chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Error, Message
from flwr.serverapp.strategy import FedAvg, FedMedian

from fedchain.chain.records import RoundId, RoundState
from fedchain.federation.ledger_strategy import LedgerLink, LedgerStrategy
from fedchain.federation.messages import arrays_to_numpy
from fedchain.hashing import model_hash, to_hex
from fedchain.store import ModelStore

from .conftest import BUDGET, Ledger, instruction, make_reply, template, update


def _strategy(ledger: Ledger | None, store: Path, inner: Any = None) -> LedgerStrategy:
    link = None if ledger is None else LedgerLink(ledger.gateway, ledger.task_id, "unused")
    return LedgerStrategy(
        inner or FedAvg(fraction_evaluate=0.0),
        link=link,
        store=ModelStore(store),
        evaluate=lambda weights: (0.75, 0.5),
        template=template(),
        reward_per_round=BUDGET,
    )


def _open(strategy: LedgerStrategy, ledger: Ledger, round_id: int = 1) -> None:
    """What configure_train does first, without a Flower grid."""
    parent = model_hash(template())
    strategy._started[round_id] = 0.0
    strategy._parents[round_id] = parent
    strategy._parent_weights[round_id] = template()
    strategy._sampled[round_id] = [1, 2, 3, 4, 5]
    ledger.gateway.open_round(ledger.task_id, RoundId(round_id), parent)


def _aggregate(strategy: LedgerStrategy, replies: list[Message]) -> tuple[Any, Any]:
    """aggregate_train, then wait for its chain writes (they run on the strategy's queue)."""
    result = strategy.aggregate_train(1, replies)
    strategy.flush()
    return result


def _canonical(replies: list[Message]) -> list[Message]:
    """Replies in the order the wrapper aggregates them: by update hash."""
    return sorted(
        replies, key=lambda m: model_hash(arrays_to_numpy(m.content.array_records["arrays"]))
    )


def test_wrapper_around_fedavg_gives_exactly_fedavgs_model(ledger: Ledger, store_dir: Path) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    replies = _canonical(
        [
            make_reply(ledger, i + 1, p, update(i), examples=10 * (i + 1))
            for i, p in enumerate(ledger.participants[:3])
        ]
    )
    # Execute
    wrapped, _ = _aggregate(strategy, list(reversed(replies)))  # arrival order is arbitrary
    plain, _ = FedAvg(fraction_evaluate=0.0).aggregate_train(1, replies)
    # Assert
    assert wrapped is not None
    assert plain is not None
    ours, theirs = arrays_to_numpy(wrapped), arrays_to_numpy(plain)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_round_is_committed_with_model_evaluation_and_rewards(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    replies = [
        make_reply(ledger, 1, ledger.participants[0], update(0), examples=30),
        make_reply(ledger, 2, ledger.participants[1], update(1), examples=10),
    ]
    # Execute
    arrays, _ = _aggregate(strategy, replies)
    # Assert
    assert arrays is not None
    global_hash = model_hash(arrays_to_numpy(arrays))
    record = ledger.gateway.round(ledger.task_id, RoundId(1))
    assert record.state == RoundState.COMMITTED
    assert record.global_model_hash == global_hash
    assert global_hash in ModelStore(store_dir)
    assert model_hash(update(0)) in ModelStore(store_dir)  # accepted updates are kept too
    owed = [ledger.gateway.owed(p.address) for p in ledger.participants[:2]]
    assert owed == [BUDGET * 3 // 4, BUDGET // 4]
    events = [e for e in ledger.gateway.events() if e.name == "RoundCommitted"]
    assert events[0].args["accuracyPpm"] == 750_000
    assert events[0].args["globalModelHash"] == to_hex(global_hash)
    report = strategy.reports[0]
    assert report.committed
    assert report.gas_used > 0
    assert [p.reward for p in report.participants] == [BUDGET * 3 // 4, BUDGET // 4, 0, 0, 0]
    assert sum(p.absent for p in report.participants) == 3


def _bad_replies(ledger: Ledger) -> dict[str, Message]:
    p = ledger.participants
    nan = update(10)
    nan["layer.bias"][0] = np.nan
    wrong_shape = update(11)
    wrong_shape["layer.bias"] = np.zeros((4,), dtype=np.float32)
    wrong_name = update(12)
    wrong_name["extra"] = np.zeros((1,), dtype=np.float32)
    return {
        "NaN or infinite": make_reply(ledger, 3, p[2], nan),
        "the model's is float32[3]": make_reply(ledger, 3, p[2], wrong_shape),
        "extra ['extra']": make_reply(ledger, 3, p[2], wrong_name),
        "update hash mismatch": make_reply(ledger, 3, p[2], update(13), claimed_hash=b"\x01" * 32),
        "signature is by": make_reply(ledger, 3, p[2], update(14), signer=p[3]),
        "is not a member of task 1": make_reply(ledger, 3, p[4], update(15)),
        "no signed commitment": make_reply(ledger, 3, p[2], update(16), commitment=False),
        "client error: boom": Message(Error(code=0, reason="boom"), reply_to=instruction(3)),
    }


@pytest.mark.parametrize(
    "reason",
    [
        "NaN or infinite",
        "the model's is float32[3]",
        "extra ['extra']",
        "update hash mismatch",
        "signature is by",
        "is not a member of task 1",
        "no signed commitment",
        "client error: boom",
    ],
)
def test_a_bad_reply_is_dropped_with_its_reason_and_the_round_goes_on(
    reason: str, ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    good = [make_reply(ledger, i + 1, ledger.participants[i], update(i)) for i in range(2)]
    bad = _bad_replies(ledger)[reason]
    # Execute
    arrays, _ = _aggregate(strategy, [*good, bad])
    # Assert
    assert arrays is not None
    outcome = strategy.reports[0].participants[2]
    assert not outcome.accepted
    assert reason in outcome.reason
    commitments = [e for e in ledger.gateway.events() if e.name == "CommitmentRecorded"]
    assert len(commitments) == 2  # only the good ones reached the chain
    assert ledger.gateway.round(ledger.task_id, RoundId(1)).commitment_count == 2


def test_a_second_reply_of_one_participant_is_dropped(ledger: Ledger, store_dir: Path) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    p = ledger.participants[0]
    replies = [make_reply(ledger, 1, p, update(0)), make_reply(ledger, 2, p, update(1))]
    # Execute
    _aggregate(strategy, replies)
    # Assert
    outcomes = strategy.reports[0].participants
    assert [o.accepted for o in outcomes[:2]] == [True, False]
    assert outcomes[1].reason == "second reply of this participant"


def test_too_few_valid_replies_fail_the_round_on_chain(ledger: Ledger, store_dir: Path) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir)
    _open(strategy, ledger)
    bad = make_reply(ledger, 1, ledger.participants[0], update(0), claimed_hash=b"\x02" * 32)
    # Execute
    arrays, metrics = _aggregate(strategy, [bad])
    # Assert
    assert arrays is None
    assert metrics is None
    assert ledger.gateway.round(ledger.task_id, RoundId(1)).state == RoundState.FAILED
    assert strategy.reports[0].failed_reason == "0 valid updates, 1 needed"
    # the next round opens on the same parent
    ledger.gateway.open_round(ledger.task_id, RoundId(2), model_hash(template()))


def test_wraps_other_flower_strategies(ledger: Ledger, store_dir: Path) -> None:
    # Prepare
    strategy = _strategy(ledger, store_dir, inner=FedMedian(fraction_evaluate=0.0))
    _open(strategy, ledger)
    replies = [make_reply(ledger, i + 1, ledger.participants[i], update(i)) for i in range(3)]
    # Execute
    arrays, _ = _aggregate(strategy, replies)
    # Assert
    assert arrays is not None
    expected = np.median(np.stack([update(i)["layer.bias"] for i in range(3)]), axis=0)
    np.testing.assert_allclose(arrays_to_numpy(arrays)["layer.bias"], expected, rtol=1e-6)


def test_without_a_ledger_nothing_is_signed_or_committed(store_dir: Path) -> None:
    # Prepare
    strategy = LedgerStrategy(
        FedAvg(fraction_evaluate=0.0),
        link=None,
        store=ModelStore(store_dir),
        evaluate=lambda weights: (0.5, 1.0),
        template=template(),
        reward_per_round=0,
    )
    strategy._started[1], strategy._parents[1], strategy._sampled[1] = 0.0, b"\x00" * 32, [1]
    strategy._parent_weights[1] = template()
    from flwr.app import MetricRecord, RecordDict

    from fedchain import record_keys
    from fedchain.federation.messages import numpy_to_arrays

    reply = Message(
        RecordDict(
            {
                record_keys.RECORD_ARRAYS: numpy_to_arrays(update(0)),
                record_keys.RECORD_METRICS: MetricRecord({record_keys.METRIC_NUM_EXAMPLES: 5}),
            }
        ),
        reply_to=instruction(1),
    )
    # Execute
    arrays, _ = _aggregate(strategy, [reply])
    # Assert
    assert arrays is not None
    assert strategy.reports[0].committed is False
    assert strategy.reports[0].participants[0].accepted


@pytest.mark.parametrize(
    "name",
    ["fedavg", "fedprox", "fedadam", "fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"],
)
def test_every_selectable_strategy_aggregates_and_commits_through_the_wrapper(
    name: str, ledger: Ledger, store_dir: Path
) -> None:
    # Prepare
    from fedchain.federation.flower_strategies import build_strategy
    from fedchain.settings import RunSettings

    inner = build_strategy(RunSettings(strategy=name, proximal_mu=0.1), num_nodes=4)
    strategy = _strategy(ledger, store_dir, inner=inner)
    _open(strategy, ledger)
    if name == "fedadam":  # server-side optimisers keep the global model from configure_train
        inner.current_arrays = template()  # type: ignore[attr-defined]
    replies = [make_reply(ledger, i + 1, ledger.participants[i], update(i)) for i in range(4)]
    # Execute
    arrays, _ = _aggregate(strategy, replies)
    # Assert
    assert arrays is not None
    assert set(arrays_to_numpy(arrays)) == set(template())
    assert ledger.gateway.round(ledger.task_id, RoundId(1)).state == RoundState.COMMITTED


def test_replies_with_the_same_update_aggregate_the_same_in_any_arrival_order(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: two free-riders return the same model with different example counts, and sort
    # after other updates, so that their order moves the last bits of the weighted sum
    same = update(0)
    before = [u for u in map(update, range(1, 40)) if model_hash(u) < model_hash(same)][:2]
    replies = [
        make_reply(ledger, 1, ledger.participants[0], same, examples=7),
        make_reply(ledger, 2, ledger.participants[1], same, examples=29),
        make_reply(ledger, 3, ledger.participants[2], before[0], examples=13),
        make_reply(ledger, 4, ledger.participants[3], before[1], examples=3),
    ]
    orders = [replies, [replies[1], replies[0], replies[3], replies[2]]]

    # Execute
    results = []
    for index, order in enumerate(orders):
        strategy = _strategy(None, store_dir / str(index))
        strategy._started[1], strategy._parents[1] = 0.0, model_hash(template())
        strategy._sampled[1], strategy._parent_weights[1] = [1, 2, 3, 4], template()
        arrays, _ = _aggregate(strategy, order)
        assert arrays is not None
        results.append(arrays_to_numpy(arrays))

    # Assert: bit for bit
    assert model_hash(results[0]) == model_hash(results[1])


def test_the_superlinks_error_reply_for_a_lost_node_leaves_it_absent_once(
    ledger: Ledger, store_dir: Path
) -> None:
    # Prepare: nodes 2, 3 and 4 sampled; 4 died, and the SuperLink (node 1) says so
    strategy = _strategy(None, store_dir)
    strategy._started[1], strategy._parents[1] = 0.0, model_hash(template())
    strategy._sampled[1], strategy._parent_weights[1] = [2, 3, 4], template()
    replies = [
        make_reply(ledger, 2, ledger.participants[0], update(1)),
        make_reply(ledger, 3, ledger.participants[1], update(2)),
        Message(Error(code=0, reason="node 4 went away"), reply_to=instruction(1)),
    ]
    # Execute
    arrays, _ = _aggregate(strategy, replies)
    # Assert
    assert arrays is not None
    outcomes = {p.node_id: p for p in strategy.reports[0].participants}
    assert sorted(outcomes) == [2, 3, 4]
    assert outcomes[4].absent
    assert outcomes[2].accepted
    assert outcomes[3].accepted


def test_frozen_heap_spares_old_objects_from_collection_and_nests() -> None:
    import gc

    from fedchain.federation.coalitions import frozen_heap

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        with frozen_heap():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the inner block left the freeze alone
    assert gc.get_freeze_count() == 0
