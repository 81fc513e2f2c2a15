"""EIP-712 commitments and consents: what a client signs with its own key, and how anyone
checks it.

Needs no node: clients sign offline, the server and auditors recover signers offline, and the
contract verifies the same digest on chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_typing import Hash32
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError as KeyValidationError

from fedchain.chain.errors import SignatureError
from fedchain.chain.records import Commitment, Consent, SignedCommitment, SignedConsent

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "LedgerDomain",
    "commitment_digest",
    "consent_digest",
    "recover_consent_signer",
    "recover_signer",
    "sign_commitment",
    "sign_consent",
]

DOMAIN_NAME = "fedchain"
DOMAIN_VERSION = "1"
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
#: Half the order of secp256k1: a signature's s above it is the malleated twin of a valid one.
_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_COMMITMENT_TYPEHASH = keccak(
    text=(
        "Commitment(uint256 taskId,uint256 round,bytes32 updateHash,uint256 numExamples,"
        "uint256 epsilon)"
    )
)
_CONSENT_TYPEHASH = keccak(
    text="Consent(uint256 taskId,bytes32 specHash,uint256 datasetSize,bytes32 dataHash)"
)


@dataclass(frozen=True)
class LedgerDomain:
    """The EIP-712 domain: a signature is valid for one chain and one ledger contract only."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    @property
    def separator(self) -> bytes:
        """The EIP-712 domain separator, as the contract computes it."""
        return _separator(self.chain_id, self.verifying_contract)


@lru_cache(maxsize=64)
def _separator(chain_id: int, verifying_contract: str) -> bytes:
    # Cached by value: callers build a new LedgerDomain for each message they check.
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                chain_id,
                verifying_contract,
            ],
        )
    )


def commitment_digest(domain: LedgerDomain, commitment: Commitment) -> Hash32:
    """The EIP-712 digest a participant signs: keccak(0x1901 || separator || struct hash).

    Computed here rather than by eth_account's generic typed-data encoder, which walks the
    type definitions for every message: a tenth of the cost, paid for each reply of each round.
    The tests hold it equal to eth_account's digest and to the contract's.
    """
    c = commitment
    struct = keccak(
        abi_encode(
            ["bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256"],
            [_COMMITMENT_TYPEHASH, c.task_id, c.round, c.update_hash, c.num_examples, c.epsilon],
        )
    )
    return Hash32(keccak(b"\x19\x01" + domain.separator + struct))


def sign_commitment(
    account: LocalAccount, domain: LedgerDomain, commitment: Commitment
) -> SignedCommitment:
    """Sign ``commitment`` for ``domain`` with the participant's own key."""
    signed = account.unsafe_sign_hash(commitment_digest(domain, commitment))  # an EIP-712 digest
    return SignedCommitment(commitment, account.address, bytes(signed.signature))


def consent_digest(domain: LedgerDomain, consent: Consent) -> Hash32:
    """The EIP-712 digest a participant signs to join a task (``Ledger.consentDigest``)."""
    c = consent
    struct = keccak(
        abi_encode(
            ["bytes32", "uint256", "bytes32", "uint256", "bytes32"],
            [_CONSENT_TYPEHASH, c.task_id, c.spec_hash, c.dataset_size, c.data_hash],
        )
    )
    return Hash32(keccak(b"\x19\x01" + domain.separator + struct))


def sign_consent(account: LocalAccount, domain: LedgerDomain, consent: Consent) -> SignedConsent:
    """Sign ``consent`` to a task for ``domain`` with the participant's own key."""
    signed = account.unsafe_sign_hash(consent_digest(domain, consent))  # an EIP-712 digest
    return SignedConsent(consent, account.address, bytes(signed.signature))


def recover_consent_signer(domain: LedgerDomain, signed: SignedConsent) -> str:
    """The address whose key produced ``signed.signature`` for this consent and domain.

    Raises
    ------
    SignatureError
        If no signer can be recovered.
    """
    try:
        return _recover(consent_digest(domain, signed.consent), signed.signature)
    except (BadSignature, KeyValidationError, ValueError) as exc:
        raise SignatureError(
            f"the consent signature of {signed.participant} is malformed ({exc}): refuse that "
            "consent"
        ) from exc


def recover_signer(domain: LedgerDomain, signed: SignedCommitment) -> str:
    """The address whose key produced ``signed.signature`` for this commitment and domain.

    Raises
    ------
    SignatureError
        If no signer can be recovered (zero or out-of-range r or s, an invalid v).
    """
    try:
        return _recover(commitment_digest(domain, signed.commitment), signed.signature)
    except (BadSignature, KeyValidationError, ValueError) as exc:
        raise SignatureError(
            f"the signature of {signed.participant} is malformed ({exc}): refuse that commitment"
        ) from exc


def _recover(digest: Hash32, signature: bytes) -> str:
    """The checksummed signer of ``digest``; ValueError (or eth-keys' errors) when none."""
    if len(signature) != 65:
        raise SignatureError(f"signature must be 65 bytes, got {len(signature)}")
    if int.from_bytes(signature[32:64], "big") > _HALF_ORDER:
        # The same signer's other valid signature (EIP-2): the contract refuses it, and its
        # compact form (parity in the top bit of s) cannot carry it.
        raise SignatureError("s is in the upper half of the curve order (a malleated signature)")
    v = signature[64]
    parity = v - 27 if v >= 27 else v  # 27/28, or the bare parity: as compact() reads it
    standard = Signature(signature_bytes=signature[:64] + bytes([parity]))
    return str(standard.recover_public_key_from_msg_hash(digest).to_checksum_address())
