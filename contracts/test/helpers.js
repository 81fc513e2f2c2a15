// Shared fixtures and helpers for the Ledger / RewardPool / DevToken tests.
const { ethers } = require("hardhat");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const COORDINATOR_ROLE = ethers.id("COORDINATOR_ROLE");
const REGISTRAR_ROLE = ethers.id("REGISTRAR_ROLE");
const PAUSER_ROLE = ethers.id("PAUSER_ROLE");
const DEFAULT_ADMIN_ROLE = ethers.ZeroHash;
const MINTER_ROLE = ethers.id("MINTER_ROLE");

const SPEC_HASH = ethers.id("spec: mnist logistic regression, holdout v1");
const INITIAL_MODEL = ethers.id("initial model");
const SUPPLY = ethers.parseEther("1000000");
const REWARD_PER_ROUND = ethers.parseEther("100");
const FUNDING = ethers.parseEther("1000");
const DATASET_SIZE = 1000n;
const DAY = 24n * 3600n;

const COMMITMENT_TYPES = {
  Commitment: [
    { name: "taskId", type: "uint256" },
    { name: "round", type: "uint256" },
    { name: "updateHash", type: "bytes32" },
    { name: "numExamples", type: "uint256" },
    { name: "epsilon", type: "uint256" },
  ],
};

const CONSENT_TYPES = {
  Consent: [
    { name: "taskId", type: "uint256" },
    { name: "specHash", type: "bytes32" },
    { name: "datasetSize", type: "uint256" },
    { name: "dataHash", type: "bytes32" },
  ],
};

/** A deterministic non-zero bytes32 from a label. */
const h = (label) => ethers.id(String(label));
const orgHash = (label) => h(`org:${label}`);
const updateHash = (who, taskId, round) => h(`update:${who}:${taskId}:${round}`);
const modelHash = (taskId, round) => h(`global:${taskId}:${round}`);
const dataHash = (who) => h(`data:${who}`);

function outcome(globalModelHash, overrides = {}) {
  return {
    globalModelHash,
    accuracyPpm: 912345,
    lossPpm: 234567n,
    scoringHash: h(`scoring:${globalModelHash}`),
    ...overrides,
  };
}

