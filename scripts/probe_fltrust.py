"""Probe: FLTrust's server update against clean FedAvg (issue 15, item 5), in process.

Clean federations (10 clients, ``--chain none``, ``standardize = task``), final holdout accuracy:
FedAvg and FLTrust on breast-cancer and digits, IID and dirichlet:0.5, seeds 0-2; and the
candidate default (FLTrust, ``loo``, ``task``) with 1 and 2 local epochs on breast-cancer,
dirichlet:0.5, seeds 0-9. Prints one JSON line per federation (with its wall time).

``python scripts/probe_fltrust.py [--part compare|candidate|all] [--jobs N] [--epochs 1,2]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from fedchain.settings import RunSettings

# dataset, partition, strategy, contribution, local epochs, seed
Cell = tuple[str, str, str, str, int, int]


def _run(cell: Cell) -> dict[str, object]:
    """One federation's final holdout accuracy and wall time."""
    from fedchain.simulation.inprocess import run_inprocess

    logging.getLogger("flwr").setLevel(logging.ERROR)
    dataset, partition, strategy, contribution, epochs, seed = cell
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        settings = RunSettings(
            dataset=dataset,
            num_clients=10,
            num_rounds=10,
            partition=partition,
            strategy=strategy,
            contribution=contribution,
            standardize="task",
            local_epochs=epochs,
            seed=seed,
            chain="none",
            out=out,
        )
        run_inprocess(settings)
        summary = json.loads((settings.out_dir / "summary.json").read_text())
    return {
        "dataset": dataset,
        "partition": partition,
        "strategy": strategy,
        "contribution": contribution,
        "epochs": epochs,
        "seed": seed,
        "accuracy": float(summary["rounds"][-1]["accuracy"]),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _cells(part: str, epochs: list[int]) -> list[Cell]:
    cells: list[Cell] = []
    if part in ("compare", "all"):
        cells += [
            (d, p, s, "data-size", e, seed)
            for e in epochs
            for d in ("digits", "breast-cancer")
            for p in ("iid", "dirichlet:0.5")
            for s in ("fedavg", "fltrust")
            for seed in (0, 1, 2)
        ]
    if part in ("candidate", "all"):
        cells += [
            ("breast-cancer", "dirichlet:0.5", "fltrust", "loo", e, seed)
            for e in epochs
            for seed in range(10)
        ]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=("compare", "candidate", "all"), default="all")
    parser.add_argument("--epochs", default="1,2")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    cells = _cells(args.part, [int(e) for e in args.epochs.split(",")])
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(_run, cells):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
