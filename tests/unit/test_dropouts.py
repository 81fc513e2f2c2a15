"""Simulated dropouts: one deterministic draw per (seed, round, partition), and how it is played."""

from __future__ import annotations

import time

import pytest

from fedchain.federation import dropouts
from fedchain.federation.dropouts import DropoutError, Fate, act_out, fate


def test_the_draw_is_a_function_of_seed_round_and_partition() -> None:
    # Execute
    first = [fate(7, r, p, 0.3) for r in range(1, 20) for p in range(10)]
    again = [fate(7, r, p, 0.3) for r in range(1, 20) for p in range(10)]
    other_seed = [fate(8, r, p, 0.3) for r in range(1, 20) for p in range(10)]
    # Assert
    assert first == again
    assert first != other_seed
    assert all(fate(7, r, p, 0.0) is None for r in range(1, 20) for p in range(10))


def test_clients_drop_out_at_the_given_rate_half_failing_half_timing_out() -> None:
    # Execute
    draws = [fate(0, r, p, 0.25) for r in range(1, 201) for p in range(50)]
    # Assert: 10,000 draws
    dropped = [d for d in draws if d is not None]
    assert len(dropped) / len(draws) == pytest.approx(0.25, abs=0.015)
    assert dropped.count(Fate.FAIL) / len(dropped) == pytest.approx(0.5, abs=0.03)


def test_a_failing_client_raises_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(DropoutError, match="client 3 failed in round 2"):
        act_out(Fate.FAIL, 2, 3, round_timeout_s=60.0)
    assert time.monotonic() - started < 1.0


def test_a_timing_out_client_stays_silent_past_the_round_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    monkeypatch.setattr(dropouts, "TIMEOUT_MARGIN_S", 0.05)
    started = time.monotonic()
    # Execute
    with pytest.raises(DropoutError, match="client 1 timed out in round 4"):
        act_out(Fate.TIMEOUT, 4, 1, round_timeout_s=0.2)
    # Assert: it answers (with an error) only after the server stopped waiting
    assert time.monotonic() - started >= 0.25
