"""A queue of chain writes, executed in order on one background thread.

Rounds go on chain strictly in sequence, but nothing in a round's training has to wait for a
transaction to be mined: clients wait for the chain themselves before they train (they check the
model they received against it). The coordinator queues its writes here and goes on; the first
failure stops the queue, and is raised at the next :meth:`WriteQueue.check` or :meth:`flush`.

A node can lose writes it had already mined: an anvil killed between two dumps of its state file
comes back at the last dump. Every write given to the queue is idempotent (it first checks
whether the chain holds what it is to record), so the queue keeps the writes done so far, and
when the chain raises :class:`~fedchain.chain.errors.ChainReset` it runs them all again, in
order (those the chain still holds are recognised and skipped), before the write at hand. With a
``probe`` it also checks, while idle, that the node still holds the last write, so writes lost
between two rounds are sent again before anyone waits for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from fedchain.chain.errors import ChainReset, WriteSkipped

__all__ = ["WriteQueue"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
#: How many times in a row one write may find the chain reset before the failure is raised.
MAX_RESENDS = 5


class WriteQueue:
    """Runs submitted chain writes one at a time, in submission order.

    Parameters
    ----------
    probe : callable, optional
        Raises :class:`~fedchain.chain.errors.ChainReset` when the node lost written state
        (:meth:`fedchain.chain.gateway.LedgerGateway.check_durable`); run every
        ``probe_every_s`` while the queue is idle.
    probe_every_s : float
        Seconds between two probes.
    """

    def __init__(self, probe: Callable[[], None] | None = None, probe_every_s: float = 1.0) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writes")
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._done: list[Callable[[], object]] = []  # touched on the queue's thread only
        self._pending = 0
        self._closed = threading.Event()
        self._probe = probe
        self._watchdog: threading.Thread | None = None
        if probe is not None:
            self._watchdog = threading.Thread(
                target=self._watch, args=(probe_every_s,), name="ledger-probe", daemon=True
            )
            self._watchdog.start()

    def submit(
        self, write: Callable[[], _T], then: Callable[[_T], object] | None = None
    ) -> Future[_T]:
        """Queue ``write``; it is skipped if an earlier write failed.

        ``write`` must be idempotent: it may run again after a chain reset. ``then`` runs once,
        on the queue's thread, after ``write`` first succeeded.
        """
        self.check()
        with self._lock:
            self._pending += 1
        return self._executor.submit(self._run, write, then)

    def remember(self, write: Callable[[], object]) -> None:
        """Keep a write made elsewhere (already done), so that a chain reset sends it again."""
        self._executor.submit(self._done.append, write)

    def _run(self, write: Callable[[], _T], then: Callable[[_T], object] | None) -> _T:
        try:
            with self._lock:
                if self._failure is not None:
                    raise WriteSkipped("skipped: an earlier ledger write failed") from self._failure
            try:
                result = self._settle(write)
                self._done.append(write)
                if then is not None:
                    then(result)
                return result
            except BaseException as exc:
                with self._lock:
                    self._failure = self._failure or exc
                raise
        finally:
            with self._lock:
                self._pending -= 1

    def _settle(self, write: Callable[[], _T]) -> _T:
        """Run ``write``; on a chain reset, run every earlier write again first, then retry."""
        again: list[Callable[[], object]] = []
        for attempt in range(MAX_RESENDS + 1):
            try:
                for earlier in again:
                    earlier()
                return write()
            except ChainReset as exc:
                if attempt == MAX_RESENDS:
                    raise
                log.warning("%s; sending %d earlier writes again", exc, len(self._done))
                again = list(self._done)
        raise AssertionError("unreachable")  # pragma: no cover

    def _watch(self, every_s: float) -> None:
        while not self._closed.wait(every_s):
            with self._lock:
                idle = self._pending == 0 and self._failure is None and bool(self._done)
                if idle:
                    self._pending += 1
            if idle:
                try:
                    self._executor.submit(self._probe_once)
                except RuntimeError:  # closed meanwhile
                    return

    def _probe_once(self) -> None:
        assert self._probe is not None
        try:
            self._settle(self._probe)
        except Exception as exc:  # a node that is down now: the next write will say so
            log.debug("ledger probe: %s", exc)
        finally:
            with self._lock:
                self._pending -= 1

    def check(self) -> None:
        """Raise the first failure of a queued write, if any."""
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    def flush(self) -> None:
        """Wait for every queued write, then raise the first failure, if any."""
        self._executor.submit(lambda: None).result()
        self.check()

    def close(self) -> None:
        """Finish the queued writes and stop the thread (failures are not raised here)."""
        self._closed.set()
        if self._watchdog is not None:
            self._watchdog.join()
        self._executor.shutdown(wait=True)
