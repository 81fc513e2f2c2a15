"""A model's holdout loss to second order around one point, along a few directions.

Contribution scoring (``gtg``) values coalitions of updates by the holdout loss of their
weighted mean. Around the round's global model ``c`` that loss is, to second order,
``L(c + D) ~ L(c) + g . D + D^T H D / 2`` with ``g`` and ``H`` the loss's gradient and Hessian
at ``c``; a coalition's ``D`` is a weighted mean of its members' directions ``d_i = w_i - c``,
so the expansion needs only ``g . d_i`` and ``d_i^T H d_j`` (one Hessian-vector product per
direction, by double backward). Everything runs in float64 on one thread: the server and an
auditor get the same bits.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F  # noqa: N812 (the PyTorch idiom)

from fedchain.ml.errors import WeightsMismatchError

__all__ = ["loss_expansion"]


def loss_expansion(
    model: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    center: Mapping[str, NDArray[Any]],
    directions: Sequence[Mapping[str, NDArray[Any]]],
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """The mean cross-entropy at ``center``, its slope along each direction, and the Hessian's
    values between every pair of directions: ``L(c)``, ``[g . d_i]``, ``[d_i^T H d_j]``.

    Parameters
    ----------
    model
        The architecture (its own weights are not used nor changed).
    center, directions
        Weights by parameter name (every parameter of ``model``, nothing else).

    Raises
    ------
    WeightsMismatchError
        If ``center`` or a direction does not name exactly the model's parameters.
    """
    torch.set_num_threads(1)  # one thread: the same sums on the server and for an auditor
    double = copy.deepcopy(model).double()
    names = [name for name, _ in double.named_parameters()]
    shapes = [tuple(p.shape) for _, p in double.named_parameters()]
    point = torch.tensor(_flat(center, names), dtype=torch.float64, requires_grad=True)
    x = features.to(torch.float64)

    def loss_at(flat: torch.Tensor) -> torch.Tensor:
        params: dict[str, torch.Tensor] = {}
        start = 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            params[name] = flat[start : start + size].reshape(shape)
            start += size
        return F.cross_entropy(functional_call(double, params, (x,)), labels)

    loss = loss_at(point)
    if not directions:
        return float(loss.detach()), np.zeros(0), np.zeros((0, 0))
    (gradient,) = torch.autograd.grad(loss, point, create_graph=True)
    stacked = np.stack([_flat(d, names) for d in directions])
    products = np.stack(
        [
            torch.autograd.grad(gradient, point, torch.from_numpy(row), retain_graph=True)[0]
            .detach()
            .numpy()
            for row in stacked
        ]
    )
    slopes: NDArray[np.float64] = stacked @ gradient.detach().numpy()
    hessian: NDArray[np.float64] = stacked @ products.T
    return float(loss.detach()), slopes, hessian


def _flat(weights: Mapping[str, NDArray[Any]], names: Sequence[str]) -> NDArray[np.float64]:
    if set(weights) != set(names):
        raise WeightsMismatchError(
            f"weights name {sorted(weights)}, the model's parameters are {sorted(names)}"
        )
    return np.concatenate([np.asarray(weights[n], dtype=np.float64).ravel() for n in names])
