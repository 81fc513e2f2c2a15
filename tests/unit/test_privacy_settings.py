"""DP's options, spec fields and client budget (issue 17): off by default and invisible then,
refused in one line when malformed, carried by the spec when on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, RecordDict
from typer.testing import CliRunner

from fedchain.api import run_settings
from fedchain.cli import app
from fedchain.cli import simulate as simulate_command
from fedchain.errors import SettingsError
from fedchain.federation.privacy_budget import (
    PrivacyBudgetExhaustedError,
    epsilon_after_round,
    record_round,
    rounds_taken,
)
from fedchain.privacy import PrivacyTerms
from fedchain.settings import RunSettings
from fedchain.task import TaskSpec, privacy_fields

runner = CliRunner()

SPEC: dict[str, Any] = {
    "dataset": "digits",
    "model": "cnn",
    "num_classes": 10,
    "input_shape": (1, 8, 8),
    "strategy": "fedavg",
    "local_epochs": 1,
    "learning_rate": 0.05,
    "batch_size": 16,
    "proximal_mu": 0.0,
    "holdout_hash": "0x00",
    "holdout_fraction": 0.2,
    "initial_model_hash": "0x00",
}


def test_dp_is_off_by_default_and_leaves_the_spec_bytes_alone() -> None:
    settings = RunSettings()

    assert settings.privacy is None
    assert privacy_fields(settings) == {}
    assert b"dp_" not in TaskSpec(**SPEC, **privacy_fields(settings)).canonical()


def test_dp_settings_give_the_terms_and_the_spec_carries_them(tmp_path: Path) -> None:
    # Prepare
    settings = RunSettings(dp="2.5:1e-6", dp_clip_norm=0.5, num_rounds=7)
    spec = TaskSpec(**SPEC, **privacy_fields(settings))

    # Execute: through the spec file and back into settings, as a site or the audit reads it
    spec.save(tmp_path / "task.json")
    loaded = TaskSpec.load(tmp_path / "task.json")
    recovered = loaded.training_settings(RunSettings())

    # Assert
    assert settings.privacy == PrivacyTerms(2.5, 1e-6, 0.5)
    assert loaded.privacy == settings.privacy
    assert loaded.dp_rounds == 7  # dp-rounds 0: planned over every round
    assert recovered.privacy == settings.privacy
    assert recovered.dp_planned_rounds == 7


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"dp": "eight"}, "--dp"),
        ({"dp": "8:2"}, "--dp"),
        ({"dp": "-1"}, "--dp"),
        ({"dp": "8", "dp_clip_norm": 0.0}, "--dp-clip-norm"),
        ({"dp": "8", "dp_rounds": -1}, "dp-rounds"),
    ],
)
def test_bad_dp_settings_are_refused(options: dict[str, Any], flag: str) -> None:
    with pytest.raises(SettingsError, match=flag):
        RunSettings(**options)


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        (["--dp", "eight"], "--dp"),
        (["--dp", "0"], "--dp"),
        (["--dp", "8:1.5"], "--dp"),
        (["--dp", "1:2:3"], "--dp"),
        (["--dp", "8", "--dp-accountant", "gdp"], "dp-accountant"),
    ],
)
def test_simulate_refuses_bad_dp_options_in_one_line_with_nothing_started(
    options: list[str], flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    ran: list[Any] = []
    monkeypatch.setattr(simulate_command, "_run_simulation", lambda s, **_: ran.append(s))
    out = tmp_path / "run"

    # Execute
    done = runner.invoke(app, ["simulate", *options, "--out", str(out)])

    # Assert
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert flag in lines[0]
    assert ran == []
    assert not out.exists()


def test_the_python_api_takes_dp_as_a_number_or_text() -> None:
    assert run_settings(dp=8).privacy == PrivacyTerms(8.0)
    assert run_settings(dp="4:1e-6", dp_rounds=3).dp_planned_rounds == 3


def test_a_site_counts_its_rounds_and_refuses_the_one_past_its_cap() -> None:
    # Prepare: noise planned for two rounds of 40 examples
    context = Context(run_id=1, node_id=2, node_config={}, state=RecordDict(), run_config={})
    settings = RunSettings(dp="4", dp_rounds=2)

    # Execute / Assert
    first = epsilon_after_round(settings, 40, context)
    record_round(context)
    second = epsilon_after_round(settings, 40, context)
    record_round(context)
    assert rounds_taken(context) == 2
    assert first is not None
    assert second is not None
    assert 0 < first < second <= 4.0
    with pytest.raises(PrivacyBudgetExhaustedError, match=r"would exceed cap 4 after 3 rounds"):
        epsilon_after_round(settings, 40, context)
    assert epsilon_after_round(RunSettings(), 40, context) is None  # DP off: nothing counted


def test_a_dp_run_is_not_resumed(tmp_path: Path) -> None:
    # Each node counts its DP rounds in its own state: a resumed node would under-report.
    from fedchain.simulation.flower_engine import simulate

    settings = RunSettings(dp="8", out=str(tmp_path / "run"))

    with pytest.raises(SettingsError, match=r"cannot resume .* DP run"):
        simulate(settings, resume=True)
    assert not (tmp_path / "run").exists()


def test_simulate_refuses_an_epsilon_no_noise_can_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[Any] = []
    monkeypatch.setattr(simulate_command, "_run_simulation", lambda s, **_: ran.append(s))
    out = tmp_path / "run"

    done = runner.invoke(app, ["simulate", "--dp", "1e-9", "--clients", "3", "--out", str(out)])

    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot be reached" in lines[0]
    assert ran == []
    assert not out.exists()


def test_a_new_dp_spec_records_prv_and_an_older_one_keeps_rdp() -> None:
    # Prepare: a spec made today, and the same spec as made before the accountant was a term
    spec = TaskSpec(**SPEC, **privacy_fields(RunSettings(dp="8")))
    older = TaskSpec(**SPEC, **{**privacy_fields(RunSettings(dp="8")), "dp_accountant": ""})

    # Execute
    settings = older.training_settings(RunSettings())

    # Assert: the new spec names PRV; the older spec's bytes have no accountant and it still
    # plans and audits with RDP, the accountant its epsilons were counted with
    assert spec.privacy is not None
    assert spec.privacy.accountant == "prv"
    assert b'"dp_accountant":"prv"' in spec.canonical()
    assert b"dp_accountant" not in older.canonical()
    assert older.privacy == PrivacyTerms(8.0, accountant="rdp")
    assert settings.privacy == older.privacy
    assert TaskSpec(**SPEC, **privacy_fields(settings)).privacy == older.privacy


def test_consent_holds_an_older_spec_to_its_accountant() -> None:
    # A site that consented to an RDP spec refuses a run counting with PRV, and accepts its own.
    from fedchain.federation.consent_policy import ConsentEntry, ConsentRefusedError, check_settings

    older = TaskSpec(**SPEC, **{**privacy_fields(RunSettings(dp="8")), "dp_accountant": ""})
    entry = ConsentEntry(31337, "0x" + "00" * 20, 1, "0x" + "11" * 20, older)
    settings = older.training_settings(RunSettings(num_clients=3))

    check_settings(entry, settings, 10, 0.0)
    with pytest.raises(ConsentRefusedError, match="dp_accountant"):
        check_settings(entry, settings.with_changes(dp_accountant="prv"), 10, 0.0)


def test_an_unknown_dp_accountant_is_refused_in_one_line() -> None:
    with pytest.raises(SettingsError, match="dp-accountant: 'gdp' is not one of prv, rdp"):
        RunSettings(dp="8", dp_accountant="gdp")


def test_simulate_passes_the_accountant_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[RunSettings] = []
    monkeypatch.setattr(simulate_command, "_run_simulation", lambda s, **_: ran.append(s))

    done = runner.invoke(
        app, ["simulate", "--dp", "8", "--dp-accountant", "rdp", "--out", str(tmp_path / "r")]
    )

    assert done.exit_code == 0, done.output
    assert [s.privacy for s in ran] == [PrivacyTerms(8.0, accountant="rdp")]


@pytest.mark.parametrize(("given", "shown"), [("prv", "PRV accountant"), ("", "RDP accountant")])
def test_the_report_names_the_accountant_and_an_older_spec_is_rdp(given: str, shown: str) -> None:
    from fedchain.report.privacy import privacy_terms_line

    spec = {"dp_epsilon": 8.0, "dp_delta": 1e-5, "dp_clip_norm": 1.0, "dp_rounds": 3}

    line = privacy_terms_line({**spec, "dp_accountant": given} if given else spec)

    assert line is not None
    assert line.endswith(shown)
