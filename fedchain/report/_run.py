"""What the report is built from: a run directory's summary.json, ledger.json and task.json."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.errors import FedchainError
from fedchain.report._format import has_ledger, node_addresses, who

__all__ = ["Participant", "ReportError", "Run", "load", "participants", "verdict_checks"]


class ReportError(FedchainError, ValueError):
    """A run directory cannot be reported: a file is missing or not what fedchain wrote."""


@dataclass(frozen=True)
class Run:
    """The run directory's three documents."""

    out: Path
    summary: dict[str, Any]
    events: list[dict[str, Any]]
    spec: dict[str, Any]
    spec_file_hash: str


@dataclass(frozen=True)
class Participant:
    """One participant over the whole run, as the report shows it."""

    who: str
    role: str
    accepted: int
    rejected: int
    absent: int
    mean_score: float | None
    reward: int
    on_chain_reward: int | None
    name: str = ""  # its organisation's name in the on-chain registry ("" when unnamed)


def _read(out: Path, name: str) -> bytes:
    try:
        return (out / name).read_bytes()
    except FileNotFoundError:
        raise ReportError(
            f"no {name} in {out}: give the directory of a finished run (`fedchain simulate --out`)"
        ) from None


def _json(out: Path, name: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(
            f"{out / name} is not valid JSON ({exc}): restore it from a copy of the run, or "
            "rerun `fedchain simulate`"
        ) from None


def load(out: Path) -> Run:
    """Read the run in ``out``; a missing or malformed file raises :class:`ReportError`."""
    summary = _json(out, "summary.json", _read(out, "summary.json"))
    events = _json(out, "ledger.json", _read(out, "ledger.json"))
    spec_bytes = _read(out, "task.json")
    spec = _json(out, "task.json", spec_bytes)
    if not isinstance(summary, dict) or not isinstance(events, list) or not isinstance(spec, dict):
        raise ReportError(f"{out} holds JSON files of the wrong shape: is it a fedchain run?")
    # task.json is the canonical spec plus a newline; the spec hash is taken over the spec alone.
    spec_file_hash = "0x" + hashlib.sha256(spec_bytes.rstrip(b"\n")).hexdigest()
    return Run(out, summary, events, spec, spec_file_hash)


def verdict_checks(verdict: Mapping[str, Any]) -> tuple[bool, list[Mapping[str, Any]]]:
    """The verdict's overall result and its checks, after checking its shape."""
    checks = verdict.get("checks")
    if not isinstance(verdict.get("ok"), bool) or not isinstance(checks, list):
        raise ReportError(
            "the audit verdict needs {'ok': bool, 'checks': [...]} (Verdict.to_json() of "
            "fedchain.audit)"
        )
    for check in checks:
        if not isinstance(check, Mapping) or not isinstance(check.get("ok"), bool):
            raise ReportError(f"audit check {check!r} needs at least 'check' and a boolean 'ok'")
    return verdict["ok"] and all(c["ok"] for c in checks), checks


def _on_chain_rewards(
    summary: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    on_chain: dict[str, int] = defaultdict(int)
    for e in events:
        if e["event"] == "RewardAttributed" and e["args"].get("taskId") == summary["task_id"]:
            on_chain[str(e["args"]["participant"])] += int(e["args"]["amount"])
    return on_chain


def participants(
    summary: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> list[Participant]:
    """Every participant seen in any round, the best rewarded first.

    A participant absent from a round is counted under the address it signed with in the others,
    so a node that misses rounds stays one participant.
    """
    addresses = node_addresses(summary["rounds"])
    seen: dict[str, dict[str, Any]] = {}
    for r in summary["rounds"]:
        for p in r["participants"]:
            entry = seen.setdefault(
                who(p, addresses), {"role": "honest", "counts": [0, 0, 0], "scores": []}
            )
            if not p["absent"]:  # an absent outcome carries no role: keep the one it replied with
                entry["role"] = p.get("role", "honest")
            if p["accepted"]:
                entry["counts"][0] += 1
                entry["scores"].append(float(p["score"]))
            entry["counts"][2 if p["absent"] else 1] += not p["accepted"]
    on_chain = _on_chain_rewards(summary, events) if has_ledger(summary) else None
    rewards = {str(k): int(v) for k, v in summary["rewards"].items()}
    rows = [
        Participant(
            who=name,
            role=str(entry["role"]),
            accepted=entry["counts"][0],
            rejected=entry["counts"][1],
            absent=entry["counts"][2],
            mean_score=(sum(entry["scores"]) / len(entry["scores"])) if entry["scores"] else None,
            reward=rewards.get(name, 0),
            on_chain_reward=None if on_chain is None else on_chain.get(name, 0),
            name=str(summary.get("parties", {}).get(name, {}).get("name", "")),
        )
        for name, entry in seen.items()
    ]
    return sorted(rows, key=lambda p: (-p.reward, p.who.lower()))
