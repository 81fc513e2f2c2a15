"""Bad input at a client (a real site): its own CSV data and its keystore.

A site points its SuperNode at its own training file with the node config key ``data`` and at
its key with ``keystore``. What is wrong there must stop that client with a message that says
what to fix; the server then drops the client's error reply with that message
(``test_bad_input.py``) and the round goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedchain import record_keys
from fedchain.chain.accounts import PASSWORD_ENV, new_keystore
from fedchain.chain.errors import KeystoreError
from fedchain.errors import FedchainError
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.participant import participant_account, train_reply
from fedchain.federation.workload import holdout, initial_weights, site_data
from fedchain.ml.data import load_breast_cancer
from fedchain.ml.errors import DatasetError
from fedchain.settings import RunSettings

SETTINGS = RunSettings(num_clients=4, model="logreg", standardize="local")


@pytest.fixture(autouse=True)
def _consent_checked_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """These runs have no ledger: a hospital's node would refuse them for naming no task
    (test_hospital_consent.py); here only what a site does with its own files is tested."""
    monkeypatch.setattr("fedchain.federation.participant._consented", lambda *_: None)


def _train_message() -> Message:
    """Round 1 of a run without a ledger, carrying the run's initial model."""
    hold = holdout(SETTINGS)
    weights = initial_weights(SETTINGS, hold.input_shape, hold.num_classes)
    config = ConfigRecord({"server-round": 1})
    content = RecordDict(
        {record_keys.RECORD_ARRAYS: numpy_to_arrays(weights), record_keys.RECORD_CONFIG: config}
    )
    return Message(content, dst_node_id=7, message_type="train")


def _site(**node_config: str) -> Context:
    return Context(
        run_id=1, node_id=7, node_config=dict(node_config), state=RecordDict(), run_config={}
    )


FEATURES = ",".join(f"f{i}" for i in range(30))
NAMES = ("malignant", "benign")  # breast-cancer's classes 0 and 1


def _site_csv(
    path: Path, rows: int, bad_cell: tuple[int, str] | None = None, *, named: bool = False
) -> Path:
    """A site's file with breast-cancer's 30 feature columns and ``label`` (class ids, or with
    ``named`` class names plus a patient id and a numeric column the task does not use)."""
    data = load_breast_cancer()
    names = [f"f{i}" for i in range(data.features.shape[1])]
    extra = ["patient", "ward"] if named else []
    lines = [",".join([*extra, *names, "label"])]
    for i in range(rows):
        label = int(data.labels[i])
        cells = [f"P{i}", str(i % 3)] if named else []
        cells += [repr(float(v)) for v in data.features[i]]
        cells.append(NAMES[label] if named else str(label))
        if bad_cell is not None and bad_cell[0] == i:
            cells[3] = bad_cell[1]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_site_trains_on_its_own_csv_file(tmp_path: Path) -> None:
    # Prepare
    site_file = _site_csv(tmp_path / "site.csv", rows=40)
    # Execute
    reply = train_reply(_train_message(), _site(**{"data-path": str(site_file)}), SETTINGS)
    # Assert
    metrics = reply.content.metric_records[record_keys.RECORD_METRICS]
    assert metrics[record_keys.METRIC_NUM_EXAMPLES] == 40
    update = arrays_to_numpy(reply.content.array_records[record_keys.RECORD_ARRAYS])
    assert all(np.isfinite(w).all() for w in update.values())


def test_a_site_reads_the_tasks_columns_and_numbers_its_classes_as_the_task_does(
    tmp_path: Path,
) -> None:
    # Prepare: the run config names the task's features and classes (`fedchain task create`)
    site_file = _site_csv(tmp_path / "site.csv", rows=40, named=True)
    settings = SETTINGS.with_changes(features=FEATURES, classes=",".join(NAMES))
    # Execute
    reply = train_reply(_train_message(), _site(**{"data-path": str(site_file)}), settings)
    data = site_data(str(site_file), "label", 2, settings.features, settings.classes)
    # Assert: 30 features (not the ward), and class ids as breast-cancer's own
    metrics = reply.content.metric_records[record_keys.RECORD_METRICS]
    assert metrics[record_keys.METRIC_NUM_EXAMPLES] == 40
    assert data.feature_names == tuple(FEATURES.split(","))
    np.testing.assert_array_equal(data.labels, load_breast_cancer().labels[:40])


