"""Preprocessing uses the statistics of the data it is given, or the task's when given them."""

from __future__ import annotations

import numpy as np
import pytest

from fedchain.ml import (
    Dataset,
    DatasetError,
    Standardizer,
    load_breast_cancer,
    load_digits,
    preprocess_local,
    scale_pixels,
)
from fedchain.ml.preprocess import preprocess


def test_standardizer_centres_and_scales_the_fitted_data() -> None:
    # Prepare
    features = np.random.default_rng(0).normal(loc=5.0, scale=3.0, size=(200, 4))

    # Execute
    out = Standardizer.fit(features).transform(features)

    # Assert
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)


def test_standardizer_floors_constant_columns() -> None:
    # Prepare
    features = np.array([[1.0, 7.0], [3.0, 7.0]])

    # Execute
    out = Standardizer.fit(features).transform(features)

    # Assert
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0])


def test_standardizer_rejects_other_shapes_and_empty_data() -> None:
    # Prepare
    fitted = Standardizer.fit(np.ones((3, 2)))

    # Execute / Assert
    with pytest.raises(DatasetError, match="fitted on examples of shape"):
        fitted.transform(np.ones((3, 5)))
    with pytest.raises(DatasetError, match="at least one example"):
        Standardizer.fit(np.ones((0, 2)))


def test_preprocess_local_uses_only_the_clients_own_statistics() -> None:
    # Prepare: one client's rows, embedded in two different federations
    ds = load_breast_cancer()
    client = ds.subset(np.arange(50))
    shifted = Dataset(
        features=ds.features * 10.0 + 3.0, labels=ds.labels, num_classes=2, name="other"
    )
    other_federation = Dataset(
        features=np.vstack([client.features, shifted.features[50:]]),
        labels=ds.labels,
        num_classes=2,
        name="other",
    )

    # Execute
    local = preprocess_local(client)
    local_again = preprocess_local(other_federation.subset(np.arange(50)))
    with_global_stats = Standardizer.fit(ds.features).transform(client.features)

    # Assert
    np.testing.assert_array_equal(local.features, local_again.features)
    np.testing.assert_allclose(local.features.mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(local.features, with_global_stats, atol=1e-2)
    np.testing.assert_array_equal(local.labels, client.labels)


def test_preprocess_local_scales_digits_pixels_without_statistics() -> None:
    # Prepare
    ds = load_digits()
    few = ds.subset(np.arange(5))

    # Execute
    out = preprocess_local(few)

    # Assert
    np.testing.assert_array_equal(out.features, few.features / 16.0)
    assert out.features.shape == (5, 1, 8, 8)
    assert float(scale_pixels(ds.features).max()) == 1.0


def test_task_statistics_are_the_column_mean_and_population_std() -> None:
    # Prepare: hand-computed: column 0 has mean 3 and variance ((-2)^2 + 0 + 2^2) / 3 = 8/3;
    # column 1 is constant, so only centred
    holdout = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    client = np.array([[3.0, 12.0], [7.0, 10.0]])

    # Execute
    stats = Standardizer.fit(holdout)
    out = preprocess(Dataset(client, np.array([0, 1]), 2, "client"), stats)

    # Assert
    np.testing.assert_array_equal(stats.mean, [3.0, 10.0])
    np.testing.assert_array_equal(stats.scale, [np.sqrt(8.0 / 3.0), 1.0])
    np.testing.assert_allclose(out.features, [[0.0, 2.0], [4.0 / np.sqrt(8.0 / 3.0), 0.0]])


def test_a_party_given_the_task_statistics_does_not_use_its_own() -> None:
    # Prepare: a client whose rows are all of one class, far from the task's centre
    ds = load_breast_cancer()
    stats = Standardizer.fit(ds.features)
    client = ds.subset(np.flatnonzero(ds.labels == 0)[:40])
    digit = load_digits().subset([0])

    # Execute
    task = preprocess(client, stats)
    own = preprocess(client)
    pixels = preprocess(digit, stats)

    # Assert
    np.testing.assert_array_equal(task.features, stats.transform(client.features))
    assert not np.allclose(task.features.mean(axis=0), 0.0, atol=0.1)  # not re-centred
    np.testing.assert_allclose(own.features.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_array_equal(pixels.features, digit.features / 16.0)  # images: a constant


def test_statistics_survive_their_json_bit_for_bit() -> None:
    # Prepare
    stats = Standardizer.fit(load_breast_cancer().features)

    # Execute
    back = Standardizer.from_json(stats.to_json())

    # Assert
    assert back.same_as(stats)
    assert not back.same_as(Standardizer(stats.mean + 1e-16 * stats.mean, stats.scale))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "are not JSON"),
        ('{"mean": [1.0]}', "are not JSON"),
        ('{"mean": 1, "scale": 2}', 'need lists "mean" and "scale"'),
        ('{"mean": [1.0, 2.0], "scale": [1.0]}', "2 means and 1 scales"),
        ('{"mean": [], "scale": []}', "0 means and 0 scales"),
        ('{"mean": [1.0], "scale": [0.0]}', "a scale <= 0"),
        ('{"mean": [NaN], "scale": [1.0]}', "non-finite"),
    ],
)
def test_unusable_statistics_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        Standardizer.from_json(text)
