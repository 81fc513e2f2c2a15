// Merkle commit mode: one reward root per round (constant gas), leaves bound to task, round and
// member index, claimed with proofs after a challenge period, against declared upper bounds.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const {
  COORDINATOR_ROLE,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  FUNDING,
  DATASET_SIZE,
  DAY,
  h,
  modelHash,
  outcome,
  eventsOf,
  joinAll,
  registerAll,
  rewardLeaf,
  treeOf,
  asLeaf,
  memberIndex,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

const State = { Committed: 2n };
const Void = { NotMember: 0n, IndexMismatch: 1n, ExamplesAboveDataset: 2n };
const SPEC = h("spec merkle");

/** One leaf per participant, at its member index, amounts as given; scores may be negative. */
async function leavesFor(ledger, participants, taskId, round, amounts) {
  const leaves = [];
  for (const [i, p] of participants.entries()) {
    const index = await memberIndex(ledger, taskId, p);
    leaves.push(rewardLeaf(taskId, round, index, p, amounts[i], { numExamples: 100n + BigInt(i), score: BigInt(250000 * (i + 1)) - 400000n }));
  }
  return leaves;
}

/** Task 1 (no challenge period), round 1 open, its four leaves (10..40 ether) and their tree. */
async function leavesFixture() {
  const f = await openRoundFixture();
  const amounts = [10n, 20n, 30n, 40n].map((n) => ethers.parseEther(String(n)));
  const leaves = await leavesFor(f.ledger, f.participants, f.taskId, 1n, amounts);
  return { ...f, leaves, ...treeOf(leaves) };
}

/** leavesFixture with round 1 committed by its root. */
async function committedFixture() {
  const f = await leavesFixture();
  await f.ledger.commitRoundRoot(f.taskId, 1n, f.root, outcome(modelHash(f.taskId, 1n)));
  return f;
}

/** Task 2: challenge period 1 day, claim period 10 days; alice..dave members; round 1 open. */
async function challengeFixture() {
  const f = await taskFixture();
  const { ledger, token, alice, bob, carol, dave } = f;
  const terms = { minRoundDuration: 0, challengePeriod: Number(DAY), claimPeriod: Number(10n * DAY), epsilonCap: 0 };
  await ledger.createTaskWithTerms(SPEC, INITIAL_MODEL, token.target, REWARD_PER_ROUND, terms);
  await token.approve(ledger.target, FUNDING);
  await ledger.fundTask(2n, FUNDING);
  await joinAll(ledger, 2n, [alice, bob, carol, dave], SPEC);
  await ledger.openRound(2n, 1n, INITIAL_MODEL);
  return { ...f, taskId: 2n };
}

