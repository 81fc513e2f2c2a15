"""Scoring that scales (issue 18): incremental coalition models, gtg's exact first strata, and
scores an auditor recomputes bit for bit. Unit-level games only: no federation runs here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from flwr.serverapp.strategy import FedAvg

from fedchain.contribution.base import CachedUtility
from fedchain.contribution.coalition_models import WeightedMeanUtility, weighted_sum_model
from fedchain.contribution.gtg import GTGScorer
from fedchain.contribution.round import score_round, weighted_mean
from fedchain.contribution.shapley import ShapleyScorer
from fedchain.federation.coalitions import CoalitionAggregator
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays, train_reply

Weights = dict[str, np.ndarray[Any, Any]]


def _updates(n: int, seed: int = 0) -> tuple[list[Weights], list[int]]:
    rng = np.random.default_rng(seed)
    updates = [
        {
            "w": rng.normal(0.0, 1.0, (6, 5)).astype(np.float32),
            "b": rng.normal(0.0, 1.0, 5).astype(np.float32),
        }
        for _ in range(n)
    ]
    return updates, [int(c) for c in rng.integers(3, 400, n)]


def _walked_models(
    updates: list[Weights], examples: list[int], order: Sequence[int]
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """The models a prefix walk over ``order`` builds, as the utility sees them."""
    seen: list[dict[str, np.ndarray[Any, Any]]] = []

    def utility_of(model: dict[str, np.ndarray[Any, Any]]) -> float:
        seen.append(model)
        return 0.0

    walk = WeightedMeanUtility(
        lambda s: 0.0, updates=updates, examples=examples, utility_of=utility_of
    )
    list(walk.prefixes(order))
    return seen


def test_each_incremental_prefix_model_equals_the_from_scratch_sum_to_the_bit() -> None:
    # Prepare
    updates, examples = _updates(9)
    order = [4, 0, 7, 2, 8, 1, 6, 3, 5]

    # Execute
    walked = _walked_models(updates, examples, order)

    # Assert
    assert len(walked) == len(order)
    for k, model in enumerate(walked, start=1):
        scratch = weighted_sum_model(updates, examples, order[:k])
        for name in ("w", "b"):
            assert model[name].dtype == np.float32
            assert model[name].tobytes() == scratch[name].tobytes()


def test_the_incremental_model_is_within_float32_rounding_of_fedavg_and_the_mean() -> None:
    # Prepare: Flower's FedAvg on the same replies (float32 products, normalised weights first)
    updates, examples = _updates(12, seed=3)
    replies = [train_reply(numpy_to_arrays(u), c) for u, c in zip(updates, examples, strict=True)]
    arrays, _ = FedAvg(fraction_evaluate=0.0).aggregate_train(1, replies)
    assert arrays is not None
    fedavg = arrays_to_numpy(arrays)
    mean = weighted_mean(updates, examples)

    # Execute
    model = weighted_sum_model(updates, examples, range(12))

    # Assert: FedAvg (and the fallback mean) multiply in float32, so each is off by up to one
    # float32 step of the largest update value per update added
    for name in ("w", "b"):
        largest = max(float(np.abs(u[name]).max()) for u in updates)
        tolerance = 12 * np.spacing(np.float32(largest))
        assert np.all(np.abs(model[name] - fedavg[name]) <= tolerance)
        assert np.all(np.abs(model[name] - mean[name]) <= tolerance)


def test_a_walk_over_valued_prefixes_evaluates_nothing_new() -> None:
    # Prepare
    updates, examples = _updates(5)
    calls: list[int] = []

    def utility_of(model: dict[str, np.ndarray[Any, Any]]) -> float:
        calls.append(1)
        return float(model["b"].sum())

    walk = WeightedMeanUtility(
        lambda s: 0.0, updates=updates, examples=examples, utility_of=utility_of
    )

    # Execute
    first = list(walk.prefixes([2, 0, 4]))
    again = list(walk.prefixes([0, 2, 4, 1]))

    # Assert: {0, 2} and {0, 2, 4} were already valued; only {0, 1, 2, 4} is new
    assert again[1:3] == first[1:3]
    assert len(calls) == 3 + 2  # {2}, {0,2}, {0,2,4}; then {0}, {0,1,2,4}
    assert walk.evaluations == 5


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("fedavg", True),
        ("fedprox", True),
        ("fedadam", False),
        ("fedmedian", False),
        ("krum", False),
    ],
)
def test_only_fedavg_style_aggregation_is_built_incrementally(
    strategy: str, expected: bool
) -> None:
    from fedchain.federation.flower_strategies import build_strategy
    from fedchain.settings import RunSettings

    # Execute
    aggregator = CoalitionAggregator(build_strategy(RunSettings(strategy=strategy), 10), 1, [], [])

    # Assert
    assert aggregator.weighted_mean is expected


def _quadratic(weights: Sequence[float]) -> Any:
    """U(S) = (sum of the members' weights)**2: Shapley value of i is w_i * W (by hand)."""
    return lambda s: sum(weights[i] for i in s) ** 2


def _walkable(utility: Any) -> CachedUtility:
    """A game with no models, walked prefix by prefix (CachedUtility's generic walk)."""
    return CachedUtility(utility)


def test_gtg_is_exact_on_a_three_player_game() -> None:
    # Prepare: with positions 0 and 1 exact, position 2 is leave-one-out: nothing is sampled
    weights = (1.0, 2.0, 4.0)
    by_hand = [w * sum(weights) for w in weights]  # 7, 14, 28

    # Execute
    result = GTGScorer().score(3, _walkable(_quadratic(weights)), num_examples=[1, 1, 1], seed=5)

    # Assert
    assert result.scores == pytest.approx(by_hand, abs=1e-12)
    assert result.evaluations == 2**3  # every coalition once


def test_gtg_is_within_its_truncation_error_on_a_four_player_game() -> None:
    # Prepare
    weights = (0.5, 1.0, 1.5, 3.0)
    gain = sum(weights) ** 2
    by_hand = np.array([w * sum(weights) for w in weights])
    scorer = GTGScorer(eps_trunc=0.05, convergence_tol=0.01)

    # Execute
    result = scorer.score(4, _walkable(_quadratic(weights)), num_examples=[1] * 4, seed=1)

    # Assert: a truncated tail is worth less than eps_trunc of the gain, per permutation
    assert np.all(np.abs(np.array(result.scores) - by_hand) <= scorer.eps_trunc * gain)


def test_gtg_matches_exact_shapley_through_a_plain_utility() -> None:
    # Prepare: the same game as a plain function (no prefix walks) gives the same answer
    weights = (1.0, 2.0, 4.0)
    exact = ShapleyScorer().score(3, _quadratic(weights), num_examples=[1, 1, 1])

    # Execute
    plain = GTGScorer().score(3, _quadratic(weights), num_examples=[1, 1, 1], seed=5)

    # Assert
    assert plain.scores == pytest.approx(exact.scores, abs=1e-12)


def test_the_pair_stratum_costs_n_plus_n_choose_2_evaluations() -> None:
    # Prepare
    n = 12
    weights = tuple(float(i % 4 + 1) for i in range(n))

    # Execute: one cycle, no truncation beyond the pairs
    result = GTGScorer(max_permutations=1, eps_trunc=0.5).score(
        n, _walkable(_quadratic(weights)), num_examples=[1] * n, seed=0
    )

    # Assert: every single and pair was valued; the estimate is efficient-ish and ordered
    assert result.evaluations >= 2 + n + math.comb(n, 2)
    assert result.scores[3] > result.scores[0]


class _Aggregate:
    """FedAvg as the server rebuilds coalitions, marked as the example-weighted mean."""

    weighted_mean = True

    def __init__(self, updates: list[Weights], examples: list[int]) -> None:
        self.updates, self.examples, self.calls = updates, examples, 0

    def __call__(self, indices: Sequence[int]) -> Weights:
        self.calls += 1
        return weighted_mean(
            [self.updates[i] for i in indices], [self.examples[i] for i in indices]
        )


def _score(updates: list[Weights], examples: list[int], parent: Weights, aggregate: Any) -> Any:
    target = {"w": np.full((6, 5), 0.3, np.float32), "b": np.full(5, -0.2, np.float32)}

    def loss(model: Any) -> float:
        return float(
            ((model["w"] - target["w"]) ** 2).sum() + ((model["b"] - target["b"]) ** 2).sum()
        )

    return score_round(
        method="gtg",
        addresses=[f"0x{i:040x}" for i in range(len(updates))],
        updates=updates,
        examples=examples,
        parent=parent,
        global_model=weighted_mean(updates, examples),
        aggregate=aggregate,
        loss=loss,
        budget=10**18,
        seed=11,
        holdout_hash="0x" + "ab" * 32,
    )


def test_scores_recomputed_as_the_auditor_does_equal_the_run_s() -> None:
    # Prepare: the server's inputs, and an auditor's copies of them (as loaded from the store)
    updates, examples = _updates(14, seed=9)
    parent = {"w": np.zeros((6, 5), np.float32), "b": np.zeros(5, np.float32)}
    copies = [{k: v.copy() for k, v in u.items()} for u in updates]
    server = _Aggregate(updates, examples)

    # Execute
    run = _score(updates, examples, parent, server)
    audit = _score(
        copies,
        list(examples),
        {k: v.copy() for k, v in parent.items()},
        _Aggregate(copies, list(examples)),
    )

    # Assert: the same floats, so the same fixed-point scores, rewards and hash
    assert run.scores == audit.scores
    assert run.rewards == audit.rewards
    assert run.scoring_hash == audit.scoring_hash
    assert server.calls == 0  # every coalition was built incrementally, none by the strategy
    assert run.evaluations > 14
