"""Benchmark: streaming ``model_hash`` against raw ``hashlib.sha256`` over the same bytes.

Run ``python scripts/bench_hashing.py`` to print a markdown table. ``bench_hashing`` returns the
figures for other scripts (docs/BENCHMARKS.md is written elsewhere).
"""

from __future__ import annotations

import hashlib
import platform
import ssl
import time
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from fedchain.hashing import model_hash

__all__ = ["HashingBench", "bench_hashing", "markdown_table"]

# Share of the model in each tensor: a few tensors of different sizes, like a small network.
_SHARES = {"encoder.weight": 0.55, "decoder.weight": 0.35, "head.weight": 0.09, "head.bias": 0.01}


class HashingBench(TypedDict):
    """Figures of one run of :func:`bench_hashing` (times in seconds, throughput in GB/s)."""

    size_bytes: int
    tensors: int
    repeats: int
    model_hash_s: float
    raw_sha256_s: float
    model_hash_gbps: float
    raw_sha256_gbps: float
    ratio: float
    openssl: str
    machine: str


def _model(size_mb: int) -> dict[str, npt.NDArray[np.float32]]:
    rng = np.random.default_rng(0)
    total = size_mb * 1_000_000 // 4  # float32 elements
    model = {}
    for name, share in _SHARES.items():
        n = max(1, int(total * share))
        cols = 1000 if n >= 1000 else 1
        model[name] = rng.standard_normal((n // cols, cols), dtype=np.float32)
    return model


def _best_times(repeats: int, *fns: Callable[[], Any]) -> list[float]:
    """Best wall time of each function; runs are interleaved so both see the same machine load."""
    for fn in fns:
        fn()  # warm-up: page the memory in, load OpenSSL's code paths
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def bench_hashing(size_mb: int = 100, repeats: int = 5) -> HashingBench:
    """Time ``model_hash`` and raw SHA-256 over a float32 model of about `size_mb` MB.

    Parameters
    ----------
    size_mb : int
        Model size in MB (10**6 bytes), split across four tensors.
    repeats : int
        Timed runs of each, interleaved; the best (smallest) wall time of each is kept.

    Returns
    -------
    HashingBench
        Best wall times, throughputs (bytes hashed / time, GB/s) and ``ratio`` =
        model_hash throughput / raw SHA-256 throughput (1.0 = no overhead).
    """
    model = _model(size_mb)
    blob = b"".join(array.tobytes() for array in model.values())  # pre-concatenated bytes
    size = len(blob)

    model_s, raw_s = _best_times(
        repeats, lambda: model_hash(model), lambda: hashlib.sha256(blob).digest()
    )
    return HashingBench(
        size_bytes=size,
        tensors=len(model),
        repeats=repeats,
        model_hash_s=model_s,
        raw_sha256_s=raw_s,
        model_hash_gbps=size / model_s / 1e9,
        raw_sha256_gbps=size / raw_s / 1e9,
        ratio=raw_s / model_s,
        openssl=ssl.OPENSSL_VERSION,
        machine=f"{platform.machine()}, Python {platform.python_version()}",
    )


def markdown_table(result: HashingBench) -> str:
    """Format a :func:`bench_hashing` result as a markdown table.

    Parameters
    ----------
    result : HashingBench
        The figures to show.

    Returns
    -------
    str
        A table with one row per method, and a line naming the set-up.
    """
    mb = result["size_bytes"] / 1e6
    rows = [
        "| method | best of {n} (ms) | throughput (GB/s) |".format(n=result["repeats"]),
        "|---|---:|---:|",
        "| `fedchain.hashing.model_hash` (streaming, {t} tensors) | {s:.1f} | {g:.2f} |".format(
            t=result["tensors"], s=result["model_hash_s"] * 1e3, g=result["model_hash_gbps"]
        ),
        "| `hashlib.sha256` over pre-concatenated bytes | {s:.1f} | {g:.2f} |".format(
            s=result["raw_sha256_s"] * 1e3, g=result["raw_sha256_gbps"]
        ),
    ]
    footer = (
        f"\n{mb:.0f} MB float32 model; ratio model_hash / raw = **{result['ratio']:.2f}** "
        f"(target >= 0.80). {result['openssl']}, {result['machine']}."
    )
    return "\n".join(rows) + "\n" + footer


if __name__ == "__main__":
    print(markdown_table(bench_hashing()))
