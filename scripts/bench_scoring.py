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
from typing import Any, TypedDict

import numpy as np
from bench_page import write_section

from fedchain.contribution.base import Coalition, Scorer
from fedchain.contribution.registry import build_scorer
from fedchain.contribution.shapley import MAX_SHAPLEY_PARTICIPANTS

__all__ = [
    "EVAL_SECONDS",
    "AtScale",
    "ScoringBench",
    "at_scale_markdown",
    "bench_scoring",
    "bench_scoring_at_scale",
    "markdown",
]

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


# ---------------------------------------------------------------------------------------------
# Scoring at scale (issue 18): gtg on real 50-participant rounds against a reference run.

#: The issue's command: 50 of 1,000 clients sampled per round, scored with gtg.
AT_SCALE_ARGS = (
    "simulate", "--chain", "none", "--clients", "1000", "--fraction", "0.05",
    "--dataset", "synthetic", "--rounds", "3", "--contribution", "gtg", "--seed", "0",
)  # fmt: skip
#: The reference samples this many times gtg's permutations.
REFERENCE_FACTOR = 20
SCORING_TARGET_SECONDS = 5.0
ERROR_TARGET = 0.05


class AtScale(TypedDict):
    """One scored round of the issue's command, and its check against the reference."""

    run: int
    round: int
    participants: int
    seconds: float
    evaluations: int
    permutations: int
    reference_permutations: int
    error: float  # sum |gtg - ref| / sum |ref|
    per_player_error: float  # mean over players of |gtg - ref| / |ref|
    recomputed: bool  # the recorded scores recomputed from the store, fixed point, all equal


