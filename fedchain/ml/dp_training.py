"""Local training with DP-SGD (Opacus): per-example clipping, Gaussian noise, Poisson batches.

The same optimizer as :func:`fedchain.ml.training.train` (SGD, momentum ``MOMENTUM``), made
private by Opacus' ``PrivacyEngine.make_private``: each step samples every example with
probability ``q = 1 / ceil(n / batch_size)`` (Poisson sampling, the accountant's assumption),
clips each example's gradient to ``clip_norm`` and adds noise of standard deviation
``noise_multiplier * clip_norm`` to their sum. :mod:`fedchain.ml.privacy` counts exactly these
steps. Momentum and the FedProx pull act on the privatized gradient only, so they cost no
privacy (post-processing); the pull is applied as its own step after each DP-SGD step because
Opacus' per-example gradients see only the data loss.

Reproducibility: the batch sampling and the noise draw from two ``torch.Generator`` seeded from
``seed``, so on CPU the same model, data and seed give bitwise-equal weights. (Opacus' secure
mode, a cryptographic RNG, would make the noise unpredictable and the run unrepeatable; a site
that wants it can run outside fedchain's seeded training.)

The three built-in models have only layers Opacus supports (``Linear``, ``Conv2d``, no
batch-norm), so each trains under DP unchanged and keeps its parameter names.
"""

from __future__ import annotations

import warnings

import torch
from numpy.typing import ArrayLike
from opacus import PrivacyEngine
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the PyTorch idiom)
from torch.utils.data import DataLoader, TensorDataset

from fedchain.ml.errors import TrainingError
from fedchain.ml.training import MOMENTUM, TrainResult, check_data

__all__ = ["NOISE_SEED_OFFSET", "train_private"]

#: The noise generator's seed is ``seed + NOISE_SEED_OFFSET``, apart from the sampling's.
NOISE_SEED_OFFSET = 7_919


def train_private(
    model: nn.Module,
    features: ArrayLike,
    labels: ArrayLike,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    noise_multiplier: float,
    clip_norm: float,
    proximal_mu: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place with DP-SGD; see :func:`fedchain.ml.training.train`.

    Parameters
    ----------
    noise_multiplier
        Sigma, from :func:`fedchain.ml.privacy.noise_multiplier`.
    clip_norm
        The per-example gradient norm bound (the task's ``PrivacyTerms.clip_norm``).

    Raises
    ------
    TrainingError
        For bad data or hyper-parameters, as :func:`fedchain.ml.training.train`.
    """
    if epochs < 1 or batch_size < 1:
        raise TrainingError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if not (lr > 0 and noise_multiplier >= 0 and clip_norm > 0 and proximal_mu >= 0):
        raise TrainingError(
            f"lr and clip_norm must be > 0, noise_multiplier and proximal_mu >= 0, got {lr}, "
            f"{clip_norm}, {noise_multiplier} and {proximal_mu}"
        )
    x, y = check_data(model, features, labels)
    n = int(y.shape[0])
    anchor = [p.detach().clone() for p in model.parameters()]
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    with warnings.catch_warnings():  # "secure RNG turned off": deliberate, see the docstring
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp")
        private, optimizer, batches = engine.make_private(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM),
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=clip_norm,
            poisson_sampling=True,
            noise_generator=torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET),
        )
    was_training = model.training
    private.train()
    epoch_loss = 0.0
    try:
        with warnings.catch_warnings():
            # Opacus' hooks on a first layer whose input needs no gradient: expected, harmless.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for _ in range(epochs):
                epoch_loss = _epoch(private, optimizer, batches, anchor, lr * proximal_mu)
    finally:
        private._close()  # removes Opacus' hooks: ``model`` is a plain module again
        model.train(was_training)
    return TrainResult(num_examples=n, loss=epoch_loss / n)


def _epoch(
    private: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: DataLoader[tuple[torch.Tensor, ...]],
    anchor: list[torch.Tensor],
    pull: float,
) -> float:
    """One pass of Poisson batches; returns the summed data loss."""
    total = 0.0
    for xb, yb in batches:
        optimizer.zero_grad(set_to_none=True)
        # An empty batch's mean is NaN; its sum (0) still gives Opacus the empty per-example
        # gradients it expects, and the step adds its noise as the accountant counts.
        loss = F.cross_entropy(private(xb), yb, reduction="mean" if len(yb) else "sum")
        loss.backward()  # type: ignore[no-untyped-call]
        total += float(loss.detach()) * len(yb)
        optimizer.step()
        if pull > 0:  # FedProx: w <- w - lr * mu * (w - w_global), data-independent
            with torch.no_grad():
                for p, a in zip(private.parameters(), anchor, strict=True):
                    p.sub_(pull * (p - a))
    return total
