"""Quality targets: centralized sanity checks and a tiny FedAvg written in plain numpy.

The FedAvg here (no Flower) averages client weights weighted by their number of examples; every
party preprocesses with its own statistics, as the Flower apps do.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fedchain.ml import (
    DEFAULT_HOLDOUT_FRACTION,
    DEFAULT_PARTITION,
    Dataset,
    TrainingDefaults,
    build_model,
    evaluate,
    get_weights,
    load_breast_cancer,
    load_digits,
    partition,
    preprocess_local,
    set_weights,
    split_holdout,
    torch_threads,
    train,
    training_defaults,
)

SEED = 0


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models train fastest single-threaded, above all on a shared machine."""
    with torch_threads(1):
        yield


def _fedavg(
    dataset: Dataset, defaults: TrainingDefaults, num_clients: int, rounds: int, scheme: str
) -> list[float]:
    """Run FedAvg; return the holdout accuracy of the global model after each round."""
    train_set, holdout = split_holdout(dataset, DEFAULT_HOLDOUT_FRACTION, seed=SEED)
    shares = partition(train_set.labels, num_clients, scheme, seed=SEED)
    clients = [preprocess_local(train_set.subset(share)) for share in shares]
    holdout = preprocess_local(holdout)
    model = build_model(defaults.model, dataset.input_shape, dataset.num_classes, seed=SEED)
    global_weights = get_weights(model)
    accuracies = []
    for round_ in range(rounds):
        updates, counts = [], []
        for cid, client in enumerate(clients):
            set_weights(model, global_weights)
            result = train(
                model,
                client.features,
                client.labels,
                epochs=defaults.local_epochs,
                lr=defaults.lr,
                batch_size=defaults.batch_size,
                seed=SEED * 1000 + round_ * 100 + cid,
            )
            updates.append(get_weights(model))
            counts.append(result.num_examples)
        total = sum(counts)
        global_weights = {
            name: sum(u[name].astype(np.float64) * n for u, n in zip(updates, counts, strict=True))
            / total
            for name in global_weights
        }
        set_weights(model, global_weights)
        accuracies.append(evaluate(model, holdout.features, holdout.labels).accuracy)
    return accuracies


def _centralized(dataset: Dataset, defaults: TrainingDefaults, epochs: int) -> float:
    train_set, holdout = split_holdout(dataset, DEFAULT_HOLDOUT_FRACTION, seed=SEED)
    train_set, holdout = preprocess_local(train_set), preprocess_local(holdout)
    model = build_model(defaults.model, dataset.input_shape, dataset.num_classes, seed=SEED)
    train(
        model,
        train_set.features,
        train_set.labels,
        epochs=epochs,
        lr=defaults.lr,
        batch_size=defaults.batch_size,
        seed=SEED,
    )
    return evaluate(model, holdout.features, holdout.labels).accuracy


def test_centralized_breast_cancer_reaches_target() -> None:
    # Execute
    accuracy = _centralized(load_breast_cancer(), training_defaults("breast-cancer"), epochs=10)

    # Assert
    assert accuracy >= 0.95


def test_centralized_digits_cnn_reaches_target() -> None:
    # Execute
    accuracy = _centralized(load_digits(), training_defaults("digits"), epochs=10)

    # Assert
    assert accuracy >= 0.95


def test_fedavg_breast_cancer_label_skew_reaches_095() -> None:
    # Prepare
    defaults = training_defaults("breast-cancer")

    # Execute
    accuracies = _fedavg(load_breast_cancer(), defaults, 10, rounds=10, scheme=DEFAULT_PARTITION)

    # Assert
    assert DEFAULT_PARTITION == "dirichlet:0.5"
    assert defaults.local_epochs == 1
    assert accuracies[-1] >= 0.95


def test_fedavg_digits_cnn_label_skew_reaches_090() -> None:
    # Prepare
    defaults = training_defaults("digits")

    # Execute
    accuracies = _fedavg(load_digits(), defaults, 10, rounds=10, scheme=DEFAULT_PARTITION)

    # Assert
    assert defaults.model == "cnn"
    assert accuracies[-1] >= 0.90
