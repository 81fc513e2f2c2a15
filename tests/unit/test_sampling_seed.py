"""A round's client sampling (``--fraction``) follows the task's seed, not the process's state."""

from __future__ import annotations

import random
from pathlib import Path

import fedchain


def _sampled(out: Path, disturbance: int) -> tuple[list[list[str]], str]:
    random.seed(disturbance)  # whatever ran before in the process
    random.random()
    run = fedchain.simulate(
        engine="inprocess", out=str(out), clients=6, rounds=2, fraction=0.5, chain="none", seed=3
    )
    rounds = [sorted(p["address"] for p in r["participants"]) for r in run.summary["rounds"]]
    return rounds, str(run.summary["final_model_hash"])


def test_the_same_seed_samples_the_same_clients_whatever_ran_before(tmp_path: Path) -> None:
    # Execute: the same run twice, the global random module left in different states
    first = _sampled(tmp_path / "a", disturbance=1)
    second = _sampled(tmp_path / "b", disturbance=2)
    # Assert: the same clients each round, so the same models (Flower samples with `random`)
    assert first == second
    assert all(len(sampled) == 3 for sampled in first[0])
