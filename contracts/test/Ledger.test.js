const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const {
  COORDINATOR_ROLE,
  REGISTRAR_ROLE,
  PAUSER_ROLE,
  DEFAULT_ADMIN_ROLE,
  SPEC_HASH,
  INITIAL_MODEL,
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
  outcome,
  byAddress,
  domainOf,
  signCommitment,
  signAll,
  signConsent,
  registerAll,
  joinAll,
  eventsOf,
  deployFixture,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

const Status = { None: 0n, Registered: 1n, Revoked: 2n };
const TaskStatus = { None: 0n, Active: 1n, Closed: 2n, Cancelled: 3n };
const Skip = { CommittedDirectly: 0n, NotMember: 1n, Left: 2n, ExamplesAboveDataset: 3n, AlreadyMember: 4n };
const State = { None: 0n, Open: 1n, Committed: 2n, Failed: 3n };

describe("Ledger", function () {
  // ================================================================== deployment & roles
  describe("deployment and roles", function () {
    it("gives the admin DEFAULT_ADMIN_ROLE (delayed), COORDINATOR_ROLE, REGISTRAR_ROLE and PAUSER_ROLE, each administered by DEFAULT_ADMIN_ROLE", async function () {
      // Prepare / Execute
      const { ledger, admin, outsider } = await loadFixture(deployFixture);

      // Assert
      for (const role of [DEFAULT_ADMIN_ROLE, COORDINATOR_ROLE, REGISTRAR_ROLE, PAUSER_ROLE]) {
        expect(await ledger.hasRole(role, admin.address)).to.equal(true);
        expect(await ledger.hasRole(role, outsider.address)).to.equal(false);
        expect(await ledger.getRoleAdmin(role)).to.equal(DEFAULT_ADMIN_ROLE);
      }
      expect(await ledger.defaultAdmin()).to.equal(admin.address);
      expect(await ledger.defaultAdminDelay()).to.equal(2n * DAY);
      expect(await ledger.INITIAL_ADMIN_DELAY()).to.equal(2n * DAY);
      expect(await ledger.COORDINATOR_ROLE()).to.equal(COORDINATOR_ROLE);
      expect(await ledger.REGISTRAR_ROLE()).to.equal(REGISTRAR_ROLE);
      expect(await ledger.PAUSER_ROLE()).to.equal(PAUSER_ROLE);
      expect(await ledger.COMMITMENT_TYPEHASH()).to.equal(
        ethers.id("Commitment(uint256 taskId,uint256 round,bytes32 updateHash,uint256 numExamples,uint256 epsilon)"),
      );
      expect(await ledger.CONSENT_TYPEHASH()).to.equal(
        ethers.id("Consent(uint256 taskId,bytes32 specHash,uint256 datasetSize,bytes32 dataHash)"),
      );
      expect(await ledger.taskCount()).to.equal(0n);
      expect(await ledger.paused()).to.equal(false);
    });

    it("supports the ERC-165 ids of IAccessControl and IAccessControlDefaultAdminRules", async function () {
      // Prepare
      const { ledger } = await loadFixture(deployFixture);

      // Execute / Assert
      expect(await ledger.supportsInterface("0x7965db0b")).to.equal(true); // IAccessControl
      expect(await ledger.supportsInterface("0x31498786")).to.equal(true); // IAccessControlDefaultAdminRules
      expect(await ledger.supportsInterface("0xffffffff")).to.equal(false);
    });

    it("refuses a zero admin with LedgerZeroAddress", async function () {
      // Prepare
      const Ledger = await ethers.getContractFactory("Ledger");

      // Execute / Assert
      await expect(Ledger.deploy(ethers.ZeroAddress)).to.be.revertedWithCustomError(Ledger, "LedgerZeroAddress");
    });

    it("lets the admin grant COORDINATOR_ROLE, emitting RoleGranted", async function () {
      // Prepare
      const { ledger, admin, coordinator2 } = await loadFixture(deployFixture);

      // Execute
      const tx = ledger.connect(admin).grantRole(COORDINATOR_ROLE, coordinator2.address);

      // Assert
      await expect(tx).to.emit(ledger, "RoleGranted").withArgs(COORDINATOR_ROLE, coordinator2.address, admin.address);
      expect(await ledger.hasRole(COORDINATOR_ROLE, coordinator2.address)).to.equal(true);
    });

    it("refuses grantRole from a non-admin with AccessControlUnauthorizedAccount", async function () {
      // Prepare
      const { ledger, outsider, coordinator2 } = await loadFixture(deployFixture);

      // Execute / Assert
      await expect(ledger.connect(outsider).grantRole(COORDINATOR_ROLE, coordinator2.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(outsider.address, DEFAULT_ADMIN_ROLE);
      await expect(ledger.connect(outsider).revokeRole(COORDINATOR_ROLE, coordinator2.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(outsider.address, DEFAULT_ADMIN_ROLE);
      expect(await ledger.hasRole(COORDINATOR_ROLE, coordinator2.address)).to.equal(false);
    });

    it("refuses createTask from a non-coordinator and registerOrganisation from a non-registrar", async function () {
      // Prepare
      const { ledger, token, outsider, alice } = await loadFixture(deployFixture);

      // Execute / Assert
      await expect(ledger.connect(outsider).createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(outsider.address, COORDINATOR_ROLE);
      await expect(ledger.connect(outsider).registerOrganisation(alice.address, "A", orgHash("a"), ""))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(outsider.address, REGISTRAR_ROLE);
      await expect(ledger.connect(outsider).revokeOrganisation(alice.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(outsider.address, REGISTRAR_ROLE);
    });

    it("lets only a task's own coordinator run its rounds (LedgerNotTaskCoordinator)", async function () {
      // Prepare: coordinator2 is a coordinator, but task 1 belongs to admin
      const { ledger, admin, coordinator2, outsider, alice, taskId } = await loadFixture(taskFixture);
      await ledger.connect(admin).grantRole(COORDINATOR_ROLE, coordinator2.address);

      // Execute / Assert
      for (const who of [coordinator2, outsider]) {
        await expect(ledger.connect(who).openRound(taskId, 1n, INITIAL_MODEL))
          .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
          .withArgs(taskId, who.address);
        await expect(ledger.connect(who).removeMember(taskId, alice.address))
          .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
          .withArgs(taskId, who.address);
        await expect(ledger.connect(who).closeTask(taskId))
          .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
          .withArgs(taskId, who.address);
      }
      await ledger.connect(admin).openRound(taskId, 1n, INITIAL_MODEL);
      await expect(ledger.connect(coordinator2).commitRound(taskId, 1n, [], outcome(modelHash(1, 1)), []))
        .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
        .withArgs(taskId, coordinator2.address);
      await expect(ledger.connect(coordinator2).failRound(taskId, 1n, "nope"))
        .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
        .withArgs(taskId, coordinator2.address);
    });

    it("stops a task's coordinator once its COORDINATOR_ROLE is revoked", async function () {
      // Prepare: coordinator2 creates task 2, then loses the role
      const { ledger, token, admin, coordinator2 } = await loadFixture(taskFixture);
      await ledger.connect(admin).grantRole(COORDINATOR_ROLE, coordinator2.address);
      await ledger.connect(coordinator2).createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await ledger.connect(admin).revokeRole(COORDINATOR_ROLE, coordinator2.address);

      // Execute / Assert
      await expect(ledger.connect(coordinator2).openRound(2n, 1n, INITIAL_MODEL))
        .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
        .withArgs(2n, coordinator2.address);
      await expect(ledger.connect(coordinator2).closeTask(2n))
        .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
        .withArgs(2n, coordinator2.address);
    });

    it("lets a coordinator renounce COORDINATOR_ROLE normally", async function () {
      // Prepare
      const { ledger, admin } = await loadFixture(deployFixture);

      // Execute
      const tx = ledger.connect(admin).renounceRole(COORDINATOR_ROLE, admin.address);

      // Assert
      await expect(tx).to.emit(ledger, "RoleRevoked").withArgs(COORDINATOR_ROLE, admin.address, admin.address);
      expect(await ledger.hasRole(COORDINATOR_ROLE, admin.address)).to.equal(false);
    });

    it("moves DEFAULT_ADMIN_ROLE only by begin / accept after the delay; renouncing it also waits", async function () {
      // Prepare
      const { ledger, admin, outsider, coordinator2 } = await loadFixture(deployFixture);

      // Execute / Assert: a one-step grant or revoke of the admin role is refused
      await expect(ledger.grantRole(DEFAULT_ADMIN_ROLE, outsider.address)).to.be.revertedWithCustomError(
        ledger,
        "AccessControlEnforcedDefaultAdminRules",
      );
      await expect(ledger.revokeRole(DEFAULT_ADMIN_ROLE, admin.address)).to.be.revertedWithCustomError(
        ledger,
        "AccessControlEnforcedDefaultAdminRules",
      );
      await expect(ledger.renounceRole(DEFAULT_ADMIN_ROLE, admin.address)).to.be.revertedWithCustomError(
        ledger,
        "AccessControlEnforcedDefaultAdminDelay",
      );
      // only the pending admin accepts, only after the delay
      await ledger.beginDefaultAdminTransfer(outsider.address);
      await expect(ledger.connect(coordinator2).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(ledger, "AccessControlInvalidDefaultAdmin")
        .withArgs(coordinator2.address);
      await time.increase(2n * DAY + 1n);
      await expect(ledger.connect(outsider).acceptDefaultAdminTransfer())
        .to.emit(ledger, "RoleGranted")
        .withArgs(DEFAULT_ADMIN_ROLE, outsider.address, outsider.address);
      expect(await ledger.owner()).to.equal(outsider.address);
      // the old admin keeps its other roles until the new admin revokes them
      expect(await ledger.hasRole(COORDINATOR_ROLE, admin.address)).to.equal(true);
      await ledger.connect(outsider).revokeRole(COORDINATOR_ROLE, admin.address);
      expect(await ledger.hasRole(COORDINATOR_ROLE, admin.address)).to.equal(false);
    });
  });

  // ================================================================== tasks
  describe("tasks", function () {
    it("creates tasks with ids from 1, emitting TaskCreated and TaskTermsSet, and records them", async function () {
      // Prepare
      const { ledger, token, admin } = await loadFixture(deployFixture);
      const spec2 = h("spec 2");
      const init2 = h("init 2");
      const terms = { minRoundDuration: 60, challengePeriod: 3600, claimPeriod: 7200, epsilonCap: 8000000 };

      // Execute
      const returned = await ledger.createTask.staticCall(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      const tx1 = ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await expect(tx1)
        .to.emit(ledger, "TaskCreated")
        .withArgs(1n, admin.address, SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
      await expect(tx1).to.emit(ledger, "TaskTermsSet").withArgs(1n, 0n, 0n, 90n * DAY, 0n);
      const returned2 = await ledger.createTaskWithTerms.staticCall(spec2, init2, token.target, 7n, terms);
      const tx2 = ledger.createTaskWithTerms(spec2, init2, token.target, 7n, terms);

      // Assert
      expect(returned).to.equal(1n);
      expect(returned2).to.equal(2n);
      await expect(tx2).to.emit(ledger, "TaskCreated").withArgs(2n, admin.address, spec2, init2, token.target, 7n);
      await expect(tx2).to.emit(ledger, "TaskTermsSet").withArgs(2n, 60n, 3600n, 7200n, 8000000n);
      expect(await ledger.taskCount()).to.equal(2n);
      const t1 = await ledger.getTask(1n);
      expect(t1.specHash).to.equal(SPEC_HASH);
      expect(t1.headModelHash).to.equal(INITIAL_MODEL);
      expect(t1.token).to.equal(token.target);
      expect(t1.lastRound).to.equal(0n);
      expect(t1.coordinator).to.equal(admin.address);
      expect(t1.rewardPerRound).to.equal(REWARD_PER_ROUND);
      expect(t1.funded).to.equal(0n);
      expect(t1.attributed).to.equal(0n);
      expect(t1.status).to.equal(TaskStatus.Active);
      expect(t1.claimPeriod).to.equal(await ledger.DEFAULT_CLAIM_PERIOD());
      expect(t1.claimDeadline).to.equal(0n);
      expect(t1.epsilonCap).to.equal(0n);
      const t2 = await ledger.getTask(2n);
      expect(t2.specHash).to.equal(spec2);
      expect(t2.headModelHash).to.equal(init2);
      expect(t2.rewardPerRound).to.equal(7n);
      expect([t2.minRoundDuration, t2.challengePeriod, t2.claimPeriod]).to.deep.equal([60n, 3600n, 7200n]);
      expect(t2.epsilonCap).to.equal(8000000n);
    });

    it("refuses zero hashes (LedgerZeroHash), a zero token (LedgerZeroAddress) and a claim period within the challenge period", async function () {
      // Prepare
      const { ledger, token } = await loadFixture(deployFixture);

      // Execute / Assert
      await expect(
        ledger.createTask(ethers.ZeroHash, INITIAL_MODEL, token.target, 1n),
      ).to.be.revertedWithCustomError(ledger, "LedgerZeroHash");
      await expect(ledger.createTask(SPEC_HASH, ethers.ZeroHash, token.target, 1n)).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroHash",
      );
      await expect(ledger.createTask(SPEC_HASH, INITIAL_MODEL, ethers.ZeroAddress, 1n)).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroAddress",
      );
      for (const [claimPeriod, challengePeriod] of [[100, 100], [0, 0], [99, 100]]) {
        await expect(ledger.createTaskWithTerms(SPEC_HASH, INITIAL_MODEL, token.target, 1n, { minRoundDuration: 0, challengePeriod, claimPeriod, epsilonCap: 0 }))
          .to.be.revertedWithCustomError(ledger, "LedgerClaimPeriodTooShort")
          .withArgs(claimPeriod, challengePeriod);
      }
      expect(await ledger.taskCount()).to.equal(0n);
    });

    it("returns an empty record for an unknown task", async function () {
      // Prepare
      const { ledger } = await loadFixture(deployFixture);

      // Execute
      const t = await ledger.getTask(42n);

      // Assert
      expect(t.specHash).to.equal(ethers.ZeroHash);
      expect(t.coordinator).to.equal(ethers.ZeroAddress);
      expect(t.status).to.equal(0n);
    });
  });

  // ================================================================== rounds
  describe("rounds", function () {
    it("opens round 1 on the initial model, emitting RoundOpened", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(taskFixture);

      // Execute
      const tx = ledger.openRound(taskId, 1n, INITIAL_MODEL);

      // Assert
      await expect(tx).to.emit(ledger, "RoundOpened").withArgs(taskId, 1n, INITIAL_MODEL);
      const r = await ledger.getRound(taskId, 1n);
      expect(r.state).to.equal(State.Open);
      expect(r.parentModelHash).to.equal(INITIAL_MODEL);
      expect(r.globalModelHash).to.equal(ethers.ZeroHash);
      expect(r.directCount).to.equal(0n);
      expect(r.commitmentCount).to.equal(0n);
      expect((await ledger.getTask(taskId)).lastRound).to.equal(1n);
    });

    it("refuses an unknown task (LedgerTaskUnknown)", async function () {
      // Prepare
      const { ledger } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.openRound(9n, 1n, INITIAL_MODEL))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
        .withArgs(9n);
      await expect(ledger.failRound(9n, 1n, "x")).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(9n);
      await expect(ledger.commitRound(9n, 1n, [], outcome(h("g")), []))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
        .withArgs(9n);
    });

    it("opens rounds strictly in sequence (LedgerRoundOutOfOrder)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(taskFixture);

      // Execute / Assert
      await expect(ledger.openRound(taskId, 0n, INITIAL_MODEL))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundOutOfOrder")
        .withArgs(taskId, 1n, 0n);
      await expect(ledger.openRound(taskId, 2n, INITIAL_MODEL))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundOutOfOrder")
        .withArgs(taskId, 1n, 2n);
      await ledger.openRound(taskId, 1n, INITIAL_MODEL);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), []);
      await expect(ledger.openRound(taskId, 1n, modelHash(taskId, 1)))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundOutOfOrder")
        .withArgs(taskId, 2n, 1n);
      await expect(ledger.openRound(taskId, 3n, modelHash(taskId, 1)))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundOutOfOrder")
        .withArgs(taskId, 2n, 3n);
    });

    it("refuses to open a round while the previous one is open (LedgerRoundStillOpen)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);

      // Execute / Assert
      await expect(ledger.openRound(taskId, 2n, INITIAL_MODEL))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundStillOpen")
        .withArgs(taskId, 1n);
    });

    it("requires round 1's parent to be the initial model (LedgerParentMismatch)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(taskFixture);
      const wrong = h("not the initial model");

      // Execute / Assert
      await expect(ledger.openRound(taskId, 1n, wrong))
        .to.be.revertedWithCustomError(ledger, "LedgerParentMismatch")
        .withArgs(taskId, 1n, INITIAL_MODEL, wrong);
    });

    it("requires round r's parent to be round r-1's committed global model", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);
      const g1 = modelHash(taskId, 1);
      await ledger.commitRound(taskId, 1n, [], outcome(g1), []);

      // Execute / Assert
      await expect(ledger.openRound(taskId, 2n, INITIAL_MODEL))
        .to.be.revertedWithCustomError(ledger, "LedgerParentMismatch")
        .withArgs(taskId, 2n, g1, INITIAL_MODEL);
      await expect(ledger.openRound(taskId, 2n, g1)).to.emit(ledger, "RoundOpened").withArgs(taskId, 2n, g1);
      expect((await ledger.getTask(taskId)).headModelHash).to.equal(g1);
    });

    it("fails a round, emitting RoundFailed; the next round opens on the same parent", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);

      // Execute
      const tx = ledger.failRound(taskId, 1n, "too few valid updates");

      // Assert
      await expect(tx).to.emit(ledger, "RoundFailed").withArgs(taskId, 1n, "too few valid updates");
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Failed);
      expect((await ledger.getTask(taskId)).headModelHash).to.equal(INITIAL_MODEL);
      await expect(ledger.openRound(taskId, 2n, INITIAL_MODEL))
        .to.emit(ledger, "RoundOpened")
        .withArgs(taskId, 2n, INITIAL_MODEL);
      expect((await ledger.getRound(taskId, 2n)).parentModelHash).to.equal(INITIAL_MODEL);
    });

    it("fails only an open round (LedgerRoundNotOpen / LedgerRoundAlreadyCommitted)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), []);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1));
      await ledger.failRound(taskId, 2n, "first");

      // Execute / Assert
      await expect(ledger.failRound(taskId, 1n, "late"))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundAlreadyCommitted")
        .withArgs(taskId, 1n);
      await expect(ledger.failRound(taskId, 2n, "twice"))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 2n);
      await expect(ledger.failRound(taskId, 3n, "never opened"))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 3n);
    });

    it("commits only an open round, once (LedgerRoundNotOpen / LedgerRoundAlreadyCommitted)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), []);

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, [], outcome(h("other")), []))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundAlreadyCommitted")
        .withArgs(taskId, 1n);
      await expect(ledger.commitRound(taskId, 2n, [], outcome(h("other")), []))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 2n);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1));
      await ledger.failRound(taskId, 2n, "x");
      await expect(ledger.commitRound(taskId, 2n, [], outcome(h("other")), []))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 2n);
      expect((await ledger.getRound(taskId, 1n)).globalModelHash).to.equal(modelHash(taskId, 1));
    });

    it("refuses a zero global model hash (LedgerZeroHash)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, [], outcome(ethers.ZeroHash), [])).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroHash",
      );
    });

    it("keeps rounds of different tasks independent", async function () {
      // Prepare: task 2 with its own initial model
      const { ledger, token, taskId } = await loadFixture(openRoundFixture);
      const init2 = h("init 2");
      await ledger.createTask(h("spec 2"), init2, token.target, REWARD_PER_ROUND);

      // Execute
      await ledger.openRound(2n, 1n, init2);
      await ledger.commitRound(2n, 1n, [], outcome(modelHash(2, 1)), []);

      // Assert
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Open);
      expect((await ledger.getTask(taskId)).headModelHash).to.equal(INITIAL_MODEL);
      expect((await ledger.getTask(2n)).headModelHash).to.equal(modelHash(2, 1));
    });

    it("commits a round and opens the next in one transaction (multicall)", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);
      const g1 = modelHash(taskId, 1);
      const calls = [
        ledger.interface.encodeFunctionData("commitRound", [taskId, 1n, [], outcome(g1), []]),
        ledger.interface.encodeFunctionData("openRound", [taskId, 2n, g1]),
      ];

      // Execute
      const receipt = await (await ledger.multicall(calls)).wait();

      // Assert: both happened, in order, in one transaction
      const names = receipt.logs.map((log) => ledger.interface.parseLog(log).name);
      expect(names).to.deep.equal(["RoundCommitted", "RoundSettled", "RoundOpened"]);
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Committed);
      expect((await ledger.getRound(taskId, 2n)).parentModelHash).to.equal(g1);
      expect((await ledger.getTask(taskId)).lastRound).to.equal(2n);
    });

    it("undoes a batched commit when the batched open is refused, with the open's error", async function () {
      // Prepare: the next round opened on the wrong parent
      const { ledger, taskId } = await loadFixture(openRoundFixture);
      const g1 = modelHash(taskId, 1);
      const calls = [
        ledger.interface.encodeFunctionData("commitRound", [taskId, 1n, [], outcome(g1), []]),
        ledger.interface.encodeFunctionData("openRound", [taskId, 2n, INITIAL_MODEL]),
      ];

      // Execute / Assert
      await expect(ledger.multicall(calls))
        .to.be.revertedWithCustomError(ledger, "LedgerParentMismatch")
        .withArgs(taskId, 2n, g1, INITIAL_MODEL);
      expect((await ledger.getRound(taskId, 1n)).state).to.equal(State.Open);
    });

    it("runs a batch as its sender: an outsider's batched commit is refused", async function () {
      // Prepare
      const { ledger, taskId, outsider } = await loadFixture(openRoundFixture);
      const g1 = modelHash(taskId, 1);
      const calls = [ledger.interface.encodeFunctionData("commitRound", [taskId, 1n, [], outcome(g1), []])];

      // Execute / Assert
      await expect(ledger.connect(outsider).multicall(calls))
        .to.be.revertedWithCustomError(ledger, "LedgerNotTaskCoordinator")
        .withArgs(taskId, outsider.address);
    });
  });

  // ================================================================== commitments
  describe("direct commitments", function () {
    it("records a participant's own commitment, emitting CommitmentRecorded(relayed=false)", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
      const u = updateHash(alice.address, taskId, 1);

      // Execute
      const tx = ledger.connect(alice).submitCommitment(taskId, 1n, u, 600n, 0n);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentRecorded").withArgs(taskId, 1n, alice.address, u, 600n, false, 0n);
      expect(await ledger.directCommitment(taskId, 1n, alice.address)).to.equal(u);
      expect((await ledger.getRound(taskId, 1n)).directCount).to.equal(1n);
    });

    it("accepts a direct commitment at most once per round (LedgerDuplicateCommitment)", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(alice).submitCommitment(taskId, 1n, h("u1"), 1n, 0n);

      // Execute / Assert
      await expect(ledger.connect(alice).submitCommitment(taskId, 1n, h("u2"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerDuplicateCommitment")
        .withArgs(taskId, 1n, alice.address);
      expect(await ledger.directCommitment(taskId, 1n, alice.address)).to.equal(h("u1"));
      expect((await ledger.getRound(taskId, 1n)).directCount).to.equal(1n);
    });

    it("refuses a zero update hash, a non-member, a member that left, and more examples than its dataset", async function () {
      // Prepare
      const { ledger, alice, bob, outsider, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(bob).leaveTask(taskId);

      // Execute / Assert
      await expect(
        ledger.connect(alice).submitCommitment(taskId, 1n, ethers.ZeroHash, 1n, 0n),
      ).to.be.revertedWithCustomError(ledger, "LedgerZeroHash");
      await expect(ledger.connect(outsider).submitCommitment(taskId, 1n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(taskId, 1n, outsider.address);
      await expect(ledger.connect(bob).submitCommitment(taskId, 1n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerNotEligible")
        .withArgs(taskId, 1n, bob.address);
      await expect(ledger.connect(alice).submitCommitment(taskId, 1n, h("u"), DATASET_SIZE + 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerExamplesAboveDataset")
        .withArgs(taskId, alice.address, DATASET_SIZE + 1n, DATASET_SIZE);
      await expect(ledger.connect(alice).submitCommitment(taskId, 1n, h("u"), DATASET_SIZE, 0n)).to.emit(ledger, "CommitmentRecorded");
    });

    it("accepts direct commitments only while the round is open", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(openRoundFixture);

      // Execute / Assert
      await expect(ledger.connect(alice).submitCommitment(taskId, 2n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 2n);
      await expect(ledger.connect(alice).submitCommitment(7n, 1n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
        .withArgs(7n);
      await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), []);
      await expect(ledger.connect(alice).submitCommitment(taskId, 1n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundAlreadyCommitted")
        .withArgs(taskId, 1n);
      await ledger.openRound(taskId, 2n, modelHash(taskId, 1));
      await ledger.failRound(taskId, 2n, "x");
      await expect(ledger.connect(alice).submitCommitment(taskId, 2n, h("u"), 1n, 0n))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundNotOpen")
        .withArgs(taskId, 2n);
    });
  });

  describe("relayed commitments", function () {
    it("records relayed and direct commitments and commits the round (RoundCommitted)", async function () {
      // Prepare: carol commits directly, alice/bob/dave sign and the coordinator relays
      const { ledger, alice, bob, carol, dave, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(carol).submitCommitment(taskId, 1n, updateHash(carol.address, taskId, 1), 50n, 0n);
      const cs = await signAll([alice, bob, dave], ledger, taskId, 1n, 100n);
      const out = outcome(modelHash(taskId, 1));

      // Execute
      const tx = await ledger.commitRound(taskId, 1n, cs, out, []);
      const receipt = await tx.wait();

      // Assert
      for (const c of cs) {
        await expect(tx)
          .to.emit(ledger, "CommitmentRecorded")
          .withArgs(taskId, 1n, c.participant, c.updateHash, 100n, true, 0n);
      }
      const recorded = eventsOf(receipt, ledger, "CommitmentRecorded");
      expect(recorded.map((a) => a.participant)).to.deep.equal(cs.map((c) => c.participant));
      expect(recorded.every((a) => a.relayed === true)).to.equal(true);
      await expect(tx)
        .to.emit(ledger, "RoundCommitted")
        .withArgs(taskId, 1n, out.globalModelHash, out.accuracyPpm, out.lossPpm, out.scoringHash, 4n, 0n);
      await expect(tx).not.to.emit(ledger, "RewardAttributed");
      const r = await ledger.getRound(taskId, 1n);
      expect(r.state).to.equal(State.Committed);
      expect(r.globalModelHash).to.equal(out.globalModelHash);
      expect(r.parentModelHash).to.equal(INITIAL_MODEL);
      expect(r.directCount).to.equal(1n);
      expect(r.commitmentCount).to.equal(4n);
      expect((await ledger.getTask(taskId)).headModelHash).to.equal(out.globalModelHash);
      expect(await ledger.directCommitment(taskId, 1n, alice.address)).to.equal(ethers.ZeroHash);
    });

    it("commits a round with no commitments at all", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(openRoundFixture);
      const out = outcome(modelHash(taskId, 1));

      // Execute
      const tx = ledger.commitRound(taskId, 1n, [], out, []);

      // Assert
      await expect(tx)
        .to.emit(ledger, "RoundCommitted")
        .withArgs(taskId, 1n, out.globalModelHash, out.accuracyPpm, out.lossPpm, out.scoringHash, 0n, 0n);
      await expect(tx).not.to.emit(ledger, "CommitmentRecorded");
    });

    it("refuses a participant relayed twice (LedgerDuplicateCommitment)", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
      const c = await signCommitment(alice, ledger, { taskId, round: 1n, updateHash: h("u"), numExamples: 1n });

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, [c, c], outcome(h("g")), []))
        .to.be.revertedWithCustomError(ledger, "LedgerDuplicateCommitment")
        .withArgs(taskId, 1n, alice.address);
    });

    it("refuses commitments not sorted by participant (LedgerCommitmentsUnsorted)", async function () {
      // Prepare
      const { ledger, participants, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll(participants, ledger, taskId, 1n);
      const swapped = [cs[0], cs[2], cs[1], cs[3]];

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, swapped, outcome(h("g")), []))
        .to.be.revertedWithCustomError(ledger, "LedgerCommitmentsUnsorted")
        .withArgs(2n);
    });

    it("refuses a zero relayed update hash (LedgerZeroHash)", async function () {
      // Prepare
      const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
      const c = await signCommitment(alice, ledger, {
        taskId,
        round: 1n,
        updateHash: ethers.ZeroHash,
        numExamples: 1n,
      });

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, [c], outcome(h("g")), [])).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroHash",
      );
    });

    describe("signatures (LedgerSignatureInvalid)", function () {
      const value = (taskId, round) => ({ taskId, round, updateHash: h("update"), numExamples: 10n });

      it("accepts the participant's own signature for this round", async function () {
        // Prepare
        const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
        const c = await signCommitment(alice, ledger, value(taskId, 1n));

        // Execute / Assert
        await expect(ledger.commitRound(taskId, 1n, [c], outcome(h("g")), []))
          .to.emit(ledger, "CommitmentRecorded")
          .withArgs(taskId, 1n, alice.address, h("update"), 10n, true, 0n);
      });

      it("rejects a signature made for another round", async function () {
        // Prepare: round 1 failed, round 2 open; alice's round-1 signature replayed in round 2
        const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
        const old = await signCommitment(alice, ledger, value(taskId, 1n));
        await ledger.failRound(taskId, 1n, "x");
        await ledger.openRound(taskId, 2n, INITIAL_MODEL);

        // Execute / Assert
        await expect(ledger.commitRound(taskId, 2n, [old], outcome(h("g")), []))
          .to.be.revertedWithCustomError(ledger, "LedgerSignatureInvalid")
          .withArgs(taskId, 2n, alice.address);
      });

      it("rejects a signature made for another task", async function () {
        // Prepare: task 2, round 1 open; alice's signature was for task 1
        const { ledger, token, alice, taskId } = await loadFixture(openRoundFixture);
        await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 0n);
        await ledger.openRound(2n, 1n, INITIAL_MODEL);
        const forTask1 = await signCommitment(alice, ledger, value(taskId, 1n));

        // Execute / Assert
        await expect(ledger.commitRound(2n, 1n, [forTask1], outcome(h("g")), []))
          .to.be.revertedWithCustomError(ledger, "LedgerSignatureInvalid")
          .withArgs(2n, 1n, alice.address);
      });

      it("rejects a signature made for another chain id", async function () {
        // Prepare
        const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
        const { chainId } = await ethers.provider.getNetwork();
        const c = await signCommitment(alice, ledger, value(taskId, 1n), { chainId: chainId + 1n });

        // Execute / Assert
        await expect(ledger.commitRound(taskId, 1n, [c], outcome(h("g")), []))
          .to.be.revertedWithCustomError(ledger, "LedgerSignatureInvalid")
          .withArgs(taskId, 1n, alice.address);
      });

      it("rejects a signature made for another ledger contract", async function () {
        // Prepare: a second ledger with the same task/round/participant
        const { ledger, token, admin, alice, taskId } = await loadFixture(openRoundFixture);
        const other = await ethers.deployContract("Ledger", [admin.address]);
        await other.createTask(SPEC_HASH, INITIAL_MODEL, token.target, 0n);
        await registerAll(other, [alice]);
        await joinAll(other, 1n, [alice]);
        await other.openRound(1n, 1n, INITIAL_MODEL);
        const forOther = await signCommitment(alice, other, value(taskId, 1n));

        // Execute / Assert: valid on the ledger it was made for, invalid on this one
        await expect(ledger.commitRound(taskId, 1n, [forOther], outcome(h("g")), []))
          .to.be.revertedWithCustomError(ledger, "LedgerSignatureInvalid")
          .withArgs(taskId, 1n, alice.address);
        await expect(other.commitRound(1n, 1n, [forOther], outcome(h("g")), [])).to.emit(other, "CommitmentRecorded");
      });

      it("rejects a signature by another key, a tampered field and a malformed signature", async function () {
        // Prepare
        const { ledger, alice, bob, taskId } = await loadFixture(openRoundFixture);
        const byBob = { ...(await signCommitment(bob, ledger, value(taskId, 1n))), participant: alice.address };
        const tampered = { ...(await signCommitment(alice, ledger, value(taskId, 1n))), numExamples: 11n };
        const tamperedHash = { ...(await signCommitment(alice, ledger, value(taskId, 1n))), updateHash: h("other") };
        const malformed = { ...(await signCommitment(alice, ledger, value(taskId, 1n))), r: ethers.ZeroHash };

        // Execute / Assert
        for (const c of [byBob, tampered, tamperedHash, malformed]) {
          await expect(ledger.commitRound(taskId, 1n, [c], outcome(h("g")), []))
            .to.be.revertedWithCustomError(ledger, "LedgerSignatureInvalid")
            .withArgs(taskId, 1n, alice.address);
        }
      });
    });

    it("skips a left participant's relayed commitment, even signed before it left (CommitmentSkipped)", async function () {
      // Prepare
      const { ledger, alice, bob, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll([alice, bob], ledger, taskId, 1n);
      await ledger.connect(alice).leaveTask(taskId);

      // Execute
      const tx = await ledger.commitRound(taskId, 1n, cs, outcome(h("g")), []);
      const receipt = await tx.wait();

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(taskId, 1n, alice.address, Skip.Left);
      expect(eventsOf(receipt, ledger, "CommitmentRecorded").map((e) => e.participant)).to.deep.equal([bob.address]);
      expect((await ledger.getRound(taskId, 1n)).commitmentCount).to.equal(1n);
    });

    it("skips a validly signed commitment from a non-member (CommitmentSkipped NotMember), and its reward", async function () {
      // Prepare
      const { ledger, outsider, taskId } = await loadFixture(openRoundFixture);
      const c = await signCommitment(outsider, ledger, { taskId, round: 1n, updateHash: h("u"), numExamples: 1n });

      // Execute
      const tx = ledger.commitRound(taskId, 1n, [c], outcome(h("g")), [{ participant: outsider.address, score: 1n, amount: 2n }]);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(taskId, 1n, outsider.address, Skip.NotMember);
      await expect(tx).to.emit(ledger, "RewardSkipped").withArgs(taskId, 1n, outsider.address, 2n, Skip.NotMember);
      expect((await ledger.getRound(taskId, 1n)).commitmentCount).to.equal(0n);
    });

    it("skips a relayed commitment claiming more examples than the dataset consented to, and its reward", async function () {
      // Prepare
      const { ledger, token, alice, taskId } = await loadFixture(openRoundFixture);
      const c = await signCommitment(alice, ledger, { taskId, round: 1n, updateHash: h("u"), numExamples: DATASET_SIZE + 1n });

      // Execute
      const tx = ledger.commitRound(taskId, 1n, [c], outcome(h("g")), [{ participant: alice.address, score: 1n, amount: 9n }]);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(taskId, 1n, alice.address, Skip.ExamplesAboveDataset);
      await expect(tx).to.emit(ledger, "RewardSkipped").withArgs(taskId, 1n, alice.address, 9n, Skip.ExamplesAboveDataset);
      await expect(tx).to.emit(ledger, "RoundSettled").withArgs(taskId, 1n, 0n, REWARD_PER_ROUND);
      expect(await ledger.owed(token.target, alice.address)).to.equal(0n);
    });

    it("skips a relayed duplicate of a direct commitment and rewards the direct one", async function () {
      // Prepare: bob committed himself; the coordinator also relays his signed commitment
      const { ledger, token, alice, bob, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(bob).submitCommitment(taskId, 1n, h("own"), 3n, 0n);
      const cs = await signAll([alice, bob], ledger, taskId, 1n);

      // Execute
      const tx = ledger.commitRound(taskId, 1n, cs, outcome(h("g")), [{ participant: bob.address, score: 1n, amount: 4n }]);

      // Assert
      await expect(tx).to.emit(ledger, "CommitmentSkipped").withArgs(taskId, 1n, bob.address, Skip.CommittedDirectly);
      await expect(tx).to.emit(ledger, "RewardAttributed").withArgs(taskId, 1n, bob.address, 1n, 4n);
      expect((await ledger.getRound(taskId, 1n)).commitmentCount).to.equal(2n);
      expect(await ledger.owed(token.target, bob.address)).to.equal(4n);
    });
  });

  // ================================================================== rewards
  describe("rewards", function () {
    it("attributes rewards to relayed and direct committers, emitting RewardAttributed", async function () {
      // Prepare: carol direct, alice/bob relayed, dave did not commit
      const { ledger, token, alice, bob, carol, taskId } = await loadFixture(openRoundFixture);
      await ledger.connect(carol).submitCommitment(taskId, 1n, h("c"), 5n, 0n);
      const cs = await signAll([alice, bob], ledger, taskId, 1n);
      const amounts = { [alice.address]: 30n, [bob.address]: 25n, [carol.address]: 45n };
      const scores = { [alice.address]: 300000n, [bob.address]: -250000n, [carol.address]: 450000n };
      const rewards = byAddress([alice, bob, carol]).map((s) => ({
        participant: s.address,
        score: scores[s.address],
        amount: amounts[s.address],
      }));
      const out = outcome(modelHash(taskId, 1));

      // Execute
      const tx = await ledger.commitRound(taskId, 1n, cs, out, rewards);
      const receipt = await tx.wait();

      // Assert
      for (const w of rewards) {
        await expect(tx).to.emit(ledger, "RewardAttributed").withArgs(taskId, 1n, w.participant, w.score, w.amount);
        expect(await ledger.owed(token.target, w.participant)).to.equal(w.amount);
      }
      expect(eventsOf(receipt, ledger, "RewardAttributed")).to.have.length(3);
      await expect(tx)
        .to.emit(ledger, "RoundCommitted")
        .withArgs(taskId, 1n, out.globalModelHash, out.accuracyPpm, out.lossPpm, out.scoringHash, 3n, 100n);
      const t = await ledger.getTask(taskId);
      expect(t.attributed).to.equal(100n);
      expect(t.funded).to.equal(FUNDING);
    });

    it("emits RewardAttributed for a zero amount without crediting anything", async function () {
      // Prepare
      const { ledger, token, alice, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll([alice], ledger, taskId, 1n);

      // Execute
      const tx = ledger.commitRound(taskId, 1n, cs, outcome(h("g")), [
        { participant: alice.address, score: -1n, amount: 0n },
      ]);

      // Assert
      await expect(tx).to.emit(ledger, "RewardAttributed").withArgs(taskId, 1n, alice.address, -1n, 0n);
      expect(await ledger.owed(token.target, alice.address)).to.equal(0n);
    });

    it("refuses a reward for a participant without a commitment this round", async function () {
      // Prepare: alice committed in round 1 (rewarded then); in round 2 only bob commits
      const { ledger, alice, bob, dave, taskId } = await loadFixture(openRoundFixture);
      await ledger.commitRound(taskId, 1n, await signAll([alice], ledger, taskId, 1n), outcome(modelHash(1, 1)), []);
      await ledger.openRound(taskId, 2n, modelHash(1, 1));
      const cs = await signAll([bob], ledger, taskId, 2n);

      // Execute / Assert
      for (const who of [alice, dave]) {
        await expect(
          ledger.commitRound(taskId, 2n, cs, outcome(h("g")), [{ participant: who.address, score: 1n, amount: 1n }]),
        )
          .to.be.revertedWithCustomError(ledger, "LedgerRewardWithoutCommitment")
          .withArgs(taskId, 2n, who.address);
      }
    });

    it("refuses unsorted or duplicate rewards (LedgerRewardsUnsorted)", async function () {
      // Prepare
      const { ledger, participants, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll(participants, ledger, taskId, 1n);
      const w = participants.map((p) => ({ participant: p.address, score: 1n, amount: 1n }));

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, cs, outcome(h("g")), [w[1], w[0]]))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardsUnsorted")
        .withArgs(1n);
      await expect(ledger.commitRound(taskId, 1n, cs, outcome(h("g")), [w[0], w[2], w[2]]))
        .to.be.revertedWithCustomError(ledger, "LedgerRewardsUnsorted")
        .withArgs(2n);
    });

    it("refuses a round attributing more than rewardPerRound (LedgerRoundBudgetExceeded)", async function () {
      // Prepare
      const { ledger, alice, bob, taskId } = await loadFixture(openRoundFixture);
      const cs = await signAll([alice, bob], ledger, taskId, 1n);
      const rewards = byAddress([
        { participant: alice.address, score: 1n, amount: REWARD_PER_ROUND / 2n },
        { participant: bob.address, score: 1n, amount: REWARD_PER_ROUND / 2n + 1n },
      ]);

      // Execute / Assert
      await expect(ledger.commitRound(taskId, 1n, cs, outcome(h("g")), rewards))
        .to.be.revertedWithCustomError(ledger, "LedgerRoundBudgetExceeded")
        .withArgs(taskId, 1n, REWARD_PER_ROUND + 1n, REWARD_PER_ROUND);
      // exactly the budget is fine
      rewards[1].amount = REWARD_PER_ROUND / 2n;
      await expect(ledger.commitRound(taskId, 1n, cs, outcome(h("g")), rewards)).to.emit(ledger, "RoundCommitted");
    });

    it("refuses to attribute more than the pool holds (LedgerPoolInsufficient)", async function () {
      // Prepare: task 2 funded with 150 for a budget of 100 per round
      const { ledger, token, alice, bob } = await loadFixture(taskFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 100n);
      await joinAll(ledger, 2n, [alice, bob], h("spec 2"));
      await token.approve(ledger.target, 150n);
      await ledger.fundTask(2n, 150n);
      await ledger.openRound(2n, 1n, INITIAL_MODEL);
      await ledger.commitRound(2n, 1n, await signAll([alice], ledger, 2n, 1n), outcome(modelHash(2, 1)), [
        { participant: alice.address, score: 1n, amount: 100n },
      ]);
      await ledger.openRound(2n, 2n, modelHash(2, 1));
      const cs = await signAll([bob], ledger, 2n, 2n);

      // Execute / Assert
      await expect(
        ledger.commitRound(2n, 2n, cs, outcome(modelHash(2, 2)), [{ participant: bob.address, score: 1n, amount: 51n }]),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerPoolInsufficient")
        .withArgs(2n, 51n, 50n);
      await ledger.commitRound(2n, 2n, cs, outcome(modelHash(2, 2)), [
        { participant: bob.address, score: 1n, amount: 50n },
      ]);
      const t = await ledger.getTask(2n);
      expect(t.attributed).to.equal(150n);
      expect(t.funded).to.equal(150n);
    });

    it("refuses any reward from an unfunded task's pool", async function () {
      // Prepare
      const { ledger, token, alice } = await loadFixture(taskFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 100n);
      await joinAll(ledger, 2n, [alice], h("spec 2"));
      await ledger.openRound(2n, 1n, INITIAL_MODEL);
      const cs = await signAll([alice], ledger, 2n, 1n);

      // Execute / Assert
      await expect(
        ledger.commitRound(2n, 1n, cs, outcome(h("g")), [{ participant: alice.address, score: 1n, amount: 1n }]),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerPoolInsufficient")
        .withArgs(2n, 1n, 0n);
    });

    it("does not let one task spend another task's pool of the same token", async function () {
      // Prepare: task 1 funded with FUNDING; task 2 (same token) funded with 10
      const { ledger, token, alice } = await loadFixture(taskFixture);
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 100n);
      await joinAll(ledger, 2n, [alice], h("spec 2"));
      await token.approve(ledger.target, 10n);
      await ledger.fundTask(2n, 10n);
      await ledger.openRound(2n, 1n, INITIAL_MODEL);
      const cs = await signAll([alice], ledger, 2n, 1n);

      // Execute / Assert
      await expect(
        ledger.commitRound(2n, 1n, cs, outcome(h("g")), [{ participant: alice.address, score: 1n, amount: 11n }]),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerPoolInsufficient")
        .withArgs(2n, 11n, 10n);
    });

    it("accumulates rewards over several rounds and tasks", async function () {
      // Prepare
      const { ledger, token, alice, taskId } = await loadFixture(openRoundFixture);
      const reward = (amount) => [{ participant: alice.address, score: 1n, amount }];

      // Execute: round 1 relayed (10), round 2 direct (20), task 2 round 1 relayed (5)
      await ledger.commitRound(taskId, 1n, await signAll([alice], ledger, taskId, 1n), outcome(modelHash(1, 1)), reward(10n));
      await ledger.openRound(taskId, 2n, modelHash(1, 1));
      await ledger.connect(alice).submitCommitment(taskId, 2n, h("a2"), 1n, 0n);
      await ledger.commitRound(taskId, 2n, [], outcome(modelHash(1, 2)), reward(20n));
      await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 100n);
      await joinAll(ledger, 2n, [alice], h("spec 2"));
      await token.approve(ledger.target, 5n);
      await ledger.fundTask(2n, 5n);
      await ledger.openRound(2n, 1n, INITIAL_MODEL);
      await ledger.commitRound(2n, 1n, await signAll([alice], ledger, 2n, 1n), outcome(modelHash(2, 1)), reward(5n));

      // Assert
      expect(await ledger.owed(token.target, alice.address)).to.equal(35n);
      expect((await ledger.getTask(taskId)).attributed).to.equal(30n);
      expect((await ledger.getTask(2n)).attributed).to.equal(5n);
    });
  });

  // ================================================================== views
  describe("views", function () {
    it("commitmentDigest equals the EIP-712 hash computed by ethers", async function () {
      // Prepare
      const { ledger, taskId } = await loadFixture(taskFixture);
      const domain = await domainOf(ledger);
      const value = { taskId, round: 3n, updateHash: h("some update"), numExamples: 1234n, epsilon: 2500000n };

      // Execute
      const onChain = await ledger.commitmentDigest(value.taskId, value.round, value.updateHash, value.numExamples, value.epsilon);

      // Assert
      expect(onChain).to.equal(ethers.TypedDataEncoder.hash(domain, COMMITMENT_TYPES, value));
      expect(domain.chainId).to.equal(31337n);
    });

    it("exposes the EIP-712 domain (EIP-5267)", async function () {
      // Prepare
      const { ledger } = await loadFixture(deployFixture);

      // Execute
      const d = await ledger.eip712Domain();

      // Assert
      expect(d.name).to.equal("fedchain");
      expect(d.version).to.equal("1");
      expect(d.chainId).to.equal(31337n);
      expect(d.verifyingContract).to.equal(ledger.target);
    });

    it("returns empty records for unknown participants and rounds", async function () {
      // Prepare
      const { ledger, outsider, taskId } = await loadFixture(taskFixture);

      // Execute
      const p = await ledger.getParticipant(outsider.address);
      const r = await ledger.getRound(taskId, 5n);

      // Assert
      expect(p.status).to.equal(Status.None);
      expect(p.registeredAt).to.equal(0n);
      expect(r.state).to.equal(State.None);
      expect(r.parentModelHash).to.equal(ethers.ZeroHash);
      expect(await ledger.directCommitment(taskId, 5n, outsider.address)).to.equal(ethers.ZeroHash);
    });
  });
});
