"""Weights exchange: a model's state as ``dict[str, numpy.ndarray]`` in ``state_dict`` order."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from fedchain.ml.errors import WeightsMismatchError

__all__ = ["Weights", "get_weights", "set_weights"]

Weights = dict[str, NDArray[np.generic]]


def get_weights(model: nn.Module) -> Weights:
    """Copy a model's state into numpy arrays, keyed and ordered as its ``state_dict``.

    The arrays are copies: changing them does not change the model, and vice versa.
    """
    return {
        name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()
    }


def set_weights(model: nn.Module, weights: Mapping[str, ArrayLike]) -> None:
    """Load ``weights`` into ``model`` in place (values are copied and cast to its dtypes).

    Raises
    ------
    WeightsMismatchError
        If names are missing or unexpected, or a shape differs; the message lists every
        problem. The model is left unchanged then.
    """
    state = model.state_dict()
    missing = [name for name in state if name not in weights]
    extra = [name for name in weights if name not in state]
    arrays = {name: np.asarray(weights[name]) for name in state if name in weights}
    wrong_shapes = [
        f"{name}: expected {tuple(state[name].shape)}, got {arrays[name].shape}"
        for name in arrays
        if arrays[name].shape != tuple(state[name].shape)
    ]
    if missing or extra or wrong_shapes:
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unexpected {extra}")
        if wrong_shapes:
            problems.append(f"wrong shapes ({'; '.join(wrong_shapes)})")
        raise WeightsMismatchError(
            f"weights do not fit this {type(model).__name__}: {', '.join(problems)}. "
            "Were they produced by the same model name and dataset?"
        )
    new_state = {
        name: torch.tensor(arrays[name], dtype=state[name].dtype, device=state[name].device)
        for name in state
    }
    model.load_state_dict(new_state, strict=True)
