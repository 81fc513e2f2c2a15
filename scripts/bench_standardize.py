"""Benchmark: final holdout accuracy per seed, local against task standardization.

Every cell is one seeded federation with the default options (breast-cancer, 10 clients,
``dirichlet:0.5``, 10 rounds, FedAvg) plus the variant's changes, run without a ledger
(``--chain none``) on :class:`fedchain.simulation.inprocess.InProcessGrid`, which runs the same
ServerApp logic and ClientApp as ``fedchain simulate`` (same models for a seed). The figures of
docs/simulation.md#feature-standardization come from it.

``python scripts/bench_standardize.py [--seeds 0-9] [--variant NAME ...]`` prints one markdown
row per variant: the accuracy of each seed, the minimum, the mean and how many reached 0.95;
the row "centralised" is the reference: the same model trained on all the training rows at once
(standardized with the holdout's statistics), for as many epochs as the federation has rounds.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Mapping

from fedchain.settings import RunSettings

__all__ = ["CENTRALISED", "VARIANTS", "centralised_accuracy", "final_accuracy", "main"]

TARGET = 0.95
CENTRALISED = "centralised"
#: name -> changes to the default RunSettings.
VARIANTS: Mapping[str, Mapping[str, object]] = {
    "local": {},
    "task": {"standardize": "task"},
    "task, 2 local epochs": {"standardize": "task", "local_epochs": 2},
    "task, lr 0.1": {"standardize": "task", "learning_rate": 0.1},
    "task, 20 rounds": {"standardize": "task", "num_rounds": 20},
    "task, batch 8": {"standardize": "task", "batch_size": 8},
    "task, 3 local epochs": {"standardize": "task", "local_epochs": 3},
    "task, fedprox mu 0.1": {"standardize": "task", "strategy": "fedprox", "proximal_mu": 0.1},
    "local, 2 local epochs": {"local_epochs": 2},
    "local, 20 rounds": {"num_rounds": 20},
    "iid local": {"partition": "iid"},
    "iid task": {"partition": "iid", "standardize": "task"},
    "iid task, 2 local epochs": {"partition": "iid", "standardize": "task", "local_epochs": 2},
    "iid task, lr 0.1": {"partition": "iid", "standardize": "task", "learning_rate": 0.1},
    "digits local": {"dataset": "digits"},
    "digits task": {"dataset": "digits", "standardize": "task"},
    "digits task, 2 local epochs": {"dataset": "digits", "standardize": "task", "local_epochs": 2},
    "digits task, lr 0.1": {"dataset": "digits", "standardize": "task", "learning_rate": 0.1},
}


def final_accuracy(seed: int, changes: Mapping[str, object]) -> float:
    """The last round's holdout accuracy of the seeded federation with ``changes``."""
    from fedchain.simulation.inprocess import run_inprocess

    logging.getLogger("flwr").setLevel(logging.ERROR)  # after Flower's import, which resets it
    with tempfile.TemporaryDirectory() as out:
        settings = RunSettings(seed=seed, chain="none", out=out, **changes)  # type: ignore[arg-type]
        record = run_inprocess(settings)
    return next(r.accuracy for r in reversed(record.reports) if r.accuracy is not None)


def centralised_accuracy(seed: int) -> float:
    """The reference: the default model trained on every training row of the seed's split,
    standardized with the holdout's statistics, one epoch per federated round."""
    from fedchain.federation import workload
    from fedchain.ml.data import split_holdout
    from fedchain.ml.preprocess import preprocess

    settings = RunSettings(seed=seed, chain="none", standardize="task")
    settings = settings.with_changes(local_epochs=settings.num_rounds)
    train, _ = split_holdout(workload.run_dataset(settings), settings.holdout_fraction, seed)
    data = preprocess(train, workload.task_standardizer(settings))
    hold = workload.holdout(settings)
    initial = workload.initial_weights(settings, hold.input_shape, hold.num_classes)
    weights, _ = workload.train_locally(settings, data, initial, seed=seed)
    return workload.evaluate_weights(settings, hold.data, weights)[0]


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="a range FIRST-LAST (default 0-9)")
    names = [*VARIANTS, CENTRALISED]
    parser.add_argument("--variant", action="append", choices=names, default=None)
    args = parser.parse_args()
    seeds = _seeds(args.seeds)
    print("| variant | " + " | ".join(str(s) for s in seeds) + f" | min | mean | >= {TARGET} |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for name in args.variant or names:
        accuracies = [
            centralised_accuracy(seed)
            if name == CENTRALISED
            else final_accuracy(seed, VARIANTS[name])
            for seed in seeds
        ]
        cells = " | ".join(f"{a:.3f}" for a in accuracies)
        reached = sum(a >= TARGET for a in accuracies)
        mean = sum(accuracies) / len(accuracies)
        print(
            f"| {name} | {cells} | {min(accuracies):.3f} | {mean:.3f} | {reached}/{len(seeds)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
