"""Keys of the Flower records fedchain adds, defined once (kebab-case, as Flower's own)."""

__all__ = [
    "COMMIT_EPSILON",
    "COMMIT_NUM_EXAMPLES",
    "COMMIT_PARTICIPANT",
    "COMMIT_SIGNATURE",
    "COMMIT_UPDATE_HASH",
    "CONFIG_CHAIN_ID",
    "CONFIG_CHAIN_WAIT_S",
    "CONFIG_DIRECT",
    "CONFIG_LEDGER",
    "CONFIG_NUM_CLASSES",
    "CONFIG_PARENT_HASH",
    "CONFIG_RPC_URL",
    "CONFIG_SEED",
    "CONFIG_TASK_ID",
    "METRIC_NUM_EXAMPLES",
    "METRIC_TRAIN_LOSS",
    "NODE_KEYSTORE",
    "NODE_NUM_PARTITIONS",
    "NODE_PARTITION_ID",
    "NODE_RPC_URL",
    "RECORD_ARRAYS",
    "RECORD_COMMITMENT",
    "RECORD_CONFIG",
    "RECORD_METRICS",
    "RECORD_PARTICIPANT",
]

# Records of a train reply (Flower's strategies expect one ArrayRecord and one MetricRecord).
RECORD_ARRAYS = "arrays"
RECORD_CONFIG = "config"
RECORD_METRICS = "metrics"
RECORD_COMMITMENT = "fedchain-commitment"
# Without a ledger: the address a participant declares (unsigned; nothing is authenticated).
RECORD_PARTICIPANT = "fedchain-participant"

# Train config the ledger strategy adds for its clients.
CONFIG_TASK_ID = "fedchain-task-id"
CONFIG_CHAIN_ID = "fedchain-chain-id"
CONFIG_LEDGER = "fedchain-ledger"
CONFIG_RPC_URL = "fedchain-rpc-url"
CONFIG_PARENT_HASH = "fedchain-parent-hash"
CONFIG_DIRECT = "fedchain-direct"
CONFIG_SEED = "fedchain-seed"
CONFIG_CHAIN_WAIT_S = "fedchain-chain-wait-s"
CONFIG_NUM_CLASSES = "fedchain-num-classes"

# The commitment ConfigRecord of a reply.
COMMIT_PARTICIPANT = "participant"
COMMIT_UPDATE_HASH = "update-hash"
COMMIT_NUM_EXAMPLES = "num-examples"
COMMIT_SIGNATURE = "signature"
# The signed cumulative privacy spend in micro-epsilon (an int; absent or 0 without DP terms).
COMMIT_EPSILON = "epsilon"

# Metrics of a train reply; "num-examples" is what Flower's strategies weight by.
METRIC_NUM_EXAMPLES = "num-examples"
METRIC_TRAIN_LOSS = "train-loss"

# Node config of a SuperNode (simulation sets the partition keys itself). A hospital's SuperNode
# names its own CSV file and keystore here: both stay on its machine (docs/consortium.md).
NODE_PARTITION_ID = "partition-id"
NODE_NUM_PARTITIONS = "num-partitions"
NODE_DATA_PATH = "data-path"
NODE_KEYSTORE = "keystore"
NODE_RPC_URL = "rpc-url"
