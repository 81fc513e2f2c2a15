"""Models by name, deterministic initialization, and the weights exchange."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedchain.ml import (
    MODEL_NAMES,
    ModelError,
    WeightsMismatchError,
    build_model,
    get_weights,
    set_weights,
)

SHAPES = {"logreg": (30,), "mlp": (30,), "cnn": (1, 8, 8)}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_build_model_outputs_one_logit_per_class(name: str) -> None:
    # Prepare
    model = build_model(name, SHAPES[name], num_classes=10, seed=0)

    # Execute
    logits = model(torch.zeros((4, *SHAPES[name])))

    # Assert
    assert logits.shape == (4, 10)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_build_model_is_deterministic_per_seed_without_touching_global_rng(name: str) -> None:
    # Prepare
    rng_state = torch.random.get_rng_state()

    # Execute
    first = get_weights(build_model(name, SHAPES[name], 2, seed=7))
    again = get_weights(build_model(name, SHAPES[name], 2, seed=7))
    other = get_weights(build_model(name, SHAPES[name], 2, seed=8))

    # Assert
    assert _same(first, again)
    assert not _same(first, other)
    assert torch.equal(rng_state, torch.random.get_rng_state())


def test_model_parameter_names_and_sizes() -> None:
    # Execute
    logreg = build_model("logreg", 30, 2, seed=0)
    mlp = build_model("mlp", 30, 2, seed=0)
    cnn = build_model("cnn", (1, 8, 8), 10, seed=0)

    # Assert
    assert list(get_weights(logreg)) == ["linear.weight", "linear.bias"]
    assert list(get_weights(mlp)) == [
        "hidden.weight",
        "hidden.bias",
        "output.weight",
        "output.bias",
    ]
    assert next(iter(get_weights(cnn))) == "conv1.weight"
    assert sum(p.numel() for p in cnn.parameters()) < 20_000


def test_build_model_rejects_unknown_name() -> None:
    # Execute
    with pytest.raises(ModelError) as info:
        build_model("resnet", 30, 2, seed=0)

    # Assert
    assert isinstance(info.value, ValueError)
    assert "unknown model 'resnet'" in str(info.value)
    assert "logreg, mlp, cnn" in str(info.value)


@pytest.mark.parametrize("shape", [30, (64,), (1, 28, 28)])
def test_build_model_rejects_cnn_on_tabular_data(shape: int | tuple[int, ...]) -> None:
    # Execute / Assert
    with pytest.raises(ModelError, match="use 'logreg' or 'mlp' for tabular data"):
        build_model("cnn", shape, 2, seed=0)


def test_build_model_rejects_bad_sizes() -> None:
    # Execute / Assert
    with pytest.raises(ModelError, match="num_classes"):
        build_model("mlp", 30, 1, seed=0)
    with pytest.raises(ModelError, match="input_shape"):
        build_model("mlp", 0, 2, seed=0)


def test_weights_roundtrip_reproduces_the_model() -> None:
    # Prepare
    source = build_model("cnn", (1, 8, 8), 10, seed=1)
    target = build_model("cnn", (1, 8, 8), 10, seed=2)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    # Execute
    set_weights(target, get_weights(source))

    # Assert
    assert _same(get_weights(target), get_weights(source))
    assert torch.equal(target(x), source(x))
    assert list(get_weights(target)) == list(target.state_dict())


def test_get_weights_returns_copies() -> None:
    # Prepare
    model = build_model("logreg", 3, 2, seed=0)
    weights = get_weights(model)

    # Execute
    weights["linear.bias"][:] = 42.0

    # Assert
    assert not np.any(get_weights(model)["linear.bias"] == 42.0)


def test_set_weights_casts_dtype() -> None:
    # Prepare
    model = build_model("logreg", 3, 2, seed=0)
    weights = {k: v.astype(np.float64) + 1.0 for k, v in get_weights(model).items()}

    # Execute
    set_weights(model, weights)

    # Assert
    assert model.state_dict()["linear.bias"].dtype == torch.float32
    np.testing.assert_allclose(get_weights(model)["linear.bias"], weights["linear.bias"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "missing ['linear.bias']"),
        ("extra", "unexpected ['linear.scale']"),
        ("shape", "linear.weight: expected (2, 3), got (2, 4)"),
    ],
)
def test_set_weights_rejects_mismatches_and_leaves_model_unchanged(
    change: str, message: str
) -> None:
    # Prepare
    model = build_model("logreg", 3, 2, seed=0)
    before = get_weights(model)
    weights = {k: v + 1.0 for k, v in before.items()}
    if change == "missing":
        del weights["linear.bias"]
    elif change == "extra":
        weights["linear.scale"] = np.ones(2, dtype=np.float32)
    else:
        weights["linear.weight"] = np.ones((2, 4), dtype=np.float32)

    # Execute
    with pytest.raises(WeightsMismatchError) as info:
        set_weights(model, weights)

    # Assert
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert _same(get_weights(model), before)
