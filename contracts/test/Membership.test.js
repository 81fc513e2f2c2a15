// The organisation registry (REGISTRAR_ROLE) and per-task membership by signed consent.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const {
  SPEC_HASH,
  INITIAL_MODEL,
  REWARD_PER_ROUND,
  DATASET_SIZE,
  CONSENT_TYPES,
  h,
  orgHash,
  dataHash,
  modelHash,
  outcome,
  domainOf,
  signConsent,
  registerAll,
  joinAll,
  eventsOf,
  deployFixture,
  taskFixture,
  openRoundFixture,
} = require("./helpers");

const Status = { None: 0n, Registered: 1n, Revoked: 2n };
const Skip = { CommittedDirectly: 0n, NotMember: 1n, Left: 2n, ExamplesAboveDataset: 3n, AlreadyMember: 4n };

/** deployFixture + task 1 created (spec SPEC_HASH), alice..dave registered, nobody joined. */
async function registeredFixture() {
  const f = await deployFixture();
  const { ledger, token, alice, bob, carol, dave } = f;
  await ledger.createTask(SPEC_HASH, INITIAL_MODEL, token.target, REWARD_PER_ROUND);
  await registerAll(ledger, [alice, bob, carol, dave]);
  return { ...f, taskId: 1n };
}

describe("Organisation registry", function () {
  it("registers an organisation with its name, metadata hash and URI, emitting OrganisationRegistered", async function () {
    // Prepare
    const { ledger, admin, alice } = await loadFixture(deployFixture);
    const meta = orgHash("st marys");

    // Execute
    const tx = await ledger.registerOrganisation(alice.address, "St Mary's Hospital", meta, "https://example.org/st-marys.json");
    const receipt = await tx.wait();

    // Assert
    await expect(tx)
      .to.emit(ledger, "OrganisationRegistered")
      .withArgs(alice.address, admin.address, "St Mary's Hospital", meta, "https://example.org/st-marys.json");
    const p = await ledger.getParticipant(alice.address);
    expect(p.status).to.equal(Status.Registered);
    expect(p.registeredAt).to.equal(BigInt(receipt.blockNumber));
    expect(p.revokedAt).to.equal(0n);
    expect(p.orgHash).to.equal(meta);
    expect(p.name).to.equal("St Mary's Hospital");
    expect(p.uri).to.equal("https://example.org/st-marys.json");
  });

  it("replaces a registered organisation's record on a second registration, keeping registeredAt", async function () {
    // Prepare
    const { ledger, alice } = await loadFixture(registeredFixture);
    const before = await ledger.getParticipant(alice.address);

    // Execute
    await expect(ledger.registerOrganisation(alice.address, "Renamed", orgHash("v2"), "")).to.emit(ledger, "OrganisationRegistered");

    // Assert
    const after = await ledger.getParticipant(alice.address);
    expect(after.name).to.equal("Renamed");
    expect(after.orgHash).to.equal(orgHash("v2"));
    expect(after.uri).to.equal("");
    expect(after.registeredAt).to.equal(before.registeredAt);
  });

  it("registers several organisations in one multicall and reads them back in one call", async function () {
    // Prepare
    const { ledger, alice, bob, admin } = await loadFixture(deployFixture);

    // Execute
    await registerAll(ledger, [alice, bob]);

    // Assert
    const records = await ledger.getParticipants([alice.address, bob.address, admin.address]);
    expect(records.map((r) => r.status)).to.deep.equal([Status.Registered, Status.Registered, Status.None]);
    expect(records[1].orgHash).to.equal(orgHash(bob.address));
  });

  it("refuses a zero address, an empty name and a zero metadata hash", async function () {
    // Prepare
    const { ledger, alice } = await loadFixture(deployFixture);

    // Execute / Assert
    await expect(ledger.registerOrganisation(ethers.ZeroAddress, "x", orgHash("x"), "")).to.be.revertedWithCustomError(
      ledger,
      "OrganisationRegistryZeroAddress",
    );
    await expect(ledger.registerOrganisation(alice.address, "", orgHash("x"), ""))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryNameEmpty")
      .withArgs(alice.address);
    await expect(ledger.registerOrganisation(alice.address, "A", ethers.ZeroHash, ""))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryZeroHash")
      .withArgs(alice.address);
  });

  it("revokes an organisation for good: no new join, no re-registration, no second revocation", async function () {
    // Prepare
    const { ledger, admin, alice, bob, taskId } = await loadFixture(registeredFixture);

    // Execute
    const tx = await ledger.revokeOrganisation(alice.address);
    const receipt = await tx.wait();

    // Assert
    await expect(tx).to.emit(ledger, "OrganisationRevoked").withArgs(alice.address, admin.address);
    const p = await ledger.getParticipant(alice.address);
    expect(p.status).to.equal(Status.Revoked);
    expect(p.revokedAt).to.equal(BigInt(receipt.blockNumber));
    await expect(ledger.connect(alice).joinTask(taskId, SPEC_HASH, 1n, h("d")))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryRevoked")
      .withArgs(alice.address);
    await expect(ledger.registerOrganisation(alice.address, "back", orgHash("b"), ""))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryRevoked")
      .withArgs(alice.address);
    await expect(ledger.revokeOrganisation(alice.address))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryRevoked")
      .withArgs(alice.address);
    await expect(ledger.revokeOrganisation(admin.address))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryNotRegistered")
      .withArgs(admin.address);
    expect((await ledger.getParticipant(bob.address)).status).to.equal(Status.Registered);
  });

  it("leaves a revoked organisation's existing memberships to the task's coordinator", async function () {
    // Prepare: alice is a member of task 1, then revoked
    const { ledger, alice, taskId } = await loadFixture(openRoundFixture);
    await ledger.revokeOrganisation(alice.address);

    // Execute / Assert: still eligible until the coordinator removes her
    expect(await ledger.isEligible(taskId, 1n, alice.address)).to.equal(true);
    await ledger.removeMember(taskId, alice.address);
    expect(await ledger.isEligible(taskId, 1n, alice.address)).to.equal(false);
  });
});

