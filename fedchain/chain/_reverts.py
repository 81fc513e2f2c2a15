"""Revert decoding: a failed call's raw revert data, and the typed error it names.

The typed error classes live in :mod:`fedchain.chain.errors`; this module finds the revert data
in what web3 or the embedded chain raised and maps its 4-byte selector to the class named after
the contract's custom error.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_tester.exceptions import TransactionFailed as EthTesterTransactionFailed
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from fedchain.chain.errors import REVERT_ERRORS, ContractRevert, TransactionFailed

__all__ = ["RevertDecoder", "is_revert", "revert_data"]


def revert_data(exc: Exception) -> bytes | None:
    """The raw revert data of a failed call, from a node (web3) or from the embedded chain."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return bytes.fromhex(data[2:])
        return None
    # web3's eth-tester provider re-raises the embedded chain's revert as text; the original
    # exception is in the context chain, holding the raw bytes (possibly wrapped in py-evm's
    # Revert) or, for calls, their Python repr.
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, EthTesterTransactionFailed) and current.args:
            first = current.args[0]
            if isinstance(first, Exception) and first.args:
                first = first.args[0]
            if isinstance(first, str) and first[:2] in ("b'", 'b"'):
                first = ast.literal_eval(first)
            if isinstance(first, bytes) and len(first) >= 4:
                return first
        current = current.__context__
    return None


def is_revert(exc: Exception) -> bool:
    """Whether ``exc`` is a contract's revert (from a node or from the embedded chain)."""
    return isinstance(exc, ContractLogicError | EthTesterTransactionFailed)


class RevertDecoder:
    """Maps a revert's 4-byte selector to the typed exception named after the custom error."""

    def __init__(self, abis: Sequence[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item["type"] != "error":
                    continue
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self._errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)

    def decode(self, exc: Exception) -> Exception:
        """The typed error for the revert ``exc``; TransactionFailed when it names none known."""
        raw = revert_data(exc)
        if raw is None:
            return TransactionFailed(f"reverted: {exc}")
        known = self._errors.get(raw[:4])
        if known is None:
            return TransactionFailed(f"reverted with unknown data 0x{raw.hex()}: {exc}")
        name, names, types = known
        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, abi_decode(types, raw[4:]), strict=True)
        ]
        cls = REVERT_ERRORS.get(name) or type(name, (ContractRevert,), {"fields": tuple(names)})
        error: Exception = cls(**dict(zip(names, values, strict=True)))
        return error
