// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {OrganisationRegistry} from "./OrganisationRegistry.sol";
import {RewardPool} from "./RewardPool.sol";

/// @title Ledger
/// @notice The on-chain record of a federation: tasks, their members' signed consent, rounds, the
/// signed commitments of each participant's update, the global model the coordinator committed,
/// its evaluation, and the rewards attributed for each round; and the rules that bound what the
/// coordinator and the admin can do with the funders' tokens.
/// @dev Every state change emits an event indexed by task, round and participant, so the whole
/// history can be rebuilt from logs alone. Eligibility is per task and read from stored
/// membership (consent), never from a role. A round cannot be opened and committed in the same
/// block and must last the task's `minRoundDuration`, so no transaction (or `multicall`) runs more
/// than one round's budget out of a pool. Funds have no dead end: a closed or cancelled task
/// refunds its unattributed tokens to its funders pro rata, and merkle rewards not proven by the
/// claim deadline are swept back to them. The pause stops new work, never a claim, refund or sweep.
contract Ledger is OrganisationRegistry, AccessControlDefaultAdminRules, Pausable, EIP712, RewardPool, Multicall {
    using SafeCast for uint256;

    /// @notice Role that may create tasks (and then runs the rounds of the tasks it coordinates).
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    /// @notice Role that may pause the ledger in an emergency (only the admin unpauses).
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice Delay of a default admin transfer at deployment (changeable, itself with a delay).
    uint48 public constant INITIAL_ADMIN_DELAY = 2 days;
    /// @notice Claim period of a task created with `createTask` (no explicit terms).
    uint32 public constant DEFAULT_CLAIM_PERIOD = 90 days;
    /// @notice EIP-712 type of a participant's commitment to its update for one round.
    bytes32 public constant COMMITMENT_TYPEHASH =
        keccak256("Commitment(uint256 taskId,uint256 round,bytes32 updateHash,uint256 numExamples,uint256 epsilon)");
    /// @notice EIP-712 type of a participant's consent to take part in one task.
    bytes32 public constant CONSENT_TYPEHASH =
        keccak256("Consent(uint256 taskId,bytes32 specHash,uint256 datasetSize,bytes32 dataHash)");

    enum TaskStatus {
        None,
        Active,
        Closed,
        Cancelled
    }

    enum RoundState {
        None,
        Open,
        Committed,
        Failed
    }

    /// @notice Why a relayed commitment, a relayed consent or a reward was skipped, not recorded.
    enum SkipReason {
        CommittedDirectly, // the participant committed itself this round; its own commitment counts
        NotMember, // no consent to this task for this round
        Left, // the participant left (or was removed from) the task before this round
        ExamplesAboveDataset, // numExamples above the dataset size it consented with
        AlreadyMember, // a relayed consent of a participant that has joined already
        EpsilonAboveCap, // the privacy spend it signed exceeds the task's cap (issue 17)
        EpsilonDecreased // the privacy spend it signed is below its last recorded spend (issue 17)
    }

    /// @notice What a challenger proved wrong with a leaf of a reward root.
    enum VoidReason {
        NotMember, // the leaf pays an account that was not a member when the round opened
        IndexMismatch, // the leaf's index is not its participant's member index
        ExamplesAboveDataset // the leaf claims more examples than the member consented with
    }

    /// @dev Fields after `attributed` were added by issue 16 (at the end, so older readers of the
    /// first eight fields keep working).
    struct Task {
        bytes32 specHash;
        bytes32 headModelHash; // the latest committed global model; the initial model before round 1
        address token;
        uint64 lastRound; // the latest round opened, 0 before round 1
        address coordinator;
        uint256 rewardPerRound; // the most one round may attribute
        uint256 funded; // tokens received from funders
        uint256 attributed; // credited (relayed rounds) plus reserved (merkle roots, less voided ones)
        uint256 reserved; // merkle totals committed and neither proven nor voided yet
        uint256 refunded; // unattributed tokens paid back to funders after close
        uint256 swept; // unproven merkle reserves paid back to funders after the claim deadline
        TaskStatus status;
        uint32 minRoundDuration; // seconds between a round's opening and its commit
        uint32 challengePeriod; // seconds a reward root can be voided before it becomes claimable
        uint32 claimPeriod; // seconds after close during which merkle leaves can still be proven
        uint40 claimDeadline; // closing time + claimPeriod; 0 while the task is active
        uint40 roundOpenedAt; // timestamp of the latest openRound
        uint40 roundOpenedBlock; // block of the latest openRound
        uint32 memberCount; // members ever joined; the next member's index
        uint32 epsilonCap; // most micro-epsilon a member may spend over the task; 0 = no DP terms (issue 17)
    }

    /// @notice The terms a task is created with (see `createTaskWithTerms`).
    /// `epsilonCap` (issue 17) is the privacy cap in micro-epsilon (1e6 = epsilon 1, so at most
    /// epsilon 4,294.967295); 0 means the task has no DP terms, and every commitment must carry 0.
    struct TaskTerms {
        uint32 minRoundDuration;
        uint32 challengePeriod;
        uint32 claimPeriod;
        uint32 epsilonCap;
    }

    /// @notice A participant's membership of one task: its consent and the rounds it covers.
    /// @dev Eligible for round r iff joinedRound != 0 && joinedRound <= r && (leftRound == 0 || r < leftRound).
    /// Both bounds are set to the task's first uncommitted round, so a committed round's
    /// eligibility never changes afterwards.
    /// Issue 17 narrowed the index to uint32 (memberCount's width) so that `epsilonSpent` shares the
    /// word the commit path reads anyway: recording a spend is a warm write, not a new storage word.
    /// `getMembership(taskId, account).epsilonSpent` is the participant's spend, readable by anyone.
    struct Membership {
        uint64 joinedRound;
        uint64 leftRound; // 0 while a member
        uint32 index; // member index in the task (join order from 0); a merkle leaf's index
        uint64 datasetSize; // committed dataset size; numExamples above it is refused
        uint32 epsilonSpent; // cumulative micro-epsilon of its latest recorded commitment (issue 17)
        bytes32 dataHash; // SHA-256 of the member's dataset manifest
    }

    /// @notice A funder's contributions to a task and what it was paid back.
    struct Funder {
        uint256 contributed;
        uint256 refunded;
        uint256 swept;
    }

    struct Round {
        RoundState state;
        uint32 directCount; // commitments participants submitted themselves
        uint32 commitmentCount; // commitments recorded on chain (relayed + direct), set when committed
        bytes32 parentModelHash;
        bytes32 globalModelHash;
    }

    /// @notice A participant's commitment, signed with its own key and relayed by the coordinator.
    /// @dev The signature is in EIP-2098 compact form (r, yParityAndS).
    struct SignedCommitment {
        address participant;
        bytes32 updateHash;
        uint256 numExamples;
        uint256 epsilon; // cumulative micro-epsilon after this round (issue 17); 0 without DP terms
        bytes32 r;
        bytes32 vs;
    }

    /// @notice A participant's consent to a task, signed with its own key and relayed by anyone.
    /// @dev The task id and spec hash are the task's own; the signature is EIP-2098 compact.
    struct SignedConsent {
        address participant;
        uint256 datasetSize;
        bytes32 dataHash;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice The evaluation of a round's global model on the task's holdout set.
    struct RoundOutcome {
        bytes32 globalModelHash;
        uint32 accuracyPpm; // accuracy in parts per million
        uint64 lossPpm; // loss x 1e6
        bytes32 scoringHash; // SHA-256 of the scoring record: method, parameters, seed, holdout hash
    }

    /// @notice A participant's measured contribution and the tokens it earns for one round.
    struct Reward {
        address participant;
        int256 score; // fixed point, 1e6 = 1.0
        uint256 amount;
    }

    /// @notice Number of tasks created; task ids run from 1 to taskCount.
    uint256 public taskCount;

    mapping(uint256 taskId => Task) private _tasks;
    mapping(uint256 taskId => mapping(uint256 round => Round)) private _rounds;
    mapping(uint256 taskId => mapping(uint256 round => mapping(address participant => bytes32 updateHash)))
        private _directCommitments;
    mapping(uint256 taskId => mapping(address account => Membership)) private _members;
    mapping(uint256 taskId => mapping(address funder => Funder)) private _funders;

    /// @notice A coordinator created task `taskId`.
    event TaskCreated(
        uint256 indexed taskId,
        address indexed coordinator,
        bytes32 specHash,
        bytes32 initialModelHash,
        address token,
        uint256 rewardPerRound
    );
    /// @notice Task `taskId` was created with these terms (emitted right after TaskCreated).
    event TaskTermsSet(
        uint256 indexed taskId, uint256 minRoundDuration, uint256 challengePeriod, uint256 claimPeriod, uint256 epsilonCap
    );
    /// @notice The admin handed task `taskId` from coordinator `previous` to `coordinator`.
    event TaskCoordinatorChanged(uint256 indexed taskId, address indexed previous, address indexed coordinator);
    /// @notice `by` closed task `taskId`; `unattributed` tokens are refundable to its funders pro rata.
    event TaskClosed(uint256 indexed taskId, address indexed by, uint256 claimDeadline, uint256 unattributed);
    /// @notice `by` cancelled task `taskId`; `unattributed` tokens are refundable to its funders pro rata.
    event TaskCancelled(uint256 indexed taskId, address indexed by, uint256 claimDeadline, uint256 unattributed);
    /// @notice `funder` was paid back `amount` of task `taskId`'s unattributed tokens.
    event FundsRefunded(uint256 indexed taskId, address indexed funder, uint256 amount);
    /// @notice `funder` was paid back `amount` of task `taskId`'s merkle rewards unproven by the deadline.
    event UnclaimedSwept(uint256 indexed taskId, address indexed funder, uint256 amount);
    /// @notice `participant` consented to task `taskId` and is a member from round `fromRound`.
    event MemberJoined(
        uint256 indexed taskId,
        address indexed participant,
        uint256 memberIndex,
        uint256 fromRound,
        uint256 datasetSize,
        bytes32 dataHash,
        bool relayed
    );
    /// @notice `participant` left task `taskId`: it is not a member for round `fromRound` and after.
    event MemberLeft(uint256 indexed taskId, address indexed participant, uint256 fromRound);
    /// @notice The coordinator `by` removed `participant` from task `taskId` from round `fromRound` on.
    event MemberRemoved(uint256 indexed taskId, address indexed participant, uint256 fromRound, address by);
    /// @notice A relayed consent of `participant` was skipped (it is a member already, or left).
    event ConsentSkipped(uint256 indexed taskId, address indexed participant, SkipReason reason);
    /// @notice Round `round` of task `taskId` opened on top of `parentModelHash`.
    event RoundOpened(uint256 indexed taskId, uint256 indexed round, bytes32 parentModelHash);
    /// @notice `participant` committed to its update for a round, relayed by the coordinator or directly;
    /// `epsilon` is its cumulative privacy spend after the round (micro-epsilon), now its recorded spend.
    event CommitmentRecorded(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed participant,
        bytes32 updateHash,
        uint256 numExamples,
        bool relayed,
        uint256 epsilon
    );
    /// @notice A validly signed relayed commitment of `participant` was not recorded, for `reason`.
    event CommitmentSkipped(
        uint256 indexed taskId, uint256 indexed round, address indexed participant, SkipReason reason
    );
    /// @notice `participant` was scored `score` and earned `amount` for a round.
    event RewardAttributed(
        uint256 indexed taskId, uint256 indexed round, address indexed participant, int256 score, uint256 amount
    );
    /// @notice The reward of `amount` proposed for `participant` was not credited, for `reason`;
    /// it stays in the pool.
    event RewardSkipped(
        uint256 indexed taskId, uint256 indexed round, address indexed participant, uint256 amount, SkipReason reason
    );
    /// @notice Round `round` of task `taskId` was committed with its global model and evaluation.
    /// @dev `commitmentCount` counts the round's CommitmentRecorded events; `totalReward` is what
    /// the round took from the pool (credited, or reserved for a reward root).
    event RoundCommitted(
        uint256 indexed taskId,
        uint256 indexed round,
        bytes32 globalModelHash,
        uint32 accuracyPpm,
        uint64 lossPpm,
        bytes32 scoringHash,
        uint256 commitmentCount,
        uint256 totalReward
    );
    /// @notice Round `round` took `attributed` from the pool; `unearned` (rewardPerRound less that)
    /// stays in the pool.
    event RoundSettled(uint256 indexed taskId, uint256 indexed round, uint256 attributed, uint256 unearned);
    /// @notice Round `round` of task `taskId` was closed without a model (too few valid updates, say).
    event RoundFailed(uint256 indexed taskId, uint256 indexed round, string reason);

    /// @notice A hash that must be set is zero.
    error LedgerZeroHash();
    /// @notice An address that must be set is zero.
    error LedgerZeroAddress();
    /// @notice No task `taskId` was created.
    error LedgerTaskUnknown(uint256 taskId);
    /// @notice Task `taskId` was closed or cancelled: no new funding, members or rounds.
    error LedgerTaskNotActive(uint256 taskId);
    /// @notice Task `taskId` is still active: refunds and sweeps start when it is closed or cancelled.
    error LedgerTaskStillActive(uint256 taskId);
    /// @notice `account` is not task `taskId`'s coordinator holding COORDINATOR_ROLE (nor, where allowed, the admin).
    error LedgerNotTaskCoordinator(uint256 taskId, address account);
    /// @notice `account` does not hold COORDINATOR_ROLE, so it cannot be handed a task.
    error LedgerNotCoordinator(address account);
    /// @notice A task's claim period must exceed its challenge period.
    error LedgerClaimPeriodTooShort(uint256 claimPeriod, uint256 challengePeriod);
    /// @notice The spec hash the caller consents to is not task `taskId`'s.
    error LedgerSpecMismatch(uint256 taskId, bytes32 expected, bytes32 got);
    /// @notice The consent is not signed by `participant` for this task, spec, dataset size and data hash.
    error LedgerConsentSignatureInvalid(uint256 taskId, address participant);
    /// @notice `account` is a member of task `taskId` already.
    error LedgerAlreadyMember(uint256 taskId, address account);
    /// @notice `account` never joined task `taskId`.
    error LedgerNotMember(uint256 taskId, address account);
    /// @notice `account` left task `taskId` (from round `leftRound`); leaving is final.
    error LedgerMemberLeft(uint256 taskId, address account, uint256 leftRound);
    /// @notice `account` is not an eligible member of task `taskId` for round `round`.
    error LedgerNotEligible(uint256 taskId, uint256 round, address account);
    /// @notice `numExamples` exceeds the dataset size `account` consented with.
    error LedgerExamplesAboveDataset(uint256 taskId, address account, uint256 numExamples, uint256 datasetSize);
    /// @notice `account` committed a privacy spend of `epsilon` micro-epsilon, above task `taskId`'s `cap`.
    error LedgerEpsilonAboveCap(uint256 taskId, address account, uint256 epsilon, uint256 cap);
    /// @notice `account` committed a spend of `epsilon`, below its recorded spend `spent`: a spend only grows.
    error LedgerEpsilonDecreased(uint256 taskId, address account, uint256 epsilon, uint256 spent);
    /// @notice Rounds open strictly in sequence: `expected` is next.
    error LedgerRoundOutOfOrder(uint256 taskId, uint256 expected, uint256 got);
    /// @notice Round `round` must be committed or failed before the next one opens.
    error LedgerRoundStillOpen(uint256 taskId, uint256 round);
    /// @notice A round builds on the latest committed global model, `expected`.
    error LedgerParentMismatch(uint256 taskId, uint256 round, bytes32 expected, bytes32 got);
    /// @notice Round `round` of task `taskId` is not open.
    error LedgerRoundNotOpen(uint256 taskId, uint256 round);
    /// @notice Round `round` of task `taskId` was committed already.
    error LedgerRoundAlreadyCommitted(uint256 taskId, uint256 round);
    /// @notice A round cannot be committed in the block it was opened (one round per block at most).
    error LedgerRoundOpenedThisBlock(uint256 taskId, uint256 round);
    /// @notice The task's minimum round duration has not passed: commit from `earliestCommit` on.
    error LedgerRoundTooShort(uint256 taskId, uint256 round, uint256 earliestCommit);
    /// @notice The relayed commitment is not signed by `participant` for this task, round, update and size.
    error LedgerSignatureInvalid(uint256 taskId, uint256 round, address participant);
    /// @notice `participant` has a commitment for this round already (direct twice, or relayed twice in one list).
    error LedgerDuplicateCommitment(uint256 taskId, uint256 round, address participant);
    /// @notice Relayed commitments must be strictly ascending by participant; entry `index` is not.
    error LedgerCommitmentsUnsorted(uint256 index);
    /// @notice Rewards must be strictly ascending by participant; entry `index` is not.
    error LedgerRewardsUnsorted(uint256 index);
    /// @notice A reward for `participant`, which has no commitment at all in this round.
    error LedgerRewardWithoutCommitment(uint256 taskId, uint256 round, address participant);
    /// @notice The round would take `total`, above the task's rewardPerRound `budget`.
    error LedgerRoundBudgetExceeded(uint256 taskId, uint256 round, uint256 total, uint256 budget);
    /// @notice The round would take `needed`, above the `available` unattributed pool.
    error LedgerPoolInsufficient(uint256 taskId, uint256 needed, uint256 available);
    /// @notice `account` never funded task `taskId`.
    error LedgerNotFunder(uint256 taskId, address account);
    /// @notice Unproven rewards are swept only after the claim deadline `claimDeadline`.
    error LedgerClaimPeriodNotOver(uint256 taskId, uint256 claimDeadline);

    /// @param admin Account given DEFAULT_ADMIN_ROLE (two-step transfer, INITIAL_ADMIN_DELAY),
    /// COORDINATOR_ROLE, REGISTRAR_ROLE and PAUSER_ROLE.
    constructor(address admin)
        AccessControlDefaultAdminRules(INITIAL_ADMIN_DELAY, _nonZero(admin))
        EIP712("fedchain", "1")
    {
        _setRoleAdmin(COORDINATOR_ROLE, DEFAULT_ADMIN_ROLE);
        _setRoleAdmin(REGISTRAR_ROLE, DEFAULT_ADMIN_ROLE);
        _setRoleAdmin(PAUSER_ROLE, DEFAULT_ADMIN_ROLE);
        _grantRole(COORDINATOR_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Stops new tasks, funding, joins, rounds and commits. Claims, refunds, sweeps,
    /// leaving a task, closing a task and voiding a root go on.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Lifts the pause (the admin only, so a pauser key alone cannot toggle it).
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    /// @notice Hands task `taskId` to `coordinator`, who must hold COORDINATOR_ROLE.
    /// @dev The admin's remedy for a coordinator that lost its key or its role.
    function setTaskCoordinator(uint256 taskId, address coordinator) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Task storage task = _existingTask(taskId);
        if (coordinator == address(0)) revert LedgerZeroAddress();
        if (!hasRole(COORDINATOR_ROLE, coordinator)) revert LedgerNotCoordinator(coordinator);
        address previous = task.coordinator;
        task.coordinator = coordinator;
        emit TaskCoordinatorChanged(taskId, previous, coordinator);
    }

    /// @inheritdoc AccessControlDefaultAdminRules
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(AccessControl, AccessControlDefaultAdminRules)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    /// @inheritdoc AccessControlDefaultAdminRules
    function grantRole(bytes32 role, address account) public override(AccessControl, AccessControlDefaultAdminRules) {
        super.grantRole(role, account);
    }

    /// @inheritdoc AccessControlDefaultAdminRules
    function revokeRole(bytes32 role, address account) public override(AccessControl, AccessControlDefaultAdminRules) {
        super.revokeRole(role, account);
    }

    /// @inheritdoc AccessControlDefaultAdminRules
    function renounceRole(bytes32 role, address account)
        public
        override(AccessControl, AccessControlDefaultAdminRules)
    {
        super.renounceRole(role, account);
    }

    function _grantRole(bytes32 role, address account)
        internal
        override(AccessControl, AccessControlDefaultAdminRules)
        returns (bool)
    {
        return super._grantRole(role, account);
    }

    function _revokeRole(bytes32 role, address account)
        internal
        override(AccessControl, AccessControlDefaultAdminRules)
        returns (bool)
    {
        return super._revokeRole(role, account);
    }

    function _setRoleAdmin(bytes32 role, bytes32 adminRole) internal override(AccessControl, AccessControlDefaultAdminRules) {
        super._setRoleAdmin(role, adminRole);
    }

    // ------------------------------------------------------------------ tasks

    /// @notice Creates a task with the default terms: no minimum round duration (rounds still
    /// cannot be opened and committed in one block), no challenge period, DEFAULT_CLAIM_PERIOD.
    /// @param specHash SHA-256 of the canonical task spec; members consent to it.
    /// @param initialModelHash SHA-256 of the initial global model, the parent of round 1.
    /// @param token ERC-20 the rewards are paid in.
    /// @param rewardPerRound Most tokens one round may attribute.
    /// @return taskId The new task's id.
    function createTask(bytes32 specHash, bytes32 initialModelHash, address token, uint256 rewardPerRound)
        external
        returns (uint256 taskId)
    {
        return _createTask(specHash, initialModelHash, token, rewardPerRound, TaskTerms(0, 0, DEFAULT_CLAIM_PERIOD, 0));
    }

    /// @notice Creates a task with explicit terms; the caller becomes its coordinator.
    /// @param terms Minimum round duration, challenge period of reward roots and claim period
    /// after close (seconds; the claim period must exceed the challenge period), and the privacy
    /// cap in micro-epsilon (0: no DP terms).
    /// @return taskId The new task's id.
    function createTaskWithTerms(
        bytes32 specHash,
        bytes32 initialModelHash,
        address token,
        uint256 rewardPerRound,
        TaskTerms calldata terms
    ) external returns (uint256 taskId) {
        return _createTask(specHash, initialModelHash, token, rewardPerRound, terms);
    }

    /// @notice Moves `amount` reward tokens from the caller into active task `taskId`'s pool.
    /// @dev The caller must have approved the ledger for `amount` first. Anyone may fund a task;
    /// each funder's contribution is recorded for pro-rata refunds.
    function fundTask(uint256 taskId, uint256 amount) external nonReentrant whenNotPaused {
        Task storage task = _activeTask(taskId);
        _pullFunds(task.token, msg.sender, amount);
        task.funded += amount;
        _funders[taskId][msg.sender].contributed += amount;
        emit TaskFunded(taskId, msg.sender, amount);
    }

    /// @notice Closes task `taskId` at its normal end. Its coordinator or the admin may.
    /// @dev A round still open is failed. The unattributed pool becomes refundable (`refund`), and
    /// reward leaves can be proven until `claimDeadline` = now + claimPeriod (`sweep` after).
    function closeTask(uint256 taskId) external {
        uint256 deadline = _end(taskId, TaskStatus.Closed, "task closed");
        Task storage task = _tasks[taskId];
        emit TaskClosed(taskId, msg.sender, deadline, task.funded - task.attributed);
    }

    /// @notice Cancels task `taskId` (abandoned, not finished). Same money rules as `closeTask`.
    function cancelTask(uint256 taskId) external {
        uint256 deadline = _end(taskId, TaskStatus.Cancelled, "task cancelled");
        Task storage task = _tasks[taskId];
        emit TaskCancelled(taskId, msg.sender, deadline, task.funded - task.attributed);
    }

    /// @notice Pays the caller its pro-rata share of a closed or cancelled task's unattributed
    /// tokens, less what it was refunded before (pull payment; never paused).
    /// @return amount The amount paid (0 when nothing new is due: a voided root can add more later).
    function refund(uint256 taskId) external nonReentrant returns (uint256 amount) {
        Task storage task = _endedTask(taskId);
        Funder storage f = _funder(taskId, msg.sender);
        uint256 entitled = Math.mulDiv(task.funded - task.attributed, f.contributed, task.funded);
        amount = entitled - f.refunded;
        if (amount == 0) return 0;
        f.refunded = entitled;
        task.refunded += amount;
        emit FundsRefunded(taskId, msg.sender, amount);
        _payOut(task.token, msg.sender, amount);
    }

    /// @notice After the claim deadline, pays the caller its pro-rata share of the task's merkle
    /// rewards that were never proven, less what it was paid by earlier sweeps.
    /// @return amount The amount paid (0 when nothing new is due).
    function sweep(uint256 taskId) external nonReentrant returns (uint256 amount) {
        Task storage task = _endedTask(taskId);
        if (block.timestamp <= task.claimDeadline) revert LedgerClaimPeriodNotOver(taskId, task.claimDeadline);
        Funder storage f = _funder(taskId, msg.sender);
        uint256 entitled = Math.mulDiv(task.reserved, f.contributed, task.funded);
        amount = entitled - f.swept;
        if (amount == 0) return 0;
        f.swept = entitled;
        task.swept += amount;
        emit UnclaimedSwept(taskId, msg.sender, amount);
        _payOut(task.token, msg.sender, amount);
    }

    /// @notice The stored record of task `taskId`.
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    /// @notice What `funder` put into task `taskId` and was paid back.
    function getFunder(uint256 taskId, address funder) external view returns (Funder memory) {
        return _funders[taskId][funder];
    }

    // ------------------------------------------------------------------ membership

    /// @notice Joins task `taskId` with the caller's own consent to its spec.
    /// @param specHash The task's spec hash, as the caller read it (guards against a wrong id).
    /// @param datasetSize The dataset size the caller commits to; no commitment may claim more examples.
    /// @param dataHash SHA-256 of the caller's dataset manifest.
    function joinTask(uint256 taskId, bytes32 specHash, uint256 datasetSize, bytes32 dataHash)
        external
        whenNotPaused
    {
        Task storage task = _activeTask(taskId);
        if (specHash != task.specHash) revert LedgerSpecMismatch(taskId, task.specHash, specHash);
        Membership storage m = _members[taskId][msg.sender];
        _requireNew(taskId, msg.sender, m);
        _join(task, taskId, msg.sender, m, datasetSize, dataHash, false);
    }

    /// @notice Joins a participant to task `taskId` with its EIP-712 signed Consent, relayed by anyone.
    function joinTaskFor(uint256 taskId, SignedConsent calldata consent) external whenNotPaused {
        Task storage task = _activeTask(taskId);
        _verifyConsent(taskId, task.specHash, consent);
        Membership storage m = _members[taskId][consent.participant];
        _requireNew(taskId, consent.participant, m);
        _join(task, taskId, consent.participant, m, consent.datasetSize, consent.dataHash, true);
    }

    /// @notice `joinTaskFor` for several consents. A consent of a participant that is a member
    /// already, or left, is skipped with ConsentSkipped (so nobody can make the batch revert).
    /// @dev Bounded by the caller's own calldata. A bad signature or an unregistered organisation
    /// reverts: the relayer checks those before sending.
    function joinTaskForBatch(uint256 taskId, SignedConsent[] calldata consents) external whenNotPaused {
        Task storage task = _activeTask(taskId);
        bytes32 specHash = task.specHash;
        for (uint256 i = 0; i < consents.length; ++i) {
            SignedConsent calldata c = consents[i];
            _verifyConsent(taskId, specHash, c);
            Membership storage m = _members[taskId][c.participant];
            if (m.leftRound != 0) {
                emit ConsentSkipped(taskId, c.participant, SkipReason.Left);
            } else if (m.joinedRound != 0) {
                emit ConsentSkipped(taskId, c.participant, SkipReason.AlreadyMember);
            } else {
                _join(task, taskId, c.participant, m, c.datasetSize, c.dataHash, true);
            }
        }
    }

    /// @notice Leaves task `taskId`, effective from its first uncommitted round (the round open
    /// now, if any): no commitment or reward of the caller counts from that round on. Final.
    /// @dev Never paused. Rewards of committed rounds stay claimable.
    function leaveTask(uint256 taskId) external {
        uint256 fromRound = _leave(taskId, msg.sender);
        emit MemberLeft(taskId, msg.sender, fromRound);
    }

    /// @notice Removes `account` from task `taskId`, like `leaveTask` but by the task's coordinator.
    function removeMember(uint256 taskId, address account) external {
        _coordinatedTask(taskId);
        uint256 fromRound = _leave(taskId, account);
        emit MemberRemoved(taskId, account, fromRound, msg.sender);
    }

    /// @notice The membership of `account` in task `taskId` (all zero if it never joined).
    function getMembership(uint256 taskId, address account) external view returns (Membership memory) {
        return _members[taskId][account];
    }

    /// @notice Whether `account` is an eligible member of task `taskId` for round `round`.
    function isEligible(uint256 taskId, uint256 round, address account) external view returns (bool) {
        return _eligible(_members[taskId][account], round);
    }

    /// @notice The EIP-712 digest a participant signs to consent to a task.
    function consentDigest(uint256 taskId, bytes32 specHash, uint256 datasetSize, bytes32 dataHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(CONSENT_TYPEHASH, taskId, specHash, datasetSize, dataHash)));
    }

    // ------------------------------------------------------------------ rounds

    /// @notice Opens the next round of task `taskId` on top of the latest committed global model.
    function openRound(uint256 taskId, uint256 round, bytes32 parentModelHash) external whenNotPaused {
        Task storage task = _coordinatedTask(taskId);
        if (task.status != TaskStatus.Active) revert LedgerTaskNotActive(taskId);
        uint256 last = task.lastRound;
        if (round != last + 1) revert LedgerRoundOutOfOrder(taskId, last + 1, round);
        if (last != 0 && _rounds[taskId][last].state == RoundState.Open) revert LedgerRoundStillOpen(taskId, last);
        if (parentModelHash != task.headModelHash) {
            revert LedgerParentMismatch(taskId, round, task.headModelHash, parentModelHash);
        }
        task.lastRound = round.toUint64();
        task.roundOpenedAt = block.timestamp.toUint40();
        task.roundOpenedBlock = block.number.toUint40();
        Round storage r = _rounds[taskId][round];
        r.state = RoundState.Open;
        r.parentModelHash = parentModelHash;
        emit RoundOpened(taskId, round, parentModelHash);
    }

    /// @notice Records the caller's own commitment for an open round (no coordinator needed).
    /// @dev The caller must be an eligible member; numExamples may not exceed its dataset size;
    /// `epsilon` (its cumulative micro-epsilon after the round) may not exceed the task's cap nor
    /// go below its recorded spend, and becomes its recorded spend.
    function submitCommitment(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples, uint256 epsilon)
        external
        whenNotPaused
    {
        Round storage r = _openRound(taskId, round);
        if (updateHash == 0) revert LedgerZeroHash();
        Membership storage m = _members[taskId][msg.sender];
        if (!_eligible(m, round)) revert LedgerNotEligible(taskId, round, msg.sender);
        if (numExamples > m.datasetSize) {
            revert LedgerExamplesAboveDataset(taskId, msg.sender, numExamples, m.datasetSize);
        }
        uint256 cap = _tasks[taskId].epsilonCap;
        if (epsilon > cap) revert LedgerEpsilonAboveCap(taskId, msg.sender, epsilon, cap);
        if (epsilon < m.epsilonSpent) revert LedgerEpsilonDecreased(taskId, msg.sender, epsilon, m.epsilonSpent);
        if (_directCommitments[taskId][round][msg.sender] != 0) {
            revert LedgerDuplicateCommitment(taskId, round, msg.sender);
        }
        _directCommitments[taskId][round][msg.sender] = updateHash;
        r.directCount += 1;
        _spend(m, epsilon);
        emit CommitmentRecorded(taskId, round, msg.sender, updateHash, numExamples, false, epsilon);
    }

    /// @notice Closes an open round with the relayed commitments, the global model, its evaluation
    /// and the rewards, in one transaction.
    /// @dev A validly signed commitment that cannot count (the participant committed directly,
    /// is not an eligible member, claims more examples than its dataset, or signed a privacy spend
    /// above the task's cap or below its recorded spend) is skipped with CommitmentSkipped, so no
    /// participant can make the commit revert. A reward is credited only
    /// for a counted commitment of an eligible member; otherwise it is skipped with RewardSkipped
    /// and stays in the pool. Not in the block the round was opened, nor before minRoundDuration.
    /// @param commitments Signed commitments, strictly ascending by participant address.
    /// @param outcome The aggregated global model's hash and evaluation.
    /// @param rewards Scores and amounts, strictly ascending by participant; each participant must
    /// have a commitment (relayed or direct) in this round.
    function commitRound(
        uint256 taskId,
        uint256 round,
        SignedCommitment[] calldata commitments,
        RoundOutcome calldata outcome,
        Reward[] calldata rewards
    ) external whenNotPaused {
        Task storage task = _coordinatedTask(taskId);
        Round storage r = _committableRound(task, taskId, round);
        if (outcome.globalModelHash == 0) revert LedgerZeroHash();

        uint256 directCount = r.directCount;
        uint256 count = _recordRelayed(task, taskId, round, directCount, commitments) + directCount;
        uint256 total = _attribute(task, taskId, round, directCount, commitments, rewards);

        r.state = RoundState.Committed;
        r.globalModelHash = outcome.globalModelHash;
        r.commitmentCount = count.toUint32();
        task.headModelHash = outcome.globalModelHash;
        emit RoundCommitted(
            taskId,
            round,
            outcome.globalModelHash,
            outcome.accuracyPpm,
            outcome.lossPpm,
            outcome.scoringHash,
            count,
            total
        );
        emit RoundSettled(taskId, round, total, task.rewardPerRound - total);
    }

    /// @notice Closes an open round without a model; the next round builds on the same parent.
    /// @dev Moves no tokens, so it is allowed during a pause.
    function failRound(uint256 taskId, uint256 round, string calldata reason) external {
        _coordinatedTask(taskId);
        Round storage r = _openRound(taskId, round);
        r.state = RoundState.Failed;
        emit RoundFailed(taskId, round, reason);
    }

    /// @notice The stored record of round `round` of task `taskId`.
    function getRound(uint256 taskId, uint256 round) external view returns (Round memory) {
        return _rounds[taskId][round];
    }

    /// @notice The update hash `participant` submitted itself for a round, or zero.
    function directCommitment(uint256 taskId, uint256 round, address participant) external view returns (bytes32) {
        return _directCommitments[taskId][round][participant];
    }

    /// @notice The EIP-712 digest a participant signs to commit to its update.
    function commitmentDigest(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples, uint256 epsilon)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(COMMITMENT_TYPEHASH, taskId, round, updateHash, numExamples, epsilon))
        );
    }

    // ------------------------------------------------------------------ merkle commit mode
    //
    // A round of a large federation is committed by one Merkle root over its reward leaves, so its
    // gas does not depend on the number of participants. Each leaf is bound to its task, round and
    // index (the participant's member index), so one participant has at most one claimable leaf
    // per round and identical leaves cannot collapse; claims are marked in a bitmap per round
    // (Uniswap's merkle-distributor). A root becomes claimable after the task's challenge period,
    // during which anyone holding the published record can void it by proving one faulty leaf.
    // The tree is OpenZeppelin's StandardMerkleTree (double-hashed ABI-encoded leaves, sorted pairs).

    /// @notice One leaf of a round's reward tree: a participant's commitment, score and reward.
    /// @dev `index` (added at the end) is the participant's member index in the task.
    struct RewardLeaf {
        address participant;
        bytes32 updateHash;
        uint256 numExamples;
        int256 score; // fixed point, 1e6 = 1.0
        uint256 amount;
        uint256 index;
    }

    /// @notice A reward leaf and its proof, for claiming several rounds in one transaction.
    struct LeafClaim {
        uint256 round;
        RewardLeaf leaf;
        bytes32[] proof;
    }

    /// @notice What the coordinator commits for a round in merkle mode besides its outcome.
    struct RoundRoot {
        bytes32 root; // StandardMerkleTree root over the round's reward leaves
        bytes32 recordHash; // SHA-256 of the published round record (leaves, proofs, signatures)
        uint32 leafCount; // declared: claims can never exceed it
        uint256 totalReward; // declared sum of the leaves' amounts: reserved, and claims never exceed it
    }

    /// @notice A committed reward root and what has been claimed against it.
    /// @dev The first three fields keep their pre-issue-16 positions; the rest were added.
    struct RewardRoot {
        bytes32 root;
        uint256 total; // declared total, reserved from the pool
        uint128 claimed;
        uint32 declaredLeafCount;
        uint32 claimedCount;
        uint40 claimableAt; // commit time + the task's challenge period
        bool voided;
    }

    mapping(uint256 taskId => mapping(uint256 round => RewardRoot)) private _rewardRoots;
    mapping(uint256 taskId => mapping(uint256 round => mapping(uint256 word => uint256 bits))) private _claimedBitmap;

    /// @notice Round `round` of task `taskId` was committed by the root of its reward tree; its
    /// published record (leaves, proofs, signed commitments) hashes to `recordHash`. The counts are
    /// the coordinator's declaration, enforced as upper bounds on claims.
    event RoundRootCommitted(
        uint256 indexed taskId,
        uint256 indexed round,
        bytes32 root,
        bytes32 recordHash,
        uint256 declaredLeafCount,
        uint256 declaredTotalReward
    );
    /// @notice The reward leaf `leaf` of `participant` was proven for a round and `amount` credited.
    event RewardLeafClaimed(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed participant,
        bytes32 leaf,
        int256 score,
        uint256 amount
    );
    /// @notice `challenger` proved a faulty leaf (paying `participant`) in round `round`'s reward
    /// root; the root is void and its `returned` reserve is back in the pool.
    event RoundRootVoided(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed participant,
        VoidReason reason,
        address challenger,
        uint256 returned
    );

    /// @notice Round `round` of task `taskId` has no reward root: it is not committed in merkle mode.
    error LedgerRewardRootUnknown(uint256 taskId, uint256 round);
    /// @notice The reward root of the round was voided by a challenge.
    error LedgerRewardRootVoided(uint256 taskId, uint256 round);
    /// @notice The reward root is in its challenge period until `claimableAt`.
    error LedgerRewardRootInChallenge(uint256 taskId, uint256 round, uint256 claimableAt);
    /// @notice The challenge period of the root ended at `claimableAt`.
    error LedgerChallengePeriodOver(uint256 taskId, uint256 round, uint256 claimableAt);
    /// @notice The challenged leaf is valid: nothing to void.
    error LedgerChallengeUnfounded(uint256 taskId, uint256 round, address participant);
    /// @notice The task's claim deadline passed; unproven leaves are now swept to the funders.
    error LedgerClaimDeadlinePassed(uint256 taskId, uint256 claimDeadline);
    /// @notice The reward leaf at this index of the round was claimed already.
    error LedgerLeafAlreadyClaimed(uint256 taskId, uint256 round, address participant);
    /// @notice The proof does not lead from `participant`'s leaf to the round's reward root.
    error LedgerLeafProofInvalid(uint256 taskId, uint256 round, address participant);
    /// @notice The leaf's index is not `participant`'s member index.
    error LedgerLeafIndexMismatch(uint256 taskId, address participant, uint256 expected, uint256 got);
    /// @notice The round's declared leaf count is all claimed already.
    error LedgerLeafCountExceeded(uint256 taskId, uint256 round, uint256 declaredLeafCount);
    /// @notice A declared leaf count above the task's member count.
    error LedgerLeafCountAboveMembers(uint256 taskId, uint256 leafCount, uint256 memberCount);
    /// @notice Claims of the round would credit `claimed`, more than the `total` committed with its root.
    error LedgerRewardRootOverdrawn(uint256 taskId, uint256 round, uint256 total, uint256 claimed);

    /// @notice Closes an open round in merkle mode: the global model, its evaluation and the root
    /// of the round's reward leaves, in one transaction of constant gas.
    /// @dev The leaves are not on chain: `tree.totalReward` is checked against the round budget and
    /// the pool and reserved; claims never credit more than it, nor more leaves than
    /// `tree.leafCount`, and each leaf's participant is checked at claim time.
    /// @param tree The root, the published record's hash, the declared leaf count and total.
    /// @param outcome The aggregated global model's hash and evaluation.
    function commitRoundRoot(uint256 taskId, uint256 round, RoundRoot calldata tree, RoundOutcome calldata outcome)
        external
        whenNotPaused
    {
        Task storage task = _coordinatedTask(taskId);
        Round storage r = _committableRound(task, taskId, round);
        if (outcome.globalModelHash == 0 || tree.root == 0) revert LedgerZeroHash();
        if (tree.leafCount > task.memberCount) {
            revert LedgerLeafCountAboveMembers(taskId, tree.leafCount, task.memberCount);
        }
        uint256 total = tree.totalReward;
        _reserve(task, taskId, round, total);
        task.reserved += total;

        _rewardRoots[taskId][round] = RewardRoot({
            root: tree.root,
            total: total,
            claimed: 0,
            declaredLeafCount: tree.leafCount,
            claimedCount: 0,
            claimableAt: (block.timestamp + task.challengePeriod).toUint40(),
            voided: false
        });
        uint256 direct = r.directCount;
        r.state = RoundState.Committed;
        r.globalModelHash = outcome.globalModelHash;
        r.commitmentCount = direct.toUint32();
        task.headModelHash = outcome.globalModelHash;
        emit RoundRootCommitted(taskId, round, tree.root, tree.recordHash, tree.leafCount, total);
        emit RoundCommitted(
            taskId,
            round,
            outcome.globalModelHash,
            outcome.accuracyPpm,
            outcome.lossPpm,
            outcome.scoringHash,
            direct,
            total
        );
        emit RoundSettled(taskId, round, total, task.rewardPerRound - total);
    }

    /// @notice Proves `leaf` against round `round`'s reward root and credits its amount to the
    /// leaf's participant, who pulls it with `claim(token)`.
    /// @dev Anyone may submit a proof (a relayer, say); the tokens only ever go to the leaf's
    /// participant, which must have been an eligible member at that round, at its member index.
    /// Never paused; refused after the claim deadline of a closed task.
    /// @param proof The leaf's StandardMerkleTree proof (sibling hashes, leaf to root).
    function claimLeaf(uint256 taskId, uint256 round, RewardLeaf calldata leaf, bytes32[] calldata proof) external {
        _claimLeaf(_existingTask(taskId), taskId, round, leaf, proof);
    }

    /// @notice `claimLeaf` for several rounds in one transaction.
    /// @dev Bounded by the caller's own calldata.
    function claimLeaves(uint256 taskId, LeafClaim[] calldata claims) external {
        Task storage task = _existingTask(taskId);
        for (uint256 i = 0; i < claims.length; ++i) {
            _claimLeaf(task, taskId, claims[i].round, claims[i].leaf, claims[i].proof);
        }
    }

    /// @notice Voids round `round`'s reward root by proving one faulty leaf, during the challenge
    /// period: the leaf pays an account that was not a member when the round opened (never
    /// joined, joined later, or had left before), carries another index than its participant's
    /// member index, or more examples than its dataset. A member that left during the round is no
    /// ground: its leaf is only unclaimable, so a participant cannot void everyone's rewards.
    /// @dev Anyone may challenge; never paused. The root's reserve returns to the pool
    /// (unattributed); the round's global model stands.
    function voidRoot(uint256 taskId, uint256 round, RewardLeaf calldata leaf, bytes32[] calldata proof) external {
        Task storage task = _existingTask(taskId);
        RewardRoot storage tree = _rewardRootOf(taskId, round);
        if (block.timestamp >= tree.claimableAt) revert LedgerChallengePeriodOver(taskId, round, tree.claimableAt);
        if (!MerkleProof.verifyCalldata(proof, tree.root, rewardLeafHash(taskId, round, leaf))) {
            revert LedgerLeafProofInvalid(taskId, round, leaf.participant);
        }
        Membership storage m = _members[taskId][leaf.participant];
        VoidReason reason = VoidReason.NotMember;
        // A member when the round opened is no fault of the coordinator even if it left during the
        // round (its leaf is then simply unclaimable): otherwise one leaver could void everyone's rewards.
        uint256 joined = m.joinedRound;
        uint256 left = m.leftRound;
        if (joined != 0 && joined <= round && (left == 0 || left >= round)) {
            if (leaf.index != m.index) reason = VoidReason.IndexMismatch;
            else if (leaf.numExamples > m.datasetSize) reason = VoidReason.ExamplesAboveDataset;
            else revert LedgerChallengeUnfounded(taskId, round, leaf.participant);
        }

        uint256 total = tree.total; // nothing claimed yet: claims start after the challenge period
        tree.voided = true;
        task.attributed -= total;
        task.reserved -= total;
        emit RoundRootVoided(taskId, round, leaf.participant, reason, msg.sender, total);
    }

    /// @notice The reward root committed for round `round` of task `taskId` (zero if none).
    function getRewardRoot(uint256 taskId, uint256 round) external view returns (RewardRoot memory) {
        return _rewardRoots[taskId][round];
    }

    /// @notice Whether the reward leaf at `index` of a round has been claimed.
    function leafClaimed(uint256 taskId, uint256 round, uint256 index) public view returns (bool) {
        return _claimedBitmap[taskId][round][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @notice The StandardMerkleTree hash of a reward leaf of round `round` of task `taskId`:
    /// keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, participant, updateHash,
    /// numExamples, score, amount)))).
    function rewardLeafHash(uint256 taskId, uint256 round, RewardLeaf calldata leaf) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        taskId,
                        round,
                        leaf.index,
                        leaf.participant,
                        leaf.updateHash,
                        leaf.numExamples,
                        leaf.score,
                        leaf.amount
                    )
                )
            )
        );
    }

    function _claimLeaf(
        Task storage task,
        uint256 taskId,
        uint256 round,
        RewardLeaf calldata leaf,
        bytes32[] calldata proof
    ) private {
        RewardRoot storage tree = _rewardRootOf(taskId, round);
        if (block.timestamp < tree.claimableAt) revert LedgerRewardRootInChallenge(taskId, round, tree.claimableAt);
        if (task.status != TaskStatus.Active && block.timestamp > task.claimDeadline) {
            revert LedgerClaimDeadlinePassed(taskId, task.claimDeadline);
        }
        address participant = leaf.participant;
        if (leafClaimed(taskId, round, leaf.index)) revert LedgerLeafAlreadyClaimed(taskId, round, participant);
        bytes32 hash = rewardLeafHash(taskId, round, leaf);
        if (!MerkleProof.verifyCalldata(proof, tree.root, hash)) {
            revert LedgerLeafProofInvalid(taskId, round, participant);
        }
        Membership storage m = _members[taskId][participant];
        if (!_eligible(m, round)) revert LedgerNotEligible(taskId, round, participant);
        if (leaf.index != m.index) revert LedgerLeafIndexMismatch(taskId, participant, m.index, leaf.index);
        if (leaf.numExamples > m.datasetSize) {
            revert LedgerExamplesAboveDataset(taskId, participant, leaf.numExamples, m.datasetSize);
        }
        if (tree.claimedCount >= tree.declaredLeafCount) {
            revert LedgerLeafCountExceeded(taskId, round, tree.declaredLeafCount);
        }
        uint256 paidOut = tree.claimed + leaf.amount;
        if (paidOut > tree.total) revert LedgerRewardRootOverdrawn(taskId, round, tree.total, paidOut);

        _claimedBitmap[taskId][round][leaf.index >> 8] |= 1 << (leaf.index & 0xff);
        tree.claimed = paidOut.toUint128();
        tree.claimedCount += 1;
        if (leaf.amount != 0) {
            task.reserved -= leaf.amount;
            _credit(task.token, participant, leaf.amount);
        }
        emit RewardLeafClaimed(taskId, round, participant, hash, leaf.score, leaf.amount);
    }

    function _rewardRootOf(uint256 taskId, uint256 round) private view returns (RewardRoot storage tree) {
        tree = _rewardRoots[taskId][round];
        if (tree.root == 0) revert LedgerRewardRootUnknown(taskId, round);
        if (tree.voided) revert LedgerRewardRootVoided(taskId, round);
    }

    // ------------------------------------------------------------------ internals

    function _createTask(
        bytes32 specHash,
        bytes32 initialModelHash,
        address token,
        uint256 rewardPerRound,
        TaskTerms memory terms
    ) private whenNotPaused onlyRole(COORDINATOR_ROLE) returns (uint256 taskId) {
        if (specHash == 0 || initialModelHash == 0) revert LedgerZeroHash();
        if (token == address(0)) revert LedgerZeroAddress();
        if (terms.claimPeriod <= terms.challengePeriod) {
            revert LedgerClaimPeriodTooShort(terms.claimPeriod, terms.challengePeriod);
        }
        taskId = ++taskCount;
        Task storage task = _tasks[taskId];
        task.specHash = specHash;
        task.headModelHash = initialModelHash;
        task.token = token;
        task.coordinator = msg.sender;
        task.rewardPerRound = rewardPerRound;
        task.status = TaskStatus.Active;
        task.minRoundDuration = terms.minRoundDuration;
        task.challengePeriod = terms.challengePeriod;
        task.claimPeriod = terms.claimPeriod;
        task.epsilonCap = terms.epsilonCap;
        emit TaskCreated(taskId, msg.sender, specHash, initialModelHash, token, rewardPerRound);
        emit TaskTermsSet(taskId, terms.minRoundDuration, terms.challengePeriod, terms.claimPeriod, terms.epsilonCap);
    }

    /// @dev Ends an active task (its coordinator or the admin), failing a round still open.
    function _end(uint256 taskId, TaskStatus status, string memory reason) private returns (uint256 deadline) {
        Task storage task = _existingTask(taskId);
        bool isCoordinator = task.coordinator == msg.sender && hasRole(COORDINATOR_ROLE, msg.sender);
        if (!isCoordinator && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert LedgerNotTaskCoordinator(taskId, msg.sender);
        }
        if (task.status != TaskStatus.Active) revert LedgerTaskNotActive(taskId);
        deadline = block.timestamp + task.claimPeriod;
        task.status = status;
        task.claimDeadline = deadline.toUint40();
        uint256 last = task.lastRound;
        if (last != 0 && _rounds[taskId][last].state == RoundState.Open) {
            _rounds[taskId][last].state = RoundState.Failed;
            emit RoundFailed(taskId, last, reason);
        }
    }

    function _existingTask(uint256 taskId) private view returns (Task storage task) {
        task = _tasks[taskId];
        if (task.status == TaskStatus.None) revert LedgerTaskUnknown(taskId);
    }

    function _activeTask(uint256 taskId) private view returns (Task storage task) {
        task = _existingTask(taskId);
        if (task.status != TaskStatus.Active) revert LedgerTaskNotActive(taskId);
    }

    function _endedTask(uint256 taskId) private view returns (Task storage task) {
        task = _existingTask(taskId);
        if (task.status == TaskStatus.Active) revert LedgerTaskStillActive(taskId);
    }

    function _funder(uint256 taskId, address account) private view returns (Funder storage f) {
        f = _funders[taskId][account];
        if (f.contributed == 0) revert LedgerNotFunder(taskId, account);
    }

    function _coordinatedTask(uint256 taskId) private view returns (Task storage task) {
        task = _existingTask(taskId);
        if (task.coordinator != msg.sender || !hasRole(COORDINATOR_ROLE, msg.sender)) {
            revert LedgerNotTaskCoordinator(taskId, msg.sender);
        }
    }

    function _openRound(uint256 taskId, uint256 round) private view returns (Round storage r) {
        _existingTask(taskId);
        r = _rounds[taskId][round];
        if (r.state == RoundState.Committed) revert LedgerRoundAlreadyCommitted(taskId, round);
        if (r.state != RoundState.Open) revert LedgerRoundNotOpen(taskId, round);
    }

    /// @dev The open round `round`, old enough to commit: not opened in this block, and open for
    /// at least the task's minRoundDuration. One round per block at most, so no transaction can
    /// run more than one round's budget out of a pool.
    function _committableRound(Task storage task, uint256 taskId, uint256 round) private view returns (Round storage r) {
        r = _openRound(taskId, round);
        if (block.number <= task.roundOpenedBlock) revert LedgerRoundOpenedThisBlock(taskId, round);
        uint256 earliest = uint256(task.roundOpenedAt) + task.minRoundDuration;
        if (block.timestamp < earliest) revert LedgerRoundTooShort(taskId, round, earliest);
    }

    /// @dev The first round not yet committed or failed: the round open now, or the next one.
    function _currentRound(Task storage task, uint256 taskId) private view returns (uint256) {
        uint256 last = task.lastRound;
        if (last != 0 && _rounds[taskId][last].state == RoundState.Open) return last;
        return last + 1;
    }

    function _eligible(Membership storage m, uint256 round) private view returns (bool) {
        uint256 joined = m.joinedRound;
        uint256 left = m.leftRound;
        return joined != 0 && joined <= round && (left == 0 || round < left);
    }

    function _ineligibility(Membership storage m) private view returns (SkipReason) {
        return m.leftRound != 0 ? SkipReason.Left : SkipReason.NotMember;
    }

    function _requireNew(uint256 taskId, address account, Membership storage m) private view {
        if (m.leftRound != 0) revert LedgerMemberLeft(taskId, account, m.leftRound);
        if (m.joinedRound != 0) revert LedgerAlreadyMember(taskId, account);
    }

    function _verifyConsent(uint256 taskId, bytes32 specHash, SignedConsent calldata c) private view {
        bytes32 digest = consentDigest(taskId, specHash, c.datasetSize, c.dataHash);
        // slither-disable-next-line unused-return
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, c.r, c.vs);
        if (err != ECDSA.RecoverError.NoError || signer != c.participant) {
            revert LedgerConsentSignatureInvalid(taskId, c.participant);
        }
    }

    function _join(
        Task storage task,
        uint256 taskId,
        address account,
        Membership storage m,
        uint256 datasetSize,
        bytes32 dataHash,
        bool relayed
    ) private {
        _requireRegistered(account);
        uint256 fromRound = _currentRound(task, taskId);
        uint256 index = task.memberCount;
        m.joinedRound = fromRound.toUint64();
        m.index = index.toUint32();
        m.datasetSize = datasetSize.toUint64();
        m.dataHash = dataHash;
        task.memberCount += 1;
        emit MemberJoined(taskId, account, index, fromRound, datasetSize, dataHash, relayed);
    }

    function _leave(uint256 taskId, address account) private returns (uint256 fromRound) {
        Task storage task = _existingTask(taskId);
        Membership storage m = _members[taskId][account];
        if (m.leftRound != 0) revert LedgerMemberLeft(taskId, account, m.leftRound);
        if (m.joinedRound == 0) revert LedgerNotMember(taskId, account);
        fromRound = _currentRound(task, taskId);
        m.leftRound = fromRound.toUint64();
    }

    /// @dev Checks `total` against the round budget and what is left in the pool, then books it.
    function _reserve(Task storage task, uint256 taskId, uint256 round, uint256 total) private {
        if (total > task.rewardPerRound) revert LedgerRoundBudgetExceeded(taskId, round, total, task.rewardPerRound);
        uint256 available = task.funded - task.attributed;
        if (total > available) revert LedgerPoolInsufficient(taskId, total, available);
        task.attributed += total;
    }

    /// @dev Verifies and records relayed commitments; returns how many were recorded. Ascending
    /// order makes "at most once per round" checkable without storage; direct commitments are
    /// looked up only when the round has any. A valid signature that cannot count is skipped.
    function _recordRelayed(
        Task storage task,
        uint256 taskId,
        uint256 round,
        uint256 directCount,
        SignedCommitment[] calldata cs
    ) private returns (uint256 recorded) {
        uint256 cap = task.epsilonCap;
        address previous = address(0);
        for (uint256 i = 0; i < cs.length; ++i) {
            SignedCommitment calldata c = cs[i];
            address p = c.participant;
            if (p <= previous) {
                if (p == previous) revert LedgerDuplicateCommitment(taskId, round, p);
                revert LedgerCommitmentsUnsorted(i);
            }
            previous = p;
            if (c.updateHash == 0) revert LedgerZeroHash();
            bytes32 digest = commitmentDigest(taskId, round, c.updateHash, c.numExamples, c.epsilon);
            // False positive: the error code is checked on the next line; the third value only
            // details why a malformed signature failed, and any failure is LedgerSignatureInvalid.
            // slither-disable-next-line unused-return
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, c.r, c.vs);
            if (err != ECDSA.RecoverError.NoError || signer != p) revert LedgerSignatureInvalid(taskId, round, p);
            Membership storage m = _members[taskId][p];
            if (directCount != 0 && _directCommitments[taskId][round][p] != 0) {
                emit CommitmentSkipped(taskId, round, p, SkipReason.CommittedDirectly);
            } else if (!_eligible(m, round)) {
                emit CommitmentSkipped(taskId, round, p, _ineligibility(m));
            } else {
                (bool fault, SkipReason reason) = _commitmentFault(m, c, cap);
                if (fault) {
                    emit CommitmentSkipped(taskId, round, p, reason);
                } else {
                    ++recorded;
                    _spend(m, c.epsilon);
                    emit CommitmentRecorded(taskId, round, p, c.updateHash, c.numExamples, true, c.epsilon);
                }
            }
        }
    }

    /// @dev Credits each reward of a counted commitment (merge walk over the two ascending lists)
    /// and checks the round's credited total against the budget and the pool. A reward without
    /// any commitment reverts (the coordinator's error); one whose commitment cannot count is skipped.
    function _attribute(
        Task storage task,
        uint256 taskId,
        uint256 round,
        uint256 directCount,
        SignedCommitment[] calldata cs,
        Reward[] calldata rewards
    ) private returns (uint256 total) {
        address token = task.token;
        uint256 cap = task.epsilonCap;
        address previous = address(0);
        uint256 j = 0;
        for (uint256 i = 0; i < rewards.length; ++i) {
            Reward calldata w = rewards[i];
            address p = w.participant;
            if (p <= previous) revert LedgerRewardsUnsorted(i);
            previous = p;
            while (j < cs.length && cs[j].participant < p) ++j;
            bool relayed = j < cs.length && cs[j].participant == p;
            bool direct = directCount != 0 && _directCommitments[taskId][round][p] != 0;
            if (!relayed && !direct) revert LedgerRewardWithoutCommitment(taskId, round, p);
            Membership storage m = _members[taskId][p];
            if (!_eligible(m, round)) {
                emit RewardSkipped(taskId, round, p, w.amount, _ineligibility(m));
                continue;
            }
            if (!direct) {
                // A recorded commitment set the spend to its own epsilon, so only a skipped one faults here.
                (bool fault, SkipReason reason) = _commitmentFault(m, cs[j], cap);
                if (fault) {
                    emit RewardSkipped(taskId, round, p, w.amount, reason);
                    continue;
                }
            }
            total += w.amount;
            if (w.amount != 0) _credit(token, p, w.amount);
            emit RewardAttributed(taskId, round, p, w.score, w.amount);
        }
        _reserve(task, taskId, round, total);
    }

    /// @dev Why an eligible member's relayed commitment cannot count, if it cannot: more examples
    /// than its dataset, a spend above the task's cap, or a spend below its recorded one.
    function _commitmentFault(Membership storage m, SignedCommitment calldata c, uint256 cap)
        private
        view
        returns (bool, SkipReason)
    {
        if (c.numExamples > m.datasetSize) return (true, SkipReason.ExamplesAboveDataset);
        if (c.epsilon > cap) return (true, SkipReason.EpsilonAboveCap);
        if (c.epsilon < m.epsilonSpent) return (true, SkipReason.EpsilonDecreased);
        return (false, SkipReason.CommittedDirectly); // no fault: the reason is unused
    }

    /// @dev Makes `epsilon` (checked: at most the uint32 cap, at least the recorded spend, so the
    /// cast is exact) the member's spend; written only when it grows, so a task without DP terms
    /// never writes the word.
    function _spend(Membership storage m, uint256 epsilon) private {
        if (epsilon != m.epsilonSpent) m.epsilonSpent = uint32(epsilon);
    }

    function _nonZero(address admin) private pure returns (address) {
        if (admin == address(0)) revert LedgerZeroAddress();
        return admin;
    }
}
