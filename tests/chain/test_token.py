"""token_info: the symbol and decimals of a reward token, read from the embedded chain."""

from __future__ import annotations

import pytest
import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.token import TokenInfo, token_info


def deploy_runtime(w3: Web3, deployer: LocalAccount, runtime: bytes) -> str:
    """Deploy a contract whose code is ``runtime`` (init code that copies it and returns it)."""
    size = len(runtime)
    assert size < 256
    init = bytes([0x60, size, 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, size, 0x60, 0x00, 0xF3])
    tx = {
        "from": deployer.address,
        "nonce": w3.eth.get_transaction_count(deployer.address, "pending"),
        "chainId": w3.eth.chain_id,
        "gas": 200_000,
        "gasPrice": w3.eth.gas_price,
        "data": init + runtime,
    }
    signed = deployer.sign_transaction(tx)
    w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(signed.hash)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def returning_word(word: bytes) -> bytes:
    """Runtime code answering every call with the 32-byte ``word`` (PUSH32, MSTORE, RETURN)."""
    assert len(word) == 32
    return b"\x7f" + word + bytes([0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xF3])


def test_the_dev_token_is_read_as_its_symbol_and_decimals(gw: LedgerGateway) -> None:
    info = token_info(gw.w3, gw.deployment.token)
    assert info == TokenInfo("FDT", 18)
    symbol, decimals = info  # unpacks as the (symbol, decimals) pair it is
    assert (symbol, decimals) == ("FDT", 18)


def test_a_contract_without_symbol_or_decimals_reads_as_tokens_of_18_decimals(
    gw: LedgerGateway,
) -> None:
    # The Ledger has neither function: its calls revert.
    assert token_info(gw.w3, gw.deployment.ledger) == TokenInfo("tokens", 18)


def test_an_address_without_code_reads_as_tokens_of_18_decimals(
    gw: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    assert token_info(gw.w3, accounts[5].address) == TokenInfo("tokens", 18)


def test_a_bytes32_symbol_is_read_and_a_decimals_too_large_for_uint8_is_not_trusted(
    embedded: EmbeddedChain, gw: LedgerGateway, coordinator: LocalAccount
) -> None:
    # Prepare: a token answering every call with "MKR" as bytes32 (as MKR's own symbol()).
    address = deploy_runtime(embedded.w3, coordinator, returning_word(b"MKR".ljust(32, b"\0")))
    # Execute
    info = token_info(embedded.w3, address)
    # Assert
    assert info == TokenInfo("MKR", 18)


def test_a_symbol_with_spaces_and_control_characters_is_cleaned(
    embedded: EmbeddedChain, gw: LedgerGateway, coordinator: LocalAccount
) -> None:
    address = deploy_runtime(
        embedded.w3, coordinator, returning_word(b"F C\nT\x07".ljust(32, b"\0"))
    )
    assert token_info(embedded.w3, address).symbol == "FCT"


def test_a_chain_that_cannot_be_reached_is_an_error_not_a_default_token() -> None:
    # Port 9 (discard) has no JSON-RPC node: "tokens" would hide a lost chain behind a default.
    w3 = Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2}))
    with pytest.raises(requests.ConnectionError, match="Connection refused"):
        token_info(w3, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
