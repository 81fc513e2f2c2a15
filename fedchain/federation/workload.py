"""The ML of a run, derived from its settings: data, holdout, partitions, model, train, evaluate.

Server and clients call the same functions, so a client's partition, its preprocessing and the
model it trains are exactly those the task spec names. No Flower and no chain here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, TypedDict

import numpy as np
import torch
from numpy.typing import NDArray

from fedchain.errors import FedchainError
from fedchain.hashing import file_hash, to_hex
from fedchain.ml.data import (
    CSV_PREFIX,
    DEFAULT_LABEL_COLUMN,
    Dataset,
    dataset_hash,
    load_dataset,
    parse_dataset_spec,
    split_holdout,
)
from fedchain.ml.errors import DatasetError, PartitionError
from fedchain.ml.models import CNN, MLP, build_model
from fedchain.ml.partition import partition
from fedchain.ml.preprocess import Standardizer, preprocess
from fedchain.ml.training import evaluate, train
from fedchain.ml.weights import get_weights, set_weights
from fedchain.settings import RunSettings
from fedchain.task import SpecData, TaskSpec, decode_names, encode_names

__all__ = [
    "Holdout",
    "client_data",
    "evaluate_weights",
    "holdout",
    "initial_weights",
    "model_name",
    "run_dataset",
    "site_columns",
    "site_data",
    "spec_data",
    "standardization_problem",
    "task_standardizer",
    "train_locally",
]

Weights = dict[str, np.ndarray[Any, Any]]

# One process trains one client at a time; more threads only fight over the 2 cores.
_TORCH_THREADS = 1
#: Client datasets a process keeps (least recently used dropped first).
_CLIENT_DATA_CACHE = 16


@dataclass(frozen=True)
class Holdout:
    """The server's holdout set, preprocessed (with its own statistics, which are the task's
    when ``standardize`` is ``task``), and its hash."""

    data: Dataset
    data_hash: bytes
    num_classes: int
    input_shape: tuple[int, ...]


# (dataset spec, label column, features, classes): how the settings name the task's data.
_DataKey = tuple[str, str, str, str]


@cache
def _dataset(spec: str, label_column: str, features: str, classes: str) -> Dataset:
    """The task's data: a simulation's whole dataset or a coordinator's holdout file."""
    parsed = parse_dataset_spec(spec)
    if parsed.kind != "csv":
        if features or label_column != DEFAULT_LABEL_COLUMN:
            raise DatasetError(
                f"--features and --label-column select the columns of a CSV file "
                f"({CSV_PREFIX}PATH); {spec} has its own: drop them"
            )
        return load_dataset(parsed)
    data = load_dataset(
        parsed,
        label_column=label_column,
        feature_columns=decode_names(features) or None,
        classes=decode_names(classes) or None,
    )
    found = np.unique(data.labels)
    if found.size < 2:
        value = data.class_names[found[0]] if data.class_names else str(found[0])
        raise DatasetError(
            f"{parsed.path}: the label column {label_column!r} has one class ({value!r}): a "
            "classifier cannot learn from it; name another column with --label-column, or add "
            "rows of the other classes"
        )
    return data


def _data_key(settings: RunSettings, spec: str) -> _DataKey:
    return (spec, settings.label_column, settings.features, settings.classes)


