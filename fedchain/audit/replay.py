"""Recomputing a task's rounds as the server ran them: aggregation, evaluation on the holdout
rebuilt from the spec, and contribution scores and rewards, each compared with the chain.

Flower, PyTorch and the scorers are imported only when a round is replayed: auditing without
``--recompute`` (and ``fedchain rewards``) never loads them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.audit.lineage import LedgerLineage, RoundLineage, TaskLineage, rebuild_lineage
from fedchain.audit.merkle import attach_merkle_records
from fedchain.audit.sources import AuditError, OpenedRun
from fedchain.audit.verdict import ScoreCheck
from fedchain.contribution.rewards import to_fixed_point
from fedchain.hashing import from_hex, model_hash, to_hex
from fedchain.settings import RunSettings
from fedchain.store import ModelCorrupted, ModelNotInStore, ModelStore, run_store
from fedchain.task import TaskSpec

__all__ = ["RoundReplay", "recompute_scores", "replay_task", "settings_for"]

Weights = dict[str, np.ndarray[Any, Any]]


@dataclass
class RoundReplay:
    """One committed round recomputed: problems found ("" when it reproduced) and the scores."""

    round: int
    aggregation: str = ""
    evaluation: str = ""
    scores: list[ScoreCheck] = field(default_factory=list)
    unearned: str = ""  # how the recomputed unearned budget differs from the chain's
    blocked: str = ""  # why the round could not be replayed at all
    blocked_by: str | None = None  # the participant whose stored update is at fault


def settings_for(
    spec: TaskSpec,
    base: RunSettings | None,
    lineage: LedgerLineage,
    task: TaskLineage,
    data: Path | None = None,
) -> RunSettings:
    """The settings a round is recomputed with: the spec's fields over the run's settings, the
    task's CSV file read from ``data`` when given (checked first, see
    :func:`fedchain.audit.auditor.check_data`).

    Without a run, the number of clients (which sizes Krum's and Bulyan's tolerance) is the
    number of the task's members eligible for round 1.
    """
    if base is None:
        members = sum(m.eligible(1) for m in task.members.values())
        base = RunSettings(num_clients=max(2, members))
    return spec.training_settings(base, data)


def replay_task(
    task: TaskLineage, store: ModelStore, spec: TaskSpec, settings: RunSettings
) -> list[RoundReplay]:
    """Recompute every committed round of ``task`` as the server ran it.

    One strategy instance aggregates the rounds in order (FedAdam keeps state across rounds),
    each from the accepted updates in canonical order (by update hash); the global model is
    evaluated on the holdout rebuilt from the spec, and the round's scores and rewards are
    recomputed with the same coalition aggregation, seed and budget.
    """
    from fedchain.federation.flower_strategies import build_strategy
    from fedchain.federation.workload import holdout

    with _quiet_flower():
        strategy = build_strategy(settings, settings.num_clients)
        return _replay_task(task, store, spec, settings, strategy=strategy, hold=holdout(settings))


@contextlib.contextmanager
def _quiet_flower() -> Iterator[None]:
    """Flower logs every aggregation at INFO; an audit replays many."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _replay_task(
    task: TaskLineage,
    store: ModelStore,
    spec: TaskSpec,
    settings: RunSettings,
    *,
    strategy: Any,
    hold: Any,
) -> list[RoundReplay]:
    hold_problem = ""
    if to_hex(hold.data_hash) != spec.holdout_hash:
        hold_problem = (
            f"the holdout rebuilt from the spec hashes to {to_hex(hold.data_hash)}, the spec "
            f"names {spec.holdout_hash}: the data or the spec differs from the run's"
        )
    if not hold_problem:  # the spec's standardization statistics are its holdout's
        from fedchain.federation.workload import standardization_problem

        hold_problem = standardization_problem(spec, settings)
    replay = _Replay(
        strategy,
        spec,
        settings,
        hold,
        hold_problem,
        task.reward_per_round,
    )
    broken = ""  # the round a stateful strategy's replay broke at
    results = []
    produced: dict[str, str] = {}  # global model -> the parent of the latest round that made it
    for entry in task.committed_rounds():
        result = RoundReplay(entry.round)
        results.append(result)
        previous = produced.get(entry.parent_hash.lower()) if replay.primed else None
        if entry.global_hash:
            produced[entry.global_hash.lower()] = entry.parent_hash
        loaded = _load_round(store, entry, previous)
        if isinstance(loaded, tuple):
            result.blocked, result.blocked_by = loaded
        elif broken:
            result.blocked = f"{replay.strategy_name} carries state from {broken}"
        if result.blocked:
            result.blocked = f"cannot recompute: {result.blocked}"
            result.scores = [
                ScoreCheck(entry.round, c.participant, 0, 0, 0, 0, detail=result.blocked)
                for c in entry.accepted
            ]
            if replay.stateful and not broken:
                broken = f"round {entry.round}, which cannot be replayed"
            continue
        assert not isinstance(loaded, tuple)
        replay.round(entry, loaded, result)
    return results


