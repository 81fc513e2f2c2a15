"""A queue of chain writes, executed in order on one background thread.

Rounds go on chain strictly in sequence, but nothing in a round's training has to wait for a
transaction to be mined: clients wait for the chain themselves before they train (they check the
model they received against it). The coordinator queues its writes here and goes on; the first
failure stops the queue, and is raised at the next :meth:`WriteQueue.check` or :meth:`flush`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["WriteQueue"]

_T = TypeVar("_T")


class WriteQueue:
    """Runs submitted chain writes one at a time, in submission order."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writes")
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, write: Callable[[], _T]) -> Future[_T]:
        """Queue ``write``; it is skipped if an earlier write failed."""
        self.check()
        return self._executor.submit(self._run, write)

    def _run(self, write: Callable[[], _T]) -> _T:
        with self._lock:
            if self._failure is not None:
                raise RuntimeError("skipped: an earlier ledger write failed") from self._failure
        try:
            return write()
        except BaseException as exc:
            with self._lock:
                self._failure = self._failure or exc
            raise

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
        self._executor.shutdown(wait=True)
