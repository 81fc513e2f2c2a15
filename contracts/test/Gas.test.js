const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { SPEC_HASH, INITIAL_MODEL, h, modelHash, outcome, orgHash, signAll, signConsent, rewardLeaf, treeOf, asLeaf } = require("./helpers");

const SIZES = [1, 10, 100];
const MERKLE_SIZES = [10, 1000];
const MEMBERS = 1000;
const BATCH = 100; // keeps each batch under the 16.7M transaction gas cap
const EPSILON_CAP = 8_000_000n; // micro-epsilon

/**
 * A ledger, a funded task and 1,000 member wallets (no ETH: the coordinator relays their signed
 * consents and commitments). Members joined in wallet order, so wallet i has member index i.
 */
async function gasFixture() {
  return fixtureWithCap(0n);
}

/** gasFixture, but task 1 has DP terms: a privacy cap of epsilon 8 (issue 17). */
async function dpGasFixture() {
  return fixtureWithCap(EPSILON_CAP);
}

async function fixtureWithCap(epsilonCap) {
  const [admin] = await ethers.getSigners();
  const token = await ethers.deployContract("DevToken", [admin.address, ethers.parseEther("1000000")]);
  const ledger = await ethers.deployContract("Ledger", [admin.address]);
  const wallets = Array.from({ length: MEMBERS }, (_, i) => new ethers.Wallet(ethers.id(`gas wallet ${i}`), ethers.provider));
  for (let i = 0; i < MEMBERS; i += BATCH) {
    const calls = wallets
      .slice(i, i + BATCH)
      .map((w) => ledger.interface.encodeFunctionData("registerOrganisation", [w.address, `org ${i}`, orgHash(w.address), ""]));
    await ledger.multicall(calls);
  }
  const terms = { minRoundDuration: 0, challengePeriod: 0, claimPeriod: 90 * 86400, epsilonCap };
  await ledger.createTaskWithTerms(SPEC_HASH, INITIAL_MODEL, token.target, ethers.parseEther("1000"), terms);
  await token.approve(ledger.target, ethers.parseEther("100000"));
  await ledger.fundTask(1n, ethers.parseEther("100000"));
  const consents = [];
  for (const w of wallets) consents.push(await signConsent(w, ledger, { taskId: 1n, datasetSize: 1000n, dataHash: h(w.address) }));
  for (let i = 0; i < MEMBERS; i += BATCH) await ledger.joinTaskForBatch(1n, consents.slice(i, i + BATCH));
  return { ledger, token, admin, wallets };
}

/** Opens `round` and commits it with one relayed commitment per wallet (each carrying `epsilon`), rewarded or not; returns gasUsed. */
async function commitWith(ledger, taskId, round, parent, wallets, withRewards, epsilon = 0n) {
  await ledger.openRound(taskId, round, parent);
  const cs = await signAll(wallets, ledger, taskId, round, 100n, epsilon);
  const rewards = withRewards ? cs.map((c) => ({ participant: c.participant, score: 1000000n, amount: 1n })) : [];
  const tx = await ledger.commitRound(taskId, round, cs, outcome(modelHash(taskId, round)), rewards);
  const receipt = await tx.wait();
  expect(receipt.status).to.equal(1);
  return receipt.gasUsed;
}

/** Opens `round` and commits a reward root over one leaf per wallet (wallet i at member index i); returns the tree and gasUsed. */
async function commitRootWith(ledger, round, parent, wallets) {
  await ledger.openRound(1n, round, parent);
  const leaves = wallets.map((w, i) => rewardLeaf(1n, round, i, w, 1000n + BigInt(i)));
  const { tree, root } = treeOf(leaves);
  const receipt = await (await ledger.commitRoundRoot(1n, round, root, outcome(modelHash(1n, round)))).wait();
  return { leaves, tree, gas: receipt.gasUsed };
}

const gasOf = async (txPromise) => (await (await txPromise).wait()).gasUsed;

