"""gtg's control variate (issue 18): the utility's second-order expansion, its Shapley values
estimated cheaply, and the sampled residual.

Checked against definitions: the surrogate's values against its formula on every coalition,
its Shapley estimate against exact Shapley by enumeration, the holdout curvature against
finite differences of the loss, and the scores against exact Shapley of the real utility."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

from fedchain.contribution.coalition_models import QuadraticSurrogate, WeightedMeanUtility
from fedchain.contribution.gtg import GTGScorer
from fedchain.contribution.registry import build_scorer
from fedchain.ml.curvature import loss_expansion
from fedchain.ml.models import build_model
from fedchain.ml.weights import get_weights

pytestmark = pytest.mark.timeout(120)

TARGET = np.linspace(-1.0, 1.0, 6)


def _surrogate(n: int, seed: int = 0) -> QuadraticSurrogate:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n, 4))
    curvature = rng.normal(size=(4, 4))
    return QuadraticSurrogate(
        empty=-3.0,
        loss=1.5,
        slopes=rng.normal(size=n),
        hessian=directions @ (curvature @ curvature.T) @ directions.T,
        examples=rng.integers(1, 40, n).astype(np.float64),
    )


def _value(s: QuadraticSurrogate, coalition: tuple[int, ...]) -> float:
    """The surrogate's formula on one coalition, written out."""
    if not coalition:
        return s.empty
    idx = list(coalition)
    total = s._examples[idx].sum()
    slope = s._weighted[idx].sum()
    quad = s._pairs[np.ix_(idx, idx)].sum()
    return float(-(s._loss + slope / total + quad / (2 * total**2)))


def _exact_shapley(n: int, value: Any) -> np.ndarray[Any, Any]:
    scores = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for rest in itertools.combinations(others, size):
                gain = value(tuple(sorted((*rest, i)))) - value(rest)
                scores[i] += weight * gain
    return scores


def test_the_surrogates_prefixes_and_strata_follow_its_formula() -> None:
    s = _surrogate(6)
    order = [4, 1, 5, 0, 3, 2]

    prefixes = s.prefixes(order)
    strata = s.first_strata()

    for k in range(6):
        assert prefixes[k] == pytest.approx(_value(s, tuple(sorted(order[: k + 1]))), rel=1e-12)
    for i in range(6):
        assert strata[i, 0] == pytest.approx(_value(s, (i,)) - s.empty, rel=1e-12)
        pairs = [_value(s, tuple(sorted((i, j)))) - _value(s, (j,)) for j in range(6) if j != i]
        assert strata[i, 1] == pytest.approx(float(np.mean(pairs)), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_surrogates_shapley_is_exact_for_up_to_three_players(n: int) -> None:
    # Positions 0 and 1 are computed exactly; with three players position 2 has one coalition.
    s = _surrogate(n, seed=n)

    estimate = s.shapley(1, np.random.default_rng(0))

    assert estimate == pytest.approx(_exact_shapley(n, lambda c: _value(s, c)), rel=1e-10)


def test_the_surrogates_shapley_estimate_converges_to_exact_shapley() -> None:
    s = _surrogate(7, seed=3)
    exact = _exact_shapley(7, lambda c: _value(s, c))

    few = s.shapley(2, np.random.default_rng(1))
    many = s.shapley(6400, np.random.default_rng(1))

    assert np.abs(few - exact).sum() > 0  # sampled, not exact
    assert np.abs(many - exact).sum() < 0.005 * np.abs(exact).sum()


def test_the_loss_expansion_matches_finite_differences() -> None:
    # Prepare: a small MLP, a point and three directions
    torch.manual_seed(0)
    model = build_model("mlp", 5, 3, seed=1)
    x = torch.randn(40, 5)
    y = torch.randint(0, 3, (40,))
    center = {k: v.astype(np.float64) for k, v in get_weights(model).items()}
    rng = np.random.default_rng(2)
    directions = [{k: rng.normal(0, 0.1, v.shape) for k, v in center.items()} for _ in range(3)]

    def loss(weights: dict[str, Any]) -> float:
        double = build_model("mlp", 5, 3, seed=1).double()
        double.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(double(x.double()), y))

    def moved(t: float, d: dict[str, Any], s: float = 0.0, e: Any = None) -> dict[str, Any]:
        return {k: center[k] + t * d[k] + (s * e[k] if e else 0.0) for k in center}

    # Execute
    at, slopes, hessian = loss_expansion(model, x, y, center, directions)

    # Assert: central differences, h small against the directions
    h = 1e-4
    assert at == pytest.approx(loss(center), rel=1e-12)
    for i, d in enumerate(directions):
        numeric = (loss(moved(h, d)) - loss(moved(-h, d))) / (2 * h)
        assert slopes[i] == pytest.approx(numeric, rel=1e-5)
        for j, e in enumerate(directions):
            mixed = (
                loss(moved(h, d, h, e))
                - loss(moved(h, d, -h, e))
                - loss(moved(-h, d, h, e))
                + loss(moved(-h, d, -h, e))
            ) / (4 * h * h)
            assert hessian[i, j] == pytest.approx(mixed, rel=1e-3, abs=1e-7)
    assert np.allclose(hessian, hessian.T, rtol=1e-10, atol=1e-14)


