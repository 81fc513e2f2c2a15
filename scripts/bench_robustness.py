"""Benchmark: the robustness matrix, strategies x attacks x attacker fraction x partition.

Every cell is one seeded federation of ``CLIENTS`` breast-cancer hospitals over ``ROUNDS``
rounds, scored with ``CONTRIBUTION`` (leave-one-out on the holdout), without a ledger
(``--chain none``: scores and rewards are computed the same way, only nothing is written on
chain). It reports the final holdout accuracy against the clean run (FedAvg, no attackers, same
partition) and the attackers' share of all the rewards of the run.

Cells run in this process on :class:`fedchain.simulation.inprocess.InProcessGrid`, which runs
the same ServerApp logic and ClientApp as ``fedchain simulate`` without starting Ray for each
of the two hundred federations (same models and hashes for a seed; a test checks it).

``python scripts/bench_robustness.py [--jobs N]`` prints the markdown; ``bench_robustness``
returns the cells for scripts/bench.py.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

from fedchain.attacks import HONEST
from fedchain.settings import RunSettings, SettingsError

__all__ = ["RobustnessCell", "bench_robustness", "markdown"]

STRATEGIES = ("fedavg", "fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan")
ATTACKS = ("sign-flip", "gaussian", "label-flip", "free-rider", "noisy-free-rider", "alie")
FRACTIONS = (0.1, 0.2, 0.3)
PARTITIONS = ("iid", "dirichlet:0.5")
CLIENTS = 10
ROUNDS = 5
CONTRIBUTION = "loo"


@dataclass(frozen=True)
class RobustnessCell:
    """One federation of the matrix (``attack`` empty and ``fraction`` 0 for a clean run)."""

    partition: str
    strategy: str
    attack: str
    fraction: float
    accuracy: float | None = None  # final holdout accuracy; None when the cell cannot run
    attacker_share: float | None = None  # attackers' share of the run's rewards
    seconds: float = 0.0
    refused: str = ""  # why the settings were refused (e.g. Bulyan needs n >= 4f + 3)


def _settings(cell: RobustnessCell, out: str) -> RunSettings:
    return RunSettings(
        num_clients=CLIENTS,
        num_rounds=ROUNDS,
        partition=cell.partition,
        strategy=cell.strategy,
        attack=f"{cell.attack}:{cell.fraction}" if cell.attack else "",
        contribution=CONTRIBUTION,
        chain="none",
        out=out,
    )


def _run(cell: RobustnessCell) -> RobustnessCell:
    """Run one cell in this process (also in a worker of the pool)."""
    from fedchain.simulation.inprocess import run_inprocess

    logging.getLogger("flwr").setLevel(logging.ERROR)  # after Flower's import, which resets it

    with tempfile.TemporaryDirectory() as out:
        try:
            settings = _settings(cell, out)
        except SettingsError as exc:
            return RobustnessCell(**{**cell.__dict__, "refused": str(exc)})
        started = time.perf_counter()
        record = run_inprocess(settings)
        seconds = time.perf_counter() - started
    rewards: dict[str, int] = {}
    for report in record.reports:
        for p in report.participants:
            if p.accepted:
                rewards[p.address] = rewards.get(p.address, 0) + p.reward
    total = sum(rewards.values())
    attackers = sum(v for a, v in rewards.items() if record.roles.get(a, HONEST) != HONEST)
    final = next((r.accuracy for r in reversed(record.reports) if r.accuracy is not None), None)
    return RobustnessCell(
        **{
            **cell.__dict__,
            "accuracy": final,
            "attacker_share": attackers / total if total else 0.0,
            "seconds": seconds,
        }
    )


def cells() -> list[RobustnessCell]:
    """Every cell of the matrix: the clean runs first, then the attacks."""
    clean = [RobustnessCell(p, s, "", 0.0) for p in PARTITIONS for s in STRATEGIES]
    attacked = [
        RobustnessCell(p, s, a, f)
        for p in PARTITIONS
        for s in STRATEGIES
        for a in ATTACKS
        for f in FRACTIONS
    ]
    return clean + attacked


def bench_robustness(jobs: int = 1, progress: bool = True) -> list[RobustnessCell]:
    """Run the whole matrix, ``jobs`` federations at a time; returns every cell."""
    todo = cells()
    done: list[RobustnessCell] = []
    if jobs <= 1:
        results = map(_run, todo)
        for i, cell in enumerate(results, 1):
            done.append(cell)
            if progress:
                print(f"  {i}/{len(todo)} {_label(cell)}", flush=True)
        return done
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        for i, cell in enumerate(pool.map(_run, todo), 1):
            done.append(cell)
            if progress:
                print(f"  {i}/{len(todo)} {_label(cell)}", flush=True)
    return done


def _label(cell: RobustnessCell) -> str:
    attack = f"{cell.attack}:{cell.fraction:g}" if cell.attack else "clean"
    result = "refused" if cell.refused else f"{(cell.accuracy or 0.0):.3f}"
    return f"{cell.partition} {cell.strategy} {attack}: {result} ({cell.seconds:.1f} s)"


def _cell_text(cell: RobustnessCell, reference: float) -> str:
    if cell.refused:
        return "n/a"
    accuracy = cell.accuracy or 0.0
    delta = (accuracy - reference) * 100
    share = cell.attacker_share or 0.0
    return f"{accuracy * 100:.1f} ({delta:+.1f}) · {share:.1%}"


def markdown(results: list[RobustnessCell], wall_seconds: float | None = None) -> str:
    """The matrix as markdown: one table per partition, and the refused combinations."""
    run = [c for c in results if not c.refused]
    refused: dict[tuple[str, float], str] = {}
    for c in results:
        if c.refused:
            refused.setdefault((c.strategy, c.fraction), c.refused)
    lines = [
        f"{CLIENTS} clients, {ROUNDS} rounds, breast-cancer, seed 0, contribution "
        f"`{CONTRIBUTION}`, `--chain none`. Each cell: final holdout accuracy in % "
        "(its difference to the clean run in points) · the attackers' share of all rewards. "
        "The holdout has 114 examples: one example is 0.9 points.",
        "",
    ]
    for partition in PARTITIONS:
        mine = [c for c in results if c.partition == partition]
        clean = {c.strategy: c for c in mine if not c.attack}
        reference = clean["fedavg"].accuracy or 0.0
        others = ", ".join(
            f"{s} {(clean[s].accuracy or 0.0) * 100:.1f} %" for s in STRATEGIES if s != "fedavg"
        )
        lines += [
            f"### {partition}",
            "",
            f"Clean run (FedAvg, no attackers): {reference * 100:.1f} % final accuracy. "
            f"The other strategies without attackers: {others}.",
            "",
            "| strategy | attack | " + " | ".join(f"{f:.0%} attackers" for f in FRACTIONS) + " |",
            "|---|---|" + "---:|" * len(FRACTIONS),
        ]
        for strategy in STRATEGIES:
            for attack in ATTACKS:
                row = [
                    next(
                        c
                        for c in mine
                        if c.strategy == strategy and c.attack == attack and c.fraction == f
                    )
                    for f in FRACTIONS
                ]
                texts = " | ".join(_cell_text(c, reference) for c in row)
                lines.append(f"| {strategy} | {attack} | {texts} |")
        lines.append("")
    if refused:
        lines += ["Refused combinations (n/a above), with the settings error:", ""]
        lines += [f"- {name} at {f:.0%}: {why}" for (name, f), why in sorted(refused.items())]
        lines.append("")
    busy = sum(c.seconds for c in run)
    wall = f"; wall time {wall_seconds:.0f} s" if wall_seconds is not None else ""
    lines.append(
        f"{len(run)} federations run ({busy / max(1, len(run)):.1f} s each on average{wall})."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="federations run at a time")
    args = parser.parse_args()
    started = time.perf_counter()
    results = bench_robustness(jobs=args.jobs)
    print(markdown(results, time.perf_counter() - started))


if __name__ == "__main__":
    main()
