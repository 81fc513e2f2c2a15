"""The Ledger through LedgerGateway on the embedded chain: records, events, typed reverts."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedchain.audit.lineage import ledger_calls
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import (
    REVERT_ERRORS,
    AccessControlUnauthorizedAccount,
    ContractRevert,
    EnforcedPause,
    ERC20InsufficientBalance,
    LedgerClaimPeriodNotOver,
    LedgerConsentSignatureInvalid,
    LedgerDuplicateCommitment,
    LedgerExamplesAboveDataset,
    LedgerMemberLeft,
    LedgerNotCoordinator,
    LedgerNotEligible,
    LedgerNotFunder,
    LedgerNotMember,
    LedgerNotTaskCoordinator,
    LedgerParentMismatch,
    LedgerPoolInsufficient,
    LedgerRewardWithoutCommitment,
    LedgerRoundAlreadyCommitted,
    LedgerRoundBudgetExceeded,
    LedgerRoundNotOpen,
    LedgerRoundOutOfOrder,
    LedgerRoundStillOpen,
    LedgerSignatureInvalid,
    LedgerSpecMismatch,
    LedgerTaskNotActive,
    LedgerTaskStillActive,
    LedgerTaskUnknown,
    LedgerZeroHash,
    OrganisationRegistryNotRegistered,
    OrganisationRegistryRevoked,
    OrganisationRegistryZeroAddress,
    RewardPoolZeroAmount,
)
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import (
    Commitment,
    Consent,
    ParticipantStatus,
    Reward,
    RoundId,
    RoundOutcome,
    RoundRecord,
    RoundState,
    SignedCommitment,
    SignedConsent,
    SkipReason,
    TaskId,
    TaskRecord,
    TaskStatus,
)
from fedchain.chain.signing import LedgerDomain, sign_consent

from ._support import Federation, checksummed, h, hex32, names, outcome

R1, R2, R3 = RoundId(1), RoundId(2), RoundId(3)


@pytest.fixture
def alice(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def bob(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[2]


@pytest.fixture
def carol(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[3]


@pytest.fixture
def stranger(accounts: list[LocalAccount]) -> LocalAccount:
    """Funded with ETH, never registered, holds no role."""
    return accounts[6]


@pytest.fixture
def trio(fed: Federation, alice: LocalAccount, bob: LocalAccount, carol: LocalAccount) -> TaskId:
    """A funded task (budget 1000, pool 10000) with alice, bob and carol registered."""
    task_id = fed.task()
    fed.register(alice, bob, carol)
    return task_id


def coordinator_role(gw: LedgerGateway) -> bytes:
    return bytes(gw.ledger.functions.COORDINATOR_ROLE().call())


# ---------------------------------------------------------------------- tasks


def test_create_task_numbers_tasks_from_one_and_stores_them(
    gw: LedgerGateway, coordinator: LocalAccount
) -> None:
    # Prepare: a fresh ledger
    # Execute
    first, created = gw.create_task(h("spec-a"), h("init-a"), 500)
    second, _ = gw.create_task(h("spec-b"), h("init-b"), 700)

    # Assert
    assert (first, second) == (1, 2)
    assert gw.task_count() == 2
    assert not created.already_recorded
    assert gw.task(first) == TaskRecord(
        task_id=first,
        spec_hash=h("spec-a"),
        head_model_hash=h("init-a"),
        token=gw.token.address,
        last_round=RoundId(0),
        coordinator=coordinator.address,
        reward_per_round=500,
        funded=0,
        attributed=0,
        claim_period=90 * 24 * 3600,  # the default terms of createTask
    )
    events = [e for e in gw.events() if e.name == "TaskCreated"]
    assert [e.args for e in events] == [
        {
            "taskId": 1,
            "coordinator": coordinator.address,
            "specHash": hex32("spec-a"),
            "initialModelHash": hex32("init-a"),
            "token": gw.token.address,
            "rewardPerRound": 500,
        },
        {
            "taskId": 2,
            "coordinator": coordinator.address,
            "specHash": hex32("spec-b"),
            "initialModelHash": hex32("init-b"),
            "token": gw.token.address,
            "rewardPerRound": 700,
        },
    ]
    assert events[0].tx_hash == created.tx_hash


def test_create_task_without_coordinator_role_is_refused(
    gw: LedgerGateway, stranger: LocalAccount
) -> None:
    # Prepare
    as_stranger = gw.as_account(stranger)

    # Execute
    with pytest.raises(AccessControlUnauthorizedAccount) as caught:
        as_stranger.create_task(h("spec"), h("init"), 100)

    # Assert
    assert checksummed(caught.value.arguments) == {
        "account": stranger.address,
        "neededRole": coordinator_role(gw),
    }
    assert "grant" in str(caught.value)
    assert gw.task_count() == 0


def test_create_task_with_a_zero_hash_is_refused(gw: LedgerGateway) -> None:
    # Execute
    with pytest.raises(LedgerZeroHash) as caught:
        gw.create_task(bytes(32), h("init"), 100)

    # Assert
    assert caught.value.arguments == {}
    assert "fedchain.hashing" in str(caught.value)
    assert gw.task_count() == 0


def test_granted_coordinator_creates_and_runs_its_own_task(
    gw: LedgerGateway, accounts: list[LocalAccount], alice: LocalAccount
) -> None:
    # Prepare
    second = accounts[5]
    gw.grant_coordinator(second.address)
    as_second = gw.as_account(second)
    gw.register_organisation(alice.address, "Alice", h("org-alice"))

    # Execute
    task_id, _ = as_second.create_task(h("spec-2"), h("init-2"), 0)
    Federation(as_second).join(task_id, alice)
    as_second.open_round(task_id, R1, h("init-2"))
    Federation(as_second).commit(task_id, 1, [alice], model="g-2")

    # Assert
    assert gw.task(task_id).coordinator == second.address
    assert gw.round(task_id, R1).state == RoundState.COMMITTED


def test_fund_task_approves_and_moves_tokens_into_the_pool(
    gw: LedgerGateway, fed: Federation, coordinator: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task(funding=0)
    before = gw.token_balance(coordinator.address)

    # Execute
    gw.fund_task(task_id, 3_000)
    gw.fund_task(task_id, 500)

    # Assert
    assert gw.task(task_id).funded == 3_500
    assert gw.token_balance(gw.ledger.address) == 3_500
    assert gw.token_balance(coordinator.address) == before - 3_500
    funded = [e.args for e in gw.events() if e.name == "TaskFunded"]
    assert funded == [
        {"taskId": task_id, "funder": coordinator.address, "amount": 3_000},
        {"taskId": task_id, "funder": coordinator.address, "amount": 500},
    ]


def test_fund_task_with_zero_tokens_is_refused(gw: LedgerGateway, fed: Federation) -> None:
    # Prepare
    task_id = fed.task(funding=0)

    # Execute
    with pytest.raises(RewardPoolZeroAmount) as caught:
        gw.fund_task(task_id, 0)

    # Assert
    assert "positive amount" in str(caught.value)
    assert gw.task(task_id).funded == 0


def test_fund_task_beyond_the_funders_balance_is_refused(
    gw: LedgerGateway, fed: Federation, stranger: LocalAccount
) -> None:
    # Prepare: the stranger holds no tokens
    task_id = fed.task(funding=0)

    # Execute
    with pytest.raises(ERC20InsufficientBalance) as caught:
        gw.as_account(stranger).fund_task(task_id, 5)

    # Assert
    assert checksummed(caught.value.arguments) == {
        "sender": stranger.address,
        "balance": 0,
        "needed": 5,
    }
    assert gw.task(task_id).funded == 0


def test_fund_unknown_task_is_refused_before_any_transaction(
    gw: LedgerGateway, embedded: EmbeddedChain, coordinator: LocalAccount
) -> None:
    # Prepare
    nonce = embedded.w3.eth.get_transaction_count(coordinator.address)

    # Execute
    with pytest.raises(LedgerTaskUnknown) as caught:
        gw.fund_task(TaskId(9), 5)

    # Assert: typed error, and no approve() sent to the zero address on the way
    assert caught.value.arguments == {"taskId": 9}
    assert "task id" in str(caught.value)
    assert embedded.w3.eth.get_transaction_count(coordinator.address) == nonce


def test_open_round_of_unknown_task_is_refused(gw: LedgerGateway) -> None:
    # Execute
    with pytest.raises(LedgerTaskUnknown) as caught:
        gw.open_round(TaskId(42), R1, h("init"))

    # Assert
    assert caught.value.arguments == {"taskId": 42}


# ---------------------------------------------------------------------- organisations


def test_register_organisation_records_its_name_metadata_and_uri(
    gw: LedgerGateway, alice: LocalAccount, coordinator: LocalAccount
) -> None:
    # Execute
    result = gw.register_organisation(alice.address, "St Mary's", h("org-a"), "https://x/a")

    # Assert
    record = gw.participant(alice.address)
    assert record.status == ParticipantStatus.REGISTERED
    assert (record.name, record.org_hash, record.uri) == ("St Mary's", h("org-a"), "https://x/a")
    assert record.registered_at == result.block_number
    assert record.label(alice.address) == f"St Mary's ({alice.address[:6]}…)"
    registered = [e.args for e in gw.events() if e.name == "OrganisationRegistered"]
    assert registered == [
        {
            "account": alice.address,
            "registrar": coordinator.address,
            "name": "St Mary's",
            "metadataHash": hex32("org-a"),
            "uri": "https://x/a",
        }
    ]


def test_register_again_with_the_same_record_is_already_recorded_another_updates_it(
    gw: LedgerGateway, alice: LocalAccount
) -> None:
    # Prepare
    gw.register_organisation(alice.address, "A", h("org-a"))

    # Execute
    again = gw.register_organisation(alice.address, "A", h("org-a"))
    renamed = gw.register_organisation(alice.address, "A2", h("org-a2"))

    # Assert
    assert again.already_recorded
    assert not renamed.already_recorded
    assert names(gw.events(), "OrganisationRegistered") == ["OrganisationRegistered"] * 2
    assert gw.participant(alice.address).name == "A2"


def test_register_several_organisations_in_one_multicall(
    gw: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    # Prepare
    people = accounts[1:5]

    # Execute
    first = gw.register_organisations(
        [(p.address, f"O{i}", h(f"o{i}"), "") for i, p in enumerate(people)]
    )

    # Assert
    registered = [e for e in gw.events() if e.name == "OrganisationRegistered"]
    assert len(registered) == 4
    assert {e.tx_hash for e in registered} == {first.tx_hash}
    assert [r.name for r in gw.participants([p.address for p in people])] == [
        "O0",
        "O1",
        "O2",
        "O3",
    ]


def test_register_the_zero_address_is_refused(gw: LedgerGateway) -> None:
    # Execute
    with pytest.raises(OrganisationRegistryZeroAddress) as caught:
        gw.register_organisation("0x" + "00" * 20, "Zero", h("org"))

    # Assert
    assert "account address" in str(caught.value)


def test_register_by_a_non_registrar_is_refused(
    gw: LedgerGateway, alice: LocalAccount, stranger: LocalAccount
) -> None:
    # Execute
    with pytest.raises(AccessControlUnauthorizedAccount) as caught:
        gw.as_account(stranger).register_organisation(alice.address, "A", h("org-a"))

    # Assert
    assert checksummed(caught.value.arguments)["account"] == stranger.address
    assert gw.participant(alice.address).status == ParticipantStatus.NONE


def test_a_revoked_organisation_cannot_join_a_task(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task()
    gw.register_organisation(alice.address, "A", h("org-a"))
    gw.revoke_organisation(alice.address)

    # Execute
    with pytest.raises(OrganisationRegistryRevoked):
        fed.join(task_id, alice)

    # Assert
    assert gw.participant(alice.address).status == ParticipantStatus.REVOKED
    assert not gw.membership(task_id, alice.address).joined


# ---------------------------------------------------------------------- membership


def test_join_task_for_relays_signed_consents_in_one_batch(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task()
    gw.register_organisations([(a.address, "X", h(f"o-{a.address}"), "") for a in (alice, bob)])

    # Execute
    fed.join(task_id, alice, bob, dataset_size=500)
    again = gw.join_task_for(task_id, [_consent(gw, task_id, alice, 500)])

    # Assert
    assert again.already_recorded
    joined = [e.args for e in gw.events() if e.name == "MemberJoined"]
    assert [(j["participant"], j["memberIndex"], j["fromRound"], j["relayed"]) for j in joined] == [
        (alice.address, 0, 1, True),
        (bob.address, 1, 1, True),
    ]
    member = gw.membership(task_id, bob.address)
    assert (member.index, member.dataset_size, member.data_hash) == (
        1,
        500,
        h(f"data-{bob.address}"),
    )
    assert gw.memberships(task_id, [alice.address, bob.address])[0].eligible(1)
    assert gw.is_eligible(task_id, R1, alice.address)
    assert gw.task(task_id).member_count == 2


def test_join_task_directly_and_a_wrong_spec_is_refused(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task()
    gw.register_organisation(alice.address, "A", h("org-a"))
    as_alice = gw.as_account(alice)

    # Execute
    with pytest.raises(LedgerSpecMismatch):
        as_alice.join_task(task_id, 10, h("data"), spec_hash=h("another spec"))
    joined = as_alice.join_task(task_id, 10, h("data"))
    again = as_alice.join_task(task_id, 10, h("data"))

    # Assert
    assert not joined.already_recorded
    assert again.already_recorded
    (event,) = [e.args for e in gw.events() if e.name == "MemberJoined"]
    assert event["relayed"] is False
    assert event["datasetSize"] == 10


def test_a_consent_signed_by_another_key_is_refused(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task()
    gw.register_organisation(alice.address, "A", h("org-a"))
    forged = _consent(gw, task_id, bob, 10)
    forged = SignedConsent(forged.consent, alice.address, forged.signature)

    # Execute
    with pytest.raises(LedgerConsentSignatureInvalid) as caught:
        gw.join_task_for(task_id, [forged])

    # Assert
    assert checksummed(caught.value.arguments) == {"taskId": task_id, "participant": alice.address}


def test_a_leaver_is_skipped_in_the_commit_and_cannot_rejoin(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    signed = [fed.sign(alice, trio, 1), fed.sign(bob, trio, 1)]
    left = gw.as_account(alice).leave_task(trio)

    # Execute
    result = fed.commit(trio, 1, signed, rewards={alice.address: 30, bob.address: 20})

    # Assert
    skipped = [e for e in gw.receipt_events(result.tx_hash) if e.name.endswith("Skipped")]
    assert [(e.name, e.args["participant"], e.args["reason"]) for e in skipped] == [
        ("CommitmentSkipped", alice.address, SkipReason.LEFT),
        ("RewardSkipped", alice.address, SkipReason.LEFT),
    ]
    assert gw.owed(alice.address) == 0
    assert gw.owed(bob.address) == 20
    assert gw.membership(trio, alice.address).left_round == 1
    assert gw.as_account(alice).leave_task(trio).already_recorded
    assert [e.args["fromRound"] for e in gw.events() if e.name == "MemberLeft"] == [1]
    assert left.tx_hash
    with pytest.raises(LedgerMemberLeft):  # a replayed consent cannot bring it back
        gw.as_account(alice).join_task(trio, 10, h("data"))


def test_a_leaver_direct_commitment_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    as_alice = gw.as_account(alice)
    as_alice.leave_task(trio)

    # Execute
    with pytest.raises(LedgerNotEligible) as caught:
        as_alice.submit_commitment(Commitment(trio, R1, h("u-alice"), 10))

    # Assert
    assert checksummed(caught.value.arguments) == {
        "taskId": trio,
        "round": 1,
        "account": alice.address,
    }
    assert gw.direct_commitment(trio, R1, alice.address) == bytes(32)


def test_a_leaver_keeps_its_rewards_claimable(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice], rewards={alice.address: 40})
    as_alice = gw.as_account(alice)
    as_alice.leave_task(trio)
    before = gw.token_balance(alice.address)

    # Execute
    paid, _ = as_alice.claim()

    # Assert
    assert paid == 40
    assert gw.token_balance(alice.address) == before + 40


def test_leaving_a_task_never_joined_is_refused(
    gw: LedgerGateway, trio: TaskId, stranger: LocalAccount
) -> None:
    # Execute
    with pytest.raises(LedgerNotMember) as caught:
        gw.as_account(stranger).leave_task(trio)

    # Assert
    assert checksummed(caught.value.arguments) == {"taskId": trio, "account": stranger.address}
    assert "fedchain task join" in str(caught.value)


def test_a_non_member_relayed_commitment_is_skipped_not_reverted(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, stranger: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)

    # Execute
    result = fed.commit(trio, 1, [alice, stranger])

    # Assert
    skipped = [e.args for e in gw.receipt_events(result.tx_hash) if e.name == "CommitmentSkipped"]
    assert [(s["participant"], s["reason"]) for s in skipped] == [
        (stranger.address, SkipReason.NOT_MEMBER)
    ]
    assert gw.round(trio, R1).state == RoundState.COMMITTED
    assert gw.round(trio, R1).commitment_count == 1


def test_a_non_member_direct_commitment_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, stranger: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)

    # Execute
    with pytest.raises(LedgerNotEligible) as caught:
        gw.as_account(stranger).submit_commitment(Commitment(trio, R1, h("u"), 1))

    # Assert
    assert checksummed(caught.value.arguments)["account"] == stranger.address
    assert "fedchain task join" in str(caught.value)


def test_examples_above_the_consented_dataset_size_are_skipped_or_refused(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare: both consent to 100 examples
    task_id = fed.task()
    gw.register_organisations([(a.address, "X", h(a.address), "") for a in (alice, bob)])
    fed.join(task_id, alice, bob, dataset_size=100)
    fed.open(task_id, 1)
    inflated = fed.sign(alice, task_id, 1, num_examples=101)

    # Execute
    with pytest.raises(LedgerExamplesAboveDataset) as caught:
        gw.as_account(bob).submit_commitment(Commitment(task_id, R1, h("u-bob"), 500))
    result = fed.commit(task_id, 1, [inflated], rewards={alice.address: 10})

    # Assert
    assert caught.value.arguments["datasetSize"] == 100
    reasons = {e.name: e.args["reason"] for e in gw.receipt_events(result.tx_hash)
               if e.name.endswith("Skipped")}  # fmt: skip
    assert reasons == {
        "CommitmentSkipped": SkipReason.EXAMPLES_ABOVE_DATASET,
        "RewardSkipped": SkipReason.EXAMPLES_ABOVE_DATASET,
    }
    assert gw.owed(alice.address) == 0


def test_the_coordinator_removes_a_member_of_its_task(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, stranger: LocalAccount
) -> None:
    # Execute
    removed = gw.remove_member(trio, alice.address)
    with pytest.raises(LedgerNotTaskCoordinator):
        gw.as_account(stranger).remove_member(trio, gw.account.address)

    # Assert
    assert not removed.already_recorded
    (event,) = [e.args for e in gw.events() if e.name == "MemberRemoved"]
    assert event["participant"] == alice.address
    assert event["fromRound"] == 1
    assert not gw.is_eligible(trio, R1, alice.address)


# ---------------------------------------------------------------------- lifecycle


def test_close_fails_the_open_round_and_funders_pull_their_refund(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare: 10,000 funded, round 1 pays 300, round 2 left open
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice], rewards={alice.address: 300})
    fed.open(trio, 2, parent="global")
    before = gw.token_balance(gw.account.address)

    # Execute
    closed = gw.close_task(trio)
    paid, _ = gw.refund(trio)
    nothing, again = gw.refund(trio)

    # Assert
    task = gw.task(trio)
    assert task.status == TaskStatus.CLOSED
    assert task.claim_deadline > 0
    assert gw.round(trio, R2).state == RoundState.FAILED
    assert paid == 10_000 - 300
    assert nothing == 0
    assert again.already_recorded
    assert gw.token_balance(gw.account.address) == before + paid
    assert gw.funder(trio, gw.account.address).refunded == paid
    assert gw.close_task(trio).already_recorded
    assert closed.tx_hash
    with pytest.raises(LedgerTaskNotActive):
        gw.open_round(trio, R3, h("global"))


def test_refund_of_an_active_task_and_a_sweep_before_the_deadline_are_refused(
    gw: LedgerGateway, trio: TaskId
) -> None:
    # Execute, Assert
    with pytest.raises(LedgerTaskStillActive):
        gw.refund(trio)
    gw.close_task(trio, cancel=True)
    assert gw.task(trio).status == TaskStatus.CANCELLED
    with pytest.raises(LedgerClaimPeriodNotOver):
        gw.sweep(trio)


def test_a_refund_by_a_non_funder_is_refused(
    gw: LedgerGateway, trio: TaskId, stranger: LocalAccount
) -> None:
    # Prepare
    gw.close_task(trio)

    # Execute
    with pytest.raises(LedgerNotFunder) as caught:
        gw.as_account(stranger).refund(trio)

    # Assert
    assert "only funders" in str(caught.value)


def test_pause_stops_new_work_but_never_a_claim(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice], rewards={alice.address: 5})

    # Execute
    gw.pause()
    with pytest.raises(EnforcedPause):
        gw.open_round(trio, R2, h("global"))
    paid, _ = gw.as_account(alice).claim()
    gw.unpause()

    # Assert
    assert paid == 5
    assert not gw.paused()
    assert gw.pause().tx_hash
    assert gw.unpause().tx_hash


def test_the_admin_hands_a_task_to_another_coordinator(
    gw: LedgerGateway, trio: TaskId, accounts: list[LocalAccount]
) -> None:
    # Prepare
    other = accounts[6]

    # Execute
    with pytest.raises(LedgerNotCoordinator):
        gw.set_task_coordinator(trio, other.address)
    gw.grant_role("COORDINATOR_ROLE", other.address)
    gw.set_task_coordinator(trio, other.address)

    # Assert
    assert gw.task(trio).coordinator == other.address
    assert gw.has_role("COORDINATOR_ROLE", other.address)
    (event,) = [e.args for e in gw.events() if e.name == "TaskCoordinatorChanged"]
    assert event["coordinator"] == other.address


def _consent(gw: LedgerGateway, task_id: TaskId, who: LocalAccount, size: int) -> SignedConsent:
    spec_hash = gw.task(task_id).spec_hash
    consent = Consent(task_id, spec_hash, size, h(f"data-{who.address}"))
    return sign_consent(who, gw.domain, consent)


# ---------------------------------------------------------------------- rounds


def test_open_round_records_it_and_a_retry_is_already_recorded(
    gw: LedgerGateway, trio: TaskId
) -> None:
    # Execute
    opened = gw.open_round(trio, R1, h("init"))
    again = gw.open_round(trio, R1, h("init"))

    # Assert
    assert not opened.already_recorded
    assert again.already_recorded
    assert gw.round(trio, R1) == RoundRecord(RoundState.OPEN, 0, 0, h("init"), bytes(32))
    assert gw.task(trio).last_round == 1
    opened_events = [e.args for e in gw.events() if e.name == "RoundOpened"]
    assert opened_events == [{"taskId": trio, "round": 1, "parentModelHash": hex32("init")}]


def test_rounds_are_sequential(gw: LedgerGateway, trio: TaskId) -> None:
    # Execute
    with pytest.raises(LedgerRoundOutOfOrder) as caught:
        gw.open_round(trio, R2, h("init"))

    # Assert
    assert caught.value.arguments == {"taskId": trio, "expected": 1, "got": 2}
    assert "strictly sequential" in str(caught.value)
    assert gw.task(trio).last_round == 0


def test_a_committed_round_cannot_be_opened_again(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice], model="g1")

    # Execute
    with pytest.raises(LedgerRoundOutOfOrder) as caught:
        gw.open_round(trio, R1, h("g1"))

    # Assert
    assert caught.value.arguments == {"taskId": trio, "expected": 2, "got": 1}


def test_open_round_on_another_parent_is_refused(gw: LedgerGateway, trio: TaskId) -> None:
    # Execute
    with pytest.raises(LedgerParentMismatch) as caught:
        gw.open_round(trio, R1, h("not-the-initial-model"))

    # Assert
    assert caught.value.arguments == {
        "taskId": trio,
        "round": 1,
        "expected": h("init"),
        "got": h("not-the-initial-model"),
    }
    assert "latest committed global model" in str(caught.value)
    assert h("init").hex() in str(caught.value)


def test_next_round_while_one_is_open_is_refused(gw: LedgerGateway, trio: TaskId) -> None:
    # Prepare
    gw.open_round(trio, R1, h("init"))

    # Execute
    with pytest.raises(LedgerRoundStillOpen) as caught:
        gw.open_round(trio, R2, h("init"))

    # Assert
    assert caught.value.arguments == {"taskId": trio, "round": 1}
    assert "commit or fail it first" in str(caught.value)


def test_commit_of_a_round_never_opened_is_refused(
    fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Execute
    with pytest.raises(LedgerRoundNotOpen) as caught:
        fed.commit(trio, 1, [alice])

    # Assert
    assert caught.value.arguments == {"taskId": trio, "round": 1}
    assert "open it first" in str(caught.value)


def test_commit_of_a_failed_round_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    gw.fail_round(trio, R1, "too few updates")

    # Execute
    with pytest.raises(LedgerRoundNotOpen) as caught:
        fed.commit(trio, 1, [alice])

    # Assert
    assert caught.value.arguments == {"taskId": trio, "round": 1}
    assert gw.round(trio, R1).state == RoundState.FAILED


def test_commit_round_records_the_round_the_head_and_the_rewards(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)

    # Execute
    result = fed.commit(
        trio, 1, [alice, bob], model="g1", rewards={alice.address: 300, bob.address: 200}
    )

    # Assert
    assert gw.round(trio, R1) == RoundRecord(RoundState.COMMITTED, 0, 2, h("init"), h("g1"))
    task = gw.task(trio)
    assert task.head_model_hash == h("g1")
    assert task.attributed == 500
    assert gw.owed(alice.address) == 300
    assert gw.owed(bob.address) == 200
    (committed,) = [e for e in gw.events() if e.name == "RoundCommitted"]
    assert committed.tx_hash == result.tx_hash
    assert committed.args == {
        "taskId": trio,
        "round": 1,
        "globalModelHash": hex32("g1"),
        "accuracyPpm": 900_000,
        "lossPpm": 250_000,
        "scoringHash": hex32("scoring-g1"),
        "commitmentCount": 2,
        "totalReward": 500,
    }


def test_commit_with_a_zero_model_hash_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    signed = [fed.sign(alice, trio, 1)]

    # Execute
    with pytest.raises(LedgerZeroHash):
        gw.commit_round(trio, R1, signed, RoundOutcome(bytes(32), 1, 1), [])

    # Assert
    assert gw.round(trio, R1).state == RoundState.OPEN


def test_commit_retried_with_the_same_model_is_already_recorded_once(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    signed = [fed.sign(alice, trio, 1), fed.sign(bob, trio, 1)]
    first = fed.commit(trio, 1, signed, model="g1", rewards={alice.address: 10})

    # Execute
    again = fed.commit(trio, 1, signed, model="g1", rewards={alice.address: 10})

    # Assert
    assert not first.already_recorded
    assert again.already_recorded
    events = gw.events()
    assert names(events, "RoundCommitted") == ["RoundCommitted"]
    assert names(events, "CommitmentRecorded") == ["CommitmentRecorded"] * 2
    assert gw.owed(alice.address) == 10


def test_a_commit_can_open_the_next_round_in_the_same_transaction(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    signed = [fed.sign(alice, trio, 1)]

    # Execute
    result = gw.commit_round(trio, R1, signed, outcome("g1"), [], open_next=True)
    again = gw.commit_round(trio, R1, signed, outcome("g1"), [], open_next=True)

    # Assert: one transaction committed round 1 and opened round 2 on its model; a retry sends
    # nothing and the relayed signature is still read from the batched calldata
    events = [e for e in gw.events() if e.name in ("RoundCommitted", "RoundOpened")]
    assert [(e.name, e.args["round"]) for e in events] == [
        ("RoundOpened", 1),
        ("RoundCommitted", 1),
        ("RoundOpened", 2),
    ]
    assert events[1].tx_hash == events[2].tx_hash == result.tx_hash
    assert gw.round(trio, R2) == RoundRecord(RoundState.OPEN, 0, 0, h("g1"), bytes(32))
    assert again.already_recorded
    assert gw.task_head(trio) == (h("g1"), R2)
    calls = ledger_calls(gw.ledger, bytes(gw.w3.eth.get_transaction(result.tx_hash)["input"]))
    assert [name for name, _ in calls] == ["commitRound", "openRound"]


def test_a_round_committed_alone_gets_its_next_round_opened_on_retry(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare: committed without opening the next round (as before a restart)
    fed.open(trio, 1)
    signed = [fed.sign(alice, trio, 1)]
    gw.commit_round(trio, R1, signed, outcome("g1"), [])

    # Execute
    again = gw.commit_round(trio, R1, signed, outcome("g1"), [], open_next=True)

    # Assert
    assert again.already_recorded
    assert gw.round(trio, R2).state == RoundState.OPEN
    assert gw.round(trio, R2).parent_model_hash == h("g1")


def test_a_refused_batched_commit_reports_its_error_and_opens_nothing(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare: a commit the contract refuses (a zero model hash), batched with the opening
    fed.open(trio, 1)
    signed = [fed.sign(alice, trio, 1)]

    # Execute
    with pytest.raises(LedgerZeroHash):
        gw.commit_round(trio, R1, signed, RoundOutcome(bytes(32), 1, 1), [], open_next=True)

    # Assert: nothing of the batch happened
    assert gw.round(trio, R1).state == RoundState.OPEN
    assert gw.round(trio, R2).state == RoundState.NONE


def test_commit_again_with_another_model_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice], model="g1")

    # Execute
    with pytest.raises(LedgerRoundAlreadyCommitted) as caught:
        fed.commit(trio, 1, [alice], model="g1-other")

    # Assert
    assert caught.value.arguments == {"taskId": trio, "round": 1}
    assert "cannot change" in str(caught.value)
    assert gw.round(trio, R1).global_model_hash == h("g1")


def test_failed_round_lets_the_next_round_build_on_the_same_parent(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)

    # Execute
    failed = gw.fail_round(trio, R1, "too few updates")
    failed_again = gw.fail_round(trio, R1, "too few updates")
    fed.open(trio, 2, parent="init")
    fed.commit(trio, 2, [alice], model="g2")

    # Assert
    assert not failed.already_recorded
    assert failed_again.already_recorded
    assert gw.round(trio, R1).state == RoundState.FAILED
    assert gw.round(trio, R2) == RoundRecord(RoundState.COMMITTED, 0, 1, h("init"), h("g2"))
    assert [e.args for e in gw.events() if e.name == "RoundFailed"] == [
        {"taskId": trio, "round": 1, "reason": "too few updates"}
    ]


def test_fail_round_that_is_not_open_is_refused(gw: LedgerGateway, trio: TaskId) -> None:
    # Execute
    with pytest.raises(LedgerRoundNotOpen) as caught:
        gw.fail_round(trio, R1, "nothing to fail")

    # Assert
    assert caught.value.arguments == {"taskId": trio, "round": 1}


def test_gateway_sorts_commitments_and_rewards(
    gw: LedgerGateway,
    fed: Federation,
    trio: TaskId,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    # Prepare: deliberately in descending address order
    fed.open(trio, 1)
    people = sorted([alice, bob, carol], key=lambda a: int(a.address, 16), reverse=True)
    rewards = {a.address: 10 * (i + 1) for i, a in enumerate(people)}

    # Execute
    fed.commit(trio, 1, people, rewards=rewards)

    # Assert
    events = gw.events()
    ascending = sorted((a.address for a in people), key=lambda a: int(a, 16))
    assert [e.args["participant"] for e in events if e.name == "CommitmentRecorded"] == ascending
    assert [e.args["participant"] for e in events if e.name == "RewardAttributed"] == ascending
    assert {a.address: gw.owed(a.address) for a in people} == rewards


# ---------------------------------------------------------------------- direct commitments


def test_direct_commitment_is_recorded_and_counted(
    gw: LedgerGateway,
    fed: Federation,
    trio: TaskId,
    alice: LocalAccount,
    bob: LocalAccount,
    carol: LocalAccount,
) -> None:
    # Prepare
    fed.open(trio, 1)

    # Execute
    direct = gw.as_account(carol).submit_commitment(Commitment(trio, R1, h("u-carol"), 7))
    fed.commit(trio, 1, [alice, bob], rewards={carol.address: 25, alice.address: 5})

    # Assert
    assert not direct.already_recorded
    assert gw.direct_commitment(trio, R1, carol.address) == h("u-carol")
    assert gw.round(trio, R1).direct_count == 1
    assert gw.round(trio, R1).commitment_count == 3
    assert gw.owed(carol.address) == 25
    recorded = [e.args for e in gw.events() if e.name == "CommitmentRecorded"]
    assert recorded[0] == {
        "taskId": trio,
        "round": 1,
        "participant": carol.address,
        "updateHash": hex32("u-carol"),
        "numExamples": 7,
        "relayed": False,
        "epsilon": 0,
    }
    assert [r["relayed"] for r in recorded] == [False, True, True]


def test_direct_commitment_retried_is_already_recorded(
    gw: LedgerGateway, fed: Federation, trio: TaskId, carol: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    as_carol = gw.as_account(carol)
    as_carol.submit_commitment(Commitment(trio, R1, h("u-carol"), 7))

    # Execute
    again = as_carol.submit_commitment(Commitment(trio, R1, h("u-carol"), 7))

    # Assert
    assert again.already_recorded
    assert names(gw.events(), "CommitmentRecorded") == ["CommitmentRecorded"]


def test_second_direct_commitment_with_another_update_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, carol: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    as_carol = gw.as_account(carol)
    as_carol.submit_commitment(Commitment(trio, R1, h("u-carol"), 7))

    # Execute
    with pytest.raises(LedgerDuplicateCommitment) as caught:
        as_carol.submit_commitment(Commitment(trio, R1, h("u-carol-2"), 7))

    # Assert
    assert checksummed(caught.value.arguments) == {
        "taskId": trio,
        "round": 1,
        "participant": carol.address,
    }
    assert gw.direct_commitment(trio, R1, carol.address) == h("u-carol")


def test_direct_commitment_from_a_fresh_key_funded_with_eth(
    gw: LedgerGateway, fed: Federation, trio: TaskId, embedded: EmbeddedChain
) -> None:
    # Prepare: a participant outside the genesis accounts gets gas money first
    fresh: LocalAccount = Account.from_key(h("fresh participant key"))
    gw.register_organisation(fresh.address, "Fresh", h("org-fresh"))
    fed.join(trio, fresh)
    gw.transfer_eth(fresh.address, 10**17)
    fed.open(trio, 1)

    # Execute
    gw.as_account(fresh).submit_commitment(Commitment(trio, R1, h("u-fresh"), 3))

    # Assert
    assert embedded.w3.eth.get_balance(fresh.address) < 10**17
    assert gw.direct_commitment(trio, R1, fresh.address) == h("u-fresh")


def test_direct_commitment_outside_an_open_round_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, carol: LocalAccount
) -> None:
    # Prepare
    as_carol = gw.as_account(carol)

    # Execute
    with pytest.raises(LedgerRoundNotOpen) as not_open:
        as_carol.submit_commitment(Commitment(trio, R1, h("u-carol"), 7))
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice])
    with pytest.raises(LedgerRoundAlreadyCommitted) as committed:
        as_carol.submit_commitment(Commitment(trio, R1, h("u-carol"), 7))

    # Assert
    assert not_open.value.arguments == {"taskId": trio, "round": 1}
    assert committed.value.arguments == {"taskId": trio, "round": 1}


# ---------------------------------------------------------------------- duplicates, signatures


def test_the_same_commitment_relayed_twice_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    signed = fed.sign(alice, trio, 1)

    # Execute
    with pytest.raises(LedgerDuplicateCommitment) as caught:
        fed.commit(trio, 1, [signed, fed.sign(bob, trio, 1), signed])

    # Assert
    assert checksummed(caught.value.arguments) == {
        "taskId": trio,
        "round": 1,
        "participant": alice.address,
    }
    assert "relay it once" in str(caught.value)
    assert gw.round(trio, R1).state == RoundState.OPEN


def test_a_commitment_submitted_directly_then_relayed_is_skipped_not_reverted(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare: alice front-runs the relay with her own commitment
    fed.open(trio, 1)
    gw.as_account(alice).submit_commitment(Commitment(trio, R1, h("u-alice"), 10))

    # Execute
    result = fed.commit(trio, 1, [fed.sign(alice, trio, 1, update="u-alice")])

    # Assert: the round commits; her direct commitment is the one on record
    (skipped,) = [
        e.args for e in gw.receipt_events(result.tx_hash) if e.name == "CommitmentSkipped"
    ]
    assert skipped["participant"] == alice.address
    assert skipped["reason"] == SkipReason.COMMITTED_DIRECTLY
    assert gw.round(trio, R1).state == RoundState.COMMITTED
    assert gw.round(trio, R1).commitment_count == 1


@pytest.mark.parametrize("replay", ["other-round", "other-task", "other-chain", "other-contract"])
def test_a_signature_replayed_elsewhere_is_refused(
    replay: str,
    gw: LedgerGateway,
    fed: Federation,
    trio: TaskId,
    alice: LocalAccount,
    embedded: EmbeddedChain,
    coordinator: LocalAccount,
) -> None:
    # Prepare: a signature valid somewhere else, relayed in round 1 (or 2) of task `trio`
    round_id = 1
    if replay == "other-round":
        fed.open(trio, 1)
        signed = fed.sign(alice, trio, 1)
        fed.commit(trio, 1, [signed], model="g1")
        fed.open(trio, 2, parent="g1")
        round_id = 2
    elif replay == "other-task":
        other = fed.task(spec="spec-other")
        fed.open(trio, 1)
        signed = fed.sign(alice, other, 1)
    elif replay == "other-chain":
        fed.open(trio, 1)
        domain = LedgerDomain(gw.domain.chain_id + 1, gw.domain.verifying_contract)
        signed = fed.sign(alice, trio, 1, domain=domain)
    else:
        second = deploy(embedded.w3, coordinator)
        assert second.domain.verifying_contract != gw.domain.verifying_contract
        fed.open(trio, 1)
        signed = fed.sign(alice, trio, 1, domain=second.domain)

    # Execute
    with pytest.raises(LedgerSignatureInvalid) as caught:
        gw.commit_round(trio, RoundId(round_id), [signed], outcome("g-replay"), [])

    # Assert
    assert checksummed(caught.value.arguments) == {
        "taskId": trio,
        "round": round_id,
        "participant": alice.address,
    }
    assert "drop that reply" in str(caught.value)
    assert gw.round(trio, RoundId(round_id)).state == RoundState.OPEN


def test_a_signature_claimed_for_another_participant_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare: bob's signature over the same commitment, presented as alice's
    fed.open(trio, 1)
    by_bob = fed.sign(bob, trio, 1, update="u")
    forged = SignedCommitment(by_bob.commitment, alice.address, by_bob.signature)

    # Execute
    with pytest.raises(LedgerSignatureInvalid) as caught:
        fed.commit(trio, 1, [forged])

    # Assert
    assert checksummed(caught.value.arguments)["participant"] == alice.address


# ---------------------------------------------------------------------- rewards, pool, claims


def test_rewards_above_the_round_budget_are_refused(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task(budget=100)
    fed.register(alice, bob)
    fed.open(task_id, 1)

    # Execute
    with pytest.raises(LedgerRoundBudgetExceeded) as caught:
        fed.commit(task_id, 1, [alice, bob], rewards={alice.address: 60, bob.address: 50})

    # Assert
    assert caught.value.arguments == {"taskId": task_id, "round": 1, "total": 110, "budget": 100}
    assert "budget 100" in str(caught.value)
    assert gw.owed(alice.address) == 0


def test_rewards_above_the_pool_are_refused_until_funded(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount
) -> None:
    # Prepare
    task_id = fed.task(budget=1_000, funding=100)
    fed.register(alice)
    fed.open(task_id, 1)
    signed = [fed.sign(alice, task_id, 1)]
    rewards = [Reward(alice.address, 1, 150)]

    # Execute
    with pytest.raises(LedgerPoolInsufficient) as caught:
        gw.commit_round(task_id, R1, signed, outcome("g1"), rewards)
    gw.fund_task(task_id, 50)
    gw.commit_round(task_id, R1, signed, outcome("g1"), rewards)

    # Assert
    assert caught.value.arguments == {"taskId": task_id, "needed": 150, "available": 100}
    assert "fundTask" in str(caught.value)
    assert gw.owed(alice.address) == 150


def test_pool_accounts_for_what_earlier_rounds_attributed(
    gw: LedgerGateway, fed: Federation, alice: LocalAccount
) -> None:
    # Prepare: 500 funded, 400 attributed in round 1
    task_id = fed.task(budget=1_000, funding=500)
    fed.register(alice)
    fed.open(task_id, 1)
    fed.commit(task_id, 1, [alice], model="g1", rewards={alice.address: 400})
    fed.open(task_id, 2, parent="g1")

    # Execute
    with pytest.raises(LedgerPoolInsufficient) as caught:
        fed.commit(task_id, 2, [alice], model="g2", rewards={alice.address: 101})

    # Assert
    assert caught.value.arguments == {"taskId": task_id, "needed": 101, "available": 100}


def test_a_reward_without_a_commitment_is_refused(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, carol: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)

    # Execute
    with pytest.raises(LedgerRewardWithoutCommitment) as caught:
        fed.commit(trio, 1, [alice], rewards={alice.address: 5, carol.address: 5})

    # Assert
    assert checksummed(caught.value.arguments) == {
        "taskId": trio,
        "round": 1,
        "participant": carol.address,
    }
    assert "cannot be rewarded" in str(caught.value)


def test_claim_pays_what_is_owed_and_a_second_claim_pays_nothing(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice], rewards={alice.address: 120})
    as_alice = gw.as_account(alice)
    before = gw.token_balance(alice.address)

    # Execute
    paid, first = as_alice.claim()
    paid_again, second = as_alice.claim()

    # Assert
    assert (paid, paid_again) == (120, 0)
    assert not first.already_recorded
    assert second.already_recorded
    assert gw.token_balance(alice.address) == before + 120
    assert gw.owed(alice.address) == 0
    assert gw.claimed(alice.address) == 120
    claimed = [e.args for e in gw.events() if e.name == "RewardClaimed"]
    assert claimed == [{"participant": alice.address, "token": gw.token.address, "amount": 120}]


def test_rewards_accumulate_across_rounds(
    gw: LedgerGateway, fed: Federation, trio: TaskId, alice: LocalAccount, bob: LocalAccount
) -> None:
    # Prepare
    fed.open(trio, 1)
    fed.commit(trio, 1, [alice, bob], model="g1", rewards={alice.address: 100, bob.address: 1})
    fed.open(trio, 2, parent="g1")
    fed.commit(trio, 2, [alice], model="g2", rewards={alice.address: 250})

    # Execute
    paid, _ = gw.as_account(alice).claim()

    # Assert
    assert paid == 350
    assert gw.task(trio).attributed == 351
    assert gw.owed(bob.address) == 1


# ---------------------------------------------------------------------- coordinators


def test_another_coordinator_cannot_run_this_task(
    gw: LedgerGateway, fed: Federation, trio: TaskId, accounts: list[LocalAccount]
) -> None:
    # Prepare: account 5 holds COORDINATOR_ROLE but did not create the task
    second = accounts[5]
    gw.grant_coordinator(second.address)
    as_second = gw.as_account(second)
    fed.open(trio, 1)

    # Execute
    with pytest.raises(LedgerNotTaskCoordinator) as commit_refused:
        Federation(as_second).commit(trio, 1, [accounts[1]])
    with pytest.raises(LedgerNotTaskCoordinator) as fail_refused:
        as_second.fail_round(trio, R1, "hijack")

    # Assert
    expected = {"taskId": trio, "account": second.address}
    assert checksummed(commit_refused.value.arguments) == expected
    assert checksummed(fail_refused.value.arguments) == expected
    assert "the key that created the task" in str(commit_refused.value)
    assert gw.round(trio, R1).state == RoundState.OPEN


def test_an_account_without_the_role_cannot_commit_or_open(
    gw: LedgerGateway, fed: Federation, trio: TaskId, stranger: LocalAccount, alice: LocalAccount
) -> None:
    # Prepare
    as_stranger = gw.as_account(stranger)

    # Execute
    with pytest.raises(LedgerNotTaskCoordinator) as open_refused:
        as_stranger.open_round(trio, R1, h("init"))
    fed.open(trio, 1)
    with pytest.raises(LedgerNotTaskCoordinator) as commit_refused:
        Federation(as_stranger).commit(trio, 1, [alice])

    # Assert
    expected = {"taskId": trio, "account": stranger.address}
    assert checksummed(open_refused.value.arguments) == expected
    assert checksummed(commit_refused.value.arguments) == expected


# ---------------------------------------------------------------------- the errors themselves


def test_revert_arguments_carry_checksummed_addresses(
    gw: LedgerGateway, trio: TaskId, stranger: LocalAccount
) -> None:
    # Prepare: every address fedchain hands out (records, events, accounts) is checksummed
    # Execute
    with pytest.raises(OrganisationRegistryNotRegistered) as caught:
        gw.as_account(stranger).join_task(trio, 1, h("data"))

    # Assert: so are the addresses in a revert's arguments, to compare them with ==
    assert caught.value.arguments == {"account": stranger.address}


@pytest.mark.parametrize("name", sorted(REVERT_ERRORS))
def test_every_typed_revert_names_itself_and_says_what_to_do(name: str) -> None:
    # Prepare
    cls = REVERT_ERRORS[name]
    arguments = {field: 7 for field in cls.fields}

    # Execute
    error = cls(**arguments)

    # Assert
    assert issubclass(cls, ContractRevert)
    assert cls.__name__ == name
    assert error.arguments == arguments
    message = str(error)
    assert message.startswith(f"{name}(")
    hint = message.split("): ", 1)[1]
    assert len(hint) > 15
