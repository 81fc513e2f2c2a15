"""The committed ABI + bytecode match the Solidity sources, and every custom error has a type."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError

from fedchain.chain import _build
from fedchain.chain._artifacts import load_artifact
from fedchain.chain._reverts import RevertDecoder
from fedchain.chain.errors import REVERT_ERRORS, ContractRevert

#: OpenZeppelin errors the Ledger inherits but fedchain never expects to meet; they are decoded
#: into a generic ContractRevert subclass named after them instead of a hand-written class.
INTERNAL_OZ_ERRORS = {
    "InvalidShortString": "EIP712's ShortStrings, only for names longer than 31 bytes",
    "StringTooLong": "EIP712's ShortStrings, only for names longer than 31 bytes",
    "SafeERC20FailedOperation": "only tokens that return false instead of reverting",
    "ReentrancyGuardReentrantCall": "only a malicious token reentering claim/fundTask",
    "AccessControlBadConfirmation": "only renounceRole with a wrong confirmation address",
    "FailedCall": "Multicall's delegatecall, only for a batched call reverting without data",
    "AddressEmptyCode": "Multicall's delegatecall, only for a target without code (never self)",
}
SAMPLES: dict[str, Any] = {
    "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "bytes32": b"\x11" * 32,
    "string": "sample",
    "bool": True,
}


def errors_of(contract: str) -> list[dict[str, Any]]:
    return [item for item in load_artifact(contract)["abi"] if item["type"] == "error"]


def sample(abi_type: str) -> Any:
    if abi_type.startswith("uint"):
        return 7
    if abi_type.startswith("int"):
        return -7
    return SAMPLES[abi_type]


@pytest.mark.parametrize("contract", _build.CONTRACTS)
def test_committed_artifacts_were_built_from_the_current_sources(contract: str) -> None:
    # Prepare
    sources = _build.collect_sources()

    # Execute
    current = _build.sources_hash(sources)

    # Assert
    assert "contracts/Ledger.sol" in sources
    assert "contracts/RewardPool.sol" in sources
    assert load_artifact(contract)["sourcesHash"] == current, (
        f"{contract}.json is stale: run scripts/build_contracts after editing contracts/"
    )


def test_sources_hash_changes_with_any_source() -> None:
    # Prepare
    sources = _build.collect_sources()
    edited = {**sources, "contracts/Ledger.sol": sources["contracts/Ledger.sol"] + "\n"}

    # Execute
    before, after = _build.sources_hash(sources), _build.sources_hash(edited)

    # Assert
    assert before != after


@pytest.mark.solc  # a minute or more of solc-js (via-IR): `make test` runs it in the contracts'
@pytest.mark.slow  # lane, beside the consortium tests, not among the federations
def test_a_full_recompile_reproduces_the_committed_artifacts() -> None:
    # Prepare: solc-js needs node; its absence is a failure, not a skip
    if shutil.which("node") is None:
        pytest.fail("node is required to recompile the contracts with solc-js (scripts/solcjs)")

    # Execute
    built = _build.build()

    # Assert
    assert set(built) == set(_build.CONTRACTS)
    for name, artifact in built.items():
        committed = load_artifact(name)
        assert artifact["abi"] == committed["abi"], name
        assert artifact["bytecode"] == committed["bytecode"], name
        assert artifact["deployedBytecode"] == committed["deployedBytecode"], name
        assert artifact["compiler"] == committed["compiler"], name


def test_every_ledger_custom_error_has_a_typed_exception() -> None:
    # Prepare
    names = {item["name"] for item in errors_of("Ledger")}

    # Execute
    unmapped = names - set(REVERT_ERRORS)

    # Assert
    assert unmapped == set(INTERNAL_OZ_ERRORS)
    assert {n for n in names if n.startswith(("Ledger", "RewardPool"))} <= set(REVERT_ERRORS)


def test_typed_exceptions_declare_the_abi_argument_names() -> None:
    # Prepare
    abi = {e["name"]: e for contract in _build.CONTRACTS for e in errors_of(contract)}

    # Execute
    declared = {name: cls.fields for name, cls in REVERT_ERRORS.items()}

    # Assert
    assert set(declared) <= set(abi), set(declared) - set(abi)
    for name, fields in declared.items():
        assert fields == tuple(i["name"] for i in abi[name]["inputs"]), name


@pytest.mark.parametrize(
    "error",
    list({e["name"]: e for c in _build.CONTRACTS for e in errors_of(c)}.values()),
    ids=lambda e: str(e["name"]),
)
def test_every_revert_decodes_into_a_contract_revert_named_after_it(error: dict[str, Any]) -> None:
    # Prepare: the raw revert data a node returns for this custom error
    decoder = RevertDecoder([load_artifact(c)["abi"] for c in _build.CONTRACTS])
    types = [i["type"] for i in error["inputs"]]
    values = [sample(t) for t in types]
    selector = keccak(text=f"{error['name']}({','.join(types)})")[:4]
    data = "0x" + (selector + abi_encode(types, values)).hex()

    # Execute
    decoded = decoder.decode(ContractCustomError(data, data=data))

    # Assert
    assert isinstance(decoded, ContractRevert)
    assert type(decoded).__name__ == error["name"]
    assert list(decoded.arguments) == [i["name"] for i in error["inputs"]]
    for value, got in zip(values, decoded.arguments.values(), strict=True):
        assert got == value or str(got).lower() == str(value).lower()
    assert str(decoded).startswith(error["name"] + "(")
