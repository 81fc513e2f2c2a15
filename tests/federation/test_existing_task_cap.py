"""A consortium run takes an existing task only if the chain's privacy cap is its spec's
(issue 17): `fedchain task create` puts the spec's epsilon on chain; a task created with another
cap is refused."""

from __future__ import annotations

import pytest

from fedchain.chain.accounts import devnet_account
from fedchain.chain.backends import EmbeddedChain
from fedchain.chain.deploy import deploy
from fedchain.chain.gateway import LedgerGateway
from fedchain.chain.records import TaskTerms
from fedchain.consortium.deployment import create_task
from fedchain.federation.coordinator import TaskMismatchError, _existing_task, task_spec
from fedchain.privacy import to_micro
from fedchain.settings import RunSettings

# A consortium task with DP terms; its holdout is the built-in set.
TASK = RunSettings(
    model="logreg",
    chain="rpc",
    rpc_url="http://127.0.0.1:1",  # never reached: the tests hand the gateway over
    holdout="breast-cancer",
    dataset="site-csv",
    partition="sites",
    reward_per_round=10**21,
    dp="2.5",
)


@pytest.fixture(scope="module")
def chain() -> LedgerGateway:
    return deploy(EmbeddedChain().w3, devnet_account(0))  # DEVNET TEST key


def test_task_create_puts_the_specs_cap_on_chain_and_the_run_takes_it(chain: LedgerGateway) -> None:
    # Execute
    created = create_task(chain, TASK, fund=0)

    # Assert
    assert chain.task(created.task_id).epsilon_cap == to_micro(2.5) == 2_500_000
    initial = bytes.fromhex(created.spec.initial_model_hash[2:])
    assert _existing_task(chain, created.settings, created.spec, initial) == created.task_id


def test_a_task_created_with_another_cap_is_refused(chain: LedgerGateway) -> None:
    # Prepare: the spec's hash, but a cap of epsilon 3 on chain
    spec = task_spec(TASK)
    initial = bytes.fromhex(spec.initial_model_hash[2:])
    task_id, _ = chain.create_task(
        spec.spec_hash(), initial, TASK.reward_per_round, terms=TaskTerms(epsilon_cap=3_000_000)
    )
    settings = TASK.with_changes(task_id=int(task_id))

    # Execute / Assert
    with pytest.raises(TaskMismatchError, match="privacy cap of 3000000 micro-epsilon"):
        _existing_task(chain, settings, spec, initial)
