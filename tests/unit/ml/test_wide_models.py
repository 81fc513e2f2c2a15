"""The wide MLPs (``mlp-1m``, ``mlp-10m``): their sizes, their names, and their refusal."""

from __future__ import annotations

import pytest
import torch

from fedchain.errors import FedchainError
from fedchain.ml import ModelError, build_model, get_weights
from fedchain.ml.models import ALL_MODEL_NAMES, MODEL_NAMES, WIDE_MLP_WIDTHS
from fedchain.settings import RunSettings
from fedchain.simulation.preflight import check_runnable


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "shape", "classes", "expected"),
    [
        # (30 + 1) * 1000 + (1000 + 1) * 1000 + (1000 + 1) * 2
        ("mlp-1m", (30,), 2, 1_034_002),
        # digits' 8 x 8 images flattened: (64 + 1) * 1000 + 1001 * 1000 + 1001 * 10
        ("mlp-1m", (1, 8, 8), 10, 1_076_010),
        # (30 + 1) * 3150 + (3150 + 1) * 3150 + (3150 + 1) * 2
        ("mlp-10m", (30,), 2, 10_029_602),
    ],
)
def test_the_wide_mlps_have_about_1m_and_10m_parameters(
    name: str, shape: tuple[int, ...], classes: int, expected: int
) -> None:
    # Execute
    model = build_model(name, shape, classes, seed=0)
    logits = model(torch.zeros((3, *shape)))
    # Assert
    assert _parameters(model) == expected
    assert logits.shape == (3, classes)
    assert list(get_weights(model)) == [
        f"{layer}.{kind}"
        for layer in ("hidden1", "hidden2", "output")
        for kind in ("weight", "bias")
    ]


def test_the_wide_mlps_are_named_but_not_among_the_small_models() -> None:
    assert set(WIDE_MLP_WIDTHS) == {"mlp-1m", "mlp-10m"}
    assert (*MODEL_NAMES, "mlp-1m", "mlp-10m") == ALL_MODEL_NAMES
    assert not set(WIDE_MLP_WIDTHS) & set(MODEL_NAMES)


def test_the_same_seed_gives_the_same_wide_mlp() -> None:
    first, again, other = (get_weights(build_model("mlp-1m", 30, 2, seed=s)) for s in (5, 5, 6))
    assert all((first[k] == again[k]).all() for k in first)
    assert not (first["hidden2.weight"] == other["hidden2.weight"]).all()


@pytest.mark.parametrize("name", ["mlp-100m", "MLP-1M", "mlp1m", ""])
def test_an_unknown_model_is_refused_with_the_names_to_use(name: str) -> None:
    # Execute
    with pytest.raises(ModelError) as built:
        build_model(name, 30, 2, seed=0)
    with pytest.raises(FedchainError) as checked:
        check_runnable(RunSettings(model=name))
    # Assert: one line naming every model, before anything runs
    for error in (built.value, checked.value):
        message = str(error)
        assert "\n" not in message
        assert f"unknown model {name!r}" in message
        assert "mlp-1m, mlp-10m" in message


def test_a_wide_mlp_on_each_builtin_dataset_is_runnable() -> None:
    # Execute: no error; the MLPs flatten images as well as tables
    for dataset in ("breast-cancer", "digits", "synthetic:2000"):
        check_runnable(RunSettings(model="mlp-1m", dataset=dataset))
