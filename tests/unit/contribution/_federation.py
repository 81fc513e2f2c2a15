"""Real, small federation rounds to score: logistic regression in plain torch and numpy.

A round starts from a global model trained with FedAvg for ``warmup_rounds`` rounds; each client
then trains one local epoch from it. The utility of a coalition is minus the holdout
cross-entropy of the example-weighted average of the coalition's models (the parent model for
the empty coalition), as the server measures it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from fedchain.contribution.base import Coalition
from fedchain.ml.data import Dataset, load_breast_cancer, load_digits, split_holdout
from fedchain.ml.models import build_model
from fedchain.ml.partition import partition
from fedchain.ml.preprocess import preprocess_local
from fedchain.ml.training import evaluate, train
from fedchain.ml.weights import get_weights, set_weights

__all__ = ["FederationRound", "build_round", "client_data", "split"]

SEED = 0
BATCH_SIZE = 8


@dataclass(frozen=True)
class FederationRound:
    """One round to score: flattened parent and local models, example counts, holdout."""

    parent: NDArray[np.float64]
    models: tuple[NDArray[np.float64], ...]
    num_examples: tuple[int, ...]
    holdout: Dataset
    shapes: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def n(self) -> int:
        """Number of participants."""
        return len(self.models)

    @property
    def deltas(self) -> list[NDArray[np.float64]]:
        """Each participant's model minus the parent."""
        return [model - self.parent for model in self.models]

    def utility(self, coalition: Coalition) -> float:
        """Minus the holdout loss of the example-weighted average of the coalition's models."""
        members = sorted(coalition)
        if members:
            aggregate = _average(
                [self.models[i] for i in members], [self.num_examples[i] for i in members]
            )
        else:
            aggregate = self.parent
        model = _model(self.holdout)
        _load(model, self.shapes, aggregate)
        return -evaluate(model, self.holdout.features, self.holdout.labels).loss


def split(name: str) -> tuple[Dataset, Dataset]:
    """``(train, holdout)`` of ``"breast-cancer"`` or ``"digits"``; holdout preprocessed."""
    dataset = load_digits() if name == "digits" else load_breast_cancer()
    train_set, holdout = split_holdout(dataset, 0.2, seed=SEED)
    return train_set, preprocess_local(holdout)


def client_data(
    train_set: Dataset, sizes_or_count: int | Sequence[int], scheme: str
) -> list[Dataset]:
    """Preprocessed client datasets: a seeded partition, or IID shares of the given sizes."""
    if isinstance(sizes_or_count, int):
        shares = partition(train_set.labels, sizes_or_count, scheme, seed=SEED)
    else:
        order = np.random.default_rng(SEED).permutation(len(train_set))
        shares = np.split(order, np.cumsum(sizes_or_count))[: len(sizes_or_count)]
    return [preprocess_local(train_set.subset(share)) for share in shares]


def build_round(
    clients: Sequence[Dataset],
    holdout: Dataset,
    *,
    lr: float,
    warmup_rounds: int,
    train_seeds: Sequence[int] | None = None,
    free_riders: Mapping[int, float] | None = None,
) -> FederationRound:
    """Warm a global model up with FedAvg, then run the round to score.

    Parameters
    ----------
    clients
        Preprocessed data of each participant (the same object twice gives identical data).
    lr
        Local SGD learning rate (momentum 0.9, batch 8, one epoch).
    warmup_rounds
        FedAvg rounds, every client training honestly, before the round to score.
    train_seeds
        Shuffling seed of each participant in the scored round; default its index.
    free_riders
        Participant index -> noise std: in the scored round it returns the parent model plus
        gaussian noise of that std (0: unchanged) instead of training, and still reports its
        dataset's size.
    """
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    seeds = list(range(len(clients))) if train_seeds is None else list(train_seeds)
    riders = dict(free_riders or {})
    model = _model(holdout)
    shapes = tuple((name, tuple(w.shape)) for name, w in get_weights(model).items())
    counts = tuple(len(client) for client in clients)

    def local_models(parent: NDArray[np.float64], round_: int) -> list[NDArray[np.float64]]:
        scored = round_ == warmup_rounds
        models = []
        for cid, client in enumerate(clients):
            if scored and cid in riders:
                noise = np.random.default_rng(1000 + cid).normal(0.0, riders[cid], parent.shape)
                models.append(parent + noise)
                continue
            _load(model, shapes, parent)
            train(
                model,
                client.features,
                client.labels,
                epochs=1,
                lr=lr,
                batch_size=BATCH_SIZE,
                seed=round_ * 100 + (seeds[cid] if scored else cid),
            )
            models.append(_flatten(model))
        return models

    parent = _flatten(model)
    for round_ in range(warmup_rounds):
        parent = _average(local_models(parent, round_), counts)
    models = tuple(local_models(parent, warmup_rounds))
    return FederationRound(parent, models, counts, holdout, shapes)


def _model(holdout: Dataset) -> torch.nn.Module:
    return build_model("logreg", holdout.input_shape, holdout.num_classes, seed=SEED)


def _flatten(model: torch.nn.Module) -> NDArray[np.float64]:
    return np.concatenate([w.astype(np.float64).ravel() for w in get_weights(model).values()])


def _load(
    model: torch.nn.Module,
    shapes: tuple[tuple[str, tuple[int, ...]], ...],
    flat: NDArray[np.float64],
) -> None:
    weights, offset = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        weights[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    set_weights(model, weights)


def _average(models: Sequence[NDArray[np.float64]], weights: Sequence[int]) -> NDArray[np.float64]:
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray((w / w.sum()) @ np.stack(models), dtype=np.float64)
