"""The plots' axes: a one-example change stays a small step, amounts start at zero."""

from __future__ import annotations

import random

import pytest

from fedchain.report import (
    MIN_ACCURACY_SPAN,
    accuracy_figure,
    accuracy_limits,
    gas_figure,
    loss_limits,
    reward_share_figure,
)

from ._runs import ALICE, BOB, accuracies, outcome, round_, summary

#: One holdout example out of the 114 of breast-cancer's 20 % holdout.
ONE_EXAMPLE = 1 / 114


def span(limits: tuple[float, float]) -> float:
    return limits[1] - limits[0]


def test_one_holdout_example_of_change_is_a_small_step_on_the_accuracy_axis() -> None:
    # Prepare: round 2 classifies one more holdout example correctly than round 1
    before = 100 / 114
    document = accuracies(before, before + ONE_EXAMPLE)
    # Execute
    accuracy_axis = accuracy_figure(document).axes[0]
    # Assert: the change is under a tenth of the axis, not its whole height
    low, high = accuracy_axis.get_ylim()
    assert high - low >= MIN_ACCURACY_SPAN
    assert ONE_EXAMPLE / (high - low) < 0.1
    assert low <= before
    assert before + ONE_EXAMPLE <= high


def test_a_flat_accuracy_sits_inside_a_tenth_wide_axis() -> None:
    low, high = accuracy_figure(accuracies(0.6283, 0.6283, 0.6283)).axes[0].get_ylim()
    assert high - low >= MIN_ACCURACY_SPAN
    assert low < 0.6283 < high


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.6283], (0.55, 0.70)),  # centred, then out to multiples of 0.05
        ([0.97, 0.99], (0.90, 1.00)),  # slid down under 1, not shrunk
        ([0.0, 0.02], (0.0, 0.10)),  # slid up over 0
        ([0.31, 0.88], (0.30, 0.90)),  # wide enough already: only snapped out
        ([], (0.0, 1.0)),
    ],
)
def test_accuracy_limits_snap_to_round_numbers_inside_zero_and_one(
    values: list[float], expected: tuple[float, float]
) -> None:
    low, high = accuracy_limits(values)
    margin = 0.03 * (expected[1] - expected[0])  # so a marker on the edge is drawn whole
    assert low == pytest.approx(expected[0] - margin)
    assert high == pytest.approx(expected[1] + margin)


def test_accuracy_limits_always_hold_the_values_and_span_a_tenth() -> None:
    rng = random.Random(0)
    for _ in range(500):
        centre, spread = rng.random(), rng.random() * rng.choice([0.001, 0.05, 1.0])
        values = [min(1.0, max(0.0, centre + rng.uniform(-spread, spread))) for _ in range(5)]
        low, high = accuracy_limits(values)
        assert high - low >= MIN_ACCURACY_SPAN
        assert low <= min(values)
        assert max(values) <= high
        assert low > -0.04, values
        assert high < 1.04, values


def test_the_loss_axis_starts_at_zero() -> None:
    # Prepare: losses 0.58 and 0.63, which a fitted axis draws bottom to top
    document = accuracies(0.42, 0.37)
    # Execute
    loss_axis = accuracy_figure(document).axes[1]
    # Assert
    low, high = loss_axis.get_ylim()
    assert low == 0.0
    assert 0.63 < high < 0.7
    assert loss_limits([]) == (0.0, 1.0)
    assert loss_limits([float("inf"), 2.0]) == (0.0, pytest.approx(2.16))


def test_failed_rounds_leave_the_accuracy_axis_to_the_rounds_that_evaluated() -> None:
    figure = accuracy_figure(accuracies(None, 0.9, 0.91))
    low, high = figure.axes[0].get_ylim()
    assert high - low >= MIN_ACCURACY_SPAN
    assert figure.axes[0].get_xlim() == (0.5, 3.5)  # the failed round keeps its place


def test_the_reward_share_axis_runs_from_zero_to_all_and_a_round_without_rewards_is_empty() -> None:
    # Prepare: nothing attributed in round 1, Alice 3 and Bob 1 in round 2
    rounds = [
        round_(1, 0.8, [outcome(2, ALICE), outcome(3, BOB)]),
        round_(2, 0.8, [outcome(2, ALICE, reward="3"), outcome(3, BOB, reward="1")]),
    ]
    # Execute
    ax = reward_share_figure(summary(rounds)).axes[0]
    # Assert: bars per round, not an area interpolated between rounds
    assert ax.get_ylim() == (0.0, 1.0)
    heights = sorted((round(p.get_x() + p.get_width() / 2), p.get_height()) for p in ax.patches)
    assert heights == [(1, 0.0), (1, 0.0), (2, 0.25), (2, 0.75)]
    assert not ax.collections  # no stacked areas


def test_the_gas_axis_starts_at_zero() -> None:
    low, _ = gas_figure(accuracies(0.8, 0.81)).axes[0].get_ylim()
    assert low == 0.0
