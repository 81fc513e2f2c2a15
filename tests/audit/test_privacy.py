"""The audit's privacy check (issue 17): every recorded spend recomputes from the spec and the
rounds its participant took part in, within the cap. The chain is written directly (no run), so
a client that under-reports, or a task created with another cap, can be staged."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
from eth_account.signers.local import LocalAccount
from flwr.app import Context, RecordDict

from fedchain.audit.lineage import TaskLineage, rebuild_lineage
from fedchain.audit.privacy import check_privacy
from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import (
    Commitment,
    Consent,
    RoundId,
    RoundOutcome,
    TaskId,
    TaskTerms,
    privacy_task_terms,
)
from fedchain.chain.signing import sign_commitment, sign_consent
from fedchain.federation.privacy_budget import epsilon_after_round, record_round
from fedchain.ml import privacy as accounting
from fedchain.ml.privacy import epsilon_spent
from fedchain.privacy import to_micro
from fedchain.settings import RunSettings
from fedchain.task import TaskSpec

SIZE = 100  # each site's consented dataset size
SPEC = TaskSpec(
    dataset="breast-cancer", model="logreg", num_classes=2, input_shape=(30,), strategy="fedavg",
    local_epochs=1, learning_rate=0.1, batch_size=10, proximal_mu=0.0,
    holdout_hash="0x" + "11" * 32, holdout_fraction=0.2, initial_model_hash="0x" + "22" * 32,
    dp_epsilon=8.0, dp_delta=1e-5, dp_clip_norm=1.0, dp_rounds=3,
)  # fmt: skip
NO_DP = replace(SPEC, dp_epsilon=0.0, dp_delta=0.0, dp_clip_norm=0.0, dp_rounds=0)
PRV_SPEC = replace(SPEC, dp_accountant="prv")  # SPEC has none: an older spec, counted with RDP


def _h(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _spend(rounds: int) -> int:
    """What a site of SIZE examples has spent after ``rounds`` rounds, on chain."""
    assert SPEC.privacy is not None
    return to_micro(
        epsilon_spent(
            SPEC.privacy, dataset_size=SIZE, batch_size=SPEC.batch_size,
            local_epochs=SPEC.local_epochs, rounds_taken=rounds, planned_rounds=SPEC.dp_rounds,
        )
    )  # fmt: skip


@pytest.fixture(scope="module")
def chain() -> Iterator[EmbeddedChain]:
    embedded = EmbeddedChain()
    yield embedded
    embedded.close()


@pytest.fixture
def gw(chain: EmbeddedChain) -> LedgerGateway:
    """A fresh ledger on the module's chain; DEVNET TEST account 0 coordinates."""
    return deploy(chain.w3, devnet_accounts(1)[0])


def _task(
    gw: LedgerGateway, spec: TaskSpec, sites: Sequence[LocalAccount], cap: int | None = None
) -> TaskId:
    """A task for ``spec`` (its cap, or ``cap``), with ``sites`` registered and joined."""
    terms = privacy_task_terms(spec.privacy) if cap is None else TaskTerms(epsilon_cap=cap)
    task_id, _ = gw.create_task(spec.spec_hash(), _h("init"), 0, terms=terms)
    gw.register_organisations(
        [(a.address, f"Org {a.address[:6]}", _h(a.address), "") for a in sites]
    )
    consents = [
        sign_consent(a, gw.domain, Consent(task_id, spec.spec_hash(), SIZE, _h(f"d{a.address}")))
        for a in sites
    ]
    gw.join_task_for(task_id, consents)
    return task_id


def _round(
    gw: LedgerGateway, task_id: TaskId, round_id: int, spends: dict[LocalAccount, int]
) -> None:
    """Opens and commits ``round_id`` with each site's signed commitment carrying its spend."""
    parent = _h("init") if round_id == 1 else _h(f"g{round_id - 1}")
    gw.open_round(task_id, RoundId(round_id), parent)
    signed = [
        sign_commitment(
            a,
            gw.domain,
            Commitment(task_id, RoundId(round_id), _h(f"u{a.address}{round_id}"), 10, e),
        )
        for a, e in spends.items()
    ]
    gw.commit_round(
        task_id, RoundId(round_id), signed, RoundOutcome(_h(f"g{round_id}"), 900_000, 1), []
    )


def _lineage(gw: LedgerGateway, task_id: TaskId) -> TaskLineage:
    return rebuild_lineage(gw).tasks[int(task_id)]


def test_spends_that_follow_the_spec_pass(gw: LedgerGateway) -> None:
    # Prepare: alice takes part in rounds 1 and 2, bob only in round 2 (his first round)
    alice, bob = devnet_accounts(3)[1:3]
    task_id = _task(gw, SPEC, [alice, bob])
    _round(gw, task_id, 1, {alice: _spend(1)})
    _round(gw, task_id, 2, {alice: _spend(2), bob: _spend(1)})

    # Execute
    rows = check_privacy(_lineage(gw, task_id), SPEC)

    # Assert
    (row,) = rows
    assert row.ok, row.detail
    assert "3 spends of 2 participants" in row.detail
    assert f"cap of {to_micro(8.0)}" in row.detail


