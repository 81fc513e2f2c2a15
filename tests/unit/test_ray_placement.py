"""Where a simulation's Ray runs: ``--ray-address`` parsed, loopback kept on loopback."""

from __future__ import annotations

import os

import pytest

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
    assert args.get("address", "") == address
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
