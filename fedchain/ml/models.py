"""Models chosen by name, with a deterministic initialization per seed.

Parameter names are explicit (``linear.weight``, ``conv1.bias``, ...) because they are part of
the canonical model hash. No model has batch-norm statistics or dropout, so a model's state is
its parameters alone and FedAvg averages everything in it.

``mlp-1m`` and ``mlp-10m`` are wide MLPs of about 1M and 10M parameters on any dataset, for
measuring the ledger at realistic model sizes (scripts/bench_model_size.py). They are outside
:data:`MODEL_NAMES` (the small models every test trains) and inside :data:`ALL_MODEL_NAMES`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import nn

from fedchain.ml.errors import ModelError

__all__ = [
    "ALL_MODEL_NAMES",
    "CNN",
    "CNN_INPUT_SHAPE",
    "LOGREG",
    "MLP",
    "MLP_HIDDEN_UNITS",
    "MODEL_NAMES",
    "WIDE_MLP_WIDTHS",
    "build_model",
]

LOGREG = "logreg"
MLP = "mlp"
CNN = "cnn"
MODEL_NAMES = (LOGREG, MLP, CNN)
#: Hidden width of each wide MLP: two square-ish hidden layers dominate its parameter count
#: (1000**2 and 3150**2; 1.03M and 10.03M parameters on 30 features and 2 classes).
WIDE_MLP_WIDTHS: Mapping[str, int] = MappingProxyType({"mlp-1m": 1000, "mlp-10m": 3150})
ALL_MODEL_NAMES = (*MODEL_NAMES, *WIDE_MLP_WIDTHS)
MLP_HIDDEN_UNITS = 64
# The cnn is sized for scikit-learn's digits: one grey channel, 8 x 8 pixels.
CNN_INPUT_SHAPE = (1, 8, 8)


def build_model(
    name: str, input_shape: int | tuple[int, ...], num_classes: int, seed: int
) -> nn.Module:
    """Build a freshly initialized model; the same arguments give bitwise-equal weights.

    Parameters
    ----------
    name
        ``"logreg"``: multinomial logistic regression, one ``Linear`` layer (``linear``).
        ``"mlp"``: ``Linear(d, 64)`` (``hidden``), ReLU, ``Linear(64, k)`` (``output``).
        ``"cnn"``: for ``(1, 8, 8)`` images: ``conv1`` 3x3 with 16 channels, ReLU, ``conv2``
        3x3 with 32 channels, ReLU, 2x2 max-pool, ``fc`` from 512 to k; about 9.9k parameters.
        ``"mlp-1m"``, ``"mlp-10m"``: ``Linear(d, w)`` (``hidden1``), ReLU, ``Linear(w, w)``
        (``hidden2``), ReLU, ``Linear(w, k)`` (``output``), ``w`` from :data:`WIDE_MLP_WIDTHS`.
    input_shape
        Shape of one example, e.g. ``Dataset.input_shape``; an int ``d`` means tabular ``(d,)``.
        ``logreg`` and the MLPs flatten any shape.
    num_classes
        Number of output logits (at least 2; binary tasks use 2 logits).
    seed
        Seeds the initialization without touching torch's global random state.

    Raises
    ------
    ModelError
        For an unknown name, a cnn on anything but ``(1, 8, 8)`` images, or bad sizes.
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if name not in ALL_MODEL_NAMES:
        raise ModelError(f"unknown model {name!r}: use one of {', '.join(ALL_MODEL_NAMES)}")
    if not shape or any(size < 1 for size in shape):
        raise ModelError(f"input_shape must be positive sizes, got {input_shape!r}")
    if num_classes < 2:
        raise ModelError(f"num_classes must be at least 2, got {num_classes}")
    if name == CNN and shape != CNN_INPUT_SHAPE:
        raise ModelError(
            f"the cnn needs {CNN_INPUT_SHAPE} images (the digits dataset), got examples of "
            f"shape {shape}: use 'logreg' or 'mlp' for tabular data"
        )
    num_features = 1
    for size in shape:
        num_features *= size
    # fork_rng restores torch's global generator afterwards: building a model has no side effect.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == LOGREG:
            layers: OrderedDict[str, nn.Module] = OrderedDict(
                flatten=nn.Flatten(), linear=nn.Linear(num_features, num_classes)
            )
        elif name in WIDE_MLP_WIDTHS:
            layers = _wide_mlp(num_features, WIDE_MLP_WIDTHS[name], num_classes)
        elif name == MLP:
            layers = OrderedDict(
                flatten=nn.Flatten(),
                hidden=nn.Linear(num_features, MLP_HIDDEN_UNITS),
                relu=nn.ReLU(),
                output=nn.Linear(MLP_HIDDEN_UNITS, num_classes),
            )
        else:
            layers = OrderedDict(
                conv1=nn.Conv2d(1, 16, kernel_size=3, padding=1),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(16, 32, kernel_size=3, padding=1),
                relu2=nn.ReLU(),
                pool=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                fc=nn.Linear(32 * 4 * 4, num_classes),
            )
        return nn.Sequential(layers)


def _wide_mlp(num_features: int, width: int, num_classes: int) -> OrderedDict[str, nn.Module]:
    return OrderedDict(
        flatten=nn.Flatten(),
        hidden1=nn.Linear(num_features, width),
        relu1=nn.ReLU(),
        hidden2=nn.Linear(width, width),
        relu2=nn.ReLU(),
        output=nn.Linear(width, num_classes),
    )