def test_a_site_that_under_reports_its_spend_fails_the_check(gw: LedgerGateway) -> None:
    # Prepare: bob signs round 2 with his round-1 spend (the chain accepts it: not a decrease)
    alice, bob = devnet_accounts(3)[1:3]
    task_id = _task(gw, SPEC, [alice, bob])
    _round(gw, task_id, 1, {alice: _spend(1), bob: _spend(1)})
    _round(gw, task_id, 2, {alice: _spend(2), bob: _spend(1)})

    # Execute
    rows = check_privacy(_lineage(gw, task_id), SPEC)

    # Assert
    (row,) = rows
    assert not row.ok
    assert (row.round, row.participant) == (2, bob.address)
    assert "under-reports" in row.detail
    assert str(_spend(2)) in row.detail
    assert gw.privacy_spent(task_id, bob.address) == _spend(1)


def test_a_site_counting_a_round_the_chain_did_not_record_is_named(gw: LedgerGateway) -> None:
    # Prepare: alice's first recorded commitment carries two rounds' spend
    alice = devnet_accounts(2)[1]
    task_id = _task(gw, SPEC, [alice])
    _round(gw, task_id, 1, {alice: _spend(2)})

    # Execute
    (row,) = check_privacy(_lineage(gw, task_id), SPEC)

    # Assert
    assert not row.ok
    assert "counts a round the chain does not" in row.detail


def test_a_task_created_with_another_cap_fails(gw: LedgerGateway) -> None:
    # Prepare: the spec says epsilon 8, the chain's task caps at 9
    alice = devnet_accounts(2)[1]
    task_id = _task(gw, SPEC, [alice], cap=9_000_000)
    _round(gw, task_id, 1, {alice: _spend(1)})

    # Execute
    rows = check_privacy(_lineage(gw, task_id), SPEC)

    # Assert
    assert [r.ok for r in rows] == [False]
    assert "the chain's cap is 9000000 micro-epsilon" in rows[0].detail


def test_without_dp_terms_the_check_is_not_applicable(gw: LedgerGateway) -> None:
    # Prepare
    alice = devnet_accounts(2)[1]
    task_id = _task(gw, NO_DP, [alice])
    _round(gw, task_id, 1, {alice: 0})

    # Execute
    (row,) = check_privacy(_lineage(gw, task_id), NO_DP)

    # Assert
    assert row.ok
    assert row.checked
    assert row.detail.startswith("not applicable")


def test_a_dp_task_without_its_spec_is_not_checked(gw: LedgerGateway) -> None:
    # Prepare
    alice = devnet_accounts(2)[1]
    task_id = _task(gw, SPEC, [alice])
    _round(gw, task_id, 1, {alice: _spend(1)})

    # Execute
    (row,) = check_privacy(_lineage(gw, task_id), None, given=False)

    # Assert
    assert not row.checked
    assert "--spec" in row.detail


def _client_spends(spec: TaskSpec, rounds: int) -> list[int]:
    """The micro-epsilons a site's node reports after each of its rounds (its budget check)."""
    settings = spec.training_settings(RunSettings())
    context = Context(run_id=1, node_id=2, node_config={}, state=RecordDict(), run_config={})
    spends = []
    for _ in range(rounds):
        epsilon = epsilon_after_round(settings, SIZE, context)
        assert epsilon is not None
        spends.append(to_micro(epsilon))
        record_round(context)
    return spends


def test_a_prv_task_recomputes_the_clients_spends_and_catches_a_wrong_one(
    gw: LedgerGateway,
) -> None:
    # Prepare: alice commits what her node computed; bob the same, one micro-epsilon short
    alice, bob = devnet_accounts(3)[1:3]
    client = _client_spends(PRV_SPEC, 2)
    honest, wrong = _task(gw, PRV_SPEC, [alice]), _task(gw, PRV_SPEC, [bob])
    for round_id, spend in enumerate(client, start=1):
        _round(gw, honest, round_id, {alice: spend})
        _round(gw, wrong, round_id, {bob: spend - (round_id == 2)})

    # Execute
    (passed,) = check_privacy(_lineage(gw, honest), PRV_SPEC)
    misses = accounting._prv_epsilon.cache_info().misses
    (failed,) = check_privacy(_lineage(gw, wrong), PRV_SPEC)

    # Assert: the audit's PRV epsilons are the client's, the short one is named, the second
    # audit computes no PRV epsilon anew (cached per noise, sample rate and steps), and PRV's
    # spends are not RDP's (the accountant matters: an older spec keeps RDP's)
    assert passed.ok, passed.detail
    assert "PRV accountant" in passed.detail
    assert not failed.ok
    assert (failed.round, failed.participant) == (2, bob.address)
    assert "under-reports" in failed.detail
    assert accounting._prv_epsilon.cache_info().misses == misses
    assert client[1] < _spend(2)