@cache
def _split(key: _DataKey, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    return split_holdout(_dataset(*key), fraction, seed)


def run_dataset(settings: RunSettings) -> Dataset:
    """A simulation's whole dataset (``settings.dataset``) as the run reads it, before the
    holdout is split off: a CSV file with the settings' label column, features and classes.

    Raises
    ------
    DatasetError
        If the file cannot be read as the settings say (the message names what to change), or
        its labels hold a single class.
    """
    return _dataset(*_data_key(settings, settings.dataset))


def _raw_holdout(settings: RunSettings) -> Dataset:
    """The holdout as read, before preprocessing.

    A simulation splits it off ``settings.dataset``; a consortium's coordinator names a file of
    its own in ``settings.holdout`` (``csv:PATH``), used whole.
    """
    if settings.holdout:
        return _dataset(*_data_key(settings, settings.holdout))
    key = _data_key(settings, settings.dataset)
    _, raw = _split(key, settings.holdout_fraction, settings.seed)
    return raw


def holdout(settings: RunSettings) -> Holdout:
    """The holdout the server evaluates on; its hash goes into the task spec.

    A simulation splits it off ``settings.dataset``; a consortium's coordinator names a file of
    its own in ``settings.holdout`` (``csv:PATH``), used whole.
    """
    raw = _raw_holdout(settings)
    data = preprocess(raw, task_standardizer(settings))
    return Holdout(data, dataset_hash(raw), raw.num_classes, raw.input_shape)


@lru_cache(maxsize=4)
def holdout_statistics(settings: RunSettings) -> Standardizer | None:
    """The task's standardization statistics: the holdout's per-feature mean and standard
    deviation (see :meth:`fedchain.ml.preprocess.Standardizer.fit`); None for images, which
    are scaled by a constant."""
    raw = _raw_holdout(settings)
    return None if raw.is_image else Standardizer.fit(raw.features)


def task_standardizer(settings: RunSettings) -> Standardizer | None:
    """The statistics every party standardizes with, or None when each uses its own
    (``standardize = "local"``, or images).

    A party that holds the holdout (the server, a simulated client, an auditor) rebuilds them
    from it; a site reads them from ``standardize-stats`` in the run config.

    Raises
    ------
    DatasetError
        If ``standardize-stats`` cannot be read, or a site has neither them nor the holdout.
    """
    if settings.standardize == "local":
        return None
    if settings.standardize_stats:
        return Standardizer.from_json(settings.standardize_stats)
    return holdout_statistics(settings)


def spec_data(settings: RunSettings) -> SpecData:
    """How the task spec names the settings' data: a built-in dataset by its name, a CSV file
    (a simulation's dataset, or a consortium coordinator's holdout) by its SHA-256, its file
    name (for display only: a path means nothing on another machine), the columns read and the
    class names its labels were mapped from."""
    source = settings.holdout or settings.dataset
    path = parse_dataset_spec(source).path
    standardization = _spec_standardization(settings)
    if path is None:
        return SpecData(
            dataset=settings.dataset,
            data_hash="",
            label_column="",
            features=(),
            classes=(),
            **standardization,
        )
    data = _dataset(*_data_key(settings, source))
    return SpecData(
        dataset=settings.dataset if settings.holdout else f"{CSV_PREFIX}{path.name}",
        data_hash=to_hex(file_hash(path)),
        label_column=settings.label_column,
        features=data.feature_names,
        classes=data.class_names,
        **standardization,
    )


class _SpecStandardization(TypedDict):
    standardize: str
    feature_mean: tuple[float, ...]
    feature_scale: tuple[float, ...]


def _spec_standardization(settings: RunSettings) -> _SpecStandardization:
    """The spec's standardization fields: the mode, and with ``task`` the holdout's statistics.

    Raises
    ------
    DatasetError
        If the run config's ``standardize-stats`` (what the sites use) are not the holdout's.
    """
    if settings.standardize == "local":
        return _SpecStandardization(standardize="local", feature_mean=(), feature_scale=())
    stats = holdout_statistics(settings)
    if stats is None:  # images: scaled by a constant, nothing to record
        return _SpecStandardization(
            standardize=settings.standardize, feature_mean=(), feature_scale=()
        )
    if settings.standardize_stats and not stats.same_as(
        Standardizer.from_json(settings.standardize_stats)
    ):
        raise DatasetError(
            "the run config's standardize-stats are not the holdout's statistics, so the sites "
            "would standardize unlike the task spec: use the run config `fedchain task create` "
            "wrote, or clear standardize-stats"
        )
    return _SpecStandardization(
        standardize=settings.standardize,
        feature_mean=tuple(float(v) for v in stats.mean.ravel()),
        feature_scale=tuple(float(v) for v in stats.scale.ravel()),
    )


def standardization_problem(spec: TaskSpec, settings: RunSettings) -> str:
    """Why ``spec``'s standardization is not the one its holdout gives ("" when it is): with
    ``task``, its ``feature_mean`` and ``feature_scale`` must be the statistics of the holdout
    ``settings`` rebuild, bit for bit, or the clients trained in another input space."""
    try:
        rebuilt = _spec_standardization(
            settings.with_changes(standardize=spec.standardize, standardize_stats="")
        )
    except FedchainError as exc:  # a holdout that cannot be read, a mode that does not exist
        return f"the spec's standardization cannot be rebuilt: {exc}"
    if (spec.feature_mean, spec.feature_scale) != (
        rebuilt["feature_mean"],
        rebuilt["feature_scale"],
    ):
        return (
            f"the spec's standardization statistics ({spec.standardize}) are not those of the "
            "holdout rebuilt from it: the clients standardized unlike the task the chain names"
        )
    return ""


def site_columns(settings: RunSettings) -> RunSettings:
    """``settings`` with the feature columns and class names of the coordinator's holdout file
    written out, so every site reads its own file as the holdout was read (the run config
    carries them to the sites); settings without a CSV holdout are returned as they are.

    Raises
    ------
    DatasetError
        If the holdout cannot be read as the settings say, or holds a single class.
    """
    if not settings.holdout or parse_dataset_spec(settings.holdout).path is None:
        return settings
    data = _dataset(*_data_key(settings, settings.holdout))
    stats = holdout_statistics(settings) if settings.standardize == "task" else None
    return settings.with_changes(
        features=encode_names(data.feature_names),
        classes=encode_names(data.class_names),
        standardize_stats=stats.to_json() if stats is not None else "",
    )


@lru_cache(maxsize=4)
def _partition(
    key: _DataKey, fraction: float, seed: int, scheme: str, num_partitions: int
) -> tuple[NDArray[np.int64], ...]:
    """Every client's example indices: computed once per process, deterministic for the seed.

    Only index arrays (one int64 per training example in all) are kept, whatever the number of
    clients; a client's data is built from them when it is sampled.
    """
    train_part, _ = _split(key, fraction, seed)
    return tuple(partition(train_part.labels, num_partitions, scheme, seed))


# A worker process trains the clients it is handed one at a time: a few recent datasets are
# kept (a small federation keeps all of its clients), never one per client of a large one.
@lru_cache(maxsize=_CLIENT_DATA_CACHE)
def _client_data(settings: RunSettings, partition_id: int, num_partitions: int) -> Dataset:
    key = _data_key(settings, settings.dataset)
    train_part, _ = _split(key, settings.holdout_fraction, settings.seed)
    indices = _partition(
        key, settings.holdout_fraction, settings.seed, settings.partition, num_partitions
    )[partition_id]
    return preprocess(train_part.subset(indices), task_standardizer(settings))


def client_data(
    settings: RunSettings, partition_id: int, num_partitions: int | None = None
) -> Dataset:
    """Simulated client ``partition_id``'s training data, preprocessed with its own statistics
    or the task's (see :func:`task_standardizer`).

    ``num_partitions`` is the number of simulated nodes (Flower's node config), by default the
    settings' number of clients.
    """
    total = num_partitions or settings.num_clients
    if not 0 <= partition_id < total:
        raise PartitionError(f"partition id {partition_id} outside 0..{total - 1}")
    return _client_data(settings, partition_id, total)


@cache
def site_data(
    path: str,
    label_column: str,
    num_classes: int | None,
    features: str = "",
    classes: str = "",
    *,
    standardize: str = "local",
    standardize_stats: str = "",
) -> Dataset:
    """A hospital's own CSV file (its SuperNode's ``data-path``), preprocessed with its own
    statistics or (``standardize = "task"``) the task's, ``standardize_stats``; ``num_classes``
    is the task's (a site may lack some classes); ``features``, ``classes`` and the
    standardization are the run config's (see :func:`fedchain.task.encode_names`).

    Raises
    ------
    DatasetError
        If the file cannot be read so, or its labels are class names but the task names no
        classes (a site would number them on its own, unlike the others), or the task
        standardizes with its statistics and the run config carries none.
    """
    data = load_dataset(
        f"{CSV_PREFIX}{path}",
        label_column=label_column,
        feature_columns=decode_names(features) or None,
        num_classes=num_classes,
        classes=decode_names(classes) or None,
    )
    if data.class_names and not classes:
        raise DatasetError(
            f"{path}: the labels are class names ({', '.join(map(repr, data.class_names))}) but "
            "the task names no classes, so this site would number them unlike the others: the "
            "coordinator creates the task with `fedchain task create`, which records them"
        )
    if standardize == "local":
        return preprocess(data)
    if not standardize_stats:
        raise DatasetError(
            f"the task standardizes features with its holdout's statistics, but the run config "
            f"carries no standardize-stats for this site ({path}): the coordinator writes them "
            "with `fedchain task create`; submit the run config it wrote"
        )
    return preprocess(data, Standardizer.from_json(standardize_stats))


def model_name(settings: RunSettings, input_shape: tuple[int, ...]) -> str:
    """The model the settings name; ``auto`` is the CNN for images, the MLP for tables."""
    if settings.model != "auto":
        return settings.model
    return CNN if len(input_shape) == 3 else MLP


def _model(
    settings: RunSettings, input_shape: tuple[int, ...], num_classes: int
) -> torch.nn.Module:
    torch.set_num_threads(_TORCH_THREADS)
    return build_model(model_name(settings, input_shape), input_shape, num_classes, settings.seed)


def initial_weights(
    settings: RunSettings, input_shape: tuple[int, ...], num_classes: int
) -> Weights:
    """The initial global model: deterministic for the seed."""
    return dict(get_weights(_model(settings, input_shape, num_classes)))


def train_locally(
    settings: RunSettings,
    data: Dataset,
    weights: Mapping[str, np.ndarray[Any, Any]],
    *,
    seed: int,
    proximal_mu: float = 0.0,
) -> tuple[Weights, float]:
    """Train the global ``weights`` on ``data``; returns the update and the last epoch's loss.

    With DP on (``settings.privacy``) the training is DP-SGD, with the noise this site's number
    of examples needs to stay within the cap over the planned rounds (fedchain.ml.privacy).
    """
    model = _model(settings, data.input_shape, data.num_classes)
    set_weights(model, weights)
    terms = settings.privacy
    if terms is not None:
        from fedchain.ml.dp_training import train_private
        from fedchain.ml.privacy import noise_multiplier

        sigma = noise_multiplier(
            terms,
            dataset_size=len(data),
            batch_size=settings.batch_size,
            local_epochs=settings.local_epochs,
            rounds=settings.dp_planned_rounds,
        )
        result = train_private(
            model,
            data.features,
            data.labels,
            epochs=settings.local_epochs,
            lr=settings.learning_rate,
            batch_size=settings.batch_size,
            seed=seed,
            noise_multiplier=sigma,
            clip_norm=terms.clip_norm,
            proximal_mu=proximal_mu,
        )
        return dict(get_weights(model)), result.loss
    result = train(
        model,
        data.features,
        data.labels,
        epochs=settings.local_epochs,
        lr=settings.learning_rate,
        batch_size=settings.batch_size,
        seed=seed,
        proximal_mu=proximal_mu,
    )
    return dict(get_weights(model)), result.loss


def evaluate_weights(
    settings: RunSettings, data: Dataset, weights: Mapping[str, np.ndarray[Any, Any]]
) -> tuple[float, float]:
    """Accuracy and mean loss of ``weights`` on ``data``."""
    model = _model(settings, data.input_shape, data.num_classes)
    set_weights(model, weights)
    result = evaluate(model, data.features, data.labels)
    return result.accuracy, result.loss
