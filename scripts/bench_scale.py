"""Scale: wall time per round, the ledger's overhead, peak memory, at 10, 100 and 1,000 clients;
and the latency of one transaction on the embedded chain against anvil.

Every size runs the same federation three ways (``--chain none``, ``embedded``, ``anvil``),
alternating (see bench_alternation.py) so the machine's load hits them alike; the best of the
repeats counts. Run alone:

    python scripts/bench_scale.py [--repeats N] [--rounds N] [--write]

With ``--write`` the two sections of docs/BENCHMARKS.md are rewritten (after every repeat, so
an interrupted run leaves the figures so far).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench_alternation import in_turn, settle
from bench_page import write_section

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
TARGET = 1.10  # wall / none, for the embedded chain and anvil (issue 18)
SCALE_HEADING = "## Scale: 10, 100 and 1,000 clients (`python scripts/bench_scale.py`)"
LATENCY_HEADING = "## Transaction latency: embedded against anvil (`python scripts/bench_scale.py`)"
#: The ledger's work measured on the embedded chain, as (label, gateway methods).
LEDGER_WORK = (
    ("registering organisations", ("register_organisations",)),
    ("relaying consents (joins)", ("join_task_for",)),
    ("commits (one per round)", ("commit_round",)),
    ("membership checks (one per round)", ("memberships",)),
    ("reading the events back", ("events",)),
)


@dataclass
class RunFigures:
    """The best of the repeats of one (size, chain)."""

    wall_s: float = float("inf")
    round_s: float = float("inf")  # mean of the rounds after the first (steady state)
    first_round_s: float = float("inf")
    peak_rss_bytes: int = 0  # the largest of the repeats
    #: Embedded only: CPU seconds of the ledger's work by kind (LEDGER_WORK), least of repeats.
    ledger_cpu_s: dict[str, float] = field(default_factory=dict)


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
                    cpu: dict[str, float] = {}
                    with ledger_cpu(cpu) if chain == "embedded" else contextlib.nullcontext():
                        began = time.perf_counter()
                        record = simulate(settings)
                        wall = time.perf_counter() - began
                    for label, seconds_cpu in cpu.items():
                        held = best.ledger_cpu_s.get(label, float("inf"))
                        best.ledger_cpu_s[label] = min(held, seconds_cpu)
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


@contextlib.contextmanager
def ledger_cpu(into: dict[str, float]) -> Iterator[None]:
    """Add the CPU seconds of each kind of the ledger's work (LEDGER_WORK) to ``into``: the
    thread's own CPU time within the gateway's method, whichever thread calls it (the write
    queue, the server's round loop)."""
    lock = threading.Lock()
    saved: dict[str, Any] = {}
    for label, methods in LEDGER_WORK:
        into[label] = 0.0
        for name in methods:
            real = saved[name] = getattr(LedgerGateway, name)

            @functools.wraps(real)
            def timed(*args: Any, _real: Any = real, _label: str = label, **kwargs: Any) -> Any:
                began = time.thread_time()
                try:
                    return _real(*args, **kwargs)
                finally:
                    with lock:
                        into[_label] += time.thread_time() - began

            setattr(LedgerGateway, name, timed)
    try:
        yield
    finally:
        for name, real in saved.items():
            setattr(LedgerGateway, name, real)


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
            if chain != "none":
                mark = " ✓" if wall_ratio <= TARGET else " ✗"
            lines.append(
                f"| {clients:,} | {max(2, int(clients * fraction))} | {chain} "
                f"| {run.wall_s:.1f} | {wall_ratio:.3f}{mark} | {run.first_round_s:.2f} "
                f"| {run.round_s:.2f} | {round_ratio:.2f} | {run.peak_rss_bytes / 2**20:,.0f} |"
            )
    lines += [
        "",
        f"Target: wall / none at most {TARGET:.2f} on the embedded chain and on anvil at every "
        "size (✓ met, ✗ not).",
        "",
        ledger_cpu_markdown(figures),
        "",
        NOTES,
    ]
    return "\n".join(lines)


def ledger_cpu_markdown(figures: ScaleFigures) -> str:
    """Where the embedded chain's time goes: CPU seconds of each kind of the ledger's work."""
    sizes = sorted(figures.fractions)
    lines = [
        "Where the embedded chain's time goes: CPU seconds of the ledger's work in the "
        "simulation's process (py-evm executing, and the Python around it), by kind, the least "
        "of the repeats; beside it, what the embedded run's wall time exceeds the run without "
        "a ledger by:",
        "",
        "| work | " + " | ".join(f"{c:,} clients" for c in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for label, _ in LEDGER_WORK:
        cells = [f"{figures.runs[(c, 'embedded')].ledger_cpu_s.get(label, 0.0):.2f}" for c in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    totals = [sum(figures.runs[(c, "embedded")].ledger_cpu_s.values()) for c in sizes]
    lines.append("| **all of it** | " + " | ".join(f"**{t:.2f}**" for t in totals) + " |")
    excess = [
        figures.runs[(c, "embedded")].wall_s - figures.runs[(c, "none")].wall_s for c in sizes
    ]
    lines.append("| wall: embedded - none | " + " | ".join(f"{e:.2f}" for e in excess) + " |")
    return "\n".join(lines)


NOTES = """What the embedded chain does now that it did not (issue 18): keccak runs on safe-pysha3's
C code rather than pycryptodome's (2 against 17 us a hash; py-evm, the trie and eth-utils all
hash through it); a state read asked again at the same head block (the round's clients polling the
task) is answered from memory; the round's membership check reads the ledger's storage words
(located with the compiler's storage layout) rather than executing `getMembership` once per
member (18 ms against 204 ms for 100 members); receipts and the events read back at the end
come from py-evm's receipts directly, not through eth-tester's normalisers and web3's
formatters (half the time); and on a ledger the simulation just deployed and a task it just
created, registering organisations and relaying consents no longer first reads 200 records
per batch to find those already done (none can be).

What is left is py-evm executing the contract, in Python. Registering 1,000 organisations and
relaying their consents is most of the 1,000-client column; it runs while Ray starts (about 9 s),
so it costs only the CPU it takes from that start-up. Each round's commit is on the round's
critical path (the next round's clients wait for it): a 50-participant commit executes about
34,000 EVM instructions (the table's commits row is five of them at 1,000 clients, five of
100 participants at 100), so at 100 clients the commits are most of the embedded chain's
excess over anvil, which executes the same transactions natively, in another process, on
the other core. The embedded chain executes in the simulation's own process, competing for
the GIL and the two cores with the server's round. Serving it from a child process (as anvil
is) would take registration's CPU off the start-up, but not the commits: the next round waits
for each commit whichever process executes it, and there py-evm's Python interpreter is the
cost. The lever for the 100- and 1,000-client columns is a native EVM behind the same gateway:
`pyrevm` (Python bindings to Rust's revm; 0.3.7 has a CPython 3.11 wheel) executes message
calls and deployments on an in-memory state and returns each call's logs, but has no signed
transactions, blocks, receipts or log filters, the JSON-RPC surface the ledger's gateway uses,
so it would need a chain built around it; not done here.

Where the ledger's time goes in a round: the round's clients cannot start training before the
chain holds the previous round's commit and this round's opening, so that write is on every
round's critical path (the rest of the ledger's work, signing and checking commitments, is a
few milliseconds per client). It is one transaction: the commit opens the next round in the same
call (OpenZeppelin `Multicall`). On a node, its gas limit comes from one execution of the call
(`eth_createAccessList`) rather than `eth_estimateGas`, which searches over several executions
(60 ms against 10 ms for a 50-participant commit on anvil); its calldata is encoded by eth_abi
directly rather than through web3's argument normalisers (2.6 ms against 23 ms); its receipts
are read as the node sends them rather than through web3's formatters (2.5 ms against 18 ms for
a 100-participant commit's 200 logs, read twice per commit); and clients poll the chain at a
quarter of the time they have waited. Round 1 and the wall times include starting Ray and its
workers (about 9 s here, and most of the noise between repeats: a run's wall time varies by up
to a fifth between repeats on this shared machine, which is why the best of several counts)."""


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
    parser.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md sections")
    args = parser.parse_args()
    latency = latency_markdown(bench_latency())
    print(latency, flush=True)
    if args.write:
        write_section(LATENCY_HEADING, f"{LATENCY_HEADING}\n\n{latency}\n")

    def show(figures: ScaleFigures) -> None:
        text = markdown(figures)
        print(text, flush=True)
        if args.write:
            write_section(SCALE_HEADING, f"{SCALE_HEADING}\n\n{text}\n")

    bench_scale(rounds=args.rounds, repeats=args.repeats, on_repeat=show)


if __name__ == "__main__":
    main()
