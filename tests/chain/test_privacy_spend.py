"""Issue 17 through the gateway: a task's privacy cap, each commitment's signed cumulative
spend (micro-epsilon), the contract's refusals and skips, and the recorded spend per task."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.chain.errors import LedgerEpsilonAboveCap, LedgerEpsilonDecreased, RecordError
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import (
    EPSILON_CAP_MAX,
    Commitment,
    RoundId,
    SignedCommitment,
    SkipReason,
    TaskId,
    TaskTerms,
    privacy_task_terms,
)
from fedchain.chain.signing import sign_commitment
from fedchain.privacy import PrivacyTerms

from ._support import Federation, checksummed, h

CAP = 8_000_000  # epsilon 8


def _dp_task(fed: Federation, cap: int = CAP) -> TaskId:
    task_id, _ = fed.gw.create_task(
        h("dp spec"), h("init"), 1_000, terms=TaskTerms(epsilon_cap=cap)
    )
    fed.gw.fund_task(task_id, 10_000)
    return task_id


def _signed(
    fed: Federation, who: LocalAccount, task_id: TaskId, round_id: int, epsilon: int
) -> SignedCommitment:
    commitment = Commitment(
        task_id, RoundId(round_id), h(f"u {who.address} {round_id}"), 10, epsilon
    )
    return sign_commitment(who, fed.gw.domain, commitment)


def test_the_cap_is_set_at_creation_and_read_back(fed: Federation) -> None:
    # Execute
    dp = _dp_task(fed)
    plain = fed.task()

    # Assert
    assert fed.gw.task(dp).epsilon_cap == CAP
    assert fed.gw.task(plain).epsilon_cap == 0
    (terms,) = [e for e in fed.gw.events() if e.name == "TaskTermsSet" and e.args["taskId"] == dp]
    assert terms.args["epsilonCap"] == CAP


def test_privacy_task_terms_put_the_spec_epsilon_on_chain_rounded_up() -> None:
    # Execute / Assert
    assert privacy_task_terms(None) is None
    assert privacy_task_terms(PrivacyTerms(8.0, 1e-5, 1.0)) == TaskTerms(epsilon_cap=8_000_000)
    assert privacy_task_terms(PrivacyTerms(0.3, 1e-5, 1.0)) == TaskTerms(epsilon_cap=300_000)
    with pytest.raises(RecordError, match="choose a smaller epsilon"):
        TaskTerms(epsilon_cap=EPSILON_CAP_MAX + 1)


def test_relayed_spends_are_recorded_emitted_and_skipped_when_above_cap_or_decreasing(
    fed: Federation, accounts: list[LocalAccount]
) -> None:
    # Prepare: alice, bob, carol members of a DP task; round 1 records 3, 2 and 1
    alice, bob, carol = accounts[1:4]
    task_id = _dp_task(fed)
    fed.register(alice, bob, carol)
    fed.join(task_id, alice, bob, carol)
    fed.open(task_id, 1)
    round1 = [
        _signed(fed, a, task_id, 1, e)
        for a, e in ((alice, 3_000_000), (bob, 2_000_000), (carol, 1_000_000))
    ]
    fed.commit(task_id, 1, round1, model="g1")
    fed.open(task_id, 2, parent="g1")

    # Execute: alice goes down, bob above the cap, carol grows
    round2 = [
        _signed(fed, alice, task_id, 2, 2_500_000),
        _signed(fed, bob, task_id, 2, CAP + 1),
        _signed(fed, carol, task_id, 2, 4_000_000),
    ]
    result = fed.commit(task_id, 2, round2, model="g2", rewards={alice.address: 1, bob.address: 1})

    # Assert
    events = fed.gw.receipt_events(result.tx_hash)
    skipped = {
        e.args["participant"].lower(): SkipReason(e.args["reason"])
        for e in events
        if e.name == "CommitmentSkipped"
    }
    assert skipped == {
        alice.address.lower(): SkipReason.EPSILON_DECREASED,
        bob.address.lower(): SkipReason.EPSILON_ABOVE_CAP,
    }
    rewards = {SkipReason(e.args["reason"]) for e in events if e.name == "RewardSkipped"}
    assert rewards == {SkipReason.EPSILON_DECREASED, SkipReason.EPSILON_ABOVE_CAP}
    (recorded,) = [e for e in events if e.name == "CommitmentRecorded"]
    assert recorded.args["epsilon"] == 4_000_000
    spent = {a.address: fed.gw.privacy_spent(task_id, a.address) for a in (alice, bob, carol)}
    assert spent == {alice.address: 3_000_000, bob.address: 2_000_000, carol.address: 4_000_000}


def test_a_direct_commitment_above_the_cap_or_below_the_spend_is_refused_with_its_error(
    fed: Federation, gw: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    # Prepare
    alice = accounts[1]
    task_id = _dp_task(fed)
    fed.register(alice)
    fed.join(task_id, alice)
    fed.open(task_id, 1)
    as_alice = gw.as_account(alice)

    # Execute / Assert
    with pytest.raises(LedgerEpsilonAboveCap) as above:
        as_alice.submit_commitment(Commitment(task_id, RoundId(1), h("a"), 10, CAP + 1))
    assert checksummed(above.value.arguments) == {
        "taskId": task_id, "account": alice.address, "epsilon": CAP + 1, "cap": CAP
    }  # fmt: skip
    as_alice.submit_commitment(Commitment(task_id, RoundId(1), h("a"), 10, 5_000_000))
    fed.commit(task_id, 1, [], model="g1")
    fed.open(task_id, 2, parent="g1")
    with pytest.raises(LedgerEpsilonDecreased, match="only grows"):
        as_alice.submit_commitment(Commitment(task_id, RoundId(2), h("a2"), 10, 4_999_999))
    assert gw.privacy_spent(task_id, alice.address) == 5_000_000
    assert gw.membership(task_id, alice.address).epsilon_spent == 5_000_000
