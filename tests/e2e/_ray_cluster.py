"""A two-node Ray cluster on loopback for the tests, until SIGTERM: ``python _ray_cluster.py``.

Prints ``address HOST:PORT`` once both nodes are up, then ``raylets PID PID`` (head first).
Ray's own multi-node test cluster (ray.cluster_utils.Cluster) starts the nodes, as
``ray start`` cannot on loopback: Ray replaces a node address of 127.0.0.1 with the machine's
outward one unless in its single-machine mode, and in that mode ``ray start --address`` refuses
to start a second node.
"""

from __future__ import annotations

import os
import signal
import threading

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep 127.0.0.1, read at Ray's import

from ray.cluster_utils import Cluster

LOOPBACK = "127.0.0.1"


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = {"num_cpus": 1, "node_ip_address": LOOPBACK, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    try:
        worker = cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
        cluster.wait_for_nodes()
        raylets = [n.all_processes["raylet"][0].process.pid for n in (cluster.head_node, worker)]
        print(f"address {cluster.address}", flush=True)
        print("raylets " + " ".join(map(str, raylets)), flush=True)
        stop.wait()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
