// Randomized invariant suite (seeded): sequences of joins, leaves, removals, funding, rounds
// (relayed and merkle, including faulty trees and same-block multicalls), claims, challenges,
// closes, refunds, sweeps, time jumps, pauses and role changes, over a standard token and a
// fee-on-transfer token. After every step's transaction the events it emitted are checked; every
// few steps and at the end of each sequence the books are checked against the token balances:
//
//   attributed <= funded, reserved <= attributed                       (per task)
//   refunded <= funded - attributed, swept <= reserved                 (per task)
//   sum(owed + claimed) == sum(attributed - reserved)  => claimed <= attributed   (per token)
//   balance(ledger) == funded - claimed - refunded - swept             (per token)
//   every RewardAttributed / RewardLeafClaimed pays an eligible member of that task and round
//   every round takes at most rewardPerRound, no root pays out more than it declared, and no
//   round is committed in the block it was opened
//   after a wind-down (every task ended, claim periods over, every funder refunded and swept,
//   everyone claimed) nothing but rounding dust stays in the ledger
//
// INVARIANT_SEQUENCES / INVARIANT_STEPS / INVARIANT_SEED override the defaults (200 x 20, seed 1).
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const { h, orgHash, outcome, modelHash, byAddress, signCommitment, signConsent, rewardLeaf, treeOf, asLeaf } = require("./helpers");

const SEQUENCES = Number(process.env.INVARIANT_SEQUENCES ?? 200);
const STEPS = Number(process.env.INVARIANT_STEPS ?? 20);
const SEED = Number(process.env.INVARIANT_SEED ?? 1);
const CHECK_EVERY = 10;
const CAP = 100n;
const SPECS = [h("inv spec 1"), h("inv spec 2"), h("inv spec 3")];
const COORDINATOR_ROLE = ethers.id("COORDINATOR_ROLE");

/** mulberry32: a tiny seeded PRNG. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
    subset: (xs) => xs.filter(() => next() < 0.5),
  };
}

/**
 * Ledger, a DevToken and a FeeToken; admin (coordinator, registrar, pauser), coordinator2
 * (coordinator, also a registered organisation), five would-be participants of which four are
 * registered, two funders. Task 1 (DevToken, no minimum duration, challenge 50 s, claim 400 s),
 * task 2 (DevToken, 20 s rounds, no challenge, claim 300 s, run by coordinator2), task 3 (FeeToken).
 */
/** Privacy caps of tasks 1..3 (micro-epsilon; task 2 has no DP terms). */
const EPSILON_CAPS = [5_000_000n, 0n, 1_000_000n];

async function invariantFixture() {
  const [admin, coordinator2, p0, p1, p2, p3, p4, f0, f1] = await ethers.getSigners();
  const ledger = await ethers.deployContract("Ledger", [admin.address]);
  const dev = await ethers.deployContract("DevToken", [admin.address, 10n ** 24n]);
  const fee = await ethers.deployContract("FeeToken", [admin.address, 10n ** 24n]);
  await ledger.grantRole(COORDINATOR_ROLE, coordinator2.address);
  for (const who of [coordinator2, p0, p1, p2, p3]) await ledger.registerOrganisation(who.address, `org ${who.address}`, orgHash(who.address), "");
  await ledger.createTaskWithTerms(SPECS[0], h("init 1"), dev.target, CAP, { minRoundDuration: 0, challengePeriod: 50, claimPeriod: 400, epsilonCap: EPSILON_CAPS[0] });
  await ledger.connect(coordinator2).createTaskWithTerms(SPECS[1], h("init 2"), dev.target, CAP, { minRoundDuration: 20, challengePeriod: 0, claimPeriod: 300, epsilonCap: EPSILON_CAPS[1] });
  await ledger.createTaskWithTerms(SPECS[2], h("init 3"), fee.target, CAP, { minRoundDuration: 0, challengePeriod: 0, claimPeriod: 100, epsilonCap: EPSILON_CAPS[2] });
  for (const f of [f0, f1, admin]) {
    if (f !== admin) {
      await dev.transfer(f.address, 10n ** 21n);
      await fee.transfer(f.address, 10n ** 21n);
    }
    await dev.connect(f).approve(ledger.target, ethers.MaxUint256);
    await fee.connect(f).approve(ledger.target, ethers.MaxUint256);
  }
  // a productive start: p0..p2 members of tasks 1 and 2 (dataset 150), both funded
  for (const [i, spec] of SPECS.slice(0, 2).entries()) {
    for (const p of [p0, p1, p2]) await ledger.connect(p).joinTask(BigInt(i + 1), spec, 150n, h(p.address));
    await ledger.connect(f0).fundTask(BigInt(i + 1), 500n);
  }
  return { ledger, dev, fee, admin, coordinator2, people: [coordinator2, p0, p1, p2, p3, p4], funders: [f0, f1, admin], all: [admin, coordinator2, p0, p1, p2, p3, p4, f0, f1] };
}

