"""Robust strategies take their attacker count from the run config, checked against their rule;
the new rules (centered clipping, FLTrust, pre-aggregation) as Flower strategies, and Krum and
MultiKrum saying which updates they kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.app import Message
from flwr.serverapp.strategy import FedMedian, Krum

from fedchain.federation.flower_strategies import HoldoutUpdate, build_strategy, server_seed
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays, train_reply
from fedchain.federation.robust_strategies import (
    RobustAggregation,
    RoundHistory,
    SelectingKrum,
    SelectingMultiKrum,
    StrategyNotPrimed,
    root_size,
)
from fedchain.federation.workload import holdout, initial_weights
from fedchain.robust import byzantine_count, trim_fraction
from fedchain.robust_rules import centered_clipping
from fedchain.settings import RunSettings, SettingsError


def _built(**changes: object) -> Any:
    settings = RunSettings(num_clients=10, **changes)  # type: ignore[arg-type]
    return build_strategy(settings, settings.num_clients)


@pytest.mark.parametrize(
    ("attack", "byzantine", "expected"),
    [
        ("", -1, 0),  # no attack: nothing to tolerate
        ("sign-flip:0.3", -1, 3),  # derived: the run's attackers
        ("gaussian:0.2", -1, 2),
        ("sign-flip:0.3", 1, 1),  # set explicitly: wins over the attack
        ("", 2, 2),
    ],
)
def test_the_attacker_count_is_derived_from_the_attack_unless_set(
    attack: str, byzantine: int, expected: int
) -> None:
    settings = RunSettings(num_clients=10, attack=attack, byzantine=byzantine)
    assert byzantine_count(settings, 10) == expected


def test_krum_multikrum_and_bulyan_get_num_malicious_nodes() -> None:
    krum = _built(strategy="krum", attack="sign-flip:0.3")
    multikrum = _built(strategy="multikrum", attack="sign-flip:0.3")
    bulyan = _built(strategy="bulyan", attack="sign-flip:0.1")
    assert krum.num_malicious_nodes == 3  # type: ignore[attr-defined]
    assert multikrum.num_malicious_nodes == 3  # type: ignore[attr-defined]
    assert multikrum.num_nodes_to_select == 7  # type: ignore[attr-defined]
    assert bulyan.num_malicious_nodes == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("clients", "f"), [(10, 3), (10, 0), (100, 29), (7, 3), (3, 1)])
def test_trimmed_mean_cuts_exactly_f_updates_off_each_tail(clients: int, f: int) -> None:
    settings = RunSettings(num_clients=clients, strategy="fedtrimmedavg", byzantine=f)
    beta = build_strategy(settings, clients).beta  # type: ignore[attr-defined]
    assert int(beta * clients) == f  # Flower cuts int(beta * n) off each tail
    assert 0 <= beta < 0.5


@pytest.mark.parametrize(("clients", "f"), [(10, 3), (10, 1), (100, 29), (9, 3)])
def test_trimmed_mean_still_cuts_f_when_one_update_is_missing(clients: int, f: int) -> None:
    # A dropout, or a leave-one-out coalition: the attackers may all still be there.
    beta = trim_fraction(f, clients)
    assert int(beta * clients) == f
    assert int(beta * (clients - 1)) == f


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "bulyan", "attack": "sign-flip:0.3"}, "n >= 4f \\+ 3: byzantine=3"),
        ({"strategy": "bulyan", "byzantine": 2}, "needs n >= 11, this run samples 10"),
        ({"strategy": "krum", "byzantine": 4}, "n >= 2f \\+ 3"),
        ({"strategy": "multikrum", "attack": "alie:0.4"}, "derived from attack=alie:0.4"),
        ({"strategy": "fedmedian", "byzantine": 5}, "n >= 2f \\+ 1"),
        ({"strategy": "fedtrimmedavg", "byzantine": 5}, "set byzantine=4 or lower"),
        ({"byzantine": -2}, "byzantine must be >= 0, or -1"),
    ],
)
def test_combinations_a_rule_cannot_tolerate_are_refused(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        RunSettings(num_clients=10, **changes)  # type: ignore[arg-type]


def test_fedavg_takes_any_attack_and_the_run_config_carries_byzantine() -> None:
    settings = RunSettings(strategy="fedavg", attack="sign-flip:0.5", byzantine=3)
    assert build_strategy(settings, 10) is not None
    config = settings.to_run_config()
    assert config["byzantine"] == 3
    assert RunSettings.from_run_config(config) == settings


# ---------------------------------------------------------------- robust rules as strategies


def _model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {
        "layer.weight": (scale * rng.normal(size=(3, 4))).astype(np.float32),
        "layer.bias": (scale * rng.normal(size=(3,))).astype(np.float32),
    }


def _reply(weights: dict[str, np.ndarray[Any, Any]], examples: int = 10) -> Message:
    return train_reply(numpy_to_arrays(weights), examples)


def _flat(weights: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights.values()])


def _models(count: int) -> list[dict[str, np.ndarray[Any, Any]]]:
    near = [_model(i) for i in range(count - 2)]
    return [*near, _model(90, scale=20.0), _model(91, scale=20.0)]  # two far away


def test_krum_keeps_the_update_flower_aggregated_and_says_which() -> None:
    # Prepare
    models = _models(7)
    examples = [10, 20, 30, 40, 50, 60, 70]
    replies = [_reply(m, n) for m, n in zip(models, examples, strict=True)]
    krum = SelectingKrum(fraction_evaluate=0.0, num_malicious_nodes=2)
    # Execute
    arrays, _ = krum.aggregate_train(1, replies)
    # Assert: one weight 1, on the update Flower's Krum returned
    assert arrays is not None
    assert krum.last_update_weights is not None
    weights = krum.last_update_weights
    assert sorted(weights) == [0.0] * 6 + [1.0]
    kept = models[weights.index(1.0)]
    plain, _ = Krum(fraction_evaluate=0.0, num_malicious_nodes=2).aggregate_train(
        1, [_reply(m, n) for m, n in zip(models, examples, strict=True)]
    )
    assert plain is not None
    for name, tensor in arrays_to_numpy(plain).items():
        np.testing.assert_array_equal(tensor, kept[name])
        np.testing.assert_array_equal(arrays_to_numpy(arrays)[name], tensor)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_multikrum_weights_are_the_selected_updates_shares_of_examples(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    models = [_model(int(s)) for s in rng.integers(0, 1000, size=8)]
    examples = [int(e) for e in rng.integers(5, 50, size=8)]
    strategy = SelectingMultiKrum(
        fraction_evaluate=0.0, num_malicious_nodes=2, num_nodes_to_select=6
    )
    # Execute
    arrays, _ = strategy.aggregate_train(
        1, [_reply(m, e) for m, e in zip(models, examples, strict=True)]
    )
    # Assert: the weighted mean of the updates with those weights is Flower's aggregate
    weights = strategy.last_update_weights
    assert arrays is not None
    assert weights is not None
    assert sum(w > 0 for w in weights) == 6
    assert sum(weights) == pytest.approx(1.0)
    mean = sum(w * _flat(m) for w, m in zip(weights, models, strict=True))
    np.testing.assert_allclose(_flat(arrays_to_numpy(arrays)), mean, rtol=1e-5, atol=1e-6)
    chosen = [e for w, e in zip(weights, examples, strict=True) if w > 0]
    assert [w for w in weights if w > 0] == pytest.approx([e / sum(chosen) for e in chosen])


def test_centered_clipping_strategy_clips_deltas_around_the_previous_global_update() -> None:
    # Prepare
    previous, parent = _model(100), _model(101)
    models = _models(6)
    strategy = _built(strategy="cclip")
    assert isinstance(strategy, RobustAggregation)
    strategy.prime(RoundHistory(3, parent, previous))
    # Execute
    arrays, _ = strategy.aggregate_train(3, [_reply(m) for m in models])
    # Assert
    assert arrays is not None
    deltas = np.stack([_flat(m) - _flat(parent) for m in models])
    expected = centered_clipping(deltas, _flat(parent) - _flat(previous))
    got = _flat(arrays_to_numpy(arrays))
    np.testing.assert_array_equal(got, (_flat(parent) + expected.vector).astype(np.float32))
    assert expected.weights is not None
    assert strategy.last_update_weights == expected.weights.tolist()
    assert strategy.last_update_weights[-1] < strategy.last_update_weights[0]  # far: clipped


def test_a_robust_strategy_gives_the_same_bits_twice() -> None:
    def run() -> bytes:
        strategy = _built(strategy="cclip", pre_aggregation="nnm", byzantine=2)
        strategy.prime(RoundHistory(2, _model(101), _model(100)))  # type: ignore[attr-defined]
        arrays, _ = strategy.aggregate_train(2, [_reply(m) for m in _models(8)])
        assert arrays is not None
        return _flat(arrays_to_numpy(arrays)).tobytes()

    assert run() == run()


def test_a_robust_strategy_refuses_to_aggregate_a_round_it_was_not_primed_for() -> None:
    strategy = _built(strategy="cclip")
    replies = [_reply(m) for m in _models(4)]
    with pytest.raises(StrategyNotPrimed, match="primed with nothing"):
        strategy.aggregate_train(1, replies)
    strategy.prime(RoundHistory(1, _model(5)))  # type: ignore[attr-defined]
    with pytest.raises(StrategyNotPrimed, match=r"round 2 .* primed with round 1"):
        strategy.aggregate_train(2, replies)


def test_fltrust_strategy_trusts_updates_along_the_servers_own() -> None:
    # Prepare: the server's root-data update moves every weight by +0.1
    parent = _model(7)
    trained = {k: v + np.float32(0.1) for k, v in parent.items()}
    honest = [{k: v + np.float32(0.1 * s) for k, v in parent.items()} for s in (1.0, 2.0, 0.5)]
    flipped = {k: v - np.float32(0.4) for k, v in parent.items()}
    strategy = RobustAggregation("fltrust", server_update=lambda model, _round, _size: trained)
    strategy.prime(RoundHistory(1, parent))
    # Execute
    arrays, _ = strategy.aggregate_train(1, [_reply(m) for m in [*honest, flipped]])
    # Assert: the flipped update counts for nothing; the others, rescaled, move it as g0 does
    assert arrays is not None
    assert strategy.last_update_weights == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(_flat(arrays_to_numpy(arrays)), _flat(trained), atol=1e-6)


def test_fltrust_trains_the_servers_update_on_the_holdout_with_a_seed_no_client_has() -> None:
    settings = RunSettings(num_clients=10, strategy="fltrust")
    strategy = build_strategy(settings, 10)
    assert isinstance(strategy, RobustAggregation)
    assert strategy.server_update == HoldoutUpdate(settings)
    client_seeds = {settings.seed * 1_000_003 + 1 * 1_009 + p for p in range(1000)}
    assert server_seed(settings.seed, 1) not in client_seeds


@pytest.mark.parametrize(
    ("examples", "expected"),
    [
        ((), 100),
        ((45, 52, 47), 100),  # small clients: the paper's 100 root examples
        ((140, 152, 147), 147),
        ((140, 152, 147, 160), 147),  # the lower median of an even count
        ((130, 140, 10**9), 140),  # one inflated claim cannot move it out of the honest range
    ],
)
def test_the_root_set_is_the_median_clients_size_and_at_least_100(
    examples: tuple[int, ...], expected: int
) -> None:
    assert root_size(examples) == expected


def test_fltrust_trains_the_servers_update_on_as_many_examples_as_the_median_client() -> None:
    # Defect: the server trained one epoch on the whole holdout (360 digits, ~23 steps against a
    # client's 5-9), and every update was rescaled to that norm, so clean FLTrust diverged.
    calls: list[tuple[int, int]] = []

    def server_update(model: Any, server_round: int, size: int) -> Any:
        calls.append((server_round, size))
        return model

    strategy = RobustAggregation("fltrust", server_update=server_update)
    strategy.prime(RoundHistory(3, _model(7), examples=(144, 120, 150, 90)))
    assert calls == [(3, 120)]


def test_the_holdout_update_trains_on_a_seeded_subsample_of_the_size_asked() -> None:
    # Prepare: the breast-cancer holdout has more than 40 rows
    settings = RunSettings(num_clients=10, strategy="fltrust", standardize="task")
    update = HoldoutUpdate(settings)
    data = holdout(settings)
    start = initial_weights(settings, data.input_shape, data.num_classes)
    # Execute
    small, again, other_round, whole = (
        update(start, 1, 40),
        update(start, 1, 40),
        update(start, 2, 40),
        update(start, 1, 0),
    )
    # Assert: deterministic for the round; a different subsample (and seed) in another round;
    # fewer steps than the whole holdout, so a smaller update
    flat_start = _flat(start)
    assert _flat(small).tobytes() == _flat(again).tobytes()
    assert _flat(small).tobytes() != _flat(other_round).tobytes()
    small_norm = np.linalg.norm(_flat(small) - flat_start)
    assert small_norm < np.linalg.norm(_flat(whole) - flat_start)
    assert len(data.data) > 40
    larger = update(start, 1, len(data.data) + 5)  # more than the holdout: all of it
    assert _flat(larger).tobytes() == _flat(whole).tobytes()


def test_pre_aggregated_weights_come_back_in_the_order_of_the_replies() -> None:
    # Prepare: krum after NNM keeps one mixed row; its weight is split among n - f updates
    parent = _model(50)
    models = _models(7)
    strategy = _built(strategy="krum", pre_aggregation="nnm", byzantine=2)
    strategy.prime(RoundHistory(1, parent))  # type: ignore[attr-defined]
    replies = [_reply(m) for m in models]
    # Execute
    strategy.aggregate_train(1, replies)
    # Assert
    weights = strategy.last_update_weights  # type: ignore[attr-defined]
    assert weights is not None
    assert sum(weights) == pytest.approx(1.0)
    assert weights[-2:] == [0.0, 0.0]  # the far ones are no one's nearest
    assert sum(w > 0 for w in weights) == 5


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"strategy": "cclip"}, RobustAggregation),
        ({"strategy": "fltrust"}, RobustAggregation),
        ({"strategy": "fedmedian", "pre_aggregation": "nnm"}, RobustAggregation),
        ({"strategy": "multikrum", "pre_aggregation": "bucketing:2"}, RobustAggregation),
        ({"strategy": "krum"}, SelectingKrum),
        ({"strategy": "multikrum"}, SelectingMultiKrum),
        ({"strategy": "fedmedian"}, FedMedian),  # unchanged without pre-aggregation
    ],
)
def test_each_name_builds_its_strategy(changes: dict[str, object], kind: type) -> None:
    assert type(_built(**changes)) is kind


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "cclip", "pre_aggregation": "median"}, "not one of: '' \\(none\\), 'nnm'"),
        ({"strategy": "cclip", "pre_aggregation": "bucketing:1"}, "bucket size S >= 2"),
        ({"strategy": "fedavg", "pre_aggregation": "nnm"}, "fedavg is not one it feeds"),
        ({"strategy": "fltrust", "pre_aggregation": "nnm"}, "fltrust is not one it feeds"),
        ({"strategy": "cclip", "byzantine": 5}, "cclip .* n >= 2f \\+ 1: byzantine=5"),
        ({"strategy": "cclip", "pre_aggregation": "nnm", "byzantine": 5}, "nnm tolerates"),
        (
            {"strategy": "cclip", "pre_aggregation": "bucketing:2", "attack": "alie:0.3"},
            "among n buckets .* needs n >= 7, this run's 10 sampled clients make 5 buckets of 2",
        ),
        ({"strategy": "krum", "pre_aggregation": "bucketing:3", "byzantine": 1}, "4 buckets of 3"),
    ],
)
def test_pre_aggregation_and_the_new_rules_are_checked_before_the_run(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        RunSettings(num_clients=10, **changes)  # type: ignore[arg-type]


def test_fltrust_takes_any_attacker_count_and_the_run_config_carries_pre_aggregation() -> None:
    assert build_strategy(RunSettings(strategy="fltrust", attack="sign-flip:0.6"), 10) is not None
    settings = RunSettings(strategy="cclip", pre_aggregation="bucketing:2")
    config = settings.to_run_config()
    assert config["pre-aggregation"] == "bucketing:2"
    assert RunSettings.from_run_config(config) == settings
