// Issue 17: each participant's privacy spend (cumulative micro-epsilon) signed in its commitment,
// capped per task and never decreasing; recorded per participant and task, emitted per round.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const {
  SPEC_HASH,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  FUNDING,
  h,
  modelHash,
  outcome,
  byAddress,
  signCommitment,
  signAll,
  registerAll,
  joinAll,
  eventsOf,
  deployFixture,
  taskFixture,
} = require("./helpers");

const CAP = 8_000_000n; // epsilon 8
const Skip = { CommittedDirectly: 0n, NotMember: 1n, ExamplesAboveDataset: 3n, EpsilonAboveCap: 5n, EpsilonDecreased: 6n };
const TERMS = { minRoundDuration: 0, challengePeriod: 0, claimPeriod: 86400, epsilonCap: CAP };

/** deployFixture + task 1 with privacy cap CAP, funded; alice..dave registered members; round 1 open. */
async function dpFixture() {
  const f = await deployFixture();
  const { ledger, token, alice, bob, carol, dave } = f;
  await ledger.createTaskWithTerms(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND, TERMS);
  await token.approve(ledger.target, FUNDING);
  await ledger.fundTask(1n, FUNDING);
  await registerAll(ledger, [alice, bob, carol, dave]);
  await joinAll(ledger, 1n, [alice, bob, carol, dave]);
  await ledger.openRound(1n, 1n, INITIAL_MODEL);
  return { ...f, taskId: 1n, participants: byAddress([alice, bob, carol, dave]) };
}

/** Signs `who`'s commitment for (task 1, round) carrying `epsilon`. */
const signed = (who, ledger, round, epsilon, numExamples = 100n) =>
  signCommitment(who, ledger, { taskId: 1n, round, updateHash: h(`u ${who.address} ${round}`), numExamples, epsilon });

const spent = async (ledger, who) => (await ledger.getMembership(1n, who.address ?? who)).epsilonSpent;

/** Commits the open `round` (parent model of round-1) with `cs` and `rewards`, opening round+1; returns the receipt. */
async function commitAndNext(ledger, round, cs, rewards = []) {
  const receipt = await (await ledger.commitRound(1n, round, byAddress(cs), outcome(modelHash(1n, round)), byAddress(rewards))).wait();
  await ledger.openRound(1n, round + 1n, modelHash(1n, round));
  return receipt;
}

