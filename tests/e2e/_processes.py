"""Processes a test starts and always stops: each in its own session, its whole tree ended.

Flower's SuperLink and SuperNodes start children of their own (``flower-superexec``, then a
``flwr-serverapp`` or ``flwr-clientapp`` per run or message), some in new sessions; stopping
walks the tree through /proc so nothing outlives the test, even when it fails. What still
outlives one is found at the end of the session (:func:`leftovers`, used by tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = [
    "PROCESS_MARKER",
    "SESSION_MARKER",
    "Started",
    "descendants",
    "describe",
    "kill_processes",
    "leftovers",
    "marked",
    "stop_all",
]

#: Set in the test session's environment, so every process it starts carries it, even one
#: whose parent has exited and which was re-parented (a ``flwr run`` leaves its SuperLink so).
SESSION_MARKER = "FEDCHAIN_TEST_SESSION"

#: The servers tests start and must stop: Flower's SuperLink and SuperNodes with their
#: children, anvil, Ray's processes and workers, and fedchain's own commands.
#: Set in each started process's environment, so its whole tree is found when it is stopped,
#: children re-parented after their parent ended included (an intruder SuperNode that exits
#: by itself leaves its ``flower-superexec``).
PROCESS_MARKER = "FEDCHAIN_TEST_PROCESS"

_WATCHED = re.compile(r"flower-super|flwr|anvil|\bray\b|ray::|raylet|gcs_server|fedchain")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...)."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def marked(marker: str) -> list[int]:
    """Every running process whose environment carries ``PROCESS_MARKER=marker``."""
    needle = f"{PROCESS_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Started:
    """A process started by a test, its output in ``log``."""

    name: str
    command: Sequence[str]
    log: Path
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] = field(init=False)
    marker: str = field(init=False, default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                list(self.command),
                cwd=self.cwd,
                env={**self.env, PROCESS_MARKER: self.marker},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return f"--- last lines of {self.name} ({self.log}) ---\n" + "\n".join(
            self.text().splitlines()[-lines:]
        )

    def wait_for(self, pattern: str, timeout: float, count: int = 1) -> list[re.Match[str]]:
        """Wait until ``pattern`` occurs ``count`` times in the log; fail if the process ends."""
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.text()))
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) before printing "
                    f"{pattern!r}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} did not print {pattern!r} within {timeout:.0f} s\n{self.tail()}"
                )
            time.sleep(0.1)

    def tree(self) -> list[int]:
        """This process (while not reaped) and every process it started, re-parented or not."""
        # Once reaped, its PID may be someone else's: then only the marker tells.
        below = [self.pid, *descendants(self.pid)] if self.process.poll() is None else []
        return list(dict.fromkeys([*below, *marked(self.marker)]))

    def kill(self) -> None:
        """SIGKILL the whole tree at once, as a machine that dies."""
        assert self.process.poll() is None, f"{self.name} had already ended\n{self.tail()}"
        self._signal(self.tree(), signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the tree, wait, then SIGKILL whatever is left."""
        stop_all([self], grace_s)

    @staticmethod
    def _signal(pids: Sequence[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def stop_all(started: Sequence[Started], grace_s: float = 20.0) -> None:
    """SIGTERM every tree at once, wait for them together, then SIGKILL whatever is left.

    A process already reaped is left alone (its PID may belong to someone else by now), but
    not what it started: that is found by its marker.
    """
    trees = {s.pid: s.tree() for s in started}
    for s in started:
        Started._signal(trees[s.pid], signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    every = [p for tree in trees.values() for p in tree]
    while time.monotonic() < deadline and any(_alive(p) for p in every):
        for s in started:
            s.process.poll()  # reap our direct children
        time.sleep(0.2)
    for s in started:
        Started._signal([p for p in trees[s.pid] if _alive(p)], signal.SIGKILL)
    _sweep(started)
    for s in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.process.wait(timeout=10)


def _sweep(started: Sequence[Started], quiet_scans: int = 2, pause_s: float = 0.05) -> None:
    """SIGKILL what the trees hold until ``quiet_scans`` scans in a row find nothing alive.

    One scan is not enough: a process in the middle of ``execve`` shows an empty environment
    for a moment, so the marker misses it (seen in CI: a re-parented child outlived its stop).
    """
    quiet, deadline = 0, time.monotonic() + 10
    while quiet < quiet_scans and time.monotonic() < deadline:
        alive = [p for s in started for p in s.tree() if _alive(p)]
        Started._signal(alive, signal.SIGKILL)
        quiet = 0 if alive else quiet + 1
        time.sleep(pause_s)


def _started_by_session(
    process: psutil.Process, marker: str, roots: Sequence[Path], below: set[int]
) -> bool:
    if process.pid in below:
        return True
    try:
        if process.environ().get(SESSION_MARKER) == marker:
            return True
        command = " ".join(process.cmdline())
        cwd = process.cwd()
    except psutil.Error:
        return False  # gone meanwhile, or not ours to read
    places = [str(root) for root in roots]
    return any(place in command or cwd.startswith(place) for place in places)


def leftovers(
    marker: str, roots: Sequence[Path], existed: Collection[int] = ()
) -> list[psutil.Process]:
    """The watched processes (SuperLink, SuperNode, anvil, Ray, fedchain) still running that
    this test session started: they carry ``marker`` in their environment, descend from this
    process, or have their command line or working directory under one of ``roots``. Processes
    in ``existed`` (running before the session) are never counted."""
    me = psutil.Process()
    below = {child.pid for child in me.children(recursive=True)}
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        info = process.info
        if process.pid in existed or process.pid == me.pid or info["status"] == "zombie":
            continue
        text = " ".join([info["name"] or "", *(info["cmdline"] or [])])
        if _WATCHED.search(text) and _started_by_session(process, marker, roots, below):
            found.append(process)
    return found


def describe(processes: Sequence[psutil.Process]) -> str:
    """One line per process: its PID and command line."""
    lines = []
    for process in processes:
        try:
            command = " ".join(process.cmdline()) or process.name()
        except psutil.Error:
            command = "(gone)"
        lines.append(f"  {process.pid}: {command[:300]}")
    return "\n".join(lines)


def kill_processes(processes: Sequence[psutil.Process]) -> None:
    """SIGKILL each process and whatever runs below it, then wait for them to go."""
    every = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            every += process.children(recursive=True)
    for process in every:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(every, timeout=10)
