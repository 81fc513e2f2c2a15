// A task's lifecycle with no dead ends (close, cancel, refund, sweep, coordinator handover) and the
// emergency pause, which stops new work but never a claim, refund, sweep or leave.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const {
  COORDINATOR_ROLE,
  PAUSER_ROLE,
  DEFAULT_ADMIN_ROLE,
  SPEC_HASH,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  FUNDING,
  DAY,
  h,
  modelHash,
  outcome,
  signAll,
  signCommitment,
  signConsent,
  registerAll,
  joinAll,
  rewardLeaf,
  treeOf,
  asLeaf,
  memberIndex,
  deployFixture,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

const TaskStatus = { Active: 1n, Closed: 2n, Cancelled: 3n };
const State = { Failed: 3n };

/** openRoundFixture + funder puts 3 x FUNDING into task 1 (admin 1/4, funder 3/4). */
async function fundedFixture() {
  const f = await openRoundFixture();
  await f.token.connect(f.funder).approve(f.ledger.target, FUNDING * 3n);
  await f.ledger.connect(f.funder).fundTask(f.taskId, FUNDING * 3n);
  return f;
}

describe("Task lifecycle", function () {
  describe("closeTask / cancelTask", function () {
    it("closes a task: status, claim deadline, TaskClosed with the unattributed pool, the open round failed", async function () {
      // Prepare
      const { ledger, admin, taskId } = await loadFixture(openRoundFixture);

      // Execute
      const tx = await ledger.closeTask(taskId);
      const receipt = await tx.wait();
      const at = BigInt((await ethers.provider.getBlock(receipt.blockNumber)).timestamp);

      // Assert
      const deadline = at + 90n * DAY;
      await expect(tx).to.emit(ledger, "TaskClosed").withArgs(taskId, admin.address, deadline, FUNDING);
      await expect(tx).to.emit(ledger, "RoundFailed").withArgs(taskId, 1n, "task closed");
      const t = await ledger.getTask(taskId);
      expect(t.status).to.equal(TaskStatus.Closed);
      expect(t.claimDeadline).to.equal(deadline);
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Failed);
    });

    it("cancels a task (TaskCancelled, open round failed as cancelled); no second end", async function () {
      // Prepare
      const { ledger, admin, taskId } = await loadFixture(openRoundFixture);

      // Execute
      const tx = ledger.cancelTask(taskId);

      // Assert
      await expect(tx).to.emit(ledger, "TaskCancelled").withArgs(taskId, admin.address, (v) => v > 0n, FUNDING);
      await expect(tx).to.emit(ledger, "RoundFailed").withArgs(taskId, 1n, "task cancelled");
      expect((await ledger.getTask(taskId)).status).to.equal(TaskStatus.Cancelled);
      await expect(ledger.closeTask(taskId)).to.be.revertedWithCustomError(ledger, "LedgerTaskNotActive").withArgs(taskId);
      await expect(ledger.cancelTask(taskId)).to.be.revertedWithCustomError(ledger, "LedgerTaskNotActive").withArgs(taskId);
      await expect(ledger.cancelTask(9n)).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(9n);
    });

    it("closes a task without an open round, by the admin even when it is not the coordinator", async function () {
      // Prepare: task 2 of coordinator2, round 1 committed
      const { ledger, token, admin, coordinator2 } = await loadFixture(taskFixture);
      await ledger.grantRole(COORDINATOR_ROLE, coordinator2.address);
      await ledger.connect(coordinator2).createTask(h("spec 2"), INITIAL_MODEL, token.target, 1n);
      await ledger.connect(coordinator2).openRound(2n, 1n, INITIAL_MODEL);
      await ledger.connect(coordinator2).commitRound(2n, 1n, [], outcome(modelHash(2, 1)), []);

      // Execute / Assert
      await expect(ledger.connect(admin).closeTask(2n)).to.emit(ledger, "TaskClosed").and.not.to.emit(ledger, "RoundFailed");
    });

    it("refuses new work on an ended task: funding, joining, rounds", async function () {
      // Prepare
      const { ledger, token, outsider, taskId } = await loadFixture(taskFixture);
      await registerAll(ledger, [outsider]);
      await ledger.closeTask(taskId);
      await token.approve(ledger.target, 1n);

      // Execute / Assert
      await expect(ledger.fundTask(taskId, 1n)).to.be.revertedWithCustomError(ledger, "LedgerTaskNotActive").withArgs(taskId);
      await expect(ledger.connect(outsider).joinTask(taskId, SPEC_HASH, 1n, h("d")))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskNotActive")
        .withArgs(taskId);
      await expect(ledger.joinTaskFor(taskId, await signConsent(outsider, ledger, { taskId }))).to.be.revertedWithCustomError(
        ledger,
        "LedgerTaskNotActive",
      );
      await expect(ledger.openRound(taskId, 1n, INITIAL_MODEL)).to.be.revertedWithCustomError(ledger, "LedgerTaskNotActive").withArgs(taskId);
    });
  });

  describe("refund", function () {
    it("pays each funder its pro-rata share of the unattributed pool once (FundsRefunded); getFunder keeps the books", async function () {
      // Prepare: 100 attributed out of 4 x FUNDING
      const { ledger, token, admin, funder, alice, taskId } = await loadFixture(fundedFixture);
      await ledger.commitRound(taskId, 1n, await signAll([alice], ledger, taskId, 1n), outcome(modelHash(taskId, 1)), [
        { participant: alice.address, score: 1n, amount: 100n },
      ]);
      await ledger.closeTask(taskId);
      const left = FUNDING * 4n - 100n;

      // Execute / Assert
      await expect(ledger.connect(funder).refund(taskId))
        .to.emit(ledger, "FundsRefunded")
        .withArgs(taskId, funder.address, (left * 3n) / 4n);
      await expect(ledger.connect(admin).refund(taskId)).to.changeTokenBalance(token, admin, left / 4n);
      const tx = ledger.connect(admin).refund(taskId);
      await expect(tx).not.to.emit(ledger, "FundsRefunded");
      await expect(tx).to.changeTokenBalance(token, admin, 0n);
      const f = await ledger.getFunder(taskId, funder.address);
      expect([f.contributed, f.refunded, f.swept]).to.deep.equal([FUNDING * 3n, (left * 3n) / 4n, 0n]);
      expect((await ledger.getTask(taskId)).refunded).to.equal(left);
    });

    it("refuses a refund while the task is active, to a non-funder, and of an unknown task", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.refund(taskId)).to.be.revertedWithCustomError(ledger, "LedgerTaskStillActive").withArgs(taskId);
      await ledger.closeTask(taskId);
      await expect(ledger.connect(alice).refund(taskId))
        .to.be.revertedWithCustomError(ledger, "LedgerNotFunder")
        .withArgs(taskId, alice.address);
      await expect(ledger.refund(9n)).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(9n);
    });

    it("reverts a refund that re-enters refund (ReentrancyGuardReentrantCall)", async function () {
      // Prepare: a task paying in ReentrantToken, funded by the token contract itself
      const { ledger, admin } = await loadFixture(deployFixture);
      const token = await ethers.deployContract("ReentrantToken", [ledger.target, admin.address, FUNDING]);
      await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await token.transfer(token.target, 100n);
      await token.fundLedger(1n, 100n);
      await ledger.closeTask(1n);
      await token.setRefundTaskId(1n);
      await token.setMode(1); // Bubble

      // Execute / Assert
      await expect(token.refundFromLedger(1n)).to.be.revertedWithCustomError(ledger, "ReentrancyGuardReentrantCall");
      await token.setMode(0);
      await expect(token.refundFromLedger(1n)).to.emit(ledger, "FundsRefunded").withArgs(1n, token.target, 100n);
    });
  });

  describe("sweep", function () {
    it("after the deadline pays each funder its share of unproven merkle reserves (UnclaimedSwept), once", async function () {
      // Prepare: a root of 80 for alice, never claimed; funders 1/4 and 3/4
      const { ledger, token, admin, funder, alice, taskId } = await loadFixture(fundedFixture);
      const leaf = rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 80n);
      const { root } = treeOf([leaf]);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));
      await ledger.closeTask(taskId);
      const { claimDeadline } = await ledger.getTask(taskId);
      await expect(ledger.sweep(taskId)).to.be.revertedWithCustomError(ledger, "LedgerClaimPeriodNotOver").withArgs(taskId, claimDeadline);
      await time.increaseTo(claimDeadline + 1n);

      // Execute / Assert
      await expect(ledger.connect(funder).sweep(taskId)).to.emit(ledger, "UnclaimedSwept").withArgs(taskId, funder.address, 60n);
      await expect(ledger.connect(admin).sweep(taskId)).to.changeTokenBalance(token, admin, 20n);
      await expect(ledger.connect(admin).sweep(taskId)).not.to.emit(ledger, "UnclaimedSwept");
      expect((await ledger.getFunder(taskId, funder.address)).swept).to.equal(60n);
      expect((await ledger.getTask(taskId)).swept).to.equal(80n);
      await expect(ledger.connect(alice).sweep(taskId))
        .to.be.revertedWithCustomError(ledger, "LedgerNotFunder")
        .withArgs(taskId, alice.address);
    });

    it("reverts a sweep whose payout re-enters the ledger (ReentrancyGuardReentrantCall)", async function () {
      // Prepare: a ReentrantToken task funded by the token contract; a root reserving 30 that can
      // never be claimed (declared leaf count 0); closed; the claim period over
      const { ledger, admin } = await loadFixture(deployFixture);
      const token = await ethers.deployContract("ReentrantToken", [ledger.target, admin.address, FUNDING]);
      await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await token.transfer(token.target, 100n);
      await token.fundLedger(1n, 100n);
      await ledger.openRound(1n, 1n, INITIAL_MODEL);
      const { root } = treeOf([rewardLeaf(1n, 1n, 0n, admin, 30n)], { leafCount: 0 });
      await ledger.commitRoundRoot(1n, 1n, root, outcome(modelHash(1, 1)));
      await ledger.closeTask(1n);
      await time.increase(91n * DAY);
      await token.setRefundTaskId(1n);
      await token.setReentryTarget(1);
      await token.setMode(1); // Bubble: the sweep's transfer re-enters sweep

      // Execute / Assert
      await expect(token.sweepFromLedger(1n)).to.be.revertedWithCustomError(ledger, "ReentrancyGuardReentrantCall");
      await token.setMode(0);
      await expect(token.sweepFromLedger(1n)).to.emit(ledger, "UnclaimedSwept").withArgs(1n, token.target, 30n);
    });

    it("reverts a funding whose transfer re-enters fundTask (ReentrancyGuardReentrantCall)", async function () {
      // Prepare: the token contract funds a task of its own token and re-enters fundTask
      const { ledger, admin } = await loadFixture(deployFixture);
      const token = await ethers.deployContract("ReentrantToken", [ledger.target, admin.address, FUNDING]);
      await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await token.transfer(token.target, 100n);
      await token.setRefundTaskId(1n);
      await token.setReentryTarget(2);
      await token.setMode(1);

      // Execute / Assert
      await expect(token.fundLedger(1n, 50n)).to.be.revertedWithCustomError(ledger, "ReentrancyGuardReentrantCall");
      expect((await ledger.getTask(1n)).funded).to.equal(0n);
    });

    it("refuses a sweep of an active task", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.sweep(taskId)).to.be.revertedWithCustomError(ledger, "LedgerTaskStillActive").withArgs(taskId);
    });
  });

  describe("setTaskCoordinator", function () {
    it("hands a task to another coordinator (TaskCoordinatorChanged); the old one is locked out", async function () {
      // Prepare
      const { ledger, admin, coordinator2, taskId } = await loadFixture(taskFixture);
      await ledger.grantRole(COORDINATOR_ROLE, coordinator2.address);

      // Execute
      await expect(ledger.setTaskCoordinator(taskId, coordinator2.address))
        .to.emit(ledger, "TaskCoordinatorChanged")
        .withArgs(taskId, admin.address, coordinator2.address);

      // Assert
      expect((await ledger.getTask(taskId)).coordinator).to.equal(coordinator2.address);
      await ledger.connect(coordinator2).openRound(taskId, 1n, INITIAL_MODEL);
      await expect(ledger.connect(admin).failRound(taskId, 1n, "x"))
        .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
        .withArgs(taskId, admin.address);
    });

    it("refuses a zero address, an account without COORDINATOR_ROLE, a non-admin caller and an unknown task", async function () {
      // Prepare
      const { ledger, coordinator2, outsider, taskId } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.setTaskCoordinator(taskId, ethers.ZeroAddress)).to.be.revertedWithCustomError(ledger, "LedgerZeroAddress");
      await expect(ledger.setTaskCoordinator(taskId, outsider.address))
        .to.be.revertedWithCustomError(ledger, "LedgerNotCoordinator")
        .withArgs(outsider.address);
      await expect(ledger.connect(coordinator2).setTaskCoordinator(taskId, coordinator2.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(coordinator2.address, DEFAULT_ADMIN_ROLE);
      await expect(ledger.setTaskCoordinator(9n, outsider.address)).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(9n);
    });
  });
});

