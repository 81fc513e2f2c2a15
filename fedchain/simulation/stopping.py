"""Stopping a simulation on request (Ctrl-C, SIGTERM) so that it can be resumed.

Flower's engine runs the ServerApp in a thread that waits for the clients' replies (up to the
round's timeout, an hour by default), and Ray's workers may already be gone: a Ctrl-C used to
leave the process waiting for that thread. The server instead talks to the clients through a
:class:`StoppableGrid`, which raises :class:`StopRequested` in the server thread as soon as a
stop is requested, at its next wait for replies. The server then unwinds as after any error:
the chain writes it queued are finished, the chain is closed, Flower stops its workers and shuts
Ray down. What the chain and ``rounds.jsonl`` hold is consistent, so ``fedchain simulate
--resume`` goes on from the last recorded round (a round left open is run again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedchain.errors import FedchainError

__all__ = ["SimulationStopped", "StopRequested", "StoppableGrid"]

#: Seconds between two polls for replies (Flower's in-memory grid polls as often).
_POLL_S = 0.1


class StopRequested(FedchainError, RuntimeError):
    """Raised in the server thread: a stop was requested, the server ends its run here."""


class SimulationStopped(FedchainError, RuntimeError):
    """The simulation was stopped on request; what it recorded can be resumed.

    Attributes
    ----------
    out : Path
        The run directory.
    resumable : bool
        Whether the run got far enough to be resumed (its task is on chain: ``run.json``).
    ended : bool
        Whether Flower's engine and Ray ended by themselves; if not, Ray's processes were
        killed and the engine's thread is left to end in the background (a command line exits
        without waiting for it).
    """

    def __init__(self, out: Path, resumable: bool, ended: bool = True) -> None:
        self.out, self.resumable, self.ended = out, resumable, ended
        how = (
            f"go on with `fedchain simulate --resume {out}`"
            if resumable
            else "its task was not on chain yet, nothing to resume"
        )
        super().__init__(f"the simulation was stopped: {how}")


class StoppableGrid(Grid):
    """A Grid that raises :class:`StopRequested` once ``stop`` is set.

    Every call checks ``stop``; :meth:`send_and_receive` also checks it while it waits for
    replies, and raises rather than return the replies of a round being stopped (clients whose
    workers died with the Ctrl-C answer with errors, which must not be recorded as a failed
    round).
    """

    def __init__(self, grid: Grid, stop: threading.Event) -> None:
        self._grid = grid
        self._stop = stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)  # the rest of the wrapped grid's API (get_nodes, ...)

    def _check(self) -> None:
        if self._stop.is_set():
            raise StopRequested("stop requested: the server ends the run here")

    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        self._check()
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self._check()
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self._check()
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``, then pull replies until all came, ``timeout`` passed, or a stop."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending and (deadline is None or time.monotonic() < deadline):
            got = list(self.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if pending:
                self._stop.wait(_POLL_S)
        self._check()
        return replies
