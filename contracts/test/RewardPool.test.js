const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const {
  SPEC_HASH,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  FUNDING,
  h,
  orgHash,
  modelHash,
  outcome,
  byAddress,
  signAll,
  registerAll,
  deployFixture,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

/** openRoundFixture + round 1 committed with rewards alice 30, bob 20 (relayed), carol 50 (direct). */
async function rewardedFixture() {
  const f = await openRoundFixture();
  const { ledger, alice, bob, carol, taskId } = f;
  await ledger.connect(carol).submitCommitment(taskId, 1n, h("carol update"), 10n, 0n);
  const cs = await signAll([alice, bob], ledger, taskId, 1n);
  const amounts = { [alice.address]: 30n, [bob.address]: 20n, [carol.address]: 50n };
  const rewards = byAddress([alice, bob, carol]).map((s) => ({
    participant: s.address,
    score: 1n,
    amount: amounts[s.address],
  }));
  await ledger.commitRound(taskId, 1n, cs, outcome(modelHash(taskId, 1)), rewards);
  return { ...f, amounts };
}

/** A ledger whose task 1 pays in ReentrantToken; the token contract itself is a participant owed 40. */
async function reentrantFixture() {
  const { ledger, admin } = await deployFixture();
  const token = await ethers.deployContract("ReentrantToken", [ledger.target, admin.address, FUNDING]);
  await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
  await token.approve(ledger.target, 100n);
  await ledger.fundTask(1n, 100n);
  await registerAll(ledger, [token.target]);
  await token.joinTask(1n, SPEC_HASH, 10n, h("attacker data"));
  await ledger.openRound(1n, 1n, INITIAL_MODEL);
  await token.submitCommitment(1n, 1n, h("attacker update"), 1n);
  await ledger.commitRound(1n, 1n, [], outcome(modelHash(1, 1)), [
    { participant: token.target, score: 1n, amount: 40n },
  ]);
  return { ledger, token, admin };
}

describe("RewardPool", function () {
  describe("funding", function () {
    it("moves approved tokens into the task's pool, emitting TaskFunded", async function () {
      // Prepare
      const { ledger, token, funder } = await loadFixture(taskFixture);
      const amount = ethers.parseEther("12.5");
      await token.connect(funder).approve(ledger.target, amount);

      // Execute
      const tx = ledger.connect(funder).fundTask(1n, amount);

      // Assert: anyone may fund
      await expect(tx).to.emit(ledger, "TaskFunded").withArgs(1n, funder.address, amount);
      await expect(tx).to.changeTokenBalances(token, [funder, ledger], [-amount, amount]);
      expect((await ledger.getTask(1n)).funded).to.equal(FUNDING + amount);
    });

    it("refuses a zero amount (RewardPoolZeroAmount) and an unknown task (LedgerTaskUnknown)", async function () {
      // Prepare
      const { ledger, token } = await loadFixture(taskFixture);
      await token.approve(ledger.target, 10n);

      // Execute / Assert
      await expect(ledger.fundTask(1n, 0n)).to.be.revertedWithCustomError(ledger, "RewardPoolZeroAmount");
      await expect(ledger.fundTask(2n, 10n)).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(2n);
      await expect(ledger.fundTask(0n, 10n)).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(0n);
      expect((await ledger.getTask(1n)).funded).to.equal(FUNDING);
    });

    it("refuses funding without approval (the token's ERC20InsufficientAllowance)", async function () {
      // Prepare
      const { ledger, token, funder } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.connect(funder).fundTask(1n, 10n))
        .to.be.revertedWithCustomError(token, "ERC20InsufficientAllowance")
        .withArgs(ledger.target, 0n, 10n);
    });

    it("refuses a fee-on-transfer token's short transfer (RewardPoolTransferShort)", async function () {
      // Prepare
      const { ledger, admin } = await loadFixture(deployFixture);
      const fee = await ethers.deployContract("FeeToken", [admin.address, FUNDING]);
      await ledger.createTask(SPEC_HASH, INITIAL_MODEL, fee.target, REWARD_PER_ROUND);
      await fee.approve(ledger.target, 1000n);

      // Execute / Assert
      await expect(ledger.fundTask(1n, 1000n))
        .to.be.revertedWithCustomError(ledger, "RewardPoolTransferShort")
        .withArgs(1000n, 990n);
      expect((await ledger.getTask(1n)).funded).to.equal(0n);
      expect(await fee.balanceOf(ledger.target)).to.equal(0n);
    });
  });

  describe("claims", function () {
    it("pays each participant what it is owed, emitting RewardClaimed", async function () {
      // Prepare
      const { ledger, token, alice, bob, carol, amounts } = await loadFixture(rewardedFixture);

      for (const who of [alice, bob, carol]) {
        const amount = amounts[who.address];
        // Execute
        const returned = await ledger.connect(who).claim.staticCall(token.target);
        const tx = ledger.connect(who).claim(token.target);

        // Assert
        expect(returned).to.equal(amount);
        await expect(tx).to.emit(ledger, "RewardClaimed").withArgs(who.address, token.target, amount);
        await expect(tx).to.changeTokenBalances(token, [who, ledger], [amount, -amount]);
        expect(await ledger.owed(token.target, who.address)).to.equal(0n);
        expect(await ledger.claimed(token.target, who.address)).to.equal(amount);
      }
    });

    it("pays nothing and emits nothing on a second claim", async function () {
      // Prepare
      const { ledger, token, alice } = await loadFixture(rewardedFixture);
      await ledger.connect(alice).claim(token.target);

      // Execute
      const returned = await ledger.connect(alice).claim.staticCall(token.target);
      const tx = ledger.connect(alice).claim(token.target);

      // Assert
      expect(returned).to.equal(0n);
      await expect(tx).not.to.emit(ledger, "RewardClaimed");
      await expect(tx).to.changeTokenBalances(token, [alice, ledger], [0n, 0n]);
      expect(await ledger.claimed(token.target, alice.address)).to.equal(30n);
    });

    it("pays nothing to an account never rewarded, or in a token it is not owed", async function () {
      // Prepare
      const { ledger, token, admin, alice, dave } = await loadFixture(rewardedFixture);
      const other = await ethers.deployContract("DevToken", [admin.address, 1000n]);

      // Execute
      const tx1 = ledger.connect(dave).claim(token.target);
      const tx2 = ledger.connect(alice).claim(other.target);

      // Assert
      await expect(tx1).not.to.emit(ledger, "RewardClaimed");
      await expect(tx2).not.to.emit(ledger, "RewardClaimed");
      await expect(tx1).to.changeTokenBalance(token, dave, 0n);
      expect(await ledger.owed(token.target, alice.address)).to.equal(30n);
    });

    it("pays rewards accumulated over several rounds in one claim", async function () {
      // Prepare: alice earns 30 in round 1 and 45 in round 2
      const { ledger, token, alice, taskId } = await loadFixture(rewardedFixture);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1));
      await ledger.commitRound(taskId, 2n, await signAll([alice], ledger, taskId, 2n), outcome(modelHash(taskId, 2)), [
        { participant: alice.address, score: 1n, amount: 45n },
      ]);

      // Execute
      const tx = ledger.connect(alice).claim(token.target);

      // Assert
      await expect(tx).to.emit(ledger, "RewardClaimed").withArgs(alice.address, token.target, 75n);
      await expect(tx).to.changeTokenBalance(token, alice, 75n);
    });

    it("keeps rewards claimable after the participant leaves the task", async function () {
      // Prepare
      const { ledger, token, bob, taskId } = await loadFixture(rewardedFixture);
      await ledger.connect(bob).leaveTask(taskId);

      // Execute
      const tx = ledger.connect(bob).claim(token.target);

      // Assert
      await expect(tx).to.emit(ledger, "RewardClaimed").withArgs(bob.address, token.target, 20n);
      await expect(tx).to.changeTokenBalance(token, bob, 20n);
    });

    it("leaves the unattributed pool in the ledger after everyone claimed", async function () {
      // Prepare
      const { ledger, token, alice, bob, carol } = await loadFixture(rewardedFixture);

      // Execute
      for (const who of [alice, bob, carol]) await ledger.connect(who).claim(token.target);

      // Assert
      expect(await token.balanceOf(ledger.target)).to.equal(FUNDING - 100n);
      const t = await ledger.getTask(1n);
      expect(t.funded - t.attributed).to.equal(FUNDING - 100n);
    });
  });

  describe("reentrancy", function () {
    it("pays the attacker token normally when it does not re-enter (control)", async function () {
      // Prepare
      const { ledger, token } = await loadFixture(reentrantFixture);

      // Execute
      const tx = token.claimFromLedger();

      // Assert
      await expect(tx).to.emit(ledger, "RewardClaimed").withArgs(token.target, token.target, 40n);
      expect(await token.balanceOf(token.target)).to.equal(40n);
    });

    it("reverts a claim that re-enters claim (ReentrancyGuardReentrantCall)", async function () {
      // Prepare
      const { ledger, token } = await loadFixture(reentrantFixture);
      await token.setMode(1); // Bubble

      // Execute / Assert
      await expect(token.claimFromLedger()).to.be.revertedWithCustomError(ledger, "ReentrancyGuardReentrantCall");
      expect(await ledger.owed(token.target, token.target)).to.equal(40n);
      expect(await ledger.claimed(token.target, token.target)).to.equal(0n);
      expect(await token.balanceOf(token.target)).to.equal(0n);
    });

    it("pays once when the re-entrant claim's revert is swallowed", async function () {
      // Prepare
      const { ledger, token } = await loadFixture(reentrantFixture);
      await token.setMode(2); // Swallow

      // Execute
      const tx = await token.claimFromLedger();
      const receipt = await tx.wait();

      // Assert
      const claims = receipt.logs
        .filter((l) => l.address === ledger.target)
        .map((l) => ledger.interface.parseLog(l))
        .filter((e) => e.name === "RewardClaimed");
      expect(claims).to.have.length(1);
      expect(await token.reentered()).to.equal(true);
      expect(await token.reentryReverted()).to.equal(true);
      expect(await token.reentryRevertData()).to.equal(
        ledger.interface.getError("ReentrancyGuardReentrantCall").selector,
      );
      expect(await token.reentryPaid()).to.equal(0n);
      expect(await token.balanceOf(token.target)).to.equal(40n);
      expect(await token.balanceOf(ledger.target)).to.equal(60n);
      expect(await ledger.owed(token.target, token.target)).to.equal(0n);
      expect(await ledger.claimed(token.target, token.target)).to.equal(40n);
    });
  });
});
