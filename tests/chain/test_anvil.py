"""A real local node: anvil keeps the ledger across a restart; an absent node is reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from fedchain.chain.backends import ANVIL_ENV, AnvilChain, RpcChain, find_anvil, free_port
from fedchain.chain.deploy import deploy
from fedchain.chain.errors import ChainError, ChainUnreachable, LedgerRoundOutOfOrder
from fedchain.chain.gateway import LedgerGateway, TxResult
from fedchain.chain.records import RoundId, RoundRecord, RoundState, TaskId

from ._support import Federation, h


@pytest.fixture
def anvil(anvil_binary: Path, tmp_path: Path) -> Iterator[AnvilChain]:
    chain = AnvilChain(state_file=tmp_path / "state.json").start()
    yield chain
    chain.close()


def _round_committed(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> tuple[Federation, TaskId, TxResult]:
    """A ledger on ``anvil`` with a task whose round 1 is committed on model "g1", alice
    rewarded; and the commit's result."""
    coordinator, alice = accounts[0], accounts[1]
    fed = Federation(deploy(anvil.w3, coordinator))
    task_id = fed.task(funding=1_000)
    fed.register(alice)
    fed.open(task_id, 1)
    result = fed.commit(task_id, 1, [alice], model="g1", rewards={alice.address: 30})
    return fed, task_id, result


@pytest.mark.anvil
def test_anvil_binary_is_installed() -> None:
    # Execute: a missing anvil fails here with find_anvil's advice, it is never skipped
    try:
        binary = find_anvil()
    except ChainError as exc:
        pytest.fail(f"anvil is required: {exc}")

    # Assert
    assert binary.exists()
    assert binary.name == "anvil"


def test_a_wrong_anvil_override_says_which_setting_is_wrong(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Prepare
    missing = tmp_path / "no-such-anvil"
    monkeypatch.setenv(ANVIL_ENV, str(missing))

    # Execute
    with pytest.raises(ChainError) as caught:
        AnvilChain().start()

    # Assert
    assert ANVIL_ENV in str(caught.value)
    assert str(missing) in str(caught.value)


@pytest.mark.anvil
def test_anvil_state_file_keeps_the_ledger_across_a_restart(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare: a task with a committed round on a first anvil
    coordinator, alice = accounts[0], accounts[1]
    fed, task_id, _ = _round_committed(anvil, accounts)
    deployment, before = fed.gw.deployment, fed.gw.events()
    state_file = anvil.state_file
    assert state_file is not None

    # Execute: stop it (state dumped), start a new anvil on the same state file
    anvil.close()
    restarted = AnvilChain(state_file=state_file).start()
    try:
        gateway = LedgerGateway(restarted.w3, deployment, coordinator)
        task = gateway.task(task_id)
        round_1 = gateway.round(task_id, RoundId(1))
        owed = gateway.owed(alice.address)
        after = gateway.events()
    finally:
        restarted.close()

    # Assert
    assert state_file.stat().st_size > 0
    assert task.spec_hash == h("spec")
    assert task.head_model_hash == h("g1")
    assert task.last_round == 1
    assert round_1 == RoundRecord(RoundState.COMMITTED, 0, 1, h("init"), h("g1"))
    assert owed == 30
    assert after == before


@pytest.mark.anvil
def test_reverts_on_anvil_are_typed(anvil: AnvilChain, accounts: list[LocalAccount]) -> None:
    # Prepare
    fed = Federation(deploy(anvil.w3, accounts[0]))
    task_id = fed.task(funding=0)

    # Execute
    with pytest.raises(LedgerRoundOutOfOrder) as caught:
        fed.gw.open_round(task_id, RoundId(3), h("init"))

    # Assert
    assert caught.value.arguments == {"taskId": task_id, "expected": 1, "got": 3}


def test_rpc_chain_without_a_node_says_how_to_start_one() -> None:
    # Prepare
    url = f"http://127.0.0.1:{free_port()}"

    # Execute
    with pytest.raises(ChainUnreachable) as caught:
        RpcChain(url).w3  # noqa: B018 - the property connects

    # Assert
    message = str(caught.value)
    assert url in message
    assert "`fedchain devnet`" in message
    assert caught.value.url == url
    assert isinstance(caught.value, ConnectionError)


@pytest.mark.anvil
def test_events_read_from_a_node_equal_web3s_decoding(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare: a round committed and the next failed (strings, bools, int256, addresses, hashes)
    fed, task_id, _ = _round_committed(anvil, accounts)
    fed.open(task_id, 2, parent="g1")
    fed.gw.fail_round(task_id, RoundId(2), "no replies")
    ledger = fed.gw.ledger

    # Execute: read from the node's raw answer
    events = fed.gw.events()

    # Assert: what web3's formatted logs and its own event decoding give
    logs = anvil.w3.eth.get_logs({"address": ledger.address, "fromBlock": 0, "toBlock": "latest"})
    expected = []
    for log in logs:
        name = next(
            e.name
            for e in events
            if e.log_index == log["logIndex"] and e.block_number == log["blockNumber"]
        )
        args = ledger.events[name]().process_log(log)["args"]
        plain = {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in args.items()}
        expected.append(
            (name, plain, log["blockNumber"], "0x" + bytes(log["transactionHash"]).hex())
        )
    assert [(e.name, e.args, e.block_number, e.tx_hash) for e in events] == expected
    assert "RoundFailed" in {e.name for e in events}


@pytest.mark.anvil
def test_a_send_reports_its_receipt_as_web3_reads_it(
    anvil: AnvilChain, accounts: list[LocalAccount]
) -> None:
    # Prepare, and execute: a rewarded commit (a receipt with several logs), whose receipt the
    # gateway reads raw from the node
    fed, _, result = _round_committed(anvil, accounts)

    # Assert: the block and gas web3's formatted receipt holds; an unknown hash has none
    receipt = anvil.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
    assert len(receipt["logs"]) >= 3
    assert (result.block_number, result.gas_used) == (receipt["blockNumber"], receipt["gasUsed"])
    assert fed.gw._transport.receipt(HexBytes(result.tx_hash)) is not None
    assert fed.gw._transport.receipt(HexBytes(b"\x01" * 32)) is None
