"""Ctrl-C and SIGTERM for a command that stops cleanly: both interrupt, a second one ends at once.

Inside :func:`interrupts`, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (the
simulation engine takes it as its request to stop, see :mod:`fedchain.simulation.stopping`) and
remember which signal came, for the exit code 128 + signal. A second signal while the first is
being handled does not wait for the clean stop: the message is printed, the processes this one
started are killed, and the process exits at once (what is already on disk stays resumable, as
after a crash).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

import psutil

__all__ = ["Interrupt", "exit_now", "interrupts", "signal_name"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@dataclass
class Interrupt:
    """The first signal received, if any, and what to print when a second one ends the process."""

    signum: int | None = None
    #: Given the second signal's number, the one line to print before exiting at once.
    last_words: Callable[[int], str] = lambda signum: f"stopped at once by {signal_name(signum)}"

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports it."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def interrupts() -> Iterator[Interrupt]:
    """SIGINT and SIGTERM raise KeyboardInterrupt within the block (main thread only)."""
    caught = Interrupt()

    def handler(signum: int, frame: FrameType | None) -> None:
        if caught.signum is not None:
            exit_now(128 + signum, caught.last_words(signum))
        caught.signum = signum
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield caught
    finally:
        for s, action in previous.items():
            signal.signal(s, action)


def exit_now(code: int, line: str) -> NoReturn:
    """Print ``line``, kill every process this one started, exit with ``code`` at once (no
    atexit handler, no thread joined: Ray's finalizers took seconds after a stop)."""
    if sys.stdout.isatty():
        sys.stdout.write("\x1b[?25h\n")  # the cursor a progress bar may have hidden
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    os._exit(code)
