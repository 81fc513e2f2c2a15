"""Accounts: the public devnet test mnemonic for simulations, encrypted keystores for real nodes.

No private key is ever taken from a command line or written to a log. Keystores are eth-account
(Web3 Secret Storage) JSON files, mode 600; their password comes from a prompt or from the
environment variable ``FEDCHAIN_KEYSTORE_PASSWORD``.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
from functools import cache
from pathlib import Path

from eth_account import Account
from eth_account.hdaccount import ETHEREUM_DEFAULT_PATH, seed_from_mnemonic
from eth_account.hdaccount.deterministic import Node, SoftNode, derive_child_key
from eth_account.signers.local import LocalAccount

from fedchain.chain.errors import KeystoreError

__all__ = [
    "DEVNET_MNEMONIC",
    "PASSWORD_ENV",
    "PASSWORD_FILE_ENV",
    "devnet_account",
    "devnet_accounts",
    "environment_password",
    "keystore_password",
    "load_keystore",
    "new_keystore",
    "password_from_file",
]

#: DEVNET TEST MNEMONIC — public, the default of anvil and Hardhat. Its keys are known to everyone:
#: use them only on local devnets and simulations, never for anything of value.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
PASSWORD_ENV = "FEDCHAIN_KEYSTORE_PASSWORD"
#: The path of a file (mode 600) holding the password: how a long-running SuperLink or SuperNode
#: hands it to its ServerApp or ClientApp without the password being in any environment.
PASSWORD_FILE_ENV = "FEDCHAIN_KEYSTORE_PASSWORD_FILE"
_BASE_PATH = ETHEREUM_DEFAULT_PATH.rsplit("/", 1)[0]


@cache
def _devnet_seed() -> bytes:
    return bytes(seed_from_mnemonic(DEVNET_MNEMONIC, passphrase=""))


@cache
def _devnet_parent() -> tuple[bytes, bytes]:
    """The extended key (key, chain code) of m/44'/60'/0'/0, the parent of every devnet key."""
    node = hmac.new(b"Bitcoin seed", _devnet_seed(), hashlib.sha512).digest()  # BIP-32 master
    key, chain_code = node[:32], node[32:]
    for step in _BASE_PATH.split("/")[1:]:  # 44', 60', 0', 0
        key, chain_code = derive_child_key(key, chain_code, Node.decode(step))
    return key, chain_code


@cache
def devnet_account(index: int) -> LocalAccount:
    """DEVNET TEST KEY number ``index`` of the public test mnemonic (m/44'/60'/0'/0/index).

    One BIP-32 step from the cached parent key, not five from the seed: a simulation of a
    thousand participants derives a thousand keys (about 1.5 ms each instead of 3.6 ms).
    """
    key, _ = derive_child_key(*_devnet_parent(), SoftNode(index))
    account: LocalAccount = Account.from_key(key)
    return account


def devnet_accounts(count: int, start: int = 0) -> list[LocalAccount]:
    """DEVNET TEST KEYS ``start`` .. ``start + count - 1``."""
    return [devnet_account(i) for i in range(start, start + count)]


def keystore_password(confirm: bool = False) -> str:
    """The keystore password: from ``FEDCHAIN_KEYSTORE_PASSWORD``, else asked at a prompt."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    try:
        password = getpass.getpass("keystore password: ")
        if confirm and getpass.getpass("again: ") != password:
            raise KeystoreError("the two passwords differ: run the command again")
    except EOFError as exc:
        raise KeystoreError(
            f"no password: set {PASSWORD_ENV} or run the command in a terminal"
        ) from exc
    if not password:
        raise KeystoreError("an empty password protects nothing: choose one")
    return password


def environment_password(hint: str) -> str:
    """The keystore password of a process that has no terminal to ask on (a ServerApp or
    ClientApp under Flower): ``FEDCHAIN_KEYSTORE_PASSWORD`` only; ``hint`` says who sets it."""
    password = os.environ.get(PASSWORD_ENV)
    if not password and os.environ.get(PASSWORD_FILE_ENV):
        password = password_from_file(Path(os.environ[PASSWORD_FILE_ENV]))
    if not password:
        raise KeystoreError(f"no keystore password in {PASSWORD_ENV}: {hint}")
    return password


def password_from_file(path: Path) -> str:
    """The password in ``path`` (its first line), a file only its owner can read (mode 600)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeystoreError(f"no password file at {path}: check the path") from None
    if mode & 0o077:
        raise KeystoreError(
            f"{path} is readable by others (mode {mode & 0o777:o}): `chmod 600 {path}` first"
        )
    password = path.read_text().splitlines()[0] if path.read_text() else ""
    if not password:
        raise KeystoreError(f"{path} holds no password on its first line")
    return password


def new_keystore(path: Path, password: str) -> str:
    """Create a fresh key, encrypt it into ``path`` (mode 600; a directory created for it, 700)
    and return its address.

    Refuses to overwrite an existing file, so no key is ever lost.
    """
    if path.exists():
        raise KeystoreError(f"{path} exists: choose another path, a key is never overwritten")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    account = Account.create()
    encrypted = Account.encrypt(account.key, password)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(encrypted, handle)
    return str(account.address)


def load_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypt the keystore at ``path``."""
    try:
        encrypted = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise KeystoreError(
            f"no keystore at {path}: create one with `fedchain account new`"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"{path} is not a keystore JSON file: {exc}") from exc
    try:
        key = Account.decrypt(encrypted, password)
    except ValueError as exc:
        raise KeystoreError(f"cannot decrypt {path}: wrong password or corrupt keystore") from exc
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"{path} is not a valid keystore: missing {exc}") from exc
    account: LocalAccount = Account.from_key(key)
    return account
