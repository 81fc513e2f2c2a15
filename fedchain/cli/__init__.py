"""The ``fedchain`` command line (typer + rich): one module per command group."""

from __future__ import annotations

from fedchain.cli import audit, chain, consortium, rewards, simulate
from fedchain.cli._common import app, err_console
from fedchain.errors import FedchainError

__all__ = ["app", "main"]

# Importing the command modules registered their commands on `app`.
_COMMAND_GROUPS = (audit, chain, consortium, rewards, simulate)


def main() -> None:
    """Console entry point: errors become one red line; bad options exit 2, failures 1."""
    import click

    try:
        code = app(standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        raise SystemExit(130) from None
    except click.UsageError as exc:
        err_console.print(f"[bold red]error:[/] {exc.format_message()}")
        raise SystemExit(2) from None
    except FedchainError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)
