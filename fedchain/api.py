"""The Python API: run a federation, open its run directory, audit it, verify a model, report.

The functions are re-exported by the package (``fedchain.simulate``, ``fedchain.audit_run``,
...; see docs/api.md). The audit and the report are ``audit_run`` and ``write_report``, not
``audit`` and ``report``: those names are the subpackages ``fedchain.audit`` and
``fedchain.report``, and importing a subpackage sets the package's attribute of that name to it.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.errors import FedchainError, RunExistsError, SettingsError
from fedchain.settings import OPTION_FIELDS, RunSettings

if TYPE_CHECKING:
    from fedchain.audit import ModelProvenance, Verdict
    from fedchain.federation.round_report import RoundReport

__all__ = [
    "ENGINES",
    "NoRunError",
    "Run",
    "RunExistsError",
    "audit_run",
    "check_out",
    "run_settings",
    "simulate",
    "verify_model",
    "write_report",
]

#: Flower's simulation engine (Ray, as ``fedchain simulate``), or every client in this process.
ENGINES = ("flower", "inprocess")
#: Options whose None means their default, as on the command line.
_NONE_IS_DEFAULT = frozenset({"rpc_url"})
#: Options that name CSV columns or classes: "a,b,c" as on the command line, or a list.
_NAME_LISTS = frozenset({"features", "classes"})


class NoRunError(FedchainError, FileNotFoundError):
    """No run at the path given."""


@dataclass(frozen=True)
class Run:
    """A run directory and what its summary.json says.

    Attributes
    ----------
    out : Path
        The run directory (``out=`` of :func:`simulate`, ``--out`` of ``fedchain simulate``).
    summary : dict
        summary.json as written by the run (its fields: docs/simulation.md).
    rounds : tuple of dict
        ``summary["rounds"]``: each round's models, evaluation, gas and participants.
    rewards : dict of str to int
        Each participant's total reward over the run, in token base units (10**18 per token).
    final_model : Path
        ``out / "final_model.safetensors"``.
    final_model_hash : str
        Its SHA-256 as ``0x...`` hex, as recorded on chain.
    """

    out: Path
    summary: dict[str, Any] = field(repr=False)
    rounds: tuple[dict[str, Any], ...] = field(repr=False)
    rewards: dict[str, int]
    final_model: Path
    final_model_hash: str

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """The run in directory ``path`` (one a run finished writing: it holds summary.json).

        Raises
        ------
        NoRunError
            If ``path`` holds no summary.json.
        """
        out = Path(path)
        document = out / "summary.json"
        if not document.is_file():
            raise NoRunError(
                f"no run at {out}: expected summary.json there; run one with "
                f"fedchain.simulate(out={str(out)!r}) or `fedchain simulate --out {out}`"
            )
        try:
            summary: dict[str, Any] = json.loads(document.read_text())
        except json.JSONDecodeError as exc:
            raise NoRunError(f"{document} is not JSON ({exc}): run the simulation again") from exc
        return cls(
            out=out,
            summary=summary,
            rounds=tuple(summary["rounds"]),
            rewards={address: int(amount) for address, amount in summary["rewards"].items()},
            final_model=out / "final_model.safetensors",
            final_model_hash=str(summary["final_model_hash"]),
        )


def run_settings(**options: Any) -> RunSettings:
    """The RunSettings ``fedchain simulate`` would build from these options.

    Options are the command line's, in Python spelling (``clients``, ``rounds``, ``lr``,
    ``fraction``, ``rpc_url``, ...), or RunSettings' field names (``num_clients``, ...). As on
    the command line, ``rpc_url`` selects the chain ``rpc``, the strategy name is
    case-insensitive, and a ``csv:PATH`` dataset is named by its absolute path. ``features``
    is ``"a,b,c"`` or a list of column names.

    Raises
    ------
    fedchain.errors.SettingsError
        For an unknown option, one given under both its names, a value of the wrong type, or
        one RunSettings refuses.
    """
    kinds = {f.name: type(getattr(RunSettings(), f.name)) for f in fields(RunSettings)}
    values: dict[str, Any] = {}
    for name, value in options.items():
        target = OPTION_FIELDS.get(name, name)
        if target not in kinds:
            raise SettingsError(_unknown(name, [*OPTION_FIELDS, *kinds]))
        if target in values:
            alias = next(cli for cli, f in OPTION_FIELDS.items() if f == target)
            raise SettingsError(f"give {alias} or {target}, not both: they are the same option")
        if value is None and target in _NONE_IS_DEFAULT:
            continue  # as the command line's default: no node
        listed = target in _NAME_LISTS and isinstance(value, (list, tuple))
        values[target] = _checked(name, _names(name, value) if listed else value, kinds[target])
    if values.get("rpc_url") and values.setdefault("chain", "rpc") != "rpc":
        raise SettingsError(
            f"chain={values['chain']!r} with an rpc_url: drop rpc_url, or drop chain "
            "(an rpc_url selects the node at that URL)"
        )
    return RunSettings(**_as_the_command_line(values))


def _as_the_command_line(values: dict[str, Any]) -> dict[str, Any]:
    """What ``fedchain simulate`` does to its options besides naming them."""
    from fedchain.ml.data import absolute_dataset_spec
    from fedchain.task import decode_names, encode_names

    if "strategy" in values:
        values["strategy"] = values["strategy"].lower()
    if "dataset" in values:  # a CSV by its absolute path: the same file from any directory
        values["dataset"] = absolute_dataset_spec(values["dataset"])
    for name in _NAME_LISTS & set(values):
        values[name] = encode_names(decode_names(values[name]))
    return values


def _names(name: str, value: list[Any] | tuple[Any, ...]) -> str:
    """A list of column or class names as the one string the settings hold."""
    from fedchain.task import encode_names

    if not all(isinstance(n, str) for n in value):
        raise SettingsError(f"{name} must be column names (str), not {value!r}")
    return encode_names(value)


def _unknown(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown option {name!r}{hint}: the options are {', '.join(sorted(valid))}"


def _checked(name: str, value: Any, kind: type) -> Any:
    """``value`` as the field's type; ints pass as floats, paths as the out directory."""
    if kind is str and name == "out" and isinstance(value, os.PathLike):
        return os.fspath(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if name == "dp" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)  # dp=8: the epsilon alone, as --dp 8
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise SettingsError(f"{name} must be a {kind.__name__}, not {type(value).__name__} {value!r}")


