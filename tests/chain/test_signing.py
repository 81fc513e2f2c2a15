"""EIP-712 commitments: Python signs and recovers exactly what the contract verifies."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.chain.errors import SignatureError
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import (
    Commitment,
    Consent,
    RoundId,
    SignedCommitment,
    SignedConsent,
    TaskId,
)
from fedchain.chain.signing import (
    LedgerDomain,
    commitment_digest,
    consent_digest,
    recover_consent_signer,
    recover_signer,
    sign_commitment,
    sign_consent,
)

from ._support import Federation, h

COMMITMENT_TYPE = (
    "Commitment(uint256 taskId,uint256 round,bytes32 updateHash,uint256 numExamples,"
    "uint256 epsilon)"
)
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
HASHES = st.binary(min_size=32, max_size=32)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

commitments = st.builds(
    Commitment,
    task_id=UINT256.map(TaskId),
    round=UINT256.map(RoundId),
    update_hash=HASHES,
    num_examples=UINT256,
    epsilon=UINT256,
)
DOMAIN = LedgerDomain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")


def eip712_digest(domain: LedgerDomain, c: Commitment) -> bytes:
    """The EIP-712 digest from first principles: keccak(0x1901 || domainSeparator || structHash)."""
    separator = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(text=DOMAIN_TYPE),
                keccak(text="fedchain"),
                keccak(text="1"),
                domain.chain_id,
                domain.verifying_contract,
            ],
        )
    )
    struct = keccak(
        abi_encode(
            ["bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256"],
            [
                keccak(text=COMMITMENT_TYPE),
                c.task_id,
                c.round,
                c.update_hash,
                c.num_examples,
                c.epsilon,
            ],
        )
    )
    return keccak(b"\x19\x01" + separator + struct)


_FIELDS = [
    ("uint256", "taskId"),
    ("uint256", "round"),
    ("bytes32", "updateHash"),
    ("uint256", "numExamples"),
    ("uint256", "epsilon"),
]


def typed_message(c: Commitment) -> dict[str, object]:
    return {
        "taskId": c.task_id,
        "round": c.round,
        "updateHash": c.update_hash,
        "numExamples": c.num_examples,
        "epsilon": c.epsilon,
    }


def eth_account_digest(domain: LedgerDomain, c: Commitment) -> bytes:
    """The same digest through eth_account's EIP-712 encoder."""
    types = {"Commitment": [{"name": n, "type": t} for t, n in _FIELDS]}
    signable = encode_typed_data(domain.as_dict(), types, typed_message(c))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def with_parity(account: LocalAccount, domain: LedgerDomain, task: int, v: int) -> SignedCommitment:
    """A signature of ``account`` whose recovery byte is ``v`` (27 or 28)."""
    for attempt in range(200):
        signed = sign_commitment(
            account, domain, Commitment(TaskId(task), RoundId(1), h(f"u-{attempt}"), 10)
        )
        if signed.signature[64] == v:
            return signed
    raise AssertionError(f"no signature with v={v} in 200 tries")


@pytest.fixture(scope="module")
def alice(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


def test_sign_then_recover_gives_the_signer(alice: LocalAccount) -> None:
    # Prepare
    commitment = Commitment(TaskId(1), RoundId(2), h("update"), 42)

    # Execute
    signed = sign_commitment(alice, DOMAIN, commitment)

    # Assert
    assert signed.participant == alice.address
    assert signed.commitment == commitment
    assert len(signed.signature) == 65
    assert recover_signer(DOMAIN, signed) == alice.address


def test_python_digest_matches_first_principles_and_the_contract_typehash(
    deployed: LedgerGateway,
) -> None:
    # Prepare
    commitment = Commitment(TaskId(3), RoundId(4), h("update"), 1234)

    # Execute
    onchain = deployed.commitment_digest(commitment)
    typehash = bytes(deployed.ledger.functions.COMMITMENT_TYPEHASH().call())

    # Assert
    assert typehash == keccak(text=COMMITMENT_TYPE)
    assert eip712_digest(deployed.domain, commitment) == onchain
    assert eth_account_digest(deployed.domain, commitment) == onchain
    assert commitment_digest(deployed.domain, commitment) == onchain


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commitment=commitments)
def test_python_digest_equals_the_contract_digest(
    deployed: LedgerGateway, commitment: Commitment
) -> None:
    # Execute
    onchain = deployed.commitment_digest(commitment)

    # Assert
    assert eth_account_digest(deployed.domain, commitment) == onchain
    assert commitment_digest(deployed.domain, commitment) == onchain


