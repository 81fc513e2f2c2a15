"""Robust strategies take their attacker count from the run config, checked against their rule."""

from __future__ import annotations

import pytest

from fedchain.federation.flower_strategies import build_strategy
from fedchain.robust import byzantine_count, trim_fraction
from fedchain.settings import RunSettings, SettingsError


def _built(**changes: object) -> object:
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
        ({"strategy": "multikrum", "attack": "alie:0.4"}, "derived from attack alie:0.4"),
        ({"strategy": "fedmedian", "byzantine": 5}, "n >= 2f \\+ 1"),
        ({"strategy": "fedtrimmedavg", "byzantine": 5}, "set byzantine to at most 4"),
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
