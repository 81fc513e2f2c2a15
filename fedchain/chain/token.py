"""What a reward token calls itself: its ERC-20 ``symbol`` and ``decimals``, read from chain.

Both functions are optional in ERC-20 and some tokens return ``symbol`` as ``bytes32``, so a token
that does not answer either is read as "tokens" with 18 decimals (the common case) rather than
failing the run that reads it: a report would rather say "12.5 tokens" than nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from web3 import Web3
from web3.exceptions import BadFunctionCallOutput

from fedchain.chain._reverts import is_revert

__all__ = ["DEFAULT_DECIMALS", "DEFAULT_SYMBOL", "TokenInfo", "token_info"]

DEFAULT_SYMBOL = "tokens"
DEFAULT_DECIMALS = 18

#: ``symbol`` as most tokens declare it, and as ``bytes32`` (MKR and other early tokens).
_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
]  # fmt: skip
_BYTES32_SYMBOL_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "bytes32"}]},
]  # fmt: skip
_T = TypeVar("_T")


class TokenInfo(NamedTuple):
    """A token's ERC-20 ``symbol`` and ``decimals``."""

    symbol: str
    decimals: int


def token_info(w3: Web3, address: str) -> TokenInfo:
    """The ``symbol`` and ``decimals`` of the ERC-20 token at ``address``.

    Parameters
    ----------
    w3
        A connected Web3 (the gateway's ``w3``, so its retries apply).
    address
        The token contract's address.

    Returns
    -------
    TokenInfo
        ``(symbol, decimals)``; ``"tokens"`` and 18 for a function the token does not answer.
    """
    checksummed = Web3.to_checksum_address(address)
    token = w3.eth.contract(address=checksummed, abi=_ABI)
    decimals = _answer(lambda: int(token.functions.decimals().call()))
    return TokenInfo(_symbol(w3, checksummed), DEFAULT_DECIMALS if decimals is None else decimals)


def _answer(call: Callable[[], _T]) -> _T | None:
    """``call()``, or None when the contract does not answer it: a revert, no code, or output
    of another type. Connection errors are not among them and reach the caller."""
    try:
        return call()
    except (BadFunctionCallOutput, OverflowError, ValueError):
        return None
    except Exception as exc:
        if is_revert(exc):
            return None
        raise


def _symbol(w3: Web3, address: Any) -> str:
    as_string = w3.eth.contract(address=address, abi=_ABI).functions.symbol()
    as_bytes32 = w3.eth.contract(address=address, abi=_BYTES32_SYMBOL_ABI).functions.symbol()
    symbol = _answer(lambda: str(as_string.call()))
    if symbol is None:
        raw = _answer(lambda: bytes(as_bytes32.call()))
        symbol = (raw or b"").rstrip(b"\0").decode("utf-8", errors="replace")
    # A symbol is whatever its deployer chose: keep it one short printable word.
    cleaned = "".join(c for c in symbol if c.isprintable() and not c.isspace())[:16]
    return cleaned or DEFAULT_SYMBOL
