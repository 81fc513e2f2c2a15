// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title DevToken
/// @notice A plain ERC-20 reward token for devnets and simulations. Real consortia use any ERC-20.
contract DevToken is ERC20, AccessControl {
    /// @notice Role that may mint new tokens.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Account given DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    /// @param initialSupply Tokens minted to `admin` at deployment.
    constructor(address admin, uint256 initialSupply) ERC20("fedchain dev token", "FDT") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
        _mint(admin, initialSupply);
    }

    /// @notice Mints `amount` tokens to `to`.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
