"""The deployment file: saved, loaded, refused when missing, malformed or for another chain."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedchain.chain.deployments import Deployment
from fedchain.chain.errors import DeploymentError
from fedchain.chain.gateway import LedgerGateway

SAMPLE = Deployment(
    chain_id=31337,
    ledger="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    token="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    block=1,
    deployer="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
)


@pytest.mark.parametrize("rpc_url", [None, "http://127.0.0.1:8545"])
def test_save_then_load_gives_the_same_deployment(tmp_path: Path, rpc_url: str | None) -> None:
    # Prepare
    deployment = replace(SAMPLE, rpc_url=rpc_url)
    path = tmp_path / "nested" / "fedchain-deployment.json"

    # Execute
    deployment.save(path)
    loaded = Deployment.load(path)

    # Assert
    assert loaded == deployment
    assert json.loads(path.read_text())["ledger"] == SAMPLE.ledger
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_save_replaces_an_older_file(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "deployment.json"
    SAMPLE.save(path)

    # Execute
    replace(SAMPLE, block=99).save(path)

    # Assert
    assert Deployment.load(path).block == 99


def test_load_of_a_missing_file_says_to_deploy(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "absent.json"

    # Execute
    with pytest.raises(DeploymentError) as caught:
        Deployment.load(path)

    # Assert
    assert "`fedchain deploy`" in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"chain_id": 1, "ledger": "0x1"}),
        json.dumps({**json.loads(json.dumps(SAMPLE.__dict__)), "chain_id": "mainnet"}),
        json.dumps([1, 2]),
        "null",
    ],
    ids=["not-json", "missing-fields", "bad-chain-id", "a-list", "null"],
)
def test_load_of_a_malformed_file_raises_deployment_error(tmp_path: Path, content: str) -> None:
    # Prepare
    path = tmp_path / "deployment.json"
    path.write_text(content)

    # Execute
    with pytest.raises(DeploymentError) as caught:
        Deployment.load(path)

    # Assert
    assert str(path) in str(caught.value)


def test_gateway_refuses_a_deployment_for_another_chain(deployed: LedgerGateway) -> None:
    # Prepare
    other_chain = replace(deployed.deployment, chain_id=deployed.deployment.chain_id + 1)

    # Execute
    with pytest.raises(DeploymentError) as caught:
        LedgerGateway(deployed.w3, other_chain, deployed.account)

    # Assert
    message = str(caught.value)
    assert str(other_chain.chain_id) in message
    assert str(deployed.deployment.chain_id) in message
    assert "--rpc-url" in message


def test_gateway_accepts_the_deployment_of_its_chain(deployed: LedgerGateway) -> None:
    # Execute
    gateway = LedgerGateway(deployed.w3, deployed.deployment, deployed.account)

    # Assert
    assert gateway.domain.chain_id == deployed.w3.eth.chain_id
    assert gateway.task_count() == 0
