"""What one round costs past this machine: Ethereum mainnet and a rollup, from the measured gas.

The gas is measured (bench_gas.bench_scaling); the prices are not, and they move: each is dated
and sourced below. Rerun with today's prices by editing PRICES (the gas does not change with
them). Issue 18, item 6.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_gas import ScalingFigures

#: EIP-7825 (Final, in Fusaka/Osaka, on mainnet from 2025-12-03): no transaction may use more gas.
TX_GAS_CAP = 16_777_216


@dataclass(frozen=True)
class GasPrice:
    """A price of gas in gwei, where and when it was seen."""

    chain: str
    gwei: float
    seen: str
    capped: bool = True  # EIP-7825's cap applies (Ethereum mainnet)


#: ETH in US dollars: $2,921 on 2025-12-25 (GlobeNewswire release of 2025-12-26, "Ethereum
#: (ETH) Price Performance And 2026 Prediction", via menafn.com/1110527355).
ETH_USD = 2_921.0
PRICES = (
    # "average gas prices sitting at just 2.7 gwei compared to 72 gwei in 2024" (alookzone.com,
    # "ETH gas fees: complete guide", 2025); YCharts' average "around 3 gwei" (2025, cited by
    # bitcoinethereumnews.com/?p=2212492).
    GasPrice("Ethereum mainnet, 2025's average", 3.0, "2025"),
    GasPrice("Ethereum mainnet, 2024's average", 72.0, "2024"),
    # Base's minimum base fee, 2,000,000 wei from 2026-02-02 (docs.base.org, "Configuration
    # changelog"): the L2 execution floor. Its L1 data fee (the transaction's bytes posted to
    # Ethereum in blobs) comes on top and is not modelled here.
    # Base has a per-transaction gas maximum of its own (from 2025-09-17, same changelog).
    GasPrice("Base (OP Stack rollup), execution at its floor", 0.002, "2026-02-02", False),
)


def dollars(gas: int, price: GasPrice) -> float:
    """What ``gas`` costs at ``price``, in US dollars."""
    return gas * price.gwei * 1e-9 * ETH_USD


def _cell(gas: int, price: GasPrice) -> str:
    cost = dollars(gas, price)
    text = f"${cost:,.2f}" if cost >= 0.01 else f"${cost:.4f}"
    return text + (" ✗" if price.capped and gas > TX_GAS_CAP else "")


def costs_markdown(figures: ScalingFigures) -> str:
    """The cost table for docs/BENCHMARKS.md: one round, relayed and merkle, per price."""
    sizes = sorted({n for _, n in figures.round_gas})
    merkle_claims = figures.claim_leaf + figures.pull  # one participant's, when it claims
    lines = [
        "| chain, gas price | participants | relayed round | merkle round | "
        "merkle: one participant's claim |",
        "|---|---:|---:|---:|---:|",
    ]
    for price in PRICES:
        for n in sizes:
            lines.append(
                f"| {price.chain} ({price.gwei:g} gwei, {price.seen}) | {n:,} | "
                f"{_cell(figures.round_gas[('relayed', n)], price)} | "
                f"{_cell(figures.round_gas[('merkle', n)], price)} | "
                f"{_cell(merkle_claims, price)} |"
            )
    too_big = [n for n in sizes if figures.round_gas[("relayed", n)] > TX_GAS_CAP]
    lines += [
        "",
        f"- ETH at ${ETH_USD:,.0f} (2025-12-25). ✗: above EIP-7825's cap of {TX_GAS_CAP:,} gas "
        "per transaction (mainnet since Fusaka): the round cannot be one transaction there. "
        "The rollup rows are its execution floor: what a round costs at least there.",
        f"- a merkle participant pays its own claim ({figures.claim_leaf:,} gas to prove its "
        f"leaf, {figures.pull:,} to pull its tokens), once for as many rounds as it lets "
        "accumulate (`claimLeaves`).",
    ]
    if too_big:
        lines.append(
            f"- relayed rounds of {', '.join(f'{n:,}' for n in too_big)} participants exceed the "
            "cap; merkle mode is the mode for large federations on mainnet."
        )
    return "\n".join(lines)