describe("Ledger gas", function () {
  this.timeout(180000);

  it("grows by a bounded marginal cost per relayed commitment", async function () {
    // Prepare / Execute: per size, a fresh snapshot; round 1 without rewards, round 2 rewarding
    // everyone for the first time, round 3 rewarding everyone again (steady state: owed slots
    // already non-zero).
    const gas = {};
    for (const n of SIZES) {
      const { ledger, wallets } = await loadFixture(gasFixture);
      const subset = wallets.slice(0, n);
      const none = await commitWith(ledger, 1n, 1n, INITIAL_MODEL, subset, false);
      const first = await commitWith(ledger, 1n, 2n, modelHash(1n, 1n), subset, true);
      const steady = await commitWith(ledger, 1n, 3n, modelHash(1n, 2n), subset, true);
      gas[n] = { none, first, steady };
    }

    // Assert
    const marginal = (k) => Number(gas[100][k] - gas[1][k]) / 99;
    const marginal10 = (k) => Number(gas[100][k] - gas[10][k]) / 90;
    const rows = SIZES.map((n) => ({
      commitments: n,
      noRewards: Number(gas[n].none),
      firstRewards: Number(gas[n].first),
      steadyRewards: Number(gas[n].steady),
    }));
    console.log("      commitRound gasUsed:");
    console.table(rows);
    console.log(
      `      marginal gas per commitment (1 -> 100): no rewards ${marginal("none").toFixed(0)}, ` +
        `first-time rewards ${marginal("first").toFixed(0)}, steady-state rewards ${marginal("steady").toFixed(0)}`,
    );
    console.log(
      `      marginal gas per commitment (10 -> 100): no rewards ${marginal10("none").toFixed(0)}, ` +
        `first-time rewards ${marginal10("first").toFixed(0)}, steady-state rewards ${marginal10("steady").toFixed(0)}`,
    );
    console.log(
      `      marginal gas per reward on top of its commitment: first-time ${(marginal("first") - marginal("none")).toFixed(0)}, ` +
        `steady-state ${(marginal("steady") - marginal("none")).toFixed(0)}`,
    );
    // A relayed commitment = signature check + one cold read of the member's consent (eligibility,
    // dataset size: 2,100 since issue 16) + its event. Issue 16's target: at most 12,000 above the
    // fixed part (11,964). Issue 17 adds the signed epsilon: a calldata word, an event word, a
    // longer struct hash and the cap and spend checks on the word already read (12,809 without DP
    // terms; docs/BENCHMARKS.md has both figures and the reasons).
    expect(marginal("none")).to.be.lessThan(13000);
    expect(marginal("steady")).to.be.lessThan(30000);
    expect(marginal("first")).to.be.lessThan(50000);
    for (const n of SIZES) {
      expect(gas[n].none).to.be.lessThan(gas[n].first);
      expect(gas[n].steady).to.be.lessThan(gas[n].first);
    }
    expect(gas[100].steady).to.be.lessThan(3_000_000n);
  });

  it("prices a relayed commitment carrying a growing privacy spend against one without DP terms (issue 17)", async function () {
    // Prepare / Execute: per size, the no-DP task (epsilon 0: the spend word is never written) and
    // the DP task, where round 1 records a first spend, round 2 a larger one (the steady DP
    // case: every round spends) and round 3 the same spend again (no write). No rewards.
    const gas = {};
    for (const n of [1, 100]) {
      const plain = await loadFixture(gasFixture);
      const none = await commitWith(plain.ledger, 1n, 1n, INITIAL_MODEL, plain.wallets.slice(0, n), false);
      const { ledger, wallets } = await loadFixture(dpGasFixture);
      const subset = wallets.slice(0, n);
      const first = await commitWith(ledger, 1n, 1n, INITIAL_MODEL, subset, false, 1_000_000n);
      const grown = await commitWith(ledger, 1n, 2n, modelHash(1n, 1n), subset, false, 2_500_000n);
      const same = await commitWith(ledger, 1n, 3n, modelHash(1n, 2n), subset, false, 2_500_000n);
      gas[n] = { none, first, grown, same };
    }

    // Assert
    const marginal = (k) => Number(gas[100][k] - gas[1][k]) / 99;
    console.log(
      `      marginal gas per relayed commitment (1 -> 100, no rewards): no DP ${marginal("none").toFixed(0)}, ` +
        `DP first spend ${marginal("first").toFixed(0)}, DP spend grown ${marginal("grown").toFixed(0)}, ` +
        `DP spend unchanged ${marginal("same").toFixed(0)}`,
    );
    // The spend shares the membership word the commit reads anyway: a grown spend is one warm
    // write of a non-zero word (2,900) on top of the commitment, never a new word (22,100).
    expect(marginal("none")).to.be.lessThan(13000);
    expect(marginal("grown") - marginal("none")).to.be.within(2900, 3300);
    expect(marginal("first") - marginal("none")).to.be.within(2900, 3300);
    expect(marginal("same") - marginal("none")).to.be.lessThan(150);
  });

  it("commits a merkle round in flat gas from 10 to 1,000 participants; a claim stays under 90,000", async function () {
    // Prepare / Execute: per size, a fresh snapshot; rounds 1 and 2 committed by root
    const roots = {};
    const claims = {};
    for (const n of MERKLE_SIZES) {
      const { ledger, token, admin, wallets } = await loadFixture(gasFixture);
      const subset = wallets.slice(0, n);
      const r1 = await commitRootWith(ledger, 1n, INITIAL_MODEL, subset);
      const r2 = await commitRootWith(ledger, 2n, modelHash(1n, 1n), subset);
      roots[n] = r1.gas;
      const claimLeaf = (r, i) => ledger.claimLeaf(1n, BigInt(r === r1 ? 1 : 2), asLeaf(r.leaves[i]), r.tree.getProof(r.leaves[i]));
      // first claim of a round: fresh bitmap word, fresh owed slot
      const first = await gasOf(claimLeaf(r1, 0));
      // a later participant of the round: bitmap word already non-zero, fresh owed slot
      const nextInWord = await gasOf(claimLeaf(r1, 1));
      // steady state: the same participant's next round, owed already non-zero (not yet pulled)
      await gasOf(claimLeaf(r2, 0));
      const steady = await gasOf(claimLeaf(r2, 1));
      // the pull payment itself
      await admin.sendTransaction({ to: wallets[1].address, value: ethers.parseEther("1") });
      const pull = await gasOf(ledger.connect(wallets[1]).claim(token.target));
      claims[n] = { first, nextInWord, steady, pull };
    }

    // Assert
    console.log("      commitRoundRoot gasUsed:", Object.fromEntries(MERKLE_SIZES.map((n) => [n, Number(roots[n])])));
    console.log("      claim gasUsed (claimLeaf first / next in word / steady; claim(token)):");
    console.table(MERKLE_SIZES.map((n) => ({ participants: n, ...Object.fromEntries(Object.entries(claims[n]).map(([k, v]) => [k, Number(v)])) })));
    const ratio = Number(roots[1000]) / Number(roots[10]);
    expect(ratio).to.be.within(0.99, 1.01);
    for (const n of MERKLE_SIZES) {
      expect(claims[n].pull).to.be.lessThan(90000n);
      expect(claims[n].steady).to.be.lessThan(90000n);
      expect(claims[n].nextInWord).to.be.lessThan(90000n);
    }
  });
});
