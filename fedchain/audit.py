"""Verifying a run from the chain: reopen its ledger, and recompute each round's scores.

Everything is read back from the chain's events and the content store, never from the server's
own summary: the round's commitments give the updates (by hash), ``RoundOpened`` the parent model,
``RewardAttributed`` the recorded scores and rewards, ``RoundCommitted`` the global model and the
scoring hash. The holdout is rebuilt from the task spec and checked against its hash.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.chain.backends import ChainBackend, EmbeddedChain, RpcChain
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerEvent, LedgerGateway
from fedchain.contribution.rewards import to_fixed_point
from fedchain.errors import FedchainError
from fedchain.hashing import from_hex, to_hex
from fedchain.scoring import score_round, scoring_seed
from fedchain.settings import RunSettings
from fedchain.store import ModelStore
from fedchain.task import TaskSpec
from fedchain.workload import evaluate_weights, holdout

__all__ = ["AuditError", "OpenedRun", "ScoreCheck", "open_run", "recompute_scores"]

Weights = dict[str, np.ndarray[Any, Any]]


class AuditError(FedchainError, ValueError):
    """A run cannot be audited as given (missing files, a chain that is gone)."""


@dataclass
class OpenedRun:
    """A run directory with its chain reachable again."""

    out: Path
    backend: ChainBackend
    gateway: LedgerGateway
    spec: TaskSpec
    settings: RunSettings
    task_id: int

    def close(self) -> None:
        self.backend.close()


def open_run(out: Path, rpc_url: str | None = None, resume: bool = False) -> OpenedRun:
    """Reopen a run's chain: the saved embedded chain re-executed, or the node at ``rpc_url``."""
    from fedchain.chain.accounts import devnet_account

    summary_path = out / "summary.json"
    if not summary_path.exists():
        raise AuditError(f"no run at {out}: expected summary.json there (see `fedchain simulate`)")
    summary = json.loads(summary_path.read_text())
    kind = summary["chain"]["kind"]
    if kind == "none":
        raise AuditError(f"the run at {out} had no ledger (--chain none): nothing to verify")
    backend: ChainBackend
    if rpc_url:
        backend = RpcChain(rpc_url)
    elif kind == "embedded":
        backend = EmbeddedChain.replay(out / "chain", resume=resume)
    elif summary["chain"].get("rpc_url") and kind == "rpc":
        backend = RpcChain(summary["chain"]["rpc_url"])
    else:
        raise AuditError(
            f"the {kind} chain of the run at {out} stopped with the run: pass --rpc-url of a node "
            "that holds it"
        )
    deployment = Deployment.load(out / "deployment.json")
    # Reads need no key; DEVNET TEST key 0 only signs if a claim is made with it.
    gateway = LedgerGateway(backend.w3, deployment, devnet_account(0))
    return OpenedRun(
        out=out,
        backend=backend,
        gateway=gateway,
        spec=TaskSpec.load(out / "task.json"),
        settings=RunSettings.from_run_config(summary["settings"]),
        task_id=int(summary["task_id"]),
    )


@dataclass(frozen=True)
class ScoreCheck:
    """One recorded score against its recomputation."""

    round: int
    participant: str
    recorded_score: int
    recomputed_score: int
    recorded_reward: int
    recomputed_reward: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.detail
            and self.recorded_score == self.recomputed_score
            and self.recorded_reward == self.recomputed_reward
        )


def _by_round(events: Sequence[LedgerEvent], name: str, task_id: int) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for e in events:
        if e.name == name and int(e.args.get("taskId", -1)) == task_id:
            grouped[int(e.args["round"])].append(e.args)
    return grouped


