"""Preprocessing from each party's own statistics.

Every party (each client on its training data, the server on its holdout) preprocesses with
statistics of the data it holds and nothing else:

* tabular features are standardized by a :class:`Standardizer` fitted on the party's own
  features: no feature statistics leave a site and no extra federated round is needed to agree
  on global ones. The price: under label skew a site's mean depends on its class mix, so a
  site holding mostly one class is centred on that class. With breast-cancer, 10 clients,
  ``dirichlet:0.5`` and 10 FedAvg rounds, the final holdout accuracy ranged 0.90 to 0.97 over
  20 seeds (8 reached 0.95); standardizing everyone with the global training statistics
  instead gave a mean of 0.975 (18 of 20 reached 0.95), but needs those statistics shared.
* digits pixels have a known range, so they are scaled by the fixed constant ``1 / 16`` and need
  no statistics at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedchain.ml.data import Dataset
from fedchain.ml.errors import DatasetError

__all__ = [
    "PIXEL_MAX",
    "STD_FLOOR",
    "Standardizer",
    "preprocess_local",
    "scale_pixels",
]

# Largest pixel value of scikit-learn's digits (4-bit grey levels).
PIXEL_MAX = 16.0
# Features whose local std is at most this are only centred (scale 1), as scikit-learn's
# StandardScaler does, so a constant column becomes zeros instead of a division by zero.
STD_FLOOR = 1e-6


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature ``(x - mean) / scale`` with statistics from one party's data.

    Attributes
    ----------
    mean
        Per-feature mean (float64), shape of one example.
    scale
        Per-feature standard deviation, or 1 where it is at most ``STD_FLOOR``.
    """

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]

    @classmethod
    def fit(cls, features: ArrayLike, std_floor: float = STD_FLOOR) -> Standardizer:
        """Fit on ``(n, ...)`` features held by one party (in float64 for stable statistics).

        Raises
        ------
        DatasetError
            If there are no examples.
        """
        values = np.asarray(features, dtype=np.float64)
        if values.ndim < 2 or values.shape[0] == 0:
            raise DatasetError(
                f"cannot fit a Standardizer on features of shape {values.shape}: "
                "need at least one example of shape (n, d)"
            )
        std = values.std(axis=0)
        return cls(mean=values.mean(axis=0), scale=np.where(std > std_floor, std, 1.0))

    def transform(self, features: ArrayLike) -> NDArray[np.float32]:
        """Standardize ``(n, ...)`` features; returns float32.

        Raises
        ------
        DatasetError
            If the example shape differs from the one fitted on.
        """
        values = np.asarray(features, dtype=np.float64)
        if values.shape[1:] != self.mean.shape:
            raise DatasetError(
                f"Standardizer was fitted on examples of shape {self.mean.shape}, "
                f"got features of shape {values.shape}"
            )
        return ((values - self.mean) / self.scale).astype(np.float32)


def scale_pixels(images: ArrayLike) -> NDArray[np.float32]:
    """Scale digits pixels from ``0..16`` to ``0..1``."""
    return (np.asarray(images, dtype=np.float32) / np.float32(PIXEL_MAX)).astype(np.float32)


def preprocess_local(dataset: Dataset) -> Dataset:
    """Preprocess a party's dataset with its own statistics only (see the module docstring).

    Images are scaled by ``1 / PIXEL_MAX``; tabular features are standardized by a
    :class:`Standardizer` fitted on ``dataset`` itself. Labels, classes and name are kept.
    """
    if dataset.is_image:
        features = scale_pixels(dataset.features)
    else:
        features = Standardizer.fit(dataset.features).transform(dataset.features)
    return Dataset(
        features=features,
        labels=dataset.labels,
        num_classes=dataset.num_classes,
        name=dataset.name,
        feature_names=dataset.feature_names,
        class_names=dataset.class_names,
    )
