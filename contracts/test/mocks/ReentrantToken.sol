// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

interface ILedgerForReentrancy {
    function claim(address token) external returns (uint256);
    function submitCommitment(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples) external;
}

/// @title ReentrantToken
/// @notice Test-only ERC-20 that is also a ledger participant: when the ledger pays it, its
/// `transfer` calls back `ledger.claim` to try to be paid twice.
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

    constructor(address ledger_, address holder, uint256 supply) ERC20("reentrant token", "RNT") {
        ledger = ILedgerForReentrancy(ledger_);
        _mint(holder, supply);
    }

    function setMode(Mode m) external {
        mode = m;
    }

    function submitCommitment(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples) external {
        ledger.submitCommitment(taskId, round, updateHash, numExamples);
    }

    function claimFromLedger() external returns (uint256) {
        return ledger.claim(address(this));
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        bool ok = super.transfer(to, value);
        if (msg.sender == address(ledger) && mode != Mode.Off && !reentered) {
            reentered = true;
            if (mode == Mode.Bubble) {
                reentryPaid = ledger.claim(address(this));
            } else {
                try ledger.claim(address(this)) returns (uint256 paid) {
                    reentryPaid = paid;
                } catch (bytes memory reason) {
                    reentryReverted = true;
                    reentryRevertData = reason;
                }
            }
        }
        return ok;
    }
}
