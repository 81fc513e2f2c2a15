"""Merkle commit mode end to end: simulate, records, audit, rewards, claim, claim again."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from _cli_here import fedchain_here

from fedchain.audit import open_run
from fedchain.audit.merkle import audit_merkle_run
from fedchain.chain.accounts import devnet_account
from fedchain.chain.errors import LedgerLeafAlreadyClaimed
from fedchain.chain.records import TaskId
from fedchain.federation.merkle_rounds import load_records, record_path
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import run_inprocess

pytestmark = pytest.mark.slow
CLIENTS, ROUNDS = 4, 2


def _fedchain(*args: str) -> subprocess.CompletedProcess[str]:
    """A command on the finished run, in this process through the console entry point (see
    ``_cli_here``): the same code as a subprocess, without importing torch and web3 again."""
    return fedchain_here(*args)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded merkle-mode federation: 4 clients, 2 rounds, IID; in process (the commands
    below read it as they read any run)."""
    out = tmp_path_factory.mktemp("merkle")
    settings = RunSettings(
        num_clients=CLIENTS, num_rounds=ROUNDS, partition="iid", commit_mode="merkle", out=str(out)
    )
    run_inprocess(settings)
    return out


def test_each_round_commits_a_root_and_publishes_its_record(out: Path) -> None:
    # Prepare
    events = json.loads((out / "ledger.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    # Execute
    roots = {e["args"]["round"]: e["args"] for e in events if e["event"] == "RoundRootCommitted"}
    records = load_records(out)
    # Assert: one root per round, no per-participant record on chain
    assert sorted(roots) == list(range(1, ROUNDS + 1))
    assert not [e for e in events if e["event"] in ("CommitmentRecorded", "RewardAttributed")]
    assert summary["settings"]["commit-mode"] == "merkle"
    for r in summary["rounds"]:
        args = roots[r["round"]]
        data = record_path(out, r["round"]).read_bytes()
        assert r["committed"]
        assert "0x" + hashlib.sha256(data).hexdigest() == args["recordHash"]  # sha256sum works
        assert (out / "store" / f"{args['recordHash'][2:]}.json").read_bytes() == data
        record = records[r["round"]]
        assert "0x" + record.tree.root.hex() == args["root"]
        assert len(record.commitments) == args["declaredLeafCount"] == CLIENTS
        earned = int(r["budget"]) - int(r["unearned"])  # the rest stays in the task's pool
        assert record.tree.total() == earned == int(args["declaredTotalReward"])
        by_address = {p["address"]: p for p in r["participants"]}
        for leaf in record.tree.leaves:
            assert int(by_address[leaf.participant]["reward"]) == leaf.amount
            assert by_address[leaf.participant]["update_hash"] == "0x" + leaf.update_hash.hex()


def test_the_audit_verifies_every_signature_and_root(out: Path) -> None:
    # Prepare
    opened = open_run(out)
    # Execute
    try:
        problems = audit_merkle_run(opened.out, opened.gateway, opened.task_id)
    finally:
        opened.close()
    # Assert
    assert problems == []


def _owed(out: Path, address: str) -> list[int]:
    """The positive amounts of ``address``'s reward leaves, a round each at most."""
    return [
        leaf.amount
        for record in load_records(out).values()
        for leaf in record.tree.leaves
        if leaf.participant == address and leaf.amount > 0
    ]


def test_rewards_claim_and_claim_again(out: Path) -> None:
    # Prepare: the participant owed most claims (DEVNET TEST keys 1..CLIENTS are the participants;
    # leave-one-out may pay another nothing)
    index = max(range(1, CLIENTS + 1), key=lambda i: sum(_owed(out, devnet_account(i).address)))
    claimer = devnet_account(index).address
    leaves = _owed(out, claimer)
    owed = sum(leaves)
    # Execute
    before = _fedchain("rewards", "--run", str(out))
    claimed = _fedchain("claim", "--run", str(out), "--devnet-account", str(index))
    again = _fedchain("claim", "--run", str(out), "--devnet-account", str(index))
    after = _fedchain("rewards", "--run", str(out))
    # Assert
    assert before.returncode == 0, before.stderr
    assert "merkle mode" in before.stdout
    assert claimer in before.stdout
    assert claimed.returncode == 0, claimed.stderr
    assert leaves
    assert f"proved {len(leaves)} reward leaves" in claimed.stdout
    assert f"claimed {owed / 10**18:,.2f} FDT" in claimed.stdout
    assert again.returncode == 0, again.stderr
    assert "proved" not in again.stdout
    assert "nothing to claim" in again.stdout
    row = next(line for line in after.stdout.splitlines() if claimer[:12] in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[-1] == "0 FDT"  # nothing claimable any more
    # Assert: the balances on the saved chain, and a proof replayed by hand is refused
    opened = open_run(out, resume=False)
    try:
        gateway = opened.gateway
        token = gateway.task(TaskId(opened.task_id)).token
        assert gateway.claimed(claimer, token) == owed
        assert gateway.token_balance(claimer) == owed
        assert gateway.owed(claimer, token) == 0
        summary = json.loads((out / "summary.json").read_text())
        others = {p["address"] for r in summary["rounds"] for p in r["participants"]} - {claimer}
        assert len(others) == CLIENTS - 1
        assert all(gateway.token_balance(who) == 0 for who in others)
        claims = [c for record in load_records(out).values() for c in record.claims_of(claimer)]
        with pytest.raises(LedgerLeafAlreadyClaimed):
            gateway.as_account(devnet_account(index)).claim_leaves(TaskId(opened.task_id), claims)
    finally:
        opened.close()


def _audit_json(run: Path) -> tuple[int, dict[str, object]]:
    done = _fedchain("audit", "--run", str(run), "--recompute", "--json", "-")
    return done.returncode, json.loads(done.stdout)


def test_fedchain_audit_recomputes_a_merkle_run_from_its_published_records(out: Path) -> None:
    # Execute
    code, verdict = _audit_json(out)
    # Assert
    checks = verdict["checks"]
    assert isinstance(checks, list)
    assert code == 0, [c for c in checks if not c["ok"]]
    by_name = {c["check"]: c for c in checks}
    assert by_name["merkle round records match the chain's roots"]["ok"]
    assert f"{CLIENTS * ROUNDS} scores" in by_name["scores and rewards recompute"]["detail"]
    assert (
        f"{CLIENTS * ROUNDS} commitments"
        in by_name["commitments signed by eligible members"]["detail"]
    )


def test_a_tampered_or_lost_round_record_is_named(out: Path, tmp_path: Path) -> None:
    # Prepare: round 1's record lost everywhere, round 2's published copy altered
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    lost = record_path(run, 1)
    digest = hashlib.sha256(lost.read_bytes()).hexdigest()
    lost.unlink()
    (run / "store" / f"{digest}.json").unlink()
    altered = record_path(run, 2)
    altered.write_bytes(altered.read_bytes().replace(b'"round":2', b'"round":2 '))
    # Execute
    code, verdict = _audit_json(run)
    # Assert
    checks = verdict["checks"]
    assert isinstance(checks, list)
    failed = [c for c in checks if not c["ok"]]
    assert code == 1
    merkle = [c for c in failed if c["check"] == "merkle round records match the chain's roots"]
    assert {c["round"] for c in merkle} == {1, 2}
    assert any("no intact copy in the store" in c["detail"] for c in merkle if c["round"] == 1)
    assert any("not the record committed on chain" in c["detail"] for c in merkle)


def test_verify_model_names_a_merkle_rounds_participants(out: Path) -> None:
    # Execute
    done = _fedchain("verify-model", str(out / "final_model.safetensors"), "--run", str(out))
    # Assert
    assert done.returncode == 0, done.stderr
    assert f"round {ROUNDS}" in done.stdout
    record = load_records(out)[ROUNDS]
    for leaf in record.tree.leaves:
        assert leaf.participant in done.stdout
