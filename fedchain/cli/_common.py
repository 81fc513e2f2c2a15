"""What every command group of the ``fedchain`` command line shares: the app, consoles, options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedchain.report import RewardToken


app = typer.Typer(
    name="fedchain",
    help="Federated learning with on-chain contribution accounting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
account_app = typer.Typer(help="Encrypted keystores for participants and coordinators.")
app.add_typer(account_app, name="account")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DEVNET_CHAIN_IDS = frozenset({31337, 1337})
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
#: The exit code of every command given a --run / --out / --resume that holds no run: a usage
#: error (the path given), as click's own for a bad option.
NO_RUN_EXIT = 2


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red error line; the caller raises the returned exit."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def require_run(run: Path) -> None:
    """Exit with :data:`NO_RUN_EXIT` and one line unless ``run`` holds a finished run."""
    if not (run / "summary.json").is_file():
        raise fail(
            f"no run at {run}: expected summary.json there (see `fedchain simulate`)", NO_RUN_EXIT
        )


def signer(
    keystore: Path | None,
    devnet_index: int | None,
    chain_id: int,
    devnet_ids: frozenset[int] | set[int] = DEVNET_CHAIN_IDS,
) -> LocalAccount:
    from fedchain.chain.accounts import devnet_account, keystore_password, load_keystore

    if keystore is not None and devnet_index is not None:
        raise fail("give --keystore or --devnet-account, not both", 2)
    if keystore is not None:
        return load_keystore(keystore, keystore_password())
    if devnet_index is None:
        raise fail("no signer: give --keystore PATH (or --devnet-account N on a devnet)", 2)
    if chain_id not in devnet_ids:
        raise fail(
            f"chain {chain_id} is not a devnet: DEVNET TEST keys are public, use --keystore", 2
        )
    return devnet_account(devnet_index)


RunOption = Annotated[
    Path, typer.Option("--run", help="A run directory (fedchain simulate --out).")
]
RpcOption = Annotated[
    str | None, typer.Option(help="Node holding the run's chain (default: the saved one).")
]


def audit_verdict(run: Path, recompute: bool = False) -> dict[str, Any] | None:
    """The audit verdict the HTML report shows (None for a run without a ledger)."""
    import json

    from fedchain.audit import audit_run

    summary = run / "summary.json"
    if not summary.exists() or json.loads(summary.read_text())["chain"]["kind"] == "none":
        return None  # the report names the missing run; a run without a chain has no ledger
    return audit_run(run, recompute=recompute).to_json()


def run_token(run: Path) -> RewardToken:
    """The reward token a run's summary.json records (symbol, decimals); "tokens" with 18
    decimals for a run from before summary.json recorded it."""
    import json

    from fedchain.report import reward_token

    return reward_token(json.loads((run / "summary.json").read_text()))


def tokens(amount: int, token: RewardToken | None = None) -> str:
    """An amount in whole tokens with the token's symbol, as the report shows it."""
    from fedchain.report import RewardToken, format_tokens

    return format_tokens(amount, token or RewardToken(None, "tokens", 18, recorded=False))


def short(value: object) -> str:
    text = str(value)
    return text[:12] + "…" if text.startswith("0x") and len(text) > 14 else text
