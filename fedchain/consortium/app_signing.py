"""Signed Flower App Bundles: the coordinator signs each bundle it runs, hospitals verify it.

Flower 1.41's SuperNode verifies a bundle (FAB) against the keys given to ``flower-supernode
--trusted-entities`` (a YAML map of key id to an OpenSSH Ed25519 public key): a bundle is run
only if one verification record of a trusted key signs ``timestamp (8 bytes, big-endian) ||
SHA-256(bundle)``. Flower's open-source SuperLink attaches no such records to a bundle submitted
with ``flwr run``; fedchain's SuperLink (:mod:`fedchain.consortium.superlink`) attaches the
records ``fedchain server run`` wrote into its signature directory. The verification itself is
Flower's, on the hospital's machine, against the key the hospital pinned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fedchain.consortium.certs import CertificateError, public_key_path
from fedchain.errors import FedchainError

__all__ = [
    "TRUSTED_ENTITIES_FILE",
    "AppSignatureError",
    "create_app_key",
    "key_id",
    "sign_bundle",
    "signature_records",
    "write_trusted_entities",
]

#: The hospital's pinned key, as Flower's ``--trusted-entities`` reads it, in its node directory.
TRUSTED_ENTITIES_FILE = "trusted-entities.yaml"
#: What Flower's SuperNode requires besides a signature: that the SuperLink supports verification.
_SUPPORTED = {"valid_license": "Valid"}


class AppSignatureError(FedchainError, ValueError):
    """An app-signing key is missing or not an Ed25519 key."""


def create_app_key(path: Path) -> Path:
    """Create the coordinator's app-signing key: ``path`` (Ed25519, OpenSSH, mode 600) and its
    ``.pub`` (what each hospital pins). Returns the ``.pub``."""
    public = public_key_path(path)
    existing = [str(p) for p in (path, public) if p.exists()]
    if existing:
        raise CertificateError(f"{', '.join(existing)} exists: keys are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_bytes)
    public.write_bytes(_public_line(key.public_key()) + b"\n")
    return public


def _public_line(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def _load_public(path: Path) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_ssh_public_key(path.read_bytes())
    except FileNotFoundError:
        raise AppSignatureError(
            f"no key at {path}: copy the coordinator's app key (.pub) there"
        ) from None
    except ValueError as exc:
        raise AppSignatureError(f"{path} is not an OpenSSH public key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise AppSignatureError(f"{path} is not an Ed25519 key: `fedchain certs app-key` makes one")
    return key


def key_id(public: ed25519.Ed25519PublicKey) -> str:
    """The key's id in Flower's verification records: ``fpk_`` and its fingerprint's start."""
    return "fpk_" + hashlib.sha256(_public_line(public)).hexdigest()[:32]


def sign_bundle(bundle: bytes, private_key: Path, directory: Path) -> Path:
    """Sign ``bundle`` with the coordinator's app key; write the verification record where the
    SuperLink reads it (``directory/<bundle's SHA-256>.json``). Returns that file."""
    try:
        key = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
    except FileNotFoundError:
        raise AppSignatureError(
            f"no app key at {private_key}: create it with `fedchain certs app-key`"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise AppSignatureError(f"{private_key} is not an Ed25519 key")
    digest = hashlib.sha256(bundle)
    signed_at = int(time.time())
    signature = key.sign(signed_at.to_bytes(8, "big") + digest.digest())
    record = {
        "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
        "signed_at": signed_at,
    }
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{digest.hexdigest()}.json"
    path.write_text(json.dumps({key_id(key.public_key()): json.dumps(record)}))
    return path


def signature_records(directory: Path, bundle_hash: str) -> dict[str, str]:
    """The verification records of a bundle (by its SHA-256 hex) for Flower's SuperNode; none
    (empty) when no one signed it, so a SuperNode pinning a key refuses it."""
    path = directory / f"{bundle_hash}.json"
    if not path.is_file():
        return {}
    records: dict[str, str] = json.loads(path.read_text())
    return {**records, **_SUPPORTED}


def write_trusted_entities(public_key: Path, node_directory: Path) -> Path:
    """The hospital pins the coordinator's app key: a ``--trusted-entities`` file (mode 600) in
    its node directory. Returns the file."""
    key = _load_public(public_key)
    node_directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = node_directory / TRUSTED_ENTITIES_FILE
    text = f"{key_id(key)}: '{_public_line(key).decode('ascii')}'\n"
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path
