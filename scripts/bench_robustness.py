"""Benchmark: the robustness matrix, pipelines x attacks x attacker fraction x partition x size.

A *pipeline* is a strategy with its options (``nnm+cclip`` is centered clipping after
nearest-neighbour mixing; ``default`` is the candidate default pipeline, ``DEFAULT_PIPELINE``).
Every cell is one seeded federation of ``ROUNDS`` rounds, scored with leave-one-out (``loo``)
under the reward rule of fedchain.contribution.rewards, features standardized with the task's
statistics (``standardize = task``), without a ledger (``--chain none``: scores and rewards are
computed by the same code, only nothing is written on chain), except the attacks whose defence
is the ledger's (``LEDGER_ATTACKS``), which run on the embedded chain. Each attacked cell is read
against the clean FedAvg run of the same dataset, size, partition and seed: its final holdout
accuracy minus the clean run's, and the attackers' share of all the rewards paid. Free-riders'
and sybil copies' shares are flagged (their target is 1 %, the others' 2 %); for ``sybil`` the
*copies' excess* is what the sybil keys together earned beyond the mean honest participant (one
key's worth): the rule pays a group of copies as one participant, so it should be near zero.

Cells run on :class:`fedchain.simulation.inprocess.InProcessGrid` (the same ServerApp logic and
ClientApp as ``fedchain simulate``, without starting Ray for each federation), ``--jobs`` at a
time, and are appended to a results file as they finish, so a rerun resumes where it stopped.
Cells whose settings are the same federation (``fltrust`` and a ``default`` that is FLTrust)
run once.

``python scripts/bench_robustness.py [--quick | --candidates] [--jobs N] [--results FILE]
[--write]`` prints the markdown, and with ``--write`` puts the matrix's section on
docs/BENCHMARKS.md (scripts/bench_page.py); ``bench_robustness`` returns the cells and
``section`` their section for scripts/bench.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench_page import write_section

import fedchain
from fedchain.attacks import ATTACK_KINDS, HONEST
from fedchain.settings import RunSettings, SettingsError

__all__ = [
    "CANDIDATES",
    "DEFAULT_PIPELINE",
    "PIPELINES",
    "Matrix",
    "RobustnessCell",
    "attacker_shares",
    "bench_robustness",
    "code_fingerprint",
    "markdown",
    "section",
]

#: Options every cell runs with (over RunSettings' defaults).
BASE: Mapping[str, Any] = {"contribution": "loo", "standardize": "task", "chain": "none"}
ROUNDS = 10
#: Attacks whose defence is the ledger's (the dataset size each participant consented to caps the
#: num-examples of its commitments), so their cells run on the embedded chain.
LEDGER_ATTACKS = ("inflate-examples",)
#: The candidate default pipeline the ``default`` rows measure (see docs/attacks.md, "The
#: default pipeline"): FLTrust, leave-one-out, the task's standardization.
DEFAULT_PIPELINE: Mapping[str, Any] = {"strategy": "fltrust"}
#: Pipeline name -> its options over BASE.
PIPELINES: Mapping[str, Mapping[str, Any]] = {
    "fedavg": {"strategy": "fedavg"},
    "fedmedian": {"strategy": "fedmedian"},
    "fedtrimmedavg": {"strategy": "fedtrimmedavg"},
    "krum": {"strategy": "krum"},
    "multikrum": {"strategy": "multikrum"},
    "bulyan": {"strategy": "bulyan"},
    "cclip": {"strategy": "cclip"},
    "nnm+cclip": {"strategy": "cclip", "pre_aggregation": "nnm"},
    "fltrust": {"strategy": "fltrust"},
    "default": DEFAULT_PIPELINE,
    # Candidates for the default, and FedAvg as it runs today (each party's own statistics).
    "fltrust+gtg": {"strategy": "fltrust", "contribution": "gtg"},
    "fedavg-local": {"strategy": "fedavg", "standardize": "local"},
}
CANDIDATES = ("fltrust", "nnm+cclip")
#: The clean reference of every cell.
REFERENCE = "fedavg"
ATTACKS = ATTACK_KINDS  # every kind the code has gets its cell
#: Attacks whose attackers contribute nothing (or copies): their share's target is 1 %.
FREE_RIDING = ("free-rider", "noisy-free-rider", "sybil")
TARGET_DROP = 0.03
TARGET_SHARE = 0.02
TARGET_FREE_SHARE = 0.01
TARGET_CLEAN = 0.01
#: Partitions the targets apply to (dirichlet:0.1 is reported only).
TARGET_PARTITIONS = ("iid", "dirichlet:0.5")
RESULTS = Path(__file__).resolve().parents[1] / "runs" / "bench-robustness.jsonl"


@dataclass(frozen=True)
class Matrix:
    """Which cells to run: every combination of these (clean runs included)."""

    pipelines: Sequence[str]
    attacks: Sequence[str] = ATTACKS
    fractions: Sequence[float] = (0.1, 0.2, 0.3)
    partitions: Sequence[str] = ("iid", "dirichlet:0.5", "dirichlet:0.1")
    clients: Sequence[int] = (10, 20)
    datasets: Sequence[str] = ("breast-cancer", "digits")
    seeds: Sequence[int] = (0, 1, 2)
    clean_only: Sequence[str] = ()  # pipelines run without attackers only


FULL = Matrix(pipelines=tuple(p for p in PIPELINES if p not in ("fltrust+gtg", "fedavg-local")))
#: The targets' partitions at 10 and 30 %, 10 clients, both datasets: about 900 federations.
QUICK = Matrix(
    pipelines=("default", "fedavg", "multikrum", "nnm+cclip"),
    fractions=(0.1, 0.3),
    partitions=TARGET_PARTITIONS,
    clients=(10,),
)
#: The candidates for the default pipeline on the quick grid, FedAvg clean both ways.
CANDIDATE_RUN = replace(
    QUICK,
    pipelines=(REFERENCE, *CANDIDATES, "fedavg-local"),
    clean_only=(REFERENCE, "fedavg-local"),
)


@dataclass(frozen=True)
class RobustnessCell:
    """One federation of the matrix (``attack`` empty and ``fraction`` 0 for a clean run)."""

    dataset: str
    clients: int
    partition: str
    pipeline: str
    attack: str
    fraction: float
    seed: int
    accuracy: float | None = None  # final holdout accuracy; None when the cell cannot run
    attacker_share: float | None = None  # attackers' share of the run's rewards
    copies_excess: float | None = None  # sybil: the keys' share beyond one honest participant's
    unearned: float | None = None  # share of the run's budget nobody earned
    seconds: float = 0.0
    refused: str = ""  # why the settings were refused (e.g. Bulyan needs n >= 4f + 3)
    code: str = ""  # the fingerprint of the fedchain sources that ran it (code_fingerprint)

    def options(self) -> dict[str, Any]:
        """The RunSettings options of this cell (without ``out``)."""
        return {
            **BASE,
            "num_rounds": ROUNDS,
            **PIPELINES[self.pipeline],
            "dataset": self.dataset,
            "num_clients": self.clients,
            "partition": self.partition,
            "attack": f"{self.attack}:{self.fraction:g}" if self.attack else "",
            "seed": self.seed,
            **({"chain": "embedded"} if self.attack in LEDGER_ATTACKS else {}),
        }

    def key(self) -> str:
        """Identifies the federation: cells with the same options share one result."""
        return json.dumps(self.options(), sort_keys=True)

    @property
    def label(self) -> str:
        attack = f"{self.attack}:{self.fraction:g}" if self.attack else "clean"
        where = f"{self.dataset} n={self.clients} {self.partition}"
        return f"{where} {self.pipeline} {attack} s{self.seed}"


def attacker_shares(
    rewards: Mapping[str, int], roles: Mapping[str, str]
) -> tuple[float, float | None]:
    """The attackers' share of all rewards paid, and the sybil keys' excess share (or None).

    The excess is what the sybil keys earned together beyond the mean honest participant, the
    worth of one key; floored at 0.
    """
    total = sum(rewards.values())
    if not total:
        return 0.0, None
    attackers = sum(v for a, v in rewards.items() if roles.get(a, HONEST) != HONEST)
    if "sybil" not in roles.values():
        return attackers / total, None
    honest = [rewards.get(a, 0) for a, role in roles.items() if role == HONEST]
    one_key = sum(honest) / len(honest) if honest else 0.0
    return attackers / total, max(0.0, attackers - one_key) / total


def _run(cell: RobustnessCell) -> RobustnessCell:
    """Run one cell in this process (also in a worker of the pool)."""
    from fedchain.simulation.inprocess import run_inprocess

    logging.getLogger("flwr").setLevel(logging.ERROR)  # after Flower's import, which resets it
    with tempfile.TemporaryDirectory() as out:
        try:
            settings = RunSettings(out=out, **cell.options())
        except SettingsError as exc:
            return replace(cell, refused=str(exc))
        started = time.perf_counter()
        record = run_inprocess(settings)
        seconds = time.perf_counter() - started
    rewards: dict[str, int] = {}
    for report in record.reports:
        for p in report.participants:
            if p.accepted:
                rewards[p.address] = rewards.get(p.address, 0) + p.reward
    share, excess = attacker_shares(rewards, record.roles)
    budget = sum(r.budget for r in record.reports)
    final = next((r.accuracy for r in reversed(record.reports) if r.accuracy is not None), None)
    return replace(
        cell,
        accuracy=final,
        attacker_share=share,
        copies_excess=excess,
        unearned=sum(r.unearned for r in record.reports) / budget if budget else None,
        seconds=seconds,
    )


def cells(matrix: Matrix) -> list[RobustnessCell]:
    """Every cell of ``matrix``: the clean runs first, then the attacks."""
    grid = [
        (d, n, p, s)
        for d in matrix.datasets
        for n in matrix.clients
        for p in matrix.partitions
        for s in matrix.seeds
    ]
    clean = [
        RobustnessCell(d, n, p, name, "", 0.0, s)
        for d, n, p, s in grid
        for name in matrix.pipelines
    ]
    attacked = [
        RobustnessCell(d, n, p, name, a, f, s)
        for d, n, p, s in grid
        for name in matrix.pipelines
        if name not in matrix.clean_only
        for a in matrix.attacks
        for f in matrix.fractions
    ]
    return clean + attacked


def code_fingerprint() -> str:
    """SHA-256 over the fedchain package's Python sources: a cached cell counts only if equal."""
    root = Path(fedchain.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _load(path: Path | None, code: str) -> dict[str, RobustnessCell]:
    """The results file's cells by key, those run by the same code (a line cut short by an
    interruption is skipped)."""
    found: dict[str, RobustnessCell] = {}
    if path is None or not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            cell = RobustnessCell(**json.loads(line))
        except (ValueError, TypeError, KeyError):
            continue
        if cell.code == code:
            found[cell.key()] = cell
    return found


def bench_robustness(
    matrix: Matrix = FULL, jobs: int = 2, results: Path | None = RESULTS, progress: bool = True
) -> list[RobustnessCell]:
    """Run the cells of ``matrix`` not yet in ``results``, ``jobs`` at a time; return them all.

    Each finished cell is appended to ``results`` at once, so an interrupted run resumes; a
    cell cached by other fedchain sources runs again.
    """
    code = code_fingerprint()
    todo = cells(matrix)
    done = _load(results, code)
    pending = [
        replace(c, code=code) for c in {c.key(): c for c in todo if c.key() not in done}.values()
    ]
    if progress:
        print(f"  {len(todo)} cells, {len(pending)} to run ({results})", flush=True)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
    for i, cell in enumerate(_execute(pending, jobs), 1):
        done[cell.key()] = cell
        if results is not None:
            with results.open("a") as f:
                f.write(json.dumps(asdict(cell)) + "\n")
        if progress:
            print(f"  {i}/{len(pending)} {cell.label}: {_outcome(cell)}", flush=True)
    return [replace(done[c.key()], pipeline=c.pipeline) for c in todo]


def _execute(pending: list[RobustnessCell], jobs: int) -> Iterable[RobustnessCell]:
    """Run ``pending`` in this process (``jobs`` <= 1) or a pool; yield cells as they finish."""
    if jobs <= 1:
        yield from map(_run, pending)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        queue = iter(pending)
        running: set[Future[RobustnessCell]] = set()
        for cell in queue:  # keep the pool fed without submitting thousands at once
            running.add(pool.submit(_run, cell))
            if len(running) >= 2 * jobs:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        for future in running:
            yield future.result()


def _outcome(cell: RobustnessCell) -> str:
    if cell.refused:
        return "refused"
    share = cell.attacker_share or 0.0
    return f"{(cell.accuracy or 0.0):.3f} share {share:.3f} ({cell.seconds:.1f} s)"


# ---------------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class Summary:
    """One row of the matrix over seeds: accuracy against the clean FedAvg run, shares."""

    drop_mean: float  # mean over seeds of accuracy - clean FedAvg's (points, negative = lost)
    drop_worst: float  # the lowest of them
    share_mean: float
    share_worst: float
    excess_worst: float | None  # sybil copies' excess, worst seed
    accuracy_mean: float
    accuracy_worst: float


def _summaries(results: list[RobustnessCell]) -> dict[tuple[Any, ...], Summary]:
    """Cells grouped over seeds: (dataset, clients, partition, pipeline, attack, fraction)."""
    reference = {
        (c.dataset, c.clients, c.partition, c.seed): c.accuracy or 0.0
        for c in results
        if c.pipeline == REFERENCE and not c.attack and not c.refused
    }
    groups: dict[tuple[Any, ...], list[RobustnessCell]] = {}
    for c in results:
        if not c.refused:
            key = (c.dataset, c.clients, c.partition, c.pipeline, c.attack, c.fraction)
            groups.setdefault(key, []).append(c)
    out = {}
    for key, group in groups.items():
        drops = [
            ((c.accuracy or 0.0) - reference[c.dataset, c.clients, c.partition, c.seed]) * 100
            for c in group
        ]
        shares = [c.attacker_share or 0.0 for c in group]
        excess = [c.copies_excess for c in group if c.copies_excess is not None]
        accuracies = [(c.accuracy or 0.0) * 100 for c in group]
        out[key] = Summary(
            statistics.fmean(drops),
            min(drops),
            statistics.fmean(shares),
            max(shares),
            max(excess) if excess else None,
            statistics.fmean(accuracies),
            min(accuracies),
        )
    return out


def _cell_text(s: Summary | None, attack: str) -> str:
    if s is None:
        return "n/a"
    share = f"{s.share_worst:.1%}"
    if attack == "sybil" and s.excess_worst is not None:
        share += f" (excess {s.excess_worst:.1%})"
    return f"{s.drop_mean:+.1f} / {s.drop_worst:+.1f} · {share}"


def misses(results: list[RobustnessCell], pipeline: str = "default") -> list[str]:
    """The targets ``pipeline`` misses on iid and dirichlet:0.5 at most 30 % attackers."""
    found = []
    for key, s in sorted(_summaries(results).items(), key=lambda kv: str(kv[0])):
        dataset, clients, partition, name, attack, fraction = key
        if name != pipeline or partition not in TARGET_PARTITIONS:
            continue
        where = f"{dataset}, {clients} clients, {partition}, {attack or 'clean'}"
        where += f" {fraction:.0%}" if attack else ""
        if not attack:
            if s.drop_mean < -TARGET_CLEAN * 100:
                found.append(f"{where}: clean accuracy {s.drop_mean:+.1f} points (mean)")
            continue
        if s.drop_worst < -TARGET_DROP * 100:
            found.append(f"{where}: accuracy {s.drop_worst:+.1f} points (worst seed)")
        if attack == "sybil" and s.excess_worst is not None:
            share, what = s.excess_worst, "the sybil keys' excess over the mean honest participant"
        else:
            share, what = s.share_worst, "attackers' share"
        limit = TARGET_FREE_SHARE if attack in FREE_RIDING else TARGET_SHARE
        if share > limit:
            found.append(f"{where}: {what} {share:.1%} (worst seed; target {limit:.0%})")
    return found


def markdown(
    results: list[RobustnessCell], wall_seconds: float | None = None, matrix: Matrix = FULL
) -> str:
    """The matrix as markdown: one table per dataset, size and partition; the default's misses."""
    summaries = _summaries(results)
    lines = [
        f"{ROUNDS} rounds, seeds {', '.join(map(str, matrix.seeds))}, contribution `loo` under the "
        "reward rule, `standardize = task`, `--chain none` (`inflate-examples` on the embedded "
        "chain, whose consented dataset sizes are its defence). Each cell: accuracy minus the "
        "clean FedAvg run's in points, mean / worst over the seeds · the attackers' share of all "
        "rewards paid, worst seed (for `sybil`, in brackets, the sybil keys' excess over one "
        "honest participant's share). `default` is "
        + ", ".join(f"`{k} = {v}`" for k, v in DEFAULT_PIPELINE.items())
        + ".",
        "",
    ]
    for dataset in matrix.datasets:
        for clients in matrix.clients:
            for partition in matrix.partitions:
                lines += _section(summaries, matrix, dataset, clients, partition)
    for name in ("default", *CANDIDATES):
        if name in matrix.pipelines and name not in matrix.clean_only:
            lines += [f"### `{name}` against the targets (iid and dirichlet:0.5)", ""]
            lines += [f"- {m}" for m in misses(results, name)] or ["Every target holds."]
            lines.append("")
    refused = sorted({(c.pipeline, c.clients, c.fraction, c.refused) for c in results if c.refused})
    if refused:
        lines += ["Refused combinations (n/a above), with the settings error:", ""]
        lines += [f"- {p}, {n} clients, {f:.0%}: {why}" for p, n, f, why in refused]
        lines.append("")
    run = [c for c in results if not c.refused]
    busy = sum(c.seconds for c in run)
    wall = f"; wall time {wall_seconds:.0f} s" if wall_seconds is not None else ""
    lines.append(f"{len(run)} cells ({busy / max(1, len(run)):.1f} s each on average{wall}).")
    return "\n".join(lines)


HEADING = "## Robustness: attacks against strategies (`python scripts/bench_robustness.py`)"


def _matrix_text(matrix: Matrix) -> str:
    """What ``matrix`` runs, in words."""
    fractions = "/".join(f"{f:.0%}".rstrip("%") for f in matrix.fractions)
    return (
        f"{len(matrix.pipelines)} pipelines ({', '.join(f'`{p}`' for p in matrix.pipelines)}) x "
        f"the {len(matrix.attacks)} attacks x {fractions} % attackers x "
        f"{' / '.join(matrix.partitions)} x {' and '.join(map(str, matrix.clients))} clients x "
        f"{' and '.join(matrix.datasets)}, seeds {', '.join(map(str, matrix.seeds))}"
    )


def section(
    results: list[RobustnessCell], wall_seconds: float | None = None, matrix: Matrix = FULL
) -> str:
    """The benchmark page's section: what ran, the targets, how to read it, the matrix."""
    subset = (
        ""
        if matrix == FULL
        else (
            " This is a subset of `make bench`'s matrix (" + _matrix_text(FULL) + "), run with "
            "`python scripts/bench_robustness.py --quick --write`."
        )
    )
    return f"""{HEADING}

{_matrix_text(matrix)} (README: "Attacks and robust aggregation"; docs/attacks.md, "The default
pipeline").{subset} Every attacked cell is read against the clean FedAvg run of the same
dataset, size, partition and seed. The robust strategies tolerate the run's attackers
(`byzantine` derived from the attack); a rule that cannot (Bulyan needs n >= 4f + 3) is refused
and shown n/a. The cells are cached in `runs/bench-robustness.jsonl` as they finish with a
fingerprint of the fedchain sources that ran them, so an interrupted run resumes the matrix and
a cell run by other code runs again.

Targets (issue 15) for the default pipeline, on IID and dirichlet:0.5 with at most 30 %
attackers, worst of the three seeds: accuracy at least clean FedAvg's minus 3 points; attackers
together at most 2 % of the rewards, free-riders and sybil copies at most 1 %; without attackers
within 1 point of clean FedAvg. dirichlet:0.1 is reported, not targeted.
tests/e2e/test_robust_targets.py checks one cell per attack kind.

Read with care: the breast-cancer holdout has 114 examples (one example is 0.9 points), the
digits holdout 360. FLTrust trains its server update on the same holdout that evaluates every
model and scores every contribution, which flatters it against the rules that never see it.

{markdown(results, wall_seconds, matrix)}
"""


def _section(
    summaries: dict[tuple[Any, ...], Summary],
    matrix: Matrix,
    dataset: str,
    clients: int,
    partition: str,
) -> list[str]:
    where = (dataset, clients, partition)
    clean = {
        name: summaries[(*where, name, "", 0.0)]
        for name in matrix.pipelines
        if (*where, name, "", 0.0) in summaries
    }
    if REFERENCE not in clean:
        return []
    ref = clean[REFERENCE]
    others = ", ".join(
        f"{name} {s.drop_mean:+.1f} / {s.drop_worst:+.1f}"
        for name, s in clean.items()
        if name != REFERENCE
    )
    lines = [
        f"### {dataset}, {clients} clients, {partition}",
        "",
        f"Clean FedAvg: {ref.accuracy_mean:.1f} % mean, {ref.accuracy_worst:.1f} % worst. "
        f"Without attackers, points against it (mean / worst): {others}.",
        "",
        "| pipeline | attack | " + " | ".join(f"{f:.0%}" for f in matrix.fractions) + " |",
        "|---|---|" + "---:|" * len(matrix.fractions),
    ]
    for name in matrix.pipelines:
        if name in matrix.clean_only:
            continue
        for attack in matrix.attacks:
            texts = [
                _cell_text(summaries.get((*where, name, attack, f)), attack)
                for f in matrix.fractions
            ]
            lines.append(f"| {name} | {attack} | " + " | ".join(texts) + " |")
    return [*lines, ""]


def candidates_markdown(results: list[RobustnessCell], names: Sequence[str]) -> str:
    """Per pipeline: clean accuracy against FedAvg, and per attack the worst drop and share.

    Over every dataset, size and fraction of ``results`` on iid and dirichlet:0.5.
    """
    summaries = _summaries(results)
    lines = [
        "| pipeline | " + " | ".join(f"clean {p} (mean / worst)" for p in TARGET_PARTITIONS) + " |",
        "|---|" + "---:|" * len(TARGET_PARTITIONS),
    ]
    for name in names:
        texts = []
        for partition in TARGET_PARTITIONS:
            mine = [
                s for k, s in summaries.items() if k[2] == partition and k[3] == name and not k[4]
            ]
            texts.append(
                f"{min(s.drop_mean for s in mine):+.1f} / {min(s.drop_worst for s in mine):+.1f}"
                if mine
                else "n/a"
            )
        lines.append(f"| {name} | " + " | ".join(texts) + " |")
    attacked = [n for n in names if any(k[3] == n and k[4] for k in summaries)]
    lines += [
        "",
        "Per attack, worst over partitions, fractions and seeds: accuracy points against clean "
        "FedAvg · attackers' share of the rewards (sybil: the keys' excess over one participant).",
        "",
        "| attack | " + " | ".join(attacked) + " |",
        "|---|" + "---:|" * len(attacked),
    ]
    for attack in ATTACKS:
        texts = []
        for name in attacked:
            mine = [
                s
                for k, s in summaries.items()
                if k[2] in TARGET_PARTITIONS and k[3] == name and k[4] == attack
            ]
            if not mine:
                texts.append("n/a")
                continue
            share = max(
                s.excess_worst
                if attack == "sybil" and s.excess_worst is not None
                else s.share_worst
                for s in mine
            )
            texts.append(f"{min(s.drop_worst for s in mine):+.1f} · {share:.1%}")
        lines.append(f"| {attack} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="the quick subset (module QUICK)")
    which.add_argument(
        "--candidates", action="store_true", help="the default's candidates on the quick grid"
    )
    parser.add_argument("--jobs", type=int, default=2, help="federations run at a time")
    parser.add_argument("--results", type=Path, default=RESULTS, help="cells cached here")
    parser.add_argument("--write", action="store_true", help="put the matrix on docs/BENCHMARKS.md")
    args = parser.parse_args()
    matrix = QUICK if args.quick else CANDIDATE_RUN if args.candidates else FULL
    started = time.perf_counter()
    results = bench_robustness(matrix, jobs=args.jobs, results=args.results)
    print(markdown(results, time.perf_counter() - started, matrix))
    if args.write:
        write_section(HEADING, section(results, time.perf_counter() - started, matrix))
    print()
    print(candidates_markdown(results, [p for p in matrix.pipelines if p != REFERENCE]))


if __name__ == "__main__":
    main()
