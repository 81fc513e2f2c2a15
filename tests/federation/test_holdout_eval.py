"""The holdout evaluator gtg scores with: the model and tensors built once, the results equal to
``evaluate_weights``'s bit for bit (so recorded scores recompute unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from fedchain.federation.holdout_eval import HoldoutEvaluator
from fedchain.federation.workload import evaluate_weights, holdout, initial_weights
from fedchain.settings import RunSettings


def test_equal_to_evaluate_weights_bit_for_bit_model_after_model() -> None:
    settings = RunSettings(num_clients=20, dataset="synthetic:2000")
    data = holdout(settings).data
    start = initial_weights(settings, data.input_shape, data.num_classes)
    rng = np.random.default_rng(0)
    models = [
        {name: (w + rng.normal(0.0, 0.3, w.shape)).astype(w.dtype) for name, w in start.items()}
        for _ in range(4)
    ]
    evaluator = HoldoutEvaluator(settings, data)
    # Interleaved and repeated: nothing of one model's evaluation leaks into the next.
    for model in [*models, models[0]]:
        assert evaluator(model) == evaluate_weights(settings, data, model)
        assert evaluator.loss(model) == evaluate_weights(settings, data, model)[1]
    assert len({evaluator.loss(m) for m in models}) == len(models)


def test_its_curvature_expands_the_same_holdout_loss() -> None:
    # The expansion's value and slope are the holdout loss's (float64 against the float32 model).
    settings = RunSettings(num_clients=20, dataset="synthetic:2000")
    data = holdout(settings).data
    start = initial_weights(settings, data.input_shape, data.num_classes)
    rng = np.random.default_rng(1)
    direction = {name: rng.normal(0.0, 0.01, w.shape) for name, w in start.items()}
    evaluator = HoldoutEvaluator(settings, data)

    at, slopes, hessian = evaluator.curvature(start, [direction])

    def moved(t: float) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
        return {n: (start[n] + t * direction[n]).astype(np.float32) for n in start}

    assert at == pytest.approx(evaluator.loss(start), rel=1e-6)
    numeric = (evaluator.loss(moved(1.0)) - evaluator.loss(moved(-1.0))) / 2.0
    assert slopes[0] == pytest.approx(numeric, rel=0.05)
    second = evaluator.loss(moved(1.0)) - 2 * evaluator.loss(start) + evaluator.loss(moved(-1.0))
    assert hessian.shape == (1, 1)
    assert hessian[0, 0] == pytest.approx(second, rel=0.25)  # third-order terms, float32 loss
