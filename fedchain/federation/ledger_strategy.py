"""The ledger strategy: wraps any Flower strategy and records every round on chain.

It overrides only what the ledger needs (the idiom of Flower's DP wrappers): ``configure_train``
opens the round on chain and tells clients where to verify and what to sign; ``aggregate_train``
checks every reply, drops bad ones with their reason, lets the wrapped strategy aggregate the
valid ones, stores and evaluates the global model, and commits the round in one transaction.
``Strategy.start`` is inherited, never copied.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedchain.chain.gateway import LedgerEvent, LedgerPort, TxResult
from fedchain.chain.merkle import RewardLeaf
from fedchain.chain.queue import WriteQueue
from fedchain.chain.records import (
    Commitment,
    Membership,
    Reward,
    RoundId,
    RoundOutcome,
    SignedCommitment,
    SkipReason,
    TaskId,
)
from fedchain.chain.signing import recover_signer
from fedchain.contribution.rewards import RewardRule, to_fixed_point
from fedchain.contribution.round import RoundScoring, score_round, scoring_seed
from fedchain.federation.coalitions import aggregation_order, coalition_aggregator, frozen_heap
from fedchain.federation.dropouts import NO_REPLY, lost_node_reason
from fedchain.federation.merkle_rounds import MerkleRound, publish
from fedchain.federation.messages import Weights, arrays_to_numpy
from fedchain.federation.robust_strategies import RoundHistory
from fedchain.federation.round_report import NodeAddresses, ParticipantOutcome, RoundReport
from fedchain.hashing import ModelHash, from_hex, model_hash, to_hex
from fedchain.privacy import METRIC_DP_EPSILON
from fedchain.record_keys import (
    COMMIT_EPSILON,
    COMMIT_NUM_EXAMPLES,
    COMMIT_PARTICIPANT,
    COMMIT_SIGNATURE,
    COMMIT_UPDATE_HASH,
    CONFIG_CHAIN_ID,
    CONFIG_DIRECT,
    CONFIG_LEDGER,
    CONFIG_PARENT_HASH,
    CONFIG_RPC_URL,
    CONFIG_TASK_ID,
    METRIC_NUM_EXAMPLES,
    RECORD_COMMITMENT,
    RECORD_PARTICIPANT,
)
from fedchain.store import ModelStore

__all__ = ["LedgerLink", "LedgerStrategy"]

log = logging.getLogger(__name__)

#: Allowance per tensor for the .npy header Flower serialises each array with. A reply larger
#: than twice the model plus this is refused before it is deserialised (twice: so an update in
#: float64 still reaches the dtype check and is refused with that reason).
_NPY_HEADER_BYTES = 4096
Evaluator = Callable[[Mapping[str, np.ndarray[Any, Any]]], tuple[float, float]]


@dataclass(frozen=True)
class LedgerLink:
    """Where the strategy records: the ledger, the task, what clients need to reach it, and the
    queue its writes go through (in order, off the round's critical path)."""

    ledger: LedgerPort
    task_id: TaskId
    client_rpc_url: str
    direct: bool = False
    queue: WriteQueue = field(default_factory=WriteQueue)
    commit_mode: str = "relayed"  # or "merkle": one reward root per round
    records: Path | None = None  # merkle mode: the run directory its round records go to


@dataclass
class _Checked:
    message: Message
    outcome: ParticipantOutcome
    weights: Weights | None = None  # the update, read once while checking
    signed: SignedCommitment | None = None
    on_chain: bool = False  # submitted directly by the participant: not relayed again
    member_index: int = 0  # its member index in the task: its merkle leaf's index


class LedgerStrategy(Strategy):
    """Records each round of ``inner`` on the ledger (or, with ``link=None``, only checks)."""

    def __init__(
        self,
        inner: Strategy,
        *,
        link: LedgerLink | None,
        store: ModelStore,
        evaluate: Evaluator,
        template: Mapping[str, np.ndarray[Any, Any]],
        reward_per_round: int,
        min_accepted: int = 1,
        on_round: Callable[[RoundReport], None] | None = None,
        contribution: str = "data-size",
        task_seed: int = 0,
        holdout_hash: str = "",
        first_round: int = 1,
        on_aggregated: Callable[[RoundReport], None] | None = None,
        last_round: int | None = None,
        reward_full_gain: float = 0.0,
    ) -> None:
        """Wrap ``inner``.

        ``first_round`` is the round Flower's first round records (a resumed run starts after
        the rounds already on chain); ``on_aggregated`` sees each round's report before its chain
        write is queued, ``on_round`` after it is mined. With ``last_round``, the run's last
        round, each commit before it also opens the next round, in the same transaction.
        ``reward_full_gain`` is the task's reward rule (:mod:`fedchain.contribution.rewards`;
        0: the rule before issue 15, the whole budget split over the positive scores).
        """
        self.inner = inner
        self.first_round = first_round
        self.last_round = last_round
        self.on_aggregated = on_aggregated
        self.link = link
        self.store = store
        self._stored_before: dict[int, int] = {}  # the store's bytes written when a round began
        self.evaluate = evaluate
        self.template = {name: (w.shape, w.dtype) for name, w in template.items()}
        model_bytes = sum(int(np.asarray(w).nbytes) for w in template.values())
        self.max_reply_bytes = 2 * model_bytes + _NPY_HEADER_BYTES * len(template)
        self.reward_per_round = reward_per_round
        self.min_accepted = min_accepted
        self.on_round = on_round
        self.contribution = contribution
        self.task_seed = task_seed
        self.holdout_hash = holdout_hash
        self.reward_rule = RewardRule(reward_full_gain) if reward_full_gain > 0 else None
        self.reports: list[RoundReport] = []
        self._parent_weights: dict[int, Weights] = {}
        self._sampled: dict[int, list[int]] = {}
        self._sent: dict[int, list[Message]] = {}  # their message ids name a lost node's reply
        self._nodes = NodeAddresses()  # the address each node last signed with
        self._started: dict[int, float] = {}
        self._parents: dict[int, ModelHash] = {}
        self._opened: dict[int, Future[TxResult]] = {}

    # ------------------------------------------------------------------ training

    def _actual(self, flower_round: int) -> int:
        """The ledger's round for Flower's ``flower_round`` (they differ in a resumed run)."""
        return flower_round + self.first_round - 1

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round = self._actual(server_round)
        self._started[server_round] = time.perf_counter()
        self._parent_weights[server_round] = arrays_to_numpy(arrays)
        parent = model_hash(self._parent_weights[server_round])
        self._parents[server_round] = parent
        if self.link is not None:
            link = self.link
            self._opened[server_round] = link.queue.submit(
                lambda: link.ledger.open_round(link.task_id, RoundId(server_round), parent)
            )
            domain = link.ledger.domain
            config[CONFIG_TASK_ID] = int(link.task_id)
            config[CONFIG_CHAIN_ID] = domain.chain_id
            config[CONFIG_LEDGER] = domain.verifying_contract
            config[CONFIG_RPC_URL] = link.client_rpc_url
            config[CONFIG_DIRECT] = link.direct
        config[CONFIG_PARENT_HASH] = to_hex(parent)
        with _seeded_sampling(self.task_seed, server_round):
            messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self._sampled[server_round] = [m.metadata.dst_node_id for m in messages]
        self._sent[server_round] = messages  # the grid sets their ids as it pushes them
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round = self._actual(server_round)
        replies = list(replies)
        report = RoundReport(server_round, to_hex(self._parents[server_round]))
        self._stored_before[server_round] = self.store.bytes_written
        if server_round in self._opened:
            self._opened[server_round].result()  # the round (and what came before) is on chain
        sampled = self._sampled.get(server_round, [])
        sent = {m.metadata.message_id: m.metadata.dst_node_id
                for m in self._sent.pop(server_round, []) if m.metadata.message_id}  # fmt: skip
        lost: dict[int, str] = {}  # nodes the SuperLink answered for, and why
        from_nodes = self._from_sampled(replies, sampled, sent, lost)
        checked = self._dedupe([self._check(server_round, reply) for reply in from_nodes])
        self._check_memberships(server_round, checked)
        self._nodes.learn([c.outcome for c in checked])
        self._nodes.name_absent([c.outcome for c in checked])
        replied = {c.outcome.node_id for c in checked}
        absent = [self._nodes.absent(n, lost.get(n, NO_REPLY)) for n in sampled if n not in replied]
        # Replies arrive in whatever order the network delivers them; aggregating in a canonical
        # order makes the global model bit-exact for anyone who recomputes it.
        accepted = sorted(
            (c for c in checked if c.outcome.accepted),
            key=lambda c: aggregation_order(c.outcome.update_hash, c.outcome.address),
        )
        report.participants = [c.outcome for c in checked] + absent
        if len(accepted) < self.min_accepted:
            return self._fail(report, f"{len(accepted)} valid updates, {self.min_accepted} needed")

        # Read while checking, before aggregating: some strategies (FedMedian) consume the
        # replies' arrays.
        updates = [c.weights for c in accepted if c.weights is not None]
        for c in accepted:  # every accepted update is kept, so anyone can recompute the round
            if c.weights is not None:  # hashed once, as it was checked
                self.store.put(c.weights, known=from_hex(c.outcome.update_hash))
        try:
            self._prime_inner(server_round, [c.outcome.num_examples for c in accepted])
            with frozen_heap():
                arrays, metrics = self.inner.aggregate_train(
                    server_round, [c.message for c in accepted]
                )
        except Exception as exc:  # a strategy refusing these replies fails the round, no more
            log.exception("round %d: %s could not aggregate", server_round, type(self.inner))
            return self._fail(report, f"{type(self.inner).__name__} could not aggregate: {exc}")
        if arrays is None:
            return self._fail(report, f"{type(self.inner).__name__} produced no model")
        weights = arrays_to_numpy(arrays)
        global_hash = self.store.put(weights)
        accuracy, loss = self.evaluate(weights)
        report.global_model_hash, report.accuracy, report.loss = to_hex(global_hash), accuracy, loss
        scoring = self._score(server_round, accepted, updates, weights)
        report.contribution_method, report.scoring_seconds = scoring.method, scoring.seconds
        report.evaluations, report.budget = scoring.evaluations, self.reward_per_round
        report.unearned = scoring.unearned
        self._finish(report)
        self._aggregated(report)
        if self.link is not None:
            self._commit(server_round, global_hash, accepted, report, scoring.scoring_hash)
        else:
            self._announce(report)
        return arrays, metrics

    def _prime_inner(self, server_round: int, examples: list[int]) -> None:
        """Give a strategy that defines ``prime`` (fedchain.federation.robust_strategies) the
        round's parent, the model the parent was aggregated from and the accepted updates'
        example counts (FLTrust's root-set size), read from the run's record
        (the rounds' reports, restored from the journal on resume, and the store), never from
        memory the strategy kept: the audit's replay primes it the same way."""
        prime = getattr(self.inner, "prime", None)
        if prime is None:
            return
        parent = self._parent_weights[server_round]
        wanted, previous = to_hex(self._parents[server_round]), None
        for report in reversed(self.reports):  # the latest round that produced the parent
            if report.round < server_round and report.global_model_hash == wanted:
                previous = self.store.get(report.parent_model_hash)
                break
        prime(RoundHistory(server_round, parent, previous, tuple(examples)))

    def _score(
        self, server_round: int, accepted: list[_Checked], updates: list[Weights], weights: Weights
    ) -> RoundScoring:
        """Measure each accepted participant's contribution and pay it out of the budget."""
        weights_given = _update_weights(self.inner, len(accepted), server_round)
        examples = [c.outcome.num_examples for c in accepted]
        aggregate = coalition_aggregator(self.inner, server_round, updates, examples)
        scoring = score_round(
            method=self.contribution,
            addresses=[c.outcome.address for c in accepted],
            updates=updates,
            examples=examples,
            parent=self._parent_weights[server_round],
            global_model=weights,
            aggregate=aggregate,
            loss=lambda model: self.evaluate(model)[1],
            curvature=getattr(self.evaluate, "curvature", None),  # the holdout evaluator's
            budget=self.reward_per_round,
            seed=scoring_seed(self.task_seed, server_round),
            holdout_hash=self.holdout_hash,
            rule=self.reward_rule,
            update_weights=weights_given,
        )
        for i, c in enumerate(accepted):
            who = c.outcome.address
            c.outcome.score, c.outcome.reward = scoring.scores[who], scoring.rewards[who]
            c.outcome.weight = None if weights_given is None else weights_given[i]
            c.outcome.eligible = scoring.eligible.get(who, True)
            c.outcome.duplicate_of = scoring.duplicate_of.get(who, "")
        return scoring

    def _commit(
        self,
        server_round: int,
        global_hash: ModelHash,
        accepted: list[_Checked],
        report: RoundReport,
        scoring_hash: bytes,
    ) -> None:
        assert self.link is not None
        outcome = RoundOutcome(
            global_model_hash=global_hash,
            accuracy_ppm=round((report.accuracy or 0.0) * 1_000_000),
            loss_ppm=round((report.loss or 0.0) * 1_000_000),
            scoring_hash=scoring_hash,
        )
        relayed = [c.signed for c in accepted if c.signed is not None and not c.on_chain]
        rewards = [
            Reward(c.outcome.address, to_fixed_point(c.outcome.score), c.outcome.reward)
            for c in accepted
        ]
        link = self.link
        if link.commit_mode == "merkle":
            self._commit_root(server_round, outcome, accepted, report)
            return

        open_next = self._opens_next(server_round)

        def commit() -> TxResult:  # idempotent: a chain reset may run it again
            result = link.ledger.commit_round(
                link.task_id, RoundId(server_round), relayed, outcome, rewards, open_next=open_next
            )
            report.committed = True
            if not result.already_recorded or not report.tx_hash:
                report.gas_used, report.tx_hash = result.gas_used, result.tx_hash
                _apply_skips(report, link.ledger.receipt_events(result.tx_hash), server_round)
            return result

        link.queue.submit(commit, then=lambda _: self._announce(report))

    def _commit_root(
        self,
        server_round: int,
        outcome: RoundOutcome,
        accepted: list[_Checked],
        report: RoundReport,
    ) -> None:
        """Merkle mode: publish the round's leaves, proofs and signed commitments with the run,
        then commit their root (one transaction whose gas does not grow with the round)."""
        assert self.link is not None
        link = self.link
        signed = [c.signed for c in accepted if c.signed is not None]
        leaves = [
            RewardLeaf(
                task_id=int(link.task_id),
                round=server_round,
                index=c.member_index,
                participant=s.participant,
                update_hash=s.commitment.update_hash,
                num_examples=s.commitment.num_examples,
                score=to_fixed_point(c.outcome.score),
                amount=c.outcome.reward,
            )
            for c, s in ((c, c.signed) for c in accepted)
            if s is not None
        ]
        record = MerkleRound.build(link.ledger.domain, link.task_id, server_round, leaves, signed)
        publish(record, link.records or self.store.root.parent, self.store)
        tree = record.round_root()
        open_next = self._opens_next(server_round)

        def commit() -> None:
            result = link.ledger.commit_round_root(
                link.task_id, RoundId(server_round), tree, outcome, open_next=open_next
            )
            report.committed, report.gas_used, report.tx_hash = (
                True,
                result.gas_used,
                result.tx_hash,
            )
            self._announce(report)

        link.queue.submit(commit)

    def _opens_next(self, server_round: int) -> bool:
        """Whether round ``server_round``'s commit also opens the next round: every round but
        the run's last (the next round's own opening then finds it done)."""
        return self.last_round is not None and server_round < self.last_round

    def _fail(self, report: RoundReport, reason: str) -> tuple[None, None]:
        log.warning("round %d failed: %s", report.round, reason)
        report.failed_reason = reason
        self._finish(report)
        self._aggregated(report)
        if self.link is None:
            self._announce(report)
            return None, None
        link = self.link

        def fail() -> TxResult:  # idempotent: a chain reset may run it again
            result = link.ledger.fail_round(link.task_id, RoundId(report.round), reason)
            if not result.already_recorded or not report.tx_hash:
                report.gas_used, report.tx_hash = result.gas_used, result.tx_hash
            return result

        link.queue.submit(fail, then=lambda _: self._announce(report))
        return None, None

    def _finish(self, report: RoundReport) -> None:
        before = self._stored_before.pop(report.round, self.store.bytes_written)
        report.store_bytes = self.store.bytes_written - before
        report.seconds = time.perf_counter() - self._started.get(report.round, time.perf_counter())
        self.reports.append(report)

    def _aggregated(self, report: RoundReport) -> None:
        if self.on_aggregated is not None:
            self.on_aggregated(report)

    def _announce(self, report: RoundReport) -> None:
        if self.on_round is not None:
            self.on_round(report)

    def flush(self) -> None:
        """Wait until every queued write is on chain; raise the first that failed."""
        if self.link is not None:
            self.link.queue.flush()

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _from_sampled(
        replies: list[Message],
        sampled: list[int],
        sent: Mapping[str, int] | None = None,
        lost: dict[int, str] | None = None,
    ) -> list[Message]:
        """The replies, less the SuperLink's error replies for a node it lost.

        Such a reply comes from the SuperLink's own node id, not the lost node's; it answers the
        message ``sent`` to the lost node (message id -> node id), whose absence reason goes to
        ``lost``. The lost node is recorded absent once, as every sampled node that did not reply.
        """
        kept = []
        for reply in replies:
            if reply.has_error() and sampled and reply.metadata.src_node_id not in sampled:
                node = (sent or {}).get(reply.metadata.reply_to_message_id)
                if node is not None and lost is not None:
                    lost[node] = lost_node_reason(reply.error.code, reply.error.reason or "")
                    log.warning("node %d lost: %s", node, lost[node])
                    continue
                log.warning("dropped an error reply of unsampled node %d: %s",
                            reply.metadata.src_node_id, reply.error.reason)  # fmt: skip
                continue
            kept.append(reply)
        return kept

    def _check(self, server_round: int, reply: Message) -> _Checked:
        outcome = ParticipantOutcome(node_id=reply.metadata.src_node_id)
        checked = _Checked(reply, outcome)
        try:
            self._check_reply(server_round, checked)
        except _Rejected as rejected:
            outcome.accepted, outcome.reason = False, str(rejected)
            log.warning(
                "round %d: dropped the reply of node %d: %s",
                server_round,
                outcome.node_id,
                rejected,
            )
        else:
            outcome.accepted = True
        return checked

    def _check_reply(self, server_round: int, checked: _Checked) -> None:
        reply, outcome = checked.message, checked.outcome
        if reply.has_error():  # the client sent no update: absent, not rejected
            outcome.absent = True
            raise _Rejected(f"client error: {_error_summary(reply.error.reason or '')}")
        content = reply.content
        if len(content.array_records) != 1 or len(content.metric_records) != 1:
            raise _Rejected("a reply needs exactly one ArrayRecord and one MetricRecord")
        weights = checked.weights = self._read_arrays(next(iter(content.array_records.values())))
        self._check_tensors(weights)
        metrics = next(iter(content.metric_records.values()))
        examples = metrics.get(METRIC_NUM_EXAMPLES)
        if not isinstance(examples, int) or examples <= 0:
            raise _Rejected(f"metric {METRIC_NUM_EXAMPLES} must be a positive integer")
        update_hash = model_hash(weights)
        outcome.update_hash, outcome.num_examples = to_hex(update_hash), examples
        epsilon = metrics.get(METRIC_DP_EPSILON)  # DP: the site's cumulative spend, reported
        outcome.epsilon = float(epsilon) if isinstance(epsilon, (int, float)) else None
        if self.link is None:  # no ledger: the declared address, or the node id
            declared = content.config_records.get(RECORD_PARTICIPANT)
            address = declared.get(COMMIT_PARTICIPANT) if declared is not None else None
            outcome.address = str(address) if address else f"node-{outcome.node_id}"
            return
        self._check_commitment(server_round, checked, update_hash, examples)

    def _read_arrays(self, record: ArrayRecord) -> Weights:
        """The reply's tensors; an update far larger than the model is refused unread."""
        size = sum(len(array.data) for array in record.values())
        if size > self.max_reply_bytes:
            raise _Rejected(
                f"update of {size} bytes, far larger than the model (at most "
                f"{self.max_reply_bytes} bytes accepted)"
            )
        try:
            return arrays_to_numpy(record)
        except (TypeError, ValueError, OSError, EOFError) as exc:
            raise _Rejected(f"arrays cannot be read as numpy tensors: {exc}") from exc

    def _check_tensors(self, weights: Mapping[str, np.ndarray[Any, Any]]) -> None:
        if set(weights) != set(self.template):
            missing = sorted(set(self.template) - set(weights))
            extra = sorted(set(weights) - set(self.template))
            raise _Rejected(f"tensor names differ from the model: missing {missing}, extra {extra}")
        for name, w in weights.items():
            shape, dtype = self.template[name]
            if w.shape != shape or w.dtype != dtype:
                given, expected = f"{w.dtype}{list(w.shape)}", f"{dtype}{list(shape)}"
                raise _Rejected(f"tensor {name} is {given}, the model's is {expected}")
            if not np.isfinite(w).all():
                raise _Rejected(f"tensor {name} holds NaN or infinite values")

    def _check_commitment(
        self, server_round: int, checked: _Checked, update_hash: bytes, examples: int
    ) -> None:
        assert self.link is not None
        record = checked.message.content.config_records.get(RECORD_COMMITMENT)
        if record is None:
            raise _Rejected("no signed commitment in the reply")
        try:
            participant = str(record[COMMIT_PARTICIPANT])
            claimed = bytes(record[COMMIT_UPDATE_HASH])  # type: ignore[arg-type]
            signature = bytes(record[COMMIT_SIGNATURE])  # type: ignore[arg-type]
            committed_examples = int(record[COMMIT_NUM_EXAMPLES])  # type: ignore[arg-type]
            epsilon = int(record.get(COMMIT_EPSILON, 0))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise _Rejected(f"malformed commitment: {exc}") from exc
        checked.outcome.address = participant
        if claimed != update_hash:
            raise _Rejected(
                f"update hash mismatch: committed {to_hex(claimed)}, arrays hash to "
                f"{to_hex(update_hash)}"
            )
        if committed_examples != examples:
            raise _Rejected(f"committed {committed_examples} examples, reported {examples}")
        try:
            commitment = Commitment(
                self.link.task_id, RoundId(server_round), claimed, examples, epsilon
            )
            signed = SignedCommitment(commitment, participant, signature)
            signer = recover_signer(self.link.ledger.domain, signed)
        except (ValueError, TypeError) as exc:
            raise _Rejected(f"bad signature: {exc}") from exc
        if signer.lower() != participant.lower():
            raise _Rejected(f"signature is by {signer}, not by {participant}")
        checked.signed = signed
        if self.link.direct:
            self._check_direct(server_round, checked, claimed)

    def _check_direct(self, server_round: int, checked: _Checked, claimed: bytes) -> None:
        assert self.link is not None
        held = self.link.ledger.direct_commitment(
            self.link.task_id, RoundId(server_round), checked.outcome.address
        )
        if held == claimed:
            checked.on_chain = True
        elif held != b"\x00" * 32:
            raise _Rejected(f"a different commitment {to_hex(held)} is on chain for this round")

    def _check_memberships(self, server_round: int, checked: list[_Checked]) -> None:
        """Drop replies of signers that are not eligible members of the task for this round, or
        that claim more examples than the dataset size they consented to: one chain read per
        round. What the contract would skip is refused here, with its reason, before relaying."""
        if self.link is None:
            return
        candidates = [c for c in checked if c.outcome.accepted]
        if not candidates:
            return
        link = self.link
        held = link.ledger.memberships(link.task_id, [c.outcome.address for c in candidates])
        spends = [c.signed.commitment.epsilon if c.signed else 0 for c in candidates]
        cap = link.ledger.task(link.task_id).epsilon_cap if any(spends) else 0  # DP runs only
        for c, member, spent in zip(candidates, held, spends, strict=True):
            problem = _membership_problem(member, server_round, int(link.task_id), c.outcome)
            problem = problem or _spend_problem(member, spent, cap)
            if problem:
                c.outcome.accepted, c.outcome.reason = False, problem
                log.warning("round %d: dropped the reply of %s: %s",
                            server_round, c.outcome.address, problem)  # fmt: skip
            c.member_index = member.index

    @staticmethod
    def _dedupe(checked: list[_Checked]) -> list[_Checked]:
        seen: set[str] = set()
        for c in checked:
            who = c.outcome.address.lower()
            if c.outcome.accepted and who in seen:
                c.outcome.accepted, c.outcome.reason = False, "second reply of this participant"
            seen.add(who)
        return checked

    # ------------------------------------------------------------------ delegated

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(self._actual(server_round), arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(self._actual(server_round), replies)

    def summary(self) -> None:
        log.info("LedgerStrategy around %s", type(self.inner).__name__)
        self.inner.summary()


def _membership_problem(
    member: Membership, server_round: int, task_id: int, outcome: ParticipantOutcome
) -> str:
    """Why a reply cannot count by the task's membership ("" when it can)."""
    if not member.joined:
        return (
            f"{outcome.address} is not a member of task {task_id}: it joins with "
            "`fedchain task join`"
        )
    if not member.eligible(server_round):
        if member.left_round:
            return f"{outcome.address} left task {task_id} from round {member.left_round}"
        return f"{outcome.address} joined task {task_id} only from round {member.joined_round}"
    if outcome.num_examples > member.dataset_size:
        return (
            f"num-examples {outcome.num_examples} is above the dataset size "
            f"{member.dataset_size} it consented to"
        )
    return ""


def _spend_problem(member: Membership, epsilon: int, cap: int) -> str:
    """Why a reply's signed privacy spend (micro-epsilon) cannot count ("" when it can): the
    contract would skip it (issue 17)."""
    if epsilon > cap:
        return f"signed a privacy spend of {epsilon} micro-epsilon, above the task's cap {cap}"
    if epsilon < member.epsilon_spent:
        return (
            f"signed a privacy spend of {epsilon} micro-epsilon, below the "
            f"{member.epsilon_spent} it has on record"
        )
    return ""


def _apply_skips(report: RoundReport, events: list[LedgerEvent], server_round: int) -> None:
    """What the contract skipped in the round's commit (a participant that left or committed
    directly meanwhile): its reward stays in the pool, and the report says why."""
    for event in events:
        if event.name not in ("CommitmentSkipped", "RewardSkipped"):
            continue
        if int(event.args["round"]) != server_round:
            continue
        reason = SkipReason(int(event.args["reason"]))
        who = str(event.args["participant"]).lower()
        for outcome in report.participants:
            if outcome.address.lower() != who or reason == SkipReason.COMMITTED_DIRECTLY:
                continue
            if event.name == "RewardSkipped":
                report.unearned += outcome.reward
                outcome.reward = 0
            outcome.skipped = f"skipped on chain: {reason.describe()}"


def _update_weights(inner: Strategy, n: int, server_round: int) -> list[float] | None:
    """How much each of the round's ``n`` updates counted in ``inner``'s aggregation: its
    ``last_update_weights`` (one per reply, in the replies' order), or None when it cannot say.

    Read after the round's full aggregation and before any coalition's (which run on copies).
    """
    weights = getattr(inner, "last_update_weights", None)
    if weights is None:
        return None
    values = [float(w) for w in weights]
    if len(values) != n or not all(np.isfinite(w) and w >= 0 for w in values):
        log.warning(
            "round %d: %s gave %d update weights for %d updates (or a negative one): "
            "ignored, every update may earn",
            server_round, type(inner).__name__, len(values), n,
        )  # fmt: skip
        return None
    return values


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MAX_REASON = 240


def _error_summary(reason: str) -> str:
    """A client's error in one line: the exception's own message, not the engine's traceback.

    Flower's simulation wraps a ClientApp's exception in a Ray traceback that ends with
    ``Message: <the exception's message>``; a deployed SuperNode reports the message itself.
    """
    text = _ANSI.sub("", reason)
    marker = "Message: "
    if marker in text:
        text = text[text.rindex(marker) + len(marker) :]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = (lines[0] if lines else "no reason given").rstrip("'>")
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


class _Rejected(Exception):
    """A reply fails a check; the message is the reason recorded."""


@contextmanager
def _seeded_sampling(seed: int, server_round: int) -> Iterator[None]:
    """Flower samples a round's nodes (``--fraction``) with the global ``random`` module: seed it
    from the task's seed and the round for that call, then give the module its state back, so
    the same seed samples the same nodes (of the same node ids: the in-process engine's; Flower's
    simulation engine gives its nodes random ids) whatever ran before in the process."""
    state = random.getstate()
    random.seed(f"fedchain sampling {seed} {server_round}")
    try:
        yield
    finally:
        random.setstate(state)
