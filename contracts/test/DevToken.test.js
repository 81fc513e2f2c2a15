const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { DEFAULT_ADMIN_ROLE, MINTER_ROLE } = require("./helpers");

const SUPPLY = ethers.parseEther("500");

async function tokenFixture() {
  const [admin, minter, alice, outsider] = await ethers.getSigners();
  const token = await ethers.deployContract("DevToken", [admin.address, SUPPLY]);
  return { token, admin, minter, alice, outsider };
}

describe("DevToken", function () {
  it("mints the initial supply to the admin and gives it both roles", async function () {
    // Prepare / Execute
    const { token, admin, outsider } = await loadFixture(tokenFixture);

    // Assert
    expect(await token.name()).to.equal("fedchain dev token");
    expect(await token.symbol()).to.equal("FDT");
    expect(await token.decimals()).to.equal(18n);
    expect(await token.totalSupply()).to.equal(SUPPLY);
    expect(await token.balanceOf(admin.address)).to.equal(SUPPLY);
    expect(await token.MINTER_ROLE()).to.equal(MINTER_ROLE);
    expect(await token.hasRole(DEFAULT_ADMIN_ROLE, admin.address)).to.equal(true);
    expect(await token.hasRole(MINTER_ROLE, admin.address)).to.equal(true);
    expect(await token.hasRole(MINTER_ROLE, outsider.address)).to.equal(false);
  });

  it("lets a minter mint, emitting Transfer from the zero address", async function () {
    // Prepare
    const { token, alice } = await loadFixture(tokenFixture);

    // Execute
    const tx = token.mint(alice.address, 77n);

    // Assert
    await expect(tx).to.emit(token, "Transfer").withArgs(ethers.ZeroAddress, alice.address, 77n);
    await expect(tx).to.changeTokenBalance(token, alice, 77n);
    expect(await token.totalSupply()).to.equal(SUPPLY + 77n);
  });

  it("lets a newly granted minter mint", async function () {
    // Prepare
    const { token, admin, minter, alice } = await loadFixture(tokenFixture);
    await expect(token.connect(admin).grantRole(MINTER_ROLE, minter.address))
      .to.emit(token, "RoleGranted")
      .withArgs(MINTER_ROLE, minter.address, admin.address);

    // Execute
    const tx = token.connect(minter).mint(alice.address, 5n);

    // Assert
    await expect(tx).to.changeTokenBalance(token, alice, 5n);
  });

  it("refuses minting by a non-minter (AccessControlUnauthorizedAccount)", async function () {
    // Prepare
    const { token, outsider } = await loadFixture(tokenFixture);

    // Execute / Assert
    await expect(token.connect(outsider).mint(outsider.address, 1n))
      .to.be.revertedWithCustomError(token, "AccessControlUnauthorizedAccount")
      .withArgs(outsider.address, MINTER_ROLE);
    expect(await token.totalSupply()).to.equal(SUPPLY);
  });

  it("refuses a zero admin (ERC20InvalidReceiver on the initial mint)", async function () {
    // Prepare
    const DevToken = await ethers.getContractFactory("DevToken");

    // Execute / Assert
    await expect(DevToken.deploy(ethers.ZeroAddress, 1n))
      .to.be.revertedWithCustomError(DevToken, "ERC20InvalidReceiver")
      .withArgs(ethers.ZeroAddress);
  });

  it("transfers like a plain ERC-20", async function () {
    // Prepare
    const { token, admin, alice } = await loadFixture(tokenFixture);

    // Execute
    const tx = token.connect(admin).transfer(alice.address, 10n);

    // Assert
    await expect(tx).to.emit(token, "Transfer").withArgs(admin.address, alice.address, 10n);
    await expect(tx).to.changeTokenBalances(token, [admin, alice], [-10n, 10n]);
  });
});
