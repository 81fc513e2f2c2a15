"""Files holding data, updates or keys are their owner's only (issue 19, item 3): created mode
600, in directories created 700, whatever the umask lets others read by default."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

from fedchain.chain.accounts import new_keystore
from fedchain.hashing import to_hex
from fedchain.store import ModelStore

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "file modes devnet test"  # a throwaway keystore's, created and deleted here


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_keystore_and_the_directory_made_for_it_are_the_owners_only(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "keys" / "hospital-a.json"
    # Execute
    new_keystore(path, PASSWORD)
    # Assert
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700


def test_the_demo_sites_csv_files_are_the_owners_only(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "data"
    # Execute
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "consortium_data.py"), str(out), "--sites", "2"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # Assert
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["holdout.csv", "hospital-a.csv", "hospital-b.csv"]
    assert {_mode(f) for f in files} == {0o600}
    assert _mode(out) == 0o700


def test_the_store_of_updates_and_its_folder_are_the_owners_only(tmp_path: Path) -> None:
    # Prepare
    store = ModelStore(tmp_path / "run" / "store")
    update = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    # Execute
    model = store.put(update)
    record = store.put_document(b'{"round": 1}')
    # Assert
    assert _mode(store.path(model)) == 0o600
    assert _mode(store.root / f"{to_hex(record)[2:]}.json") == 0o600
    assert _mode(store.root) == 0o700