describe("Ledger merkle mode", function () {
  describe("commitRoundRoot", function () {
    it("commits the root, the outcome and the declared total, emitting RoundRootCommitted, RoundCommitted and RoundSettled only", async function () {
      // Prepare
      const { ledger, taskId, root } = await loadFixture(leavesFixture);
      const out = outcome(modelHash(taskId, 1n));

      // Execute
      const tx = await ledger.commitRoundRoot(taskId, 1n, root, out);
      const receipt = await tx.wait();
      const at = BigInt((await ethers.provider.getBlock(receipt.blockNumber)).timestamp);

      // Assert
      await expect(tx)
        .to.emit(ledger, "RoundRootCommitted")
        .withArgs(taskId, 1n, root.root, root.recordHash, 4n, root.totalReward);
      await expect(tx)
        .to.emit(ledger, "RoundCommitted")
        .withArgs(taskId, 1n, out.globalModelHash, out.accuracyPpm, out.lossPpm, out.scoringHash, 0n, root.totalReward);
      await expect(tx).to.emit(ledger, "RoundSettled").withArgs(taskId, 1n, root.totalReward, 0n);
      expect(eventsOf(receipt, ledger, "CommitmentRecorded")).to.have.length(0);
      expect(eventsOf(receipt, ledger, "RewardAttributed")).to.have.length(0);
      const stored = await ledger.getRewardRoot(taskId, 1n);
      expect(stored.root).to.equal(root.root);
      expect(stored.total).to.equal(ethers.parseEther("100"));
      expect(stored.claimed).to.equal(0n);
      expect(stored.declaredLeafCount).to.equal(4n);
      expect(stored.claimedCount).to.equal(0n);
      expect(stored.claimableAt).to.equal(at); // task 1 has no challenge period
      expect(stored.voided).to.equal(false);
      const r = await ledger.getRound(taskId, 1n);
      expect(r.state).to.equal(State.Committed);
      expect(r.globalModelHash).to.equal(out.globalModelHash);
      expect(r.commitmentCount).to.equal(0n);
      const task = await ledger.getTask(taskId);
      expect(task.headModelHash).to.equal(out.globalModelHash);
      expect(task.attributed).to.equal(root.totalReward);
      expect(task.reserved).to.equal(root.totalReward);
    });

    it("counts the round's direct commitments in RoundCommitted and reports the unearned budget", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(alice).submitCommitment(taskId, 1n, h("own"), 5n, 0n);
      const { root } = treeOf(await leavesFor(ledger, [alice], taskId, 1n, [30n]));

      // Execute
      const tx = ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));

      // Assert
      await expect(tx).to.emit(ledger, "RoundSettled").withArgs(taskId, 1n, 30n, REWARD_PER_ROUND - 30n);
      expect((await ledger.getRound(taskId, 1n)).commitmentCount).to.equal(1n);
    });

    it("hashes a leaf as the npm StandardMerkleTree does, bound to task and round", async function () {
      // Prepare
      const { ledger, tree, leaves, taskId } = await loadFixture(leavesFixture);

      // Execute / Assert
      for (const leaf of leaves) {
        expect(await ledger.rewardLeafHash(taskId, 1n, asLeaf(leaf))).to.equal(tree.leafHash(leaf));
      }
      expect(await ledger.rewardLeafHash(taskId + 1n, 1n, asLeaf(leaves[0]))).to.not.equal(tree.leafHash(leaves[0]));
    });

    it("refuses a total above the round budget (LedgerRoundBudgetExceeded)", async function () {
      // Prepare
      const { ledger, taskId, root } = await loadFixture(leavesFixture);
      const over = { ...root, totalReward: REWARD_PER_ROUND + 1n };

      // Execute / Assert
      await expect(ledger.commitRoundRoot(taskId, 1n, over, outcome(modelHash(taskId, 1n))))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundBudgetExceeded")
        .withArgs(taskId, 1n, REWARD_PER_ROUND + 1n, REWARD_PER_ROUND);
    });

    it("refuses a total above what is left in the pool (LedgerPoolInsufficient)", async function () {
      // Prepare: a task whose pool holds less than one round's budget
      const { ledger, token, root, participants } = await loadFixture(leavesFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await token.approve(ledger.target, 5n);
      await ledger.fundTask(2n, 5n);
      await joinAll(ledger, 2n, participants, h("spec 2"));
      await ledger.openRound(2n, 1n, INITIAL_MODEL);

      // Execute / Assert
      await expect(ledger.commitRoundRoot(2n, 1n, root, outcome(modelHash(2n, 1n))))
        .to.be.revertedWithCustomError(ledger, "LedgerPoolInsufficient")
        .withArgs(2n, root.totalReward, 5n);
    });

    it("refuses a declared leaf count above the task's members (LedgerLeafCountAboveMembers)", async function () {
      // Prepare
      const { ledger, taskId, root } = await loadFixture(leavesFixture);

      // Execute / Assert
      await expect(ledger.commitRoundRoot(taskId, 1n, { ...root, leafCount: 5 }, outcome(modelHash(taskId, 1n))))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafCountAboveMembers")
        .withArgs(taskId, 5n, 4n);
    });

    it("refuses anyone but the task's coordinator (LedgerNotTaskCoordinator)", async function () {
      // Prepare
      const { ledger, admin, coordinator2, outsider, alice, taskId, root } = await loadFixture(leavesFixture);
      await ledger.connect(admin).grantRole(COORDINATOR_ROLE, coordinator2.address);

      // Execute / Assert
      for (const who of [coordinator2, outsider, alice]) {
        await expect(ledger.connect(who).commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n))))
          .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
          .withArgs(taskId, who.address);
      }
    });

    it("refuses a round that is not open or already committed, and a zero root", async function () {
      // Prepare
      const { ledger, taskId, root } = await loadFixture(leavesFixture);
      const out = outcome(modelHash(taskId, 1n));

      // Execute / Assert
      await expect(ledger.commitRoundRoot(taskId, 2n, root, out))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 2n);
      await expect(
        ledger.commitRoundRoot(taskId, 1n, { ...root, root: ethers.ZeroHash }, out),
      ).to.be.revertedWithCustomError(ledger, "LedgerZeroHash");
      await expect(
        ledger.commitRoundRoot(taskId, 1n, root, outcome(ethers.ZeroHash)),
      ).to.be.revertedWithCustomError(ledger, "LedgerZeroHash");
      await ledger.commitRoundRoot(taskId, 1n, root, out);
      await expect(ledger.commitRoundRoot(taskId, 1n, root, out))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundAlreadyCommitted")
        .withArgs(taskId, 1n);
    });

    it("refuses to commit a root in the block its round was opened (LedgerRoundOpenedThisBlock)", async function () {
      // Prepare: round 1 committed; round 2 opened and committed in one multicall
      const { ledger, taskId, root, participants } = await loadFixture(committedFixture);
      const next = treeOf(await leavesFor(ledger, participants, taskId, 2n, [1n, 2n, 3n, 4n]));
      const calls = [
        ledger.interface.encodeFunctionData("openRound", [taskId, 2n, modelHash(taskId, 1n)]),
        ledger.interface.encodeFunctionData("commitRoundRoot", [taskId, 2n, next.root, outcome(modelHash(taskId, 2n))]),
      ];

      // Execute / Assert
      await expect(ledger.multicall(calls)).to.be.revertedWithCustomError(ledger, "LedgerRoundOpenedThisBlock").withArgs(taskId, 2n);
      expect(root.leafCount).to.equal(4);
    });

    it("refuses an unknown task (LedgerTaskUnknown)", async function () {
      // Prepare
      const { ledger, root } = await loadFixture(leavesFixture);

      // Execute / Assert
      await expect(ledger.commitRoundRoot(9n, 1n, root, outcome(modelHash(9n, 1n))))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
        .withArgs(9n);
    });
  });

  describe("claimLeaf", function () {
    it("credits a proven leaf to its participant, emitting RewardLeafClaimed; claim() pays it", async function () {
      // Prepare
      const { ledger, token, taskId, tree, leaves, participants, outsider } = await loadFixture(committedFixture);
      const leaf = leaves[2];
      const who = participants[2];

      // Execute: anyone may submit the proof; the tokens go to the leaf's participant
      const tx = ledger.connect(outsider).claimLeaf(taskId, 1n, asLeaf(leaf), tree.getProof(leaf));

      // Assert
      await expect(tx)
        .to.emit(ledger, "RewardLeafClaimed")
        .withArgs(taskId, 1n, who.address, tree.leafHash(leaf), leaf[6], leaf[7]);
      expect(await ledger.owed(token.target, who.address)).to.equal(leaf[7]);
      expect(await ledger.owed(token.target, outsider.address)).to.equal(0n);
      expect(await ledger.leafClaimed(taskId, 1n, leaf[2])).to.equal(true);
      expect(await ledger.leafClaimed(taskId, 1n, leaves[0][2])).to.equal(false);
      const stored = await ledger.getRewardRoot(taskId, 1n);
      expect(stored.claimed).to.equal(leaf[7]);
      expect(stored.claimedCount).to.equal(1n);
      expect((await ledger.getTask(taskId)).reserved).to.equal(ethers.parseEther("100") - leaf[7]);
      await expect(ledger.connect(who).claim(token.target)).to.changeTokenBalances(token, [who, ledger], [leaf[7], -leaf[7]]);
    });

    it("refuses a proof used twice (LedgerLeafAlreadyClaimed)", async function () {
      // Prepare
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      const leaf = leaves[0];
      await ledger.connect(participants[0]).claimLeaf(taskId, 1n, asLeaf(leaf), tree.getProof(leaf));

      // Execute / Assert
      await expect(ledger.connect(participants[0]).claimLeaf(taskId, 1n, asLeaf(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafAlreadyClaimed")
        .withArgs(taskId, 1n, participants[0].address);
      expect(await ledger.owed(token.target, participants[0].address)).to.equal(leaf[7]);
    });

    it("refuses a wrong proof or an altered leaf (LedgerLeafProofInvalid)", async function () {
      // Prepare
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      const leaf = leaves[1];
      const richer = [...leaf];
      richer[7] = leaf[7] * 2n;

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaf), tree.getProof(leaves[3])))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, participants[1].address);
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(richer), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, participants[1].address);
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaf), []))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, participants[1].address);
      expect(await ledger.owed(token.target, participants[1].address)).to.equal(0n);
    });

    it("refuses a leaf of another round (LedgerRewardRootUnknown, LedgerLeafProofInvalid)", async function () {
      // Prepare: round 2 committed by its own root; round 3 open, no root
      const { ledger, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1n));
      const next = treeOf(await leavesFor(ledger, participants, taskId, 2n, [1n, 2n, 3n, 4n]));
      await ledger.commitRoundRoot(taskId, 2n, next.root, outcome(modelHash(taskId, 2n)));
      await ledger.openRound(taskId, 3n, modelHash(taskId, 2n));
      const leaf = leaves[0];

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 2n, asLeaf(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 2n, leaf[3]);
      for (const round of [3n, 4n]) {
        await expect(ledger.claimLeaf(taskId, round, asLeaf(leaf), tree.getProof(leaf)))
          .to.be.revertedWithCustomError(ledger, "LedgerRewardRootUnknown")
          .withArgs(taskId, round);
      }
      await expect(ledger.claimLeaf(7n, 1n, asLeaf(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
        .withArgs(7n);
    });

    it("refuses a round committed with relayed signatures (LedgerRewardRootUnknown)", async function () {
      // Prepare
      const { ledger, taskId, tree, leaves } = await loadFixture(leavesFixture);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1n)), []);
      const leaf = leaves[0];

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootUnknown")
        .withArgs(taskId, 1n);
    });

    it("never credits more than the declared total (LedgerRewardRootOverdrawn)", async function () {
      // Prepare: a coordinator declaring 25 ether for leaves worth 100
      const { ledger, token, taskId, leaves, participants } = await loadFixture(leavesFixture);
      const { tree, root } = treeOf(leaves, { totalReward: ethers.parseEther("25") });
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0])); // 10

      // Execute / Assert: 10 + 20 > 25
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1])))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootOverdrawn")
        .withArgs(taskId, 1n, ethers.parseEther("25"), ethers.parseEther("30"));
      expect(await ledger.owed(token.target, participants[1].address)).to.equal(0n);
    });

    it("claims several rounds in one transaction with claimLeaves", async function () {
      // Prepare: rounds 1 and 2 committed by root
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1n));
      const nextLeaves = await leavesFor(ledger, participants, taskId, 2n, [1n, 2n, 3n, 4n]);
      const next = treeOf(nextLeaves);
      await ledger.commitRoundRoot(taskId, 2n, next.root, outcome(modelHash(taskId, 2n)));
      const mine1 = leaves[3];
      const mine2 = nextLeaves[3];
      const claims = [
        { round: 1n, leaf: asLeaf(mine1), proof: tree.getProof(mine1) },
        { round: 2n, leaf: asLeaf(mine2), proof: next.tree.getProof(mine2) },
      ];

      // Execute
      const tx = await ledger.connect(participants[3]).claimLeaves(taskId, claims);
      const receipt = await tx.wait();

      // Assert
      const claimed = eventsOf(receipt, ledger, "RewardLeafClaimed");
      expect(claimed.map((e) => e.round)).to.deep.equal([1n, 2n]);
      expect(await ledger.owed(token.target, participants[3].address)).to.equal(mine1[7] + 4n);
      await expect(ledger.claimLeaves(taskId, claims))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafAlreadyClaimed")
        .withArgs(taskId, 1n, participants[3].address);
    });

    it("proves a one-leaf tree with an empty proof, and marks a zero-amount leaf without crediting", async function () {
      // Prepare
      const { ledger, token, taskId, participants } = await loadFixture(openRoundFixture);
      const leaves = await leavesFor(ledger, participants.slice(0, 1), taskId, 1n, [0n]);
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));

      // Execute
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));

      // Assert
      expect(tree.getProof(leaves[0])).to.deep.equal([]);
      expect(await ledger.owed(token.target, participants[0].address)).to.equal(0n);
      expect(await ledger.leafClaimed(taskId, 1n, leaves[0][2])).to.equal(true);
    });

    it("pays only a member eligible at that round: not one that joined later or had left, but one that left afterwards", async function () {
      // Prepare: alice leaves during round 1; erin joins in round 2; bob leaves after round 1 is committed
      const { ledger, token, taskId, alice, bob, outsider: erin } = await loadFixture(openRoundFixture);
      await registerAll(ledger, [erin]);
      await ledger.connect(alice).leaveTask(taskId);
      const round1 = await leavesFor(ledger, [alice, bob], taskId, 1n, [5n, 6n]);
      const t1 = treeOf(round1);
      await ledger.commitRoundRoot(taskId, 1n, t1.root, outcome(modelHash(taskId, 1n)));
      await ledger.connect(bob).leaveTask(taskId);
      await joinAll(ledger, taskId, [erin]);
      const late = [rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, erin), erin, 7n)];
      const t1b = treeOf([...round1, ...late]);

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(round1[0]), t1.tree.getProof(round1[0])))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(taskId, 1n, alice.address);
      await ledger.claimLeaf(taskId, 1n, asLeaf(round1[1]), t1.tree.getProof(round1[1]));
      expect(await ledger.owed(token.target, bob.address)).to.equal(6n);
      expect(await ledger.isEligible(taskId, 1n, erin.address)).to.equal(false);
      expect(await ledger.isEligible(taskId, 2n, erin.address)).to.equal(true);
      expect(t1b.root.root).to.not.equal(t1.root.root);
    });

    it("refuses a leaf with more examples than its member's dataset (LedgerExamplesAboveDataset)", async function () {
      // Prepare
      const { ledger, taskId, alice } = await loadFixture(openRoundFixture);
      const leaf = rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 5n, { numExamples: DATASET_SIZE + 1n });
      const { tree, root } = treeOf([leaf]);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerExamplesAboveDataset")
        .withArgs(taskId, alice.address, DATASET_SIZE + 1n, DATASET_SIZE);
    });

    it("opens claims after the challenge period and closes them at the claim deadline", async function () {
      // Prepare
      const { ledger, token, taskId, alice, bob } = await loadFixture(challengeFixture);
      const leaves = await leavesFor(ledger, [alice, bob], taskId, 1n, [5n, 6n]);
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));
      const { claimableAt } = await ledger.getRewardRoot(taskId, 1n);

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0])))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootInChallenge")
        .withArgs(taskId, 1n, claimableAt);
      await time.increaseTo(claimableAt);
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));
      await ledger.closeTask(taskId);
      const { claimDeadline } = await ledger.getTask(taskId);
      await time.increaseTo(claimDeadline); // the deadline itself is still in time
      await time.increase(1n);
      await expect(ledger.claimLeaf(taskId, 1n, asLeaf(leaves[1]), tree.getProof(leaves[1])))
        .to.be.revertedWithCustomError(ledger, "LedgerClaimDeadlinePassed")
        .withArgs(taskId, claimDeadline);
      expect(await ledger.owed(token.target, alice.address)).to.equal(5n);
    });

    it("still takes claims of a closed task before its deadline", async function () {
      // Prepare
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      await ledger.closeTask(taskId);

      // Execute
      await ledger.claimLeaf(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));

      // Assert
      expect(await ledger.owed(token.target, participants[0].address)).to.equal(leaves[0][7]);
    });

    it("still needs a task (LedgerTaskUnknown in claimLeaves)", async function () {
      // Prepare
      const { ledger } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.claimLeaves(5n, [])).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(5n);
    });
  });

  describe("voidRoot", function () {
    /** challengeFixture with a root over `leaves(f)` committed for round 1. */
    async function rootWith(f, leaves) {
      const t = treeOf(leaves);
      await f.ledger.commitRoundRoot(f.taskId, 1n, t.root, outcome(modelHash(f.taskId, 1n)));
      return t;
    }

    it("voids a root with a leaf at another index than its member's, returning the reserve (IndexMismatch)", async function () {
      // Prepare
      const f = await loadFixture(challengeFixture);
      const { ledger, taskId, alice, bob, outsider } = f;
      const leaves = [rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, bob), alice, 30n), rewardLeaf(taskId, 1n, 0n, bob, 1n)];
      const { tree } = await rootWith(f, leaves);

      // Execute
      const tx = ledger.connect(outsider).voidRoot(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0]));

      // Assert
      await expect(tx).to.emit(ledger, "RoundRootVoided").withArgs(taskId, 1n, alice.address, Void.IndexMismatch, outsider.address, 31n);
      const task = await ledger.getTask(taskId);
      expect(task.attributed).to.equal(0n);
      expect(task.reserved).to.equal(0n);
      expect((await ledger.getRewardRoot(taskId, 1n)).voided).to.equal(true);
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Committed); // the model stands
    });

    it("voids a root with a leaf above its member's dataset size (ExamplesAboveDataset), even while paused", async function () {
      // Prepare
      const f = await loadFixture(challengeFixture);
      const { ledger, taskId, alice } = f;
      const leaves = [rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 30n, { numExamples: DATASET_SIZE + 1n })];
      const { tree } = await rootWith(f, leaves);
      await ledger.pause();

      // Execute / Assert
      await expect(ledger.voidRoot(taskId, 1n, asLeaf(leaves[0]), tree.getProof(leaves[0])))
        .to.emit(ledger, "RoundRootVoided")
        .withArgs(taskId, 1n, alice.address, Void.ExamplesAboveDataset, f.admin.address, 30n);
    });

    it("refuses to void for a valid leaf, a bad proof, after the challenge period, twice, or without a root", async function () {
      // Prepare
      const f = await loadFixture(challengeFixture);
      const { ledger, taskId, alice, admin } = f;
      const good = rewardLeaf(taskId, 1n, await memberIndex(ledger, taskId, alice), alice, 30n);
      const bad = rewardLeaf(taskId, 1n, 0n, admin, 1n);
      const { tree } = await rootWith(f, [good, bad]);

      // Execute / Assert
      await expect(ledger.voidRoot(taskId, 1n, asLeaf(good), tree.getProof(good)))
        .to.be.revertedWithCustomError(ledger, "LedgerChallengeUnfounded")
        .withArgs(taskId, 1n, alice.address);
      await expect(ledger.voidRoot(taskId, 1n, asLeaf(bad), tree.getProof(good)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, admin.address);
      await expect(ledger.voidRoot(taskId, 2n, asLeaf(bad), tree.getProof(bad)))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootUnknown")
        .withArgs(taskId, 2n);
      await ledger.voidRoot(taskId, 1n, asLeaf(bad), tree.getProof(bad));
      await expect(ledger.voidRoot(taskId, 1n, asLeaf(bad), tree.getProof(bad)))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootVoided")
        .withArgs(taskId, 1n);
      await expect(ledger.voidRoot(9n, 1n, asLeaf(bad), [])).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown");
    });

    it("voids a root paying a member that had left before the round opened (NotMember)", async function () {
      // Prepare: carol leaves during round 1; round 2's root still pays her
      const f = await loadFixture(challengeFixture);
      const { ledger, taskId, carol } = f;
      await ledger.connect(carol).leaveTask(taskId);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1n)), []);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1n));
      const leaf = rewardLeaf(taskId, 2n, await memberIndex(ledger, taskId, carol), carol, 9n);
      const { tree, root } = treeOf([leaf]);
      await ledger.commitRoundRoot(taskId, 2n, root, outcome(modelHash(taskId, 2n)));

      // Execute / Assert
      await expect(ledger.voidRoot(taskId, 2n, asLeaf(leaf), tree.getProof(leaf)))
        .to.emit(ledger, "RoundRootVoided")
        .withArgs(taskId, 2n, carol.address, Void.NotMember, f.admin.address, 9n);
    });

    it("refuses a challenge once the root is claimable (LedgerChallengePeriodOver)", async function () {
      // Prepare
      const f = await loadFixture(challengeFixture);
      const { ledger, taskId, admin } = f;
      const bad = rewardLeaf(taskId, 1n, 0n, admin, 1n);
      const { tree } = await rootWith(f, [bad]);
      const { claimableAt } = await ledger.getRewardRoot(taskId, 1n);
      await time.increaseTo(claimableAt);

      // Execute / Assert
      await expect(ledger.voidRoot(taskId, 1n, asLeaf(bad), tree.getProof(bad)))
        .to.be.revertedWithCustomError(ledger, "LedgerChallengePeriodOver")
        .withArgs(taskId, 1n, claimableAt);
    });

    it("adds a root voided after close to what the funders are refunded", async function () {
      // Prepare: root reserving 50 committed, task closed (refund 950), then the root is voided
      const f = await loadFixture(challengeFixture);
      const { ledger, token, taskId, admin } = f;
      const bad = rewardLeaf(taskId, 1n, 0n, admin, 50n);
      const { tree } = await rootWith(f, [bad]);
      await ledger.closeTask(taskId);
      await expect(ledger.refund(taskId)).to.changeTokenBalance(token, admin, FUNDING - 50n);

      // Execute
      await ledger.voidRoot(taskId, 1n, asLeaf(bad), tree.getProof(bad));

      // Assert
      await expect(ledger.refund(taskId)).to.changeTokenBalance(token, admin, 50n);
      expect(await ledger.refund.staticCall(taskId)).to.equal(0n);
    });
  });
});
