"""Reward trees: fedchain's Python trees equal the npm @openzeppelin/merkle-tree's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fedchain.chain.merkle import (
    LEAF_ENCODING,
    MerkleError,
    RewardLeaf,
    RewardTree,
    process_proof,
    verify_proof,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("standard_merkle_tree.js")
LIBRARY = ROOT / "node_modules" / "@openzeppelin" / "merkle-tree" / "package.json"
SIZES = (1, 2, 3, 4, 5, 7, 8, 13, 33, 100)


def _leaf(rng: random.Random, i: int) -> RewardLeaf:
    return RewardLeaf(
        task_id=rng.randrange(1, 10),
        round=rng.randrange(1, 100),
        index=i,
        participant="0x" + rng.randbytes(20).hex(),
        update_hash=hashlib.sha256(f"update {i}".encode()).digest(),
        num_examples=rng.randrange(1, 10**6),
        score=rng.randrange(-(10**7), 10**7),  # scores may be negative
        amount=rng.randrange(0, 10**24),
    )


def _trees() -> list[list[RewardLeaf]]:
    rng = random.Random(7)
    trees = [[_leaf(rng, i) for i in range(n)] for n in SIZES]
    top = 2**256 - 1
    extremes = RewardLeaf(top, top, top, "0x" + "ff" * 20, b"\xff" * 32, top, -(2**255), top)
    zeros = RewardLeaf(0, 0, 0, "0x" + "00" * 20, b"\x00" * 32, 0, 0, 0)
    duplicate = trees[2][0]
    trees.append([extremes, zeros, duplicate, duplicate, trees[3][1]])
    return trees


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """One run of the npm library over every tree (and over the Python dumps)."""
    if shutil.which("node") is None:
        pytest.fail("node is required to compare with @openzeppelin/merkle-tree (Node 20)")
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is missing: run `make setup` (npm install) first")
    trees = _trees()
    request = {
        "encoding": list(LEAF_ENCODING),
        "trees": [[leaf.to_json() for leaf in leaves] for leaves in trees],
        "dumps": [RewardTree.of(leaves).dump() for leaves in trees],
    }
    done = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"the reference script failed: {done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["leaves"] = trees
    return result


def test_roots_equal_the_npm_library(reference: dict[str, Any]) -> None:
    # Prepare / Execute
    ours = [RewardTree.of(leaves) for leaves in reference["leaves"]]

    # Assert
    assert ["0x" + t.root.hex() for t in ours] == [t["root"] for t in reference["trees"]]


def test_proofs_equal_the_npm_library(reference: dict[str, Any]) -> None:
    # Prepare
    checked = 0
    for leaves, theirs in zip(reference["leaves"], reference["trees"], strict=True):
        tree = RewardTree.of(leaves)

        # Execute
        proofs = [["0x" + p.hex() for p in tree.proof(i)] for i in range(len(leaves))]

        # Assert
        assert proofs == theirs["proofs"]
        checked += len(proofs)
    assert checked == sum(SIZES) + 5


def test_dump_equals_the_npm_dump_and_loads_in_both(reference: dict[str, Any]) -> None:
    # Prepare
    for leaves, theirs, loaded in zip(
        reference["leaves"], reference["trees"], reference["loaded"], strict=True
    ):
        ours = RewardTree.of(leaves)

        # Execute
        back = RewardTree.load(theirs["dump"])

        # Assert: the same layout, each library loads and verifies the other's dump
        assert ours.dump() == theirs["dump"]
        assert back.root == ours.root
        assert back.leaves == leaves
        assert loaded == {"root": "0x" + ours.root.hex(), "verified": True}


def test_proofs_verify_and_altered_leaves_do_not() -> None:
    # Prepare
    leaves = _trees()[5]
    tree = RewardTree.of(leaves)
    richer = dataclasses.replace(leaves[0], score=0, amount=10**30)

    # Execute
    results = [verify_proof(tree.root, leaf, tree.proof(i)) for i, leaf in enumerate(leaves)]

    # Assert
    assert all(results)
    assert tree.total() == sum(leaf.amount for leaf in leaves)
    assert not verify_proof(tree.root, richer, tree.proof(0))
    assert not verify_proof(tree.root, leaves[0], tree.proof(1))
    assert process_proof(leaves[0].hash(), tree.proof(0)) == tree.root


def test_bad_leaves_and_trees_are_refused_with_merkle_errors() -> None:
    # Prepare
    good = _trees()[3]
    dump = RewardTree.of(good).dump()
    swapped = json.loads(json.dumps(dump))
    swapped["values"][0]["value"][7] = "1"  # an amount altered after the tree was built
    inner = json.loads(json.dumps(dump))
    inner["tree"][0] = "0x" + "00" * 32

    # Execute / Assert
    with pytest.raises(MerkleError, match="at least one leaf"):
        RewardTree.of([])
    with pytest.raises(MerkleError, match="not an address"):
        RewardLeaf(1, 1, 0, "hospital", b"\x00" * 32, 1, 0, 0)
    with pytest.raises(MerkleError, match="32 bytes"):
        RewardLeaf(1, 1, 0, "0x" + "11" * 20, b"\x00", 1, 0, 0)
    with pytest.raises(MerkleError, match="amount"):
        RewardLeaf(1, 1, 0, "0x" + "11" * 20, b"\x00" * 32, 1, 0, -1)
    with pytest.raises(MerkleError, match="malformed"):
        RewardLeaf.from_json(["0x" + "11" * 20, "0x" + "00" * 32, "1"])
    with pytest.raises(MerkleError, match="not at tree index"):
        RewardTree.load(swapped)
    with pytest.raises(MerkleError, match="not the hash of its children"):
        RewardTree.load(inner)
    with pytest.raises(MerkleError, match="unknown tree format"):
        RewardTree.load({**dump, "format": "simple-v1"})
