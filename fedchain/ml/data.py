"""Datasets: the built-in scikit-learn sets, CSV files of real sites, holdout split and hash.

Nothing here downloads: ``breast-cancer`` and ``digits`` ship inside scikit-learn, and a real
site points ``csv:PATH`` at its own file.
"""

from __future__ import annotations

import csv
import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import sklearn.datasets as sk_datasets
from numpy.typing import ArrayLike, NDArray

from fedchain.ml.errors import DatasetError, DatasetFileNotFoundError

__all__ = [
    "BREAST_CANCER",
    "CSV_PREFIX",
    "DEFAULT_HOLDOUT_FRACTION",
    "DEFAULT_LABEL_COLUMN",
    "DIGITS",
    "Dataset",
    "DatasetSpec",
    "dataset_hash",
    "load_breast_cancer",
    "load_csv",
    "load_dataset",
    "load_digits",
    "parse_dataset_spec",
    "split_holdout",
]

BREAST_CANCER = "breast-cancer"
DIGITS = "digits"
CSV_PREFIX = "csv:"
DEFAULT_LABEL_COLUMN = "label"
DEFAULT_HOLDOUT_FRACTION = 0.2

# Domain separator of the dataset hash; bump the version if the encoding ever changes.
_HASH_MAGIC = b"fedchain.dataset.v1\x00"
_SPEC_HELP = f"use {BREAST_CANCER!r}, {DIGITS!r} or '{CSV_PREFIX}PATH' (a CSV file with a header)"


