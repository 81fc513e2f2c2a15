"""Certificates of a consortium: a local CA, the SuperLink's TLS certificate, SuperNode keys.

Flower encrypts SuperNode <-> SuperLink traffic with TLS (the SuperLink presents a certificate
its SuperNodes verify against the consortium's CA) and authenticates each SuperNode by an EC key
pair whose public half the coordinator registers (``flwr supernode register``). This module
makes both with the ``cryptography`` package, for a test consortium or a real one whose
coordinator runs its own CA. Private keys are written mode 600 and never overwritten.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedchain.errors import FedchainError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "LOCAL_HOSTS",
    "SUPERLINK_CERT",
    "SUPERLINK_KEY",
    "CertificateError",
    "ConsortiumCertificates",
    "create_ca",
    "create_consortium",
    "create_node_key",
    "public_key_path",
]

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SUPERLINK_CERT = "superlink.crt"
SUPERLINK_KEY = "superlink.key"
#: Always in the SuperLink's certificate: its own SuperExec reaches it on the loopback.
LOCAL_HOSTS = ("127.0.0.1", "localhost")
_DEFAULT_DAYS = 365


class CertificateError(FedchainError, ValueError):
    """A certificate or key cannot be created: a file exists already, or a host name is bad."""


@dataclass(frozen=True)
class ConsortiumCertificates:
    """Where the files of a consortium are: the CA, the SuperLink's TLS pair, the node keys."""

    ca_cert: Path
    ca_key: Path
    superlink_cert: Path
    superlink_key: Path
    node_keys: dict[str, Path]


def public_key_path(private_key: Path) -> Path:
    """The public half of a SuperNode key: ``NAME.pub`` next to ``NAME.key`` (or ``NAME``)."""
    return private_key.with_suffix(".pub")


def create_ca(
    directory: Path, hosts: Sequence[str] = (), days: int = _DEFAULT_DAYS, name: str = ""
) -> tuple[Path, Path]:
    """Create the consortium's CA and the SuperLink's TLS certificate, signed by it.

    Parameters
    ----------
    directory
        Receives ``ca.crt``, ``ca.key``, ``superlink.crt`` and ``superlink.key`` (keys mode 600).
    hosts
        Names and IP addresses SuperNodes reach the SuperLink by; ``127.0.0.1`` and
        ``localhost`` are always added.
    days
        Validity of both certificates.
    name
        The consortium's name, in the CA's subject.

    Returns
    -------
    tuple[Path, Path]
        The CA certificate (what every SuperNode and ``flwr`` client verifies against) and the
        SuperLink's certificate.
    """
    if days < 1:
        raise CertificateError(f"--days must be at least 1, got {days}")
    names = _subject_alt_names([*LOCAL_HOSTS, *hosts])
    paths = [directory / f for f in (CA_CERT, CA_KEY, SUPERLINK_CERT, SUPERLINK_KEY)]
    _refuse_existing(paths)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{name or 'fedchain consortium'} CA")]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedchain SuperLink")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_cert_path, ca_key_path, server_cert_path, server_key_path = paths
    _write_private(ca_key_path, _pkcs8(ca_key))
    _write_private(server_key_path, _pkcs8(server_key))
    ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return ca_cert_path, server_cert_path


def create_node_key(path: Path) -> Path:
    """Create a SuperNode's authentication key pair: ``path`` (private, OpenSSH, mode 600) and
    its ``.pub`` (OpenSSH public key, what the coordinator registers). Returns the ``.pub``.

    Flower's SuperNode authentication takes an EC key on a NIST curve; this is P-384, as the
    keys Flower generates itself.
    """
    public = public_key_path(path)
    _refuse_existing([path, public])
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public_bytes = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_private(path, private_bytes)
    public.write_bytes(public_bytes + b"\n")
    return public


def create_consortium(
    directory: Path, hosts: Sequence[str], nodes: Sequence[str], days: int = _DEFAULT_DAYS
) -> ConsortiumCertificates:
    """A test consortium in one directory: the CA, the SuperLink's certificate and one key pair
    per SuperNode name (``NAME.key`` and ``NAME.pub``)."""
    for node in nodes:
        if not node or "/" in node or node.startswith("."):
            raise CertificateError(f"node name {node!r} must be a plain file name, e.g. hospital-a")
    if len(set(nodes)) != len(nodes):
        raise CertificateError("node names must differ: each SuperNode has its own key")
    node_paths = {node: directory / f"{node}.key" for node in nodes}
    _refuse_existing([p for key in node_paths.values() for p in (key, public_key_path(key))])
    create_ca(directory, hosts, days)
    for key in node_paths.values():
        create_node_key(key)
    return ConsortiumCertificates(
        ca_cert=directory / CA_CERT,
        ca_key=directory / CA_KEY,
        superlink_cert=directory / SUPERLINK_CERT,
        superlink_key=directory / SUPERLINK_KEY,
        node_keys=node_paths,
    )


def _subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for given in hosts:
        host = given.strip()
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if any(c in host for c in " /:@") or host.startswith("."):
                raise CertificateError(
                    f"{host!r} is neither an IP address nor a host name: give the name or "
                    "address SuperNodes use to reach the SuperLink"
                ) from None
            names.append(x509.DNSName(host))
    return names


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _refuse_existing(paths: Sequence[Path]) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise CertificateError(
            f"{', '.join(existing)} exists: choose another directory, keys are never overwritten"
        )


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
