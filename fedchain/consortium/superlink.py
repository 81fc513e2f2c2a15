"""fedchain's SuperLink: Flower's ``flower-superlink``, with its control plane kept local and
the coordinator's bundle signatures served to the SuperNodes.

Flower 1.41 serves its Fleet API (SuperNodes), Control API (``flwr`` commands: submit runs,
register SuperNodes) and Runtime API (the ServerApp) over one HTTP port. The open-source
SuperLink authenticates SuperNodes (``--enable-supernode-auth``), but not the users of its
Control API (account authentication is an enterprise plugin). So this process adds, through
Flower's SuperLink middleware extension hook, one rule: Control and Runtime requests are served
only to peers on this machine (the loopback, or the address the SuperLink was told to listen
on); anyone else gets 403. The coordinator reaches the Control API from elsewhere through an
SSH tunnel (docs/consortium.md).

It also attaches to each bundle (FAB) a SuperNode fetches the verification records ``fedchain
server run`` wrote when it signed that bundle (:mod:`fedchain.consortium.app_signing`), so the
hospitals' SuperNodes can verify it against the key they pinned (``--trusted-entities``).

Run as ``python -m fedchain.consortium.superlink [fedchain options] [flower-superlink
options]`` (``fedchain server start`` does). Files it creates are private (umask 077).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LocalControlPlane", "is_local", "main"]

#: The path prefixes of the APIs only the coordinator's machine may use.
LOCAL_ONLY_PREFIXES = ("/v1/control", "/v1/runtime")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_local(host: str, own: Sequence[str] = ()) -> bool:
    """Whether a peer address is this machine: a loopback address or one the SuperLink binds."""
    if host in own:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class LocalControlPlane:
    """ASGI middleware: Control and Runtime API requests from other machines get 403."""

    def __init__(self, app: App, own_hosts: Sequence[str] = ()) -> None:
        self.app = app
        self.own_hosts = tuple(own_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(LOCAL_ONLY_PREFIXES):
            client = scope.get("client")
            host = str(client[0]) if client else ""
            if not is_local(host, self.own_hosts):
                await _forbidden(send, host)
                return
        await self.app(scope, receive, send)


async def _forbidden(send: Send, host: str) -> None:
    body = (
        f"fedchain: the SuperLink's control plane serves this machine only, not {host}; "
        "reach it through an SSH tunnel (docs/consortium.md)\n"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _install(own_hosts: Sequence[str], signatures: Path) -> None:
    """Add the middleware through Flower's extension hook; serve bundle signatures."""
    from flwr.superlink import extensions
    from flwr.superlink.servicer.fleet import fleet_handlers
    from starlette.middleware import Middleware

    from fedchain.consortium.app_signing import signature_records

    flower_middleware = extensions.get_middleware

    def get_middleware() -> tuple[Middleware, ...]:
        return (*flower_middleware(), Middleware(LocalControlPlane, own_hosts=own_hosts))

    flower_get_fab = fleet_handlers.get_fab

    def get_fab(request: Any, state: Any) -> Any:
        response = flower_get_fab(request, state)
        if response.HasField("fab"):
            response.fab.verifications.clear()  # only the coordinator's signatures count
            response.fab.verifications.update(signature_records(signatures, response.fab.hash_str))
        return response

    extensions.get_middleware = get_middleware
    fleet_handlers.get_fab = get_fab


def main(argv: Sequence[str] | None = None) -> None:
    """Start Flower's SuperLink with fedchain's local control plane and signed bundles."""
    signed = argparse.ArgumentParser(add_help=False)
    signed.add_argument("--app-signatures", type=Path, required=True)
    ours, flower = signed.parse_known_args(argv)
    listens = argparse.ArgumentParser(add_help=False)
    listens.add_argument("--host", default="127.0.0.1")
    host = str(listens.parse_known_args(flower)[0].host)
    os.umask(0o077)  # the database, the object store, the logs: the coordinator's only
    ours.app_signatures.mkdir(mode=0o700, parents=True, exist_ok=True)
    own = [host] if host not in ("0.0.0.0", "::") else []
    _install(own, ours.app_signatures.resolve())
    from flwr.superlink.cli.flower_superlink import flower_superlink

    sys.argv = ["flower-superlink", *flower]
    flower_superlink()


if __name__ == "__main__":
    main()
