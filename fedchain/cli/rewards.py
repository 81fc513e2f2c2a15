"""A participant's rewards: what the chain attributed to it, and claiming them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fedchain.cli._common import (
    DEVNET_CHAIN_IDS,
    RpcOption,
    RunOption,
    app,
    console,
    require_run,
    run_token,
    signer,
    tokens,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedchain.audit import OpenedRun as OpenedRunT
    from fedchain.chain.gateway import LedgerGateway as LedgerGatewayT


@app.command()
def rewards(run: RunOption = Path("runs/latest"), rpc_url: RpcOption = None) -> None:
    """Each participant's attributed, claimed and claimable rewards, read from the chain."""
    from fedchain.audit import open_run

    require_run(run)
    opened = open_run(run, rpc_url)
    try:
        if opened.settings.commit_mode == "merkle":
            _merkle_rewards(opened)
            return
        gateway = opened.gateway
        attributed: dict[str, int] = {}
        for event in gateway.events():
            if event.name == "RewardAttributed" and event.args["taskId"] == opened.task_id:
                who = str(event.args["participant"])
                attributed[who] = attributed.get(who, 0) + int(event.args["amount"])
        token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
        unit = run_token(run)
        table = Table(title=f"rewards of task {opened.task_id} ({unit.symbol}, token {token})")
        for column in ("participant", "attributed", "claimed", "claimable"):
            table.add_column(column, justify="left" if column == "participant" else "right")
        ranked = sorted(attributed.items(), key=lambda kv: -kv[1])
        labels = _labels(gateway, [who for who, _ in ranked])
        for who, amount in ranked:
            claimed, owed = gateway.claimed(who, token), gateway.owed(who, token)
            row = (tokens(amount, unit), tokens(claimed, unit), tokens(owed, unit))
            table.add_row(labels[who], *row)
        console.print(table)
    finally:
        opened.close()


def _merkle_rewards(opened: OpenedRunT) -> None:
    """``fedchain rewards`` of a merkle-mode run: the leaves published with the run, checked
    against the roots on chain; claimable = proven but not pulled + not yet proven."""
    from fedchain.federation.merkle_rounds import reward_balances, verified_records

    gateway = opened.gateway
    records = verified_records(opened.out, gateway, opened.task_id)
    balances = reward_balances(records, gateway.events(), opened.task_id)
    token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
    unit = run_token(opened.out)
    table = Table(
        title=f"rewards of task {opened.task_id} (merkle mode, {unit.symbol}, token {token})"
    )
    for column in ("participant", "attributed", "claimed", "claimable"):
        table.add_column(column, justify="left" if column == "participant" else "right")
    ranked = sorted(balances, key=lambda b: -b.attributed)
    labels = _labels(gateway, [b.participant for b in ranked])
    for b in ranked:
        claimed, owed = gateway.claimed(b.participant, token), gateway.owed(b.participant, token)
        table.add_row(
            labels[b.participant],
            tokens(b.attributed, unit),
            tokens(claimed, unit),
            tokens(owed + b.unproven, unit),
        )
    console.print(table)


def _labels(gateway: LedgerGatewayT, addresses: list[str]) -> dict[str, str]:
    """Each address as "Name (0xab12…)", with the name the on-chain registry holds."""
    records = gateway.participants(addresses) if addresses else []
    return {a: r.label(a, whole=True) for a, r in zip(addresses, records, strict=True)}


@app.command()
def claim(
    run: RunOption = Path("runs/latest"),
    rpc_url: RpcOption = None,
    keystore: Annotated[
        Path | None, typer.Option(help="The participant's keystore (password: prompt or env).")
    ] = None,
    devnet_account: Annotated[
        int | None, typer.Option(help="Claim as DEVNET TEST key N (devnets and simulations).")
    ] = None,
) -> None:
    """Pull everything the ledger owes this participant (a saved embedded chain keeps the claim)."""
    from fedchain.audit import open_run

    require_run(run)
    opened = open_run(run, rpc_url, resume=True)
    try:
        gateway = opened.gateway
        chain_id = gateway.deployment.chain_id
        devnet_ids = DEVNET_CHAIN_IDS | ({chain_id} if opened.backend.kind == "embedded" else set())
        claimant = signer(keystore, devnet_account, chain_id, devnet_ids)
        token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
        if opened.settings.commit_mode == "merkle":
            _prove_leaves(opened, claimant)
        paid, result = gateway.as_account(claimant).claim(token)
        if paid == 0:
            console.print(f"{claimant.address} has nothing to claim")
        else:
            console.print(
                f"{claimant.address} claimed {tokens(paid, run_token(run))} (tx {result.tx_hash})"
            )
    finally:
        opened.close()


def _prove_leaves(opened: OpenedRunT, signer: LocalAccount) -> None:
    """Merkle mode: prove the signer's unclaimed leaves (every round, one transaction)."""
    from fedchain.chain.records import TaskId
    from fedchain.federation.merkle_rounds import unclaimed_leaves, verified_records

    gateway = opened.gateway
    records = verified_records(opened.out, gateway, opened.task_id)
    claims = unclaimed_leaves(records, gateway.events(), opened.task_id, signer.address)
    if claims:
        result = gateway.as_account(signer).claim_leaves(TaskId(opened.task_id), claims)
        rounds = ", ".join(str(c.round) for c in claims)
        console.print(f"proved {len(claims)} reward leaves (rounds {rounds}; tx {result.tx_hash})")