@dataclass(frozen=True, eq=False)
class Dataset:
    """An immutable labelled dataset.

    Parameters
    ----------
    features
        ``(n, d)`` tabular features or ``(n, 1, 8, 8)`` images; stored as a read-only float32 copy.
    labels
        ``(n,)`` class ids in ``[0, num_classes)``; stored as a read-only int64 copy.
    num_classes
        Number of classes of the task (at least 2), which may exceed the classes present here.
    name
        Human-readable origin, e.g. ``"breast-cancer"`` or ``"csv:site1.csv[holdout]"``.

    Raises
    ------
    DatasetError
        If shapes, lengths or label values are inconsistent.
    """

    features: NDArray[np.float32]
    labels: NDArray[np.int64]
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        # Copy and freeze so a Dataset (and its hash) cannot change behind the caller's back.
        features = np.array(self.features, dtype=np.float32, order="C", copy=True)
        labels = np.array(self.labels, dtype=np.int64, order="C", copy=True)
        if features.ndim < 2:
            raise DatasetError(
                f"dataset {self.name!r}: features must have shape (n, ...) with n examples, "
                f"got shape {features.shape}; reshape a single example to (1, d)"
            )
        if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
            raise DatasetError(
                f"dataset {self.name!r}: labels must have shape ({features.shape[0]},) to match "
                f"the features, got {labels.shape}"
            )
        if self.num_classes < 2:
            raise DatasetError(
                f"dataset {self.name!r}: num_classes must be at least 2, got {self.num_classes}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DatasetError(
                f"dataset {self.name!r}: labels must lie in [0, {self.num_classes}), found "
                f"values from {labels.min()} to {labels.max()}; pass the task's num_classes"
            )
        features.flags.writeable = False
        labels.flags.writeable = False
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_examples(self) -> int:
        """Number of examples ``n``."""
        return len(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(d,)`` for tabular data, ``(1, 8, 8)`` for digits."""
        return tuple(int(s) for s in self.features.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether examples are ``(channels, height, width)`` images."""
        return len(self.input_shape) == 3

    def subset(self, indices: ArrayLike, name: str | None = None) -> Dataset:
        """Return the examples at ``indices`` (in that order) as a new dataset.

        Parameters
        ----------
        indices
            Integer positions, e.g. one client's share from :func:`fedchain.ml.partition`.
        name
            Name of the subset; defaults to this dataset's name.
        """
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(
            features=self.features[idx],
            labels=self.labels[idx],
            num_classes=self.num_classes,
            name=self.name if name is None else name,
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec string.

    Attributes
    ----------
    kind
        ``"breast-cancer"``, ``"digits"`` or ``"csv"``.
    path
        The CSV file for ``kind == "csv"``, else ``None``.
    """

    kind: Literal["breast-cancer", "digits", "csv"]
    path: Path | None = None

    def __str__(self) -> str:
        return f"{CSV_PREFIX}{self.path}" if self.kind == "csv" else self.kind


def parse_dataset_spec(spec: str) -> DatasetSpec:
    """Parse ``"breast-cancer"``, ``"digits"`` or ``"csv:PATH"``.

    Raises
    ------
    DatasetError
        For an unknown name or a ``csv:`` spec without a path.
    """
    text = spec.strip()
    if text.lower().startswith(CSV_PREFIX):
        path = text[len(CSV_PREFIX) :].strip()
        if not path:
            raise DatasetError(f"dataset spec {spec!r} names no file: write '{CSV_PREFIX}PATH'")
        return DatasetSpec(kind="csv", path=Path(path))
    if text.lower() == BREAST_CANCER:
        return DatasetSpec(kind="breast-cancer")
    if text.lower() == DIGITS:
        return DatasetSpec(kind="digits")
    raise DatasetError(f"unknown dataset {spec!r}: {_SPEC_HELP}")


def load_dataset(
    spec: str | DatasetSpec,
    *,
    label_column: str = DEFAULT_LABEL_COLUMN,
    feature_columns: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> Dataset:
    """Load a dataset from a spec string (see :func:`parse_dataset_spec`).

    Parameters
    ----------
    spec
        ``"breast-cancer"``, ``"digits"`` or ``"csv:PATH"``.
    label_column, feature_columns, num_classes
        Passed to :func:`load_csv` for a CSV spec; ignored for the built-in datasets.
    """
    parsed = spec if isinstance(spec, DatasetSpec) else parse_dataset_spec(spec)
    if parsed.kind == "breast-cancer":
        return load_breast_cancer()
    if parsed.kind == "digits":
        return load_digits()
    assert parsed.path is not None  # guaranteed by parse_dataset_spec
    return load_csv(parsed.path, label_column, feature_columns, num_classes=num_classes)


def load_breast_cancer() -> Dataset:
    """Wisconsin breast cancer: 569 examples, 30 raw (unscaled) features, 2 classes."""
    features, labels = sk_datasets.load_breast_cancer(return_X_y=True)
    return Dataset(features=features, labels=labels, num_classes=2, name=BREAST_CANCER)


def load_digits() -> Dataset:
    """Handwritten digits: 1797 images of shape ``(1, 8, 8)``, raw pixels 0..16, 10 classes."""
    features, labels = sk_datasets.load_digits(return_X_y=True)
    images = np.asarray(features).reshape(-1, 1, 8, 8)
    return Dataset(features=images, labels=labels, num_classes=10, name=DIGITS)


def load_csv(
    path: str | Path,
    label_column: str = DEFAULT_LABEL_COLUMN,
    feature_columns: Sequence[str] | None = None,
    *,
    num_classes: int | None = None,
) -> Dataset:
    """Load a site's CSV file: a header line, then one example per row.

    Parameters
    ----------
    path
        The CSV file (comma-separated, UTF-8, optional byte-order mark).
    label_column
        Column holding integer class ids ``0, 1, ...`` (``1.0`` is accepted as ``1``).
    feature_columns
        Columns to use as features, in this order; default all columns but the label.
    num_classes
        The task's class count. Pass it: a site may lack some classes. Default
        ``max(label) + 1``, at least 2.

    Raises
    ------
    DatasetFileNotFoundError
        If ``path`` does not exist.
    DatasetError
        If the file is empty, a column is missing (the message lists the available ones), or a
        value is not a finite number (the message names row, line and column).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetFileNotFoundError(
            f"no CSV file at {path}: check the path (relative paths start at {Path.cwd()})"
        )
    if not path.is_file():
        raise DatasetError(f"{path} is not a file: point the dataset spec at a CSV file")
    # utf-8-sig drops the byte-order mark spreadsheet exports put before the first column name.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not any(header):
            raise DatasetError(
                f"{path} is empty: expected a header line naming the columns "
                f"(one of them {label_column!r}), then one row per example"
            )
        columns = _select_columns(path, header, label_column, feature_columns)
        feature_positions = [header.index(name) for name in columns]
        label_position = header.index(label_column)
        rows: list[list[float]] = []
        labels: list[int] = []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines, e.g. a trailing newline run
            where = f"{path}, row {len(rows) + 1} (line {reader.line_num})"
            if len(row) != len(header):
                raise DatasetError(
                    f"{where} has {len(row)} fields but the header has {len(header)}: "
                    "fix the row or quote values containing commas"
                )
            rows.append([_parse_number(row[i], where, header[i]) for i in feature_positions])
            labels.append(_parse_label(row[label_position], where, label_column))
    if not rows:
        raise DatasetError(f"{path} has a header but no data rows: add one row per example")
    label_array = np.asarray(labels, dtype=np.int64)
    if num_classes is None:
        num_classes = max(2, int(label_array.max()) + 1)
    return Dataset(
        features=np.asarray(rows, dtype=np.float32),
        labels=label_array,
        num_classes=num_classes,
        name=f"{CSV_PREFIX}{path}",
    )


def _select_columns(
    path: Path, header: list[str], label_column: str, feature_columns: Sequence[str] | None
) -> list[str]:
    available = ", ".join(repr(name) for name in header)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate column names {duplicates}; rename them")
    if label_column not in header:
        raise DatasetError(
            f"{path} has no label column {label_column!r}; available columns: {available}. "
            "Pass the right one as label_column"
        )
    if feature_columns is None:
        columns = [name for name in header if name != label_column]
    else:
        columns = list(feature_columns)
        missing = [name for name in columns if name not in header]
        if missing:
            raise DatasetError(
                f"{path} has no feature column(s) {', '.join(repr(m) for m in missing)}; "
                f"available columns: {available}"
            )
        if label_column in columns:
            raise DatasetError(
                f"{path}: the label column {label_column!r} is also listed as a feature; "
                "remove it from feature_columns"
            )
    if not columns:
        raise DatasetError(
            f"{path} has no feature columns besides the label {label_column!r}; "
            f"available columns: {available}"
        )
    return columns


def _parse_number(cell: str, where: str, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DatasetError(
            f"{where}, column {column!r}: {cell!r} is not a number; "
            "clean or impute the value, or leave the column out of feature_columns"
        ) from None
    if not math.isfinite(value):
        raise DatasetError(
            f"{where}, column {column!r}: {cell!r} is not a finite number; impute it first"
        )
    return value


def _parse_label(cell: str, where: str, column: str) -> int:
    value = _parse_number(cell, where, column)
    if not value.is_integer() or value < 0:
        raise DatasetError(
            f"{where}, column {column!r}: label {cell!r} is not a class id; "
            "labels must be integers 0, 1, ... (map class names to ids first)"
        )
    return int(value)


def split_holdout(
    dataset: Dataset, fraction: float = DEFAULT_HOLDOUT_FRACTION, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Split off a stratified holdout, deterministically for a seed.

    Each class's examples are shuffled by ``numpy.random.default_rng(seed)`` (classes in
    ascending order) and ``floor(fraction * count + 0.5)`` of them go to the holdout. Both parts
    keep the original example order, so the holdout's :func:`dataset_hash` depends only on the
    data, ``fraction`` and ``seed`` (not on scikit-learn's version).

    Returns
    -------
    tuple of Dataset
        ``(train, holdout)``, named ``"<name>[train]"`` and ``"<name>[holdout]"``.

    Raises
    ------
    DatasetError
        If ``fraction`` is not in ``(0, 1)`` or either part would be empty.
    """
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"holdout fraction must lie in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    in_holdout = np.zeros(len(dataset), dtype=bool)
    for label in np.unique(dataset.labels):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        in_holdout[members[: math.floor(fraction * members.size + 0.5)]] = True
    if in_holdout.all() or not in_holdout.any():
        raise DatasetError(
            f"dataset {dataset.name!r} with {len(dataset)} examples is too small for a holdout "
            f"fraction of {fraction}: one part would be empty"
        )
    train = dataset.subset(np.flatnonzero(~in_holdout), name=f"{dataset.name}[train]")
    holdout = dataset.subset(np.flatnonzero(in_holdout), name=f"{dataset.name}[holdout]")
    return train, holdout


def dataset_hash(dataset: Dataset) -> bytes:
    """SHA-256 of a canonical encoding of a dataset's features and labels.

    The encoding is the concatenation of

    1. the ASCII bytes ``fedchain.dataset.v1`` followed by one zero byte;
    2. ``features.ndim`` then each dimension of ``features.shape``, each as an unsigned 64-bit
       little-endian integer;
    3. the features as little-endian float32 in C (row-major) order;
    4. the labels as little-endian int64.

    The name and ``num_classes`` are not part of it: two datasets with equal arrays hash equally.

    Returns
    -------
    bytes
        The 32-byte digest (``.hex()`` it for a task spec).
    """
    digest = hashlib.sha256(_HASH_MAGIC)
    shape = dataset.features.shape
    digest.update(struct.pack(f"<{len(shape) + 1}Q", len(shape), *shape))
    # astype is a no-op view on little-endian machines; it only copies on big-endian ones.
    digest.update(np.ascontiguousarray(dataset.features.astype("<f4", copy=False)).data)
    digest.update(np.ascontiguousarray(dataset.labels.astype("<i8", copy=False)).data)
    return digest.digest()
