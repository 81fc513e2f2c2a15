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
    controlled_error: float  # sum |gtg - cvref| / sum |cvref|, cvref with the control variate
    reference_error: float  # the plain reference's own: sum |ref - cvref| / sum |cvref|
    recomputed: bool  # the recorded scores recomputed from the store, fixed point, all equal
    recompute_cpu: float  # CPU seconds of that recomputation (less moved by the load than wall)


def bench_scoring_at_scale(runs: int = 2) -> list[AtScale]:
    """Run the issue's command ``runs`` times; gtg's scoring seconds of every round from the
    run's summary, the recomputation of every round, and each round's error against a
    Monte-Carlo run with ``REFERENCE_FACTOR`` times gtg's permutations (every round of run 1;
    of later runs, the rounds whose reference is already computed: the same round)."""
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
                rows.append(game.measure(run, entry, reference=run == 1))
    return rows


class _Game:
    """A stored round's contribution game, rebuilt as an auditor does (store + holdout)."""

    def __init__(self, out: Any, summary: dict[str, Any], round_id: int) -> None:
        from fedchain.federation.coalitions import aggregation_order
        from fedchain.federation.holdout_eval import HoldoutEvaluator
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
        self.evaluator = HoldoutEvaluator(self.settings, holdout(self.settings).data)
        self._utility: Any = None

    def loss(self, model: Any) -> float:
        return float(self.evaluator.loss(model))

    @property
    def utility(self) -> Any:
        """The round's utility as gtg sees it (incremental prefixes, the server's evaluator:
        the same values to the bit), one cache shared by the counting and the reference."""
        if self._utility is None:
            from fedchain.contribution.coalition_models import WeightedMeanUtility

            def direct(coalition: frozenset[int]) -> float:
                return -self.loss(self.global_model if coalition else self.parent)

            self._utility = WeightedMeanUtility(
                direct,
                updates=self.updates,
                examples=self.examples,
                utility_of=lambda m: -self.loss(m),
                curvature=self.evaluator.curvature,
            )
        return self._utility

    def measure(self, run: int, entry: dict[str, Any], *, reference: bool) -> AtScale:
        import time

        from fedchain.contribution.rewards import to_fixed_point

        cpu = time.process_time()
        recomputed = [to_fixed_point(s) for s in self._recompute()]
        cpu = time.process_time() - cpu
        error = per_player = float("nan")
        permutations = self._gtg_permutations()
        # 20 times gtg's permutation budget under the control variate (whole cycles: 8,000 at
        # 50 participants), full permutations; the controlled reference, far more precise,
        # takes 20 times two cycles.
        from fedchain.contribution.gtg import GTGScorer

        cycle = 2 * len(self.updates)
        budget = -(-GTGScorer().cv_max_permutations // cycle) * cycle
        reference_permutations = REFERENCE_FACTOR * budget
        truth = None
        if permutations and (reference or self._reference_path(reference_permutations).exists()):
            truth = self._reference(reference_permutations)
        controlled_error = reference_error = float("nan")
        if truth is not None:
            diff = np.abs(np.array(self.recorded) - truth)
            error = float(diff.sum() / np.abs(truth).sum())
            per_player = float(np.mean(diff / np.abs(truth)))
            close = self._reference(REFERENCE_FACTOR * 2 * cycle, controlled=True)
            scale = np.abs(close).sum()
            controlled_error = float(np.abs(np.array(self.recorded) - close).sum() / scale)
            reference_error = float(np.abs(truth - close).sum() / scale)
        return AtScale(
            run=run,
            round=self.round_id,
            participants=len(self.updates),
            seconds=float(entry["scoring_seconds"]),
            evaluations=int(entry["utility_evaluations"]),
            permutations=permutations,
            reference_permutations=reference_permutations if truth is not None else 0,
            error=error,
            per_player_error=per_player,
            controlled_error=controlled_error,
            reference_error=reference_error,
            recomputed=recomputed == [to_fixed_point(s) for s in self.recorded],
            recompute_cpu=cpu,
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
            curvature=self.evaluator.curvature,
            budget=10**21,
            seed=scoring_seed(self.settings.seed, self.round_id),
            holdout_hash=self.spec["holdout_hash"],
            rule=RewardRule(float(self.spec["reward_full_gain"])),
        )
        return [scoring.scores[a] for a in self.addresses]

    @property
    def names(self) -> list[str]:
        return list(self.parent)

    def _flat(self, weights: Any) -> np.ndarray[Any, Any]:
        return np.concatenate([np.asarray(weights[n], np.float64).ravel() for n in self.names])

    def _reference_path(self, permutations: int, *, controlled: bool = False) -> Any:
        import hashlib
        from pathlib import Path

        key = hashlib.sha256(
            "".join(self.addresses).encode() + str(permutations).encode()
            + b"".join(self._flat(u).tobytes() for u in self.updates)
        ).hexdigest()[:16]  # fmt: skip
        name = f"bench-scoring-{'cvref' if controlled else 'ref'}-{key}.npy"
        return Path(__file__).resolve().parents[1] / "runs" / name

    def _reference(self, permutations: int, *, controlled: bool = False) -> np.ndarray[Any, Any]:
        """A Monte-Carlo Shapley estimate with ``permutations`` permutations, every prefix
        evaluated (no truncation, no convergence stop) on gtg's utility: gtg's own sampler with
        another seed, so its cycles (which put every participant at every position equally
        often) cost half of plain random permutations per permutation and it shares the
        exact positions 0 and 1. Kept in runs/ by the round's updates and the number of
        permutations: the same seed trains the same round, so a rerun reuses it."""
        from fedchain.contribution.gtg import GTGScorer

        path = self._reference_path(permutations, controlled=controlled)
        if path.exists():
            return np.asarray(np.load(path))
        reference = GTGScorer(
            eps_trunc=0.0,
            convergence_tol=0.0,
            max_permutations=permutations,
            exact_pairs=64,
            control_variate=int(controlled),
            surrogate_cycles=REFERENCE_FACTOR * GTGScorer().surrogate_cycles,
            walk_depth=0,  # every position sampled
            cv_convergence_tol=0.0,
            cv_max_permutations=permutations,
        )
        n = len(self.updates)
        scores = reference.score(n, self.utility, num_examples=self.examples, seed=20260418)
        values = np.array(scores.scores)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, values)
        return values

    def _gtg_permutations(self) -> int:
        """How many permutations gtg sampled on this round (its walks counted, on the same
        utility values as the server's); 0 when the round's gain was below ``eps_round``."""
        from fedchain.contribution.coalition_models import WeightedMeanUtility
        from fedchain.contribution.gtg import GTGScorer
        from fedchain.contribution.round import scoring_seed

        n = len(self.updates)
        walks = [0]
        inner = self.utility

        class Counting(WeightedMeanUtility):
            def prefixes(self, order: Any) -> Any:
                walks[0] += len(order) > 2  # a walk (exact strata ask for 1 and 2)
                return inner.prefixes(order)

            def __call__(self, coalition: frozenset[int]) -> float:
                return float(inner(coalition))

            def surrogate(self) -> Any:
                return inner.surrogate()

        counting = Counting(inner, updates=self.updates, examples=self.examples,
                            utility_of=lambda m: -self.loss(m))  # fmt: skip
        GTGScorer().score(
            n,
            counting,
            num_examples=self.examples,
            seed=scoring_seed(self.settings.seed, self.round_id),
        )
        return walks[0]


