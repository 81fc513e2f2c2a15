"""Attack specs and the updates each simulated attacker forges."""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from fedchain.attacks import (
    ATTACK_KINDS,
    GAUSSIAN_STD,
    SIGN_FLIP_SCALE,
    AttackError,
    AttackPlan,
    alie_z,
    flipped_labels,
    parse_attack,
)
from fedchain.errors import FedchainError

Weights = dict[str, np.ndarray[Any, Any]]
RECEIVED: Weights = {
    "layer.weight": np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4),
    "layer.bias": np.array([0.5, -0.5, 0.25], dtype=np.float32),
}


class _Trainer:
    """A stand-in for local training: partition p moves every weight by p + 1 (flipped: -)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, partition_id: int, flip_labels: bool) -> tuple[Weights, float]:
        self.calls.append((partition_id, flip_labels))
        step = -(partition_id + 1.0) if flip_labels else partition_id + 1.0
        return {k: (v + step).astype(v.dtype) for k, v in RECEIVED.items()}, 0.1 * partition_id


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_every_kind_parses_with_its_fraction(kind: str) -> None:
    plan = parse_attack(f"{kind}:0.3")
    assert plan == AttackPlan(kind, 0.3)
    assert plan.attackers(10) == frozenset({7, 8, 9})
    assert plan.role(9, 10) == kind
    assert plan.role(0, 10) == "honest"


def test_no_attack_and_a_zero_fraction_mean_no_attackers() -> None:
    assert parse_attack("") is None
    plan = parse_attack("sign-flip:0")
    assert plan is not None
    assert plan.attackers(10) == frozenset()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("poison:0.3", "unknown attack 'poison'"),
        ("sign-flip", "needs the fraction of attackers"),
        ("sign-flip:lots", "needs the fraction of attackers"),
        ("sign-flip:1", "must lie in [0, 1)"),
        ("gaussian:1.5", "must lie in [0, 1)"),
        ("gaussian:-0.1", "must lie in [0, 1)"),
        ("alie:nan", "must lie in [0, 1)"),
    ],
)
def test_bad_specs_are_refused_with_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(AttackError, match=message.replace("[", r"\[").replace(")", r"\)")) as err:
        parse_attack(spec)
    assert isinstance(err.value, FedchainError)
    assert isinstance(err.value, ValueError)


def test_free_rider_returns_the_global_model() -> None:
    trainer = _Trainer()
    update, _ = AttackPlan("free-rider", 0.3).forge(RECEIVED, 9, 10, train=trainer, seed=1)
    for name, weights in RECEIVED.items():
        np.testing.assert_array_equal(update[name], weights)
    assert not trainer.calls  # trains nothing


def test_noisy_free_rider_and_gaussian_add_noise_of_their_scale() -> None:
    big = {"w": np.zeros((200, 200), dtype=np.float32)}
    plan = AttackPlan("gaussian", 0.3)
    noisy, _ = plan.forge(big, 9, 10, train=_Trainer(), seed=1)
    rider, _ = AttackPlan("noisy-free-rider", 0.3).forge(big, 9, 10, train=_Trainer(), seed=1)
    assert noisy["w"].dtype == np.float32
    assert float(noisy["w"].std()) == pytest.approx(GAUSSIAN_STD, rel=0.02)
    assert 0 < float(rider["w"].std()) < 0.01
    again, _ = plan.forge(big, 9, 10, train=_Trainer(), seed=1)
    np.testing.assert_array_equal(again["w"], noisy["w"])  # deterministic for the seed


def test_sign_flip_sends_the_scaled_opposite_of_its_honest_update() -> None:
    trainer = _Trainer()
    update, loss = AttackPlan("sign-flip", 0.3).forge(RECEIVED, 9, 10, train=trainer, seed=1)
    assert trainer.calls == [(9, False)]
    for name, weights in RECEIVED.items():  # honest step: +10 on every weight
        np.testing.assert_allclose(update[name], weights - SIGN_FLIP_SCALE * 10.0)
    assert loss == pytest.approx(0.9)


def test_label_flip_trains_on_flipped_labels() -> None:
    trainer = _Trainer()
    update, _ = AttackPlan("label-flip", 0.3).forge(RECEIVED, 8, 10, train=trainer, seed=1)
    assert trainer.calls == [(8, True)]
    np.testing.assert_allclose(update["layer.bias"], RECEIVED["layer.bias"] - 9.0)
    np.testing.assert_array_equal(flipped_labels(np.array([0, 1, 1, 0]), 2), [1, 0, 0, 1])
    np.testing.assert_array_equal(flipped_labels(np.array([0, 3, 9]), 10), [9, 6, 0])


def test_alie_colluders_send_mean_minus_z_std_of_their_honest_updates() -> None:
    # Prepare: attackers 7, 8, 9 of 10; honest steps +8, +9, +10
    plan = AttackPlan("alie", 0.3)
    steps = np.array([8.0, 9.0, 10.0])
    z = NormalDist().inv_cdf(0.7)  # s = floor(10/2 + 1) - 3 = 3; (10 - 3) / 10
    # Execute
    forged = [plan.forge(RECEIVED, p, 10, train=_Trainer(), seed=p)[0] for p in (7, 8, 9)]
    # Assert
    assert alie_z(10, 3) == pytest.approx(z)
    expected = steps.mean() - z * steps.std()
    for update in forged:
        np.testing.assert_allclose(update["layer.weight"], RECEIVED["layer.weight"] + expected)
        np.testing.assert_array_equal(update["layer.bias"], forged[0]["layer.bias"])


def test_alie_z_is_zero_when_no_shift_stays_hidden() -> None:
    assert alie_z(10, 1) == 0.0  # s = 5: the median quantile
    assert alie_z(20, 5) == pytest.approx(NormalDist().inv_cdf(0.7))
    assert alie_z(2, 0) == 0.0
