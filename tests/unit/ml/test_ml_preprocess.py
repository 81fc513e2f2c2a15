"""Preprocessing uses only the statistics of the data it is given."""

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