describe("Emergency pause", function () {
  /** openRoundFixture with alice owed 10 (round 1 committed), round 2 open with a claimable root, then paused. */
  async function pausedFixture() {
    const f = await openRoundFixture();
    const { ledger, alice, outsider, taskId } = f;
    await ledger.commitRound(taskId, 1n, await signAll([alice], ledger, taskId, 1n), outcome(modelHash(taskId, 1)), [
      { participant: alice.address, score: 1n, amount: 10n },
    ]);
    await ledger.openRound(taskId, 2n, modelHash(taskId, 1));
    const leaf = rewardLeaf(taskId, 2n, await memberIndex(ledger, taskId, alice), alice, 5n);
    const t = treeOf([leaf]);
    await ledger.commitRoundRoot(taskId, 2n, t.root, outcome(modelHash(taskId, 2)));
    await ledger.openRound(taskId, 3n, modelHash(taskId, 2));
    await registerAll(ledger, [outsider]);
    await ledger.pause();
    return { ...f, leaf, tree: t.tree };
  }

  it("is raised by PAUSER_ROLE and lifted by the admin only (Paused / Unpaused)", async function () {
    // Prepare
    const { ledger, admin, coordinator2, outsider } = await loadFixture(deployFixture);
    await ledger.grantRole(PAUSER_ROLE, coordinator2.address);

    // Execute / Assert
    await expect(ledger.connect(coordinator2).unpause())
      .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
      .withArgs(coordinator2.address, DEFAULT_ADMIN_ROLE);
    await expect(ledger.connect(outsider).pause())
      .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, PAUSER_ROLE);
    await expect(ledger.connect(coordinator2).pause()).to.emit(ledger, "Paused").withArgs(coordinator2.address);
    expect(await ledger.paused()).to.equal(true);
    await expect(ledger.connect(coordinator2).pause()).to.be.revertedWithCustomError(ledger, "EnforcedPause");
    await expect(ledger.connect(coordinator2).unpause())
      .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
      .withArgs(coordinator2.address, DEFAULT_ADMIN_ROLE);
    await expect(ledger.unpause()).to.emit(ledger, "Unpaused").withArgs(admin.address);
    await expect(ledger.unpause()).to.be.revertedWithCustomError(ledger, "ExpectedPause");
    await expect(ledger.connect(coordinator2).grantRole(PAUSER_ROLE, admin.address)).to.be.revertedWithCustomError(
      ledger,
      "AccessControlUnauthorizedAccount",
    );
  });

  it("stops new tasks, funding, joins, rounds and commitments", async function () {
    // Prepare
    const { ledger, token, alice, outsider, taskId } = await loadFixture(pausedFixture);
    const terms = { minRoundDuration: 0, challengePeriod: 0, claimPeriod: 1, epsilonCap: 0 };
    const consent = await signConsent(outsider, ledger, { taskId });
    const cs = await signAll([alice], ledger, taskId, 3n);
    const { root } = treeOf([rewardLeaf(taskId, 3n, 0n, alice, 1n)]);

    // Execute / Assert
    const blocked = [
      () => ledger.createTask(h("s"), INITIAL_MODEL, token.target, 1n),
      () => ledger.createTaskWithTerms(h("s"), INITIAL_MODEL, token.target, 1n, terms),
      () => ledger.fundTask(taskId, 1n),
      () => ledger.connect(outsider).joinTask(taskId, SPEC_HASH, 1n, h("d")),
      () => ledger.joinTaskFor(taskId, consent),
      () => ledger.joinTaskForBatch(taskId, [consent]),
      () => ledger.connect(alice).submitCommitment(taskId, 3n, h("u"), 1n, 0n),
      () => ledger.commitRound(taskId, 3n, cs, outcome(modelHash(taskId, 3)), []),
      () => ledger.commitRoundRoot(taskId, 3n, root, outcome(modelHash(taskId, 3))),
    ];
    for (const send of blocked) await expect(send()).to.be.revertedWithCustomError(ledger, "EnforcedPause");
    await ledger.failRound(taskId, 3n, "paused"); // moves no tokens
    await expect(ledger.openRound(taskId, 4n, modelHash(taskId, 2))).to.be.revertedWithCustomError(ledger, "EnforcedPause");
  });

  it("never stops claims, merkle claims, leaving, closing, refunds or sweeps", async function () {
    // Prepare
    const { ledger, token, admin, alice, bob, taskId, leaf, tree } = await loadFixture(pausedFixture);

    // Execute / Assert
    await ledger.claimLeaves(taskId, [{ round: 2n, leaf: asLeaf(leaf), proof: tree.getProof(leaf) }]);
    await expect(ledger.connect(alice).claim(token.target)).to.changeTokenBalance(token, alice, 15n);
    await expect(ledger.connect(bob).leaveTask(taskId)).to.emit(ledger, "MemberLeft");
    await expect(ledger.closeTask(taskId)).to.emit(ledger, "TaskClosed");
    await expect(ledger.refund(taskId)).to.changeTokenBalance(token, admin, FUNDING - 15n);
    await time.increase(91n * DAY);
    await expect(ledger.sweep(taskId)).not.to.be.reverted;
    await ledger.registerOrganisation(bob.address, "still administrable", h("m"), "");
  });
});
