"""What makes the embedded chain fast keeps its answers: the reads a gateway skips on a ledger
or task it made, the state reads answered from memory at one head block, the logs and receipts
read from py-evm directly, the C keccak."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from hexbytes import HexBytes

from fedchain.chain import gateway as gateway_module
from fedchain.chain._keccak import use_fast_keccak
from fedchain.chain.backends import EmbeddedChain, EmbeddedProvider
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import Commitment, Consent, RoundId, SignedConsent, TaskId, TaskTerms
from fedchain.chain.signing import sign_commitment, sign_consent

from ._support import Federation, h


@pytest.fixture
def reads(gw: LedgerGateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the gateway's batch reads of records (participants, memberships) made."""
    made: list[str] = []
    for name in ("participants", "memberships"):
        real = getattr(LedgerGateway, name)

        def spy(self: LedgerGateway, *args: Any, _real: Any = real, _name: str = name) -> Any:
            made.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(LedgerGateway, name, spy)
    return made


def _consent(gw: LedgerGateway, task_id: TaskId, who: LocalAccount) -> SignedConsent:
    consent = Consent(task_id, gw.task(task_id).spec_hash, 500, h(f"data-{who.address}"))
    return sign_consent(who, gw.domain, consent)


def test_a_new_ledgers_registrations_skip_the_read_and_a_repeat_reads(
    gw: LedgerGateway, reads: list[str], accounts: list[LocalAccount]
) -> None:
    # Prepare
    orgs = [(a.address, f"Org {i}", h(f"org-{i}"), "") for i, a in enumerate(accounts[1:4])]

    # Execute
    first = gw.register_organisations(orgs)
    again = gw.register_organisations(orgs)

    # Assert
    assert not first.already_recorded
    assert again.already_recorded
    assert reads == ["participants"]  # only the repeat, which finds them all registered
    records = gw.participants([o[0] for o in orgs])
    assert [(r.name, r.org_hash) for r in records] == [(o[1], o[2]) for o in orgs]


def test_a_ledger_not_deployed_here_reads_before_registering(
    embedded: EmbeddedChain, gw: LedgerGateway, reads: list[str], accounts: list[LocalAccount]
) -> None:
    # Prepare: the same ledger through a gateway that did not deploy it
    other = LedgerGateway(embedded.w3, gw.deployment, gw.account)

    # Execute
    other.register_organisations([(accounts[5].address, "Org", h("org"), "")])

    # Assert
    assert reads == ["participants"]


def test_granting_the_registrar_role_makes_registrations_read_again(
    coordinator: LocalAccount, reads: list[str], accounts: list[LocalAccount]
) -> None:
    # Prepare: a ledger of its own (the module's gateway keeps what it knows across tests)
    chain = EmbeddedChain()
    try:
        own = deploy(chain.w3, coordinator)
        own.grant_role("REGISTRAR_ROLE", accounts[9].address)

        # Execute
        own.register_organisations([(accounts[6].address, "Org", h("org-6"), "")])
    finally:
        chain.close()

    # Assert
    assert reads == ["participants"]


def test_a_created_tasks_first_joins_skip_the_read_with_the_same_events(
    gw: LedgerGateway, fed: Federation, reads: list[str], accounts: list[LocalAccount]
) -> None:
    # Prepare
    members = accounts[1:4]
    gw.register_organisations([(a.address, "X", h(f"o-{a.address}"), "") for a in members])
    task_id = fed.task()
    consents = [_consent(gw, task_id, a) for a in members]
    reads.clear()

    # Execute
    first = gw.join_task_for(task_id, consents[:2])
    again = gw.join_task_for(task_id, consents)  # two of three relayed before: read

    # Assert
    assert not first.already_recorded
    assert not again.already_recorded
    assert reads == ["memberships"]
    events = [e for e in gw.events() if e.name in ("MemberJoined", "ConsentSkipped")]
    assert [(e.name, e.args["participant"]) for e in events] == [
        ("MemberJoined", a.address) for a in members
    ]