def _round(n: int) -> tuple[WeightedMeanUtility, list[int]]:
    """A round whose loss is smooth but not quadratic (a softplus), with its expansion."""
    rng = np.random.default_rng(11)
    updates = [{"w": rng.normal(0.3, 1.0, 6)} for _ in range(n)]
    examples = [int(c) for c in rng.integers(3, 50, n)]

    def loss(model: Any) -> float:
        return float(np.logaddexp(0.0, 2.0 * (model["w"] - TARGET)).sum())

    def curvature(center: Any, directions: Any) -> Any:
        z = 2.0 * (center["w"] - TARGET)
        sig = 1.0 / (1.0 + np.exp(-z))
        gradient, hess_diag = 2.0 * sig, 4.0 * sig * (1.0 - sig)
        stacked = np.stack([d["w"] for d in directions])
        return loss(center), stacked @ gradient, (stacked * hess_diag) @ stacked.T

    parent = {"w": np.zeros(6)}

    def direct(coalition: frozenset[int]) -> float:
        if not coalition:
            return -loss(parent)
        members = sorted(coalition)
        total = sum(examples[i] for i in members)
        return -loss({"w": sum(updates[i]["w"] * examples[i] for i in members) / total})

    utility = WeightedMeanUtility(
        direct,
        updates=updates,
        examples=examples,
        utility_of=lambda m: -loss(m),
        curvature=curvature,
    )
    return utility, examples


def test_gtg_with_the_control_variate_is_closer_to_exact_shapley_than_without() -> None:
    # Prepare: a 9-player round, exact Shapley by enumeration (512 coalitions)
    utility, examples = _round(9)
    shapley = build_scorer("shapley").score(
        9, utility, num_examples=examples, deltas=None, aggregate_delta=None, seed=0
    )
    exact = np.array(list(shapley.scores), dtype=np.float64)
    plain = GTGScorer(control_variate=0, exact_pairs=0, max_permutations=18)
    with_cv = GTGScorer(exact_pairs=0, max_permutations=18)

    # Execute: one cycle each, the same seed
    errors = {}
    for name, scorer in (("plain", plain), ("cv", with_cv)):
        fresh, _ = _round(9)  # its own cache: the evaluation counts are each scorer's
        scores = np.array(scorer.score(9, fresh, num_examples=examples, seed=4).scores)
        errors[name] = float(np.abs(scores - exact).sum() / np.abs(exact).sum())

    # Assert
    assert errors["cv"] < 0.2 * errors["plain"], errors
    assert errors["cv"] < 0.02, errors


def test_without_curvature_gtg_samples_as_before() -> None:
    utility, examples = _round(6)
    bare = WeightedMeanUtility(
        utility._fn,
        updates=utility._updates,
        examples=examples,
        utility_of=utility._utility_of,
    )

    on = GTGScorer(max_permutations=12).score(6, bare, num_examples=examples, seed=2)
    off = GTGScorer(max_permutations=12, control_variate=0).score(
        6, utility, num_examples=examples, seed=2
    )

    assert bare.surrogate() is None
    assert on.scores == off.scores  # no expansion offered: the plain estimate


@pytest.mark.parametrize(
    ("params", "name"),
    [({"control_variate": 2}, "control_variate"), ({"surrogate_cycles": 0}, "surrogate_cycles")],
)
def test_bad_control_variate_parameters_are_refused(params: dict[str, Any], name: str) -> None:
    from fedchain.contribution.base import ScoringError

    with pytest.raises(ScoringError, match=name):
        GTGScorer(**params)


def test_shallow_walks_cost_fewer_evaluations_and_stay_close() -> None:
    # Under the control variate the residual of late positions is about 0: walks of 5 of 11
    # positions sample what matters.
    utility, examples = _round(11)
    exact = np.array(
        list(
            build_scorer("shapley")
            .score(11, utility, num_examples=examples, deltas=None, aggregate_delta=None, seed=0)
            .scores
        )
    )
    results = {}
    for depth in (0, 5):
        fresh, _ = _round(11)
        scorer = GTGScorer(exact_pairs=0, walk_depth=depth, cv_max_permutations=44)
        scores = np.array(scorer.score(11, fresh, num_examples=examples, seed=1).scores)
        results[depth] = (fresh.evaluations, float(np.abs(scores - exact).sum()))

    assert results[5][0] < 0.6 * results[0][0], results
    assert results[5][1] < 0.03 * float(np.abs(exact).sum()), results
