"""`fedchain simulate` before it starts: its output directory, options that cannot work, flag
names in errors, its defaults; the exit code of every command given no run."""

from __future__ import annotations

import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import typer.main
from _cli_here import fedchain_here

from fedchain.chain.backends import free_port
from fedchain.cli import app
from fedchain.cli.simulate import _round_line, _with_flags
from fedchain.contribution.shapley import MAX_SHAPLEY_PARTICIPANTS
from fedchain.federation.round_report import ParticipantOutcome, RoundReport
from fedchain.settings import RunSettings

REPO = Path(__file__).resolve().parents[2]


def fedchain(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Every case here is refused before anything starts: in this process (see ``_cli_here``)."""
    return fedchain_here(*args, cwd=cwd)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A directory holding (the files of) a finished run, and a file of the user's."""
    out = tmp_path / "run"
    (out / "store").mkdir(parents=True)
    for name in ("summary.json", "run.json", "task.json"):
        (out / name).write_text("{}")
    (out / "notes.txt").write_text("the user's own")
    return out


def test_an_out_holding_a_run_is_refused_and_left_as_it_is(finished_run: Path) -> None:
    # Prepare
    before = _tree(finished_run)
    # Execute
    done = fedchain("simulate", "--out", str(finished_run))
    # Assert
    assert done.returncode == 2
    line = _one_error_line(done)
    assert f"{finished_run} already holds a run" in line
    for way_on in ("--overwrite", f"--resume {finished_run}", "another --out"):
        assert way_on in line
    assert _tree(finished_run) == before


@pytest.mark.parametrize("under", [False, True])
def test_an_out_that_is_a_file_is_one_line_at_once(tmp_path: Path, under: bool) -> None:
    # Prepare
    file = tmp_path / "results.csv"
    file.write_text("a,b\n")
    out = file / "run" if under else file
    # Execute
    done = fedchain("simulate", "--out", str(out))
    # Assert
    assert done.returncode == 2
    assert f"--out {out}" in _one_error_line(done)
    assert file.read_text() == "a,b\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--contribution", "shapley", "--clients", str(MAX_SHAPLEY_PARTICIPANTS + 1)],
            f"--contribution shapley scores at most {MAX_SHAPLEY_PARTICIPANTS} participants",
        ),
        (["--model", "cnn"], "the cnn needs (1, 8, 8) images"),
        (["--rpc-url", "http://127.0.0.1:{port}"], "no chain at http://127.0.0.1:{port}"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # Prepare
    port = str(free_port())
    out = tmp_path / "run"
    # Execute
    done = fedchain("simulate", *(a.format(port=port) for a in args), "--out", str(out))
    # Assert
    assert done.returncode == 2
    assert message.format(port=port) in _one_error_line(done)
    assert not out.exists()


def test_overwrite_deletes_nothing_when_the_run_is_refused(finished_run: Path) -> None:
    before = _tree(finished_run)
    done = fedchain("simulate", "--model", "cnn", "--out", str(finished_run), "--overwrite")
    assert done.returncode == 2
    assert "the cnn needs" in _one_error_line(done)  # past the check of --out
    assert _tree(finished_run) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "1"], "--clients must be >= 2"),
        (["--rounds", "0"], "--rounds must be >= 1"),
        (["--fraction", "0"], "--fraction must lie in (0, 1]"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--local-epochs", "0"], "--local-epochs must be >= 1"),
        (["--round-timeout", "0"], "--round-timeout must be > 0 seconds"),
        (["--byzantine", "5", "--strategy", "krum"], "--byzantine 5 needs n >= 13"),
        # the remedy names the flags too (it said "set byzantine to at most 3")
        (["--byzantine", "5", "--strategy", "krum"], "set --byzantine 3 or lower"),
        (
            ["--attack", "alie:0.4", "--strategy", "multikrum"],
            "(derived from --attack alie:0.4)",
        ),
    ],
)
def test_validation_errors_name_the_flag(args: list[str], message: str) -> None:
    done = fedchain("simulate", *args)
    assert done.returncode == 2
    line = _one_error_line(done)
    assert message in line
    for key in ("num-clients", "num-server-rounds", "fraction-train", "learning-rate"):
        assert key not in line