/** Sorts anything with an address (signer, wallet, struct with `participant`) ascending by address. */
function byAddress(items) {
  const key = (x) => BigInt(x.participant ?? x.address ?? x);
  return [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function domainOf(ledger) {
  const { chainId } = await ethers.provider.getNetwork();
  return { name: "fedchain", version: "1", chainId, verifyingContract: await ledger.getAddress() };
}

/**
 * Signs a commitment with `signer`'s own key (EIP-712) and returns the relayable struct with the
 * signature in EIP-2098 compact form. `epsilon` is the cumulative micro-epsilon (0: no DP terms).
 * `domainOverrides` forges the domain (chainId, contract).
 */
async function signCommitment(signer, ledger, { taskId, round, updateHash, numExamples, epsilon = 0n }, domainOverrides = {}) {
  const domain = { ...(await domainOf(ledger)), ...domainOverrides };
  const value = { taskId, round, updateHash, numExamples, epsilon };
  const sig = ethers.Signature.from(await signer.signTypedData(domain, COMMITMENT_TYPES, value));
  return { participant: signer.address, updateHash, numExamples, epsilon, r: sig.r, vs: sig.yParityAndS };
}

/**
 * Signs a consent to task `taskId` (spec `specHash`) with `signer`'s own key and returns the
 * relayable SignedConsent struct (EIP-2098 compact signature).
 */
async function signConsent(signer, ledger, { taskId, specHash = SPEC_HASH, datasetSize = DATASET_SIZE, dataHash: dh }, domainOverrides = {}) {
  const domain = { ...(await domainOf(ledger)), ...domainOverrides };
  const value = { taskId, specHash, datasetSize, dataHash: dh ?? dataHash(signer.address) };
  const sig = ethers.Signature.from(await signer.signTypedData(domain, CONSENT_TYPES, value));
  return { participant: signer.address, datasetSize, dataHash: value.dataHash, r: sig.r, vs: sig.yParityAndS };
}

/** Registers each signer (or address) as an organisation named after its address. */
async function registerAll(ledger, accounts, registrar) {
  const calls = accounts.map((a) => {
    const address = a.address ?? a;
    return ledger.interface.encodeFunctionData("registerOrganisation", [address, `org ${address.slice(0, 8)}`, orgHash(address), ""]);
  });
  await (registrar ? ledger.connect(registrar) : ledger).multicall(calls);
}

/** Each signer joins task `taskId` itself (spec SPEC_HASH unless given), with DATASET_SIZE. */
async function joinAll(ledger, taskId, signers, specHash = SPEC_HASH, datasetSize = DATASET_SIZE) {
  for (const s of signers) await ledger.connect(s).joinTask(taskId, specHash, datasetSize, dataHash(s.address));
}

/** Signs one commitment per signer for (taskId, round), sorted ascending by participant; `epsilon` (micro-epsilon) for each. */
async function signAll(signers, ledger, taskId, round, numExamples = 100n, epsilon = 0n) {
  const out = [];
  for (const s of signers) {
    out.push(await signCommitment(s, ledger, { taskId, round, updateHash: updateHash(s.address, taskId, round), numExamples, epsilon }));
  }
  return byAddress(out);
}

// ------------------------------------------------------------------ merkle rounds

/** StandardMerkleTree encoding of a reward leaf: (taskId, round, index, participant, updateHash, numExamples, score, amount). */
const LEAF_ENCODING = ["uint256", "uint256", "uint256", "address", "bytes32", "uint256", "int256", "uint256"];

/** One reward leaf as an array in LEAF_ENCODING order. */
function rewardLeaf(taskId, round, index, participant, amount, { numExamples = 100n, score = 1000000n, update } = {}) {
  const who = participant.address ?? participant;
  return [BigInt(taskId), BigInt(round), BigInt(index), who, update ?? updateHash(who, taskId, round), numExamples, score, amount];
}

/** The StandardMerkleTree of `leaves`, and the RoundRoot commitRoundRoot takes (declared count and total by default exact). */
function treeOf(leaves, overrides = {}) {
  const tree = StandardMerkleTree.of(leaves, LEAF_ENCODING);
  const total = leaves.reduce((sum, leaf) => sum + leaf[7], 0n);
  return {
    tree,
    root: { root: tree.root, recordHash: h(`record ${tree.root}`), leafCount: leaves.length, totalReward: total, ...overrides },
  };
}

/** A LEAF_ENCODING array as the contract's RewardLeaf struct. */
const asLeaf = ([, , index, participant, updateHash, numExamples, score, amount]) => ({
  participant,
  updateHash,
  numExamples,
  score,
  amount,
  index,
});

/** Member index of `account` in task `taskId`. */
async function memberIndex(ledger, taskId, account) {
  return (await ledger.getMembership(taskId, account.address ?? account)).index;
}

/** Parsed args of every `name` event `contract` emitted in the receipt, in log order. */
function eventsOf(receipt, contract, name) {
  const target = contract.target.toLowerCase();
  return receipt.logs
    .filter((l) => l.address.toLowerCase() === target)
    .map((l) => contract.interface.parseLog(l))
    .filter((e) => e && e.name === name)
    .map((e) => e.args);
}

// ------------------------------------------------------------------ fixtures

/** Ledger + DevToken deployed; `admin` is admin, coordinator, registrar and pauser; nobody registered yet. */
async function deployFixture() {
  const [admin, coordinator2, alice, bob, carol, dave, outsider, funder] = await ethers.getSigners();
  const token = await ethers.deployContract("DevToken", [admin.address, SUPPLY]);
  const ledger = await ethers.deployContract("Ledger", [admin.address]);
  await token.transfer(funder.address, FUNDING * 10n);
  return { ledger, token, admin, coordinator2, alice, bob, carol, dave, outsider, funder };
}

/** deployFixture + task 1 (coordinator admin) funded with FUNDING by admin; alice..dave registered and members of task 1. */
async function taskFixture() {
  const f = await deployFixture();
  const { ledger, token, alice, bob, carol, dave } = f;
  await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
  await token.approve(ledger.target, FUNDING);
  await ledger.fundTask(1n, FUNDING);
  await registerAll(ledger, [alice, bob, carol, dave]);
  await joinAll(ledger, 1n, [alice, bob, carol, dave]);
  return { ...f, taskId: 1n, participants: byAddress([alice, bob, carol, dave]) };
}

/** taskFixture + round 1 open on the initial model. */
async function openRoundFixture() {
  const f = await taskFixture();
  await f.ledger.openRound(f.taskId, 1n, INITIAL_MODEL);
  return f;
}

module.exports = {
  COORDINATOR_ROLE,
  REGISTRAR_ROLE,
  PAUSER_ROLE,
  DEFAULT_ADMIN_ROLE,
  MINTER_ROLE,
  SPEC_HASH,
  INITIAL_MODEL,
  SUPPLY,
  REWARD_PER_ROUND,
  FUNDING,
  DATASET_SIZE,
  DAY,
  COMMITMENT_TYPES,
  CONSENT_TYPES,
  h,
  orgHash,
  updateHash,
  modelHash,
  dataHash,
  outcome,
  byAddress,
  domainOf,
  signCommitment,
  signAll,
  signConsent,
  registerAll,
  joinAll,
  eventsOf,
  LEAF_ENCODING,
  rewardLeaf,
  treeOf,
  asLeaf,
  memberIndex,
  deployFixture,
  taskFixture,
  openRoundFixture,
};
