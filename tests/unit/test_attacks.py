"""Attack specs and the updates each simulated attacker forges."""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from fedchain.attacks import (
    ATTACK_KINDS,
    GAUSSIAN_STD,
    INFLATE_FACTOR,
    IPM_EPSILON,
    SIGN_FLIP_SCALE,
    AttackError,
    AttackPlan,
    alie_z,
    flipped_labels,
    parse_attack,
)
from fedchain.errors import FedchainError
from fedchain.hashing import model_hash

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
        ("inflate:0.3", "unknown attack 'inflate'"),
        ("sybils:0.3", "unknown attack 'sybils'"),
        ("ipm", "needs the fraction of attackers"),
        ("inflate-examples:x", "needs the fraction of attackers"),
        ("sybil:1", "must lie in [0, 1)"),
        ("ipm:-0.2", "must lie in [0, 1)"),
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


def _held(partition_id: int) -> int:
    """A stand-in for the partitions' sizes: partition p holds 10 * (p + 1) examples."""
    return 10 * (partition_id + 1)


def test_inflate_examples_trains_honestly_and_claims_a_hundredfold_count() -> None:
    # Prepare
    trainer = _Trainer()
    plan = AttackPlan("inflate-examples", 0.3)
    # Execute
    update, loss = plan.forge(RECEIVED, 8, 10, train=trainer, seed=1)
    claimed = plan.claimed_examples(8, 10, _held)
    # Assert: its honest update (+9 on every weight), but 100 x its 90 examples claimed
    assert trainer.calls == [(8, False)]
    for name, weights in RECEIVED.items():
        np.testing.assert_allclose(update[name], weights + 9.0)
    assert loss == pytest.approx(0.8)
    assert INFLATE_FACTOR == 100
    assert claimed == 9_000


@pytest.mark.parametrize("kind", ["sign-flip", "label-flip", "alie", "ipm", "free-rider"])
def test_other_attackers_claim_the_examples_they_hold(kind: str) -> None:
    assert AttackPlan(kind, 0.3).claimed_examples(8, 10, _held) == 90


def test_sybils_send_copies_of_the_first_sybils_honest_update_and_count() -> None:
    # Prepare: sybils 7, 8, 9 of 10; the first one's honest step is +8, it holds 80 examples
    plan = AttackPlan("sybil", 0.3)
    trainers = {p: _Trainer() for p in (7, 8, 9)}
    # Execute
    forged = {p: plan.forge(RECEIVED, p, 10, train=trainers[p], seed=p) for p in (7, 8, 9)}
    # Assert
    for p, (update, loss) in forged.items():
        assert trainers[p].calls == [(7, False)]  # only the first sybil's data is trained on
        for name, weights in RECEIVED.items():
            np.testing.assert_array_equal(update[name], weights + 8.0)
        assert loss == pytest.approx(0.7)
        assert plan.claimed_examples(p, 10, _held) == 80
    assert len({model_hash(update) for update, _ in forged.values()}) == 1


def test_sybil_copies_do_not_share_arrays_with_the_training() -> None:
    trained: Weights = {k: v + 8.0 for k, v in RECEIVED.items()}
    update, _ = AttackPlan("sybil", 0.3).forge(
        RECEIVED, 9, 10, train=lambda p, flip: (trained, 0.0), seed=1
    )
    update["layer.bias"][0] = 99.0  # one copy altered after the fact leaves the source as it was
    assert trained["layer.bias"][0] == pytest.approx(8.5)


def test_ipm_sends_minus_epsilon_times_the_honest_clients_mean_update() -> None:
    # Prepare: attackers 7, 8, 9 of 10; honest partitions 0..6 step +1..+7 (mean +4)
    plan = AttackPlan("ipm", 0.3)
    trainer = _Trainer()
    # Execute
    forged = [plan.forge(RECEIVED, p, 10, train=trainer, seed=p) for p in (7, 8, 9)]
    # Assert: w - 0.1 * 4 on every weight, for every attacker; honest losses 0.0..0.6
    assert IPM_EPSILON == 0.1
    assert sorted({p for p, _ in trainer.calls}) == list(range(7))
    assert all(not flip for _, flip in trainer.calls)
    for update, loss in forged:
        for name, weights in RECEIVED.items():
            np.testing.assert_allclose(update[name], weights - 0.4, rtol=1e-6)
            assert update[name].dtype == weights.dtype
        assert loss == pytest.approx(0.3)


def test_ipm_with_every_client_attacking_sends_the_global_model_back() -> None:
    update, _ = AttackPlan("ipm", 0.9).forge(RECEIVED, 0, 1, train=_Trainer(), seed=1)
    for name, weights in RECEIVED.items():
        np.testing.assert_array_equal(update[name], weights)


def test_ipm_matches_byzfls_inner_product_manipulation(
    byzfl_reference: Callable[[str], Any],
) -> None:
    # Prepare: random honest updates of 7 honest partitions
    rng = np.random.default_rng(3)
    honest = {
        p: {k: (v + rng.normal(0, 0.5, v.shape)).astype(v.dtype) for k, v in RECEIVED.items()}
        for p in range(7)
    }
    names = sorted(RECEIVED)
    deltas = np.stack(
        [
            np.concatenate([(honest[p][k] - RECEIVED[k]).astype(np.float64).ravel() for k in names])
            for p in range(7)
        ]
    )
    # Execute
    update, _ = AttackPlan("ipm", 0.3).forge(
        RECEIVED, 9, 10, train=lambda p, flip: (honest[p], 0.0), seed=1
    )
    attacks = byzfl_reference("byzfl.attacks.attacks")
    reference = attacks.InnerProductManipulation(tau=IPM_EPSILON)(deltas)
    # Assert: the forged delta is byzfl's -tau * mean of the honest deltas
    ours = np.concatenate([(update[k] - RECEIVED[k]).astype(np.float64).ravel() for k in names])
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_colluders_in_one_process_train_each_partition_once_per_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: count the honest trainings the attackers of a process ask for
    from fedchain.federation import participant
    from fedchain.settings import RunSettings

    calls: list[int] = []

    def fake_train(settings: Any, data: Any, weights: Any, **kwargs: Any) -> tuple[Weights, float]:
        calls.append(kwargs["seed"])
        return {k: v + 1.0 for k, v in weights.items()}, 0.0

    monkeypatch.setattr(participant, "train_locally", fake_train)
    monkeypatch.setattr(participant, "client_data", lambda settings, p, n: p)
    settings = RunSettings(num_clients=10, attack="ipm:0.3")

    def trainer(round_id: int) -> Any:
        return participant._attacker_training(
            settings, RECEIVED, b"model", server_round=round_id, partitions=10, mu=0.0
        )

    plan = AttackPlan("ipm", 0.3)
    # Execute: three attackers in round 1, one in round 2
    round_one = [plan.forge(RECEIVED, p, 10, train=trainer(1), seed=p)[0] for p in (7, 8, 9)]
    plan.forge(RECEIVED, 9, 10, train=trainer(2), seed=9)
    # Assert: 7 honest partitions trained once per round, and the same update for all
    assert len(calls) == 14
    assert len(set(calls)) == 14
    assert len({model_hash(u) for u in round_one}) == 1
