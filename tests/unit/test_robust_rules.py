"""The robust rules against a reference implementation (byzfl) and the papers' definitions.

byzfl (https://pypi.org/project/byzfl/, 0.0.11) implements CenteredClipping, NNM, Bucketing,
Krum and MultiKrum. It is a test-only reference, installed by `make setup` without its
dependencies: its package __init__ imports torchvision (GBs of CUDA wheels), so its aggregator
modules are loaded here without running that __init__ (they need only numpy, torch and scipy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fedchain.robust_rules import (
    bucket_permutation,
    bucketing,
    centered_clipping,
    clip_radius,
    coordinate_median,
    fltrust,
    krum_scores,
    multi_krum,
    nearest_neighbour_mixing,
    propagate,
    trimmed_mean,
)


@pytest.fixture(scope="module")
def byzfl(byzfl_reference: Callable[[str], Any]) -> Any:
    """byzfl's aggregators and pre-aggregators (byzfl/__init__.py is not run)."""
    return byzfl_reference("byzfl.aggregators")


def _vectors(seed: int, n: int = 10, d: int = 40) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[-3:] += rng.normal(scale=5.0, size=(3, d))  # a few far away, as attackers would be
    return x


# ---------------------------------------------------------------- against byzfl


@pytest.mark.parametrize(("seed", "iterations"), [(0, 1), (1, 1), (2, 3)])
def test_centered_clipping_matches_byzfl(byzfl: Any, seed: int, iterations: int) -> None:
    # Prepare
    x = _vectors(seed)
    center = np.random.default_rng(100 + seed).normal(size=x.shape[1])
    tau = 0.8 * clip_radius(x, center)
    reference = byzfl.CenteredClipping(L=iterations, tau=float(tau))
    reference.m = center.copy()  # its constructor refuses any m (a bug in 0.0.11): set it after
    # Execute
    ours = centered_clipping(x, center, tau=tau, iterations=iterations)
    # Assert
    np.testing.assert_allclose(ours.vector, reference(x), rtol=1e-12, atol=1e-12)


def test_centered_clipping_with_the_median_radius_matches_byzfl_given_that_radius(
    byzfl: Any,
) -> None:
    x, center = _vectors(3), np.zeros(40)
    tau = float(np.median(np.linalg.norm(x - center, axis=1)))
    ours = centered_clipping(x, center)
    np.testing.assert_allclose(ours.vector, byzfl.CenteredClipping(tau=tau)(x), rtol=1e-12)


@pytest.mark.parametrize(("seed", "f"), [(0, 0), (1, 2), (2, 4)])
def test_nnm_matches_byzfl(byzfl: Any, seed: int, f: int) -> None:
    x = _vectors(seed)
    ours = nearest_neighbour_mixing(x, f)
    np.testing.assert_allclose(ours.vectors, byzfl.NNM(f=f)(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("seed", "size"), [(0, 2), (1, 3), (2, 4)])
def test_bucketing_matches_byzfl_for_the_same_permutation(byzfl: Any, seed: int, size: int) -> None:
    # Prepare: byzfl shuffles with numpy's legacy global generator; the same seed gives the
    # permutation it will draw
    x = _vectors(seed)
    np.random.seed(seed)  # byzfl draws from numpy's legacy global generator
    permutation = np.random.permutation(len(x))
    np.random.seed(seed)
    # Execute
    theirs = byzfl.Bucketing(s=size)(x)
    ours = bucketing(x, size, permutation)
    # Assert: the last, smaller bucket too (10 updates in buckets of 3 or 4)
    np.testing.assert_allclose(ours.vectors, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("seed", "f"), [(0, 1), (1, 2), (2, 3)])
def test_krum_and_multikrum_select_as_byzfl(byzfl: Any, seed: int, f: int) -> None:
    # byzfl scores each vector by its n - f - 1 nearest others, Blanchard et al. (and Flower)
    # by n - f - 2: byzfl's f + 1 is our f.
    x = _vectors(seed)
    krum = multi_krum(x, f, 1)
    kept = len(x) - f - 1
    multikrum = multi_krum(x, f, kept)
    np.testing.assert_allclose(krum.vector, byzfl.Krum(f=f + 1)(x), rtol=1e-12)
    np.testing.assert_allclose(multikrum.vector, byzfl.MultiKrum(f=f + 1)(x), rtol=1e-12)
    assert krum.weights is not None
    assert multikrum.weights is not None
    assert sorted(krum.weights) == [0.0] * (len(x) - 1) + [1.0]
    assert np.count_nonzero(multikrum.weights) == kept


# ---------------------------------------------------------------- the papers, by hand


def test_centered_clipping_hand_computed() -> None:
    # v1 = v0 + (1/n) sum (x_i - v0) min(1, tau / ||x_i - v0||), v0 = 0, tau = 2:
    # distances 0, 2, 10 -> factors 1, 1, 0.2 -> v1 = ((0,0) + (2,0) + (0,2)) / 3
    x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 10.0]])
    result = centered_clipping(x, np.zeros(2), tau=2.0)
    np.testing.assert_allclose(result.vector, [2 / 3, 2 / 3])
    assert result.weights is not None
    np.testing.assert_allclose(result.weights, np.array([1.0, 1.0, 0.2]) / 2.2)


def test_centered_clipping_starts_from_the_center() -> None:
    # Around the center (10, 0) every update lies 1 away: nothing is clipped with tau = 1, and
    # the result is the plain mean whatever the center
    x = np.array([[11.0, 0.0], [9.0, 0.0], [10.0, 1.0]])
    result = centered_clipping(x, np.array([10.0, 0.0]), tau=1.0)
    np.testing.assert_allclose(result.vector, x.mean(axis=0))
    far = centered_clipping(x, np.array([0.0, 0.0]), tau=1.0)  # far center: each moves 1 at most
    assert np.linalg.norm(far.vector) <= 1.0 + 1e-12


