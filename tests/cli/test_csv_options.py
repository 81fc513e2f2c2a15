"""`--dataset csv:PATH` with `--label-column` and `--features`: what reaches the run, and the
one-line errors that refuse a file before anything starts (nothing written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.cli import simulate as simulate_command

runner = CliRunner()


def _table(path: Path, labels: list[str], *, text: bool = True) -> Path:
    """A table of ``len(labels)`` rows: numeric columns ``a``, ``b`` and, with ``text``, a
    column ``name`` holding no number."""
    lines = ["a,b,name,label" if text else "a,b,label"]
    for i, label in enumerate(labels):
        lines.append(f"{i},{i % 7},N{i},{label}" if text else f"{i},{i % 7},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _two_classes(n: int = 60) -> list[str]:
    return ["good" if i % 2 else "bad" for i in range(n)]


def test_the_csv_options_reach_the_run_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a relative path, as typed
    (tmp_path / "data").mkdir()
    _table(tmp_path / "data" / "wine.csv", _two_classes())
    monkeypatch.chdir(tmp_path)
    ran: list[Any] = []
    monkeypatch.setattr(simulate_command, "_run_simulation", lambda s, **_: ran.append(s))
    # Execute
    done = runner.invoke(
        app,
        ["simulate", "--dataset", "csv:data/wine.csv", "--features", "b, a", "--clients", "3"],
    )
    # Assert: the path made absolute, so --resume and the audit find it from anywhere
    assert done.exit_code == 0, done.output
    (settings,) = ran
    assert settings.dataset == f"csv:{tmp_path / 'data' / 'wine.csv'}"
    assert (settings.label_column, settings.features) == ("label", "b,a")


def _one_class(path: Path) -> list[str]:
    _table(path, ["0"] * 40, text=False)  # it trained to accuracy 1.0 and paid rewards
    return ["--dataset", f"csv:{path}"]


def _no_label(path: Path) -> list[str]:
    _table(path, _two_classes())
    return ["--dataset", f"csv:{path}", "--label-column", "quality"]


def _missing_feature(path: Path) -> list[str]:
    _table(path, _two_classes())
    return ["--dataset", f"csv:{path}", "--features", "a,colour"]


def _text_feature(path: Path) -> list[str]:
    _table(path, _two_classes())
    return ["--dataset", f"csv:{path}", "--features", "a,name"]


def _continuous_label(path: Path) -> list[str]:
    _table(path, [str(i / 10) for i in range(40)])
    return ["--dataset", f"csv:{path}"]


def _features_of_a_builtin(path: Path) -> list[str]:
    return ["--dataset", "breast-cancer", "--features", "a"]


def _empty_feature_name(path: Path) -> list[str]:
    _table(path, _two_classes())
    return ["--dataset", f"csv:{path}", "--features", "a,,b"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            _one_class,
            "the label column 'label' has one class ('0'): a classifier cannot learn from it",
        ),
        (
            _no_label,
            "has no label column 'quality'; available columns: 'a', 'b', 'name', 'label'. Name "
            "the right one with --label-column",
        ),
        (
            _missing_feature,
            "has no feature column(s) 'colour'; available columns: 'a', 'b', 'name', 'label'",
        ),
        (_text_feature, "feature column(s) 'name' (e.g. 'N0') hold no numbers"),
        (_continuous_label, "row 2 (line 3), column 'label': label '0.1' is not a class id"),
        (_features_of_a_builtin, "--features and --label-column select the columns of a CSV"),
        (_empty_feature_name, "'a,,b' has an empty name"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_a_csv_that_cannot_be_learnt_is_refused_in_one_line_with_nothing_written(
    make: Any, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    args = make(tmp_path / "table.csv")
    out = tmp_path / "run"
    ran: list[Any] = []
    monkeypatch.setattr(simulate_command, "_run_simulation", lambda s, **_: ran.append(s))
    # Execute
    done = runner.invoke(app, ["simulate", *args, "--clients", "3", "--out", str(out)])
    # Assert
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:")
    assert message in " ".join(done.stderr.split())
    assert not out.exists()
    assert ran == []


def test_task_create_refuses_a_single_class_holdout_before_reaching_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: no deployment and no chain here; the holdout is refused first
    holdout = _table(tmp_path / "holdout.csv", ["benign"] * 20, text=False)
    monkeypatch.chdir(tmp_path)
    # Execute
    done = runner.invoke(app, ["task", "create", "--holdout", f"csv:{holdout}"])
    # Assert
    assert done.exit_code == 2, done.output
    assert "the label column 'label' has one class ('benign')" in " ".join(done.stderr.split())
    assert not (tmp_path / "fedchain-task.toml").exists()
