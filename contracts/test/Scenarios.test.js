// Regression tests for issue 16, "Scenarios that must become impossible (or explicit, bounded and
// visible)". Each `describe` is one scenario of the issue, each `it` one way it happened before.
// Against the contracts before issue 16 every test here fails (see docs/ISSUE16_CONTRACTS.md).
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time, mine } = require("@nomicfoundation/hardhat-network-helpers");
const {
  COORDINATOR_ROLE,
  REGISTRAR_ROLE,
  DEFAULT_ADMIN_ROLE,
  SPEC_HASH,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  FUNDING,
  DAY,
  h,
  orgHash,
  modelHash,
  outcome,
  byAddress,
  signAll,
  signCommitment,
  signConsent,
  registerAll,
  joinAll,
  eventsOf,
  rewardLeaf,
  treeOf,
  asLeaf,
  memberIndex,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

const State = { Committed: 2n, Failed: 3n };
const Skip = { CommittedDirectly: 0n, NotMember: 1n, Left: 2n, ExamplesAboveDataset: 3n, AlreadyMember: 4n };
const Void = { NotMember: 0n, IndexMismatch: 1n, ExamplesAboveDataset: 2n };
const TaskStatus = { Active: 1n, Closed: 2n, Cancelled: 3n };

/** taskFixture plus a second funder (`funder`, 3 x FUNDING) on task 1: admin 1/4, funder 3/4. */
async function twoFundersFixture() {
  const f = await taskFixture();
  await f.token.connect(f.funder).approve(f.ledger.target, FUNDING * 3n);
  await f.ledger.connect(f.funder).fundTask(f.taskId, FUNDING * 3n);
  return f;
}

/** A task with a challenge period of 1 day and a claim period of 10 days, alice..dave members, round 1 open. */
async function merkleTaskFixture() {
  const f = await taskFixture();
  const { ledger, token, alice, bob, carol, dave } = f;
  const terms = { minRoundDuration: 0, challengePeriod: Number(DAY), claimPeriod: Number(10n * DAY), epsilonCap: 0 };
  await ledger.createTaskWithTerms(h("spec merkle"), INITIAL_MODEL, token.target, REWARD_PER_ROUND, terms);
  await token.approve(ledger.target, FUNDING);
  await ledger.fundTask(2n, FUNDING);
  await joinAll(ledger, 2n, [alice, bob, carol, dave], h("spec merkle"));
  await ledger.openRound(2n, 1n, INITIAL_MODEL);
  return { ...f, taskId: 2n };
}

describe("Issue 16 scenarios", function () {
  // ================================================================== 1
  describe("1. Funds locked forever", function () {
    it("refunds unattributed funds (failed and zero-score rounds, donations) to the funders pro rata after close", async function () {
      // Prepare: funders 1/4 and 3/4; round 1 failed, round 2 without rewards, round 3 pays 40
      const { ledger, token, admin, funder, alice, taskId } = await loadFixture(twoFundersFixture);
      await ledger.openRound(taskId, 1n, INITIAL_MODEL);
      await ledger.failRound(taskId, 1n, "too few updates");
      await ledger.openRound(taskId, 2n, INITIAL_MODEL);
      await ledger.commitRound(taskId, 2n, [], outcome(modelHash(taskId, 2)), []);
      await ledger.openRound(taskId, 3n, modelHash(taskId, 2));
      const cs = await signAll([alice], ledger, taskId, 3n);
      await ledger.commitRound(taskId, 3n, cs, outcome(modelHash(taskId, 3)), [{ participant: alice.address, score: 1n, amount: 40n }]);
      const funded = FUNDING * 4n;

      // Execute
      await expect(ledger.closeTask(taskId))
        .to.emit(ledger, "TaskClosed")
        .withArgs(taskId, admin.address, (v) => v > 0n, funded - 40n);
      const toAdmin = ((funded - 40n) * FUNDING) / funded;
      const toFunder = ((funded - 40n) * FUNDING * 3n) / funded;

      // Assert: each funder pulls its share; alice still claims her 40
      await expect(ledger.connect(admin).refund(taskId)).to.changeTokenBalances(token, [admin, ledger], [toAdmin, -toAdmin]);
      await expect(ledger.connect(funder).refund(taskId))
        .to.emit(ledger, "FundsRefunded")
        .withArgs(taskId, funder.address, toFunder);
      await expect(ledger.connect(alice).claim(token.target)).to.changeTokenBalance(token, alice, 40n);
      expect(await token.balanceOf(ledger.target)).to.be.lessThan(2n); // rounding dust only
      expect((await ledger.getTask(taskId)).refunded).to.equal(toAdmin + toFunder);
    });

    it("sweeps merkle rewards nobody proved back to the funders after the claim deadline", async function () {
      // Prepare: a root paying alice 30 and bob 20; only alice claims before the deadline
      const { ledger, token, admin, alice, bob, taskId } = await loadFixture(merkleTaskFixture);
      const leaves = [
        rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 30n),
        rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, bob), bob, 20n),
      ];
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));
      await time.increase(DAY);
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));
      await ledger.closeTask(taskId);
      await expect(ledger.sweep(taskId)).to.be.revertedWithCustomError(ledger, "LedgerClaimPeriodNotOver");

      // Execute
      await time.increase(10n * DAY + 1n);

      // Assert: bob's leaf can no longer be proven; its 20 goes back to the only funder
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1]))).to.be.revertedWithCustomError(
        ledger,
        "LedgerClaimDeadlinePassed",
      );
      await expect(ledger.connect(admin).sweep(taskId)).to.changeTokenBalance(token, admin, 20n);
      await expect(ledger.connect(admin).refund(taskId)).to.changeTokenBalance(token, admin, FUNDING - 50n);
      expect(await token.balanceOf(ledger.target)).to.equal(FUNDING + 30n); // task 1's pool + alice's owed 30
    });

    it("lets the admin move a task whose coordinator lost its role: reassign it, or close it", async function () {
      // Prepare: coordinator2 runs task 2 and loses its role with round 1 open
      const { ledger, token, admin, coordinator2 } = await loadFixture(taskFixture);
      await ledger.grantRole(COORDINATOR_ROLE, coordinator2.address);
      await ledger.connect(coordinator2).createTask(h("spec 2"), INITIAL_MODEL, token.target, 10n);
      await ledger.connect(coordinator2).openRound(2n, 1n, INITIAL_MODEL);
      await ledger.revokeRole(COORDINATOR_ROLE, coordinator2.address);

      // Execute / Assert: the admin hands task 2 to itself, which can then fail the round and go on
      await expect(ledger.setTaskCoordinator(2n, admin.address))
        .to.emit(ledger, "TaskCoordinatorChanged")
        .withArgs(2n, coordinator2.address, admin.address);
      await ledger.failRound(2n, 1n, "coordinator gone");
      await ledger.openRound(2n, 2n, INITIAL_MODEL);
      // ... or closes it outright: the open round fails with it
      await expect(ledger.closeTask(2n)).to.emit(ledger, "RoundFailed").withArgs(2n, 2n, "task closed");
      expect((await ledger.getTask(2n)).status).to.equal(TaskStatus.Closed);
    });
  });

  // ================================================================== 2
  describe("2. The admin can override a participant's withdrawal", function () {
    it("gives no role any power over membership: an admin holding every role cannot re-admit a participant that left", async function () {
      // Prepare: alice leaves task 1; the admin holds every role there is
      const { ledger, admin, alice, taskId } = await loadFixture(openRoundFixture);
      const oldConsent = await signConsent(alice, ledger, { taskId });
      await ledger.connect(alice).leaveTask(taskId);
      await ledger.grantRole(ethers.id("PARTICIPANT_ROLE"), admin.address); // a role the ledger no longer reads

      // Execute / Assert: replaying her consent is refused, her relayed commitment is skipped
      await expect(ledger.joinTaskFor(taskId, oldConsent))
        .to.be.revertedWithCustomError(ledger, "LedgerMemberLeft")
        .withArgs(taskId, alice.address, 1n);
      const c = await signAll([alice], ledger, taskId, 1n);
      await expect(ledger.commitRound(taskId, 1n, c, outcome(modelHash(taskId, 1)), [{ participant: alice.address, score: 1n, amount: 5n }]))
        .to.emit(ledger, "CommitmentSkipped")
        .withArgs(taskId, 1n, alice.address, Skip.Left)
        .and.to.emit(ledger, "RewardSkipped")
        .withArgs(taskId, 1n, alice.address, 5n, Skip.Left);
      expect((await ledger.getMembership(taskId, alice.address)).leftRound).to.equal(1n);
    });

    it("never lets the admin (or any unregistered, unconsented address) commit or be paid", async function () {
      // Prepare
      const { ledger, token, admin, taskId } = await loadFixture(openRoundFixture);

      // Execute / Assert: not a member -> refused directly, skipped when relayed, no reward
      await expect(ledger.connect(admin).submitCommitment(taskId, 1n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(taskId, 1n, admin.address);
      await expect(ledger.connect(admin).joinTask(taskId, SPEC_HASH, 1n, h("d")))
        .to.be.revertedWithCustomError(ledger, "OrganisationRegistryNotRegistered")
        .withArgs(admin.address);
      const self = await signAll([admin], ledger, taskId, 1n);
      await ledger.commitRound(taskId, 1n, self, outcome(modelHash(taskId, 1)), [{ participant: admin.address, score: 1n, amount: 50n }]);
      expect(await ledger.owed(token.target, admin.address)).to.equal(0n);
    });

    it("keeps role administration explicit: each role's admin is DEFAULT_ADMIN_ROLE, which only moves in two delayed steps", async function () {
      // Prepare
      const { ledger, admin, outsider } = await loadFixture(taskFixture);

      // Execute / Assert
      for (const role of [COORDINATOR_ROLE, REGISTRAR_ROLE, ethers.id("PAUSER_ROLE")]) {
        expect(await ledger.getRoleAdmin(role)).to.equal(DEFAULT_ADMIN_ROLE);
      }
      await expect(ledger.grantRole(DEFAULT_ADMIN_ROLE, outsider.address)).to.be.revertedWithCustomError(
        ledger,
        "AccessControlEnforcedDefaultAdminRules",
      );
      await ledger.beginDefaultAdminTransfer(outsider.address);
      await expect(ledger.connect(outsider).acceptDefaultAdminTransfer()).to.be.revertedWithCustomError(
        ledger,
        "AccessControlEnforcedDefaultAdminDelay",
      );
      await time.increase(2n * DAY + 1n);
      await ledger.connect(outsider).acceptDefaultAdminTransfer();
      expect(await ledger.defaultAdmin()).to.equal(outsider.address);
      expect(await ledger.hasRole(DEFAULT_ADMIN_ROLE, admin.address)).to.equal(false);
    });
  });

  // ================================================================== 3
  describe("3. Merkle mode checks nothing but the declared total", function () {
    it("refuses a leaf paying a non-member (the coordinator itself), and lets anyone void that root in the challenge period", async function () {
      // Prepare: the coordinator (admin, no member) puts itself in the tree
      const { ledger, admin, alice, outsider, taskId } = await loadFixture(merkleTaskFixture);
      const leaves = [
        rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 10n),
        rewardLeaf(taskId, 1n, 0n, admin, 90n),
      ];
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));
      const before = await ledger.getTask(taskId);

      // Execute / Assert: no claim during the challenge period; an outsider voids the root
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]))).to.be.revertedWithCustomError(
        ledger,
        "LedgerRewardRootInChallenge",
      );
      await expect(ledger.connect(outsider).voidRoot(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1])))
        .to.emit(ledger, "RoundRootVoided")
        .withArgs(taskId, 1n, admin.address, Void.NotMember, outsider.address, 100n);
      expect((await ledger.getTask(taskId)).attributed).to.equal(before.attributed - 100n);
      await time.increase(DAY);
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1]))).to.be.revertedWithCustomError(
        ledger,
        "LedgerRewardRootVoided",
      );
    });

    it("refuses the non-member's leaf at claim time when nobody challenged", async function () {
      // Prepare
      const { ledger, token, admin, alice, taskId } = await loadFixture(merkleTaskFixture);
      const leaves = [rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 10n), rewardLeaf(taskId, 1n, 3n, admin, 90n)];
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));
      await time.increase(DAY);

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1])))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(taskId, 1n, admin.address);
      expect(await ledger.owed(token.target, admin.address)).to.equal(0n);
    });

    it("pays one participant at most one leaf per round: leaves are bound to task, round and member index", async function () {
      // Prepare: alice twice (a second index, and an identical copy), bob once
      const { ledger, token, alice, bob, taskId } = await loadFixture(merkleTaskFixture);
      const ia = await memberIndex(ledger, taskId, alice);
      const ib = await memberIndex(ledger, taskId, bob);
      const mine = rewardLeaf(taskId, 1n, ia, alice, 10n);
      const again = rewardLeaf(taskId, 1n, ib, alice, 10n); // alice under bob's index
      const leaves = [mine, again, rewardLeaf(taskId, 1n, ib, bob, 10n)];
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));
      await time.increase(DAY);

      // Execute / Assert
      await ledger.claimLeaf(taskId, 1n, asLeaf(mine), tree.getProof(mine));
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(mine), tree.getProof(mine)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafAlreadyClaimed")
        .withArgs(taskId, 1n, alice.address);
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(again), tree.getProof(again)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafIndexMismatch")
        .withArgs(taskId, alice.address, ia, ib);
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[2]), tree.getProof(leaves[2]));
      expect(await ledger.owed(token.target, alice.address)).to.equal(10n);
      expect(await ledger.owed(token.target, bob.address)).to.equal(10n);
      // the same leaf hashes differently in another round or task: bound to both
      expect(await ledger.rewardLeafHash(taskId, 2n, asLeaf(mine))).to.not.equal(await ledger.rewardLeafHash(taskId, 1n, asLeaf(mine)));
    });

    it("makes the declared leaf count and total upper bounds that claims cannot exceed", async function () {
      // Prepare: three leaves of 30, declared as 2 leaves and 100 tokens
      const { ledger, alice, bob, carol, taskId } = await loadFixture(merkleTaskFixture);
      const leaves = [];
      for (const p of [alice, bob, carol]) leaves.push(rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, p), p, 30n));
      const { tree, root } = treeOf(leaves, { leafCount: 2, totalReward: 100n });
      await expect(ledger.commitRoundRoot(taskId, 1n, { ...root, leafCount: 5 }, outcome(modelHash(taskId, 1))))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafCountAboveMembers")
        .withArgs(taskId, 5n, 4n);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));
      await time.increase(DAY);

      // Execute / Assert
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1]));
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[2]), tree.getProof(leaves[2])))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafCountExceeded")
        .withArgs(taskId, 1n, 2n);
      const stored = await ledger.getRewardRoot(taskId, 1n);
      expect(stored.claimedCount).to.equal(2n);
      expect(stored.claimed).to.equal(60n);
    });
  });

  // ================================================================== 4
  describe("4. A coordinator can drain a pool in one transaction", function () {
    it("refuses to open and commit a round in one multicall (one round per block at most)", async function () {
      // Prepare: rounds 1..3 opened and committed in one batch, paying alice each time
      const { ledger, alice, taskId } = await loadFixture(taskFixture);
      const calls = [];
      let parent = INITIAL_MODEL;
      for (let r = 1n; r <= 3n; r++) {
        const cs = await signAll([alice], ledger, taskId, r);
        calls.push(ledger.interface.encodeFunctionData("openRound", [taskId, r, parent]));
        calls.push(
          ledger.interface.encodeFunctionData("commitRound", [taskId, r, cs, outcome(modelHash(taskId, r)), [{ participant: alice.address, score: 1n, amount: REWARD_PER_ROUND }]]),
        );
        parent = modelHash(taskId, r);
      }

      // Execute / Assert
      await expect(ledger.multicall(calls)).to.be.revertedWithCustomError(ledger, "LedgerRoundOpenedThisBlock").withArgs(taskId, 1n);
      expect((await ledger.getTask(taskId)).attributed).to.equal(0n);
    });

    it("enforces the task's minimum round duration on commitRound and commitRoundRoot", async function () {
      // Prepare: a task whose rounds last at least an hour
      const { ledger, token, alice, bob } = await loadFixture(taskFixture);
      await ledger.createTaskWithTerms(h("spec 2"), INITIAL_MODEL, token.target, 10n, { minRoundDuration: 3600, challengePeriod: 0, claimPeriod: 86400, epsilonCap: 0 });
      await joinAll(ledger, 2n, [alice, bob], h("spec 2"));
      const opened = await (await ledger.openRound(2n, 1n, INITIAL_MODEL)).wait();
      const openedAt = BigInt((await ethers.provider.getBlock(opened.blockNumber)).timestamp);

      // Execute / Assert
      await expect(ledger.commitRound(2n, 1n, [], outcome(modelHash(2, 1)), []))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundTooShort")
        .withArgs(2n, 1n, openedAt + 3600n);
      const { root } = treeOf([rewardLeaf(2n, 1n, 0n, alice, 0n)]);
      await expect(ledger.commitRoundRoot(2n, 1n, root, outcome(modelHash(2, 1)))).to.be.revertedWithCustomError(ledger, "LedgerRoundTooShort");
      await time.increaseTo(openedAt + 3600n);
      await ledger.commitRound(2n, 1n, [], outcome(modelHash(2, 1)), []);
    });

    it("gives a coordinator no power to admit the organisations it would pay", async function () {
      // Prepare: coordinator2 is a coordinator, not a registrar
      const { ledger, coordinator2, outsider } = await loadFixture(taskFixture);
      await ledger.grantRole(COORDINATOR_ROLE, coordinator2.address);

      // Execute / Assert
      await expect(ledger.connect(coordinator2).registerOrganisation(outsider.address, "sock puppet", orgHash("x"), ""))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(coordinator2.address, REGISTRAR_ROLE);
    });
  });

  // ================================================================== 5
  describe("5. One participant can block a round", function () {
    it("skips a front-running direct commitment instead of reverting the round's commit", async function () {
      // Prepare: alice signs for the coordinator, then front-runs it with her own commitment
      const { ledger, token, alice, bob, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll([alice, bob], ledger, taskId, 1n);
      await ledger.connect(alice).submitCommitment(taskId, 1n, h("front-run"), 1n, 0n);
      const rewards = byAddress([alice, bob]).map((s) => ({ participant: s.address, score: 1n, amount: 10n }));

      // Execute
      const tx = ledger.commitRound(taskId, 1n, cs, outcome(modelHash(taskId, 1)), rewards);

      // Assert: committed; her own commitment is the one recorded and rewarded
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(taskId, 1n, alice.address, Skip.CommittedDirectly);
      await expect(tx).to.emit(ledger, "RoundCommitted");
      expect((await ledger.getRound(taskId, 1n)).commitmentCount).to.equal(2n);
      expect(await ledger.owed(token.target, alice.address)).to.equal(10n);
    });

    it("skips a participant that leaves between signing and the commit", async function () {
      // Prepare
      const { ledger, alice, bob, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll([alice, bob], ledger, taskId, 1n);
      await ledger.connect(bob).leaveTask(taskId);

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, cs, outcome(modelHash(taskId, 1)), []))
        .to.emit(ledger, "CommitmentSkipped")
        .withArgs(taskId, 1n, bob.address, Skip.Left);
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Committed);
    });

    it("lets no participant void a merkle round by leaving during it: its own leaf just becomes unclaimable", async function () {
      // Prepare: bob is in round 1's tree, leaves before the root lands
      const { ledger, token, alice, bob, outsider, taskId } = await loadFixture(merkleTaskFixture);
      const leaves = [
        rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 10n),
        rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, bob), bob, 20n),
      ];
      await ledger.connect(bob).leaveTask(taskId);
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)));

      // Execute / Assert
      await expect(ledger.connect(outsider).voidRoot(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1])))
        .to.be.revertedWithCustomError(ledger, "LedgerChallengeUnfounded")
        .withArgs(taskId, 1n, bob.address);
      await time.increase(DAY);
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1])))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(taskId, 1n, bob.address);
      expect(await ledger.owed(token.target, alice.address)).to.equal(10n);
    });

    it("confines a participant to the tasks it consented to, and lets a coordinator remove one from its task", async function () {
      // Prepare: task 2 where only bob is a member
      const { ledger, token, alice, bob, taskId } = await loadFixture(openRoundFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 10n);
      await joinAll(ledger, 2n, [bob], h("spec 2"));
      await ledger.openRound(2n, 1n, INITIAL_MODEL);

      // Execute / Assert: alice (member of task 1 only) is refused in task 2
      await expect(ledger.connect(alice).submitCommitment(2n, 1n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(2n, 1n, alice.address);
      await expect(ledger.commitRound(2n, 1n, await signAll([alice], ledger, 2n, 1n), outcome(modelHash(2, 1)), []))
        .to.emit(ledger, "CommitmentSkipped")
        .withArgs(2n, 1n, alice.address, Skip.NotMember);
      await expect(ledger.removeMember(taskId, alice.address)).to.emit(ledger, "MemberRemoved").withArgs(taskId, alice.address, 1n, (await ethers.getSigners())[0].address);
      expect(await ledger.isEligible(taskId, 1n, alice.address)).to.equal(false);
    });
  });

  // ================================================================== 6
  describe("6. Smaller", function () {
    it("does not reward a participant that left after its direct commitment (same rule as relayed)", async function () {
      // Prepare
      const { ledger, token, alice, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(alice).submitCommitment(taskId, 1n, h("a"), 1n, 0n);
      await ledger.connect(alice).leaveTask(taskId);

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), [{ participant: alice.address, score: 1n, amount: 25n }]))
        .to.emit(ledger, "RewardSkipped")
        .withArgs(taskId, 1n, alice.address, 25n, Skip.Left);
      expect(await ledger.owed(token.target, alice.address)).to.equal(0n);
      expect((await ledger.getTask(taskId)).attributed).to.equal(0n);
    });

    it("names the merkle counts as declared, and counts only on-chain commitments as commitments", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(merkleTaskFixture);
      const ev = ledger.interface.getEvent("RoundRootCommitted");
      const { root } = treeOf([rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 5n)]);

      // Execute
      const receipt = await (await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1)))).wait();

      // Assert
      expect(ev.inputs.map((i) => i.name)).to.include.members(["declaredLeafCount", "declaredTotalReward"]);
      const [committed] = eventsOf(receipt, ledger, "RoundCommitted");
      expect(committed.commitmentCount).to.equal(0n);
      expect((await ledger.getRewardRoot(taskId, 1n)).declaredLeafCount).to.equal(1n);
    });

    it("has an emergency pause that stops new work but never a claim or a refund", async function () {
      // Prepare: alice is owed 10; the pool has a task to refund
      const { ledger, token, admin, alice, taskId } = await loadFixture(openRoundFixture);
      await ledger.commitRound(taskId, 1n, await signAll([alice], ledger, taskId, 1n), outcome(modelHash(taskId, 1)), [{ participant: alice.address, score: 1n, amount: 10n }]);

      // Execute
      await expect(ledger.pause()).to.emit(ledger, "Paused").withArgs(admin.address);

      // Assert
      await expect(ledger.openRound(taskId, 2n, modelHash(taskId, 1))).to.be.revertedWithCustomError(ledger, "EnforcedPause");
      await expect(ledger.connect(alice).claim(token.target)).to.changeTokenBalance(token, alice, 10n);
      await ledger.closeTask(taskId);
      await expect(ledger.refund(taskId)).to.changeTokenBalance(token, admin, FUNDING - 10n);
    });

    it("casts with SafeCast: a dataset size above uint64 is refused, not truncated", async function () {
      // Prepare
      const { ledger, outsider, taskId } = await loadFixture(taskFixture);
      await registerAll(ledger, [outsider]);

      // Execute / Assert
      await expect(ledger.connect(outsider).joinTask(taskId, SPEC_HASH, 2n ** 64n, h("d")))
        .to.be.revertedWithCustomError(ledger, "SafeCastOverflowedUintDowncast")
        .withArgs(64, 2n ** 64n);
    });

    it("reports accurate errors: a zero address, a second leave, a leave without membership", async function () {
      // Prepare
      const { ledger, alice, outsider, taskId } = await loadFixture(taskFixture);
      await ledger.connect(alice).leaveTask(taskId);

      // Execute / Assert
      await expect(ledger.registerOrganisation(ethers.ZeroAddress, "nobody", orgHash("0"), "")).to.be.revertedWithCustomError(
        ledger,
        "OrganisationRegistryZeroAddress",
      );
      await expect(ledger.connect(alice).leaveTask(taskId))
        .to.be.revertedWithCustomError(ledger, "LedgerMemberLeft")
        .withArgs(taskId, alice.address, 1n);
      await expect(ledger.connect(outsider).leaveTask(taskId))
        .to.be.revertedWithCustomError(ledger, "LedgerNotMember")
        .withArgs(taskId, outsider.address);
    });
  });
});
