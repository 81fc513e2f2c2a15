// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title OrganisationRegistry
/// @notice The consortium's register of organisations: who may take part in any task at all.
/// @dev Abstract unit of the ledger (OpenZeppelin's extension style). Only REGISTRAR_ROLE changes
/// it, and every change carries an event. Registration grants no right to any task: an
/// organisation joins each task by its own signed consent (see `Ledger.joinTask`). Revocation is
/// final for the address and stops new joins; it does not touch memberships already consented to
/// (a task's coordinator may remove a member from its task).
abstract contract OrganisationRegistry is AccessControl {
    /// @notice Role that registers, updates and revokes organisations.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    enum ParticipantStatus {
        None,
        Registered,
        Revoked
    }

    /// @notice The stored record of an organisation (a participant, a coordinator, a registrar).
    /// @dev The first four fields keep the layout of the record before issue 16 (status,
    /// registeredAt, withdrawnAt, orgHash); name and uri were added at the end.
    struct Participant {
        ParticipantStatus status;
        uint64 registeredAt; // block number
        uint64 revokedAt; // block number, 0 unless revoked
        bytes32 orgHash; // hash of the organisation's metadata document
        string name;
        string uri; // where the metadata document is published; may be empty
    }

    /// @notice One entry of `registerOrganisations`.
    struct Registration {
        address account;
        string name;
        bytes32 metadataHash;
        string uri;
    }

    mapping(address account => Participant) private _organisations;

    /// @notice `registrar` registered `account` as organisation `name` with its metadata hash and
    /// URI, or replaced the record of a registered organisation with these.
    event OrganisationRegistered(
        address indexed account, address indexed registrar, string name, bytes32 metadataHash, string uri
    );
    /// @notice `registrar` revoked organisation `account`: it can join no task from now on.
    event OrganisationRevoked(address indexed account, address indexed registrar);

    /// @notice The zero address cannot be an organisation.
    error OrganisationRegistryZeroAddress();
    /// @notice An organisation needs a name.
    error OrganisationRegistryNameEmpty(address account);
    /// @notice An organisation needs a non-zero metadata hash.
    error OrganisationRegistryZeroHash(address account);
    /// @notice `account` was never registered.
    error OrganisationRegistryNotRegistered(address account);
    /// @notice `account` was revoked; revocation is final for an address.
    error OrganisationRegistryRevoked(address account);

    /// @notice Registers `account` as an organisation, or replaces the name, metadata hash and URI
    /// of a registered one (its registeredAt stays).
    /// @dev Several at once: `multicall` (all or nothing).
    /// @param account The organisation's address (its signing key).
    /// @param name Human-readable name, shown beside the address everywhere ("St Mary's Hospital").
    /// @param metadataHash SHA-256 of the organisation's metadata document.
    /// @param uri Where that document is published; may be empty.
    function registerOrganisation(address account, string calldata name, bytes32 metadataHash, string calldata uri)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (account == address(0)) revert OrganisationRegistryZeroAddress();
        Participant storage p = _organisations[account];
        if (p.status == ParticipantStatus.Revoked) revert OrganisationRegistryRevoked(account);
        if (bytes(name).length == 0) revert OrganisationRegistryNameEmpty(account);
        if (metadataHash == 0) revert OrganisationRegistryZeroHash(account);
        if (p.status == ParticipantStatus.None) {
            p.status = ParticipantStatus.Registered;
            p.registeredAt = SafeCast.toUint64(block.number);
        }
        p.orgHash = metadataHash;
        p.name = name;
        p.uri = uri;
        emit OrganisationRegistered(account, msg.sender, name, metadataHash, uri);
    }

    /// @notice Revokes a registered organisation: it can join no task from now on.
    /// @dev Final for the address. Memberships it already consented to are left to each task's
    /// coordinator (`Ledger.removeMember`), so a registrar cannot rewrite a task's membership.
    function revokeOrganisation(address account) external onlyRole(REGISTRAR_ROLE) {
        Participant storage p = _organisations[account];
        _requireRegistered(account);
        p.status = ParticipantStatus.Revoked;
        p.revokedAt = SafeCast.toUint64(block.number);
        emit OrganisationRevoked(account, msg.sender);
    }

    /// @notice The stored record of organisation `account` (empty if never registered).
    function getParticipant(address account) external view returns (Participant memory) {
        return _organisations[account];
    }

    /// @notice The stored records of several organisations in one call.
    function getParticipants(address[] calldata accounts) external view returns (Participant[] memory records) {
        records = new Participant[](accounts.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            records[i] = _organisations[accounts[i]];
        }
    }

    /// @dev Reverts unless `account` is registered and not revoked.
    function _requireRegistered(address account) internal view {
        ParticipantStatus status = _organisations[account].status;
        if (status != ParticipantStatus.Registered) {
            if (status != ParticipantStatus.None) revert OrganisationRegistryRevoked(account);
            revert OrganisationRegistryNotRegistered(account);
        }
    }
}
