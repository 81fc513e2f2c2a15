// Merkle commit mode: one reward root per round (constant gas), leaves claimed with proofs.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const {
  COORDINATOR_ROLE,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  FUNDING,
  h,
  updateHash,
  modelHash,
  outcome,
  eventsOf,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

const LEAF_ENCODING = ["address", "bytes32", "uint256", "int256", "uint256"];
const State = { Committed: 2n };

/** One leaf per participant: (participant, updateHash, numExamples, score, amount). */
function leavesFor(participants, taskId, round, amounts) {
  return participants.map((p, i) => [
    p.address,
    updateHash(p.address, taskId, round),
    100n + BigInt(i),
    BigInt(250000 * (i + 1)) - 400000n, // scores may be negative
    amounts[i],
  ]);
}

/** The StandardMerkleTree of `leaves`, and what commitRoundRoot takes. */
function treeOf(leaves, overrides = {}) {
  const tree = StandardMerkleTree.of(leaves, LEAF_ENCODING);
  const total = leaves.reduce((sum, leaf) => sum + leaf[4], 0n);
  return {
    tree,
    root: { root: tree.root, recordHash: h(`record ${tree.root}`), leafCount: leaves.length, totalReward: total, ...overrides },
  };
}

const asStruct = ([participant, updateHash, numExamples, score, amount]) => ({
  participant,
  updateHash,
  numExamples,
  score,
  amount,
});

/** Round 1 open, its four leaves (amounts 10..40 ether) and their tree. */
async function leavesFixture() {
  const f = await openRoundFixture();
  const amounts = [10n, 20n, 30n, 40n].map((n) => ethers.parseEther(String(n)));
  const leaves = leavesFor(f.participants, f.taskId, 1n, amounts);
  return { ...f, leaves, ...treeOf(leaves) };
}

/** leavesFixture with round 1 committed by its root. */
async function committedFixture() {
  const f = await leavesFixture();
  await f.ledger.commitRoundRoot(f.taskId, 1n, f.root, outcome(modelHash(f.taskId, 1n)));
  return f;
}

