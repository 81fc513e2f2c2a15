"""Scale: wall time per round, the ledger's overhead, peak memory, at 10, 100 and 1,000 clients;
and the latency of one transaction on the embedded chain against anvil.

Every size runs the same federation three ways (``--chain none``, ``embedded``, ``anvil``),
alternating (see bench_alternation.py) so the machine's load hits them alike; the best of the
repeats counts. Run alone:

    python scripts/bench_scale.py [--repeats N] [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench_alternation import in_turn, settle

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import AnvilChain, EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.settings import RunSettings
from fedchain.simulation.flower_engine import simulate

CHAINS = ("none", "embedded", "anvil")
#: (clients, fraction sampled per round): the issue's 100 at 1.0 and 1,000 at 0.05.
SIZES = ((10, 1.0), (100, 1.0), (1000, 0.05))
DATASET = "synthetic"  # 20,000 generated rows: enough for 1,000 clients, the same at every size
TARGET_ANVIL = 1.10


@dataclass
class RunFigures:
    """The best of the repeats of one (size, chain)."""

    wall_s: float = float("inf")
    round_s: float = float("inf")  # mean of the rounds after the first (steady state)
    first_round_s: float = float("inf")
    peak_rss_bytes: int = 0  # the largest of the repeats


@dataclass
class ScaleFigures:
    rounds: int
    repeats: int
    runs: dict[tuple[int, str], RunFigures] = field(default_factory=dict)
    fractions: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0

    def ratio(self, clients: int, chain: str, what: str = "wall_s") -> float:
        value: float = getattr(self.runs[(clients, chain)], what)
        base: float = getattr(self.runs[(clients, "none")], what)
        return value / base


def bench_scale(
    rounds: int = 5,
    repeats: int = 6,
    sizes: tuple[tuple[int, float], ...] = SIZES,
    on_repeat: Callable[[ScaleFigures], None] | None = None,
) -> ScaleFigures:
    figures = ScaleFigures(rounds, 0)
    start = time.perf_counter()
    for repeat in range(repeats):
        for clients, fraction in sizes:
            figures.fractions[clients] = fraction
            for chain in in_turn(CHAINS, repeat):
                best = figures.runs.setdefault((clients, chain), RunFigures())
                settle()
                with tempfile.TemporaryDirectory() as out:
                    settings = RunSettings(
                        num_rounds=rounds,
                        num_clients=clients,
                        fraction_train=fraction,
                        dataset=DATASET,
                        chain=chain,
                        out=out,
                    )
                    began = time.perf_counter()
                    record = simulate(settings)
                    wall = time.perf_counter() - began
                seconds = [r.seconds for r in record.reports]
                best.wall_s = min(best.wall_s, wall)
                best.first_round_s = min(best.first_round_s, seconds[0])
                best.round_s = min(best.round_s, statistics.fmean(seconds[1:] or seconds))
                best.peak_rss_bytes = max(best.peak_rss_bytes, record.peak_rss_bytes or 0)
                print(
                    f"  {clients} clients, {chain}: {wall:.1f} s, rounds {seconds}, "
                    f"peak {(record.peak_rss_bytes or 0) / 2**20:.0f} MiB",
                    flush=True,
                )
        figures.repeats += 1
        figures.seconds = time.perf_counter() - start
        if on_repeat is not None:
            on_repeat(figures)  # every size measured once more: the figures so far
    return figures


@dataclass(frozen=True)
class LatencyFigures:
    transactions: int
    median_s: dict[str, float]
    p90_s: dict[str, float]

    def ratio(self) -> float:
        return self.median_s["embedded"] / self.median_s["anvil"]


def bench_latency(transactions: int = 40) -> LatencyFigures:
    """Seconds from sending a registerOrganisation transaction to its receipt, alternating
    chains; each registers a new participant, so every transaction does the same work."""
    coordinator = devnet_account(0)  # DEVNET TEST key
    embedded = EmbeddedChain()
    anvil = AnvilChain().start()
    try:
        gateways: dict[str, LedgerGateway] = {
            "embedded": deploy(embedded.w3, coordinator),
            "anvil": deploy(anvil.w3, coordinator),
        }
        times: dict[str, list[float]] = {name: [] for name in gateways}
        for i in range(transactions):
            participant = devnet_account(1 + i).address  # DEVNET TEST keys
            org = hashlib.sha256(f"organisation {i}".encode()).digest()
            for name, gateway in gateways.items():
                began = time.perf_counter()
                gateway.register_organisation(participant, f"Organisation {i}", org)
                times[name].append(time.perf_counter() - began)
    finally:
        anvil.close()
        embedded.close()
    return LatencyFigures(
        transactions,
        {name: statistics.median(t) for name, t in times.items()},
        {name: statistics.quantiles(t, n=10)[-1] for name, t in times.items()},
    )


def markdown(figures: ScaleFigures) -> str:
    lines = [
        f"Each size runs the same federation ({DATASET} dataset, dirichlet:0.5, seed 0, "
        f"{figures.rounds} rounds) with no ledger, on the embedded chain and on anvil, "
        "alternating (the order rotated each repeat, each run started on a quiet machine); "
        f"best of {figures.repeats} run(s) each "
        f"({figures.seconds / 60:.0f} minutes in all). *Wall* is the whole `simulate` call: "
        "starting Ray and its workers, deploying, registering every participant (in batches of "
        "200), the rounds, writing the artifacts. *Round* is the mean of the rounds after the "
        "first, from sending the model to the aggregated, evaluated global model (the commit "
        "itself is queued; the next round's clients wait for it on chain). Peak memory is the "
        "resident memory of the whole process tree (server, Ray, its workers, anvil), summed "
        "over processes, the largest of the repeats.",
        "",
        "| clients | sampled per round | chain | wall (s) | wall / none | round 1 (s) "
        "| later rounds (s) | round / none | peak memory (MiB) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for clients, fraction in sorted(figures.fractions.items()):
        for chain in CHAINS:
            run = figures.runs[(clients, chain)]
            wall_ratio = figures.ratio(clients, chain)
            round_ratio = figures.ratio(clients, chain, "round_s")
            mark = ""
            if chain == "anvil":
                mark = " ✓" if wall_ratio <= TARGET_ANVIL else " ✗"
            lines.append(
                f"| {clients:,} | {max(2, int(clients * fraction))} | {chain} "
                f"| {run.wall_s:.1f} | {wall_ratio:.3f}{mark} | {run.first_round_s:.2f} "
                f"| {run.round_s:.2f} | {round_ratio:.2f} | {run.peak_rss_bytes / 2**20:,.0f} |"
            )
    lines += [
        "",
        f"Target: wall / none at most {TARGET_ANVIL:.2f} with anvil at every size (✓ met, ✗ not).",
    ]
    return "\n".join(lines)


def latency_markdown(figures: LatencyFigures) -> str:
    lines = [
        f"{figures.transactions} `registerOrganisation` transactions on each chain, alternating, "
        "each from sending to its receipt (through the same `LedgerGateway`):",
        "",
        "| chain | median (ms) | 90th percentile (ms) | transactions / s (from the median) |",
        "|---|---:|---:|---:|",
    ]
    for name in ("embedded", "anvil"):
        median = figures.median_s[name]
        lines.append(
            f"| {name} | {median * 1000:.1f} | {figures.p90_s[name] * 1000:.1f} "
            f"| {1 / median:.0f} |"
        )
    lines += ["", f"Embedded / anvil median latency: **{figures.ratio():.1f}**."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(latency_markdown(bench_latency()), flush=True)

    def show(figures: ScaleFigures) -> None:
        print(markdown(figures), flush=True)

    bench_scale(rounds=args.rounds, repeats=args.repeats, on_repeat=show)


if __name__ == "__main__":
    main()
