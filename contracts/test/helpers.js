// Shared fixtures and helpers for the Ledger / RewardPool / DevToken tests.
const { ethers } = require("hardhat");

const COORDINATOR_ROLE = ethers.id("COORDINATOR_ROLE");
const PARTICIPANT_ROLE = ethers.id("PARTICIPANT_ROLE");
const LEDGER_ONLY = ethers.id("LEDGER_ONLY");
const DEFAULT_ADMIN_ROLE = ethers.ZeroHash;
const MINTER_ROLE = ethers.id("MINTER_ROLE");

const SPEC_HASH = ethers.id("spec: mnist logistic regression, holdout v1");
const INITIAL_MODEL = ethers.id("initial model");
const SUPPLY = ethers.parseEther("1000000");
const REWARD_PER_ROUND = ethers.parseEther("100");
const FUNDING = ethers.parseEther("1000");

const COMMITMENT_TYPES = {
  Commitment: [
    { name: "taskId", type: "uint256" },
    { name: "round", type: "uint256" },
    { name: "updateHash", type: "bytes32" },
    { name: "numExamples", type: "uint256" },
  ],
};

/** A deterministic non-zero bytes32 from a label. */
const h = (label) => ethers.id(String(label));
const orgHash = (label) => h(`org:${label}`);
const updateHash = (who, taskId, round) => h(`update:${who}:${taskId}:${round}`);
const modelHash = (taskId, round) => h(`global:${taskId}:${round}`);

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
 * signature in EIP-2098 compact form. `domainOverrides` forges the domain (chainId, contract).
 */
async function signCommitment(signer, ledger, { taskId, round, updateHash, numExamples }, domainOverrides = {}) {
  const domain = { ...(await domainOf(ledger)), ...domainOverrides };
  const value = { taskId, round, updateHash, numExamples };
  const sig = ethers.Signature.from(await signer.signTypedData(domain, COMMITMENT_TYPES, value));
  return { participant: signer.address, updateHash, numExamples, r: sig.r, vs: sig.yParityAndS };
}

/** Signs one commitment per signer for (taskId, round), sorted ascending by participant. */
async function signAll(signers, ledger, taskId, round, numExamples = 100n) {
  const out = [];
  for (const s of signers) {
    out.push(await signCommitment(s, ledger, { taskId, round, updateHash: updateHash(s.address, taskId, round), numExamples }));
  }
  return byAddress(out);
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

/** Ledger + DevToken deployed; `admin` is admin and coordinator; nobody registered yet. */
async function deployFixture() {
  const [admin, coordinator2, alice, bob, carol, dave, outsider, funder] = await ethers.getSigners();
  const token = await ethers.deployContract("DevToken", [admin.address, SUPPLY]);
  const ledger = await ethers.deployContract("Ledger", [admin.address]);
  await token.transfer(funder.address, FUNDING * 10n);
  return { ledger, token, admin, coordinator2, alice, bob, carol, dave, outsider, funder };
}

/** deployFixture + task 1 (coordinator admin) funded with FUNDING, alice..dave registered. */
async function taskFixture() {
  const f = await deployFixture();
  const { ledger, token, admin, alice, bob, carol, dave } = f;
  await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
  await token.approve(ledger.target, FUNDING);
  await ledger.fundTask(1n, FUNDING);
  for (const p of [alice, bob, carol, dave]) await ledger.connect(admin).registerParticipant(p.address, orgHash(p.address));
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
  PARTICIPANT_ROLE,
  LEDGER_ONLY,
  DEFAULT_ADMIN_ROLE,
  MINTER_ROLE,
  SPEC_HASH,
  INITIAL_MODEL,
  SUPPLY,
  REWARD_PER_ROUND,
  FUNDING,
  COMMITMENT_TYPES,
  h,
  orgHash,
  updateHash,
  modelHash,
  outcome,
  byAddress,
  domainOf,
  signCommitment,
  signAll,
  eventsOf,
  deployFixture,
  taskFixture,
  openRoundFixture,
};
