"""The scorers on synthetic games whose contributions are known exactly (fast)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from fedchain.contribution.base import (
    SCORER_NAMES,
    CachedUtility,
    Coalition,
    RoundScores,
    Scorer,
    ScoringError,
)
from fedchain.contribution.cosine import CosineScorer
from fedchain.contribution.data_size import DataSizeScorer
from fedchain.contribution.gtg import GTGScorer
from fedchain.contribution.loo import LeaveOneOutScorer
from fedchain.contribution.registry import build_scorer
from fedchain.contribution.shapley import MAX_SHAPLEY_PARTICIPANTS, ShapleyScorer

VALUES = (0.5, 1.5, -0.25, 2.0, 0.75)


def additive(values: tuple[float, ...], base: float = 0.1) -> Callable[[Coalition], float]:
    """U(S) = base + sum of the members' values: every method's ideal answer is ``values``."""
    return lambda s: base + sum(values[i] for i in s)


def concave(weights: tuple[float, ...]) -> Callable[[Coalition], float]:
    """A saturating utility of the coalition's total weight (an interaction-rich game)."""
    return lambda s: 1.0 - math.exp(-sum(weights[i] for i in s) / 3.0)


def _score(scorer: Scorer, n: int, utility: Callable[[Coalition], float]) -> RoundScores:
    return scorer.score(
        n, utility, num_examples=[10] * n, deltas=None, aggregate_delta=None, seed=7
    )


def test_shapley_is_efficient() -> None:
    # Prepare
    weights = (1.0, 2.0, 0.5, 3.0, 1.5, 0.2, 2.5)
    utility = concave(weights)

    # Execute
    result = _score(ShapleyScorer(), len(weights), utility)

    # Assert
    everyone = frozenset(range(len(weights)))
    assert sum(result.scores) == pytest.approx(utility(everyone) - utility(frozenset()), abs=1e-9)
    assert result.evaluations == 2 ** len(weights)


def test_shapley_is_symmetric_and_null_players_score_zero() -> None:
    # Prepare: players 1 and 3 interchangeable, player 4 adds nothing to any coalition
    weights = (1.0, 2.0, 0.5, 2.0, 0.0)

    # Execute
    scores = _score(ShapleyScorer(), len(weights), concave(weights)).scores

    # Assert
    assert scores[1] == pytest.approx(scores[3], abs=1e-12)
    assert scores[4] == pytest.approx(0.0, abs=1e-12)
    assert scores[1] > scores[0] > scores[2] > 0


@pytest.mark.parametrize("scorer", [ShapleyScorer(), LeaveOneOutScorer(), GTGScorer()])
def test_additive_game_gives_each_its_own_value(scorer: Scorer) -> None:
    # Execute
    scores = _score(scorer, len(VALUES), additive(VALUES)).scores

    # Assert
    assert scores == pytest.approx(VALUES, abs=1e-9)


def test_loo_costs_n_plus_one_evaluations() -> None:
    # Execute
    result = _score(LeaveOneOutScorer(), len(VALUES), additive(VALUES))

    # Assert
    assert result.evaluations == len(VALUES) + 1
    assert result.method == "loo"


def test_data_size_shares_sum_to_one() -> None:
    # Execute
    result = DataSizeScorer().score(
        3, additive(VALUES), num_examples=[10, 30, 60], deltas=None, aggregate_delta=None, seed=0
    )

    # Assert
    assert result.scores == pytest.approx((0.1, 0.3, 0.6))
    assert math.fsum(result.scores) == pytest.approx(1.0)
    assert result.evaluations == 0


def test_cosine_scores_alignment_and_zero_updates() -> None:
    # Prepare: aligned, opposite, orthogonal and zero updates against the aggregate (1, 0)
    deltas = [np.array([2.0, 0.0]), np.array([-1.0, 0.0]), np.array([0.0, 3.0]), np.zeros(2)]

    # Execute
    result = CosineScorer().score(
        4,
        additive(VALUES),
        num_examples=[1] * 4,
        deltas=deltas,
        aggregate_delta=np.array([1.0, 0.0]),
        seed=0,
    )

    # Assert
    assert result.scores == pytest.approx((1.0, -1.0, 0.0, 0.0))


def test_cosine_defaults_to_the_example_weighted_aggregate() -> None:
    # Prepare: the heavy participant's direction dominates the aggregate
    deltas = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]

    # Execute
    scores = (
        CosineScorer()
        .score(
            2, additive(VALUES), num_examples=[9, 1], deltas=deltas, aggregate_delta=None, seed=0
        )
        .scores
    )

    # Assert
    assert scores[0] == pytest.approx(9 / math.sqrt(82))
    assert scores[1] == pytest.approx(1 / math.sqrt(82))


def test_cosine_without_deltas_says_what_to_pass() -> None:
    # Execute / Assert
    with pytest.raises(ScoringError, match="deltas"):
        CosineScorer().score(
            2, additive(VALUES), num_examples=[1, 1], deltas=None, aggregate_delta=None, seed=0
        )


def test_shapley_refuses_large_rounds_and_points_to_gtg() -> None:
    # Prepare
    n = MAX_SHAPLEY_PARTICIPANTS + 1

    # Execute / Assert
    with pytest.raises(ScoringError, match="gtg"):
        _score(ShapleyScorer(), n, additive(tuple([1.0] * n)))