@dataclass
class _LoadedRound:
    parent: Weights
    global_model: Weights | None
    updates: list[Weights]
    examples: list[int]
    addresses: list[str]
    previous: Weights | None = None  # the model the parent was aggregated from


def _load_round(
    store: ModelStore, entry: RoundLineage, previous_hash: str | None = None
) -> _LoadedRound | tuple[str, str | None]:
    """The round's parent, global model and accepted updates (and, given its hash, the model
    the parent was aggregated from), or why they cannot be read (and whose update it is)."""
    accepted = entry.accepted
    updates = []
    for c in accepted:
        update, problem = _load(store, c.update_hash)
        if update is None:
            return f"stored update of {c.participant}: {problem}", c.participant
        updates.append(update)
    parent, problem = _load(store, entry.parent_hash)
    if parent is None:
        return f"parent model: {problem}", None
    previous = None
    if previous_hash is not None:
        previous, problem = _load(store, previous_hash)
        if previous is None:
            return f"the model before the parent: {problem}", None
    global_model, _ = _load(store, entry.global_hash or "")
    return _LoadedRound(
        parent,
        global_model,
        updates,
        [c.num_examples for c in accepted],
        [c.participant for c in accepted],
        previous,
    )


@dataclass
class _Replay:
    """The server's side of a task, replayed round after round."""

    strategy: Any  # a Flower Strategy (untyped there)
    spec: TaskSpec
    settings: RunSettings
    hold: Any
    hold_problem: str
    budget: int

    @property
    def strategy_name(self) -> str:
        return type(self.strategy).__name__

    @property
    def stateful(self) -> bool:
        return _is_stateful(self.strategy)

    @property
    def primed(self) -> bool:
        """Whether the strategy takes the round's history (``prime``) before aggregating."""
        return hasattr(self.strategy, "prime")

    def round(self, entry: RoundLineage, loaded: _LoadedRound, result: RoundReplay) -> None:
        recomputed = self._aggregate(entry, loaded, result)
        global_model = loaded.global_model if loaded.global_model is not None else recomputed
        problem = self.hold_problem
        if global_model is None:
            problem = "no global model: neither stored nor recomputed"
        if problem:
            result.evaluation = problem
            result.scores = [
                ScoreCheck(entry.round, a, 0, 0, 0, 0, detail=problem) for a in loaded.addresses
            ]
            return
        assert global_model is not None
        self._evaluate(entry, global_model, result)
        self._score(entry, loaded, global_model, result)

    def _aggregate(
        self, entry: RoundLineage, loaded: _LoadedRound, result: RoundReplay
    ) -> Weights | None:
        from fedchain.federation.messages import arrays_to_numpy

        _prime(self.strategy, entry.round, loaded)
        replies = _replies(loaded.updates, loaded.examples)
        arrays, _ = self.strategy.aggregate_train(entry.round, replies)
        if arrays is None:
            result.aggregation = f"{self.strategy_name} produced no model from the accepted updates"
            return None
        recomputed = arrays_to_numpy(arrays)
        digest = to_hex(model_hash(recomputed))
        if digest != entry.global_hash:
            result.aggregation = (
                f"the {len(loaded.updates)} accepted updates aggregate to {digest}, the chain "
                f"recorded {entry.global_hash}"
            )
        return recomputed

    @functools.cached_property
    def _holdout(self) -> Any:
        """The holdout's evaluator, built once: the model and tensors are reused by the
        thousands of coalition evaluations of a round (equal to evaluate_weights's)."""
        from fedchain.federation.holdout_eval import HoldoutEvaluator

        return HoldoutEvaluator(self.settings, self.hold.data)

    def _loss(self, model: Mapping[str, np.ndarray[Any, Any]]) -> float:
        return float(self._holdout.loss(model))

    def _evaluate(self, entry: RoundLineage, global_model: Weights, result: RoundReplay) -> None:
        from fedchain.federation.workload import evaluate_weights

        accuracy, loss = evaluate_weights(self.settings, self.hold.data, global_model)
        got = (round(accuracy * 1_000_000), round(loss * 1_000_000))
        if got != (entry.accuracy_ppm, entry.loss_ppm):
            result.evaluation = (
                f"accuracy {got[0]} ppm and loss {got[1]} ppm on the holdout; the chain "
                f"recorded {entry.accuracy_ppm} and {entry.loss_ppm}"
            )

    def _score(
        self,
        entry: RoundLineage,
        loaded: _LoadedRound,
        global_model: Weights,
        result: RoundReplay,
    ) -> None:
        from fedchain.contribution.rewards import RewardRule
        from fedchain.contribution.round import score_round, scoring_seed
        from fedchain.federation.coalitions import coalition_aggregator

        # The weights the strategy gave the updates in the round's full aggregation, just
        # replayed (coalitions run on copies of the strategy).
        given = getattr(self.strategy, "last_update_weights", None)
        full_gain = self.spec.reward_full_gain
        scoring = score_round(
            method=self.spec.contribution,
            addresses=loaded.addresses,
            updates=loaded.updates,
            examples=loaded.examples,
            parent=loaded.parent,
            global_model=global_model,
            aggregate=coalition_aggregator(
                self.strategy, entry.round, loaded.updates, loaded.examples
            ),
            loss=self._loss,
            curvature=self._holdout.curvature,
            budget=self.budget,
            seed=scoring_seed(self.spec.seed, entry.round),
            holdout_hash=self.spec.holdout_hash,
            rule=RewardRule(full_gain) if full_gain > 0 else None,
            update_weights=None if given is None else [float(w) for w in given],
            recorded_hash=from_hex(entry.scoring_hash) if entry.scoring_hash else None,
        )
        unearned = self.budget - entry.total_reward
        if scoring.unearned != unearned:
            result.unearned = (
                f"{unearned} of the budget {self.budget} left unearned on chain, "
                f"{scoring.unearned} recomputed"
            )
        recorded = {r.participant: r for r in entry.rewards}
        hash_problem = ""
        if to_hex(scoring.scoring_hash) != entry.scoring_hash:
            hash_problem = "the scoring hash differs from the chain's: another method or seed"
        for address in loaded.addresses:
            reward = recorded.get(address)
            result.scores.append(
                ScoreCheck(
                    round=entry.round,
                    participant=address,
                    recorded_score=reward.score if reward else 0,
                    recomputed_score=to_fixed_point(scoring.scores[address]),
                    recorded_reward=reward.amount if reward else 0,
                    recomputed_reward=scoring.rewards[address],
                    detail=hash_problem or ("" if reward else "no reward recorded"),
                )
            )