def recompute_scores(run: OpenedRun) -> list[ScoreCheck]:
    """Recompute every committed round's scores and rewards and compare them with the chain."""
    settings, spec = run.settings, run.spec
    hold = holdout(settings)
    if to_hex(hold.data_hash) != spec.holdout_hash:
        raise AuditError(
            f"the holdout rebuilt from the spec hashes to {to_hex(hold.data_hash)}, the spec "
            f"names {spec.holdout_hash}: the data or the spec differs from the run's"
        )
    store = ModelStore(run.out / "store")
    events = run.gateway.events()
    opened = {r: a[0] for r, a in _by_round(events, "RoundOpened", run.task_id).items()}
    committed = _by_round(events, "RoundCommitted", run.task_id)
    commitments = _by_round(events, "CommitmentRecorded", run.task_id)
    rewarded = _by_round(events, "RewardAttributed", run.task_id)
    budget = run.gateway.task(run.task_id).reward_per_round  # type: ignore[arg-type]
    checks: list[ScoreCheck] = []
    for round_id in sorted(committed):
        outcome = committed[round_id][0]
        checks += _check_round(
            run, round_id, store, hold, budget,
            parent_hash=opened[round_id]["parentModelHash"],
            global_hash=outcome["globalModelHash"],
            scoring_hash=outcome["scoringHash"],
            commitments=commitments[round_id],
            rewards=rewarded[round_id],
        )  # fmt: skip
    return checks


def _check_round(
    run: OpenedRun,
    round_id: int,
    store: ModelStore,
    hold: Any,
    budget: int,
    *,
    parent_hash: str,
    global_hash: str,
    scoring_hash: str,
    commitments: list[Any],
    rewards: list[Any],
) -> list[ScoreCheck]:
    from fedchain.strategy import aggregation_order

    settings = run.settings
    # The server aggregated and scored in canonical order.
    ordered = sorted(
        commitments, key=lambda c: aggregation_order(str(c["updateHash"]), str(c["participant"]))
    )
    addresses = [str(c["participant"]) for c in ordered]
    examples = [int(c["numExamples"]) for c in ordered]
    loaded = [_load(store, str(c["updateHash"])) for c in ordered]
    missing = {
        a: f"stored update: {problem}"
        for a, (_, problem) in zip(addresses, loaded, strict=True)
        if problem
    }
    parent, parent_problem = _load(store, parent_hash)
    global_model, global_problem = _load(store, global_hash)
    for label, problem in (("parent model", parent_problem), ("global model", global_problem)):
        if problem:
            missing = {a: f"{label}: {problem}" for a in addresses}
    if missing or parent is None or global_model is None:  # say whose model is wrong
        return [
            ScoreCheck(round_id, a, 0, 0, 0, 0, detail=missing.get(a, "round unreadable"))
            for a in addresses
        ]
    updates = [weights for weights, _ in loaded if weights is not None]
    aggregate = _aggregator(settings, round_id, updates, examples)
    scoring = score_round(
        method=run.spec.contribution,
        addresses=addresses,
        updates=updates,
        examples=examples,
        parent=parent,
        global_model=global_model,
        aggregate=aggregate,
        loss=lambda model: evaluate_weights(settings, hold.data, model)[1],
        budget=budget,
        seed=scoring_seed(run.spec.seed, round_id),
        holdout_hash=run.spec.holdout_hash,
    )
    recorded = {str(r["participant"]): r for r in rewards}
    hash_detail = "" if to_hex(scoring.scoring_hash) == scoring_hash else "scoring hash differs"
    checks = []
    for address in addresses:
        entry = recorded.get(address)
        detail = hash_detail or ("" if entry else "no reward recorded")
        checks.append(
            ScoreCheck(
                round=round_id,
                participant=address,
                recorded_score=int(entry["score"]) if entry else 0,
                recomputed_score=to_fixed_point(scoring.scores[address]),
                recorded_reward=int(entry["amount"]) if entry else 0,
                recomputed_reward=scoring.rewards[address],
                detail=detail,
            )
        )
    return checks


def _load(store: ModelStore, digest: str) -> tuple[Weights | None, str]:
    """A stored model by its 0x hash, or why it cannot be read (missing, or altered)."""
    from fedchain.store import ModelCorrupted, ModelNotInStore

    try:
        return store.get(from_hex(digest)), ""
    except (ModelNotInStore, ModelCorrupted) as exc:
        return None, str(exc)


def _aggregator(
    settings: RunSettings, round_id: int, updates: list[Weights], examples: list[int]
) -> Callable[[Sequence[int]], Weights]:
    """The round's aggregation for a coalition, as the server applied it."""
    from fedchain.strategies import build_strategy
    from fedchain.strategy import coalition_aggregator

    strategy = build_strategy(settings, settings.num_clients)
    return coalition_aggregator(strategy, round_id, updates, examples)
