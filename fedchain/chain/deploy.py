"""Deploying the contracts: the dev reward token and the Ledger, from the committed artifacts."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedchain.chain._artifacts import load_artifact
from fedchain.chain._transport import RetryPolicy, retry_each_request
from fedchain.chain.deployments import Deployment
from fedchain.chain.errors import TransactionFailed
from fedchain.chain.gateway import LedgerGateway

__all__ = ["deploy"]


def deploy(
    w3: Web3, deployer: LocalAccount, token_supply: int = 10**27, retry: RetryPolicy | None = None
) -> LedgerGateway:
    """Deploy the dev reward token and the Ledger; ``deployer`` becomes admin and coordinator."""
    retry_each_request(w3, retry or RetryPolicy())
    chain_id = int(w3.eth.chain_id)
    block = int(w3.eth.block_number)
    token = _deploy_contract(w3, deployer, "DevToken", chain_id, deployer.address, token_supply)
    ledger = _deploy_contract(w3, deployer, "Ledger", chain_id, deployer.address)
    url = getattr(w3.provider, "endpoint_uri", None)
    deployment = Deployment(chain_id, ledger, token, block + 1, deployer.address, url and str(url))
    gateway = LedgerGateway(w3, deployment, deployer, retry)
    gateway.deployed_here()
    return gateway


def _deploy_contract(w3: Web3, deployer: LocalAccount, name: str, chain_id: int, *args: Any) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    nonce = w3.eth.get_transaction_count(deployer.address, "pending")
    tx = factory.constructor(*args).build_transaction(
        {"from": deployer.address, "nonce": nonce, "chainId": chain_id}
    )
    signed = deployer.sign_transaction(dict(tx))
    w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(signed.hash)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise TransactionFailed(f"deploying {name} failed in tx 0x{bytes(signed.hash).hex()}")
    return str(receipt["contractAddress"])
