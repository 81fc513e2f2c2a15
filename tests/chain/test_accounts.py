"""Accounts: the public devnet keys, and encrypted keystores for real nodes."""

from __future__ import annotations

import getpass
import json
import stat
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.chain.accounts import (
    PASSWORD_ENV,
    devnet_account,
    devnet_accounts,
    keystore_password,
    load_keystore,
    new_keystore,
)
from fedchain.chain.errors import ChainError, KeystoreError
from fedchain.errors import FedchainError

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One keystore for the module: scrypt makes each one cost about a second."""
    path = tmp_path_factory.mktemp("keys") / "node.json"
    return path, new_keystore(path, PASSWORD)


@pytest.fixture(scope="module")
def loaded(keystore: tuple[Path, str]) -> LocalAccount:
    """The keystore decrypted once with the right password."""
    return load_keystore(keystore[0], PASSWORD)


def test_devnet_accounts_are_the_anvil_and_hardhat_defaults() -> None:
    # Execute
    first, second = devnet_accounts(2)

    # Assert
    assert first.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert second.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert first.key.hex().removeprefix("0x") == (
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    )


def test_devnet_accounts_start_where_asked() -> None:
    # Execute
    accounts = devnet_accounts(3, start=2)

    # Assert
    assert [a.address for a in accounts] == [devnet_account(i).address for i in (2, 3, 4)]
    assert accounts[0].address == "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def test_new_keystore_writes_an_owner_only_file(keystore: tuple[Path, str]) -> None:
    # Prepare
    path, address = keystore

    # Execute
    mode = stat.S_IMODE(path.stat().st_mode)
    content = json.loads(path.read_text())

    # Assert
    assert mode == 0o600
    assert content["address"].lower() == address.lower().removeprefix("0x")
    assert "crypto" in content


def test_keystore_file_never_holds_the_private_key(
    keystore: tuple[Path, str], loaded: LocalAccount
) -> None:
    # Prepare
    path, address = keystore

    # Execute
    key = loaded.key.hex().removeprefix("0x")
    text = path.read_text().lower()

    # Assert
    assert key not in text
    assert address.lower().removeprefix("0x") in text


def test_load_keystore_with_the_right_password_gives_the_same_address(
    keystore: tuple[Path, str], loaded: LocalAccount
) -> None:
    # Prepare
    _, address = keystore

    # Execute
    account = loaded

    # Assert
    assert account.address == address
    assert account.key != b""


def test_new_keystore_refuses_to_overwrite(keystore: tuple[Path, str]) -> None:
    # Prepare
    path, address = keystore
    before = path.read_bytes()

    # Execute
    with pytest.raises(KeystoreError, match="never overwritten"):
        new_keystore(path, "another password")

    # Assert
    assert path.read_bytes() == before
    assert json.loads(before)["address"].lower() == address.lower().removeprefix("0x")


def test_load_keystore_with_a_wrong_password_raises_keystore_error(
    keystore: tuple[Path, str],
) -> None:
    # Prepare
    path, _ = keystore

    # Execute
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "wrong password")

    # Assert
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ChainError)
    assert isinstance(caught.value, FedchainError)
    assert "wrong password" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        "not json at all {",
        "\xff\xfe binary",
        json.dumps({"address": "00" * 20}),
        json.dumps([1, 2, 3]),
    ],
    ids=["not-json", "binary", "no-crypto", "a-list"],
)
def test_load_a_corrupt_keystore_raises_keystore_error(tmp_path: Path, content: str) -> None:
    # Prepare
    path = tmp_path / "corrupt.json"
    path.write_bytes(content.encode("latin-1"))

    # Execute
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, PASSWORD)

    # Assert
    assert str(path) in str(caught.value)


def test_load_a_missing_keystore_says_how_to_make_one(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "absent.json"

    # Execute
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, PASSWORD)

    # Assert
    assert "`fedchain account new`" in str(caught.value)
    assert str(path) in str(caught.value)


def test_keystore_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.setenv(PASSWORD_ENV, "from-env")

    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("must not prompt when the environment has the password")

    monkeypatch.setattr(getpass, "getpass", no_prompt)

    # Execute
    password = keystore_password()

    # Assert
    assert PASSWORD_ENV == "FEDCHAIN_KEYSTORE_PASSWORD"
    assert password == "from-env"


def test_keystore_password_without_env_or_terminal_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.delenv(PASSWORD_ENV, raising=False)

    def no_terminal(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", no_terminal)

    # Execute
    with pytest.raises(KeystoreError) as caught:
        keystore_password()

    # Assert
    assert PASSWORD_ENV in str(caught.value)


def test_keystore_password_at_a_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    answers = iter(["typed", "typed"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))

    # Execute
    password = keystore_password(confirm=True)

    # Assert
    assert password == "typed"


@pytest.mark.parametrize(
    ("answers", "message"),
    [(["one", "two"], "differ"), (["", ""], "empty password")],
    ids=["confirm-mismatch", "empty"],
)
def test_keystore_password_refuses_bad_answers(
    monkeypatch: pytest.MonkeyPatch, answers: list[str], message: str
) -> None:
    # Prepare
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    replies = iter(answers)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(replies))

    # Execute
    with pytest.raises(KeystoreError, match=message):
        keystore_password(confirm=True)

    # Assert: raised (above) before any password was returned