@settings(max_examples=60, deadline=None)
@given(commitment=commitments, key=st.integers(min_value=1, max_value=SECP256K1_N - 1))
def test_recover_of_sign_is_the_signer(commitment: Commitment, key: int) -> None:
    # Prepare
    account = Account.from_key(key.to_bytes(32, "big"))

    # Execute
    signed = sign_commitment(account, DOMAIN, commitment)

    # Assert
    assert recover_signer(DOMAIN, signed) == account.address


@settings(max_examples=60, deadline=None)
@given(
    commitment=commitments,
    field=st.sampled_from(
        ["task_id", "round", "update_hash", "num_examples", "epsilon", "chain", "contract"]
    ),
    delta=st.integers(min_value=1, max_value=2**64),
)
def test_changing_any_field_changes_the_recovered_address(
    alice: LocalAccount, commitment: Commitment, field: str, delta: int
) -> None:
    # Prepare
    signed = sign_commitment(alice, DOMAIN, commitment)
    domain = DOMAIN
    changed = commitment
    if field == "update_hash":
        flipped = int.from_bytes(commitment.update_hash, "big") ^ delta
        changed = replace(commitment, update_hash=flipped.to_bytes(32, "big"))
    elif field == "chain":
        domain = LedgerDomain(DOMAIN.chain_id + delta, DOMAIN.verifying_contract)
    elif field == "contract":
        address = int(DOMAIN.verifying_contract, 16) ^ delta
        domain = LedgerDomain(DOMAIN.chain_id, "0x" + address.to_bytes(20, "big").hex())
    else:
        value = getattr(commitment, field)
        changed = replace(commitment, **{field: (value + delta) % 2**256})

    # Execute
    recovered = recover_signer(domain, SignedCommitment(changed, alice.address, signed.signature))

    # Assert
    assert recovered != alice.address


@settings(max_examples=60, deadline=None)
@given(commitment=commitments)
def test_compact_form_is_r_and_parity_packed_into_s(
    alice: LocalAccount, commitment: Commitment
) -> None:
    # Prepare
    signed = sign_commitment(alice, DOMAIN, commitment)
    sig = signed.signature

    # Execute
    r, vs = signed.compact()

    # Assert: EIP-2098 — vs = (v - 27) << 255 | s
    number = int.from_bytes(vs, "big")
    assert r == sig[:32]
    assert (number & (2**255 - 1)).to_bytes(32, "big") == sig[32:64]
    assert 27 + (number >> 255) == sig[64]


def test_a_tampered_signature_recovers_another_address(alice: LocalAccount) -> None:
    # Prepare
    signed = sign_commitment(alice, DOMAIN, Commitment(TaskId(1), RoundId(1), h("u"), 1))
    tampered = bytearray(signed.signature)
    tampered[40] ^= 0x01

    # Execute
    recovered = recover_signer(
        DOMAIN, SignedCommitment(signed.commitment, alice.address, bytes(tampered))
    )

    # Assert
    assert recovered != alice.address


def test_a_signature_over_another_hash_recovers_another_address(alice: LocalAccount) -> None:
    # Prepare
    signed = sign_commitment(alice, DOMAIN, Commitment(TaskId(1), RoundId(1), h("u"), 1))
    other = Commitment(TaskId(1), RoundId(1), h("u-tampered"), 1)

    # Execute
    recovered = recover_signer(DOMAIN, SignedCommitment(other, alice.address, signed.signature))

    # Assert
    assert recovered != alice.address


def test_contract_accepts_compact_signatures_of_both_parities(
    gw: LedgerGateway, accounts: list[LocalAccount]
) -> None:
    # Prepare: one participant's signature has v=27, the other's v=28
    fed = Federation(gw)
    task_id = fed.task(funding=0)
    low, high = accounts[1], accounts[2]
    fed.register(low, high)
    fed.open(task_id, 1)
    signed = [with_parity(low, gw.domain, task_id, 27), with_parity(high, gw.domain, task_id, 28)]

    # Execute
    fed.commit(task_id, 1, signed)

    # Assert
    recorded = {
        e.args["participant"]: e.args["updateHash"]
        for e in gw.events()
        if e.name == "CommitmentRecorded"
    }
    assert recorded == {s.participant: "0x" + s.commitment.update_hash.hex() for s in signed}
    assert gw.round(task_id, RoundId(1)).commitment_count == 2


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Commitment(TaskId(1), RoundId(1), b"\x01" * 31, 1), "32 bytes"),
        (lambda: Commitment(TaskId(1), RoundId(1), h("u"), -1), "num_examples"),
        (
            lambda: SignedCommitment(
                Commitment(TaskId(1), RoundId(1), h("u"), 1), "0x0", b"1" * 64
            ),
            "65 bytes",
        ),
    ],
)
def test_malformed_commitments_are_refused_before_signing(build: object, message: str) -> None:
    # Execute
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]

    # Assert: the raise above is the assertion; nothing reached the chain


