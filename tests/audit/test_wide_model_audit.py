"""A round of the 1M-parameter MLP goes through the ledger's whole path: the clients train and
sign it, the server hashes and stores every update and the global model, the chain records
them, and the audit rebuilds and checks them from the store (the 10M one is benchmarked in
scripts/bench_model_size.py, not tested: it takes minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from fedchain.audit import audit_run
from fedchain.hashing import model_hash
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow  # a real federation, one round of two clients

#: Bytes of the 1M MLP on breast-cancer's 30 features as float32 (1,034,002 parameters).
MODEL_BYTES = 1_034_002 * 4


def test_a_round_of_the_1m_model_is_stored_recorded_and_audited(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "run"
    settings = RunSettings(
        model="mlp-1m", num_clients=2, num_rounds=1, chain="embedded", out=str(out)
    )
    # Execute
    record = run_inprocess(settings)
    verdict = audit_run(out, recompute=True)
    # Assert: both updates and the global model stored whole, under their hashes
    (round_one,) = record.reports
    assert [p.accepted for p in round_one.participants] == [True, True]
    assert round_one.committed
    final = load_file(out / "final_model.safetensors")
    assert sum(a.size for a in final.values()) * 4 == MODEL_BYTES
    assert "0x" + model_hash(final).hex() == record.final_model_hash
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"][0]["store_bytes"] > 3 * MODEL_BYTES
    stored = sorted(p.stat().st_size for p in (out / "store").rglob("*") if p.is_file())
    assert len(stored) >= 3
    assert all(size > MODEL_BYTES for size in stored[-3:])
    # and the audit rebuilt the round from them, bit-exactly
    assert verdict.ok, verdict.failures
    rows = {c.check: c for c in verdict.checks}
    assert "1 rounds reproduced bit-exactly" in (
        rows["aggregation reproduces the global model"].detail
    )
