"""Hand-made run directories for the report's fast tests: summary.json as fedchain writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CAROL = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SPEC = {
    "contribution": "loo", "dataset": "breast-cancer", "model": "mlp", "partition": "iid",
    "strategy": "fedavg",
}  # fmt: skip


def outcome(node: int, address: str = "", **changes: Any) -> dict[str, Any]:
    """One participant's outcome in a round: accepted with a score and no reward by default."""
    entry: dict[str, Any] = {
        "node_id": node, "address": address, "update_hash": "", "num_examples": 100,
        "accepted": True, "reason": "", "absent": False, "score": 0.1, "reward": "0",
        "role": "honest",
    }  # fmt: skip
    entry.update(changes)
    return entry


def absent(node: int, reason: str) -> dict[str, Any]:
    """An outcome as the server records a sampled node that sent nothing: no address."""
    return outcome(node, accepted=False, absent=True, score=0.0, reason=reason)


def round_(
    number: int, accuracy: float | None, participants: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "round": number, "parent_model_hash": "0x00", "global_model_hash": f"0x{number:064x}",
        "committed": accuracy is not None, "failed_reason": None if accuracy is not None
        else "0 valid updates, 2 needed", "budget": "1000000000000000000000",
        "contribution_method": "loo", "scoring_seconds": 0.1, "utility_evaluations": 3,
        "accuracy": accuracy, "loss": None if accuracy is None else 1.0 - accuracy,
        "gas_used": 150_000, "tx_hash": f"0x{number:064x}", "seconds": 1.0,
        "accepted": sum(p["accepted"] for p in participants),
        "rejected": sum(not p["accepted"] and not p["absent"] for p in participants),
        "absent": sum(p["absent"] for p in participants), "participants": participants,
    }  # fmt: skip


def summary(
    rounds: list[dict[str, Any]], token: dict[str, Any] | None = None, **changes: Any
) -> dict[str, Any]:
    """summary.json of ``rounds``, its rewards the sum of each accepted outcome's reward."""
    rewards: dict[str, int] = {}
    for r in rounds:
        for p in r["participants"]:
            if p["accepted"] and p["address"]:
                rewards[p["address"]] = rewards.get(p["address"], 0) + int(p["reward"])
    document: dict[str, Any] = {
        "schema_version": 1,
        "chain": {"kind": "embedded", "chain_id": 1, "ledger": "0x01", "token": TOKEN},
        "task_id": 1,
        "spec_hash": "0x" + "ab" * 32,
        "spec": SPEC,
        "settings": {},
        "rounds": rounds,
        "rewards": {a: str(v) for a, v in sorted(rewards.items())},
        "final_model_hash": "0x" + "cd" * 32,
        "peak_rss_bytes": None,
        "peak_rss_processes": None,
    }
    if token is not None:
        document["token"] = token
    document.update(changes)
    return document


def write_run(
    out: Path, document: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> Path:
    """A run directory holding ``document`` as summary.json, and the events as ledger.json."""
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(document))
    (out / "ledger.json").write_text(json.dumps(events or []))
    (out / "task.json").write_text(json.dumps(SPEC) + "\n")
    return out


def accuracies(*values: float | None) -> dict[str, Any]:
    """A summary whose rounds reached ``values`` (None: a failed round)."""
    rounds = [
        round_(i, v, [outcome(2, ALICE, score=0.2), outcome(3, BOB, score=0.1)])
        for i, v in enumerate(values, start=1)
    ]
    return summary(rounds)
