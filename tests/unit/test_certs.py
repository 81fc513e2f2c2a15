"""A consortium's certificates: the SuperLink's verifies against the CA, node keys suit Flower."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store

from fedchain.consortium.certs import (
    CertificateError,
    create_ca,
    create_consortium,
    create_node_key,
)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("certs")
    return create_consortium(directory, ["superlink.example.org", "10.0.0.7"], ["a", "b"])


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.mark.parametrize(
    "name",
    [
        DNSName("superlink.example.org"),
        DNSName("localhost"),
        IPAddress(ipaddress.ip_address("127.0.0.1")),
        IPAddress(ipaddress.ip_address("10.0.0.7")),
    ],
)
def test_the_superlink_certificate_verifies_for_each_host_against_the_ca(
    consortium, name: DNSName | IPAddress
) -> None:  # type: ignore[no-untyped-def]
    # Prepare
    store = Store([_load(consortium.ca_cert)])
    verifier = PolicyBuilder().store(store).build_server_verifier(name)
    # Execute
    chain = verifier.verify(_load(consortium.superlink_cert), [])
    # Assert
    assert chain[-1] == _load(consortium.ca_cert)


def test_a_host_the_certificate_does_not_name_is_refused(consortium) -> None:  # type: ignore[no-untyped-def]
    store = Store([_load(consortium.ca_cert)])
    verifier = PolicyBuilder().store(store).build_server_verifier(DNSName("elsewhere.example"))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(_load(consortium.superlink_cert), [])


def test_private_keys_are_mode_600(consortium) -> None:  # type: ignore[no-untyped-def]
    for path in [consortium.ca_key, consortium.superlink_key, *consortium.node_keys.values()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_node_keys_are_what_flowers_supernode_and_register_command_load(consortium) -> None:  # type: ignore[no-untyped-def]
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes

    for key_path in consortium.node_keys.values():
        # As flower-supernode --auth-supernode-private-key reads it
        private = load_ssh_private_key(key_path.read_bytes(), None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        # As flwr supernode register reads the .pub
        registered = try_load_public_key(key_path.with_suffix(".pub"))
        assert registered == public_key_to_bytes(private.public_key())


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    # Prepare
    create_ca(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    create_node_key(tmp_path / "node.key")
    # Execute / Assert
    with pytest.raises(CertificateError, match="exists"):
        create_ca(tmp_path)
    with pytest.raises(CertificateError, match="exists"):
        create_node_key(tmp_path / "node.key")
    with pytest.raises(CertificateError, match="exists"):
        create_consortium(tmp_path, [], ["fresh"])
    assert not (tmp_path / "fresh.key").exists()
    assert {p: tmp_path.joinpath(p).read_bytes() for p in before} == before


@pytest.mark.parametrize(
    ("hosts", "nodes", "message"),
    [
        (["https://example.org"], ["a"], "neither an IP address nor a host name"),
        ([], ["a", "a"], "must differ"),
        ([], ["../a"], "plain file name"),
    ],
)
def test_bad_names_are_refused(
    tmp_path: Path, hosts: list[str], nodes: list[str], message: str
) -> None:
    with pytest.raises(CertificateError, match=message):
        create_consortium(tmp_path / "certs", hosts, nodes)
    assert not (tmp_path / "certs" / "ca.key").exists()
