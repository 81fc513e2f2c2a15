"""Peak resident memory of a process tree: the server and every process it starts (Ray's).

A simulation runs in several processes: the server (with the embedded chain), Ray's raylet, GCS
and agents, and one worker per client slot. :class:`PeakMemory` samples the resident set size
of this process and all its descendants on a background thread and keeps the largest total.
The sum counts pages shared between processes once per process (torch's libraries in every
worker), so it is an upper bound of what the tree takes from the machine: the figure to compare
with the machine's memory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

import psutil

from fedchain.errors import SettingsError

__all__ = ["DEFAULT_INTERVAL_S", "TREE_REFRESH_S", "MemorySample", "PeakMemory", "tree", "tree_rss"]

#: Seconds between samples: memory held for a round (a second or more) is seen; a few small
#: /proc reads each.
DEFAULT_INTERVAL_S = 0.5
#: Seconds between listings of the tree's processes. Listing reads every process of the machine
#: (about 30 ms with 170 processes; at 2 s py-spy still saw the sampler take 5 % of a core),
#: reading a known process's memory one small file: Ray starts its processes once, so the tree
#: is listed seldom and its members' memory read often.
TREE_REFRESH_S = 5.0


@dataclass(frozen=True)
class MemorySample:
    """The resident memory of a process tree at one moment."""

    rss_bytes: int
    processes: int


def tree_rss(
    root: psutil.Process | None = None, members: list[psutil.Process] | None = None
) -> MemorySample:
    """Sum of the resident set sizes of ``root`` (default: this process) and its descendants.

    ``members`` is a listing of the tree made earlier (see :func:`tree`), to save listing it.
    """
    total, count = 0, 0
    for process in members if members is not None else tree(root):
        try:
            total += process.memory_info().rss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # ended between the listing and the read, or not ours to read
    return MemorySample(total, count)


def tree(root: psutil.Process | None = None) -> list[psutil.Process]:
    """``root`` (default: this process) and every process it started, recursively."""
    root = root or psutil.Process()
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [root]


class PeakMemory:
    """Context manager sampling :func:`tree_rss` until it exits; ``peak`` is the largest sample.

    Examples
    --------
    >>> with PeakMemory() as memory:
    ...     pass  # run the federation
    >>> memory.peak.rss_bytes > 0
    True
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise SettingsError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._root = psutil.Process()
        self._members = tree(self._root)
        self._listed = time.monotonic()
        self._peak = MemorySample(0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._lock = threading.Lock()

    @property
    def peak(self) -> MemorySample:
        """The largest total seen so far."""
        with self._lock:
            return self._peak

    def sample(self, relist: bool = False) -> MemorySample:
        """Take one sample now and fold it into the peak (``relist``: list the tree afresh)."""
        if relist or time.monotonic() - self._listed >= TREE_REFRESH_S:
            self._members, self._listed = tree(self._root), time.monotonic()
        current = tree_rss(members=self._members)
        with self._lock:
            if current.rss_bytes > self._peak.rss_bytes:
                self._peak = current
        return current

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample(relist=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample(relist=True)
