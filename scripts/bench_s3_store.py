"""Benchmark: the content store on object storage against a local folder.

The default job (``fedchain simulate`` with its defaults: 10 clients, 10 rounds, the embedded
chain) run twice, one after the other: its store in the run directory, then on S3 (moto's S3
server on 127.0.0.1, a dev dependency; a real S3 API, on loopback), each then audited with
``fedchain audit``. Reported side by side: each round's time and the bytes it wrote to the
store (summary.json's ``store_bytes``), the whole run's and the audit's time, the final model
hash and the audit's verdict.

``python scripts/bench_s3_store.py [--rounds N] [--write]``: prints the markdown; ``--write``
puts it in docs/BENCHMARKS.md's "Object storage" section.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_page import write_section

__all__ = ["Measured", "bench_s3_store", "markdown"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADING = "## Object storage"
BUCKET = "fedchain-bench"
#: moto's dummy credentials: no real account.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class Measured:
    """One run of the job and its audit."""

    store: str
    seconds: float  # the whole `fedchain simulate`, Ray's start included
    audit_seconds: float
    audit_exit: int
    summary: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fedchain(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fedchain", *args],
        capture_output=True, text=True, timeout=3600, check=False, env={**os.environ, **env},
    )  # fmt: skip
    return time.perf_counter() - started, done.returncode, done.stderr


def _run(out: Path, store: str, rounds: list[str], env: dict[str, str]) -> Measured:
    extra = ["--store", store] if store else []
    seconds, code, err = _fedchain(["simulate", "--out", str(out), *rounds, *extra], env)
    if code:
        raise SystemExit(f"fedchain simulate failed ({code}): {err[-2000:]}")
    audit_seconds, audit_exit, _ = _fedchain(["audit", "--run", str(out), *extra], env)
    summary = json.loads((out / "summary.json").read_text())
    return Measured(store or "local", seconds, audit_seconds, audit_exit, summary)


def bench_s3_store(rounds: int | None = None) -> tuple[Measured, Measured]:
    """The default job with a local store, then with its store on the loopback S3 server."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(endpoint)
        request = urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()  # create the bucket
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", **CREDENTIALS}
        job = ["--rounds", str(rounds)] if rounds else []
        with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
            local = _run(Path(tmp) / "local", "", job, env)
            on_s3 = _run(Path(tmp) / "s3", f"s3://{BUCKET}/default-job", job, env)
    finally:
        server.stop()
    return local, on_s3


def _wait(endpoint: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def markdown(local: Measured, on_s3: Measured, command: str) -> str:
    """The "Object storage" section."""
    rows = []
    for a, b in zip(local.summary["rounds"], on_s3.summary["rounds"], strict=True):
        rows.append(
            f"| {a['round']} | {a['seconds']:.2f} | {b['seconds']:.2f} | "
            f"{a['store_bytes']:,} | {b['store_bytes']:,} |"
        )
    total = [sum(r["store_bytes"] for r in m.summary["rounds"]) for m in (local, on_s3)]
    later = [_mean_after_first(m) for m in (local, on_s3)]
    same = local.summary["final_model_hash"] == on_s3.summary["final_model_hash"]
    met = same and local.audit_exit == on_s3.audit_exit == 0
    table = "\n".join(rows)
    return f"""{HEADING}

The default job (`fedchain simulate`: 10 clients, 10 rounds, the embedded chain) with its
content store in the run directory, then on S3 (`--store s3://{BUCKET}/default-job`, moto's
S3 server on 127.0.0.1: a real S3 API on loopback, so the figures show the protocol's cost, not
a network's), one run each, one after the other, each then audited (`fedchain audit`). Bytes
per round are those the round wrote to the store (summary.json's `store_bytes`: the accepted
updates and the global model, none stored before). Round 1's time includes Ray's workers
starting. Target: the run on S3 and its audit complete with the same verdict and hashes as the
local store. Command: `{command}`.

| round | local: seconds | S3: seconds | local: bytes written | S3: bytes written |
|---:|---:|---:|---:|---:|
{table}

- rounds 2 to {len(rows)}: {later[0]:.2f} s a round local, {later[1]:.2f} s on S3; bytes written
  over the run: {total[0]:,} local, {total[1]:,} on S3.
- whole run (Ray's start included): {local.seconds:.1f} s local, {on_s3.seconds:.1f} s on S3.
- audit: {local.audit_seconds:.1f} s local, {on_s3.audit_seconds:.1f} s on S3; verdict:
  {_verdict(local.audit_exit)} (local), {_verdict(on_s3.audit_exit)} (S3).
- final model hash `{on_s3.summary["final_model_hash"]}` on S3,
  {"the same" if same else "not the same: " + local.summary["final_model_hash"]} locally.
  **Target {"met" if met else "missed"}.**
"""


def _mean_after_first(measured: Measured) -> float:
    seconds = [r["seconds"] for r in measured.summary["rounds"][1:]]
    return sum(seconds) / len(seconds) if seconds else float("nan")


def _verdict(code: int) -> str:
    return {0: "every check passed", 1: "a check failed", 3: "checks not made"}.get(
        code, f"exit code {code}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="default: the job's (10)")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    local, on_s3 = bench_s3_store(args.rounds)
    command = "python scripts/bench_s3_store.py" + (
        f" --rounds {args.rounds}" if args.rounds else ""
    )
    text = markdown(local, on_s3, command)
    print(text)
    if args.write:
        write_section(HEADING, text, DOC)


if __name__ == "__main__":
    main()
