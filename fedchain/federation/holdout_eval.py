"""Models evaluated on one holdout with the model and the holdout's tensors built once.

:func:`fedchain.federation.workload.evaluate_weights` builds a fresh PyTorch model (seeded
initialisation included) and copies the holdout into tensors on every call. Contribution scoring
evaluates thousands of coalition models on the same holdout per round (``gtg`` at 50
participants: 3,000 and more), where that rebuilding was about half of each evaluation's cost.
:class:`HoldoutEvaluator` loads each model into one module and runs the same operations on the
same tensors in the same batches as :func:`fedchain.ml.training.evaluate`, so its results equal
``evaluate_weights``'s bit for bit (tested): the scores a run recorded recompute unchanged.

Evaluating many models in one batched forward pass (``torch.func.vmap`` over stacked parameters,
or one matrix product against the stacked first layers) was measured slower per model on this
2-core machine than this loop (docs/contribution.md), and its sums differ in the last bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 (the PyTorch idiom)

from fedchain.federation.workload import model_name
from fedchain.ml.curvature import loss_expansion
from fedchain.ml.data import Dataset
from fedchain.ml.models import build_model
from fedchain.ml.training import EVAL_BATCH_SIZE, bounded_loss, check_data
from fedchain.ml.weights import set_weights
from fedchain.settings import RunSettings

__all__ = ["HoldoutEvaluator"]

Weights = Mapping[str, np.ndarray[Any, Any]]


class HoldoutEvaluator:
    """Accuracy and mean loss of models on ``data``, equal to ``evaluate_weights``'s.

    Not thread-safe: one module is reused, so use one evaluator per thread.

    Parameters
    ----------
    settings
        Name the model (as for ``evaluate_weights``).
    data
        The holdout.

    Raises
    ------
    fedchain.ml.errors.TrainingError
        For empty data or labels outside the model's outputs (before any evaluation).
    """

    def __init__(self, settings: RunSettings, data: Dataset) -> None:
        shape, classes = data.input_shape, data.num_classes
        self._model = build_model(model_name(settings, shape), shape, classes, settings.seed)
        self._x, self._y = check_data(self._model, data.features, data.labels)

    def __call__(self, weights: Weights) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of ``weights`` on the holdout."""
        return self._run(weights, accuracy=True)

    def loss(self, weights: Weights) -> float:
        """Mean cross-entropy of ``weights`` on the holdout: the same bits as ``self(...)[1]``,
        without the accuracy's argmax (a sixth of an evaluation's time, and scoring evaluates
        thousands of coalition models a round)."""
        return self._run(weights, accuracy=False)[1]

    def _run(self, weights: Weights, *, accuracy: bool) -> tuple[float, float]:
        torch.set_num_threads(1)  # as evaluate_weights: the same threads, the same sums
        set_weights(self._model, weights)
        # fedchain.ml.training.evaluate's loop, on tensors converted once.
        n = int(self._y.shape[0])
        total_loss = 0.0
        correct = 0
        self._model.eval()
        with torch.no_grad():
            for start in range(0, n, EVAL_BATCH_SIZE):
                logits = self._model(self._x[start : start + EVAL_BATCH_SIZE])
                target = self._y[start : start + EVAL_BATCH_SIZE]
                total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
                if accuracy:
                    correct += int((logits.argmax(dim=1) == target).sum())
        return correct / n, bounded_loss(total_loss / n)

    def curvature(
        self, center: Weights, directions: Sequence[Weights]
    ) -> tuple[float, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The holdout loss to second order at ``center`` along ``directions``
        (:func:`fedchain.ml.curvature.loss_expansion`), for ``gtg``'s control variate."""
        return loss_expansion(self._model, self._x, self._y, center, directions)
