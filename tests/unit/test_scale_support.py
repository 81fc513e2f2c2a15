"""The pieces that let a thousand clients run on one machine, each on its own."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
import sklearn.datasets as sk_datasets
from _cli_here import fedchain_here
from threadpoolctl import threadpool_info

from fedchain.federation import workload
from fedchain.ml.data import (
    SYNTHETIC_DEFAULT_SIZE,
    dataset_hash,
    load_dataset,
    load_synthetic,
    parse_dataset_spec,
)
from fedchain.ml.errors import DatasetError, TrainingError
from fedchain.ml.threads import blas_threads
from fedchain.settings import RunSettings
from fedchain.simulation import _dispatch
from fedchain.simulation.memory import PeakMemory, tree_rss

# --- peak memory of the process tree ---


def test_the_peak_counts_the_memory_of_child_processes() -> None:
    # Prepare: a child that holds 200 MiB until told to exit
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; x = bytearray(200 * 2**20); x[::4096] = b'1' * "
         "len(x[::4096]); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        alone = psutil.Process().memory_info().rss
        # Execute
        with PeakMemory(interval_s=0.05) as memory:
            memory.sample(relist=True)
    finally:
        child.communicate("")
    # Assert
    assert memory.peak.processes >= 2
    assert memory.peak.rss_bytes >= alone + 200 * 2**20


def test_tree_rss_of_this_process_alone() -> None:
    sample = tree_rss(psutil.Process(), members=[psutil.Process()])
    assert sample.processes == 1
    assert sample.rss_bytes == pytest.approx(psutil.Process().memory_info().rss, rel=0.1)


def test_a_sampling_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        PeakMemory(interval_s=0)


# --- client data built lazily ---


def test_client_data_is_built_on_demand_and_not_kept_per_client() -> None:
    # Prepare
    settings = RunSettings(num_clients=1000, dataset="synthetic", partition="dirichlet:0.5")
    workload._client_data.cache_clear()
    workload._partition.cache_clear()
    # Execute
    sizes = [len(workload.client_data(settings, p)) for p in range(0, 1000, 25)]
    again = workload.client_data(settings, 0)
    # Assert
    assert min(sizes) >= 2
    assert workload._client_data.cache_info().currsize <= workload._CLIENT_DATA_CACHE
    assert workload._partition.cache_info().currsize == 1  # one index map for all clients
    assert len(again) == sizes[0]


def test_each_client_gets_its_own_disjoint_share() -> None:
    # Prepare
    settings = RunSettings(num_clients=1000, dataset="synthetic", partition="iid")
    # Execute
    shares = [workload.client_data(settings, p).features for p in (0, 1, 999)]
    # Assert: different rows (a shared row would appear in both, standardized alike or not)
    assert all(len(s) == 16 for s in shares)
    assert not (shares[0] == shares[1]).all()


# --- one-pass dispatch of the simulation engine ---


@dataclass
class _Metadata:
    dst_node_id: int
    delivered_at: str = ""


@dataclass
class _Message:
    metadata: _Metadata


@dataclass
class _State:
    """The three members of Flower's InMemoryLinkState that the dispatch uses."""

    message_ins_store: dict[str, Any]
    lock: threading.RLock = field(default_factory=threading.RLock)
    expired: set[str] = field(default_factory=set)

    def _check_stored_messages(self, message_ids: set[str]) -> None:
        for message_id in message_ids & self.expired:
            del self.message_ins_store[message_id]


def test_pending_messages_hands_out_one_undelivered_message_per_node() -> None:
    # Prepare
    store = {
        "a": _Message(_Metadata(1)),
        "b": _Message(_Metadata(1)),  # a second message for node 1 waits for the next sweep
        "c": _Message(_Metadata(2, delivered_at="earlier")),  # already delivered
        "d": _Message(_Metadata(3)),  # expired: the link state drops it
        "e": _Message(_Metadata(4)),
        "f": _Message(_Metadata(99)),  # not a node of this simulation
    }
    state = _State(store, expired={"d"})
    # Execute
    first = _dispatch.pending_messages(state, {1, 2, 3, 4})
    second = _dispatch.pending_messages(state, {1, 2, 3, 4})
    third = _dispatch.pending_messages(state, {1, 2, 3, 4})
    # Assert
    assert first == [store["a"], store["e"]]
    assert second == [store["b"]]
    assert third == []
    assert "d" not in state.message_ins_store
    assert all(store[k].metadata.delivered_at for k in "abe")
    assert store["f"].metadata.delivered_at == ""