def test_repeated_state_reads_at_one_head_are_answered_from_memory(
    gw: LedgerGateway, embedded: EmbeddedChain, fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: count the calls that reach eth-tester
    provider = embedded.w3.provider
    assert isinstance(provider, EmbeddedProvider)
    executed: list[str] = []
    real = provider._tester.call
    monkeypatch.setattr(
        provider._tester, "call", lambda *a, **k: executed.append("call") or real(*a, **k)
    )
    task_id = fed.task()
    executed.clear()

    # Execute
    before = [gw.task(task_id).funded for _ in range(3)]
    at_one_head = len(executed)
    fed.gw.fund_task(task_id, 7)  # a new block: the cache starts afresh
    executed.clear()
    after = gw.task(task_id).funded

    # Assert
    assert before == [before[0]] * 3
    assert after == before[0] + 7
    assert at_one_head == 1  # the two repeats never reached eth-tester
    assert executed == ["call"]  # the read after the new block did


def test_logs_and_receipts_read_from_py_evm_match_web3s(
    gw: LedgerGateway, embedded: EmbeddedChain, fed: Federation, accounts: list[LocalAccount]
) -> None:
    # Prepare
    task_id = fed.task()
    registered = gw.register_organisations(
        [(a.address, f"Org {i}", h(f"org-{i}"), "") for i, a in enumerate(accounts[1:4])]
    )
    fed.gw.fund_task(task_id, 5)

    # Execute: the direct reads, then web3's, with the direct path switched off
    direct_events = gw.events()
    direct_receipt = gw.receipt_events(registered.tx_hash)
    provider = embedded.w3.provider
    assert isinstance(provider, EmbeddedProvider)
    node = provider.node_receipt(bytes(HexBytes(registered.tx_hash)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway_module, "EmbeddedProvider", type("NotEmbedded", (), {}))
        web3_events = gw.events()
        web3_receipt = gw.receipt_events(registered.tx_hash)
    formatted = embedded.w3.eth.get_transaction_receipt(HexBytes(registered.tx_hash))

    # Assert
    assert direct_events == web3_events
    assert len(direct_events) > 5
    assert direct_receipt == web3_receipt
    assert len(direct_receipt) == 3
    assert node is not None
    assert int(node["gasUsed"], 16) == formatted["gasUsed"] == registered.gas_used
    assert int(node["blockNumber"], 16) == formatted["blockNumber"]
    assert provider.node_receipt(b"\x11" * 32) is None


def test_keccak_runs_on_pysha3_with_the_same_digests() -> None:
    # Execute
    in_use = use_fast_keccak()

    # Assert
    assert in_use
    assert type(keccak._backend).__name__ == "PySha3Backend"
    assert keccak(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_a_fresh_deployment_is_noted_as_deployed_here(coordinator: LocalAccount) -> None:
    # Execute
    chain = EmbeddedChain()
    try:
        gw = deploy(chain.w3, coordinator)

        # Assert
        assert gw._registered == set()
    finally:
        chain.close()


def test_memberships_read_from_storage_match_the_contracts_view(
    gw: LedgerGateway, fed: Federation, accounts: list[LocalAccount]
) -> None:
    # Prepare: a DP task; alice spends, bob leaves, carol never joins
    alice, bob, carol = accounts[1:4]
    task_id, _ = gw.create_task(h("dp"), h("init"), 1_000, terms=TaskTerms(epsilon_cap=8_000_000))
    gw.fund_task(task_id, 10_000)
    fed.register(alice, bob)
    fed.join(task_id, alice, bob)
    fed.open(task_id, 1)
    spent = Commitment(task_id, RoundId(1), h("u"), 10, 3_000_000)
    fed.commit(task_id, 1, [sign_commitment(alice, gw.domain, spent)], model="g1")
    gw.remove_member(task_id, bob.address)
    who = [alice.address, bob.address, carol.address]

    # Execute
    stored = gw.memberships(task_id, who)
    viewed = [gw.membership(task_id, a) for a in who]  # getMembership, executed by py-evm

    # Assert
    assert stored == viewed
    assert stored[0].epsilon_spent == 3_000_000
    assert stored[0].joined
    assert stored[1].left_round == 2
    assert stored[1].index == 1
    assert stored[2] == viewed[2]
    assert not stored[2].joined
