"""gateway.events() rebuilds a task's whole history from the chain's logs alone."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from fedchain.chain.gateway import LedgerEvent, LedgerGateway, TxResult
from fedchain.chain.logs import LogDecoder
from fedchain.chain.records import Commitment, RoundId, TaskId

from ._support import Federation, h, hex32

HEX32 = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass
class History:
    """A scripted task: the events it left and the transactions that made them."""

    task_id: TaskId
    a: LocalAccount
    b: LocalAccount
    c: LocalAccount
    events: list[LedgerEvent]
    txs: dict[str, TxResult]


def ascending(*accounts: LocalAccount) -> list[str]:
    return sorted((a.address for a in accounts), key=lambda x: int(x, 16))


@pytest.fixture(scope="module")
def history(deployed: LedgerGateway, accounts: list[LocalAccount]) -> History:
    """create, fund, register 3; round 1 relayed + direct; round 2 fails; round 3 relayed; claim."""
    gw, fed = deployed, Federation(deployed)
    a, b, c = accounts[1:4]
    txs: dict[str, TxResult] = {}
    task_id, txs["create"] = gw.create_task(h("spec"), h("init"), 1_000)
    txs["fund"] = gw.fund_task(task_id, 5_000)
    fed.register(a, b, c)
    fed.join(task_id, a, b, c)
    txs["open1"] = gw.open_round(task_id, RoundId(1), h("init"))
    txs["direct"] = gw.as_account(c).submit_commitment(Commitment(task_id, RoundId(1), h("c1"), 5))
    txs["commit1"] = fed.commit(
        task_id, 1, [a, b], model="g1", rewards={a.address: 100, b.address: 50, c.address: 25}
    )
    txs["open2"] = gw.open_round(task_id, RoundId(2), h("g1"))
    txs["fail2"] = gw.fail_round(task_id, RoundId(2), "too few updates")
    txs["open3"] = gw.open_round(task_id, RoundId(3), h("g1"))
    txs["commit3"] = fed.commit(task_id, 3, [c, b, a], model="g3", rewards={a.address: 10})
    _, txs["claim"] = gw.as_account(a).claim()
    return History(task_id, a, b, c, gw.events(), txs)


def only(history: History, name: str) -> list[LedgerEvent]:
    return [e for e in history.events if e.name == name]


def test_events_list_the_whole_history_in_order(history: History) -> None:
    # Prepare: the scripted task (fixture)
    # Execute
    seen = [e.name for e in history.events]

    # Assert
    deployment = ["RoleGranted", *["RoleAdminChanged"] * 3, *["RoleGranted"] * 3]
    registration = ["OrganisationRegistered"] * 3 + ["MemberJoined"] * 3
    round1 = ["RoundOpened", "CommitmentRecorded"]
    round1 += ["CommitmentRecorded"] * 2 + ["RewardAttributed"] * 3
    round1 += ["RoundCommitted", "RoundSettled"]
    round2 = ["RoundOpened", "RoundFailed"]
    round3 = ["RoundOpened"] + ["CommitmentRecorded"] * 3 + ["RewardAttributed"]
    round3 += ["RoundCommitted", "RoundSettled"]
    expected = [*deployment, "TaskCreated", "TaskTermsSet", "TaskFunded", *registration]
    expected += [*round1, *round2, *round3, "RewardClaimed"]
    assert seen == expected


def test_events_are_in_chain_order_with_their_transactions(history: History) -> None:
    # Execute
    positions = [(e.block_number, e.log_index) for e in history.events]
    by_tx = {e.tx_hash for e in history.events}

    # Assert
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    for key in ("create", "fund", "open1", "direct", "commit1", "fail2", "commit3", "claim"):
        assert history.txs[key].tx_hash in by_tx, key
    (committed1, committed3) = only(history, "RoundCommitted")
    assert committed1.tx_hash == history.txs["commit1"].tx_hash
    assert committed3.tx_hash == history.txs["commit3"].tx_hash
    assert committed1.block_number == history.txs["commit1"].block_number


def test_commitment_events_carry_task_round_participant_and_hashes(history: History) -> None:
    # Execute
    recorded = only(history, "CommitmentRecorded")

    # Assert
    t, a, b, c = history.task_id, history.a, history.b, history.c
    assert [(e.args["taskId"], e.args["round"]) for e in recorded] == [(t, 1)] * 3 + [(t, 3)] * 3
    assert [e.args["participant"] for e in recorded] == [
        c.address,
        *ascending(a, b),
        *ascending(a, b, c),
    ]
    assert [e.args["relayed"] for e in recorded] == [False] + [True] * 5
    assert recorded[0].args["updateHash"] == hex32("c1")
    assert recorded[0].args["numExamples"] == 5
    assert all(HEX32.match(e.args["updateHash"]) for e in recorded)


def test_reward_and_round_events_carry_their_arguments(history: History) -> None:
    # Execute
    rewards = [
        (e.args["round"], e.args["participant"], e.args["amount"])
        for e in only(history, "RewardAttributed")
    ]
    committed = [e.args for e in only(history, "RoundCommitted")]
    failed = [e.args for e in only(history, "RoundFailed")]
    opened = [e.args for e in only(history, "RoundOpened")]

    # Assert
    a, b, c = history.a, history.b, history.c
    owed1 = {a.address: 100, b.address: 50, c.address: 25}
    assert rewards == [(1, p, owed1[p]) for p in ascending(a, b, c)] + [(3, a.address, 10)]
    assert [(x["round"], x["globalModelHash"], x["commitmentCount"]) for x in committed] == [
        (1, hex32("g1"), 3),
        (3, hex32("g3"), 3),
    ]
    assert [x["totalReward"] for x in committed] == [175, 10]
    assert all(HEX32.match(x["scoringHash"]) for x in committed)
    assert failed == [{"taskId": history.task_id, "round": 2, "reason": "too few updates"}]
    assert [(x["round"], x["parentModelHash"]) for x in opened] == [
        (1, hex32("init")),
        (2, hex32("g1")),
        (3, hex32("g1")),
    ]


def test_claim_event_names_participant_token_and_amount(
    history: History, deployed: LedgerGateway
) -> None:
    # Execute
    (claimed,) = only(history, "RewardClaimed")

    # Assert
    assert claimed.args == {
        "participant": history.a.address,
        "token": deployed.token.address,
        "amount": 110,
    }


def test_events_can_be_read_for_a_block_range(history: History, deployed: LedgerGateway) -> None:
    # Prepare
    commit1 = history.txs["commit1"].block_number

    # Execute
    window = deployed.events(from_block=commit1, to_block=commit1)

    # Assert
    assert window == [e for e in history.events if e.block_number == commit1]
    assert [e.name for e in window][-2:] == ["RoundCommitted", "RoundSettled"]


def test_the_log_decoder_agrees_with_web3_on_every_event(
    history: History, deployed: LedgerGateway
) -> None:
    # Prepare: the raw logs of the scripted task (strings, bools, int256, addresses, bytes32)
    logs = deployed.w3.eth.get_logs(
        {"address": deployed.ledger.address, "fromBlock": 0, "toBlock": "latest"}
    )
    decoder = LogDecoder(deployed.ledger.abi)

    # Execute
    ours = [decoder.decode(log) for log in logs]

    # Assert: web3's decoding, bytes as 0x-hex, argument for argument and in the same order
    theirs = []
    for log, mine in zip(logs, ours, strict=True):
        assert mine is not None
        event = deployed.ledger.events[mine[0]]().process_log(log)
        plain = {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in event.args.items()}
        theirs.append((event.event, plain))
    assert [(name, list(args.items())) for name, args in ours] == [
        (name, list(args.items())) for name, args in theirs
    ]
    assert {name for name, _ in ours} >= {"RoundFailed", "CommitmentRecorded", "RewardClaimed"}


def test_the_log_decoder_skips_other_logs_and_refuses_hashed_arguments(
    deployed: LedgerGateway,
) -> None:
    # Prepare
    decoder = LogDecoder(deployed.ledger.abi)
    foreign = {"topics": [h("Transfer(address,address,uint256)")], "data": b""}
    hashed = [
        {
            "type": "event",
            "name": "Named",
            "inputs": [{"name": "label", "type": "string", "indexed": True}],
        }
    ]

    # Execute / Assert
    assert decoder.decode(foreign) is None
    with pytest.raises(ValueError, match="indexed string is stored hashed"):
        LogDecoder(hashed)
