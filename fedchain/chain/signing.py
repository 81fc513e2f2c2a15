"""EIP-712 commitments: what a client signs with its own key, and how anyone checks it.

Needs no node: clients sign offline, the server and auditors recover signers offline, and the
contract verifies the same digest on chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature

from fedchain.chain.errors import SignatureError
from fedchain.chain.records import Commitment, SignedCommitment

__all__ = ["DOMAIN_NAME", "DOMAIN_VERSION", "LedgerDomain", "recover_signer", "sign_commitment"]

DOMAIN_NAME = "fedchain"
DOMAIN_VERSION = "1"
_TYPES = {
    "Commitment": [
        {"name": "taskId", "type": "uint256"},
        {"name": "round", "type": "uint256"},
        {"name": "updateHash", "type": "bytes32"},
        {"name": "numExamples", "type": "uint256"},
    ]
}


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


def _message(commitment: Commitment) -> dict[str, Any]:
    return {
        "taskId": commitment.task_id,
        "round": commitment.round,
        "updateHash": commitment.update_hash,
        "numExamples": commitment.num_examples,
    }


def sign_commitment(
    account: LocalAccount, domain: LedgerDomain, commitment: Commitment
) -> SignedCommitment:
    """Sign ``commitment`` for ``domain`` with the participant's own key."""
    signed = account.sign_typed_data(domain.as_dict(), _TYPES, _message(commitment))
    return SignedCommitment(commitment, account.address, bytes(signed.signature))


def recover_signer(domain: LedgerDomain, signed: SignedCommitment) -> str:
    """The address whose key produced ``signed.signature`` for this commitment and domain.

    Raises
    ------
    SignatureError
        If no signer can be recovered (zero or out-of-range r or s, an invalid v).
    """
    message = encode_typed_data(domain.as_dict(), _TYPES, _message(signed.commitment))
    try:
        return str(Account.recover_message(message, signature=signed.signature))
    except (BadSignature, ValueError) as exc:
        raise SignatureError(
            f"the signature of {signed.participant} is malformed ({exc}): refuse that commitment"
        ) from exc
