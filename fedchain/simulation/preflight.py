"""What a simulation checks before anything starts: its output directory, and options that
cannot work.

A refused run writes nothing: these checks read the output directory, the data and the node at
``rpc-url``, and create nothing. Without them an option that cannot work (exact Shapley over too
many participants, the cnn on a table, a node that is not there) failed only after Ray had
started, or after round 1 had trained, leaving a half-written directory.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from fedchain.chain.errors import ChainUnreachable
from fedchain.errors import RunExistsError
from fedchain.federation.merkle_rounds import ROUNDS_DIR
from fedchain.federation.resume import ROUNDS_FILE, RUN_FILE
from fedchain.settings import RunSettings, SettingsError

__all__ = [
    "NODE_PROBE_TIMEOUT_S",
    "RUN_ENTRIES",
    "RunExistsError",
    "blocking_file",
    "check_out",
    "check_runnable",
    "check_store",
    "clear_run",
    "probe_node",
    "run_entries",
]

#: Everything a run writes into its directory (the federation's journal, chain, store and
#: artifacts, the report), each also as NAME.tmp while written. A directory holding any of them
#: holds a run; replacing that run deletes exactly these and nothing else of the directory.
RUN_ENTRIES = (
    RUN_FILE,
    ROUNDS_FILE,
    "task.json",
    "deployment.json",
    "store",
    "chain",
    ROUNDS_DIR,
    "summary.json",
    "ledger.json",
    "final_model.safetensors",
    "accuracy.png",
    "rewards.png",
    "report.html",
)
#: Seconds the node at ``rpc-url`` has to answer ``eth_chainId`` before the run is refused.
NODE_PROBE_TIMEOUT_S = 5.0


def blocking_file(out: Path) -> Path | None:
    """The file (``out`` itself or an ancestor) that keeps ``out`` from being a directory."""
    for path in (out, *out.parents):
        if path.exists() or path.is_symlink():
            return None if path.is_dir() else path
    return None


def run_entries(out: Path) -> list[Path]:
    """The entries of ``RUN_ENTRIES`` (and their ``.tmp`` files) in ``out``: a run is there if
    any is."""
    names = [*RUN_ENTRIES, *(name + ".tmp" for name in RUN_ENTRIES)]
    return [out / name for name in names if (out / name).exists() or (out / name).is_symlink()]


def clear_run(out: Path) -> list[Path]:
    """Delete the run in ``out`` (exactly ``RUN_ENTRIES``); return what was deleted.

    The caller has the user's consent (``--overwrite``); anything else in ``out`` is kept.
    """
    found = run_entries(out)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return found


def check_out(out: Path, overwrite: bool, *, option: str, replace: str, resume: str) -> None:
    """Refuse an output directory that is a file (or under one), or holds a run unless
    ``overwrite``. The message names the caller's ``option`` for the directory and how it asks
    to ``replace`` or ``resume`` a run (``--overwrite`` on the command line, ``overwrite=True``
    in Python). Creates nothing.

    Raises
    ------
    RunExistsError
        If ``out`` is a file or lies under one, or holds a run and ``overwrite`` is false.
    """
    blocking = blocking_file(out)
    if blocking is not None:
        where = "is a file" if blocking == out else f"cannot be a directory: {blocking} is a file"
        raise RunExistsError(f"{option} {out} {where}: choose a directory for the run's artifacts")
    found = run_entries(out)
    if found and not overwrite:
        names = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise RunExistsError(
            f"{out} already holds a run ({names}): {replace} to replace it, {resume} to go on "
            f"with it, or choose another {option}"
        )


def check_runnable(settings: RunSettings) -> None:
    """Refuse options a run of ``settings`` could not get through, before anything starts.

    Checks that the contribution method can score the rounds' participants, that the data, its
    holdout and the initial model can be built (as round 1 builds them: the cnn needs images),
    that the content store can be written (a URL answers, a folder is not a file) and that the
    node at ``rpc-url`` answers.

    Raises
    ------
    fedchain.errors.FedchainError
        The first check that fails, saying what to change: a SettingsError, a DatasetError or
        ModelError from building the task, StoreUnreachable, ChainUnreachable.
    """
    _check_workload(settings)
    _check_scorer(settings)
    _check_privacy(settings)
    check_store(settings.store)
    from fedchain.federation.coordinator import task_spec

    task_spec(settings)  # the dataset, holdout and initial model, as the run builds them
    if settings.chain == "rpc":
        probe_node(settings.rpc_url)
    if settings.ray_address:
        from fedchain.simulation.ray_placement import probe_ray

        probe_ray(settings.ray_address)


def check_store(store: str) -> None:
    """Refuse a content store a run could not write to, creating nothing: a URL whose store
    does not answer (one listing, with a short timeout), or a folder under a file. "" is the
    run's own ``<out>/store``, checked with ``out``.

    Raises
    ------
    fedchain.storage.StoreUnreachable
        If the URL's protocol is unknown, its driver missing, or its store does not answer.
    SettingsError
        If the folder cannot be one: it or an ancestor is a file.
    """
    from fedchain.storage import is_remote, local_path
    from fedchain.store import ModelStore

    if not store:
        return
    if is_remote(store):
        ModelStore(store).check()
        return
    folder = Path(local_path(store))
    blocking = blocking_file(folder)
    if blocking is not None:
        raise SettingsError(f"store {store} cannot be a folder: {blocking} is a file")


def _check_workload(settings: RunSettings) -> None:
    """The partition scheme, the model name, the data's columns and classes, and enough rows
    for every client after the holdout."""
    from fedchain.federation.workload import run_dataset
    from fedchain.ml.data import SYNTHETIC, SYNTHETIC_DEFAULT_SIZE, split_holdout
    from fedchain.ml.models import ALL_MODEL_NAMES
    from fedchain.ml.partition import MIN_CLIENT_SAMPLES, parse_partition_scheme

    parse_partition_scheme(settings.partition)
    if settings.model not in ("auto", *ALL_MODEL_NAMES):
        raise SettingsError(f"unknown model {settings.model!r}: auto, {', '.join(ALL_MODEL_NAMES)}")
    data = run_dataset(settings)  # a CSV's columns and classes checked here
    train, _ = split_holdout(data, settings.holdout_fraction, settings.seed)
    needed = MIN_CLIENT_SAMPLES * settings.num_clients
    if len(train) < needed:
        # Rows that leave MIN_CLIENT_SAMPLES per client after the holdout (per-class rounding
        # of the stratified split can take a few more).
        rows = int(needed / (1 - settings.holdout_fraction)) + 10
        raise SettingsError(
            f"{len(train)} training examples of {settings.dataset} cannot give "
            f"{settings.num_clients} clients {MIN_CLIENT_SAMPLES} examples each: use fewer "
            f"clients or more data, e.g. --dataset {SYNTHETIC} (generated, "
            f"{SYNTHETIC_DEFAULT_SIZE:,} rows) or {SYNTHETIC}:N with N >= {rows}"
        )


def _check_privacy(settings: RunSettings) -> None:
    """With DP, that the cap can be reached over the planned rounds by the smallest client
    (the one needing the most noise): an epsilon too small for any noise is refused here, not
    by every client in round 1."""
    if settings.privacy is None:
        return
    from fedchain.federation.workload import client_data
    from fedchain.ml.privacy import noise_multiplier

    sizes = [len(client_data(settings, p)) for p in range(settings.num_clients)]
    noise_multiplier(
        settings.privacy,
        dataset_size=min(sizes),
        batch_size=settings.batch_size,
        local_epochs=settings.local_epochs,
        rounds=settings.dp_planned_rounds,
    )


def _check_scorer(settings: RunSettings) -> None:
    from fedchain.contribution.shapley import MAX_SHAPLEY_PARTICIPANTS
    from fedchain.robust import sampled_count

    sampled = min(settings.num_clients, sampled_count(settings, settings.num_clients))
    if settings.contribution == "shapley" and sampled > MAX_SHAPLEY_PARTICIPANTS:
        raise SettingsError(
            f"contribution shapley scores at most {MAX_SHAPLEY_PARTICIPANTS} participants a "
            f"round (it evaluates all 2**n coalitions), but num-clients {settings.num_clients} "
            f"with fraction-train {settings.fraction_train:g} samples {sampled}: use the gtg "
            "method (its Monte-Carlo estimate) or sample fewer clients"
        )


def probe_node(url: str, timeout_s: float = NODE_PROBE_TIMEOUT_S) -> int:
    """The chain id of the node at ``url``, asked once with a short timeout.

    Raises
    ------
    ChainUnreachable
        If nothing answers there as an Ethereum JSON-RPC node within ``timeout_s``.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SettingsError(f"rpc-url {url} is not an http:// or https:// URL of a node")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
        return int(answer["result"], 16)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # URLError is an OSError
        raise ChainUnreachable(url, _reason(exc)) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return "the answer is not a JSON-RPC chain id"
    return str(exc)
