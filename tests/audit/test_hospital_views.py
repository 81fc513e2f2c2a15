"""A hospital's views of a ledger where it took part in two tasks paying in the same token
(issue 19, item 5): `rewards` shows the run's task's attributions apart from the ledger's
per-token balances over every task, each labelled as what it is; `claim` says what it pulled."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from fedchain.chain.accounts import devnet_account
from fedchain.cli import _common, app

from ._consortium import FIRST_SITE_KEY, Consortium, run_consortium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

runner = CliRunner()
HOSPITAL_A = devnet_account(FIRST_SITE_KEY).address  # DEVNET TEST key


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Consortium, Consortium]]:
    """Task 1 and, on the same ledger and token, task 2 of the same three hospitals."""
    first = run_consortium(tmp_path_factory.mktemp("task1"))
    try:
        second = run_consortium(tmp_path_factory.mktemp("task2"), on=first)
        yield first, second
    finally:
        first.chain.close()


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A console wide enough that no table cell wraps."""
    monkeypatch.setattr(_common.console, "width", 250)


def _rewarded(consortium: Consortium, address: str) -> int:
    summary = json.loads((consortium.run / "summary.json").read_text())
    return int(summary["rewards"][address])


def _fdt(amount: int) -> str:
    return f"{amount / 10**18:,.2f} FDT"


def _cells(output: str, address: str) -> list[str]:
    """The cells of the table row naming ``address`` (a wrapped row: its first line)."""
    row = next(line for line in output.splitlines() if address[:12] in line)
    return [cell.strip() for cell in row.split("│") if cell.strip()]


def test_rewards_shows_the_tasks_attributions_apart_from_the_tokens_balances(
    two_tasks: tuple[Consortium, Consortium],
) -> None:
    # Prepare
    first, second = two_tasks
    in_task_1 = _rewarded(first, HOSPITAL_A)
    in_both = in_task_1 + _rewarded(second, HOSPITAL_A)
    # Execute
    done = runner.invoke(app, ["rewards", "--run", str(first.run), "--rpc-url", first.chain.url])
    # Assert: "task 1" is task 1's; credited (claimed + claimable) is both tasks', so labelled
    assert done.exit_code == 0, done.output
    assert "task 1" in done.output
    assert "all tasks: credited" in done.output
    assert "a claim pulls them all at once" in done.output.replace("\n", " ")
    cells = _cells(done.output, HOSPITAL_A)
    assert cells[1:3] == [_fdt(in_task_1), _fdt(in_both)], cells


def test_claim_says_it_pulled_every_tasks_rewards_in_the_token(
    two_tasks: tuple[Consortium, Consortium],
) -> None:
    # Prepare
    first, second = two_tasks
    in_task_1 = _rewarded(first, HOSPITAL_A)
    in_both = in_task_1 + _rewarded(second, HOSPITAL_A)
    command = ["claim", "--run", str(first.run), "--rpc-url", first.chain.url]
    # Execute
    done = runner.invoke(app, [*command, "--devnet-account", str(FIRST_SITE_KEY)])
    again = runner.invoke(app, [*command, "--devnet-account", str(FIRST_SITE_KEY)])
    # Assert
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert f"claimed {_fdt(in_both)}" in text
    assert "from every task; task 1 attributed " + _fdt(in_task_1) in text
    assert "nothing to claim in FDT" in again.output