describe("Ledger merkle mode", function () {
  describe("commitRoundRoot", function () {
    it("commits the root, the outcome and the total, emitting RoundRootCommitted and RoundCommitted only", async function () {
      // Prepare
      const { ledger, taskId, root, leaves } = await loadFixture(leavesFixture);
      const out = outcome(modelHash(taskId, 1n));

      // Execute
      const tx = await ledger.commitRoundRoot(taskId, 1n, root, out);
      const receipt = await tx.wait();

      // Assert
      await expect(tx)
        .to.emit(ledger, "RoundRootCommitted")
        .withArgs(taskId, 1n, root.root, root.recordHash, 4n, root.totalReward);
      await expect(tx)
        .to.emit(ledger, "RoundCommitted")
        .withArgs(taskId, 1n, out.globalModelHash, out.accuracyPpm, out.lossPpm, out.scoringHash, 4n, root.totalReward);
      expect(eventsOf(receipt, ledger, "CommitmentRecorded")).to.have.length(0);
      expect(eventsOf(receipt, ledger, "RewardAttributed")).to.have.length(0);
      const stored = await ledger.getRewardRoot(taskId, 1n);
      expect(stored.root).to.equal(root.root);
      expect(stored.total).to.equal(ethers.parseEther("100"));
      expect(stored.claimed).to.equal(0n);
      const r = await ledger.getRound(taskId, 1n);
      expect(r.state).to.equal(State.Committed);
      expect(r.globalModelHash).to.equal(out.globalModelHash);
      expect(r.commitmentCount).to.equal(4n);
      const task = await ledger.getTask(taskId);
      expect(task.headModelHash).to.equal(out.globalModelHash);
      expect(task.attributed).to.equal(root.totalReward);
      expect(leaves).to.have.length(4);
    });

    it("hashes a leaf as the npm StandardMerkleTree does", async function () {
      // Prepare
      const { ledger, tree, leaves } = await loadFixture(leavesFixture);

      // Execute / Assert
      for (const [i, leaf] of leaves.entries()) {
        expect(await ledger.rewardLeafHash(asStruct(leaf))).to.equal(tree.leafHash(leaf));
        expect(tree.leafHash(leaf)).to.equal(
          ethers.keccak256(ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(LEAF_ENCODING, leaves[i]))),
        );
      }
    });

    it("costs the same gas for 4 and for 1000 leaves", async function () {
      // Prepare: two tasks, one tree of 4 leaves, one of 1000 (the leaves never reach the chain)
      const { ledger, token, taskId, root } = await loadFixture(leavesFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await token.approve(ledger.target, FUNDING);
      await ledger.fundTask(2n, FUNDING);
      await ledger.openRound(2n, 1n, INITIAL_MODEL);
      const many = Array.from({ length: 1000 }, (_, i) => [
        ethers.getAddress(ethers.zeroPadValue(ethers.toBeHex(i + 1), 20)),
        h(`update ${i}`),
        100n,
        1000n,
        ethers.parseEther("0.1"),
      ]);
      const big = treeOf(many).root;

      // Execute
      const small = await (await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(1n, 1n)))).wait();
      const large = await (await ledger.commitRoundRoot(2n, 1n, big, outcome(modelHash(2n, 1n)))).wait();

      // Assert: only the calldata bytes of the root and the counts differ
      const ratio = Number(large.gasUsed) / Number(small.gasUsed);
      expect(ratio).to.be.within(0.99, 1.01);
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
      const { ledger, token, root } = await loadFixture(leavesFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await token.approve(ledger.target, 5n);
      await ledger.fundTask(2n, 5n);
      await ledger.openRound(2n, 1n, INITIAL_MODEL);

      // Execute / Assert
      await expect(ledger.commitRoundRoot(2n, 1n, root, outcome(modelHash(2n, 1n))))
        .to.be.revertedWithCustomError(ledger, "LedgerPoolInsufficient")
        .withArgs(2n, root.totalReward, 5n);
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
      const tx = ledger.connect(outsider).claimLeaf(taskId, 1n, asStruct(leaf), tree.getProof(leaf));

      // Assert
      await expect(tx)
        .to.emit(ledger, "RewardLeafClaimed")
        .withArgs(taskId, 1n, who.address, tree.leafHash(leaf), leaf[3], leaf[4]);
      expect(await ledger.owed(token.target, who.address)).to.equal(leaf[4]);
      expect(await ledger.owed(token.target, outsider.address)).to.equal(0n);
      expect(await ledger.leafClaimed(taskId, 1n, tree.leafHash(leaf))).to.equal(true);
      expect(await ledger.leafClaimed(taskId, 1n, tree.leafHash(leaves[0]))).to.equal(false);
      expect((await ledger.getRewardRoot(taskId, 1n)).claimed).to.equal(leaf[4]);
      await expect(ledger.connect(who).claim(token.target)).to.changeTokenBalances(
        token,
        [who, ledger],
        [leaf[4], -leaf[4]],
      );
    });

    it("refuses a proof used twice (LedgerLeafAlreadyClaimed)", async function () {
      // Prepare
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      const leaf = leaves[0];
      await ledger.connect(participants[0]).claimLeaf(taskId, 1n, asStruct(leaf), tree.getProof(leaf));

      // Execute / Assert
      await expect(ledger.connect(participants[0]).claimLeaf(taskId, 1n, asStruct(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafAlreadyClaimed")
        .withArgs(taskId, 1n, participants[0].address);
      expect(await ledger.owed(token.target, participants[0].address)).to.equal(leaf[4]);
    });

    it("refuses a wrong proof or an altered leaf (LedgerLeafProofInvalid)", async function () {
      // Prepare
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      const leaf = leaves[1];
      const richer = [...leaf];
      richer[4] = leaf[4] * 2n;

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asStruct(leaf), tree.getProof(leaves[3])))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, participants[1].address);
      await expect(ledger.claimLeaf(taskId, 1n, asStruct(richer), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, participants[1].address);
      await expect(ledger.claimLeaf(taskId, 1n, asStruct(leaf), []))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 1n, participants[1].address);
      expect(await ledger.owed(token.target, participants[1].address)).to.equal(0n);
    });

    it("refuses a leaf of another round (LedgerRewardRootUnknown, LedgerLeafProofInvalid)", async function () {
      // Prepare: round 2 committed by its own root; round 3 open, no root
      const { ledger, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1n));
      const next = treeOf(leavesFor(participants, taskId, 2n, [1n, 2n, 3n, 4n]));
      await ledger.commitRoundRoot(taskId, 2n, next.root, outcome(modelHash(taskId, 2n)));
      await ledger.openRound(taskId, 3n, modelHash(taskId, 2n));
      const leaf = leaves[0];

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 2n, asStruct(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafProofInvalid")
        .withArgs(taskId, 2n, leaf[0]);
      for (const round of [3n, 4n]) {
        await expect(ledger.claimLeaf(taskId, round, asStruct(leaf), tree.getProof(leaf)))
          .to.be.revertedWithCustomError(ledger, "LedgerRewardRootUnknown")
          .withArgs(taskId, round);
      }
      await expect(ledger.claimLeaf(7n, 1n, asStruct(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
        .withArgs(7n);
    });

    it("refuses a round committed with relayed signatures (LedgerRewardRootUnknown)", async function () {
      // Prepare
      const { ledger, taskId, tree, leaves } = await loadFixture(leavesFixture);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1n)), []);
      const leaf = leaves[0];

      // Execute / Assert
      await expect(ledger.claimLeaf(taskId, 1n, asStruct(leaf), tree.getProof(leaf)))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootUnknown")
        .withArgs(taskId, 1n);
    });

    it("never credits more than the committed total (LedgerRewardRootOverdrawn)", async function () {
      // Prepare: a coordinator declaring 25 ether for leaves worth 100
      const { ledger, token, taskId, leaves, participants } = await loadFixture(leavesFixture);
      const { tree, root } = treeOf(leaves, { totalReward: ethers.parseEther("25") });
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));
      await ledger.claimLeaf(taskId, 1n, asStruct(leaves[0]), tree.getProof(leaves[0])); // 10

      // Execute / Assert: 10 + 20 > 25
      await expect(ledger.claimLeaf(taskId, 1n, asStruct(leaves[1]), tree.getProof(leaves[1])))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardRootOverdrawn")
        .withArgs(taskId, 1n, ethers.parseEther("25"), ethers.parseEther("30"));
      expect(await ledger.owed(token.target, participants[1].address)).to.equal(0n);
    });

    it("claims several rounds in one transaction with claimLeaves", async function () {
      // Prepare: rounds 1 and 2 committed by root
      const { ledger, token, taskId, tree, leaves, participants } = await loadFixture(committedFixture);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1n));
      const next = treeOf(leavesFor(participants, taskId, 2n, [1n, 2n, 3n, 4n]));
      await ledger.commitRoundRoot(taskId, 2n, next.root, outcome(modelHash(taskId, 2n)));
      const mine1 = leaves[3];
      const mine2 = next.tree.at(3);
      const claims = [
        { round: 1n, leaf: asStruct(mine1), proof: tree.getProof(mine1) },
        { round: 2n, leaf: asStruct(mine2), proof: next.tree.getProof(mine2) },
      ];

      // Execute
      const tx = await ledger.connect(participants[3]).claimLeaves(taskId, claims);
      const receipt = await tx.wait();

      // Assert
      const claimed = eventsOf(receipt, ledger, "RewardLeafClaimed");
      expect(claimed.map((e) => e.round)).to.deep.equal([1n, 2n]);
      expect(await ledger.owed(token.target, participants[3].address)).to.equal(mine1[4] + 4n);
      await expect(ledger.claimLeaves(taskId, claims))
        .to.be.revertedWithCustomError(ledger, "LedgerLeafAlreadyClaimed")
        .withArgs(taskId, 1n, participants[3].address);
    });

    it("proves a one-leaf tree with an empty proof", async function () {
      // Prepare
      const { ledger, token, taskId, participants } = await loadFixture(openRoundFixture);
      const leaves = leavesFor(participants.slice(0, 1), taskId, 1n, [7n]);
      const { tree, root } = treeOf(leaves);
      await ledger.commitRoundRoot(taskId, 1n, root, outcome(modelHash(taskId, 1n)));

      // Execute
      await ledger.claimLeaf(taskId, 1n, asStruct(leaves[0]), tree.getProof(leaves[0]));

      // Assert
      expect(tree.getProof(leaves[0])).to.deep.equal([]);
      expect(await ledger.owed(token.target, participants[0].address)).to.equal(7n);
    });
  });

  it("still needs a task (LedgerTaskUnknown in claimLeaves)", async function () {
    // Prepare
    const { ledger } = await loadFixture(taskFixture);

    // Execute / Assert
    await expect(ledger.claimLeaves(5n, [])).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(5n);
  });
});
