"""Ray on loopback: a simulation's own Ray, and a federation across a two-node Ray cluster
(``fedchain simulate --ray-address``); a cluster that does not answer is refused up front."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fedchain.chain.backends import free_port

from ._processes import Started, descendants, stop_all

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = ("--clients", "4", "--rounds", "2", "--chain", "none")
CLUSTER_SCRIPT = Path(__file__).with_name("_ray_cluster.py")


def _start(name: str, command: list[str], tmp_path: Path) -> Started:
    return Started(name, command, tmp_path / f"{name}.log", dict(os.environ), tmp_path)


def _simulate(tmp_path: Path, *options: str) -> Started:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "fedchain", "simulate", *SMALL, "--out", str(out), *options]
    return _start("simulate", command, tmp_path)


def _watch(run: Started, *others: int) -> tuple[set[str], set[int]]:
    """Until ``run`` ends: the addresses its processes and those below ``others`` listen on,
    and the parents (raylets) of the Flower client actors seen."""
    listening: set[str] = set()
    actor_parents: set[int] = set()
    while run.process.poll() is None:
        for pid in [run.pid, *descendants(run.pid), *(p for o in others for p in descendants(o))]:
            try:
                process = psutil.Process(pid)
                if process.cmdline()[:1] and process.cmdline()[0].startswith("ray::ClientApp"):
                    actor_parents.add(process.ppid())
                sockets = process.net_connections(kind="inet")
            except (psutil.Error, IndexError):
                continue  # gone meanwhile
            listening |= {s.laddr.ip for s in sockets if s.status == psutil.CONN_LISTEN}
        time.sleep(0.2)
    return listening, actor_parents


def _not_loopback(addresses: set[str]) -> set[str]:
    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback

    return {ip for ip in addresses if not loopback(ip)}


def _final_hash(tmp_path: Path) -> str:
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    return str(summary["final_model_hash"])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[int], Started]]:
    """A two-node Ray cluster on loopback: its head's address, its raylets, its process."""
    started = _start("cluster", [sys.executable, str(CLUSTER_SCRIPT)], tmp_path)
    try:
        address = started.wait_for(r"address (\S+)", timeout=240)[0].group(1)
        raylets = [int(p) for p in started.wait_for(r"raylets (.+)", 30)[0].group(1).split()]
        yield address, raylets, started
    finally:
        stop_all([started])


def test_a_simulations_own_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    # Execute
    run = _simulate(tmp_path)
    try:
        listening, actor_parents = _watch(run)
    finally:
        stop_all([run])
    # Assert: Ray used to listen on every interface and on the machine's outward address
    assert run.process.returncode == 0, run.tail()
    assert listening, "no listening socket seen: the watch saw nothing of the run"
    assert actor_parents, "no Flower client actor seen"
    assert _not_loopback(listening) == set()


def test_a_federation_runs_across_a_two_node_ray_cluster(
    tmp_path: Path, cluster: tuple[str, list[int], Started]
) -> None:
    # Prepare
    address, raylets, started = cluster
    # Execute
    run = _simulate(tmp_path, "--ray-address", address)
    try:
        listening, actor_parents = _watch(run, started.pid)
    finally:
        stop_all([run])
    # Assert: every round ran, with client actors on both nodes, all on loopback
    assert run.process.returncode == 0, run.tail()
    assert _final_hash(tmp_path).startswith("0x")
    assert actor_parents == set(raylets), (actor_parents, raylets)
    assert _not_loopback(listening) == set()
    assert psutil.Process(started.pid).is_running()  # the run leaves the cluster up


def test_a_cluster_that_does_not_answer_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    # Prepare: a port nothing listens on
    port = free_port()
    out = tmp_path / "run"
    # Execute
    done = subprocess.run(
        [sys.executable, "-m", "fedchain", "simulate", *SMALL, "--out", str(out),
         "--ray-address", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Assert
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Ray cluster answers at 127.0.0.1" in done.stderr
    assert "--ray-address" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()
