"""Preprocessing: each party's own statistics, or the task's.

Two ways to standardize tabular features (the run setting ``standardize``):

* ``local`` (each party on its own data): every client on its training rows, the server on its
  holdout; no feature statistics leave a site. The price: under label skew a site's mean
  depends on its class mix, so a site holding mostly one class is centred on that class and the
  clients' input spaces disagree. With breast-cancer, 10 clients, ``dirichlet:0.5`` and 10
  FedAvg rounds, 4 of the seeds 0..9 reached 0.95 holdout accuracy.
* ``task`` (everyone with the task's statistics): the per-feature mean and standard deviation of
  the coordinator's holdout, recorded in the task spec (so under its hash on chain). Every
  client and the server standardize with the same numbers, deterministic for the spec and
  recomputable by an auditor from the holdout. docs/simulation.md gives the measurements and
  why these statistics and not ones aggregated from the clients.

digits pixels have a known range, so they are scaled by the fixed constant ``1 / 16`` in either
mode and need no statistics at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fedchain.ml.data import Dataset
from fedchain.ml.errors import DatasetError

__all__ = [
    "PIXEL_MAX",
    "STD_FLOOR",
    "Standardizer",
    "preprocess",
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

        ``mean`` is the column mean, ``scale`` the population standard deviation (``ddof=0``),
        or 1 where that is at most ``std_floor``.

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

    @classmethod
    def from_values(cls, mean: Sequence[float], scale: Sequence[float]) -> Standardizer:
        """Rebuild a Standardizer from recorded statistics (a task spec's, a run config's).

        Raises
        ------
        DatasetError
            If the two differ in length, are empty, or a value is not finite or a scale not
            positive.
        """
        means = [float(v) for v in mean]
        scales = [float(v) for v in scale]
        if not means or len(means) != len(scales):
            raise DatasetError(
                f"standardization statistics need one mean and one scale per feature, got "
                f"{len(means)} means and {len(scales)} scales: rebuild them from the holdout"
            )
        if not all(map(math.isfinite, means + scales)) or min(scales) <= 0:
            raise DatasetError(
                "standardization statistics hold a non-finite value or a scale <= 0: "
                "rebuild them from the holdout"
            )
        return cls(mean=np.array(means), scale=np.array(scales))

    @classmethod
    def from_json(cls, text: str) -> Standardizer:
        """The statistics :meth:`to_json` wrote.

        Raises
        ------
        DatasetError
            If ``text`` is not such a document, or its values are not usable.
        """
        try:
            document = json.loads(text)
            mean, scale = document["mean"], document["scale"]
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise DatasetError(
                f"standardization statistics {text[:60]!r} are not JSON "
                '{"mean": [...], "scale": [...]}: ' + f"{exc}; rebuild them from the holdout"
            ) from None
        if not isinstance(mean, list) or not isinstance(scale, list):
            raise DatasetError('standardization statistics need lists "mean" and "scale"')
        return cls.from_values(mean, scale)

    def to_json(self) -> str:
        """Compact JSON ``{"mean": [...], "scale": [...]}`` of 1-D statistics; floats are
        written as Python's shortest repr, so :meth:`from_json` gives back the same bits."""
        return json.dumps(
            {"mean": self.mean.tolist(), "scale": self.scale.tolist()}, separators=(",", ":")
        )

    def same_as(self, other: Standardizer) -> bool:
        """Whether both hold bit-identical statistics."""
        return np.array_equal(self.mean, other.mean) and np.array_equal(self.scale, other.scale)

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
    """Preprocess a party's dataset with its own statistics only (see the module docstring)."""
    return preprocess(dataset)


def preprocess(dataset: Dataset, standardizer: Standardizer | None = None) -> Dataset:
    """Preprocess a party's dataset with the task's statistics, or (None) its own.

    Images are scaled by ``1 / PIXEL_MAX`` (``standardizer`` is not used); tabular features are
    standardized by ``standardizer``, or by a :class:`Standardizer` fitted on ``dataset`` itself.
    Labels, classes and name are kept.

    Raises
    ------
    DatasetError
        If ``standardizer`` was fitted on examples of another shape.
    """
    if dataset.is_image:
        features = scale_pixels(dataset.features)
    else:
        if standardizer is None:
            standardizer = Standardizer.fit(dataset.features)
        features = standardizer.transform(dataset.features)
    return Dataset(
        features=features,
        labels=dataset.labels,
        num_classes=dataset.num_classes,
        name=dataset.name,
        feature_names=dataset.feature_names,
        class_names=dataset.class_names,
    )
