"""The ML of a run, derived from its settings: data, holdout, partitions, model, train, evaluate.

Server and clients call the same functions, so a client's partition, its preprocessing and the
model it trains are exactly those the task spec names. No Flower and no chain here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from fedchain.ml.data import Dataset, dataset_hash, load_dataset, split_holdout
from fedchain.ml.models import CNN, MLP, build_model
from fedchain.ml.partition import partition
from fedchain.ml.preprocess import preprocess_local
from fedchain.ml.training import evaluate, train
from fedchain.ml.weights import get_weights, set_weights
from fedchain.settings import RunSettings

__all__ = [
    "Holdout",
    "client_data",
    "evaluate_weights",
    "holdout",
    "initial_weights",
    "model_name",
    "site_data",
    "train_locally",
]

Weights = dict[str, np.ndarray[Any, Any]]

# One process trains one client at a time; more threads only fight over the 2 cores.
_TORCH_THREADS = 1
#: Client datasets a process keeps (least recently used dropped first).
_CLIENT_DATA_CACHE = 16


@dataclass(frozen=True)
class Holdout:
    """The server's holdout set, preprocessed with its own statistics, and its hash."""

    data: Dataset
    data_hash: bytes
    num_classes: int
    input_shape: tuple[int, ...]


@cache
def _dataset(spec: str, label_column: str) -> Dataset:
    return load_dataset(spec, label_column=label_column)


@cache
def _split(spec: str, label_column: str, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    return split_holdout(_dataset(spec, label_column), fraction, seed)


def holdout(settings: RunSettings) -> Holdout:
    """The holdout the server evaluates on; its hash goes into the task spec.

    A simulation splits it off ``settings.dataset``; a consortium's coordinator names a file of
    its own in ``settings.holdout`` (``csv:PATH``), used whole.
    """
    if settings.holdout:
        raw = _dataset(settings.holdout, settings.label_column)
    else:
        _, raw = _split(
            settings.dataset, settings.label_column, settings.holdout_fraction, settings.seed
        )
    return Holdout(preprocess_local(raw), dataset_hash(raw), raw.num_classes, raw.input_shape)


@lru_cache(maxsize=4)
def _partition(
    split: tuple[str, str, float, int], scheme: str, num_partitions: int
) -> tuple[NDArray[np.int64], ...]:
    """Every client's example indices: computed once per process, deterministic for the seed.

    Only index arrays (one int64 per training example in all) are kept, whatever the number of
    clients; a client's data is built from them when it is sampled.
    """
    train_part, _ = _split(*split)
    return tuple(partition(train_part.labels, num_partitions, scheme, split[3]))


# A worker process trains the clients it is handed one at a time: a few recent datasets are
# kept (a small federation keeps all of its clients), never one per client of a large one.
@lru_cache(maxsize=_CLIENT_DATA_CACHE)
def _client_data(settings: RunSettings, partition_id: int, num_partitions: int) -> Dataset:
    key = (settings.dataset, settings.label_column, settings.holdout_fraction, settings.seed)
    train_part, _ = _split(*key)
    indices = _partition(key, settings.partition, num_partitions)[partition_id]
    return preprocess_local(train_part.subset(indices))


def client_data(
    settings: RunSettings, partition_id: int, num_partitions: int | None = None
) -> Dataset:
    """Simulated client ``partition_id``'s training data, preprocessed with its own statistics.

    ``num_partitions`` is the number of simulated nodes (Flower's node config), by default the
    settings' number of clients.
    """
    total = num_partitions or settings.num_clients
    if not 0 <= partition_id < total:
        raise ValueError(f"partition id {partition_id} outside 0..{total - 1}")
    return _client_data(settings, partition_id, total)


@cache
def site_data(path: str, label_column: str, num_classes: int | None) -> Dataset:
    """A hospital's own CSV file (its SuperNode's ``data-path``), preprocessed with its own
    statistics; ``num_classes`` is the task's (a site may lack some classes)."""
    return preprocess_local(
        load_dataset(f"csv:{path}", label_column=label_column, num_classes=num_classes)
    )


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
    """Train the global ``weights`` on ``data``; returns the update and the last epoch's loss."""
    model = _model(settings, data.input_shape, data.num_classes)
    set_weights(model, weights)
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