describe("Task membership", function () {
  it("joins a task with the caller's own consent, emitting MemberJoined with its index and first round", async function () {
    // Prepare
    const { ledger, alice, bob, taskId } = await loadFixture(registeredFixture);

    // Execute
    const tx = ledger.connect(alice).joinTask(taskId, SPEC_HASH, 500n, dataHash(alice.address));
    await expect(tx).to.emit(ledger, "MemberJoined").withArgs(taskId, alice.address, 0n, 1n, 500n, dataHash(alice.address), false);
    await ledger.connect(bob).joinTask(taskId, SPEC_HASH, 7n, dataHash(bob.address));

    // Assert
    const m = await ledger.getMembership(taskId, bob.address);
    expect([m.joinedRound, m.leftRound, m.index, m.datasetSize, m.dataHash]).to.deep.equal([1n, 0n, 1n, 7n, dataHash(bob.address)]);
    expect((await ledger.getTask(taskId)).memberCount).to.equal(2n);
    expect(await ledger.isEligible(taskId, 1n, alice.address)).to.equal(true);
    expect(await ledger.isEligible(taskId, 0n, alice.address)).to.equal(false);
  });

  it("makes a join effective from the open round, or from the next one once the last round is committed", async function () {
    // Prepare
    const { ledger, alice, bob, taskId } = await loadFixture(registeredFixture);
    await ledger.openRound(taskId, 1n, INITIAL_MODEL);

    // Execute / Assert
    await expect(ledger.connect(alice).joinTask(taskId, SPEC_HASH, 1n, h("a")))
      .to.emit(ledger, "MemberJoined")
      .withArgs(taskId, alice.address, 0n, 1n, 1n, h("a"), false);
    await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), []);
    await expect(ledger.connect(bob).joinTask(taskId, SPEC_HASH, 1n, h("b")))
      .to.emit(ledger, "MemberJoined")
      .withArgs(taskId, bob.address, 1n, 2n, 1n, h("b"), false);
    expect(await ledger.isEligible(taskId, 1n, bob.address)).to.equal(false);
  });

  it("refuses a wrong spec hash, an unknown task, an unregistered account and a second join", async function () {
    // Prepare
    const { ledger, alice, outsider, taskId } = await loadFixture(registeredFixture);
    await ledger.connect(alice).joinTask(taskId, SPEC_HASH, 1n, h("a"));

    // Execute / Assert
    await expect(ledger.connect(alice).joinTask(taskId, h("other spec"), 1n, h("a")))
      .to.be.revertedWithCustomError(ledger, "LedgerSpecMismatch")
      .withArgs(taskId, SPEC_HASH, h("other spec"));
    await expect(ledger.connect(alice).joinTask(9n, SPEC_HASH, 1n, h("a")))
      .to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown")
      .withArgs(9n);
    await expect(ledger.connect(outsider).joinTask(taskId, SPEC_HASH, 1n, h("o")))
      .to.be.revertedWithCustomError(ledger, "OrganisationRegistryNotRegistered")
      .withArgs(outsider.address);
    await expect(ledger.connect(alice).joinTask(taskId, SPEC_HASH, 1n, h("a")))
      .to.be.revertedWithCustomError(ledger, "LedgerAlreadyMember")
      .withArgs(taskId, alice.address);
  });

  it("relays a signed consent with joinTaskFor; consentDigest equals ethers' EIP-712 hash", async function () {
    // Prepare
    const { ledger, alice, outsider, taskId } = await loadFixture(registeredFixture);
    const consent = await signConsent(alice, ledger, { taskId, datasetSize: 321n });

    // Execute: anyone may relay it
    const tx = ledger.connect(outsider).joinTaskFor(taskId, consent);

    // Assert
    await expect(tx).to.emit(ledger, "MemberJoined").withArgs(taskId, alice.address, 0n, 1n, 321n, dataHash(alice.address), true);
    const value = { taskId, specHash: SPEC_HASH, datasetSize: 321n, dataHash: dataHash(alice.address) };
    expect(await ledger.consentDigest(taskId, SPEC_HASH, 321n, dataHash(alice.address))).to.equal(
      ethers.TypedDataEncoder.hash(await domainOf(ledger), CONSENT_TYPES, value),
    );
    await expect(ledger.joinTaskFor(taskId, consent))
      .to.be.revertedWithCustomError(ledger, "LedgerAlreadyMember")
      .withArgs(taskId, alice.address);
  });

  it("refuses a consent signed by another key, for another spec or task or chain, tampered or malformed", async function () {
    // Prepare
    const { ledger, token, alice, bob, taskId } = await loadFixture(registeredFixture);
    await ledger.createTask(h("spec 2"), INITIAL_MODEL, token.target, 1n);
    const { chainId } = await ethers.provider.getNetwork();
    const bad = [
      { ...(await signConsent(bob, ledger, { taskId })), participant: alice.address },
      await signConsent(alice, ledger, { taskId, specHash: h("spec 2") }),
      await signConsent(alice, ledger, { taskId: 2n, specHash: h("spec 2") }),
      await signConsent(alice, ledger, { taskId }, { chainId: chainId + 1n }),
      { ...(await signConsent(alice, ledger, { taskId })), datasetSize: DATASET_SIZE * 10n },
      { ...(await signConsent(alice, ledger, { taskId })), r: ethers.ZeroHash },
    ];

    // Execute / Assert
    for (const c of bad) {
      await expect(ledger.joinTaskFor(taskId, c))
        .to.be.revertedWithCustomError(ledger, "LedgerConsentSignatureInvalid")
        .withArgs(taskId, alice.address);
    }
    await expect(ledger.joinTaskForBatch(taskId, [bad[0]]))
      .to.be.revertedWithCustomError(ledger, "LedgerConsentSignatureInvalid")
      .withArgs(taskId, alice.address);
  });

  it("joins a batch, skipping members and leavers with ConsentSkipped so nobody can make it revert", async function () {
    // Prepare: alice joined herself, bob joined and left; carol and dave are new
    const { ledger, alice, bob, carol, dave, taskId } = await loadFixture(registeredFixture);
    const consents = [];
    for (const s of [alice, bob, carol, dave]) consents.push(await signConsent(s, ledger, { taskId }));
    await joinAll(ledger, taskId, [alice, bob]);
    await ledger.connect(bob).leaveTask(taskId);

    // Execute
    const tx = await ledger.joinTaskForBatch(taskId, consents);
    const receipt = await tx.wait();

    // Assert
    await expect(tx).to.emit(ledger, "ConsentSkipped").withArgs(taskId, alice.address, Skip.AlreadyMember);
    await expect(tx).to.emit(ledger, "ConsentSkipped").withArgs(taskId, bob.address, Skip.Left);
    expect(eventsOf(receipt, ledger, "MemberJoined").map((e) => [e.participant, e.memberIndex, e.relayed])).to.deep.equal([
      [carol.address, 2n, true],
      [dave.address, 3n, true],
    ]);
    expect((await ledger.getTask(taskId)).memberCount).to.equal(4n);
  });

  it("leaves a task from its first uncommitted round, emitting MemberLeft; final", async function () {
    // Prepare: round 1 committed, round 2 open
    const { ledger, alice, bob, taskId } = await loadFixture(openRoundFixture);
    await ledger.commitRound(taskId, 1n, [], outcome(modelHash(taskId, 1)), []);
    await ledger.openRound(taskId, 2n, modelHash(taskId, 1));

    // Execute
    await expect(ledger.connect(alice).leaveTask(taskId)).to.emit(ledger, "MemberLeft").withArgs(taskId, alice.address, 2n);
    await ledger.commitRound(taskId, 2n, [], outcome(modelHash(taskId, 2)), []);
    await expect(ledger.connect(bob).leaveTask(taskId)).to.emit(ledger, "MemberLeft").withArgs(taskId, bob.address, 3n);

    // Assert
    expect(await ledger.isEligible(taskId, 1n, alice.address)).to.equal(true);
    expect(await ledger.isEligible(taskId, 2n, alice.address)).to.equal(false);
    expect(await ledger.isEligible(taskId, 2n, bob.address)).to.equal(true);
    expect(await ledger.isEligible(taskId, 3n, bob.address)).to.equal(false);
    await expect(ledger.connect(alice).joinTask(taskId, SPEC_HASH, 1n, h("again")))
      .to.be.revertedWithCustomError(ledger, "LedgerMemberLeft")
      .withArgs(taskId, alice.address, 2n);
    await expect(ledger.connect(alice).leaveTask(9n)).to.be.revertedWithCustomError(ledger, "LedgerTaskUnknown").withArgs(9n);
  });

  it("lets the coordinator remove a member like a leave (MemberRemoved), never a non-member or twice", async function () {
    // Prepare
    const { ledger, admin, alice, outsider, taskId } = await loadFixture(openRoundFixture);

    // Execute / Assert
    await expect(ledger.removeMember(taskId, alice.address)).to.emit(ledger, "MemberRemoved").withArgs(taskId, alice.address, 1n, admin.address);
    await expect(ledger.removeMember(taskId, alice.address))
      .to.be.revertedWithCustomError(ledger, "LedgerMemberLeft")
      .withArgs(taskId, alice.address, 1n);
    await expect(ledger.connect(alice).leaveTask(taskId))
      .to.be.revertedWithCustomError(ledger, "LedgerMemberLeft")
      .withArgs(taskId, alice.address, 1n);
    await expect(ledger.removeMember(taskId, outsider.address))
      .to.be.revertedWithCustomError(ledger, "LedgerNotMember")
      .withArgs(taskId, outsider.address);
  });

  it("returns an empty membership for a non-member", async function () {
    // Prepare
    const { ledger, outsider, taskId } = await loadFixture(taskFixture);

    // Execute
    const m = await ledger.getMembership(taskId, outsider.address);

    // Assert
    expect(m.joinedRound).to.equal(0n);
    expect(await ledger.isEligible(taskId, 1n, outsider.address)).to.equal(false);
  });
});
