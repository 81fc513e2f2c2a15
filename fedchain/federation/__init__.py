"""Both sides of a round, without web3: the ledger strategy, the participant, the coordinator."""
