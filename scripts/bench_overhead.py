"""The ledger's overhead: `simulate` wall time with a chain against the same run with none.

Same settings and seed for every run; runs alternate (none, embedded, anvil, then rotated one
further each repeat), each on a quiet machine, so the machine's load hits them alike; the best
of the repeats counts.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

from bench_alternation import in_turn, settle

from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate

CHAINS = ("none", "embedded", "anvil")


@dataclass(frozen=True)
class OverheadFigures:
    seconds: dict[str, float]  # best wall time per chain kind
    rounds: int
    clients: int
    repeats: int

    def ratio(self, chain: str) -> float:
        return self.seconds[chain] / self.seconds["none"]


def bench_overhead(rounds: int = 10, clients: int = 10, repeats: int = 5) -> OverheadFigures:
    best = dict.fromkeys(CHAINS, float("inf"))
    for repeat in range(repeats):
        for chain in in_turn(CHAINS, repeat):
            settle()
            with tempfile.TemporaryDirectory() as out:
                settings = RunSettings(num_rounds=rounds, num_clients=clients, chain=chain, out=out)
                start = time.perf_counter()
                simulate(settings)
                best[chain] = min(best[chain], time.perf_counter() - start)
    return OverheadFigures(best, rounds, clients, repeats)


def markdown(figures: OverheadFigures) -> str:
    lines = [
        f"`fedchain simulate` defaults ({figures.clients} clients, {figures.rounds} rounds, "
        f"breast-cancer, dirichlet:0.5, seed 0), best of {figures.repeats} alternating runs:",
        "",
        "| chain | wall time (s) | ratio to --chain none | target |",
        "|---|---:|---:|---:|",
    ]
    targets = {"none": "", "embedded": "<= 1.15", "anvil": "<= 1.05"}
    for chain in CHAINS:
        lines.append(
            f"| {chain} | {figures.seconds[chain]:.1f} | {figures.ratio(chain):.3f} | "
            f"{targets[chain]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(bench_overhead()))