describe("Ledger invariants (randomized, seeded)", function () {
  this.timeout(300000);

  it(`holds the books over ${SEQUENCES} random sequences of ${STEPS} steps (seed ${SEED})`, async function () {
    const successes = {};
    for (let s = 0; s < SEQUENCES; s++) {
      const f = await loadFixture(invariantFixture);
      const rnd = prng(SEED * 100003 + s);
      const roots = []; // { taskId, round, leaves, tree }
      const opened = {}; // `${task}:${round}` -> block number of RoundOpened
      const trace = [];
      const spends = {}; // `${task}:${participant}` -> the epsilon of its latest CommitmentRecorded

      /** A spend for `p` in `taskId`: mostly its recorded one or more, now and then below it or past the cap. */
      const epsilonFor = async (taskId, p) => {
        const spent = (await f.ledger.getMembership(taskId, p.address)).epsilonSpent;
        const roll = rnd.int(10);
        if (roll < 3) return spent;
        if (spent > 0n && roll < 7) return spent - 1n; // skippedDecreased: rare (Privacy.test.js covers it)
        if (roll < 9) return spent + BigInt(rnd.int(600_000));
        return EPSILON_CAPS[Number(taskId) - 1] + 1n;
      };

      const tokenOf = (taskId) => (taskId === 3n ? f.fee : f.dev);

      /** Checks the events of one successful transaction. */
      const checkReceipt = async (receipt) => {
        for (const log of receipt.logs) {
          if (log.address !== f.ledger.target) continue;
          const e = f.ledger.interface.parseLog(log);
          if (!e) continue;
          if (e.name === "CommitmentRecorded") {
            const key = `${e.args.taskId}:${e.args.participant}`;
            expect(e.args.epsilon, "spend within the cap").to.be.at.most(EPSILON_CAPS[Number(e.args.taskId) - 1]);
            expect(e.args.epsilon, "spend never decreases").to.be.at.least(spends[key] ?? 0n);
            spends[key] = e.args.epsilon;
            if (e.args.epsilon > 0n) successes.spendRecorded = (successes.spendRecorded ?? 0) + 1;
          }
          if (e.name === "CommitmentSkipped" && e.args.reason >= 5n) {
            const name = e.args.reason === 5n ? "skippedAboveCap" : "skippedDecreased";
            successes[name] = (successes[name] ?? 0) + 1;
          }
          if (e.name === "RoundOpened") opened[`${e.args.taskId}:${e.args.round}`] = receipt.blockNumber;
          if (e.name === "RoundCommitted") {
            expect(receipt.blockNumber, "committed in the block it opened").to.be.greaterThan(opened[`${e.args.taskId}:${e.args.round}`]);
          }
          if (e.name === "RewardAttributed" || e.name === "RewardLeafClaimed") {
            expect(await f.ledger.isEligible(e.args.taskId, e.args.round, e.args.participant), `${e.name} to a non-member`).to.equal(true);
          }
          if (e.name === "RoundSettled") {
            expect(e.args.attributed + e.args.unearned).to.equal((await f.ledger.getTask(e.args.taskId)).rewardPerRound);
            expect(e.args.attributed).to.be.at.most(CAP);
          }
        }
      };

      /** Sends one action; reverts are expected and ignored, successes are counted and checked. */
      const act = async (name, send) => {
        trace.push(name);
        if (process.env.INVARIANT_DEBUG) console.log(name);
        let receipt;
        try {
          receipt = await (await send()).wait();
        } catch (err) {
          if (!/reverted|revert/i.test(String(err.message))) throw err;
          if (process.env.INVARIANT_DEBUG) console.log("  ->", String(err.message).slice(0, 160));
          return;
        }
        successes[name] = (successes[name] ?? 0) + 1;
        await checkReceipt(receipt);
      };

      const checkBooks = async () => {
        const tasks = [];
        for (const id of [1n, 2n, 3n]) tasks.push(await f.ledger.getTask(id));
        for (const [i, t] of tasks.entries()) {
          const where = `task ${i + 1} after ${trace.join(",")}`;
          expect(t.attributed, `attributed <= funded, ${where}`).to.be.at.most(t.funded);
          expect(t.reserved, `reserved <= attributed, ${where}`).to.be.at.most(t.attributed);
          expect(t.refunded, `refunded <= funded - attributed, ${where}`).to.be.at.most(t.funded - t.attributed);
          expect(t.swept, `swept <= reserved, ${where}`).to.be.at.most(t.reserved);
        }
        for (const token of [f.dev, f.fee]) {
          const mine = tasks.filter((t) => t.token === token.target);
          const sum = (k) => mine.reduce((acc, t) => acc + t[k], 0n);
          let owed = 0n;
          let claimed = 0n;
          for (const a of f.all) {
            owed += await f.ledger.owed(token.target, a.address);
            claimed += await f.ledger.claimed(token.target, a.address);
          }
          expect(owed + claimed, "owed + claimed == credited").to.equal(sum("attributed") - sum("reserved"));
          expect(claimed, "claimed <= attributed").to.be.at.most(sum("attributed"));
          expect(await token.balanceOf(f.ledger.target), "balance == funded - claimed - refunded - swept").to.equal(
            sum("funded") - claimed - sum("refunded") - sum("swept"),
          );
        }
        for (const id of [1n, 2n, 3n]) {
          for (const p of f.people) {
            const stored = (await f.ledger.getMembership(id, p.address)).epsilonSpent;
            expect(stored, "the stored spend is the last recorded one").to.equal(spends[`${id}:${p.address}`] ?? 0n);
          }
        }
        for (const r of roots) {
          const stored = await f.ledger.getRewardRoot(r.taskId, r.round);
          expect(stored.claimed).to.be.at.most(stored.total);
          expect(stored.claimedCount).to.be.at.most(stored.declaredLeafCount);
        }
      };

      for (let step = 0; step < STEPS; step++) {
        // weighted choice of the action kind (index into the branches below)
        const WEIGHTS = [1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 2, 2, 1, 2, 3, 1, 1, 1];
        let pickAt = rnd.int(WEIGHTS.reduce((a, b) => a + b, 0));
        let kind = 0;
        while (pickAt >= WEIGHTS[kind]) pickAt -= WEIGHTS[kind++];
        // the task: one with an open round for commitments, an ended one for refunds, else any
        const states = [];
        for (const id of [1n, 2n, 3n]) {
          const t = await f.ledger.getTask(id);
          states.push({ id, t, open: t.lastRound !== 0n && (await f.ledger.getRound(id, t.lastRound)).state === 1n });
        }
        const pickTask = (pred) => {
          const fit = states.filter(pred);
          return rnd.pick(fit.length > 0 && rnd.chance(0.85) ? fit : states);
        };
        const chosen = kind >= 7 && kind <= 10 ? pickTask((x) => x.open) : kind === 15 ? pickTask((x) => x.t.status !== 1n) : rnd.pick(states);
        const taskId = chosen.id;
        const task = chosen.t;
        const spec = SPECS[Number(taskId) - 1];
        const who = rnd.pick(f.people);
        const coord = f.all.find((a) => a.address === task.coordinator);
        const r = task.lastRound;
        const roundState = chosen.open ? 1n : 0n;
        if (kind <= 2) {
          const size = BigInt(1 + rnd.int(200));
          if (rnd.chance(0.5)) await act("joinTask", () => f.ledger.connect(who).joinTask(taskId, spec, size, h(who.address)));
          else {
            const consents = [];
            for (const p of rnd.subset(f.people)) consents.push(await signConsent(p, f.ledger, { taskId, specHash: spec, datasetSize: size }));
            await act("joinTaskForBatch", () => f.ledger.joinTaskForBatch(taskId, consents));
          }
        } else if (kind === 3) {
          if (rnd.chance(0.7)) await act("leaveTask", () => f.ledger.connect(who).leaveTask(taskId));
          else await act("removeMember", () => f.ledger.connect(coord).removeMember(taskId, who.address));
        } else if (kind === 4) {
          const funder = rnd.pick(f.funders);
          await act("fundTask", () => f.ledger.connect(funder).fundTask(taskId, BigInt(1 + rnd.int(300))));
        } else if (kind <= 6) {
          if (roundState === 1n && rnd.chance(0.3)) await act("failRound", () => f.ledger.connect(coord).failRound(taskId, r, "random"));
          else await act("openRound", () => f.ledger.connect(coord).openRound(taskId, r + 1n, task.headModelHash));
        } else if (kind === 7) {
          const member = rnd.chance(0.8) ? rnd.pick(f.people.slice(1, 4)) : who;
          const epsilon = await epsilonFor(taskId, member);
          await act("submitCommitment", () => f.ledger.connect(member).submitCommitment(taskId, r, h(`d ${s} ${step}`), BigInt(rnd.int(220)), epsilon));
        } else if (kind <= 9) {
          const signers = byAddress(rnd.subset(f.people));
          const cs = [];
          for (const p of signers) {
            const epsilon = await epsilonFor(taskId, p);
            cs.push(await signCommitment(p, f.ledger, { taskId, round: r, updateHash: h(`u ${p.address} ${r}`), numExamples: BigInt(rnd.int(220)), epsilon }));
          }
          // rewards for some of the committers (relayed or direct), now and then for a stranger
          const direct = [];
          for (const p of f.people) if ((await f.ledger.directCommitment(taskId, r, p.address)) !== ethers.ZeroHash) direct.push(p);
          const paid = rnd.subset([...new Set([...signers, ...direct])]);
          if (rnd.chance(0.1)) paid.push(rnd.pick(f.all));
          const rewards = byAddress([...new Set(paid)]).map((p) => ({ participant: p.address, score: 1n, amount: BigInt(rnd.int(60)) }));
          await act("commitRound", () => f.ledger.connect(coord).commitRound(taskId, r, cs, outcome(modelHash(taskId, r)), rewards));
        } else if (kind === 10) {
          // a root over random leaves: members at their index, strangers, wrong indexes, duplicates
          const leaves = [];
          for (const p of rnd.subset(f.people)) {
            const m = await f.ledger.getMembership(taskId, p.address);
            const index = rnd.chance(0.85) ? m.index : BigInt(rnd.int(6));
            leaves.push(rewardLeaf(taskId, r, index, p, BigInt(rnd.int(25)), { numExamples: BigInt(rnd.int(180)) }));
          }
          if (leaves.length === 0) leaves.push(rewardLeaf(taskId, r, 0n, rnd.pick(f.all), 10n));
          if (rnd.chance(0.2)) leaves.push(leaves[0]);
          const t = treeOf(leaves);
          const declared = rnd.pick([t.root.totalReward, t.root.totalReward / 2n, t.root.totalReward + 20n]);
          let count = rnd.pick([leaves.length, Math.max(1, leaves.length - 1)]);
          if (rnd.chance(0.85)) count = Math.min(count, Number(task.memberCount));
          await act("commitRoundRoot", () =>
            f.ledger.connect(coord).commitRoundRoot(taskId, r, { ...t.root, totalReward: declared, leafCount: count }, outcome(modelHash(taskId, r))),
          );
          if ((await f.ledger.getRewardRoot(taskId, r)).root === t.root.root) roots.push({ taskId, round: r, leaves, tree: t.tree });
        } else if (kind <= 12) {
          if (roots.length === 0) continue;
          const root = rnd.pick(roots);
          const leaf = rnd.pick(root.leaves);
          if (kind === 11) await act("claimLeaf", () => f.ledger.connect(rnd.pick(f.all)).claimLeaf(root.taskId, root.round, asLeaf(leaf), root.tree.getProof(leaf)));
          else await act("voidRoot", () => f.ledger.connect(rnd.pick(f.all)).voidRoot(root.taskId, root.round, asLeaf(leaf), root.tree.getProof(leaf)));
        } else if (kind === 13) {
          const a = rnd.pick(f.all);
          await act("claim", () => f.ledger.connect(a).claim(tokenOf(taskId).target));
        } else if (kind === 14) {
          const closer = rnd.chance(0.7) ? coord : f.admin;
          if (step < STEPS / 3) continue; // let a task live a while first
          if (rnd.chance(0.5)) await act("closeTask", () => f.ledger.connect(closer).closeTask(taskId));
          else await act("cancelTask", () => f.ledger.connect(closer).cancelTask(taskId));
        } else if (kind === 15) {
          const funder = rnd.pick(f.funders);
          if (rnd.chance(0.5)) await act("refund", () => f.ledger.connect(funder).refund(taskId));
          else await act("sweep", () => f.ledger.connect(funder).sweep(taskId));
        } else if (kind === 16) {
          await time.increase(1 + rnd.int(250));
        } else if (kind === 17) {
          // role changes: coordinator2 loses or regains its role; the admin hands a task over
          const choice = rnd.int(4);
          if (choice === 0) await act("revokeRole", () => f.ledger.revokeRole(COORDINATOR_ROLE, f.coordinator2.address));
          else if (choice === 1) await act("grantRole", () => f.ledger.grantRole(COORDINATOR_ROLE, f.coordinator2.address));
          else if (choice === 2) await act("setTaskCoordinator", () => f.ledger.setTaskCoordinator(taskId, rnd.pick([f.admin, f.coordinator2]).address));
          else await act("revokeOrganisation", () => f.ledger.revokeOrganisation(who.address));
        } else if (kind === 18) {
          if (await f.ledger.paused()) await act("unpause", () => f.ledger.unpause());
          else if (rnd.chance(0.4)) await act("pause", () => f.ledger.pause());
        } else {
          // the drain attempt: open and commit a paid round in one transaction
          const cs = [];
          const calls = [
            f.ledger.interface.encodeFunctionData("openRound", [taskId, r + 1n, task.headModelHash]),
            f.ledger.interface.encodeFunctionData("commitRound", [taskId, r + 1n, cs, outcome(modelHash(taskId, r + 1n)), []]),
          ];
          await act("multicallOpenCommit", () => f.ledger.connect(coord).multicall(calls));
        }
        if (step % CHECK_EVERY === CHECK_EVERY - 1) await checkBooks();
      }
      await checkBooks();

      // Wind-down (every third sequence): the admin ends every task, the claim periods pass, every
      // funder refunds and sweeps, everyone claims. Nothing may stay locked but rounding dust.
      if (s % 3 === 0) {
        if (await f.ledger.paused()) await act("unpause", () => f.ledger.unpause());
        await time.increase(60); // past every challenge period: prove every leaf (faulty ones are refused)
        for (const root of roots) {
          for (const leaf of root.leaves) {
            await act("claimLeaf", () => f.ledger.claimLeaf(root.taskId, root.round, asLeaf(leaf), root.tree.getProof(leaf)));
          }
        }
        for (const id of [1n, 2n, 3n]) {
          if ((await f.ledger.getTask(id)).status === 1n) await act("closeTask", () => f.ledger.closeTask(id));
        }
        await time.increase(1000);
        for (const id of [1n, 2n, 3n]) {
          for (const funder of f.funders) {
            if ((await f.ledger.getFunder(id, funder.address)).contributed === 0n) continue;
            await act("refund", () => f.ledger.connect(funder).refund(id));
            await act("sweep", () => f.ledger.connect(funder).sweep(id));
          }
        }
        for (const a of f.all) {
          if ((await f.ledger.owed(f.dev.target, a.address)) !== 0n) await act("claim", () => f.ledger.connect(a).claim(f.dev.target));
        }
        await checkBooks();
        const dust = await f.dev.balanceOf(f.ledger.target);
        expect(dust, `locked after wind-down: ${trace.join(",")}`).to.be.at.most(BigInt(2 * 3 * f.funders.length));
      }
    }

    // Assert the suite exercised what it claims to: each kind of action succeeded at least once
    console.log("      successful actions:", JSON.stringify(successes));
    for (const name of ["joinTask", "joinTaskForBatch", "leaveTask", "fundTask", "openRound", "submitCommitment", "commitRound", "commitRoundRoot", "claimLeaf", "voidRoot", "claim", "closeTask", "refund", "sweep", "setTaskCoordinator", "pause", "spendRecorded", "skippedAboveCap"]) {
      expect(successes[name] ?? 0, `no successful ${name}`).to.be.greaterThan(0);
    }
    expect(successes.multicallOpenCommit ?? 0, "a round opened and committed in one transaction").to.equal(0);
  });
});
