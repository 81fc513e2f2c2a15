"""A consortium task run in this process, for the auditor's tests: the guide's data (a holdout
and three hospitals' CSV files from scripts/consortium_data.py), a local anvil, the task created
as ``fedchain task create`` creates it, the hospitals registered and joined with their own
DEVNET TEST keys, and two rounds driven by the coordinator's own code on an in-process grid.

The hospitals here are a minimal ClientApp of the test's own (read the site's CSV file, train,
sign the commitment): what the audit checks is the coordinator's record, not the hospital's
node, whose consent checks have tests of their own.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import AnvilChain
from fedchain.chain.deploy import deploy
from fedchain.chain.deployments import Deployment
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import Commitment, RoundId, TaskId
from fedchain.chain.signing import LedgerDomain, sign_commitment
from fedchain.consortium.deployment import create_task
from fedchain.federation.coordinator import run_federation
from fedchain.federation.messages import arrays_to_numpy, numpy_to_arrays
from fedchain.federation.workload import site_columns, site_data, train_locally
from fedchain.hashing import model_hash
from fedchain.ml.data import dataset_hash
from fedchain.record_keys import (
    COMMIT_NUM_EXAMPLES,
    COMMIT_PARTICIPANT,
    COMMIT_SIGNATURE,
    COMMIT_UPDATE_HASH,
    CONFIG_NUM_CLASSES,
    CONFIG_TASK_ID,
    METRIC_NUM_EXAMPLES,
    METRIC_TRAIN_LOSS,
    RECORD_ARRAYS,
    RECORD_COMMITMENT,
    RECORD_CONFIG,
    RECORD_METRICS,
)
from fedchain.settings import RunSettings
from fedchain.simulation.inprocess import InProcessGrid

ROOT = Path(__file__).resolve().parents[2]
SITES = ("hospital-a", "hospital-b", "hospital-c")
FIRST_SITE_KEY = 1  # DEVNET TEST keys 1, 2, 3 (funded on anvil): the hospitals; 0 coordinates


@dataclass
class Consortium:
    """What the coordinator holds and publishes after the run."""

    root: Path  # data/ (holdout and sites' CSV files), run/ (the coordinator's run directory)
    chain: AnvilChain
    task_id: int

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def holdout(self) -> Path:
        return self.root / "data" / "holdout.csv"


def _hospital_app(settings: RunSettings, domain: LedgerDomain, files: dict[int, Path]) -> ClientApp:
    """Each node trains on its own CSV file and signs with its own DEVNET TEST key."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        k = int(context.node_config["partition-id"])
        config = message.content.config_records[RECORD_CONFIG]
        weights = arrays_to_numpy(message.content.array_records[RECORD_ARRAYS])
        data = site_data(
            str(files[k]),
            settings.label_column,
            int(config[CONFIG_NUM_CLASSES]),  # type: ignore[arg-type]
            settings.features,
            settings.classes,
        )
        update, loss = train_locally(settings, data, weights, seed=settings.seed + k)
        commitment = Commitment(
            TaskId(int(config[CONFIG_TASK_ID])),  # type: ignore[arg-type]
            RoundId(int(config["server-round"])),  # type: ignore[arg-type]
            model_hash(update),
            len(data),
        )
        signed = sign_commitment(devnet_account(FIRST_SITE_KEY + k), domain, commitment)
        reply = RecordDict(
            {
                RECORD_ARRAYS: numpy_to_arrays(update),
                RECORD_METRICS: MetricRecord(
                    {METRIC_NUM_EXAMPLES: len(data), METRIC_TRAIN_LOSS: float(loss)}
                ),
                RECORD_COMMITMENT: ConfigRecord(
                    {
                        COMMIT_PARTICIPANT: signed.participant,
                        COMMIT_UPDATE_HASH: commitment.update_hash,
                        COMMIT_NUM_EXAMPLES: len(data),
                        COMMIT_SIGNATURE: signed.signature,
                    }
                ),
            }
        )
        return Message(reply, reply_to=message)

    return app


def run_consortium(root: Path, rounds: int = 2, on: Consortium | None = None) -> Consortium:
    """Write the data, start anvil, create the task, join the sites, run ``rounds`` rounds;
    ``on`` another consortium's chain and ledger: a further task of the same hospitals.

    The caller stops the chain (``consortium.chain.close()``).
    """
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "consortium_data.py"), str(root / "data")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    chain = on.chain if on is not None else AnvilChain().start()
    try:
        if on is None:
            gateway = deploy(chain.w3, devnet_account(0))  # DEVNET TEST key 0: the coordinator
        else:
            deployment = Deployment.load(on.root / "deployment.json")
            gateway = LedgerGateway(chain.w3, deployment, devnet_account(0))
        gateway.deployment.save(root / "deployment.json")
        settings = site_columns(
            RunSettings(
                num_clients=len(SITES),
                num_rounds=rounds,
                model="logreg",
                chain="rpc",
                rpc_url=chain.url,
                deployment=str(root / "deployment.json"),
                holdout=f"csv:{root / 'data' / 'holdout.csv'}",
                dataset="site-csv",
                partition="sites",
                out=str(root / "run"),
                reward_per_round=10**21,
            )
        )
        created = create_task(gateway, settings, fund=rounds * settings.reward_per_round)
        files = {k: root / "data" / f"{site}.csv" for k, site in enumerate(SITES)}
        for k, site in enumerate(SITES):
            account = devnet_account(FIRST_SITE_KEY + k)
            gateway.register_organisation(account.address, site, b"\x01" * 32)
            s = created.settings
            rows = site_data(str(files[k]), s.label_column, None, s.features, s.classes)
            gateway.as_account(account).join_task(created.task_id, len(rows), dataset_hash(rows))
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
        app = _hospital_app(created.settings, gateway.domain, files)
        run_federation(InProcessGrid(app, len(SITES)), created.settings)
    except BaseException:
        if on is None:
            chain.close()
        raise
    return Consortium(root, chain, int(created.task_id))
