"""A run's artifacts: summary.json, ledger.json (every event read back), accuracy.png.

The model store (``store/``) and ``final_model.safetensors`` are written during the run.
summary.json's schema is documented in docs/simulation.md. The plots (and the HTML report,
written from these files) belong to ``fedchain.report``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.gateway import LedgerEvent
from fedchain.chain.records import party_label
from fedchain.chain.token import token_info
from fedchain.federation.round_report import RoundReport
from fedchain.settings import RunSettings
from fedchain.task import TaskSpec

if TYPE_CHECKING:
    from fedchain.chain.gateway import LedgerGateway
    from fedchain.chain.records import TaskId

__all__ = [
    "RewardTokenRecord",
    "RunRecord",
    "read_reward_token",
    "summary",
    "write_artifacts",
    "write_summary",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RewardTokenRecord:
    """The ERC-20 token a task pays its rewards in, as read from chain for summary.json."""

    address: str
    symbol: str
    decimals: int


def read_reward_token(gateway: LedgerGateway, task_id: TaskId) -> RewardTokenRecord:
    """The reward token of ``task_id``: its address on the ledger, its symbol and decimals."""
    address = gateway.task(task_id).token
    symbol, decimals = token_info(gateway.w3, address)
    return RewardTokenRecord(address, symbol, decimals)


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
    peak_rss_bytes: int | None = (
        None  # of the process tree, server + Ray (fedchain.simulation.memory)
    )
    peak_rss_processes: int | None = None  # processes in the tree at that peak
    token: RewardTokenRecord | None = None  # None without a ledger


def parties(events: list[LedgerEvent]) -> dict[str, dict[str, Any]]:
    """Every party of the ledger's events, by address: its registered name and URI (the
    registry's ``OrganisationRegistered``), its roles in the run (registrar, coordinator,
    participant) and its label, "Name (0xab12…)" (the bare address when unnamed)."""
    found: dict[str, dict[str, Any]] = {}

    def party(address: str, role: str | None = None) -> dict[str, Any]:
        entry = found.setdefault(address, {"name": "", "uri": "", "roles": []})
        if role is not None and role not in entry["roles"]:
            entry["roles"].append(role)
        return entry

    for e in events:
        if e.name == "OrganisationRegistered":
            party(str(e.args["registrar"]), "registrar")
            party(str(e.args["account"])).update(name=e.args["name"], uri=e.args["uri"])
        elif e.name in {"TaskCreated", "TaskCoordinatorChanged"}:
            party(str(e.args["coordinator"]), "coordinator")
        elif e.name == "MemberJoined":
            party(str(e.args["participant"]), "participant")
    for address, entry in found.items():
        entry["label"] = party_label(entry["name"], address)
    return found


def summary(record: RunRecord) -> dict[str, Any]:
    """The summary.json document."""
    rewards: dict[str, int] = defaultdict(int)
    rounds = []
    named = parties(record.events)
    for report in record.reports:
        participants = []
        for p in report.participants:
            entry = asdict(p)
            entry["label"] = named.get(p.address, {}).get("label", p.address)
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
                "unearned": str(report.unearned),
                "contribution_method": report.contribution_method,
                "scoring_seconds": round(report.scoring_seconds, 4),
                "utility_evaluations": report.evaluations,
                "accuracy": report.accuracy,
                "loss": report.loss,
                "gas_used": report.gas_used,
                "tx_hash": report.tx_hash or None,
                "seconds": round(report.seconds, 4),
                "store_bytes": report.store_bytes,
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
        "token": asdict(record.token) if record.token is not None else None,
        "spec_hash": "0x" + record.spec.spec_hash().hex(),
        "spec": json.loads(record.spec.canonical()),
        "settings": record.settings.to_run_config(),
        "rounds": rounds,
        "rewards": {address: str(amount) for address, amount in sorted(rewards.items())},
        "parties": named,
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


def write_summary(record: RunRecord, out: Path) -> None:
    """Write (or rewrite) summary.json into ``out``."""
    _write_json(out / "summary.json", summary(record))


def write_artifacts(record: RunRecord, out: Path) -> None:
    """Write summary.json, ledger.json, accuracy.png and rewards.png into ``out``."""
    from fedchain.report import write_plots

    document = summary(record)
    _write_json(out / "summary.json", document)
    _write_json(out / "ledger.json", _events(record))
    write_plots(document, out)