def bench_scoring_at_scale(runs: int = 2, reference_round: int = 3) -> list[AtScale]:
    """Run the issue's command ``runs`` times; gtg's scoring seconds of every round from the
    run's summary, the recomputation of every round, and the error of ``reference_round``
    against a Monte-Carlo run with ``REFERENCE_FACTOR`` times gtg's permutations."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    rows: list[AtScale] = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
            out = Path(tmp) / "run"
            subprocess.run(
                [sys.executable, "-m", "fedchain", *AT_SCALE_ARGS, "--out", str(out)],
                check=True, capture_output=True, text=True, timeout=3600,
            )  # fmt: skip
            summary = json.loads((out / "summary.json").read_text())
            for entry in summary["rounds"]:
                game = _Game(out, summary, int(entry["round"]))
                check = reference_round if run == 1 else -1
                rows.append(game.measure(run, entry, reference=int(entry["round"]) == check))
    return rows


class _Game:
    """A stored round's contribution game, rebuilt as an auditor does (store + holdout)."""

    def __init__(self, out: Any, summary: dict[str, Any], round_id: int) -> None:
        from fedchain.federation.coalitions import aggregation_order
        from fedchain.federation.workload import holdout
        from fedchain.settings import RunSettings
        from fedchain.store import ModelStore

        entry = summary["rounds"][round_id - 1]
        store = ModelStore(out / "store")
        accepted = sorted(
            (p for p in entry["participants"] if p["accepted"]),
            key=lambda p: aggregation_order(p["update_hash"], p["address"]),
        )
        self.round_id, self.spec = round_id, summary["spec"]
        self.addresses = [p["address"] for p in accepted]
        self.recorded = [float(p["score"]) for p in accepted]
        self.updates = [store.get(p["update_hash"]) for p in accepted]
        self.examples = [int(p["num_examples"]) for p in accepted]
        self.parent = store.get(entry["parent_model_hash"])
        self.global_model = store.get(entry["global_model_hash"])
        self.settings = RunSettings(
            num_clients=1000, dataset="synthetic", fraction_train=0.05, contribution="gtg"
        )
        self.hold = holdout(self.settings)

    def loss(self, model: Any) -> float:
        from fedchain.federation.workload import evaluate_weights

        return evaluate_weights(self.settings, self.hold.data, model)[1]

    def measure(self, run: int, entry: dict[str, Any], *, reference: bool) -> AtScale:
        from fedchain.contribution.rewards import to_fixed_point

        recomputed = [to_fixed_point(s) for s in self._recompute()]
        error = per_player = float("nan")
        permutations = reference_permutations = 0
        if reference:
            permutations = self._gtg_permutations()
            reference_permutations = REFERENCE_FACTOR * permutations
            truth = self._reference(reference_permutations)
            diff = np.abs(np.array(self.recorded) - truth)
            error = float(diff.sum() / np.abs(truth).sum())
            per_player = float(np.mean(diff / np.abs(truth)))
        return AtScale(
            run=run,
            round=self.round_id,
            participants=len(self.updates),
            seconds=float(entry["scoring_seconds"]),
            evaluations=int(entry["utility_evaluations"]),
            permutations=permutations,
            reference_permutations=reference_permutations,
            error=error,
            per_player_error=per_player,
            recomputed=recomputed == [to_fixed_point(s) for s in self.recorded],
        )

    def _recompute(self) -> list[float]:
        """The round's scores recomputed by the server's (and the audit's) code path."""
        from fedchain.contribution.rewards import RewardRule
        from fedchain.contribution.round import score_round, scoring_seed
        from fedchain.federation.coalitions import coalition_aggregator
        from fedchain.federation.flower_strategies import build_strategy

        strategy = build_strategy(self.settings, self.settings.num_clients)
        scoring = score_round(
            method="gtg",
            addresses=self.addresses,
            updates=self.updates,
            examples=self.examples,
            parent=self.parent,
            global_model=self.global_model,
            aggregate=coalition_aggregator(strategy, self.round_id, self.updates, self.examples),
            loss=self.loss,
            budget=10**21,
            seed=scoring_seed(self.settings.seed, self.round_id),
            holdout_hash=self.spec["holdout_hash"],
            rule=RewardRule(float(self.spec["reward_full_gain"])),
        )
        return [scoring.scores[a] for a in self.addresses]

    def _losses(self, models: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Holdout losses of many flattened MLP models in one numpy pass (the reference only:
        equal to PyTorch's to about 1e-7, a thousandth of the smallest scores here)."""
        x = np.asarray(self.hold.data.features, dtype=np.float32)
        y = np.asarray(self.hold.data.labels)
        parts = {}
        offset = 0
        for name in self.names:
            shape = self.parent[name].shape
            size = int(np.prod(shape))
            parts[name] = models[:, offset : offset + size].reshape(-1, *shape).astype(np.float32)
            offset += size
        hidden = np.matmul(x, parts["hidden.weight"].transpose(0, 2, 1))
        hidden = np.maximum(hidden + parts["hidden.bias"][:, None, :], 0.0)
        logits = np.matmul(hidden, parts["output.weight"].transpose(0, 2, 1))
        logits = (logits + parts["output.bias"][:, None, :]).astype(np.float64)
        top = logits.max(axis=2, keepdims=True)
        log_sum = np.log(np.exp(logits - top).sum(axis=2)) + top[..., 0]
        return np.asarray((log_sum - logits[:, np.arange(len(y)), y]).mean(axis=1))

    @property
    def names(self) -> list[str]:
        return list(self.parent)

    def _flat(self, weights: Any) -> np.ndarray[Any, Any]:
        return np.concatenate([np.asarray(weights[n], np.float64).ravel() for n in self.names])

    def _reference(self, permutations: int) -> np.ndarray[Any, Any]:
        """Plain Monte-Carlo Shapley values: uniformly random permutations, every prefix
        evaluated (no truncation, no exact positions, no stop rule), prefixes built as running
        example-weighted sums like gtg's. Kept in runs/ by the round's updates and the number
        of permutations: the same seed trains the same round, so a rerun reuses it."""
        import hashlib
        from pathlib import Path

        key = hashlib.sha256(
            "".join(self.addresses).encode() + str(permutations).encode()
            + b"".join(self._flat(u).tobytes() for u in self.updates)
        ).hexdigest()[:16]  # fmt: skip
        cache = Path(__file__).resolve().parents[1] / "runs" / f"bench-scoring-reference-{key}.npy"
        if cache.exists():
            return np.asarray(np.load(cache))
        values = self._sample_reference(permutations)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, values)
        return values

    def _sample_reference(self, permutations: int) -> np.ndarray[Any, Any]:
        n = len(self.updates)
        counts = np.array(self.examples, dtype=np.float64)
        scaled = np.stack([self._flat(u) for u in self.updates]) * counts[:, None]
        empty = -float(self._losses(self._flat(self.parent)[None, :])[0])
        full = -float(self._losses(self._flat(self.global_model)[None, :])[0])
        rng = np.random.default_rng(20260418)
        sums = np.zeros(n)
        for _ in range(permutations):
            order = rng.permutation(n)
            prefixes = np.cumsum(scaled[order], axis=0) / np.cumsum(counts[order])[:, None]
            values = np.concatenate([[empty], -self._losses(prefixes[:-1]), [full]])
            sums[order] += np.diff(values)
        return sums / permutations

    def _gtg_permutations(self) -> int:
        """How many permutations gtg sampled on this round (its walks counted; the
        reference's loss, so the stop rule sees the same values to about 1e-7)."""
        from fedchain.contribution.coalition_models import WeightedMeanUtility
        from fedchain.contribution.gtg import GTGScorer
        from fedchain.contribution.round import scoring_seed

        n = len(self.updates)
        walks = [0]

        class Counting(WeightedMeanUtility):
            def prefixes(self, order: Any) -> Any:
                walks[0] += len(order) == n
                return super().prefixes(order)

        def direct(coalition: frozenset[int]) -> float:
            model = self.global_model if coalition else self.parent
            return -float(self._losses(self._flat(model)[None, :])[0])

        utility = Counting(
            direct,
            updates=self.updates,
            examples=self.examples,
            utility_of=lambda m: -float(self._losses(self._flat(m)[None, :])[0]),
        )
        GTGScorer().score(
            n,
            utility,
            num_examples=self.examples,
            seed=scoring_seed(self.settings.seed, self.round_id),
        )
        return walks[0]


def at_scale_markdown(rows: list[AtScale]) -> str:
    """The rows as a markdown table, and the worst figures against the targets."""
    command = "fedchain " + " ".join(AT_SCALE_ARGS)
    lines = [
        f"`{command}`, {max(r['run'] for r in rows)} runs; scoring seconds from each run's "
        "summary.json (`scoring_seconds`, the server's own measure, 50 participants).",
        "",
        "| run | round | participants | gtg seconds | evaluations | permutations "
        "| reference permutations | error (L1) | mean per-player relative error "
        "| recomputed equal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        error = "" if math.isnan(r["error"]) else f"{r['error']:.2%}"
        per = "" if math.isnan(r["per_player_error"]) else f"{r['per_player_error']:.1%}"
        ref = r["reference_permutations"] or ""
        lines.append(
            f"| {r['run']} | {r['round']} | {r['participants']} | {r['seconds']:.2f} "
            f"| {r['evaluations']} | {r['permutations']} | {ref} | {error} | {per} "
            f"| {'yes' if r['recomputed'] else 'NO'} |"
        )
    worst = max(r["seconds"] for r in rows)
    errors = [r["error"] for r in rows if not math.isnan(r["error"])]
    lines += [
        "",
        f"Worst scoring time per round: {worst:.2f} s (target <= {SCORING_TARGET_SECONDS:g} s: "
        f"{'met' if worst <= SCORING_TARGET_SECONDS else 'missed'}). "
        + (
            f"Worst error against the reference: {max(errors):.2%} (target <= "
            f"{ERROR_TARGET:.0%}: {'met' if max(errors) <= ERROR_TARGET else 'missed'})."
            if errors
            else ""
        ),
    ]
    return "\n".join(lines)


AT_SCALE_HEADING = "## Scoring at scale"
AT_SCALE_INTRO = f"""{AT_SCALE_HEADING} (`python scripts/bench_scoring.py --at-scale`)

gtg at 50 participants (issue 18), every round of the issue's command scored by the server as it
runs; the error is against a reference Monte-Carlo Shapley run on the same round (the same
utility values: the round rebuilt from the run's store and holdout) with {REFERENCE_FACTOR} times
gtg's permutations, no truncation and no convergence stop. Error (L1) is
`sum |gtg - reference| / sum |reference|` over the participants; the mean per-player relative
error is also shown, though it is dominated by participants whose value is near 0. "Recomputed
equal": every recorded score recomputed from the store by the audit's code path
(`score_round`), to the recorded fixed point. Targets: at most {SCORING_TARGET_SECONDS:g} s of
scoring per round, within {ERROR_TARGET:.0%} of the reference. Parameters and how they were
tuned: [Contribution](contribution.md#scoring-at-scale).
"""


if __name__ == "__main__":
    import sys

    if "--at-scale" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 2
        rows = bench_scoring_at_scale(runs=runs)
        section = AT_SCALE_INTRO + "\n" + at_scale_markdown(rows) + "\n"
        print(section)
        if "--write" in sys.argv:
            write_section(AT_SCALE_HEADING, section)
    else:
        print(f"simulated cost per utility evaluation: {EVAL_SECONDS * 1000:g} ms\n")
        print(markdown(bench_scoring()))
