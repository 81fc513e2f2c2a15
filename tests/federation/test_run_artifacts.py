"""summary.json records the reward token as read from chain: address, symbol and decimals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedchain.federation.coordinator import task_spec
from fedchain.federation.round_report import ParticipantOutcome, RoundReport
from fedchain.federation.run_artifacts import (
    RewardTokenRecord,
    RunRecord,
    read_reward_token,
    summary,
    write_artifacts,
)
from fedchain.report import format_tokens, reward_token
from fedchain.settings import RunSettings

from .conftest import Ledger

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def settings() -> RunSettings:
    return RunSettings()


def record(settings: RunSettings, token: RewardTokenRecord | None) -> RunRecord:
    """A one-round record: one accepted update rewarded 12.5 tokens of 18 decimals, one absent."""
    accepted = ParticipantOutcome(
        node_id=2, address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8", accepted=True,
        score=0.5, reward=12_500_000_000_000_000_000,
    )  # fmt: skip
    absent = ParticipantOutcome(node_id=3, absent=True, reason="no reply within the round timeout")
    report = RoundReport(
        round=1, parent_model_hash="0x01", global_model_hash="0x02", accuracy=0.9, loss=0.3,
        committed=True, participants=[accepted, absent],
    )  # fmt: skip
    return RunRecord(
        settings=settings,
        spec=task_spec(settings),
        chain={"kind": "embedded", "token": token.address if token else None},
        task_id=1,
        reports=[report],
        final_model_hash="0x02",
        token=token,
    )


def test_the_reward_token_is_read_from_the_task_on_chain(ledger: Ledger) -> None:
    # Execute
    token = read_reward_token(ledger.gateway, ledger.task_id)
    # Assert: the task's token (the dev token here), as the token itself names it
    assert token == RewardTokenRecord(ledger.gateway.deployment.token, "FDT", 18)


def test_summary_json_records_the_token_and_the_report_writes_its_symbol(
    settings: RunSettings, tmp_path: Path
) -> None:
    # Prepare
    token = RewardTokenRecord("0x5FbDB2315678afecb367f032d93F642f64180aa3", "FDT", 18)
    # Execute
    write_artifacts(record(settings, token), tmp_path)
    document = json.loads((tmp_path / "summary.json").read_text())
    # Assert
    assert document["token"] == {"address": token.address, "symbol": "FDT", "decimals": 18}
    read = reward_token(document)
    assert format_tokens(int(document["rewards"][next(iter(document["rewards"]))]), read) == (
        "12.50 FDT"
    )
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "rewards.png").read_bytes()[:8] == PNG_MAGIC


def test_a_run_without_a_ledger_records_no_token(settings: RunSettings) -> None:
    document = summary(record(settings, None))
    assert document["token"] is None
    # Read back, amounts fall back to whole tokens of 18 decimals without a symbol.
    assert format_tokens(12_500_000_000_000_000_000, reward_token(document)) == "12.50 tokens"


def test_the_absent_outcome_keeps_its_reason_in_summary_json(settings: RunSettings) -> None:
    rounds = summary(record(settings, None))["rounds"]
    absent = [p for p in rounds[0]["participants"] if p["absent"]]
    assert [p["reason"] for p in absent] == ["no reply within the round timeout"]
    assert rounds[0]["absent"] == 1


def test_summary_names_every_party_from_the_ledgers_registry(
    ledger: Ledger, settings: RunSettings
) -> None:
    # Prepare: the fixture's registrar (the coordinator) registered four sites, which joined
    gateway = ledger.gateway
    site = ledger.participants[0].address
    report = RoundReport(1, "0x" + "00" * 32)
    report.participants = [ParticipantOutcome(node_id=1, address=site, accepted=True)]
    record = RunRecord(
        settings=settings,
        spec=task_spec(settings),
        chain={},
        task_id=int(ledger.task_id),
        reports=[report],
        final_model_hash="0x" + "00" * 32,
        events=gateway.events(),
    )
    # Execute
    document = summary(record)
    # Assert
    named = document["parties"]
    coordinator = gateway.account.address
    assert sorted(named[coordinator]["roles"]) == ["coordinator", "registrar"]
    assert named[coordinator]["label"] == coordinator  # never registered: its bare address
    assert named[site]["roles"] == ["participant"]
    assert named[site]["label"] == f"Site {site[:6]} ({site[:6]}…)"
    assert document["rounds"][0]["participants"][0]["label"] == named[site]["label"]
