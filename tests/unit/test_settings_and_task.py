"""Run settings, the Flower run config in pyproject.toml, the task spec and its hash."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from fedchain.settings import RunSettings, SettingsError
from fedchain.task import (
    DataMismatchError,
    TaskSpec,
    TaskSpecError,
    decode_names,
    encode_names,
)

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_run_config_carries_the_settings_defaults() -> None:
    # Prepare
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    flower = pyproject["tool"]["flwr"]
    # Assert
    assert flower["app"]["config"] == RunSettings().to_run_config()
    assert flower["app"]["components"] == {
        "serverapp": "fedchain.server_app:app",
        "clientapp": "fedchain.client_app:app",
    }


def test_run_config_round_trip_and_coercion() -> None:
    # Prepare
    custom = RunSettings(num_rounds=3, dataset="digits", direct=True, reward_per_round=7 * 10**21)
    # Execute
    config = custom.to_run_config()
    back = RunSettings.from_run_config(config)
    loose = RunSettings.from_run_config({"num-server-rounds": "4", "direct": "true"})
    # Assert
    assert back == custom
    assert config["reward-per-round"] == str(7 * 10**21)
    assert loose.num_rounds == 4
    assert loose.direct is True


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"num-server-rounds": 0}, "num-server-rounds must be >= 1"),
        ({"chain": "mainnet"}, "chain must be one of"),
        ({"chain": "rpc"}, "chain rpc needs an rpc-url"),
        ({"strategy": "fedsgd"}, "strategy must be one of"),
        ({"fraction-train": 1.5}, "fraction-train must lie in"),
        ({"direct": "maybe"}, "is not a bool"),
        ({"num-clients": 2.5}, "is not a int"),
        ({"standardize": "global"}, "standardize must be one of local, task"),
    ],
)
def test_bad_settings_say_which_one(config: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        RunSettings.from_run_config(config)


def _spec(**changes: object) -> TaskSpec:
    base = dict(
        dataset="breast-cancer",
        model="mlp",
        num_classes=2,
        input_shape=(30,),
        strategy="fedavg",
        local_epochs=1,
        learning_rate=0.05,
        batch_size=16,
        proximal_mu=0.0,
        holdout_hash="0x" + "11" * 32,
        holdout_fraction=0.2,
        initial_model_hash="0x" + "22" * 32,
    )
    base.update(changes)
    return TaskSpec(**base)  # type: ignore[arg-type]


def test_spec_hash_is_sha256_of_the_saved_file(tmp_path: Path) -> None:
    # Prepare
    spec = _spec()
    path = tmp_path / "task.json"
    # Execute
    spec.save(path)
    # Assert: `sha256sum task.json` is the spec hash, byte for byte
    assert hashlib.sha256(path.read_bytes()).digest() == spec.spec_hash()
    assert path.read_bytes() == spec.canonical()
    assert TaskSpec.load(path) == spec
    assert _spec(learning_rate=0.1).spec_hash() != spec.spec_hash()
    assert _spec(holdout_hash="0x" + "33" * 32).spec_hash() != spec.spec_hash()


def test_a_spec_of_an_older_run_keeps_its_hash_and_loads(tmp_path: Path) -> None:
    # Prepare: task.json as fedchain 0.1.0 wrote it (a trailing newline, no data fields)
    old = (
        b'{"batch_size":16,"contribution":"data-size","dataset":"breast-cancer",'
        b'"fedchain_version":"0.1.0","holdout_fraction":0.2,"holdout_hash":"0x'
        + b"11" * 32
        + b'","initial_model_hash":"0x'
        + b"22" * 32
        + b'","input_shape":[30],'
        b'"learning_rate":0.05,"local_epochs":1,"model":"mlp","num_classes":2,"partition":"",'
        b'"proximal_mu":0.0,"seed":0,"strategy":"fedavg"}\n'
    )
    path = tmp_path / "task.json"
    path.write_bytes(old)
    # Execute
    spec = TaskSpec.load(path)
    # Assert: the hash the chain recorded for it then
    assert spec.spec_hash().hex() == (
        "9c89364c295201a50867640055d7d208a5d3796640ebf0c2afecc79e03dbc84c"
    )
    assert spec == _spec(fedchain_version="0.1.0")


def _csv_spec(**changes: object) -> TaskSpec:
    base: dict[str, object] = dict(
        dataset="csv:wine.csv",
        data_hash="0x" + "44" * 32,
        label_column="quality",
        features=("acidity", "sugar"),
        classes=("bad", "good"),
    )
    base.update(changes)
    return _spec(**base)


@pytest.mark.parametrize(
    "change",
    [
        {"data_hash": "0x" + "45" * 32},
        {"label_column": "colour"},
        {"features": ("sugar", "acidity")},
        {"classes": ("good", "bad")},
    ],
)
def test_the_spec_hash_covers_the_data_hash_columns_and_classes(
    change: dict[str, object], tmp_path: Path
) -> None:
    # Prepare
    spec = _csv_spec()
    path = tmp_path / "task.json"
    # Execute
    spec.save(path)
    # Assert
    assert _csv_spec(**change).spec_hash() != spec.spec_hash()
    assert TaskSpec.load(path) == spec
    assert b'"data_hash":"0x' + b"44" * 32 + b'"' in path.read_bytes()


def _standardized_spec(**changes: object) -> TaskSpec:
    base: dict[str, object] = dict(
        standardize="task", feature_mean=(0.1, 14.127291739894552), feature_scale=(1.0, 3.5)
    )
    base.update(changes)
    return _spec(**base)


@pytest.mark.parametrize(
    "change",
    [
        {"standardize": "local"},
        {"feature_mean": (0.1, 14.127291739894554)},  # one unit in the last place
        {"feature_scale": (1.0, 3.25)},
        {"feature_mean": (), "feature_scale": ()},
    ],
)
def test_the_spec_hash_covers_the_standardization_statistics(
    change: dict[str, object], tmp_path: Path
) -> None:
    # Prepare
    spec = _standardized_spec()
    path = tmp_path / "task.json"
    # Execute
    spec.save(path)
    loaded = TaskSpec.load(path)
    # Assert: the statistics are in the hashed bytes and read back bit for bit
    assert _standardized_spec(**change).spec_hash() != spec.spec_hash()
    assert loaded == spec
    assert loaded.feature_mean == (0.1, 14.127291739894552)
    assert b'"feature_mean":[0.1,14.127291739894552]' in path.read_bytes()
    assert b'"standardize":"task"' in path.read_bytes()


def test_a_locally_standardized_spec_keeps_the_bytes_it_had() -> None:
    # Execute
    canonical = _spec(standardize="local").canonical()
    # Assert: no new keys, so the spec hashes of earlier tasks still match their chain
    assert canonical == _spec().canonical()
    assert b"standardize" not in canonical
    assert b"feature_" not in canonical


def test_training_settings_carry_the_spec_standardization() -> None:
    # Execute
    task = _standardized_spec().training_settings(RunSettings())
    local = _spec().training_settings(RunSettings(standardize="task"))
    # Assert
    assert task.standardize == "task"
    assert local.standardize == "local"


def test_the_spec_records_the_pre_aggregation_a_site_consents_to() -> None:
    # Execute
    with_nnm = _spec(strategy="cclip", pre_aggregation="nnm")
    without = _spec(strategy="cclip")
    # Assert: in the hashed bytes when set, absent (earlier tasks' hashes kept) when not
    assert b'"pre_aggregation":"nnm"' in with_nnm.canonical()
    assert b"pre_aggregation" not in without.canonical()
    assert with_nnm.spec_hash() != without.spec_hash()
    assert with_nnm.training_settings(RunSettings()).pre_aggregation == "nnm"
    # An older spec, without the field, keeps the run's own setting
    kept = without.training_settings(RunSettings(strategy="cclip", pre_aggregation="nnm"))
    assert kept.pre_aggregation == "nnm"


def test_training_settings_read_the_data_from_the_path_given(tmp_path: Path) -> None:
    # Prepare: the run's settings name the file by a path relative to where it ran
    spec = _csv_spec(partition="iid")
    base = RunSettings(dataset="csv:../data/wine.csv", features="x", classes="a,b")
    # Execute
    given = spec.training_settings(base, tmp_path / "wine.csv")
    own = spec.training_settings(base)
    # Assert
    assert given.dataset == f"csv:{tmp_path / 'wine.csv'}"
    assert own.dataset == "csv:../data/wine.csv"
    for settings in (given, own):
        assert (settings.label_column, settings.features, settings.classes) == (
            "quality",
            "acidity,sugar",
            "bad,good",
        )


def test_a_consortium_spec_reads_its_holdout_from_the_path_given(tmp_path: Path) -> None:
    # Prepare
    spec = _csv_spec(dataset="site-csv", partition="sites")
    base = RunSettings(holdout="csv:/srv/holdout.csv")
    # Execute
    given = spec.training_settings(base, tmp_path / "holdout.csv")
    # Assert
    assert given.holdout == f"csv:{tmp_path / 'holdout.csv'}"
    assert given.dataset == "site-csv"
    assert spec.training_settings(base).holdout == "csv:/srv/holdout.csv"


def test_check_data_accepts_the_file_and_refuses_another(tmp_path: Path) -> None:
    # Prepare
    data = tmp_path / "wine.csv"
    data.write_bytes(b"acidity,sugar,quality\n1,2,good\n")
    spec = _csv_spec(data_hash="0x" + hashlib.sha256(data.read_bytes()).hexdigest())
    other = tmp_path / "other.csv"
    other.write_bytes(data.read_bytes() + b"3,4,bad\n")
    # Execute / Assert
    spec.check_data(data)
    with pytest.raises(DataMismatchError, match=f"{other} hashes to 0x"):
        spec.check_data(other)
    with pytest.raises(DataMismatchError, match=r"no data file at .*point --data at a copy"):
        spec.check_data(tmp_path / "missing.csv")


@pytest.mark.parametrize("names", [(), ("a",), ("a", "b c"), ("a,b", "c"), (" a", "b"), ("[x]",)])
def test_names_survive_a_run_config(names: tuple[str, ...]) -> None:
    assert decode_names(encode_names(names)) == names


def test_names_typed_with_commas_are_split_and_an_empty_one_refused() -> None:
    assert decode_names(" a, b ,c") == ("a", "b", "c")
    with pytest.raises(TaskSpecError, match="has an empty name"):
        decode_names("a,,b")


def test_a_malformed_spec_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "task.json"
    path.write_text('{"dataset": "x"}')
    with pytest.raises(TaskSpecError, match="not a fedchain task spec"):
        TaskSpec.load(path)
    with pytest.raises(TaskSpecError, match="no task spec"):
        TaskSpec.load(tmp_path / "missing.json")
