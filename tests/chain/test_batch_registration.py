"""Registering a consortium in one transaction, through the gateway."""

from __future__ import annotations

import hashlib

import pytest

from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import LedgerParticipantWithdrawn
from fedchain.chain.records import ParticipantStatus


def _org(i: int) -> bytes:
    return hashlib.sha256(f"org {i}".encode()).digest()


def test_batch_registration_is_one_transaction_and_idempotent() -> None:
    # Prepare
    coordinator, *members = devnet_accounts(5)
    gateway = deploy(EmbeddedChain().w3, coordinator)
    addresses = [m.address for m in members]
    orgs = [_org(i) for i in range(4)]
    # Execute
    first = gateway.register_participants(addresses, orgs)
    again = gateway.register_participants(addresses, orgs)
    # Assert
    assert not first.already_recorded
    assert again.already_recorded
    records = gateway.participants(addresses)
    assert [r.status for r in records] == [ParticipantStatus.ACTIVE] * 4
    assert [r.org_hash for r in records] == orgs
    registered = [e for e in gateway.events() if e.name == "ParticipantRegistered"]
    assert len(registered) == 4
    assert len({e.tx_hash for e in registered}) == 1


def test_a_batch_with_a_withdrawn_member_is_refused_whole() -> None:
    # Prepare
    coordinator, a, b = devnet_accounts(3)
    gateway = deploy(EmbeddedChain().w3, coordinator)
    gateway.register_participant(a.address, _org(0))
    gateway.as_account(a).withdraw()
    # Execute / Assert
    with pytest.raises(LedgerParticipantWithdrawn) as caught:
        gateway.register_participants([b.address, a.address], [_org(1), _org(0)])
    assert caught.value.arguments["account"] == a.address
    assert gateway.participant(b.address).status == ParticipantStatus.NONE
    with pytest.raises(ValueError, match="2 addresses but 1 org hashes"):
        gateway.register_participants([a.address, b.address], [_org(0)])
