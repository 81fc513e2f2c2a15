"""How the report writes numbers, token amounts and names, and reads who a participant is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

__all__ = ["RewardToken", "format_tokens", "reward_token"]

#: What a run written before summary.json recorded its token is read as (the dev token's
#: decimals, like most ERC-20s; no symbol known).
FALLBACK_SYMBOL = "tokens"
FALLBACK_DECIMALS = 18


@dataclass(frozen=True)
class RewardToken:
    """The ERC-20 token a run's rewards are paid in, as summary.json records it."""

    address: str | None
    symbol: str
    decimals: int
    recorded: bool = True  # False: a run from before summary.json recorded its token


def reward_token(summary: Mapping[str, Any]) -> RewardToken:
    """The run's reward token: summary.json's ``token``, else "tokens" with 18 decimals."""
    token = summary.get("token")
    if isinstance(token, Mapping):
        return RewardToken(
            address=token.get("address"),
            symbol=str(token.get("symbol") or FALLBACK_SYMBOL),
            decimals=int(token.get("decimals", FALLBACK_DECIMALS)),
        )
    chain = summary.get("chain")
    address = chain.get("token") if isinstance(chain, Mapping) else None
    return RewardToken(address, FALLBACK_SYMBOL, FALLBACK_DECIMALS, recorded=False)


def format_tokens(amount: int, token: RewardToken, symbol: bool = True) -> str:
    """A token amount in whole tokens, e.g. ``"1,786.80 FDT"``.

    Two decimals (fewer for a token with fewer); an amount too small for them keeps up to two
    significant digits (``"0.000013 FDT"``) rather than rounding to a misleading zero.
    """
    value = Decimal(amount).scaleb(-token.decimals)
    places = min(2, token.decimals)
    if amount == 0:
        text = "0"
    elif abs(value) >= Decimal(1).scaleb(-places):
        text = f"{value:,.{places}f}"
    else:
        digits = min(-value.adjusted() + 1, token.decimals)  # two significant digits at most
        text = f"{value.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_EVEN).normalize():f}"
    return f"{text} {token.symbol}" if symbol else text


def who(entry: Mapping[str, Any], addresses: Mapping[int, str] | None = None) -> str:
    """A participant's name: its address, else the address its node signed with in another
    round (``addresses``), else its Flower node."""
    if entry.get("address"):
        return str(entry["address"])
    node = entry.get("node_id", "?")
    known = (addresses or {}).get(node) if isinstance(node, int) else None
    return known or f"node-{node}"


def node_addresses(rounds: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Each node's address, from the rounds where it sent an accepted update.

    An absent participant sent nothing, so its outcome names only its node; an accepted update
    was signed, so its address is the node's. A rejected reply may claim any address and is not
    used.
    """
    found: dict[int, str] = {}
    for r in rounds:
        for p in r["participants"]:
            if p["accepted"] and p.get("address") and isinstance(p.get("node_id"), int):
                found.setdefault(int(p["node_id"]), str(p["address"]))
    return found


def short(text: str, head: int = 8, tail: int = 6) -> str:
    """``text`` shortened to its head and tail around an ellipsis."""
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def score(value: float) -> str:
    """Four decimals; a value too small for them in scientific notation, never "-0.0000"."""
    if value != 0 and abs(value) < 5e-5:
        return f"{value:.2e}"
    return f"{value:.4f}".replace("-0.0000", "0.0000")


def plural(count: int, noun: str) -> str:
    """``"1 check"``, ``"2 checks"``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def has_ledger(summary: Mapping[str, Any]) -> bool:
    """Whether the run recorded anything on a chain (not ``--chain none``)."""
    return str(summary["chain"].get("kind", "none")) != "none"


def title(summary: Mapping[str, Any]) -> str:
    """``dataset · model · strategy``."""
    spec = summary["spec"]
    return f"{spec['dataset']} · {spec['model']} · {spec['strategy']}"
