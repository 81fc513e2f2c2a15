"""The privacy terms, their parsing and fixed point, and Opacus' accounting (issue 17)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedchain.errors import FedchainError
from fedchain.ml import MODEL_NAMES, build_model, get_weights, load_digits, scale_pixels, train
from fedchain.ml.dp_training import train_private
from fedchain.ml.errors import TrainingError
from fedchain.ml.privacy import (
    epsilon_of,
    epsilon_spent,
    noise_multiplier,
    sample_rate,
    steps_per_round,
)
from fedchain.privacy import (
    DEFAULT_DELTA,
    EPSILON_SCALE,
    PrivacyError,
    PrivacyTerms,
    parse_dp,
    to_micro,
)

SITE = {"dataset_size": 40, "batch_size": 16, "local_epochs": 1}


def test_parse_dp_reads_epsilon_and_optional_delta() -> None:
    assert parse_dp("8") == PrivacyTerms(epsilon=8.0, delta=DEFAULT_DELTA)
    assert parse_dp(" 2.5:1e-6 ") == PrivacyTerms(epsilon=2.5, delta=1e-6)


@pytest.mark.parametrize(
    "text", ["", "abc", "0", "-1", "8:0", "8:1", "8:x", "1:2:3", "inf", ":1e-5"]
)
def test_parse_dp_refuses_bad_values_with_one_line_naming_the_flag(text: str) -> None:
    with pytest.raises(PrivacyError) as caught:
        parse_dp(text)
    message = str(caught.value)
    assert "--dp" in message
    assert "\n" not in message
    assert isinstance(caught.value, FedchainError)
    assert isinstance(caught.value, ValueError)


def test_terms_refuse_a_non_positive_clip_norm() -> None:
    with pytest.raises(PrivacyError, match="clip"):
        PrivacyTerms(epsilon=1.0, clip_norm=0.0)


def test_to_micro_rounds_up_and_maps_six_decimals_to_themselves() -> None:
    assert EPSILON_SCALE == 10**6
    assert to_micro(0.3) == 300_000  # 0.3 * 1e6 is 300000.00000000006 in floats
    assert to_micro(8) == 8_000_000
    assert to_micro(1.0000001) == 1_000_001  # rounded up, never under-reported
    assert to_micro(0.0) == 0
    with pytest.raises(PrivacyError):
        to_micro(-0.1)


def test_the_rdp_epsilon_matches_opacus_published_example() -> None:
    # Opacus' own accountant test (opacus/tests/accountants_test.py, test_rdp_accountant):
    # sigma 1.5, sample rate 0.04, int(90 / 0.04) steps, delta 1e-5 give epsilon 7.32911117143.
    epsilon = epsilon_of(1.5, sample_rate=0.04, steps=int(90 / 0.04), delta=1e-5)

    assert epsilon == pytest.approx(7.32911117143, abs=1e-6)


def test_steps_follow_opacus_poisson_loader() -> None:
    # 400 examples in batches of 16: 25 batches, so q = 1/25 and 25 steps per epoch.
    assert sample_rate(400, 16) == pytest.approx(0.04)
    assert steps_per_round(400, 16, 2) == 50
    # 90 rounds of one epoch there is Opacus' example above, driven through the terms.
    terms = PrivacyTerms(epsilon=8.0, delta=1e-5, accountant="rdp")
    sigma = noise_multiplier(terms, dataset_size=400, batch_size=16, local_epochs=1, rounds=90)
    assert epsilon_of(sigma, sample_rate=0.04, steps=2250, delta=1e-5) <= 8.0


@pytest.mark.parametrize(("accountant", "epsilon"), [("rdp", 1.0), ("rdp", 8.0), ("prv", 8.0)])
def test_the_noise_reaches_the_cap_and_no_more(accountant: str, epsilon: float) -> None:
    # Prepare
    terms = PrivacyTerms(epsilon=epsilon, accountant=accountant)
    sigma = noise_multiplier(terms, rounds=5, **SITE)
    q = sample_rate(40, 16)
    steps = 5 * steps_per_round(40, 16, 1)

    # Execute
    at_plan = epsilon_spent(terms, rounds_taken=5, planned_rounds=5, **SITE)
    less_noise = epsilon_of(
        sigma * 0.99, sample_rate=q, steps=steps, delta=terms.delta, accountant=accountant
    )

    # Assert: within the cap (by at most the search's tolerance), and 1 % less noise breaks it.
    assert epsilon - 1e-3 <= at_plan <= epsilon
    assert less_noise > epsilon


def test_prv_plans_less_noise_than_rdp_for_the_same_cap() -> None:
    # The reason a new task counts with PRV: its epsilon is the tighter bound.
    rdp, prv = (
        noise_multiplier(PrivacyTerms(epsilon=8.0, accountant=a), rounds=5, **SITE)
        for a in ("rdp", "prv")
    )

    assert prv < 0.97 * rdp
    assert epsilon_spent(PrivacyTerms(epsilon=8.0), rounds_taken=5, planned_rounds=5, **SITE) <= 8


def test_an_unknown_accountant_is_refused() -> None:
    with pytest.raises(PrivacyError, match="dp-accountant"):
        PrivacyTerms(epsilon=8.0, accountant="gdp")


def test_the_spend_grows_with_rounds_and_passes_the_cap_after_the_plan() -> None:
    terms = PrivacyTerms(epsilon=4.0)

    spent = [epsilon_spent(terms, rounds_taken=r, planned_rounds=3, **SITE) for r in range(5)]

    assert spent[0] == 0.0
    assert spent == sorted(spent)
    assert len(set(spent)) == 5
    assert spent[3] <= 4.0 < spent[4]


def test_an_unreachable_budget_is_a_training_error() -> None:
    with pytest.raises(FedchainError, match="cannot be reached"):
        noise_multiplier(PrivacyTerms(epsilon=1e-9), rounds=1000, **SITE)


# ---------------------------------------------------------------------------- DP-SGD training


def _digits(n: int = 120) -> tuple[Any, Any, Any]:
    data = load_digits()
    return scale_pixels(data.features)[:n], data.labels[:n], data


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_trains_under_dp_seeded_and_keeps_its_names(name: str) -> None:
    # Prepare
    x, y, data = _digits()
    models = [build_model(name, data.input_shape, data.num_classes, seed=0) for _ in range(3)]
    before = get_weights(models[0])
    kwargs: dict[str, Any] = {"epochs": 1, "lr": 0.05, "batch_size": 16, "clip_norm": 1.0}

    # Execute
    train_private(models[0], x, y, seed=3, noise_multiplier=1.0, **kwargs)
    train_private(models[1], x, y, seed=3, noise_multiplier=1.0, **kwargs)
    train_private(models[2], x, y, seed=4, noise_multiplier=1.0, **kwargs)

    # Assert: trained, bitwise repeatable for a seed, another seed other noise, same names,
    # and Opacus' hooks gone (a plain forward and backward still work).
    first, again, other = (get_weights(m) for m in models)
    assert list(first) == list(before)
    assert any(not np.array_equal(first[k], before[k]) for k in first)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert any(not np.array_equal(first[k], other[k]) for k in first)
    assert not hasattr(next(models[0].parameters()), "grad_sample")
    train(models[0], x, y, epochs=1, lr=0.05, batch_size=16, seed=0)


def test_the_noise_is_what_dp_adds() -> None:
    # Prepare: the same seed with and without noise; clipping alone is deterministic too
    x, y, data = _digits()
    quiet, noisy = (build_model("logreg", data.input_shape, data.num_classes, 0) for _ in "ab")
    kwargs: dict[str, Any] = {"epochs": 1, "lr": 0.05, "batch_size": 16, "seed": 1}

    # Execute
    train_private(quiet, x, y, noise_multiplier=0.0, clip_norm=1.0, **kwargs)
    train_private(noisy, x, y, noise_multiplier=5.0, clip_norm=1.0, **kwargs)

    # Assert: the noisy model lands farther from the noiseless one than float error
    gap = max(
        float(np.abs(a - b).max())
        for a, b in zip(get_weights(quiet).values(), get_weights(noisy).values(), strict=True)
    )
    assert gap > 1e-2


def test_empty_poisson_batches_still_step() -> None:
    # Two examples in batches of one: q = 1/2, so many steps sample nobody (Opacus' empty batch).
    x, y, data = _digits(2)
    model = build_model("logreg", data.input_shape, data.num_classes, 0)

    for seed in range(10):
        train_private(
            model, x, y, epochs=1, lr=0.05, batch_size=1, seed=seed, noise_multiplier=1.0,
            clip_norm=1.0,
        )  # fmt: skip

    assert all(np.isfinite(v).all() for v in get_weights(model).values())


def test_dp_training_refuses_bad_hyper_parameters() -> None:
    x, y, data = _digits()
    model = build_model("logreg", data.input_shape, data.num_classes, 0)
    with pytest.raises(TrainingError, match="clip_norm"):
        train_private(
            model, x, y, epochs=1, lr=0.05, batch_size=16, seed=0, noise_multiplier=1.0,
            clip_norm=0.0,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("sigma", "q", "steps"), [(1.5, 0.04, 2250), (1.2, 1 / 9, 37), (0.7, 0.5, 3)]
)
def test_epsilon_of_is_opacus_accountant_bit_for_bit(sigma: float, q: float, steps: int) -> None:
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for _ in range(steps):  # the way a PrivacyEngine records a training run, step by step
        accountant.step(noise_multiplier=sigma, sample_rate=q)

    assert epsilon_of(sigma, sample_rate=q, steps=steps, delta=1e-5) == accountant.get_epsilon(
        delta=1e-5
    )


@pytest.mark.parametrize(("sigma", "q", "steps"), [(1.2, 1 / 9, 37), (1.0, 1 / 3, 15)])
def test_the_prv_epsilon_is_opacus_prv_accountant_bit_for_bit(
    sigma: float, q: float, steps: int
) -> None:
    # fedchain caches one step's RDP inside the PRV computation; the value must not move.
    from opacus.accountants import PRVAccountant

    accountant = PRVAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    expected = accountant.get_epsilon(delta=1e-5)

    got = epsilon_of(sigma, sample_rate=q, steps=steps, delta=1e-5, accountant="prv")

    assert got == expected
    assert got < epsilon_of(sigma, sample_rate=q, steps=steps, delta=1e-5)  # below RDP's


def test_a_site_smaller_than_a_batch_counts_its_prv_epsilon_without_warnings() -> None:
    # q = 1 (3 examples, batches of 16): Opacus' PRV takes log(0) on the way; no noise on stderr.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epsilon = epsilon_of(
            0.6, sample_rate=sample_rate(3, 16), steps=3, delta=1e-5, accountant="prv"
        )

    assert 0 < epsilon < epsilon_of(0.6, sample_rate=1.0, steps=3, delta=1e-5)
