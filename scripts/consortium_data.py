"""Write a demo consortium's CSV files from scikit-learn's breast-cancer set (no download).

    .venv/bin/python scripts/consortium_data.py data --sites 3

writes ``data/holdout.csv`` (the coordinator's holdout, 20 % of the examples, stratified) and
``data/hospital-a.csv``, ``data/hospital-b.csv``, ... (the rest, split over the sites with a label
skew), each a header line with the 30 feature names and a ``label`` column, then one row per
example, mode 600 in a directory it creates 700. Real hospitals bring their own files in the
same shape (docs/consortium.md).
"""

from __future__ import annotations

import argparse
import csv
import os
import string
import sys
from pathlib import Path

import sklearn.datasets

from fedchain.ml.data import Dataset, load_breast_cancer, split_holdout
from fedchain.ml.partition import partition

HOLDOUT_FRACTION = 0.2
SKEW = "dirichlet:1.0"


def write_csv(dataset: Dataset, names: list[str], path: Path) -> None:
    """One header line (``names`` and ``label``), then one row per example; mode 600 (a
    site's data, readable by its owner only)."""
    # O_EXCL: an existing file is never overwritten.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "label"])
        for features, label in zip(dataset.features, dataset.labels, strict=True):
            writer.writerow([*(repr(float(v)) for v in features), int(label)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for the CSV files")
    parser.add_argument("--sites", type=int, default=3, help="number of hospitals (2-26)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    args = parser.parse_args(argv)
    if not 2 <= args.sites <= 26:
        parser.error("--sites must lie in 2..26")
    names = [str(n) for n in sklearn.datasets.load_breast_cancer().feature_names]
    train, holdout = split_holdout(load_breast_cancer(), HOLDOUT_FRACTION, args.seed)
    parts = partition(train.labels, args.sites, SKEW, args.seed)
    letters = string.ascii_lowercase[: len(parts)]
    sites = {
        f"hospital-{letter}": train.subset(indices)
        for letter, indices in zip(letters, parts, strict=True)
    }
    files = [args.out / "holdout.csv", *(args.out / f"{site}.csv" for site in sites)]
    existing = [str(f) for f in files if f.exists()]
    if existing:
        print(f"error: {', '.join(existing)} exists: choose another directory", file=sys.stderr)
        return 1
    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_csv(holdout, names, files[0])
    print(f"{files[0]}: {len(holdout)} examples (the coordinator's holdout)")
    for (site, data), path in zip(sites.items(), files[1:], strict=True):
        write_csv(data, names, path)
        print(f"{path}: {len(data)} examples ({site})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