def test_the_dispatch_is_installed_only_on_the_flower_it_was_written_for() -> None:
    from flwr.server.superlink.fleet.vce import vce_api

    # Execute
    installed = _dispatch.install()
    # Assert
    assert installed is True
    assert getattr(vce_api.add_messages_to_queue, "fedchain_dispatch", False)
    assert _dispatch.install() is True  # idempotent


# --- a dataset for a thousand clients ---


@pytest.mark.parametrize(
    ("spec", "size"), [("synthetic", None), (" Synthetic:5000 ", 5000), ("synthetic:1_000", 1000)]
)
def test_synthetic_specs(spec: str, size: int | None) -> None:
    parsed = parse_dataset_spec(spec)
    assert (parsed.kind, parsed.size) == ("synthetic", size)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("synthetic:many", "not a number of rows"), ("synthetic:5", "10 to 1,000,000 rows")],
)
def test_bad_synthetic_specs_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as caught:
        parse_dataset_spec(spec)
    assert isinstance(caught.value, ValueError)


def test_the_synthetic_dataset_is_the_same_rows_every_time() -> None:
    # Execute
    first, second = load_dataset("synthetic:500"), load_synthetic(500)
    # Assert
    assert first.features.shape == (500, 20)
    assert first.num_classes == 4
    assert set(first.labels.tolist()) == {0, 1, 2, 3}
    assert dataset_hash(first) == dataset_hash(second)
    assert len(load_dataset("synthetic")) == SYNTHETIC_DEFAULT_SIZE


# --- synthetic data generated beside a fork (the suite's OpenBLAS hang) ---

#: A thread generates the synthetic rows while the main thread forks, as Flower's ServerApp
#: thread does while Ray starts its processes. 100,000 rows take OpenBLAS's threaded kernel on
#: every CPU (20,000 rows do only where OPENBLAS_CORETYPE picks an older kernel).
_GENERATE_BESIDE_FORKS = """
import os, sys, threading, time
from fedchain.ml.data import load_synthetic
loads = []
def generate():
    for _ in range(3):
        load_synthetic(100_000)
        loads.append(1)
thread = threading.Thread(target=generate, daemon=True)
thread.start()
forks, deadline = 0, time.monotonic() + 30
while thread.is_alive() and time.monotonic() < deadline:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    forks += 1
print(forks, len(loads), flush=True)
os._exit(0 if not thread.is_alive() else 3)
"""


def test_synthetic_data_generated_in_a_thread_survives_forks_of_another_thread() -> None:
    # Execute: in a child process, so a hung BLAS call cannot take the suite with it
    done = subprocess.run(
        [sys.executable, "-c", _GENERATE_BESIDE_FORKS],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Assert
    assert done.returncode == 0, f"the generating thread hung: {done.stdout}{done.stderr[-2000:]}"
    forks, loads = map(int, done.stdout.split())
    assert loads == 3
    assert forks >= 3  # the forks did overlap the generation


def test_synthetic_data_is_generated_with_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: record the BLAS libraries' thread counts while the rows are generated
    seen: list[int] = []
    generate = sk_datasets.make_classification

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return generate(*args, **kwargs)

    monkeypatch.setattr(sk_datasets, "make_classification", recording)
    before = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    # Execute
    load_synthetic(100)
    # Assert
    assert seen
    assert set(seen) == {1}
    assert [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"] == (
        before
    )


def test_blas_threads_limits_and_restores_every_blas_library() -> None:
    # Prepare
    def counts() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = counts()
    # Execute
    with blas_threads(1):
        inside = counts()
    # Assert
    assert inside
    assert set(inside) == {1}
    assert counts() == before
    with pytest.raises(TrainingError, match="at least 1"), blas_threads(0):
        pass


def test_too_many_clients_for_a_dataset_is_refused_before_anything_starts() -> None:
    # Execute
    done = fedchain_here("simulate", "--clients", "1000", "--chain", "none")  # in this process
    # Assert
    assert done.returncode == 2
    error = " ".join(done.stderr.split())
    assert "456 training examples of breast-cancer cannot give 1000 clients 2 examples each" in (
        error
    )
    assert "--dataset synthetic" in error