def test_a_site_with_class_names_but_no_task_classes_is_refused(tmp_path: Path) -> None:
    # Prepare: a run config from before the task recorded its classes
    site_file = _site_csv(tmp_path / "site.csv", rows=10, named=True)
    settings = SETTINGS.with_changes(features=FEATURES)
    # Execute / Assert
    with pytest.raises(DatasetError, match=r"the labels are class names .* the task names no"):
        train_reply(_train_message(), _site(**{"data-path": str(site_file)}), settings)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("old", "row 3 (line 4), column 'f3': 'old' is not a number"),
        ("nan", "row 3 (line 4), column 'f3': 'nan' is not a finite number; impute it first"),
        ("", "row 3 (line 4), column 'f3': '' is not a number"),
    ],
    ids=["text", "nan", "empty"],
)
def test_malformed_csv_at_a_site_stops_it_with_row_and_column(
    bad: str, message: str, tmp_path: Path
) -> None:
    # Prepare
    site_file = _site_csv(tmp_path / "site.csv", rows=10, bad_cell=(2, bad))
    # Execute
    with pytest.raises(DatasetError) as caught:
        train_reply(_train_message(), _site(**{"data-path": str(site_file)}), SETTINGS)
    # Assert
    assert isinstance(caught.value, FedchainError)
    assert str(site_file) in str(caught.value)
    assert message in str(caught.value)


def test_a_site_csv_with_a_short_row_or_no_label_column_says_what_to_fix(tmp_path: Path) -> None:
    # Prepare
    short = tmp_path / "short.csv"
    short.write_text("a,b,label\n1,2,0\n3,1\n")
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("a,b,y\n1,2,0\n")
    # Execute / Assert
    with pytest.raises(DatasetError, match="has 2 fields but the header has 3"):
        train_reply(_train_message(), _site(**{"data-path": str(short)}), SETTINGS)
    with pytest.raises(DatasetError, match="no label column 'label'; available columns: 'a', 'b'"):
        train_reply(_train_message(), _site(**{"data-path": str(unlabelled)}), SETTINGS)


def test_a_missing_site_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no CSV file at"):
        train_reply(
            _train_message(), _site(**{"data-path": str(tmp_path / "absent.csv")}), SETTINGS
        )


@pytest.fixture
def site_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site's keystore, its password in the environment as a real node would have it."""
    path = tmp_path / "site-key.json"
    new_keystore(path, "the site's passphrase")
    monkeypatch.setenv(PASSWORD_ENV, "the site's passphrase")
    return path


def test_a_sites_keystore_gives_its_account(site_keystore: Path) -> None:
    address = json.loads(site_keystore.read_text())["address"]
    account = participant_account(_site(keystore=str(site_keystore)))
    assert account.address.lower() == "0x" + address.lower()


def test_a_wrong_keystore_password_at_a_site_is_a_clear_error(
    site_keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.setenv(PASSWORD_ENV, "not the passphrase")
    # Execute / Assert
    with pytest.raises(
        KeystoreError, match=r"cannot decrypt .*: wrong password or corrupt keystore"
    ):
        participant_account(_site(keystore=str(site_keystore)))


@pytest.mark.parametrize("damage", ["ciphertext", "truncated", "not-json"])
def test_a_corrupt_keystore_at_a_site_is_a_clear_error(damage: str, site_keystore: Path) -> None:
    # Prepare
    text = site_keystore.read_text()
    if damage == "ciphertext":
        stored = json.loads(text)
        cipher = stored["crypto"]["ciphertext"]
        stored["crypto"]["ciphertext"] = ("0" if cipher[0] != "0" else "1") + cipher[1:]
        text = json.dumps(stored)
    elif damage == "truncated":
        text = text[: len(text) // 2]
    else:
        text = "PK\x03\x04 a zip, not a keystore"
    corrupt = site_keystore.with_name(f"{damage}.json")
    corrupt.write_text(text)
    # Execute
    with pytest.raises(KeystoreError) as caught:
        participant_account(_site(keystore=str(corrupt)))
    # Assert
    assert str(corrupt) in str(caught.value)
    assert isinstance(caught.value, ValueError)