def test_config_keys_become_flags_only_where_they_name_an_option() -> None:
    assert _with_flags("num-clients must be >= 2") == "--clients must be >= 2"
    assert _with_flags("dropout must lie in [0, 1)") == "--dropout must lie in [0, 1)"
    assert _with_flags("x: byzantine=3 needs n >= 15") == "x: --byzantine 3 needs n >= 15"
    # a one-word key inside a sentence is an ordinary word; a flag stays as it is
    assert _with_flags("the strategy krum, drop --rpc-url") == "the strategy krum, drop --rpc-url"
    # keys the command line does not set keep their name
    assert _with_flags("proximal-mu must be >= 0") == "proximal-mu must be >= 0"


def test_the_options_defaults_are_the_run_settings_defaults() -> None:
    # Prepare
    command = typer.main.get_command(app).commands["simulate"]  # type: ignore[attr-defined]
    renamed = {"clients": "num_clients", "rounds": "num_rounds", "lr": "learning_rate"}
    renamed["fraction"] = "fraction_train"
    defaults = {f.name: f.default for f in fields(RunSettings)}
    # Execute
    options = {p.name: p.default for p in command.params}
    # Assert
    compared = 0
    for name, default in options.items():
        field = renamed.get(name, name)
        if field in defaults and name != "rpc_url":  # None: no node, the settings' ""
            assert (str(default) if name == "out" else default) == defaults[field], name
            compared += 1
    assert compared >= 20
    assert options["rpc_url"] is None
    assert defaults["rpc_url"] == ""


def test_a_round_is_one_plain_line() -> None:
    # Prepare
    accepted = [ParticipantOutcome(node_id=i, accepted=True) for i in range(3)]
    refused = ParticipantOutcome(node_id=4, reason="bad signature")
    gone = ParticipantOutcome(node_id=5, absent=True)
    committed = RoundReport(3, "0x", accuracy=0.94123, participants=[*accepted, refused])
    failed = RoundReport(2, "0x", failed_reason="1 valid update, 2 needed")
    failed.participants = [accepted[0], gone]
    # Execute / Assert
    assert _round_line(committed, 10) == "round 3/10: accuracy 0.9412, 3 accepted, 1 rejected"
    assert (
        _round_line(failed, 10)
        == "round 2/10: failed (1 valid update, 2 needed), 1 accepted, 0 rejected, 1 absent"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["rewards", "--run", "{run}"],
        ["claim", "--run", "{run}", "--devnet-account", "1"],
        ["audit", "--run", "{run}"],
        ["scores", "--run", "{run}"],
        ["verify-model", "{model}", "--run", "{run}"],
        ["report", "--run", "{run}"],
        ["simulate", "--resume", "{run}"],
    ],
    ids=lambda command: command[0],
)
def test_no_run_here_is_the_same_usage_error_in_every_command(
    tmp_path: Path, command: list[str]
) -> None:
    # Prepare: an empty directory where a run was expected, and a model file to verify
    run = tmp_path / "empty"
    run.mkdir()
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\0" * 8)
    # Execute
    done = fedchain(*(a.format(run=run, model=model) for a in command))
    # Assert
    assert done.returncode == 2
    line = _one_error_line(done)
    assert f"no run at {run}" in line or f"nothing to resume in {run}" in line
    assert list(run.iterdir()) == []


def test_make_demo_again_keeps_the_finished_demo_run(finished_run: Path) -> None:
    # Prepare
    before = _tree(finished_run)
    # Execute: the demo target alone (-o setup: the set-up is not run again)
    done = subprocess.run(
        ["make", "-s", "-o", "setup", "demo", f"DEMO_OUT={finished_run}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    # Assert
    assert done.returncode == 0, done.stderr
    assert f"The demo's run is in {finished_run}" in done.stdout
    assert "make demo DEMO_OUT=" in done.stdout
    assert _tree(finished_run) == before
