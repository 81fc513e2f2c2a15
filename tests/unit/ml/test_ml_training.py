"""Local training: bitwise reproducibility, FedProx term, evaluation, and input checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from fedchain.ml import (
    Dataset,
    TrainingError,
    build_model,
    evaluate,
    get_weights,
    load_breast_cancer,
    load_digits,
    preprocess_local,
    torch_threads,
    train,
)
from fedchain.ml.training import MAX_LOSS, bounded_loss


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models train fastest single-threaded, above all on a shared machine."""
    with torch_threads(1):
        yield


def _blobs(n: int = 200) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Two well-separated Gaussian blobs in 5 dimensions."""
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int64)
    features = rng.normal(size=(n, 5)) + 3.0 * labels[:, None]
    return features.astype(np.float32), labels


def _distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


@pytest.mark.parametrize(("name", "dataset"), [("mlp", load_breast_cancer), ("cnn", load_digits)])
def test_train_is_bitwise_reproducible_for_a_seed(
    name: str, dataset: Callable[[], Dataset]
) -> None:
    # Prepare
    ds = preprocess_local(dataset().subset(np.arange(300)))

    def run(seed: int) -> tuple[dict[str, np.ndarray], float]:
        model = build_model(name, ds.input_shape, ds.num_classes, seed=0)
        result = train(model, ds.features, ds.labels, epochs=2, lr=0.05, batch_size=16, seed=seed)
        return get_weights(model), result.loss

    # Execute
    first, first_loss = run(seed=11)
    again, again_loss = run(seed=11)
    other, _ = run(seed=12)

    # Assert
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert first_loss == again_loss
    assert not all(np.array_equal(first[k], other[k]) for k in first)


def test_train_learns_and_reports_examples_and_loss() -> None:
    # Prepare
    features, labels = _blobs()
    model = build_model("logreg", 5, 2, seed=0)
    before = evaluate(model, features, labels)

    # Execute
    result = train(model, features, labels, epochs=3, lr=0.1, batch_size=16, seed=0)
    after = evaluate(model, features, labels)

    # Assert
    assert result.num_examples == 200
    assert 0.0 < result.loss < before.loss
    assert after.accuracy > 0.95
    assert after.loss < before.loss
    assert after.num_examples == 200


def test_train_does_not_touch_global_rng() -> None:
    # Prepare
    features, labels = _blobs()
    model = build_model("logreg", 5, 2, seed=0)
    state = torch.random.get_rng_state()

    # Execute
    train(model, features, labels, epochs=1, lr=0.1, batch_size=16, seed=0)

    # Assert
    assert torch.equal(state, torch.random.get_rng_state())


def test_proximal_term_keeps_weights_near_the_global_model() -> None:
    # Prepare
    features, labels = _blobs()
    start = get_weights(build_model("mlp", 5, 2, seed=0))

    def drift(mu: float) -> float:
        model = build_model("mlp", 5, 2, seed=0)
        train(model, features, labels, epochs=3, lr=0.05, batch_size=16, seed=0, proximal_mu=mu)
        return _distance(get_weights(model), start)

    # Execute
    free, proximal = drift(0.0), drift(5.0)

    # Assert
    assert proximal < 0.5 * free


def test_evaluate_leaves_model_and_mode_unchanged() -> None:
    # Prepare
    features, labels = _blobs()
    model = build_model("mlp", 5, 2, seed=0)
    model.train()
    before = get_weights(model)

    # Execute
    result = evaluate(model, features, labels, batch_size=7)

    # Assert
    assert 0.0 <= result.accuracy <= 1.0
    assert result.loss > 0.0
    assert model.training
    assert all(np.array_equal(before[k], v) for k, v in get_weights(model).items())


def test_evaluate_batch_size_does_not_change_the_result() -> None:
    # Prepare
    features, labels = _blobs()
    model = build_model("mlp", 5, 2, seed=0)

    # Execute
    whole = evaluate(model, features, labels)
    batched = evaluate(model, features, labels, batch_size=7)

    # Assert
    assert whole.accuracy == batched.accuracy
    assert whole.loss == pytest.approx(batched.loss, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs and batch_size must be >= 1"),
        ({"batch_size": 0}, "epochs and batch_size must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"proximal_mu": -1.0}, "proximal_mu must be >= 0"),
    ],
)
def test_train_rejects_bad_hyper_parameters(kwargs: dict[str, float], message: str) -> None:
    # Prepare
    features, labels = _blobs()
    args: dict[str, float] = {"epochs": 1, "lr": 0.1, "batch_size": 8, "seed": 0}
    args.update(kwargs)

    # Execute / Assert
    with pytest.raises(TrainingError, match=message):
        train(build_model("logreg", 5, 2, seed=0), features, labels, **args)  # type: ignore[arg-type]


def test_train_and_evaluate_reject_unusable_data() -> None:
    # Prepare
    features, labels = _blobs()
    model = build_model("logreg", 5, 2, seed=0)

    # Execute / Assert
    with pytest.raises(TrainingError, match="same n"):
        evaluate(model, features, labels[:-1])
    with pytest.raises(TrainingError, match="no examples"):
        evaluate(model, features[:0], labels[:0])
    with pytest.raises(TrainingError, match="model has 2 outputs"):
        evaluate(model, features, labels + 1)
    with pytest.raises(TrainingError, match="cannot take examples of shape"):
        train(model, features[:, :3], labels, epochs=1, lr=0.1, batch_size=8, seed=0)


def test_torch_threads_restores_the_previous_count() -> None:
    # Prepare
    before = torch.get_num_threads()

    # Execute
    with torch_threads(1):
        inside = torch.get_num_threads()

    # Assert
    assert inside == 1
    assert torch.get_num_threads() == before
    with pytest.raises(TrainingError, match="at least 1"), torch_threads(0):
        pass


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e30])
def test_a_diverged_model_is_evaluated_at_the_loss_cap(value: float) -> None:
    # Prepare: weights a sign-flip attack can leave a FedAvg model with
    features, labels = _blobs()
    model = build_model("mlp", (5,), 2, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    # Execute
    result = evaluate(model, features, labels)
    # Assert: a finite loss the chain's fixed point and the scores can hold
    assert result.loss == MAX_LOSS


def test_the_loss_cap_keeps_every_loss_below_it() -> None:
    assert bounded_loss(0.25) == 0.25
    assert bounded_loss(MAX_LOSS) == MAX_LOSS
    assert bounded_loss(2 * MAX_LOSS) == MAX_LOSS
    assert bounded_loss(float("nan")) == MAX_LOSS
