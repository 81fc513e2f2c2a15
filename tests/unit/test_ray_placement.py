"""Where a simulation's Ray runs: ``--ray-address`` parsed, loopback kept on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ray._private.services import canonicalize_bootstrap_address

from fedchain.errors import FedchainError
from fedchain.simulation.ray_placement import LOOPBACK, ray_init_args, split_address

SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@pytest.mark.parametrize("address", ["", "6379", "head", "head:", ":6379", "head:0", "head:70000"])
def test_an_address_that_is_not_host_and_port_is_refused(address: str) -> None:
    with pytest.raises(FedchainError, match="is not HOST:PORT"):
        split_address(address)


def test_an_address_splits_into_host_and_port() -> None:
    assert split_address("10.0.0.7:6379") == ("10.0.0.7", 6379)
    assert split_address("[::1]:6379") == ("::1", 6379)


@pytest.mark.parametrize("address", ["", "127.0.0.1:6379", "localhost:6379", "[::1]:6379"])
def test_a_ray_on_loopback_keeps_its_loopback_address(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.delenv(SINGLE_MACHINE, raising=False)
    # Execute
    args = ray_init_args(address)
    # Assert
    assert args["_node_ip_address"] == LOOPBACK
    assert args["address"] == (address or "local")
    assert args["include_dashboard"] is False

    assert os.environ[SINGLE_MACHINE] == "0"


def test_a_cluster_elsewhere_keeps_rays_choice_of_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.delenv(SINGLE_MACHINE, raising=False)
    # Execute
    args = ray_init_args("10.0.0.7:6379")
    # Assert
    assert args["address"] == "10.0.0.7:6379"
    assert "_node_ip_address" not in args

    assert SINGLE_MACHINE not in os.environ


def test_a_run_of_its_own_does_not_join_a_cluster_already_running_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``ray start`` cluster (or a test's) records its address in Ray's temporary folder, and
    ``ray.init()`` without an address joins it: a run then shared, and ended with, another's Ray
    (the `flwr run` test hung on a cluster another test had just stopped)."""
    # Prepare: a cluster recorded here, and one named by the environment
    (tmp_path / "ray_current_cluster").write_text("127.0.0.1:6399")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6398")
    # Execute: the address Ray would start or join with these arguments
    joined = canonicalize_bootstrap_address(ray_init_args("")["address"], str(tmp_path))
    # Assert: None means a new Ray of the run's own
    assert joined is None
    assert canonicalize_bootstrap_address(None, str(tmp_path)) is not None  # the defect's path
