"""The Python API without a federation: options, the output check, lazy imports, the names."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fedchain
from fedchain.api import (
    OPTION_FIELDS,
    NoRunError,
    Run,
    RunExistsError,
    check_out,
    run_settings,
    simulate,
)
from fedchain.errors import FedchainError, SettingsError
from fedchain.settings import RunSettings


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (imports are per process); return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_command_line_names_and_the_field_names_give_the_same_settings() -> None:
    # Execute
    cli = run_settings(clients=3, rounds=2, lr=0.1, fraction=0.5, out=Path("runs/x"), seed=7)
    fields = run_settings(
        num_clients=3, num_rounds=2, learning_rate=0.1, fraction_train=0.5, out="runs/x", seed=7
    )
    # Assert
    expected = RunSettings(
        num_clients=3, num_rounds=2, learning_rate=0.1, fraction_train=0.5, out="runs/x", seed=7
    )
    assert cli == fields == expected


def test_every_option_of_fedchain_simulate_is_an_option_with_its_default() -> None:
    # Prepare: the command's parameters and defaults, as typer reads them
    from fedchain.cli.simulate import simulate as command

    parameters = inspect.signature(command).parameters
    arguments = set(inspect.signature(simulate).parameters)  # resume, overwrite, ...
    options = {name: p.default for name, p in parameters.items() if name not in arguments}
    # Execute
    each = {name: run_settings(**{name: default}) for name, default in options.items()}
    # Assert
    assert {"clients", "rounds", "lr", "fraction", "rpc_url", "out"} <= set(options)
    assert "resume" in parameters
    for name, settings in each.items():
        assert settings == run_settings(), name  # the API's defaults are the command's


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clinets": 3}, "unknown option 'clinets' (did you mean clients?)"),
        ({"clients": 3, "num_clients": 4}, "give clients or num_clients, not both"),
        ({"clients": "3"}, "clients must be a int, not str '3'"),
        ({"clients": True}, "clients must be a int, not bool True"),
        ({"direct": 1}, "direct must be a bool, not int 1"),
        ({"rpc_url": "http://127.0.0.1:8545", "chain": "anvil"}, "chain='anvil' with an rpc_url"),
        ({"clients": 1}, "num-clients must be >= 2"),
    ],
)
def test_a_bad_option_is_refused_with_what_to_do(options: dict[str, object], message: str) -> None:
    # Execute
    with pytest.raises(SettingsError) as raised:
        run_settings(**options)
    # Assert
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_an_unknown_option_is_told_every_valid_one() -> None:
    # Execute
    with pytest.raises(SettingsError) as raised:
        run_settings(epochs=2)
    # Assert
    for name in (*OPTION_FIELDS, *OPTION_FIELDS.values(), "local_epochs", "proximal_mu", "out"):
        assert name in str(raised.value)


def test_rpc_url_selects_the_rpc_chain_and_the_strategy_is_case_insensitive() -> None:
    # Execute
    settings = run_settings(rpc_url="http://127.0.0.1:8545", strategy="FedMedian", lr=1)
    # Assert
    assert (settings.chain, settings.rpc_url) == ("rpc", "http://127.0.0.1:8545")
    assert settings.strategy == "fedmedian"
    assert settings.learning_rate == 1.0
    assert isinstance(settings.learning_rate, float)


def test_csv_options_are_mapped_as_the_command_line_maps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    # Execute
    listed = run_settings(dataset="csv:data/wine.csv", features=["alcohol", "ash, raw"])
    typed = run_settings(features="alcohol, ash")
    # Assert
    assert listed.dataset == f"csv:{tmp_path.resolve() / 'data' / 'wine.csv'}"
    assert listed.features == '["alcohol", "ash, raw"]'  # a name with a comma survives
    assert typed.features == "alcohol,ash"
    with pytest.raises(SettingsError, match="features must be column names"):
        run_settings(features=["alcohol", 3])


def test_an_output_directory_holding_a_run_is_refused_unless_overwrite(tmp_path: Path) -> None:
    # Prepare
    empty, killed, a_file = tmp_path / "empty", tmp_path / "killed", tmp_path / "file"
    empty.mkdir()
    (killed / "store").mkdir(parents=True)
    (killed / "task.json").write_text("{}")
    a_file.write_text("notes")
    # Execute
    check_out(empty)
    check_out(tmp_path / "new")
    check_out(killed, overwrite=True)
    with pytest.raises(RunExistsError) as held:
        check_out(killed)
    with pytest.raises(RunExistsError) as is_file:
        check_out(a_file, overwrite=True)
    with pytest.raises(RunExistsError) as under_file:
        check_out(a_file / "run")
    # Assert
    assert "already holds a run (task.json, store)" in str(held.value)
    assert "overwrite=True" in str(held.value)
    assert "is a file" in str(is_file.value)
    assert f"cannot be a directory: {a_file} is a file" in str(under_file.value)
    assert isinstance(held.value, FileExistsError)
    assert isinstance(held.value, FedchainError)


def test_simulate_refuses_an_output_holding_a_run_before_anything_starts(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "summary.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    # Execute
    with pytest.raises(RunExistsError):
        simulate(clients=3, rounds=1, engine="inprocess", out=tmp_path)
    # Assert
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "summary.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"contribution": "shapley", "clients": 40}, "contribution shapley scores at most"),
        ({"model": "cnn"}, "cnn"),
        ({"clients": 300}, "cannot give 300 clients"),  # ran ten failed rounds before
    ],
)
def test_options_that_cannot_work_are_refused_with_nothing_written(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    # Prepare
    out = tmp_path / "run"
    # Execute
    with pytest.raises(FedchainError, match=message):
        simulate(engine="inprocess", out=out, **options)
    # Assert
    assert not out.exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"engine": "ray"}, "unknown engine 'ray'"),
        ({"resume": "runs/x", "clients": 3}, "resume goes on with the run's own settings"),
        ({"resume": "runs/x", "engine": "inprocess"}, "resume runs on engine='flower'"),
    ],
)
def test_simulate_refuses_what_cannot_run(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        simulate(**arguments)


def test_a_directory_without_a_summary_is_no_run(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(NoRunError) as raised:
        Run.open(tmp_path)
    # Assert
    assert f"no run at {tmp_path}" in str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)


def test_the_package_exports_exactly_the_api() -> None:
    assert fedchain.__all__ == [
        "Run", "__version__", "audit_run", "simulate", "verify_model", "write_report"
    ]  # fmt: skip
    assert set(fedchain.__all__) <= set(dir(fedchain))
    assert fedchain.simulate is simulate
    with pytest.raises(AttributeError, match="has no attribute 'simulat'"):
        _ = fedchain.simulat  # type: ignore[attr-defined]


def test_importing_the_package_core_or_ml_loads_no_flower_ray_or_web3() -> None:
    # Execute
    loaded = _python(
        """
        import sys
        import fedchain, fedchain.errors, fedchain.ml
        fedchain.__version__, fedchain.Run, fedchain.simulate, fedchain.audit_run
        print(sorted(m for m in ("flwr", "ray", "web3") if m in sys.modules))
        """
    )
    # Assert
    assert loaded.strip() == "[]"


def test_the_api_names_do_not_shadow_the_audit_and_report_subpackages() -> None:
    # Execute: the API first, then the subpackages, then the API again (fresh interpreter)
    out = _python(
        """
        import types
        import fedchain
        first = fedchain.audit_run, fedchain.write_report
        import fedchain.audit.lineage as lineage
        import fedchain.report
        from fedchain import record_keys
        assert isinstance(fedchain.audit, types.ModuleType), fedchain.audit
        assert isinstance(fedchain.report, types.ModuleType), fedchain.report
        assert fedchain.audit.lineage is lineage
        assert (fedchain.audit_run, fedchain.write_report) == first
        assert callable(fedchain.audit_run) and callable(fedchain.write_report)
        assert record_keys.RECORD_ARRAYS == "arrays"
        print("ok")
        """
    )
    # Assert
    assert out.strip() == "ok"


ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_call_only_functions_the_package_exports() -> None:
    # Prepare
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    # Execute: every fedchain.NAME( in code, fenced or inline
    called = {
        (page.name, name)
        for page in pages
        for name in re.findall(r"\bfedchain\.(\w+)\(", page.read_text())
    }
    # Assert
    assert {name for _, name in called} >= {"simulate", "audit_run", "verify_model"}
    assert {(page, name) for page, name in called if name not in fedchain.__all__} == set()
