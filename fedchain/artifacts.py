"""A run's artifacts: summary.json, ledger.json (every event read back), accuracy.png.

The model store (``store/``) and ``final_model.safetensors`` are written during the run.
summary.json's schema is documented in the README.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedchain.chain.gateway import LedgerEvent
from fedchain.settings import RunSettings
from fedchain.strategy import RoundReport
from fedchain.task import TaskSpec

__all__ = ["RunRecord", "summary", "write_artifacts", "write_summary"]

SCHEMA_VERSION = 1


@dataclass
class RunRecord:
    """Everything a run produced, in memory."""

    settings: RunSettings
    spec: TaskSpec
    chain: dict[str, Any]
    task_id: int | None
    reports: list[RoundReport]
    final_model_hash: str
    events: list[LedgerEvent] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)  # address -> honest or attack kind
    peak_rss_bytes: int | None = None  # of the process tree, server + Ray (fedchain.memory)
    peak_rss_processes: int | None = None  # processes in the tree at that peak


def summary(record: RunRecord) -> dict[str, Any]:
    """The summary.json document."""
    rewards: dict[str, int] = defaultdict(int)
    rounds = []
    for report in record.reports:
        participants = []
        for p in report.participants:
            entry = asdict(p)
            entry["reward"] = str(p.reward)  # token amounts exceed JSON's safe integers
            entry["role"] = record.roles.get(p.address, "honest")
            participants.append(entry)
            if p.accepted and p.address:
                rewards[p.address] += p.reward
        rounds.append(
            {
                "round": report.round,
                "parent_model_hash": report.parent_model_hash,
                "global_model_hash": report.global_model_hash or None,
                "committed": report.committed,
                "failed_reason": report.failed_reason or None,
                "budget": str(report.budget),
                "contribution_method": report.contribution_method,
                "scoring_seconds": round(report.scoring_seconds, 4),
                "utility_evaluations": report.evaluations,
                "accuracy": report.accuracy,
                "loss": report.loss,
                "gas_used": report.gas_used,
                "tx_hash": report.tx_hash or None,
                "seconds": round(report.seconds, 4),
                "accepted": sum(p.accepted for p in report.participants),
                "rejected": sum(not p.accepted and not p.absent for p in report.participants),
                "absent": sum(p.absent for p in report.participants),
                "participants": participants,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "chain": record.chain,
        "task_id": record.task_id,
        "spec_hash": "0x" + record.spec.spec_hash().hex(),
        "spec": json.loads(record.spec.canonical()),
        "settings": record.settings.to_run_config(),
        "rounds": rounds,
        "rewards": {address: str(amount) for address, amount in sorted(rewards.items())},
        "final_model_hash": record.final_model_hash,
        "peak_rss_bytes": record.peak_rss_bytes,
        "peak_rss_processes": record.peak_rss_processes,
    }


def _events(record: RunRecord) -> list[dict[str, Any]]:
    return [
        {
            "block": e.block_number,
            "tx": e.tx_hash,
            "log_index": e.log_index,
            "event": e.name,
            "args": {
                k: str(v) if isinstance(v, int) and abs(v) > 2**53 else v for k, v in e.args.items()
            },
        }
        for e in record.events
    ]


def _write_json(path: Path, document: Any) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


def plot_accuracy(record: RunRecord, path: Path) -> None:
    """Accuracy and loss on the holdout, per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    done = [r for r in record.reports if r.accuracy is not None and r.loss is not None]
    rounds = [r.round for r in done]
    accuracy = [float(r.accuracy or 0.0) for r in done]
    loss = [float(r.loss or 0.0) for r in done]
    fig, ax_acc = plt.subplots(figsize=(7, 4), dpi=110)
    ax_acc.plot(rounds, accuracy, marker="o", color="tab:blue", label="accuracy")
    ax_acc.set_xlabel("round")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set_ylabel("holdout accuracy", color="tab:blue")
    ax_loss = ax_acc.twinx()
    ax_loss.plot(rounds, loss, marker="s", color="tab:red", label="loss")
    ax_loss.set_ylabel("holdout loss", color="tab:red")
    ax_acc.set_title(f"{record.spec.dataset} · {record.spec.model} · {record.spec.strategy}")
    ax_acc.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_rewards(record: RunRecord, path: Path) -> None:
    """Each participant's cumulative share of the rewards attributed so far, per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    totals: dict[str, int] = defaultdict(int)
    shares: dict[str, list[float]] = defaultdict(list)
    rounds = []
    for report in record.reports:
        for p in report.participants:
            if p.accepted and p.address:
                totals[p.address] += p.reward
        everything = sum(totals.values()) or 1
        rounds.append(report.round)
        for address, total in totals.items():
            shares[address].append(total / everything)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for address, series in sorted(shares.items()):
        padded = [0.0] * (len(rounds) - len(series)) + series
        ax.plot(rounds, padded, marker=".", label=f"{address[:8]}…")
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative share of rewards")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"rewards by {record.spec.contribution}")
    ax.grid(alpha=0.3)
    if len(shares) <= 12:
        ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_summary(record: RunRecord, out: Path) -> None:
    """Write (or rewrite) summary.json into ``out``."""
    _write_json(out / "summary.json", summary(record))


def write_artifacts(record: RunRecord, out: Path) -> None:
    """Write summary.json, ledger.json, accuracy.png and rewards.png into ``out``."""
    write_summary(record, out)
    _write_json(out / "ledger.json", _events(record))
    plot_accuracy(record, out / "accuracy.png")
    plot_rewards(record, out / "rewards.png")
