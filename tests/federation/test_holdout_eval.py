"""The holdout evaluator gtg scores with: the model and tensors built once, the results equal to
``evaluate_weights``'s bit for bit (so recorded scores recompute unchanged)."""

from __future__ import annotations

import numpy as np

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
