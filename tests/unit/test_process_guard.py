"""The session's guard against processes that outlive their test (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from e2e import _processes
from e2e._processes import SESSION_MARKER, Started, kill_processes, leftovers

#: A stand-in for a server a test forgot: its command line names anvil, as the real one does.
_FORGOTTEN = "import time; time.sleep(120)  # anvil"


def _orphan(env: dict[str, str], cwd: Path) -> int:
    """Start the stand-in through a shell that exits at once, so it is re-parented, as the
    SuperLink that `flwr run` leaves behind is; return its PID."""
    shell = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c "{_FORGOTTEN}" >/dev/null 2>&1 & echo $!'],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return int(shell.stdout)


def _leaver(cwd: Path) -> tuple[Started, int]:
    """A started process that starts the stand-in and exits, as an intruder SuperNode leaves
    its flower-superexec; the stand-in is re-parented. Return it and the stand-in's PID."""
    started = Started(
        "leaver",
        ["sh", "-c", f'"{sys.executable}" -c "{_FORGOTTEN}" >/dev/null 2>&1 & echo $!'],
        cwd / "leaver.log",
        dict(os.environ),
        cwd,
    )
    started.process.wait(timeout=30)
    return started, int(started.text())


def test_a_re_parented_server_started_by_the_session_is_found_and_killed(tmp_path: Path) -> None:
    # Prepare
    marker = "guard-test-marker"
    pid = _orphan({**os.environ, SESSION_MARKER: marker}, tmp_path)
    try:
        assert psutil.Process(pid).ppid() != os.getpid()  # not our child any more
        # Execute
        found = leftovers(marker, roots=[])
        kill_processes(found)
        # Assert
        assert pid in [p.pid for p in found]
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()


def test_a_server_of_another_session_is_left_alone(tmp_path: Path) -> None:
    # Prepare: another marker, and neither below this process nor under the roots given
    pid = _orphan({**os.environ, SESSION_MARKER: "another session"}, tmp_path)
    try:
        # Execute
        found = leftovers("guard-test-marker", roots=[tmp_path / "elsewhere"])
        also = leftovers("guard-test-marker", roots=[tmp_path])  # its working directory
        # Assert
        assert pid not in [p.pid for p in found]
        assert pid in [p.pid for p in also]
        assert psutil.Process(pid).is_running()
    finally:
        psutil.Process(pid).kill()
        time.sleep(0.1)


def test_processes_running_before_the_session_are_never_counted(tmp_path: Path) -> None:
    # Prepare
    marker = "guard-test-marker"
    pid = _orphan({**os.environ, SESSION_MARKER: marker}, tmp_path)
    try:
        # Execute
        found = leftovers(marker, roots=[], existed={pid})
        # Assert
        assert pid not in [p.pid for p in found]
    finally:
        psutil.Process(pid).kill()


@pytest.mark.parametrize("missed_scans", [0, 2], ids=["seen", "missed-twice"])
def test_stopping_a_process_that_ended_stops_what_it_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missed_scans: int
) -> None:
    # Prepare: a process that starts a child and exits, as an intruder SuperNode leaves its
    # flower-superexec; the child is re-parented, so no longer below the started process. The
    # marker scans may miss it for a moment, while it is in the middle of execve (its
    # environment reads empty then; seen in CI)
    started, child = _leaver(tmp_path)
    scans = {"count": 0}
    really_marked = _processes.marked

    def flickering(marker: str) -> list[int]:
        scans["count"] += 1
        return [] if scans["count"] <= missed_scans else really_marked(marker)

    monkeypatch.setattr(_processes, "marked", flickering)
    try:
        assert psutil.Process(child).is_running()
        # Execute
        started.stop(grace_s=5)
        # Assert
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    finally:
        if psutil.pid_exists(child):
            psutil.Process(child).kill()
