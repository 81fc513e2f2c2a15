"""Where a simulation's clients run: a Ray started for the run on this machine's loopback, or an
existing Ray cluster named by ``--ray-address``.

Ray replaces a node address of 127.0.0.1 with the machine's outward address unless its
single-machine mode is on (``ray._private.services.resolve_ip_for_localhost``; the mode is the
environment variable below, read when Ray is imported and inherited by its workers). A loopback
node then binds its servers to loopback. A cluster elsewhere keeps Ray's own choice: its nodes
must reach this driver.

A run of its own passes ``address="local"``: without an address ``ray.init`` joins the cluster
last recorded in Ray's temporary folder (``ray start``, or a test's ``ray.cluster_utils.Cluster``,
writes ``/tmp/ray/ray_current_cluster``) or named by ``RAY_ADDRESS``, and a run would share,
and end with, someone else's Ray.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from fedchain.settings import SettingsError

__all__ = ["LOOPBACK", "RAY_PROBE_TIMEOUT_S", "probe_ray", "ray_init_args", "split_address"]

LOOPBACK = "127.0.0.1"
#: Seconds a cluster's head gets to accept a connection before the run is refused.
RAY_PROBE_TIMEOUT_S = 5.0
#: "0": Ray keeps 127.0.0.1 as the node's address (its single-machine mode).
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` of a Ray head (its GCS), as ``ray start --head`` prints it.

    Raises
    ------
    SettingsError
        If ``address`` is not ``HOST:PORT`` with a port in 1..65535.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(
            f"ray-address {address!r} is not HOST:PORT, the address `ray start --head` prints "
            "(e.g. 127.0.0.1:6379)"
        )
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def ray_init_args(address: str) -> dict[str, Any]:
    """``ray.init``'s arguments for a run on ``address`` ("" = a Ray of its own on loopback).

    Sets Ray's single-machine mode in this process's environment when the node is on loopback:
    call it before Ray is imported.
    """
    args: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR"}
    args["address"] = address or "local"  # "local": a new Ray, whatever else runs here
    if not address or _is_loopback(split_address(address)[0]):
        os.environ[_SINGLE_MACHINE_ENV] = "0"
        args["_node_ip_address"] = LOOPBACK
    return args


def probe_ray(address: str, timeout_s: float = RAY_PROBE_TIMEOUT_S) -> None:
    """Refuse a ``--ray-address`` whose head does not accept a connection.

    Raises
    ------
    SettingsError
        If ``address`` is malformed or nothing listens there within ``timeout_s``.
    """
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise SettingsError(
            f"no Ray cluster answers at {address} (--ray-address): {exc.strerror or exc}; "
            "start one with `ray start --head`, or leave the option out to run on this machine"
        ) from None
