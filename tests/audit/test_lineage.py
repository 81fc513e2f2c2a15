"""The lineage rebuilt from a scripted ledger (relayed and direct commitments, a failed round, a
withdrawal, a claim), and the checks that a correct contract never lets fail on chain: each is
made to fail by altering the rebuilt lineage, as a forged node or calldata would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from eth_account.signers.local import LocalAccount

from fedchain.audit import (
    BUDGET,
    CLAIMS,
    EXIT_NOT_CHECKED,
    FAILED,
    GLOBALS,
    LEDGER,
    MEMBERS,
    PARENTS,
    SIGNATURES,
    SPEC,
    UPDATES,
    Verdict,
    audit_lineage,
)
from fedchain.audit.lineage import (
    Claim,
    LedgerLineage,
    ModelSighting,
    compact_to_signature,
    find_model,
    rebuild_lineage,
)
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import (
    Commitment,
    Consent,
    Reward,
    RoundId,
    RoundOutcome,
    SignedCommitment,
    TaskId,
)
from fedchain.chain.signing import sign_commitment, sign_consent
from fedchain.hashing import ModelHash, to_hex
from fedchain.store import ModelStore

PER_ROUND = 1_000
REASON = "1 valid updates, 1 needed"


def _model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((4, 3)).astype(np.float32)}


@dataclass
class Scripted:
    gateway: LedgerGateway
    store: Path
    p1: LocalAccount
    p2: LocalAccount
    p3: LocalAccount
    signed: dict[tuple[int, str], SignedCommitment]
    models: dict[str, ModelHash]


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Scripted:
    """Task 1: round 1 relayed (p1, p2), round 2 failed, round 3 relayed (p1) and direct (p3);
    then p2 leaves the task and p1 claims."""
    store_dir = tmp_path_factory.mktemp("lineage") / "store"
    store = ModelStore(store_dir)
    coordinator, p1, p2, p3 = devnet_accounts(4)  # DEVNET TEST keys
    gw = deploy(EmbeddedChain().w3, coordinator)
    models = {name: store.put(_model(i)) for i, name in enumerate(
        ["initial", "u1-p1", "u1-p2", "global1", "u3-p1", "u3-p3", "global3"]
    )}  # fmt: skip
    task, _ = gw.create_task(hashlib.sha256(b"spec").digest(), models["initial"], PER_ROUND)
    gw.fund_task(task, 10 * PER_ROUND)
    gw.register_organisations(
        [(p.address, f"Hospital {i}", b"\x01" * 32, "") for i, p in enumerate((p1, p2, p3))]
    )
    spec_hash = hashlib.sha256(b"spec").digest()
    gw.join_task_for(
        task,
        [sign_consent(p, gw.domain, Consent(task, spec_hash, 100, b"\x03" * 32)) for p in (p1, p2)],
    )
    gw.as_account(p3).join_task(task, 100, b"\x03" * 32)  # p3 joins by itself
    signed: dict[tuple[int, str], SignedCommitment] = {}

    def sign(account: LocalAccount, round_id: int, update: str) -> SignedCommitment:
        commitment = Commitment(task, RoundId(round_id), models[update], 10)
        signed[round_id, account.address] = sign_commitment(account, gw.domain, commitment)
        return signed[round_id, account.address]

    def outcome(name: str) -> RoundOutcome:
        return RoundOutcome(models[name], 900_000, 250_000, b"\x02" * 32)

    gw.open_round(task, RoundId(1), models["initial"])
    gw.commit_round(
        task,
        RoundId(1),
        [sign(p1, 1, "u1-p1"), sign(p2, 1, "u1-p2")],
        outcome("global1"),
        [Reward(p1.address, 600_000, 600), Reward(p2.address, 400_000, 400)],
    )
    gw.open_round(task, RoundId(2), models["global1"])
    gw.fail_round(task, RoundId(2), REASON)
    gw.open_round(task, RoundId(3), models["global1"])
    gw.as_account(p3).submit_commitment(Commitment(task, RoundId(3), models["u3-p3"], 10))
    gw.commit_round(
        task,
        RoundId(3),
        [sign(p1, 3, "u3-p1")],
        outcome("global3"),
        [Reward(p1.address, 500_000, 500), Reward(p3.address, 500_000, 500)],
    )
    gw.as_account(p2).leave_task(task)
    gw.as_account(p1).claim()
    return Scripted(gw, store_dir, p1, p2, p3, signed, models)


@pytest.fixture
def lineage(scripted: Scripted) -> LedgerLineage:
    return rebuild_lineage(scripted.gateway)


def _failures(verdict: Verdict) -> list[tuple[str, int | None, str | None]]:
    assert not verdict.ok
    return [(c.check, c.round, c.participant) for c in verdict.failures]


def test_the_scripted_ledger_passes_and_lists_its_failed_round(
    scripted: Scripted, lineage: LedgerLineage
) -> None:
    # Execute
    verdict = audit_lineage(lineage, store=scripted.store)
    # Assert: nothing failed; the spec, given no spec file, is not checked (never "ok")
    assert not verdict.failures, verdict.failures
    assert [(c.check, c.status) for c in verdict.unchecked] == [(SPEC, "not checked")]
    assert (verdict.ok, verdict.exit_code) == (False, EXIT_NOT_CHECKED)
    rows = {c.check: c for c in verdict.checks}
    assert (rows[FAILED].round, rows[FAILED].detail) == (2, REASON)
    assert rows[SIGNATURES].detail.startswith("4 commitments")
    assert rows[UPDATES].detail == "4 accepted updates"
    assert rows[CLAIMS].detail.startswith("1 participants claimed")


def test_relayed_signatures_come_from_the_commit_calldata(
    scripted: Scripted, lineage: LedgerLineage
) -> None:
    rounds = lineage.tasks[1].rounds
    assert [r.state for r in rounds.values()] == ["committed", "failed", "committed"]
    for round_id in (1, 3):
        for c in rounds[round_id].commitments:
            if c.relayed:
                assert c.signature == scripted.signed[round_id, c.participant].signature
            else:
                assert (c.participant, c.sender) == (scripted.p3.address, scripted.p3.address)
    assert [c.participant for c in rounds[3].accepted] == sorted(
        [scripted.p1.address, scripted.p3.address],
        key=lambda a: next(c.update_hash for c in rounds[3].commitments if c.participant == a),
    )


def test_compact_signatures_expand_to_the_signed_bytes(scripted: Scripted) -> None:
    for signed in scripted.signed.values():
        assert compact_to_signature(*signed.compact()) == signed.signature


def test_a_forged_signature_is_named(scripted: Scripted, lineage: LedgerLineage) -> None:
    # Prepare: p2's round-1 commitment carrying p1's signature
    entry = lineage.tasks[1].rounds[1]
    forged = scripted.signed[1, scripted.p1.address].signature
    entry.commitments = [
        replace(c, signature=forged) if c.participant == scripted.p2.address else c
        for c in entry.commitments
    ]
    # Execute
    verdict = audit_lineage(lineage, store=scripted.store)
    # Assert
    assert _failures(verdict) == [(SIGNATURES, 1, scripted.p2.address)]
    assert "not the participant" in verdict.failures[0].detail


@pytest.mark.parametrize("how", ["never joined", "left from round 3"])
def test_a_signer_not_a_member_for_its_round_is_named(
    scripted: Scripted, lineage: LedgerLineage, how: str
) -> None:
    # Prepare
    members = lineage.tasks[1].members
    if how == "never joined":
        del members[scripted.p3.address]
    else:
        members[scripted.p3.address].left_round = 3
    # Execute
    verdict = audit_lineage(lineage, store=scripted.store)
    # Assert: the commitment, and the reward paid to a non-member, are named
    assert _failures(verdict) == [
        (SIGNATURES, 3, scripted.p3.address),
        (BUDGET, 3, scripted.p3.address),
    ]
    assert how in verdict.failures[0].detail
    assert "paid to a non-member" in verdict.failures[1].detail


def test_the_members_and_their_consents_come_from_the_chain(lineage: LedgerLineage) -> None:
    # Execute
    members = lineage.tasks[1].members
    # Assert
    assert [(m.index, m.relayed, m.left_round) for m in members.values()] == [
        (0, True, 0),
        (1, True, 4),
        (2, False, 0),
    ]
    assert all(m.signature is not None for m in members.values() if m.relayed)
    assert [o.name for o in lineage.organisations.values()] == [
        "Hospital 0",
        "Hospital 1",
        "Hospital 2",
    ]


def test_a_forged_consent_is_named(scripted: Scripted, lineage: LedgerLineage) -> None:
    # Prepare: p2's consent replaced by one p1 signed
    members = lineage.tasks[1].members
    members[scripted.p2.address].signature = members[scripted.p1.address].signature
    # Execute
    verdict = audit_lineage(lineage, store=scripted.store)
    # Assert
    assert _failures(verdict) == [(MEMBERS, 1, scripted.p2.address)]
    assert "not by the member" in verdict.failures[0].detail


def test_a_parent_that_is_not_the_previous_global_model_is_named(
    scripted: Scripted, lineage: LedgerLineage
) -> None:
    lineage.tasks[1].rounds[3].parent_hash = to_hex(scripted.models["initial"])
    assert _failures(audit_lineage(lineage, store=scripted.store)) == [(PARENTS, 3, None)]


def test_rewards_over_the_budget_are_named(scripted: Scripted, lineage: LedgerLineage) -> None:
    entry = lineage.tasks[1].rounds[1]
    entry.rewards = [replace(r, amount=r.amount + PER_ROUND) for r in entry.rewards]
    entry.total_reward = sum(r.amount for r in entry.rewards)
    entry.settled = (entry.total_reward, PER_ROUND - entry.total_reward)
    assert _failures(audit_lineage(lineage, store=scripted.store)) == [(BUDGET, 1, None)]


def test_claims_over_the_attributions_are_named(scripted: Scripted, lineage: LedgerLineage) -> None:
    token = lineage.tasks[1].token
    lineage.claims.append(Claim(scripted.p2.address, token, 401, (10**9, 0)))
    verdict = audit_lineage(lineage, store=scripted.store)
    assert _failures(verdict) == [(CLAIMS, None, scripted.p2.address)]
    assert "claimed 401" in verdict.failures[0].detail


def test_events_disagreeing_with_the_commit_are_named(
    scripted: Scripted, lineage: LedgerLineage
) -> None:
    lineage.tasks[1].rounds[3].commitments.pop()
    failures = _failures(audit_lineage(lineage, store=scripted.store))
    assert (LEDGER, 3, None) in failures


def test_without_a_store_the_model_checks_are_not_checked_and_say_to_pass_one(
    lineage: LedgerLineage,
) -> None:
    verdict = audit_lineage(lineage, store=None)
    unchecked = [(c.check, c.round, c.participant) for c in verdict.unchecked]
    assert unchecked == [(SPEC, None, None), (GLOBALS, None, None), (UPDATES, None, None)]
    assert all("--store" in c.detail for c in verdict.unchecked if c.check != SPEC)
    assert not verdict.failures
    assert verdict.exit_code == EXIT_NOT_CHECKED


def test_an_unknown_task_is_named(scripted: Scripted, lineage: LedgerLineage) -> None:
    verdict = audit_lineage(lineage, store=scripted.store, task=7)
    assert (LEDGER, None, None) in _failures(verdict)
    assert verdict.failures[0].task == 7


def test_models_are_found_where_the_ledger_recorded_them(
    scripted: Scripted, lineage: LedgerLineage
) -> None:
    def where(name: str) -> list[ModelSighting]:
        return find_model(lineage, to_hex(scripted.models[name]))

    assert where("global3") == [ModelSighting(1, 3, "global model")]
    assert where("initial") == [ModelSighting(1, 0, "initial model")]
    assert where("u3-p3") == [ModelSighting(1, 3, "update", scripted.p3.address)]
    assert find_model(lineage, "0x" + "ab" * 32) == []
    assert TaskId(1) in lineage.tasks