def test_the_default_radius_is_the_median_distance_and_clips_the_far_half() -> None:
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, -300.0]])
    assert clip_radius(x, np.zeros(2)) == 2.5
    result = centered_clipping(x, np.zeros(2))
    assert result.weights is not None
    factors = result.weights / result.weights[0]
    np.testing.assert_allclose(factors, [1.0, 1.0, 2.5 / 3, 2.5 / 300])
    assert np.linalg.norm(result.vector) < 2.5  # the attacker moved it 2.5 / 4 at most


def test_fltrust_hand_computed_three_clients() -> None:
    # g0 = (1, 0). g1 = (2, 0): cos 1, rescaled to (1, 0). g2 = (3, 4): cos 0.6, rescaled to
    # (0.6, 0.8). g3 = (-1, 0): cos -1, trust 0. Aggregate (1 (1,0) + 0.6 (0.6,0.8)) / 1.6.
    x = np.array([[2.0, 0.0], [3.0, 4.0], [-1.0, 0.0]])
    result = fltrust(x, np.array([1.0, 0.0]))
    np.testing.assert_allclose(result.vector, [1.36 / 1.6, 0.48 / 1.6])
    assert result.weights is not None
    np.testing.assert_allclose(result.weights, [1 / 1.6, 0.6 / 1.6, 0.0])


def test_fltrust_rescales_every_update_to_the_servers_norm() -> None:
    # One trusted update 1000 times the server's norm moves the model as far as g0 would
    x = np.array([[1000.0, 0.0]])
    np.testing.assert_allclose(fltrust(x, np.array([0.5, 0.0])).vector, [0.5, 0.0])


def test_fltrust_trusting_nobody_keeps_the_model() -> None:
    x = np.array([[-1.0, 0.0], [0.0, 0.0]])  # opposed, and a free-rider's zero update
    result = fltrust(x, np.array([1.0, 0.0]))
    np.testing.assert_array_equal(result.vector, [0.0, 0.0])
    assert result.weights is not None
    np.testing.assert_array_equal(result.weights, [0.0, 0.0])


def test_nnm_mixes_each_update_with_its_n_minus_f_nearest() -> None:
    x = np.array([[0.0], [1.0], [3.0], [100.0]])
    mixed = nearest_neighbour_mixing(x, 1)  # 3 nearest, itself included
    np.testing.assert_allclose(mixed.vectors[:, 0], [4 / 3, 4 / 3, 4 / 3, 104 / 3])
    np.testing.assert_allclose(mixed.mixing.sum(axis=1), 1.0)


def test_weights_propagate_back_through_the_mixing() -> None:
    # Prepare: Krum keeps one NNM row; its weight goes to the n - f updates mixed into it
    x = np.array([[0.0], [1.0], [3.0], [100.0]])
    mixed = nearest_neighbour_mixing(x, 1)
    kept = multi_krum(mixed.vectors, 0, 1)
    # Execute
    weights = propagate(mixed, kept.weights)
    # Assert
    assert weights is not None
    np.testing.assert_allclose(weights.sum(), 1.0)
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3, 0.0])


def test_bucketing_weights_are_split_within_each_bucket() -> None:
    x = np.arange(5.0)[:, None]
    mixed = bucketing(x, 2, np.array([4, 0, 2, 1, 3]))  # buckets {4, 0}, {2, 1}, {3}
    np.testing.assert_allclose(mixed.vectors[:, 0], [2.0, 1.5, 3.0])
    weights = propagate(mixed, np.array([0.5, 0.5, 0.0]))
    assert weights is not None
    np.testing.assert_allclose(weights, [0.25, 0.25, 0.25, 0.0, 0.25])


def test_the_bucket_permutation_is_rebuilt_from_the_task_seed_and_round() -> None:
    first = bucket_permutation(10, 7, 3)
    np.testing.assert_array_equal(first, bucket_permutation(10, 7, 3))
    assert sorted(first) == list(range(10))
    assert not np.array_equal(first, bucket_permutation(10, 7, 4))
    assert not np.array_equal(first, bucket_permutation(10, 8, 3))


def test_median_and_trimmed_mean_hand_computed() -> None:
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, -500.0], [1000.0, 40.0]])
    np.testing.assert_allclose(coordinate_median(x).vector, [2.5, 15.0])
    np.testing.assert_allclose(trimmed_mean(x, 1).vector, [2.5, 15.0])
    np.testing.assert_allclose(trimmed_mean(x, 5).vector, [2.5, 15.0])  # at least one value stays
    np.testing.assert_allclose(trimmed_mean(x, 0).vector, x.mean(axis=0))


def test_krum_scores_sum_the_n_minus_f_minus_2_nearest_squared_distances() -> None:
    x = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float64)
    # n - f - 2 = 2 nearest others: 0 -> {1, 4}; 1 -> {1, 1}; 2 -> {1, 4}; 10 -> {64, 81}
    np.testing.assert_allclose(krum_scores(x, 0), [5.0, 2.0, 5.0, 145.0])


def test_every_rule_gives_the_same_bits_for_the_same_inputs() -> None:
    x, center = _vectors(9), np.random.default_rng(1).normal(size=40)
    for run in (
        lambda: centered_clipping(x, center).vector,
        lambda: fltrust(x, center).vector,
        lambda: nearest_neighbour_mixing(x, 3).vectors,
        lambda: multi_krum(x, 3, 7).vector,
    ):
        assert run().tobytes() == run().tobytes()
