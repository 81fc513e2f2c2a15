"""The content store on S3 end to end (issue 18, item 4): ``fedchain simulate --store s3://...``
against a real S3 API on loopback (moto's server), then ``fedchain audit --store s3://...``,
with the same verdict, final model hash and per-round store growth as the same run with a
local store; a damaged object fails the audit; an unreachable endpoint is refused in one line
before the run starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _s3_server import S3Server, free_port, s3_server

from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow
BUCKET, PREFIX = "fedchain-runs", "runs/small"
URL = f"s3://{BUCKET}/{PREFIX}"
#: Small: 3 clients, 2 rounds, the embedded chain (the default).
JOB = ("--clients", "3", "--rounds", "2")


def _fedchain(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedchain", *args],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200", **env},
    )  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        running.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        yield running


@pytest.fixture(scope="module")
def runs(server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same seeded job twice: its store on S3 (the command a user types), and in its run
    directory (in process: the reference needs no second Ray start)."""
    on_s3, local = tmp_path_factory.mktemp("on-s3"), tmp_path_factory.mktemp("local")
    done = _fedchain("simulate", *JOB, "--out", str(on_s3), "--store", URL, env=server.env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_inprocess(RunSettings(num_clients=3, num_rounds=2, out=str(local)))
    return on_s3, local


def _summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def _audit(out: Path, env: dict[str, str], *store: str) -> tuple[int, list[dict[str, Any]]]:
    done = _fedchain("audit", "--run", str(out), *store, "--json", "-", env=env)
    assert done.stdout.strip(), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)["checks"]


def test_the_run_on_s3_stores_every_model_there_and_none_locally(
    server: S3Server, runs: tuple[Path, Path]
) -> None:
    # Prepare
    on_s3, local = runs
    summary = _summary(on_s3)
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/")  # type: ignore[attr-defined]

    # Execute
    names = {item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", [])}

    # Assert
    assert not (on_s3 / "store").exists()
    assert summary["settings"]["store"] == URL
    assert names == {p.name for p in (local / "store").iterdir()}
    final = summary["final_model_hash"][2:] + ".safetensors"
    assert final in names


def test_the_same_job_gives_the_same_hashes_and_store_growth(runs: tuple[Path, Path]) -> None:
    # Prepare
    on_s3, local = (_summary(out) for out in runs)

    # Execute
    rounds = [(r["global_model_hash"], r["store_bytes"]) for r in on_s3["rounds"]]

    # Assert
    assert on_s3["final_model_hash"] == local["final_model_hash"]
    assert rounds == [(r["global_model_hash"], r["store_bytes"]) for r in local["rounds"]]
    assert all(written > 0 for _, written in rounds)


def test_the_audit_against_s3_passes_with_the_local_verdict(
    server: S3Server, runs: tuple[Path, Path]
) -> None:
    # Prepare
    on_s3, local = runs

    # Execute
    code_s3, checks_s3 = _audit(on_s3, server.env, "--store", URL)
    code_default, checks_default = _audit(on_s3, server.env)  # the run's own store: its settings
    code_local, checks_local = _audit(local, server.env)

    # Assert
    assert code_s3 == code_local == 0
    assert code_default == 0
    rows = [(c["check"], c["round"], c["participant"], c["status"]) for c in checks_s3]
    assert rows == [(c["check"], c["round"], c["participant"], c["status"]) for c in checks_local]
    assert rows == [(c["check"], c["round"], c["participant"], c["status"]) for c in checks_default]
    assert all(c["status"] == "ok" for c in checks_s3)


def test_verify_model_finds_the_final_model_with_the_store_on_s3(
    server: S3Server, runs: tuple[Path, Path]
) -> None:
    # Prepare
    on_s3, _ = runs
    final = on_s3 / "final_model.safetensors"

    # Execute
    done = _fedchain(
        "verify-model", str(final), "--run", str(on_s3), "--store", URL, env=server.env
    )

    # Assert
    assert done.returncode == 0, done.stderr[-3000:]
    assert _summary(on_s3)["final_model_hash"] in done.stdout.replace("\n", "")


def test_a_damaged_object_on_s3_fails_the_audit(server: S3Server, runs: tuple[Path, Path]) -> None:
    # Prepare: flip one byte of round 1's global model, restored afterwards
    on_s3, _ = runs
    digest = _summary(on_s3)["rounds"][0]["global_model_hash"]
    key = f"{PREFIX}/{digest[2:]}.safetensors"
    client = server.client()
    original = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
    damaged = bytearray(original)
    damaged[-1] ^= 0x01
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(damaged))  # type: ignore[attr-defined]
    try:
        # Execute
        code, checks = _audit(on_s3, server.env, "--store", URL)
    finally:
        client.put_object(Bucket=BUCKET, Key=key, Body=original)  # type: ignore[attr-defined]

    # Assert
    assert code == 1
    failed = [c for c in checks if c["status"] == "FAIL"]
    assert failed
    assert any("altered" in c["detail"] and digest[2:] in c["detail"] for c in failed)


def test_an_unreachable_endpoint_is_refused_before_the_run_starts(tmp_path: Path) -> None:
    # Prepare: nothing listens there
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "testing",  # dummy, no real account
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    out = tmp_path / "run"

    # Execute
    simulated = _fedchain("simulate", *JOB, "--out", str(out), "--store", URL, env=env)
    audited = _fedchain("audit", "--run", str(out), "--store", URL, env=env)

    # Assert
    for done in (simulated, audited):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, done.stderr[-3000:]
        assert len(lines) == 1, done.stderr
        assert f"store {URL} cannot be used" in lines[0]
    assert not out.exists()  # nothing started, nothing written