def _replies(updates: Sequence[Weights], examples: Sequence[int]) -> list[Any]:
    """Train replies as the server received them: the update and its number of examples."""
    from fedchain.federation.messages import numpy_to_arrays, train_reply

    return [train_reply(numpy_to_arrays(u), n) for u, n in zip(updates, examples, strict=True)]


def _is_stateful(strategy: Any) -> bool:
    from flwr.serverapp.strategy.fedopt import FedOpt

    return isinstance(strategy, FedOpt)


def _prime(strategy: Any, round_id: int, loaded: _LoadedRound) -> None:
    """What the server told the strategy before aggregating: a server-side optimiser's starting
    model (``configure_train``), or the round's history (the ledger wrapper's ``prime``)."""
    if _is_stateful(strategy):
        strategy.current_arrays = {k: np.asarray(v) for k, v in loaded.parent.items()}
    if hasattr(strategy, "prime"):
        from fedchain.federation.robust_strategies import RoundHistory

        examples = tuple(loaded.examples)
        strategy.prime(RoundHistory(round_id, loaded.parent, loaded.previous, examples))


def _load(store: ModelStore, digest: str) -> tuple[Weights | None, str]:
    """A stored model by its 0x hash, or why it cannot be read (missing, or altered)."""
    try:
        return store.get(digest), ""
    except (ModelNotInStore, ModelCorrupted) as exc:
        return None, str(exc)
    except ValueError as exc:  # not a model hash at all
        return None, str(exc)


def recompute_scores(run: OpenedRun) -> list[ScoreCheck]:
    """Recompute every committed round's scores and rewards and compare them with the chain.

    Raises
    ------
    AuditError
        If the run's task is not on its chain.
    """
    lineage = rebuild_lineage(run.gateway)
    task = lineage.tasks.get(run.task_id)
    if task is None:
        raise AuditError(f"task {run.task_id} is not on the ledger: is this the run's chain?")
    store = run_store(run.out, run.settings.store)
    attach_merkle_records(lineage, store, run.out)  # merkle rounds publish their entries
    settings = settings_for(run.spec, run.settings, lineage, task)
    results = replay_task(task, store, run.spec, settings)
    return [s for r in results for s in r.scores]