def _errors(row: AtScale) -> tuple[str, str, str, str]:
    """The row's error cells: a round gtg did not sample (its gain below ``eps_round``: every
    score 0) has no error to measure, a round whose reference was not run shows none."""
    if not row["permutations"]:
        return "undefined: round skipped", "undefined", "", ""
    if math.isnan(row["error"]):
        return "not run", "", "", ""
    return (
        f"{row['error']:.2%}",
        f"{row['per_player_error']:.1%}",
        f"{row['controlled_error']:.2%}",
        f"{row['reference_error']:.2%}",
    )


def at_scale_markdown(rows: list[AtScale]) -> str:
    """The rows as a markdown table, and the worst figures against the targets."""
    command = "fedchain " + " ".join(AT_SCALE_ARGS)
    lines = [
        f"`{command}`, {max(r['run'] for r in rows)} runs; scoring seconds from each run's "
        "summary.json (`scoring_seconds`, the server's own wall-clock measure).",
        "",
        "| run | round | participants | gtg seconds | recomputed, CPU seconds | evaluations "
        "| permutations | reference permutations | error (L1) | mean per-player relative error "
        "| error against the controlled reference | the reference against it "
        "| recomputed equal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        error, per, controlled, own = _errors(r)
        ref = r["reference_permutations"] or ""
        lines.append(
            f"| {r['run']} | {r['round']} | {r['participants']} | {r['seconds']:.2f} "
            f"| {r['recompute_cpu']:.2f} | {r['evaluations']} | {r['permutations']} | {ref} "
            f"| {error} | {per} | {controlled} | {own} "
            f"| {'yes' if r['recomputed'] else 'NO'} |"
        )
    worst = max(r["seconds"] for r in rows)
    worst_cpu = max(r["recompute_cpu"] for r in rows)
    errors = [r["error"] for r in rows if not math.isnan(r["error"])]
    lines += [
        "",
        f"Worst scoring time per round: {worst:.2f} s (target <= {SCORING_TARGET_SECONDS:g} s: "
        f"{'met' if worst <= SCORING_TARGET_SECONDS else 'missed'}); worst CPU time of a "
        f"round's recomputation: {worst_cpu:.2f} s. "
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
utility values to the bit: the round rebuilt from the run's store and holdout, evaluated by the
server's evaluator) with {REFERENCE_FACTOR} times gtg's permutation budget
(`cv_max_permutations` in whole cycles: 8,000 full permutations at 50 participants, where gtg's
walks stop after `walk_depth` positions), without the control variate, truncation or
convergence stop (gtg's cycles with another seed: every participant at every position equally
often, positions 0 and 1 exact); the reference runs on every round of run 1 and on the rounds
of run 2 that are the same rounds (a cached reference). "Recomputed, CPU seconds": the
process time of the bench's own recomputation of the round (`score_round`, as `fedchain
scores` does), a measure the machine's load moves less than the server's wall-clock seconds.
"Permutations" counts gtg's sampled walks; a round whose gain is below `eps_round` is not
sampled (every score 0), and its error is undefined. Error (L1) is
`sum |gtg - reference| / sum |reference|` over the participants; the mean per-player relative
error is also shown, though it is dominated by participants whose value is near 0. The
reference is a sample too: "the controlled reference" is {REFERENCE_FACTOR} times two cycles
(4,000) of untruncated permutations with gtg's control variate (and 20 times its surrogate
cycles), far closer to the exact values, and the last error column is the plain reference's
own distance from it, the floor under the issue's measure. "Recomputed
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
