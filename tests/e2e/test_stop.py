"""Stopping `fedchain simulate` as a user does: Ctrl-C (SIGINT to the terminal's process group) or
SIGTERM to the process, once round 1 is on chain. It must end within seconds with one line
saying how to go on, exit 130 / 143, leave no process behind, and the run must resume to its end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

ROUNDS = 20
#: The options of the stopped run: small, and long enough to be stopped in the middle.
OPTIONS = ("--clients", "3", "--rounds", str(ROUNDS))
#: Seconds a stop may take (the issue: within a few seconds; Ray's shutdown takes most of it).
STOP_S = 20


def _session(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid`` (the run's own and Ray's)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


@pytest.fixture
def simulate(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start `fedchain simulate` in its own session (as a shell job); whatever is left of it and
    of the processes it started is killed afterwards."""
    started: list[tuple[subprocess.Popen[str], list[psutil.Process]]] = []

    def start(out: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedchain", "simulate", *OPTIONS, "--out", str(out)],
            stdout=(tmp_path / "stdout").open("w"),
            stderr=(tmp_path / "stderr").open("w"),
            text=True,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        started.append((process, []))
        return process

    yield start
    for process, tree in started:
        for leftover in [*tree, *_session(process.pid)]:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _wait_for_round_1(process: subprocess.Popen[str], out: Path, tmp_path: Path) -> None:
    """Until round 1's commit is mined (the journal's line for it)."""
    journal, deadline = out / "rounds.jsonl", time.monotonic() + 600
    while '"stage": "recorded", "round": 1' not in (
        journal.read_text() if journal.exists() else ""
    ):
        assert process.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
        assert time.monotonic() < deadline, "round 1 was never recorded"
        time.sleep(0.1)


def _resume(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain", "simulate", "--resume", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(
    ("signum", "code", "name", "to_group"),
    [(signal.SIGINT, 130, "Ctrl-C", True), (signal.SIGTERM, 143, "SIGTERM", False)],
    ids=["ctrl-c", "sigterm"],
)
def test_a_signal_stops_simulate_within_seconds_and_the_run_resumes(
    simulate: Callable[[Path], subprocess.Popen[str]],
    tmp_path: Path,
    signum: int,
    code: int,
    name: str,
    to_group: bool,
) -> None:
    # Prepare: a run with round 1 on chain, Ray's processes under it
    out = tmp_path / "run"
    process = simulate(out)
    _wait_for_round_1(process, out, tmp_path)
    tree = psutil.Process(process.pid).children(recursive=True)
    assert tree, "no Ray processes under the run"
    # Execute: a terminal's Ctrl-C reaches the whole process group; `kill` the process alone
    began = time.monotonic()
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    returncode = process.wait(timeout=STOP_S)
    took = time.monotonic() - began
    # Assert: one line, how to go on, no traceback, no process left
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert returncode == code, stderr[-3000:]
    assert took < STOP_S
    assert re.fullmatch(
        rf"stopped by {name} after round \d+ of {ROUNDS}: go on with "
        rf"`fedchain simulate --resume {re.escape(str(out))}`\n",
        stderr,
    ), stderr[-3000:]
    assert "Traceback" not in stdout + stderr
    assert all(line.startswith("round ") for line in stdout.splitlines()), stdout
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    assert _session(process.pid) == []
    # Execute: go on
    resumed = _resume(out)
    # Assert: every round recorded, on chain and in the record
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == list(range(1, ROUNDS + 1))
    assert all(r["committed"] for r in summary["rounds"])
    assert f"round {ROUNDS}/{ROUNDS}: accuracy" in resumed.stdout
    assert "rewards of task 1" in resumed.stdout


@pytest.mark.timeout(900)
def test_a_second_ctrl_c_ends_the_run_at_once(
    simulate: Callable[[Path], subprocess.Popen[str]], tmp_path: Path
) -> None:
    # Prepare
    out = tmp_path / "run"
    process = simulate(out)
    _wait_for_round_1(process, out, tmp_path)
    tree = psutil.Process(process.pid).children(recursive=True)
    # Execute: Ctrl-C, and again before the clean stop is done
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.3)
    began = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    returncode = process.wait(timeout=STOP_S)
    # Assert: at once, one line, nothing left; what is on disk is a run to resume
    stderr = (tmp_path / "stderr").read_text()
    assert returncode == 130
    assert time.monotonic() - began < 5
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert re.match(r"stopped (at once )?by Ctrl-C", lines[0])
    assert f"fedchain simulate --resume {out}" in lines[0]
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    assert _session(process.pid) == []
    assert (out / "run.json").is_file()
