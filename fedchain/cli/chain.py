"""Chain commands: a local devnet, deploying the contracts, keystores, the scripted ledger demo."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fedchain.cli._common import (
    DEFAULT_RPC_URL,
    account_app,
    app,
    console,
    short,
    signer,
)

if TYPE_CHECKING:
    pass


@app.command()
def devnet(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8545,
    state: Annotated[Path, typer.Option(help="State file: the chain survives a restart.")] = Path(
        ".fedchain/devnet-state.json"
    ),
) -> None:
    """Run a local anvil devnet on 127.0.0.1 until Ctrl-C, its state kept in a file."""
    from fedchain.chain.accounts import devnet_accounts
    from fedchain.chain.backends import AnvilChain

    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)  # before anvil starts: a stop always saves the state
    state.parent.mkdir(parents=True, exist_ok=True)
    chain = AnvilChain(port=port, state_file=state).start()
    console.print(f"anvil devnet at [bold]{chain.url}[/] (chain id {chain.w3.eth.chain_id})")
    console.print(f"state file: {state}")
    console.print("funded DEVNET TEST accounts (public test mnemonic, never for real value):")
    for index, account in enumerate(devnet_accounts(4)):
        console.print(f"  [{index}] {account.address}")
    console.print("stop with Ctrl-C")
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        chain.close()
        console.print("devnet stopped; state saved")


@app.command()
def deploy(
    rpc_url: Annotated[str, typer.Option(help="Node to deploy to.")] = DEFAULT_RPC_URL,
    out: Annotated[Path, typer.Option(help="Deployment file to write.")] = Path(
        "fedchain-deployment.json"
    ),
    keystore: Annotated[
        Path | None, typer.Option(help="Deployer keystore (password: prompt or env).")
    ] = None,
    devnet_account: Annotated[
        int | None, typer.Option(help="Use DEVNET TEST key N instead (devnets only).")
    ] = None,
) -> None:
    """Deploy the ledger and a dev reward token; write the deployment file later commands read."""
    from fedchain.chain.backends import RpcChain
    from fedchain.chain.deploy import deploy as deploy_contracts

    chain = RpcChain(rpc_url)
    deployer = signer(keystore, devnet_account, int(chain.w3.eth.chain_id))
    gateway = deploy_contracts(chain.w3, deployer)
    deployment = gateway.deployment.__class__(**{**vars(gateway.deployment), "rpc_url": rpc_url})
    deployment.save(out)
    console.print(f"ledger  {deployment.ledger}")
    console.print(f"token   {deployment.token}")
    console.print(f"chain   {deployment.chain_id}, from block {deployment.block}")
    console.print(f"wrote {out}")


@account_app.command("new")
def account_new(
    path: Annotated[Path, typer.Argument(help="Keystore file to create (mode 600).")],
) -> None:
    """Create a key and store it encrypted; prints only its address."""
    from fedchain.chain.accounts import keystore_password, new_keystore

    address = new_keystore(path, keystore_password(confirm=True))
    console.print(f"address {address}")
    console.print(f"keystore {path} (mode 600): back it up, the key exists nowhere else")


@account_app.command("show")
def account_show(
    path: Annotated[Path, typer.Argument(help="Keystore file.")],
) -> None:
    """Print a keystore's address (decrypting it proves the password)."""
    from fedchain.chain.accounts import keystore_password, load_keystore

    console.print(load_keystore(path, keystore_password()).address)


@app.command("ledger-demo")
def ledger_demo() -> None:
    """One scripted round on the embedded chain: deploy, commit, reward, claim; print the record."""
    from fedchain.chain.scripted import scripted_round

    record = scripted_round()
    table = Table(title="events recorded on the embedded chain")
    for column in ("block", "event", "details"):
        table.add_column(column)
    for event in record.events:
        details = ", ".join(f"{k}={short(v)}" for k, v in event.args.items())
        table.add_row(str(event.block_number), event.name, details)
    console.print(table)
    for line in record.summary:
        console.print(line)
