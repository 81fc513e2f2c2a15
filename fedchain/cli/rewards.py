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
    from fedchain.chain.gateway import LedgerEvent as LedgerEventT
    from fedchain.chain.gateway import LedgerGateway as LedgerGatewayT


@app.command()
def rewards(run: RunOption = Path("runs/latest"), rpc_url: RpcOption = None) -> None:
    """Each participant's rewards in the run's task, and its balance in the task's token.

    "task N" is what the task's rounds attributed; the credited, claimed and claimable columns
    are the ledger's per token, over every task (a claim pulls them all at once).
    """
    from fedchain.audit import open_run

    require_run(run)
    opened = open_run(run, rpc_url)
    try:
        if opened.settings.commit_mode == "merkle":
            _merkle_rewards(opened)
            return
        gateway = opened.gateway
        events = gateway.events()  # read once: the attributions and the registrars
        attributed = _task_attributed(events, opened.task_id)
        token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
        unit = run_token(run)
        table = _balance_table(opened.task_id, unit.symbol, token, "")
        ranked = sorted(attributed.items(), key=lambda kv: -kv[1])
        labels = _labels(gateway, [who for who, _ in ranked])
        for who, amount in ranked:
            claimed, owed = gateway.claimed(who, token), gateway.owed(who, token)
            cells = (amount, claimed + owed, claimed, owed)
            table.add_row(labels[who], *(tokens(c, unit) for c in cells))
        console.print(table)
        console.print(_parties_line(gateway, events, opened.task_id, [w for w, _ in ranked]))
        _print_privacy(run)
    finally:
        opened.close()


def _parties_line(
    gateway: LedgerGatewayT, events: list[LedgerEventT], task_id: int, participants: list[str]
) -> str:
    """The task's coordinator and the registrar(s) that admitted its paid participants, named
    as the registry names them (issue 16: every party, not only the participants)."""
    coordinator = str(gateway.task(task_id).coordinator)  # type: ignore[arg-type]
    registrars = sorted(
        {
            str(e.args["registrar"])
            for e in events
            if e.name == "OrganisationRegistered" and str(e.args["account"]) in participants
        }
    )
    labels = _labels(gateway, [coordinator, *registrars])
    line = f"task {task_id} coordinated by {labels[coordinator]}"
    if registrars:
        line += "; participants registered by " + ", ".join(labels[r] for r in registrars)
    return line


def privacy_line(run: Path) -> str | None:
    """The task's DP terms from the run's spec (``task.json``), or None without DP."""
    from fedchain.task import TaskSpec, TaskSpecError

    try:
        spec = TaskSpec.load(run / "task.json")
    except TaskSpecError:
        return None
    terms = spec.privacy
    if terms is None:
        return None
    return f"privacy: {terms.describe()}, noise planned over {spec.dp_rounds} rounds (DP-SGD)"


def _print_privacy(run: Path) -> None:
    line = privacy_line(run)
    if line is not None:
        console.print(line)


def _merkle_rewards(opened: OpenedRunT) -> None:
    """``fedchain rewards`` of a merkle-mode run: the leaves published with the run, checked
    against the roots on chain; claimable = proven but not pulled + not yet proven."""
    from fedchain.federation.merkle_rounds import reward_balances, verified_records

    gateway = opened.gateway
    records = verified_records(opened.out, gateway, opened.task_id)
    events = gateway.events()  # read once: the leaves' claims and the registrars
    balances = reward_balances(records, events, opened.task_id)
    token = gateway.task(opened.task_id).token  # type: ignore[arg-type]
    unit = run_token(opened.out)
    table = _balance_table(opened.task_id, unit.symbol, token, "merkle mode, ")
    table.caption = (
        f"{table.caption}; in merkle mode the task's leaves not yet proven are added to "
        "credited and claimable (`fedchain claim` proves them first)"
    )
    ranked = sorted(balances, key=lambda b: -b.attributed)
    labels = _labels(gateway, [b.participant for b in ranked])
    for b in ranked:
        claimed, owed = gateway.claimed(b.participant, token), gateway.owed(b.participant, token)
        cells = (b.attributed, claimed + owed + b.unproven, claimed, owed + b.unproven)
        table.add_row(labels[b.participant], *(tokens(c, unit) for c in cells))
    console.print(table)
    participants = [b.participant for b in ranked]
    console.print(_parties_line(gateway, events, opened.task_id, participants))
    _print_privacy(opened.out)


def _task_attributed(events: list[LedgerEventT], task_id: int) -> dict[str, int]:
    """What task ``task_id``'s rounds attributed to each participant (its events only)."""
    attributed: dict[str, int] = {}
    for event in events:
        if event.name == "RewardAttributed" and event.args["taskId"] == task_id:
            who = str(event.args["participant"])
            attributed[who] = attributed.get(who, 0) + int(event.args["amount"])
    return attributed


def _balance_table(task_id: int, symbol: str, token: str, mode: str) -> Table:
    """The rewards table: one task's attributions beside the ledger's balances in its token,
    each column saying which it is (a claim is per token, over every task)."""
    table = Table(
        title=f"rewards of task {task_id} ({mode}{symbol}, token {token})",
        caption=(
            f"task {task_id}: attributed by this task's rounds. all tasks: the ledger's "
            f"balances in {symbol} over every task that pays in it (credited = claimed + "
            "claimable); a claim pulls them all at once"
        ),
    )
    columns = (f"task {task_id}", "all tasks: credited", "claimed", "claimable")
    table.add_column("participant", justify="left")
    for column in columns:
        table.add_column(column, justify="right")
    return table


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
    """Pull everything the ledger owes this participant in the run's task's token, from every
    task paying in it (a claim is per token); says how much of it the run's task attributed.
    A saved embedded chain keeps the claim."""
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
        unit = run_token(run)
        paid, result = gateway.as_account(claimant).claim(token)
        if paid == 0:
            console.print(
                f"{claimant.address} has nothing to claim in {unit.symbol} (token {token}), "
                "from any task"
            )
        else:
            console.print(
                f"{claimant.address} claimed {tokens(paid, unit)} (tx {result.tx_hash}): "
                f"everything the ledger owed it in {unit.symbol} (token {token}), from every "
                f"task; task {opened.task_id} attributed "
                f"{tokens(_attributed_to(opened, claimant.address), unit)} to it in all"
            )
    finally:
        opened.close()


def _attributed_to(opened: OpenedRunT, address: str) -> int:
    """What the run's task attributed to ``address`` over its rounds (merkle: its leaves)."""
    gateway = opened.gateway
    if opened.settings.commit_mode != "merkle":
        return _task_attributed(gateway.events(), opened.task_id).get(address, 0)
    from fedchain.federation.merkle_rounds import reward_balances, verified_records

    records = verified_records(opened.out, gateway, opened.task_id)
    balances = reward_balances(records, gateway.events(), opened.task_id)
    return sum(b.attributed for b in balances if b.participant.lower() == address.lower())


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
