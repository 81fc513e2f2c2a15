"""The in-process grid: delivery by node, error replies, replies later than the timeout dropped."""

from __future__ import annotations

import time

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity

from fedchain import record_keys
from fedchain.simulation.inprocess import InProcessGrid


def _echo_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        partition = int(context.node_config[record_keys.NODE_PARTITION_ID])
        if partition == 1:
            raise RuntimeError("disk full")
        if partition == 3:
            time.sleep(0.3)  # slower than the timeout below
        config = ConfigRecord({"partition": partition, "node": context.node_id})
        return Message(RecordDict({"echo": config}), reply_to=message)

    return app


def test_messages_reach_their_nodes_and_a_raising_client_answers_an_error() -> None:
    # Prepare
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    grid = InProcessGrid(_echo_app(), num_nodes=4)
    nodes = list(grid.get_node_ids())
    messages = [Message(RecordDict(), dst_node_id=n, message_type="train") for n in nodes]
    # Execute
    replies = list(grid.send_and_receive(messages, timeout=0.2))
    # Assert
    assert len(nodes) == 4
    assert 1 not in nodes  # the server's node id
    by_node = {r.metadata.src_node_id: r for r in replies}
    assert set(by_node) == set(nodes[:3])  # the slow one answered too late
    for partition, node in enumerate(nodes[:3]):
        reply = by_node[node]
        assert reply.metadata.reply_to_message_id  # a reply to the message sent
        if partition == 1:
            assert reply.has_error()
            assert "disk full" in reply.error.reason
        else:
            assert reply.content.config_records["echo"]["partition"] == partition
