// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

interface ILedgerForReentrancy {
    function claim(address token) external returns (uint256);
    function submitCommitment(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples, uint256 epsilon)
        external;
    function joinTask(uint256 taskId, bytes32 specHash, uint256 datasetSize, bytes32 dataHash) external;
    function refund(uint256 taskId) external returns (uint256);
    function fundTask(uint256 taskId, uint256 amount) external;
    function sweep(uint256 taskId) external returns (uint256);
}

/// @title ReentrantToken
/// @notice Test-only ERC-20 that is also a ledger participant: when the ledger pays it, its
/// `transfer` calls back `ledger.claim` (or `ledger.refund(refundTaskId)` when set) to try to be paid twice.
contract ReentrantToken is ERC20 {
    /// @notice Re-entry off, re-entry whose revert bubbles up, or re-entry whose revert is swallowed.
    enum Mode {
        Off,
        Bubble,
        Swallow
    }

    ILedgerForReentrancy public immutable ledger;
    Mode public mode;
    bool public reentered;
    bool public reentryReverted;
    uint256 public reentryPaid;
    bytes public reentryRevertData;
    uint256 public refundTaskId;
    /// @notice What a re-entry calls when refundTaskId is set: 0 refund, 1 sweep, 2 fundTask.
    uint8 public reentryTarget;

    constructor(address ledger_, address holder, uint256 supply) ERC20("reentrant token", "RNT") {
        ledger = ILedgerForReentrancy(ledger_);
        _mint(holder, supply);
    }

    function setMode(Mode m) external {
        mode = m;
    }

    function setRefundTaskId(uint256 taskId) external {
        refundTaskId = taskId;
    }

    function setReentryTarget(uint8 target) external {
        reentryTarget = target;
    }

    function joinTask(uint256 taskId, bytes32 specHash, uint256 datasetSize, bytes32 dataHash) external {
        ledger.joinTask(taskId, specHash, datasetSize, dataHash);
    }

    function fundLedger(uint256 taskId, uint256 amount) external {
        _approve(address(this), address(ledger), amount);
        ledger.fundTask(taskId, amount);
    }

    function refundFromLedger(uint256 taskId) external returns (uint256) {
        return ledger.refund(taskId);
    }

    function sweepFromLedger(uint256 taskId) external returns (uint256) {
        return ledger.sweep(taskId);
    }

    function submitCommitment(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples) external {
        ledger.submitCommitment(taskId, round, updateHash, numExamples, 0);
    }

    function claimFromLedger() external returns (uint256) {
        return ledger.claim(address(this));
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        bool ok = super.transfer(to, value);
        _maybeReenter();
        return ok;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        bool ok = super.transferFrom(from, to, value);
        _maybeReenter();
        return ok;
    }

    function _maybeReenter() private {
        if (msg.sender == address(ledger) && mode != Mode.Off && !reentered) {
            reentered = true;
            if (mode == Mode.Bubble) {
                reentryPaid = this.reenter();
            } else {
                try this.reenter() returns (uint256 paid) {
                    reentryPaid = paid;
                } catch (bytes memory reason) {
                    reentryReverted = true;
                    reentryRevertData = reason;
                }
            }
        }
    }

    /// @dev The re-entrant call, external so that Swallow mode can catch its revert.
    function reenter() external returns (uint256) {
        if (refundTaskId == 0) return ledger.claim(address(this));
        if (reentryTarget == 1) return ledger.sweep(refundTaskId);
        if (reentryTarget == 2) {
            _approve(address(this), address(ledger), 1);
            ledger.fundTask(refundTaskId, 1);
            return 0;
        }
        return ledger.refund(refundTaskId);
    }
}