def test_gtg_scores_a_round_too_large_for_exact_shapley() -> None:
    # Prepare
    n = 20
    weights = tuple(float(i % 5 + 1) for i in range(n))

    # Execute
    result = _score(GTGScorer(), n, concave(weights))

    # Assert: the heavier a participant's data, the higher its score
    assert len(result.scores) == n
    assert result.scores[4] > result.scores[0]
    assert result.evaluations < 2**n


def test_gtg_is_deterministic_for_a_seed() -> None:
    # Prepare
    weights = (1.0, 2.0, 0.5, 3.0, 1.5, 0.2, 2.5, 1.0)
    scorer = GTGScorer()

    # Execute
    first = _score(scorer, len(weights), concave(weights))
    again = _score(scorer, len(weights), concave(weights))
    other = scorer.score(
        len(weights),
        concave(weights),
        num_examples=[1] * len(weights),
        deltas=None,
        aggregate_delta=None,
        seed=8,
    )

    # Assert
    assert first == again
    assert first.scores != other.scores


def test_gtg_skips_a_round_that_did_not_move() -> None:
    # Prepare: U(N) == U(empty), though coalitions in between differ
    def utility(s: Coalition) -> float:
        return 0.0 if len(s) in (0, 4) else float(len(s))

    # Execute
    result = _score(GTGScorer(), 4, utility)

    # Assert
    assert result.scores == (0.0, 0.0, 0.0, 0.0)
    assert result.evaluations == 2


def test_gtg_truncation_saves_evaluations() -> None:
    # Prepare: utility saturates after two participants
    n = 8

    def utility(s: Coalition) -> float:
        return float(min(len(s), 2))

    # Execute
    truncated = _score(GTGScorer(eps_trunc=0.01), n, utility)
    full = _score(GTGScorer(eps_trunc=0.0), n, utility)

    # Assert
    assert truncated.evaluations < full.evaluations
    assert sum(truncated.scores) == pytest.approx(2.0)


def test_gtg_is_close_to_exact_on_a_concave_game() -> None:
    # Prepare
    weights = (1.0, 2.0, 0.5, 3.0, 1.5, 0.2, 2.5, 1.0)
    exact = np.array(_score(ShapleyScorer(), len(weights), concave(weights)).scores)

    # Execute
    estimate = _score(GTGScorer(), len(weights), concave(weights))

    # Assert
    assert np.mean(np.abs(np.array(estimate.scores) - exact) / np.abs(exact)) < 0.05
    assert estimate.evaluations < 2 ** len(weights)


def test_gtg_gives_interchangeable_participants_equal_scores() -> None:
    # Prepare: participants 0 and 3 submit the same update with the same example count; 5 has
    # the same update as them but fewer examples, so it is not interchangeable with them
    weights = (2.0, 1.0, 0.5, 2.0, 1.5, 2.0, 2.5, 1.0)
    deltas = [np.full(3, w) for w in weights]
    examples = [10, 10, 10, 10, 10, 4, 10, 10]

    # Execute
    plain = GTGScorer().score(
        8, concave(weights), num_examples=examples, deltas=None, aggregate_delta=None, seed=7
    )
    grouped = GTGScorer().score(
        8, concave(weights), num_examples=examples, deltas=deltas, aggregate_delta=None, seed=7
    )

    # Assert
    assert plain.scores[0] != plain.scores[3]  # sampling noise between them, before grouping
    assert grouped.scores[0] == grouped.scores[3]
    assert grouped.scores[0] == pytest.approx((plain.scores[0] + plain.scores[3]) / 2)
    assert grouped.scores[5] == plain.scores[5]
    assert sum(grouped.scores) == pytest.approx(sum(plain.scores))


def test_cached_utility_counts_distinct_coalitions() -> None:
    # Prepare
    calls: list[Coalition] = []

    def utility(s: Coalition) -> float:
        calls.append(s)
        return float(len(s))

    cached = CachedUtility(utility)

    # Execute
    values = [cached(frozenset({1, 2})), cached(frozenset({2, 1})), cached(frozenset())]

    # Assert
    assert values == [2.0, 2.0, 0.0]
    assert cached.evaluations == 2
    assert len(calls) == 2


@pytest.mark.parametrize("name", SCORER_NAMES)
def test_build_scorer_knows_every_method(name: str) -> None:
    # Execute
    scorer = build_scorer(name)

    # Assert
    assert scorer.method == name
    assert isinstance(scorer, Scorer)


def test_build_scorer_passes_parameters_and_records_them() -> None:
    # Execute
    scorer = build_scorer("gtg", eps_trunc=0.02, max_permutations=64)

    # Assert
    assert scorer.params()["eps_trunc"] == 0.02
    assert scorer.params()["max_permutations"] == 64


def test_build_scorer_lists_the_valid_names() -> None:
    # Execute / Assert
    with pytest.raises(ScoringError, match="data-size, loo, shapley, gtg, cosine"):
        build_scorer("banzhaf")


def test_build_scorer_rejects_unknown_parameters() -> None:
    # Execute / Assert
    with pytest.raises(ScoringError, match="eps_trunc"):
        build_scorer("gtg", eps_truncation=0.1)


def test_inconsistent_example_counts_are_refused() -> None:
    # Execute / Assert
    with pytest.raises(ScoringError, match="num_examples"):
        LeaveOneOutScorer().score(
            3, additive(VALUES), num_examples=[1, 2], deltas=None, aggregate_delta=None, seed=0
        )
