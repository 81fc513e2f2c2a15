"""Chain test fixtures: one embedded chain and deployment per module, rewound after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.chain.accounts import devnet_accounts
from fedchain.chain.backends import AnvilChain, EmbeddedChain, find_anvil
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import ChainError
from fedchain.chain.gateway import LedgerGateway

from ._support import Federation, FlakyProxy, running_proxy


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    """DEVNET TEST accounts 0..9, funded with ETH at genesis; 0 deploys and coordinates."""
    return devnet_accounts(10)


@pytest.fixture(scope="session")
def coordinator(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[0]


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain()
    yield chain
    chain.close()


@pytest.fixture(scope="module")
def deployed(embedded: EmbeddedChain, coordinator: LocalAccount) -> LedgerGateway:
    """The ledger and dev token, deployed once per module (about 0.4 s)."""
    return deploy(embedded.w3, coordinator)


@pytest.fixture
def gw(embedded: EmbeddedChain, deployed: LedgerGateway) -> Iterator[LedgerGateway]:
    """The coordinator's gateway on a fresh ledger: the chain is rewound after each test."""
    snapshot = embedded.w3.testing.snapshot()
    yield deployed
    embedded.w3.testing.revert(snapshot)


@pytest.fixture
def fed(gw: LedgerGateway) -> Federation:
    return Federation(gw)


@pytest.fixture(scope="session")
def anvil_binary() -> Path:
    """The anvil binary; its absence fails the test (``make test`` installs it), never skips it."""
    try:
        return find_anvil()
    except ChainError as exc:
        pytest.fail(f"anvil is required for this test: {exc}")


@pytest.fixture(scope="module")
def anvil(anvil_binary: Path) -> Iterator[AnvilChain]:
    """A fresh anvil per module (test_anvil.py overrides it with one keeping a state file)."""
    chain = AnvilChain().start()
    yield chain
    chain.close()


@pytest.fixture
def proxy(anvil: AnvilChain) -> Iterator[FlakyProxy]:
    """A flaky JSON-RPC proxy in front of the module's anvil (it passes everything until reset)."""
    yield from running_proxy(anvil.url)
