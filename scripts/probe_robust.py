"""Probe: final accuracy of the robust aggregators on a few cells (not the benchmark matrix).

10 breast-cancer clients, ``ROUNDS`` rounds, contribution ``data-size``, ``--chain none``, in
process; partitions x attacks x seeds x strategies, where a strategy ``PRE+RULE`` is ``RULE``
with pre-aggregation ``PRE``. Prints one line per federation and a mean / worst table.

``python scripts/probe_robust.py [--rounds N] [--jobs N]``
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from fedchain.settings import RunSettings, SettingsError

STRATEGIES = ("fedavg", "fedmedian", "krum", "cclip", "nnm+cclip", "bucketing:2+cclip", "fltrust")
ATTACKS = ("", "alie:0.3", "sign-flip:0.3")
PARTITIONS = ("dirichlet:0.5", "iid")
SEEDS = (0, 1, 2)

Cell = tuple[str, str, str, int, int]  # partition, attack, strategy, seed, rounds


def _run(cell: Cell) -> tuple[Cell, float | str]:
    """One federation's final holdout accuracy, or why its settings were refused."""
    from fedchain.simulation.inprocess import run_inprocess

    logging.getLogger("flwr").setLevel(logging.ERROR)
    partition, attack, strategy, seed, rounds = cell
    pre, _, rule = strategy.rpartition("+")
    with tempfile.TemporaryDirectory() as out:
        try:
            settings = RunSettings(
                num_clients=10,
                num_rounds=rounds,
                partition=partition,
                strategy=rule,
                pre_aggregation=pre,
                attack=attack,
                seed=seed,
                chain="none",
                out=out,
            )
        except SettingsError as exc:
            return cell, f"refused: {exc}"
        run_inprocess(settings)
        summary = json.loads((settings.out_dir / "summary.json").read_text())
    return cell, float(summary["rounds"][-1]["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    todo = [
        (p, a, s, seed, args.rounds)
        for p in PARTITIONS
        for a in ATTACKS
        for s in STRATEGIES
        for seed in SEEDS
    ]
    found: dict[Cell, float | str] = {}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for cell, result in pool.map(_run, todo):
            found[cell] = result
            print(cell, result, flush=True)
    print(f"\n{args.rounds} rounds; final accuracy %, mean (worst) over seeds {SEEDS}\n")
    for partition in PARTITIONS:
        print(f"| {partition} | " + " | ".join(a or "no attack" for a in ATTACKS) + " |")
        print("|---|" + "---:|" * len(ATTACKS))
        for strategy in STRATEGIES:
            texts = []
            for attack in ATTACKS:
                values = [found[(partition, attack, strategy, s, args.rounds)] for s in SEEDS]
                numbers = [v for v in values if isinstance(v, float)]
                texts.append(
                    f"{statistics.mean(numbers) * 100:.1f} ({min(numbers) * 100:.1f})"
                    if len(numbers) == len(values)
                    else "refused"
                )
            print(f"| {strategy} | " + " | ".join(texts) + " |")
        print()


if __name__ == "__main__":
    main()