describe("Ledger privacy spend (issue 17)", function () {
  describe("relayed commitments", function () {
    it("records each participant's signed spend, emits it in CommitmentRecorded and lets it grow up to the cap", async function () {
      // Prepare
      const { ledger, alice, bob } = await loadFixture(dpFixture);
      const round1 = [await signed(alice, ledger, 1n, 1_500_000n), await signed(bob, ledger, 1n, 0n)];

      // Execute
      const receipt = await commitAndNext(ledger, 1n, round1);
      const round2 = await (await ledger.commitRound(1n, 2n, byAddress([await signed(alice, ledger, 2n, CAP), await signed(bob, ledger, 2n, 0n)]), outcome(modelHash(1n, 2n)), [])).wait();

      // Assert
      const recorded = eventsOf(receipt, ledger, "CommitmentRecorded");
      expect(Object.fromEntries(recorded.map((e) => [e.participant, e.epsilon]))).to.deep.equal({ [alice.address]: 1_500_000n, [bob.address]: 0n });
      expect(eventsOf(round2, ledger, "CommitmentRecorded").map((e) => e.epsilon).sort()).to.deep.equal([0n, CAP].sort());
      expect(eventsOf(round2, ledger, "CommitmentSkipped")).to.have.length(0);
      expect(await spent(ledger, alice)).to.equal(CAP);
      expect(await spent(ledger, bob)).to.equal(0n);
    });

    it("skips a commitment above the cap (EpsilonAboveCap) and its reward; the round commits", async function () {
      // Prepare
      const { ledger, alice, bob } = await loadFixture(dpFixture);
      const cs = [await signed(alice, ledger, 1n, CAP + 1n), await signed(bob, ledger, 1n, 2_000_000n)];
      const rewards = [
        { participant: alice.address, score: 1n, amount: 10n },
        { participant: bob.address, score: 1n, amount: 20n },
      ];

      // Execute
      const tx = ledger.commitRound(1n, 1n, byAddress(cs), outcome(modelHash(1n, 1n)), byAddress(rewards));

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(1n, 1n, alice.address, Skip.EpsilonAboveCap);
      await expect(tx).to.emit(ledger, "RewardSkipped").withArgs(1n, 1n, alice.address, 10n, Skip.EpsilonAboveCap);
      await expect(tx).to.emit(ledger, "RewardAttributed").withArgs(1n, 1n, bob.address, 1n, 20n);
      await expect(tx).to.emit(ledger, "RoundSettled").withArgs(1n, 1n, 20n, REWARD_PER_ROUND - 20n);
      expect((await ledger.getRound(1n, 1n)).commitmentCount).to.equal(1n);
      expect(await spent(ledger, alice)).to.equal(0n);
      expect(await spent(ledger, bob)).to.equal(2_000_000n);
    });

    it("skips a commitment whose spend went down (EpsilonDecreased) and its reward; an equal spend counts", async function () {
      // Prepare: alice at 3, bob at 2 after round 1
      const { ledger, alice, bob } = await loadFixture(dpFixture);
      await commitAndNext(ledger, 1n, [await signed(alice, ledger, 1n, 3_000_000n), await signed(bob, ledger, 1n, 2_000_000n)]);
      const cs = [await signed(alice, ledger, 2n, 2_999_999n), await signed(bob, ledger, 2n, 2_000_000n)];
      const rewards = [
        { participant: alice.address, score: 1n, amount: 10n },
        { participant: bob.address, score: 1n, amount: 20n },
      ];

      // Execute
      const tx = ledger.commitRound(1n, 2n, byAddress(cs), outcome(modelHash(1n, 2n)), byAddress(rewards));

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(1n, 2n, alice.address, Skip.EpsilonDecreased);
      await expect(tx).to.emit(ledger, "RewardSkipped").withArgs(1n, 2n, alice.address, 10n, Skip.EpsilonDecreased);
      await expect(tx).to.emit(ledger, "CommitmentRecorded").withArgs(1n, 2n, bob.address, cs[1].updateHash, 100n, true, 2_000_000n);
      await expect(tx).to.emit(ledger, "RewardAttributed").withArgs(1n, 2n, bob.address, 1n, 20n);
      expect(await spent(ledger, alice)).to.equal(3_000_000n);
      expect(await spent(ledger, bob)).to.equal(2_000_000n);
    });

    it("requires epsilon 0 in a task without DP terms (cap 0): any spend is skipped as EpsilonAboveCap", async function () {
      // Prepare
      const { ledger, taskId, alice, bob } = await loadFixture(taskFixture);
      await ledger.openRound(taskId, 1n, INITIAL_MODEL);
      const cs = [await signed(alice, ledger, 1n, 1n), await signed(bob, ledger, 1n, 0n)];

      // Execute
      const tx = ledger.commitRound(taskId, 1n, byAddress(cs), outcome(modelHash(1n, 1n)), []);

      // Assert
      expect((await ledger.getTask(taskId)).epsilonCap).to.equal(0n);
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(taskId, 1n, alice.address, Skip.EpsilonAboveCap);
      await expect(tx).to.emit(ledger, "CommitmentRecorded").withArgs(taskId, 1n, bob.address, cs[1].updateHash, 100n, true, 0n);
      expect(await spent(ledger, alice)).to.equal(0n);
    });

    it("skips a signed commitment of an account that never joined (NotMember), whatever its spend", async function () {
      // Prepare: outsider registered but not a member of task 1
      const { ledger, outsider, alice } = await loadFixture(dpFixture);
      await registerAll(ledger, [outsider]);
      const cs = [await signed(outsider, ledger, 1n, 1_000_000n), await signed(alice, ledger, 1n, 1_000_000n)];

      // Execute
      const tx = ledger.commitRound(1n, 1n, byAddress(cs), outcome(modelHash(1n, 1n)), []);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(1n, 1n, outsider.address, Skip.NotMember);
      expect(await spent(ledger, outsider)).to.equal(0n);
      expect(await spent(ledger, alice)).to.equal(1_000_000n);
    });

    it("binds the spend into the signature: a relayed epsilon other than the signed one reverts LedgerSignatureInvalid", async function () {
      // Prepare
      const { ledger, alice } = await loadFixture(dpFixture);
      const c = await signed(alice, ledger, 1n, 4_000_000n);

      // Execute / Assert: the relayer lowers the spend it forwards
      await expect(ledger.commitRound(1n, 1n, [{ ...c, epsilon: 1_000_000n }], outcome(modelHash(1n, 1n)), []))
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureInvalid")
        .withArgs(1n, 1n, alice.address);
    });

    it("keeps the direct commitment's spend when a relayed one of the same round is skipped (CommittedDirectly)", async function () {
      // Prepare
      const { ledger, alice } = await loadFixture(dpFixture);
      await ledger.connect(alice).submitCommitment(1n, 1n, h("own"), 10n, 2_000_000n);
      const c = await signed(alice, ledger, 1n, 5_000_000n);

      // Execute
      const tx = ledger.commitRound(1n, 1n, [c], outcome(modelHash(1n, 1n)), [{ participant: alice.address, score: 1n, amount: 5n }]);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(1n, 1n, alice.address, Skip.CommittedDirectly);
      await expect(tx).to.emit(ledger, "RewardAttributed").withArgs(1n, 1n, alice.address, 1n, 5n);
      expect(await spent(ledger, alice)).to.equal(2_000_000n);
    });
  });

  describe("direct commitments", function () {
    it("records the caller's spend and emits it (relayed=false)", async function () {
      // Prepare
      const { ledger, alice } = await loadFixture(dpFixture);

      // Execute
      const tx = ledger.connect(alice).submitCommitment(1n, 1n, h("a1"), 10n, 1_250_000n);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentRecorded").withArgs(1n, 1n, alice.address, h("a1"), 10n, false, 1_250_000n);
      expect(await spent(ledger, alice)).to.equal(1_250_000n);
    });

    it("refuses a spend above the cap with LedgerEpsilonAboveCap; the cap itself is accepted", async function () {
      // Prepare
      const { ledger, alice } = await loadFixture(dpFixture);

      // Execute / Assert
      await expect(ledger.connect(alice).submitCommitment(1n, 1n, h("a1"), 10n, CAP + 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerEpsilonAboveCap")
        .withArgs(1n, alice.address, CAP + 1n, CAP);
      await expect(ledger.connect(alice).submitCommitment(1n, 1n, h("a1"), 10n, CAP)).to.emit(ledger, "CommitmentRecorded");
      expect(await spent(ledger, alice)).to.equal(CAP);
    });

    it("refuses any spend in a task without DP terms (LedgerEpsilonAboveCap with cap 0)", async function () {
      // Prepare
      const { ledger, taskId, alice } = await loadFixture(taskFixture);
      await ledger.openRound(taskId, 1n, INITIAL_MODEL);

      // Execute / Assert
      await expect(ledger.connect(alice).submitCommitment(taskId, 1n, h("a1"), 10n, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerEpsilonAboveCap")
        .withArgs(taskId, alice.address, 1n, 0n);
    });

    it("refuses a spend below the recorded one with LedgerEpsilonDecreased (after a relayed round)", async function () {
      // Prepare: alice recorded at 3 by a relayed round 1
      const { ledger, alice } = await loadFixture(dpFixture);
      await commitAndNext(ledger, 1n, [await signed(alice, ledger, 1n, 3_000_000n)]);

      // Execute / Assert
      await expect(ledger.connect(alice).submitCommitment(1n, 2n, h("a2"), 10n, 2_000_000n))
        .to.be.revertedWithCustomError(ledger, "LedgerEpsilonDecreased")
        .withArgs(1n, alice.address, 2_000_000n, 3_000_000n);
      await expect(ledger.connect(alice).submitCommitment(1n, 2n, h("a2"), 10n, 3_000_000n)).to.emit(ledger, "CommitmentRecorded");
      expect(await spent(ledger, alice)).to.equal(3_000_000n);
    });

    it("refuses a commitment of an account that never joined with LedgerNotEligible", async function () {
      // Prepare
      const { ledger, outsider } = await loadFixture(dpFixture);
      await registerAll(ledger, [outsider]);

      // Execute / Assert
      await expect(ledger.connect(outsider).submitCommitment(1n, 1n, h("o"), 10n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(1n, 1n, outsider.address);
    });
  });

  it("keeps spends per task: the same participant's spend in another task starts at 0", async function () {
    // Prepare: alice at 5 in task 1; task 2 with the same cap
    const { ledger, token, alice } = await loadFixture(dpFixture);
    await ledger.connect(alice).submitCommitment(1n, 1n, h("a1"), 10n, 5_000_000n);
    await ledger.createTaskWithTerms(h("spec 2"), INITIAL_MODEL, token.target, REWARD_PER_ROUND, TERMS);
    await joinAll(ledger, 2n, [alice], h("spec 2"));
    await ledger.openRound(2n, 1n, INITIAL_MODEL);

    // Execute
    const tx = ledger.connect(alice).submitCommitment(2n, 1n, h("a1 task 2"), 10n, 1_000_000n);

    // Assert
    await expect(tx).to.emit(ledger, "CommitmentRecorded").withArgs(2n, 1n, alice.address, h("a1 task 2"), 10n, false, 1_000_000n);
    expect((await ledger.getMembership(2n, alice.address)).epsilonSpent).to.equal(1_000_000n);
    expect(await spent(ledger, alice)).to.equal(5_000_000n);
  });

  it("signAll helper: every participant at the same spend is recorded (the gas test's DP case)", async function () {
    // Prepare
    const { ledger, participants } = await loadFixture(dpFixture);
    const cs = await signAll(participants, ledger, 1n, 1n, 100n, 7_000_000n);

    // Execute
    const receipt = await commitAndNext(ledger, 1n, cs);

    // Assert
    expect(eventsOf(receipt, ledger, "CommitmentRecorded").map((e) => e.epsilon)).to.deep.equal(participants.map(() => 7_000_000n));
    for (const p of participants) expect(await spent(ledger, p)).to.equal(7_000_000n);
  });
});
