"""Keccak-256 for the whole Ethereum stack from safe-pysha3's C code, not pycryptodome's.

py-evm, trie, eth-utils and eth-account all hash through one object, ``eth_hash.auto.keccak``,
whose automatic backend prefers pycryptodome. Its per-call cost (cffi buffers, a Python object
per hash) made hashing about a tenth of the embedded chain's time: 17 us a hash against 2 us
for pysha3 (64 bytes, this machine). The digest is the same; only the code computing it changes.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["use_fast_keccak"]

log = logging.getLogger(__name__)

#: keccak256(b""): a backend that does not give it is not used.
_EMPTY_DIGEST = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def use_fast_keccak() -> bool:
    """Point ``eth_hash.auto.keccak`` at the pysha3 backend, if installed; True if it is in use.

    Idempotent, and safe after the first hash: the hasher is replaced, not wrapped.
    """
    from eth_hash.auto import keccak

    try:
        from eth_hash.backends.pysha3 import backend
    except ImportError:  # safe-pysha3 missing: pycryptodome stays, slower but the same digests
        log.debug("safe-pysha3 is not installed: keccak stays on pycryptodome")
        return False
    if backend.keccak256(b"") != _EMPTY_DIGEST:  # pragma: no cover - a broken build
        return False
    hashing: Any = keccak  # its hasher and preimage are attributes replaced after a first use
    hashing._backend = backend
    hashing.hasher = backend.keccak256
    hashing.preimage = backend.preimage
    return True