def check_out(out: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Refuse an output directory that holds a run, unless ``overwrite``, or that is a file.

    The command line's check (``--out``, ``--overwrite``): it creates nothing.

    Raises
    ------
    RunExistsError
        If ``out`` is a file or lies under one, or holds a run and ``overwrite`` is false.
    """
    from fedchain.simulation import preflight

    path = Path(out)
    preflight.check_out(
        path,
        overwrite,
        option="out",
        replace="pass overwrite=True",
        resume=f"resume={str(path)!r}",
    )


def simulate(
    *,
    engine: str = "flower",
    overwrite: bool = False,
    resume: str | os.PathLike[str] | None = None,
    on_round: Callable[[RoundReport], None] | None = None,
    **options: Any,
) -> Run:
    """Run a simulated federation, as ``fedchain simulate`` does, and return its run.

    Parameters
    ----------
    engine : {"flower", "inprocess"}
        ``"flower"``: Flower's simulation engine (Ray, one worker per core), as the command
        line. ``"inprocess"``: every client in this process, one after the other; no Ray start,
        the same models and hashes for a seed.
    overwrite : bool
        Replace a run already in ``out``: its files are deleted first (exactly those a run
        writes; anything else in ``out`` stays). Without it such an ``out`` is refused.
    resume : path, optional
        Go on with the killed run in this directory from the last round on chain, with its own
        settings (no other option may be given). Flower engine only.
    on_round : callable, optional
        Called with each round's ``RoundReport`` as the round ends.
    **options
        The options of ``fedchain simulate``, see :func:`run_settings`.

    Raises
    ------
    fedchain.errors.SettingsError
        For a bad option, or options that cannot work together (checked before anything
        starts, as the command line checks them).
    RunExistsError
        If ``out`` holds a run and ``overwrite`` is false, or is a file.
    fedchain.errors.FedchainError
        If the run cannot start or finish (an unreachable node, data that cannot be split, ...).
    """
    if engine not in ENGINES:
        raise SettingsError(f"unknown engine {engine!r}: {' or '.join(map(repr, ENGINES))}")
    if resume is not None:
        return _resume(Path(resume), engine, on_round, options)
    settings = run_settings(**options)
    from fedchain.simulation.preflight import check_runnable, clear_run

    check_out(settings.out_dir, overwrite)
    check_runnable(settings)  # scorer limits, the model for the data, the node: nothing written
    if overwrite:
        clear_run(settings.out_dir)  # exactly the old run's files; anything else stays
    if engine == "inprocess":
        from fedchain.simulation.inprocess import run_inprocess

        _quiet_flower()  # after Flower's import, which sets its logger's level
        run_inprocess(settings, on_round)
    else:
        from fedchain.simulation.flower_engine import simulate as run_flower

        run_flower(settings, on_round)
    return Run.open(settings.out_dir)


def _resume(
    out: Path, engine: str, on_round: Callable[[RoundReport], None] | None, options: dict[str, Any]
) -> Run:
    if options:
        raise SettingsError(
            f"resume goes on with the run's own settings: drop {', '.join(sorted(options))}"
        )
    if engine != "flower":
        raise SettingsError("resume runs on engine='flower': drop engine='inprocess'")
    from fedchain.federation.resume import load_run_settings
    from fedchain.simulation.flower_engine import simulate as run_flower

    run_flower(load_run_settings(out), on_round, resume=True)
    return Run.open(out)


def _quiet_flower() -> None:
    # As `fedchain simulate`: Flower's per-round INFO lines would bury a notebook's output.
    logging.getLogger("flwr").setLevel(logging.ERROR)


def _run_dir(run: Run | str | os.PathLike[str]) -> Path:
    return run.out if isinstance(run, Run) else Path(run)


def audit_run(
    run: Run | str | os.PathLike[str],
    *,
    recompute: bool = False,
    rpc_url: str | None = None,
    data: str | os.PathLike[str] | None = None,
    store: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Audit a run from its chain and store, as ``fedchain audit --run DIR``.

    Parameters
    ----------
    run : Run or path
        The run, or its directory.
    recompute : bool
        Also recompute every round's aggregation, evaluation, scores and rewards
        (``fedchain audit --recompute``).
    rpc_url : str, optional
        A node holding the run's chain, instead of the chain saved with the run.
    data : path, optional
        A CSV task's data file to recompute with (``fedchain audit --data``), checked against
        the hash in the task spec first; by default the file the run's settings name.
    store : str or path, optional
        The content store, a folder or an fsspec URL (``fedchain audit --store``); by default
        the run's own.

    Returns
    -------
    fedchain.audit.Verdict
        ``verdict.ok`` only when every check passed; ``verdict.checks`` lists each row.

    Raises
    ------
    fedchain.audit.AuditError
        If the directory holds no auditable run (no summary.json, no ledger, a chain gone),
        or ``data`` is not the task's.
    """
    from fedchain.audit import audit_run as audit_dir

    path = Path(data) if data is not None else None
    return audit_dir(
        _run_dir(run),
        recompute=recompute,
        rpc_url=rpc_url,
        data=path,
        store=None if store is None else str(store),
    )


def verify_model(
    path: str | os.PathLike[str],
    run: Run | str | os.PathLike[str],
    *,
    rpc_url: str | None = None,
    store: str | os.PathLike[str] = "",
) -> ModelProvenance:
    """Hash a model file and find where the run's ledger recorded it (``fedchain verify-model``).

    Returns
    -------
    fedchain.audit.ModelProvenance
        ``recorded`` says whether the ledger holds the hash; ``sightings`` where (task, round,
        global model, update or initial model); ``round_of(sighting)`` that round's
        evaluation, commitments and rewards.

    Raises
    ------
    fedchain.audit.AuditError
        If ``path`` is no file or the run's chain cannot be reached.
    """
    from fedchain.audit import open_ledger
    from fedchain.audit import verify_model as find

    out = _run_dir(run)
    source = open_ledger(run=out, rpc_url=rpc_url)
    try:
        return find(Path(path), source, out, str(store))
    finally:
        source.close()


def write_report(
    run: Run | str | os.PathLike[str],
    *,
    recompute: bool = False,
    dest: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the run's self-contained HTML report (``fedchain report``); return its path.

    The report shows the audit's verdict (audited here, ``recompute`` as in
    :func:`audit_run`) unless the run had no ledger. Default ``dest``: ``<out>/report.html``.
    """
    from fedchain.report import write_report as write

    opened = Run.open(_run_dir(run))
    verdict = None
    if opened.summary["chain"]["kind"] != "none":
        verdict = audit_run(opened, recompute=recompute).to_json()
    return write(opened.out, verdict, Path(dest) if dest is not None else None)
