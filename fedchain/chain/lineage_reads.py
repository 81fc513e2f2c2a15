"""What an auditor reads of a chain besides the ledger's events and state: the ledger calls in a
transaction's calldata (the signatures of relayed commitments are there, not in the events), a
transaction's sender, and a few facts of a node (height, chain id, code at an address).

Only the chain layer speaks web3 (ARCHITECTURE.md); :mod:`fedchain.audit` asks these.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from fedchain.chain._artifacts import load_artifact

if TYPE_CHECKING:
    from web3.contract import Contract

    from fedchain.chain.backends import ChainBackend
    from fedchain.chain.gateway import LedgerGateway

__all__ = [
    "LedgerCall",
    "block_height",
    "chain_id",
    "checksum_address",
    "has_code",
    "ledger_calls",
    "raw_transaction_calls",
    "transaction_calls",
    "transaction_sender",
]

#: A ledger function's name and its decoded arguments.
LedgerCall = tuple[str, dict[str, Any]]


def checksum_address(value: object) -> str:
    """The EIP-55 checksummed form of an address (given as text in any case)."""
    return str(to_checksum_address(str(value)))


def ledger_calls(ledger: Contract | type[Contract], data: bytes) -> list[LedgerCall]:
    """The ledger functions a transaction's input calls, with their arguments: one, or each
    call of a ``multicall`` batch (a commit with the next round's opening).

    Raises
    ------
    ValueError
        If ``data`` calls no function of the ledger.
    """
    function, args = ledger.decode_function_input(data)
    if function.fn_name != "multicall":
        return [(str(function.fn_name), dict(args))]
    return [call for inner in args["data"] for call in ledger_calls(ledger, bytes(inner))]


def transaction_calls(gateway: LedgerGateway, tx_hash: str) -> list[LedgerCall]:
    """The ledger calls of the mined transaction ``tx_hash`` (see :func:`ledger_calls`)."""
    tx = gateway.w3.eth.get_transaction(HexBytes(tx_hash))
    return ledger_calls(gateway.ledger, bytes(tx["input"]))


def transaction_sender(gateway: LedgerGateway, tx_hash: str) -> str:
    """The checksummed sender of the mined transaction ``tx_hash``."""
    return checksum_address(gateway.w3.eth.get_transaction(HexBytes(tx_hash))["from"])


def raw_transaction_calls(raw: str) -> list[LedgerCall] | None:
    """The ledger calls of a signed typed transaction (0x-hex, as a saved chain's journal keeps
    it); None when it does not decode as one."""
    try:
        data = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["data"]
        return ledger_calls(_abi_only_ledger(), bytes(HexBytes(data)))
    except Exception:  # any malformed or foreign transaction: the caller says it does not decode
        return None


@cache
def _abi_only_ledger() -> type[Contract]:
    """The Ledger's ABI with no node behind it: enough to decode calldata."""
    return Web3().eth.contract(abi=load_artifact("Ledger")["abi"])


def block_height(backend: ChainBackend) -> int:
    """The number of the chain's latest block."""
    return int(backend.w3.eth.block_number)


def chain_id(backend: ChainBackend) -> int:
    return int(backend.w3.eth.chain_id)


def has_code(backend: ChainBackend, address: str) -> bool:
    """Whether a contract is deployed at ``address``."""
    return bool(bytes(backend.w3.eth.get_code(to_checksum_address(address))))
