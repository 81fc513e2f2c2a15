"""How the whole-federation benchmarks alternate their runs, so the machine's load hits every
kind of run alike (bench_overhead.py, bench_scale.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import psutil

#: Below this, summed over the cores, the machine counts as quiet.
QUIET_CPU_PERCENT = 25.0


def in_turn(kinds: Sequence[str], repeat: int) -> list[str]:
    """The order of ``kinds`` in repeat ``repeat``: rotated one further each repeat, so no
    kind always runs right after the same other kind (a run inherits its predecessor's
    leftovers: Ray's processes exiting, the page cache, the allocator's state)."""
    shift = repeat % len(kinds)
    return [*kinds[shift:], *kinds[:shift]]


def settle(max_s: float = 10.0) -> float:
    """Wait until the machine is quiet, at most ``max_s``; the seconds waited.

    Ray's processes go on exiting for about half a second after a simulation returns, on both
    cores: without this wait the next run's start-up pays for them.
    """
    began = time.perf_counter()
    while time.perf_counter() - began < max_s:
        if psutil.cpu_percent(interval=0.25) < QUIET_CPU_PERCENT:
            break
    return time.perf_counter() - began
