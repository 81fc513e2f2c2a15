"""Benchmark: contribution scoring cost against the number of participants, and gtg's error.

Run ``python scripts/bench_scoring.py`` to print a markdown table. The utility is synthetic but
shaped like a federation round's: a concave (saturating) function of the coalition's total
data, plus a small quality term per participant, and a fixed cost per evaluation standing in
for rebuilding a model and running the holdout (``EVAL_SECONDS``). ``bench_scoring`` returns the
figures for other scripts (docs/BENCHMARKS.md is written elsewhere).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypedDict

import numpy as np

from fedchain.contribution.base import Coalition, Scorer
from fedchain.contribution.registry import build_scorer
from fedchain.contribution.shapley import MAX_SHAPLEY_PARTICIPANTS

__all__ = ["EVAL_SECONDS", "ScoringBench", "bench_scoring", "markdown"]

#: Simulated cost of one utility evaluation (a small model on a small holdout takes about 1 ms).
EVAL_SECONDS = 0.001
SIZES = (4, 8, 16, 32)
METHODS = ("data-size", "cosine", "loo", "shapley", "gtg")


class ScoringBench(TypedDict):
    """One method on one round size (seconds include the simulated evaluation cost)."""

    n: int
    method: str
    evaluations: int
    seconds: float
    gtg_error: float | None


def _round(n: int, seed: int) -> tuple[list[int], list[float], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(20, 200, n)]
    quality = [float(q) for q in rng.normal(0.0, 0.01, n)]
    deltas = [rng.normal(1.0, 1.0, 16) * s for s in sizes]
    return sizes, quality, deltas


def _utility(sizes: list[int], quality: list[float]) -> Callable[[Coalition], float]:
    total = float(sum(sizes))

    def utility(coalition: Coalition) -> float:
        time.sleep(EVAL_SECONDS)
        data = sum(sizes[i] for i in coalition)
        return 1.0 - math.exp(-3.0 * data / total) + sum(quality[i] for i in coalition)

    return utility


def bench_scoring(sizes: tuple[int, ...] = SIZES, seed: int = 0) -> list[ScoringBench]:
    """Score one synthetic round per size with every method; exact Shapley where feasible."""
    rows: list[ScoringBench] = []
    for n in sizes:
        examples, quality, deltas = _round(n, seed)
        exact: np.ndarray | None = None
        for method in METHODS:
            if method == "shapley" and n > MAX_SHAPLEY_PARTICIPANTS:
                continue
            scorer: Scorer = build_scorer(method)
            utility = _utility(examples, quality)
            started = time.perf_counter()
            result = scorer.score(
                n,
                utility,
                num_examples=examples,
                deltas=deltas,
                aggregate_delta=None,
                seed=seed,
            )
            seconds = time.perf_counter() - started
            error = None
            if method == "shapley":
                exact = np.array(result.scores)
            if method == "gtg" and exact is not None:
                error = float(np.mean(np.abs(np.array(result.scores) - exact) / np.abs(exact)))
            rows.append(
                ScoringBench(
                    n=n,
                    method=method,
                    evaluations=result.evaluations,
                    seconds=seconds,
                    gtg_error=error,
                )
            )
    return rows


def markdown(rows: list[ScoringBench]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| n | method | utility evaluations | seconds | gtg mean relative error vs exact |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        error = "" if row["gtg_error"] is None else f"{row['gtg_error']:.2%}"
        lines.append(
            f"| {row['n']} | {row['method']} | {row['evaluations']} | {row['seconds']:.3f} "
            f"| {error} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"simulated cost per utility evaluation: {EVAL_SECONDS * 1000:g} ms\n")
    print(markdown(bench_scoring()))
