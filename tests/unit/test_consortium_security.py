"""The consortium's control plane, signed bundles, secrets and files (issue 19, items 2 and 3)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from flwr.supercore.fab import Fab
from flwr.supernode.cli.flower_supernode import _try_obtain_trusted_entities
from flwr.supernode.start_client_internal import _verify_fab

from fedchain.chain.accounts import (
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    environment_password,
)
from fedchain.chain.errors import KeystoreError
from fedchain.consortium.app_signing import (
    create_app_key,
    sign_bundle,
    signature_records,
    write_trusted_entities,
)
from fedchain.consortium.certs import create_ca
from fedchain.consortium.deployment import flower_env, superlink_command
from fedchain.consortium.superlink import LocalControlPlane


def _sha(bundle: bytes) -> str:
    return hashlib.sha256(bundle).hexdigest()


BUNDLE = b"PK\x03\x04 a Flower App Bundle, for the test"


def _call(path: str, client: str) -> int:
    """The status the middleware answers a request from ``client`` with (200: passed on)."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "client": (client, 50000)}
    asyncio.run(LocalControlPlane(app, own_hosts=["10.0.0.5"])(scope, receive, send))
    return int(sent[0]["status"])


@pytest.mark.parametrize(
    ("path", "client", "status"),
    [
        ("/v1/control/start-run", "203.0.113.9", 403),  # submit a run from elsewhere
        ("/v1/control/register-supernode", "203.0.113.9", 403),  # register a node
        ("/v1/control/list-runs", "::ffff:203.0.113.9", 403),
        ("/v1/runtime/pull-messages", "198.51.100.1", 403),
        ("/v1/control/start-run", "127.0.0.1", 200),  # the coordinator, or an SSH tunnel
        ("/v1/control/start-run", "::1", 200),
        ("/v1/runtime/pull-messages", "10.0.0.5", 200),  # the address it listens on
        ("/v1/fleet/pull-messages", "203.0.113.9", 200),  # hospitals' SuperNodes
    ],
)
def test_only_this_machine_reaches_the_control_and_runtime_apis(
    path: str, client: str, status: int
) -> None:
    assert _call(path, client) == status


def test_a_bundle_the_coordinator_signed_passes_flowers_own_verification(tmp_path: Path) -> None:
    # Prepare
    public = create_app_key(tmp_path / "app.key")
    signatures = tmp_path / "signatures"
    trusted = _try_obtain_trusted_entities(write_trusted_entities(public, tmp_path / "node"))
    assert trusted is not None
    # Execute
    sign_bundle(BUNDLE, tmp_path / "app.key", signatures)
    fab = Fab("", BUNDLE, signature_records(signatures, _sha(BUNDLE)))
    # Assert
    assert _verify_fab(fab, trusted)


def test_a_tampered_or_unsigned_bundle_fails_flowers_verification(tmp_path: Path) -> None:
    # Prepare: the genuine bundle's signature, put on a tampered bundle
    public = create_app_key(tmp_path / "app.key")
    signatures = tmp_path / "signatures"
    trusted = _try_obtain_trusted_entities(write_trusted_entities(public, tmp_path / "node"))
    assert trusted is not None
    signed = sign_bundle(BUNDLE, tmp_path / "app.key", signatures)
    tampered = BUNDLE + b" and a backdoor"
    signed.rename(signatures / f"{_sha(tampered)}.json")
    # Execute / Assert
    assert not _verify_fab(
        Fab("", tampered, signature_records(signatures, _sha(tampered))), trusted
    )
    assert signature_records(signatures, _sha(BUNDLE)) == {}  # unsigned: no record


def test_a_bundle_signed_by_another_key_fails(tmp_path: Path) -> None:
    pinned = create_app_key(tmp_path / "coordinator.key")
    create_app_key(tmp_path / "intruder.key")
    trusted = _try_obtain_trusted_entities(write_trusted_entities(pinned, tmp_path / "node"))
    assert trusted is not None
    sign_bundle(BUNDLE, tmp_path / "intruder.key", tmp_path / "signatures")
    records = signature_records(tmp_path / "signatures", _sha(BUNDLE))
    assert not _verify_fab(Fab("", BUNDLE, records), trusted)


def test_keys_and_pins_are_private(tmp_path: Path) -> None:
    public = create_app_key(tmp_path / "app.key")
    pinned = write_trusted_entities(public, tmp_path / "node")
    assert (tmp_path / "app.key").stat().st_mode & 0o777 == 0o600
    assert pinned.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "node").stat().st_mode & 0o777 == 0o700


def test_the_superlink_database_and_its_directory_are_private(tmp_path: Path) -> None:
    # Prepare
    create_ca(tmp_path / "certs")
    database = tmp_path / "state" / "superlink.db"
    # Execute
    command = superlink_command(
        tmp_path / "certs", "127.0.0.1", 9443, database, tmp_path / "signatures"
    )
    # Assert
    assert database.stat().st_mode & 0o777 == 0o600
    assert database.parent.stat().st_mode & 0o777 == 0o700
    assert command[1:3] == ["-m", "fedchain.consortium.superlink"]


def test_a_flower_process_gets_the_password_files_path_never_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.setenv(PASSWORD_ENV, "DEVNET TEST password")
    secret = tmp_path / "keystore-password"
    secret.write_text("DEVNET TEST password\n")
    secret.chmod(0o600)
    # Execute
    env = flower_env(secret)
    # Assert
    assert PASSWORD_ENV not in env
    assert "DEVNET TEST password" not in "".join(env.values())
    assert env[PASSWORD_FILE_ENV] == str(secret)
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    assert environment_password("hint") == "DEVNET TEST password"


def test_a_password_file_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "keystore-password"
    secret.write_text("DEVNET TEST password\n")
    os.chmod(secret, 0o644)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret))
    with pytest.raises(KeystoreError, match="chmod 600"):
        environment_password("hint")