def test_a_signature_from_eth_accounts_typed_data_signer_is_recovered(
    alice: LocalAccount,
) -> None:
    # Prepare: signed by the generic EIP-712 signer (as a wallet would), not by fedchain
    commitment = Commitment(TaskId(5), RoundId(6), h("wallet"), 77)
    types = {"Commitment": [{"name": n, "type": t} for t, n in _FIELDS]}
    message = typed_message(commitment)
    signature = bytes(alice.sign_typed_data(DOMAIN.as_dict(), types, message).signature)

    # Execute
    signer = recover_signer(DOMAIN, SignedCommitment(commitment, alice.address, signature))

    # Assert
    assert signer == alice.address
    assert signature == sign_commitment(alice, DOMAIN, commitment).signature


def test_a_malleated_signature_is_refused(alice: LocalAccount) -> None:
    # Prepare: (r, n - s) with the parity flipped recovers the same key, but the contract
    # refuses it (EIP-2)
    signed = sign_commitment(alice, DOMAIN, Commitment(TaskId(1), RoundId(1), h("u"), 1))
    r, s, v = signed.signature[:32], signed.signature[32:64], signed.signature[64]
    twin = r + (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big") + bytes([55 - v])

    # Execute
    with pytest.raises(SignatureError) as caught:
        recover_signer(DOMAIN, replace(signed, signature=twin))

    # Assert
    assert "upper half of the curve order" in str(caught.value)


# ---------------------------------------------------------------------- consents

CONSENT_TYPE = "Consent(uint256 taskId,bytes32 specHash,uint256 datasetSize,bytes32 dataHash)"

consents = st.builds(
    Consent,
    task_id=UINT256.map(TaskId),
    spec_hash=HASHES,
    dataset_size=st.integers(min_value=0, max_value=2**64 - 1),
    data_hash=HASHES,
)


def _eth_account_consent_digest(domain: LedgerDomain, consent: Consent) -> bytes:
    """The consent's digest by eth_account's generic EIP-712 encoder (an independent one)."""
    message = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Consent": [
                    {"name": "taskId", "type": "uint256"},
                    {"name": "specHash", "type": "bytes32"},
                    {"name": "datasetSize", "type": "uint256"},
                    {"name": "dataHash", "type": "bytes32"},
                ],
            },
            "primaryType": "Consent",
            "domain": domain.as_dict(),
            "message": {
                "taskId": consent.task_id,
                "specHash": consent.spec_hash,
                "datasetSize": consent.dataset_size,
                "dataHash": consent.data_hash,
            },
        }
    )
    return keccak(b"\x19" + message.version + message.header + message.body)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(consent=consents)
def test_the_consent_digest_equals_the_contracts_and_eth_accounts(
    deployed: LedgerGateway, consent: Consent
) -> None:
    # Execute
    onchain = deployed.consent_digest(consent)

    # Assert
    assert consent_digest(deployed.domain, consent) == onchain
    assert _eth_account_consent_digest(deployed.domain, consent) == onchain


def test_the_consent_typehash_is_the_contracts_and_a_signed_consent_recovers(
    deployed: LedgerGateway, alice: LocalAccount
) -> None:
    # Prepare
    consent = Consent(TaskId(1), h("spec"), 120, h("data"))

    # Execute
    signed = sign_consent(alice, deployed.domain, consent)
    other = sign_consent(alice, deployed.domain, replace(consent, dataset_size=121))

    # Assert
    typehash = bytes(deployed.ledger.functions.CONSENT_TYPEHASH().call())
    assert typehash == keccak(text=CONSENT_TYPE)
    assert recover_consent_signer(deployed.domain, signed) == alice.address
    forged = SignedConsent(consent, alice.address, other.signature)  # signed for 121 examples
    assert recover_consent_signer(deployed.domain, forged) != alice.address
    with pytest.raises(SignatureError, match="consent signature"):
        recover_consent_signer(deployed.domain, SignedConsent(consent, alice.address, b"\0" * 65))
