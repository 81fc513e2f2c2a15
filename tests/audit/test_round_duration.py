"""The audit checks each round of a task against its minimum round duration, from block times."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedchain.audit import LEDGER, audit_lineage
from fedchain.audit.lineage import LedgerLineage, rebuild_lineage
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import BLOCK_INTERVAL_S, EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.records import (
    Commitment,
    Consent,
    Reward,
    RoundId,
    RoundOutcome,
    TaskTerms,
)
from fedchain.chain.signing import sign_commitment, sign_consent
from fedchain.store import ModelStore

PER_ROUND = 1_000
MIN_DURATION = 20  # s: more than one embedded block (BLOCK_INTERVAL_S), less than two


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> tuple[LedgerLineage, Path]:
    """Task 1 with a minimum round duration: round 1 committed blocks after it opened."""
    store_dir = tmp_path_factory.mktemp("duration") / "store"
    store = ModelStore(store_dir)
    coordinator, p1 = devnet_accounts(2)  # DEVNET TEST keys
    gw = deploy(EmbeddedChain().w3, coordinator)
    initial, update, final = (store.put({"w": np.full(3, i, np.float32)}) for i in range(3))
    spec_hash = hashlib.sha256(b"spec").digest()
    terms = TaskTerms(min_round_duration=MIN_DURATION)
    task, _ = gw.create_task(spec_hash, initial, PER_ROUND, terms=terms)
    gw.fund_task(task, 10 * PER_ROUND)
    gw.register_organisations([(p1.address, "Hospital 1", b"\x01" * 32, "")])
    consent = Consent(task, spec_hash, 100, b"\x03" * 32)
    gw.join_task_for(task, [sign_consent(p1, gw.domain, consent)])
    gw.open_round(task, RoundId(1), initial)
    gw.fund_task(task, 1)  # blocks in between: the round lasts more than one block interval
    signed = sign_commitment(p1, gw.domain, Commitment(task, RoundId(1), update, 10))
    outcome = RoundOutcome(final, 900_000, 250_000, b"\x02" * 32)
    gw.commit_round(task, RoundId(1), [signed], outcome, [Reward(p1.address, 1_000_000, 100)])
    return rebuild_lineage(gw), store_dir


def test_a_round_that_lasted_its_minimum_passes(
    timed: tuple[LedgerLineage, Path],
) -> None:
    # Prepare
    lineage, store = timed
    entry = lineage.tasks[1].rounds[1]
    # Execute
    verdict = audit_lineage(lineage, store=store)
    # Assert: the block times were read, and the ledger row holds
    assert entry.opened_at is not None
    assert entry.closed_at is not None
    lasted = entry.closed_at - entry.opened_at
    assert lasted >= MIN_DURATION
    assert lasted % BLOCK_INTERVAL_S == 0  # whole blocks of the embedded chain
    assert not verdict.failures, verdict.failures


def test_a_round_recorded_shorter_than_its_minimum_fails(
    timed: tuple[LedgerLineage, Path],
) -> None:
    # Prepare: the round's commit time as a chain that broke the rule would give it
    lineage, store = timed
    entry = lineage.tasks[1].rounds[1]
    assert entry.opened_at is not None
    forged = replace(entry, closed_at=entry.opened_at + 5)
    lineage = replace(lineage, tasks={1: replace(lineage.tasks[1], rounds={1: forged})})
    # Execute
    verdict = audit_lineage(lineage, store=store)
    # Assert
    failures = [(c.check, c.round, c.detail) for c in verdict.failures]
    detail = "committed 5 s after it opened, under the task's minimum round duration of 20 s"
    assert failures == [(LEDGER, 1, detail)]
