// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title RewardPool
/// @notice Token pools per task and pull-payment claims of attributed rewards.
/// @dev Abstract: the ledger decides what is attributed, refunded and swept; this contract only
/// keeps the participants' books (owed, claimed) and moves tokens. Claims follow
/// checks-effects-interactions, are guarded against reentrancy and are never paused: what a
/// participant is owed is always claimable.
abstract contract RewardPool is ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Tokens attributed to `participant` in `token` and not yet claimed.
    mapping(address token => mapping(address participant => uint256)) public owed;

    /// @notice Tokens ever claimed by `participant` in `token`.
    mapping(address token => mapping(address participant => uint256)) public claimed;

    /// @notice A task's pool was funded by `funder` with `amount` tokens.
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount);

    /// @notice `participant` was paid `amount` of `token`, all it was owed.
    event RewardClaimed(address indexed participant, address indexed token, uint256 amount);

    /// @notice The token did not deliver what a funding transfer asked for (fee-on-transfer tokens are not supported).
    error RewardPoolTransferShort(uint256 expected, uint256 received);

    /// @notice A funding of zero tokens.
    error RewardPoolZeroAmount();

    /// @notice Pays the caller everything it is owed in `token`.
    /// @dev Pull payment; a second call pays nothing and emits nothing.
    /// @param token The ERC-20 reward token to claim.
    /// @return amount The amount paid.
    function claim(address token) external nonReentrant returns (uint256 amount) {
        amount = owed[token][msg.sender];
        if (amount == 0) return 0;
        owed[token][msg.sender] = 0;
        claimed[token][msg.sender] += amount;
        emit RewardClaimed(msg.sender, token, amount);
        IERC20(token).safeTransfer(msg.sender, amount);
    }

    /// @dev Pulls `amount` of `token` from `funder` into the pool, refusing short transfers.
    function _pullFunds(address token, address funder, uint256 amount) internal {
        if (amount == 0) revert RewardPoolZeroAmount();
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(funder, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received != amount) revert RewardPoolTransferShort(amount, received);
    }

    /// @dev Pays `amount` of `token` to `to` (a refund or a sweep); the caller has booked it first.
    function _payOut(address token, address to, uint256 amount) internal {
        IERC20(token).safeTransfer(to, amount);
    }

    /// @dev Credits `amount` of `token` to `participant`.
    function _credit(address token, address participant, uint256 amount) internal {
        owed[token][participant] += amount;
    }
}
