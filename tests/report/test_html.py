"""The HTML report as a consortium reads it: amounts in the token's symbol, every absence
explained, a participant who missed rounds counted once. Hand-made runs; no simulation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedchain.report import RewardToken, format_tokens, render_report, reward_token

from ._page import Page
from ._runs import ALICE, BOB, CAROL, TOKEN, absent, outcome, round_, summary, write_run

FCT = {"address": TOKEN, "symbol": "FCT", "decimals": 6}


def attributed(round_number: int, participant: str, amount: int) -> dict[str, Any]:
    """A RewardAttributed event of task 1, as ledger.json holds it."""
    return {
        "block": 10 + round_number, "tx": "0x00", "log_index": 0, "event": "RewardAttributed",
        "args": {"taskId": 1, "round": round_number, "participant": participant, "score": 1,
                 "amount": str(amount)},
    }  # fmt: skip


def dropout_run() -> list[dict[str, Any]]:
    """Three participants over three rounds; Bob (node 3) and Carol (node 4) each miss some."""
    return [
        round_(1, None, [
            absent(2, "no reply within the round timeout"),
            absent(3, "no reply within the round timeout"),
            absent(4, "no reply within the round timeout"),
        ]),
        round_(2, 0.81, [
            outcome(2, ALICE, reward="12500000"), outcome(3, BOB, reward="2500000"),
            absent(4, "client error: simulated dropout: client 2 failed in round 2"),
        ]),
        round_(3, 0.82, [
            outcome(2, ALICE, reward="7500000"), absent(3, ""),
            outcome(4, CAROL, reward="1"),
        ]),
    ]  # fmt: skip


@pytest.fixture
def page(tmp_path: Path) -> Page:
    events = [attributed(2, ALICE, 12_500_000), attributed(2, BOB, 2_500_000),
              attributed(3, ALICE, 7_500_000), attributed(3, CAROL, 1)]  # fmt: skip
    run = write_run(tmp_path / "run", summary(dropout_run(), token=FCT), events)
    return Page(render_report(run, None))


def outcome_lists(page: Page) -> list[str]:
    """The text under each round listing its rejected and absent participants."""
    return [row[1] for row in page.tables["rounds"] if row[0] == ""]


def test_every_absent_participant_is_listed_under_its_round_with_the_reason(page: Page) -> None:
    listed = outcome_lists(page)
    # Assert: rounds 1, 2 and 3 each have a list
    assert len(listed) == 3
    assert listed[0].startswith("absent")
    assert listed[0].count("no reply within the round timeout") == 3
    assert "client error: simulated dropout: client 2 failed in round 2" in listed[1]
    # Bob, absent in round 3 with no reason recorded, is named by the address he signed with
    assert "did not reply within the round" in listed[2]
    assert "0x3C44Cd…93BC" in listed[2]


def test_a_node_that_missed_rounds_is_one_participant_named_by_its_address(page: Page) -> None:
    rows = page.rows("participants")
    assert [row[0][:8] for row in rows] == ["0x709979", "0x3C44Cd", "0x90F79b"]
    assert not any(row[0].startswith("node-") for row in rows)
    absences = {row[0][:8]: row[4] for row in rows}
    assert absences == {"0x709979": "1", "0x3C44Cd": "2", "0x90F79b": "2"}
    assert "3 participants" in " ".join(page.text)


def test_amounts_carry_the_token_symbol_and_its_decimals(page: Page) -> None:
    # Assert: FCT has 6 decimals; 20,000,000 units are 20 FCT, 1 unit keeps its digits
    rewards = {row[0][:8]: row[6] for row in page.rows("participants")}
    assert rewards == {"0x709979": "20.00 FCT", "0x3C44Cd": "2.50 FCT", "0x90F79b": "0.000001 FCT"}
    assert all(row[-1] == "matches chain" for row in page.rows("participants"))
    text = " ".join(" ".join(page.text).split())
    assert "22.50 FCT" in text  # the rewards attributed card
    assert "budget 1,000,000,000,000,000.00 FCT a round" in text
    assert f"{TOKEN} FCT · 6 decimals" in text


def test_a_run_written_before_tokens_were_recorded_says_tokens_of_18_decimals(
    tmp_path: Path,
) -> None:
    # Prepare: summary.json without "token", as runs before it wrote it
    rounds = [round_(1, 0.8, [outcome(2, ALICE, reward="1786800000000000000000")])]
    run = write_run(tmp_path / "old", summary(rounds))
    # Execute
    page = Page(render_report(run, None))
    # Assert
    assert page.rows("participants")[0][6] == "1,786.80 tokens"
    assert "symbol not recorded by this run" in " ".join(page.text)


def test_a_chain_that_disagrees_is_shown_in_the_token(tmp_path: Path) -> None:
    rounds = [round_(1, 0.8, [outcome(2, ALICE, reward="2000000")])]
    run = write_run(tmp_path / "run", summary(rounds, token=FCT), [attributed(1, ALICE, 1_000_000)])
    row = Page(render_report(run, None)).rows("participants")[0]
    assert row[-1] == "chain says 1.00 FCT"


@pytest.mark.parametrize(
    ("amount", "decimals", "expected"),
    [
        (0, 18, "0 FDT"),
        (12_500_000_000_000_000_000, 18, "12.50 FDT"),
        (1_234_567_000_000_000_000_000_000, 18, "1,234,567.00 FDT"),
        (13_300_000_000_000, 18, "0.000013 FDT"),  # two significant digits, not "0.00"
        (1, 18, "0.000000000000000001 FDT"),
        (5, 0, "5 FDT"),  # a token without decimals has no fraction
        (12_345, 1, "1,234.5 FDT"),
        (-2_500_000_000_000_000_000, 18, "-2.50 FDT"),
    ],
)
def test_format_tokens(amount: int, decimals: int, expected: str) -> None:
    assert format_tokens(amount, RewardToken(TOKEN, "FDT", decimals)) == expected


def test_reward_token_reads_summary_json_or_falls_back() -> None:
    assert reward_token({"token": FCT}) == RewardToken(TOKEN, "FCT", 6)
    old = reward_token({"chain": {"kind": "embedded", "token": TOKEN}})
    assert old == RewardToken(TOKEN, "tokens", 18, recorded=False)
    assert reward_token({"chain": {"kind": "none"}, "token": None}).symbol == "tokens"


def _verdict(*statuses: str) -> dict[str, Any]:
    """A verdict (Verdict.to_json's shape) with one row per status: ok, FAIL or not checked."""
    rows = [
        {"check": f"check {i}", "ok": status == "ok", "status": status, "task": 1,
         "round": None, "participant": None, "detail": f"{status} detail"}
        for i, status in enumerate(statuses)
    ]  # fmt: skip
    return {"ok": all(s == "ok" for s in statuses), "checks": rows}


@pytest.mark.parametrize(
    ("statuses", "badge", "headline"),
    [
        (("ok", "ok"), "audit passed", "2 checks, all passed"),
        (("ok", "not checked"), "audit incomplete", "1 of 2 checks could not run: not checked"),
        (("FAIL", "not checked", "ok"), "audit failed", "1 of 3 checks failed; 1 not checked"),
    ],
)
def test_a_check_that_could_not_run_reads_not_checked_never_failed_or_passed(
    tmp_path: Path, statuses: tuple[str, ...], badge: str, headline: str
) -> None:
    # Prepare
    run = write_run(tmp_path / "run", summary(dropout_run(), token=FCT), [])
    # Execute
    page = Page(render_report(run, _verdict(*statuses)))
    # Assert
    text = " ".join(page.text)
    assert badge in text
    assert headline in text
    results = [row[0] for row in page.tables["audit"]]
    assert sorted(results) == sorted(
        {"ok": "pass", "FAIL": "FAIL", "not checked": "not checked"}[s] for s in statuses
    )
