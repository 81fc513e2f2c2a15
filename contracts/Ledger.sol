// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {RewardPool} from "./RewardPool.sol";

/// @title Ledger
/// @notice The on-chain record of a federation: tasks, participants, rounds, the signed commitments
/// of each participant's update, the global model the coordinator committed, its evaluation, and
/// the rewards attributed for each round.
/// @dev Every state change emits an event indexed by task, round and participant, so the whole
/// history can be rebuilt from logs alone. Relayed commitments are verified on chain (EIP-712) and
/// recorded as events only, so a round's gas grows by little more than one signature check per
/// participant. `multicall` (OpenZeppelin) lets the coordinator commit a round and open the next
/// in one transaction: the next round's clients wait for the chain, so one transaction fewer per
/// round is one latency fewer on every round's critical path.
contract Ledger is AccessControl, EIP712, RewardPool, Multicall {
    /// @notice Role that may create tasks, register participants and run rounds.
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    /// @notice Role held by every registered participant that has not withdrawn.
    bytes32 public constant PARTICIPANT_ROLE = keccak256("PARTICIPANT_ROLE");
    /// @dev Admin of PARTICIPANT_ROLE that nobody holds: only `registerParticipant` and
    /// `withdraw` change participants, so each change carries its organisation hash and event.
    bytes32 private constant _LEDGER_ONLY = keccak256("LEDGER_ONLY");
    /// @notice EIP-712 type of a participant's commitment to its update for one round.
    bytes32 public constant COMMITMENT_TYPEHASH =
        keccak256("Commitment(uint256 taskId,uint256 round,bytes32 updateHash,uint256 numExamples)");

    enum ParticipantStatus {
        None,
        Active,
        Withdrawn
    }

    enum RoundState {
        None,
        Open,
        Committed,
        Failed
    }

    struct Task {
        bytes32 specHash;
        bytes32 headModelHash; // the latest committed global model; the initial model before round 1
        address token;
        uint64 lastRound; // the latest round opened, 0 before round 1
        address coordinator;
        uint256 rewardPerRound;
        uint256 funded;
        uint256 attributed;
    }

    struct Participant {
        ParticipantStatus status;
        uint64 registeredAt; // block number
        uint64 withdrawnAt; // block number, 0 while active
        bytes32 orgHash;
    }

    struct Round {
        RoundState state;
        uint32 directCount; // commitments participants submitted themselves
        uint32 commitmentCount; // all commitments, set when committed
        bytes32 parentModelHash;
        bytes32 globalModelHash;
    }

    /// @notice A participant's commitment, signed with its own key and relayed by the coordinator.
    /// @dev The signature is in EIP-2098 compact form (r, yParityAndS).
    struct SignedCommitment {
        address participant;
        bytes32 updateHash;
        uint256 numExamples;
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
    mapping(address account => Participant) private _participants;
    mapping(uint256 taskId => mapping(uint256 round => Round)) private _rounds;
    mapping(uint256 taskId => mapping(uint256 round => mapping(address participant => bytes32 updateHash)))
        private _directCommitments;

    /// @notice A coordinator created task `taskId`.
    event TaskCreated(
        uint256 indexed taskId,
        address indexed coordinator,
        bytes32 specHash,
        bytes32 initialModelHash,
        address token,
        uint256 rewardPerRound
    );
    /// @notice A coordinator registered `participant` with its organisation metadata hash.
    event ParticipantRegistered(address indexed participant, address indexed registrar, bytes32 orgHash);
    /// @notice `participant` withdrew its consent: its commitments are refused from now on.
    event ParticipantWithdrew(address indexed participant);
    /// @notice Round `round` of task `taskId` opened on top of `parentModelHash`.
    event RoundOpened(uint256 indexed taskId, uint256 indexed round, bytes32 parentModelHash);
    /// @notice `participant` committed to its update for a round, relayed by the coordinator or directly.
    event CommitmentRecorded(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed participant,
        bytes32 updateHash,
        uint256 numExamples,
        bool relayed
    );
    /// @notice `participant` was scored `score` and earned `amount` for a round.
    event RewardAttributed(
        uint256 indexed taskId, uint256 indexed round, address indexed participant, int256 score, uint256 amount
    );
    /// @notice Round `round` of task `taskId` was committed with its global model and evaluation.
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
    /// @notice Round `round` of task `taskId` was closed without a model (too few valid updates, say).
    event RoundFailed(uint256 indexed taskId, uint256 indexed round, string reason);

    error LedgerZeroHash();
    error LedgerZeroAddress();
    error LedgerTaskUnknown(uint256 taskId);
    error LedgerNotTaskCoordinator(uint256 taskId, address account);
    error LedgerParticipantAlreadyRegistered(address account);
    error LedgerParticipantNotRegistered(address account);
    error LedgerParticipantWithdrawn(address account);
    error LedgerRoundOutOfOrder(uint256 taskId, uint256 expected, uint256 got);
    error LedgerRoundStillOpen(uint256 taskId, uint256 round);
    error LedgerParentMismatch(uint256 taskId, uint256 round, bytes32 expected, bytes32 got);
    error LedgerRoundNotOpen(uint256 taskId, uint256 round);
    error LedgerRoundAlreadyCommitted(uint256 taskId, uint256 round);
    error LedgerSignatureInvalid(uint256 taskId, uint256 round, address participant);
    error LedgerDuplicateCommitment(uint256 taskId, uint256 round, address participant);
    error LedgerCommitmentsUnsorted(uint256 index);
    error LedgerRewardsUnsorted(uint256 index);
    error LedgerRewardWithoutCommitment(uint256 taskId, uint256 round, address participant);
    error LedgerRoundBudgetExceeded(uint256 taskId, uint256 round, uint256 total, uint256 budget);
    error LedgerPoolInsufficient(uint256 taskId, uint256 needed, uint256 available);
    error LedgerLengthMismatch(uint256 accounts, uint256 orgHashes);

    /// @param admin Account given DEFAULT_ADMIN_ROLE and COORDINATOR_ROLE.
    constructor(address admin) EIP712("fedchain", "1") {
        if (admin == address(0)) revert LedgerZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(COORDINATOR_ROLE, admin);
        _setRoleAdmin(PARTICIPANT_ROLE, _LEDGER_ONLY);
    }

    // ------------------------------------------------------------------ tasks

    /// @notice Creates a task; the caller becomes its coordinator.
    /// @param specHash SHA-256 of the canonical task spec.
    /// @param initialModelHash SHA-256 of the initial global model, the parent of round 1.
    /// @param token ERC-20 the rewards are paid in.
    /// @param rewardPerRound Most tokens one round may attribute.
    /// @return taskId The new task's id.
    function createTask(bytes32 specHash, bytes32 initialModelHash, address token, uint256 rewardPerRound)
        external
        onlyRole(COORDINATOR_ROLE)
        returns (uint256 taskId)
    {
        if (specHash == 0 || initialModelHash == 0) revert LedgerZeroHash();
        if (token == address(0)) revert LedgerZeroAddress();
        taskId = ++taskCount;
        Task storage task = _tasks[taskId];
        task.specHash = specHash;
        task.headModelHash = initialModelHash;
        task.token = token;
        task.coordinator = msg.sender;
        task.rewardPerRound = rewardPerRound;
        emit TaskCreated(taskId, msg.sender, specHash, initialModelHash, token, rewardPerRound);
    }

    /// @notice Moves `amount` reward tokens from the caller into task `taskId`'s pool.
    /// @dev The caller must have approved the ledger for `amount` first. Anyone may fund a task.
    function fundTask(uint256 taskId, uint256 amount) external nonReentrant {
        Task storage task = _existingTask(taskId);
        _pullFunds(task.token, msg.sender, amount);
        task.funded += amount;
        emit TaskFunded(taskId, msg.sender, amount);
    }

    /// @notice The stored record of task `taskId`.
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _tasks[taskId];
    }

    // ------------------------------------------------------------------ participants

    /// @notice Registers `account` as a participant with its organisation metadata hash.
    /// @dev A withdrawn participant cannot be registered again: consent withdrawn is final.
    function registerParticipant(address account, bytes32 orgHash) external onlyRole(COORDINATOR_ROLE) {
        _register(account, orgHash);
    }

    function _register(address account, bytes32 orgHash) private {
        if (account == address(0)) revert LedgerZeroAddress();
        Participant storage p = _participants[account];
        if (p.status == ParticipantStatus.Active) revert LedgerParticipantAlreadyRegistered(account);
        if (p.status == ParticipantStatus.Withdrawn) revert LedgerParticipantWithdrawn(account);
        p.status = ParticipantStatus.Active;
        p.registeredAt = uint64(block.number);
        p.orgHash = orgHash;
        _grantRole(PARTICIPANT_ROLE, account);
        emit ParticipantRegistered(account, msg.sender, orgHash);
    }

    /// @notice Registers several participants in one transaction (a consortium's founding members).
    /// @dev Bounded by the caller's own calldata; each entry is checked as in `registerParticipant`.
    function registerParticipants(address[] calldata accounts, bytes32[] calldata orgHashes)
        external
        onlyRole(COORDINATOR_ROLE)
    {
        if (accounts.length != orgHashes.length) revert LedgerLengthMismatch(accounts.length, orgHashes.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            _register(accounts[i], orgHashes[i]);
        }
    }

    /// @notice Withdraws the caller's consent: its commitments are refused from now on.
    /// @dev Rewards already attributed stay claimable.
    function withdraw() external {
        _withdraw(msg.sender);
    }

    /// @dev Renouncing PARTICIPANT_ROLE is a withdrawal, so it is recorded as one.
    function renounceRole(bytes32 role, address callerConfirmation) public override {
        if (role == PARTICIPANT_ROLE && callerConfirmation == msg.sender) {
            _withdraw(msg.sender);
        } else {
            super.renounceRole(role, callerConfirmation);
        }
    }

    /// @notice The stored record of `account` as a participant.
    function getParticipant(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    /// @notice The stored records of several participants in one call (a round's replies).
    function getParticipants(address[] calldata accounts) external view returns (Participant[] memory records) {
        records = new Participant[](accounts.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            records[i] = _participants[accounts[i]];
        }
    }

    // ------------------------------------------------------------------ rounds

    /// @notice Opens the next round of task `taskId` on top of the latest committed global model.
    function openRound(uint256 taskId, uint256 round, bytes32 parentModelHash) external {
        Task storage task = _coordinatedTask(taskId);
        uint256 last = task.lastRound;
        if (round != last + 1) revert LedgerRoundOutOfOrder(taskId, last + 1, round);
        if (last != 0 && _rounds[taskId][last].state == RoundState.Open) revert LedgerRoundStillOpen(taskId, last);
        if (parentModelHash != task.headModelHash) {
            revert LedgerParentMismatch(taskId, round, task.headModelHash, parentModelHash);
        }
        task.lastRound = uint64(round);
        Round storage r = _rounds[taskId][round];
        r.state = RoundState.Open;
        r.parentModelHash = parentModelHash;
        emit RoundOpened(taskId, round, parentModelHash);
    }

    /// @notice Records the caller's own commitment for an open round (no coordinator needed).
    function submitCommitment(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples) external {
        Round storage r = _openRound(taskId, round);
        if (updateHash == 0) revert LedgerZeroHash();
        _requireActive(msg.sender);
        if (_directCommitments[taskId][round][msg.sender] != 0) {
            revert LedgerDuplicateCommitment(taskId, round, msg.sender);
        }
        _directCommitments[taskId][round][msg.sender] = updateHash;
        r.directCount += 1;
        emit CommitmentRecorded(taskId, round, msg.sender, updateHash, numExamples, false);
    }

    /// @notice Closes an open round with the relayed commitments, the global model, its evaluation
    /// and the rewards, in one transaction.
    /// @param commitments Signed commitments, strictly ascending by participant address.
    /// @param outcome The aggregated global model's hash and evaluation.
    /// @param rewards Scores and amounts, strictly ascending by participant; each participant must
    /// have a commitment in this round.
    function commitRound(
        uint256 taskId,
        uint256 round,
        SignedCommitment[] calldata commitments,
        RoundOutcome calldata outcome,
        Reward[] calldata rewards
    ) external {
        Task storage task = _coordinatedTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.state == RoundState.Committed) revert LedgerRoundAlreadyCommitted(taskId, round);
        if (r.state != RoundState.Open) revert LedgerRoundNotOpen(taskId, round);
        if (outcome.globalModelHash == 0) revert LedgerZeroHash();

        _recordRelayed(taskId, round, r.directCount, commitments);
        uint256 total = _attribute(task, taskId, round, commitments, rewards);

        r.state = RoundState.Committed;
        r.globalModelHash = outcome.globalModelHash;
        uint256 count = commitments.length + r.directCount;
        r.commitmentCount = uint32(count);
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
    }

    /// @notice Closes an open round without a model; the next round builds on the same parent.
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
    function commitmentDigest(uint256 taskId, uint256 round, bytes32 updateHash, uint256 numExamples)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(COMMITMENT_TYPEHASH, taskId, round, updateHash, numExamples)));
    }

    // ------------------------------------------------------------------ merkle commit mode
    //
    // A round of a large federation is committed by one Merkle root over its reward leaves
    // (participant, updateHash, numExamples, score, amount), so its gas does not depend on the
    // number of participants: no per-participant event or storage at commit. The leaves, their
    // proofs and the participants' signed commitments are published off chain (the record whose
    // SHA-256 is `recordHash`); each participant later proves its leaf to be credited its reward.
    // The tree is OpenZeppelin's StandardMerkleTree (double-hashed ABI-encoded leaves, sorted pairs).

    /// @notice One leaf of a round's reward tree: a participant's commitment, score and reward.
    struct RewardLeaf {
        address participant;
        bytes32 updateHash;
        uint256 numExamples;
        int256 score; // fixed point, 1e6 = 1.0
        uint256 amount;
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
        uint32 leafCount;
        uint256 totalReward; // sum of the leaves' amounts
    }

    /// @notice A committed reward root and how much of its total has been claimed.
    struct RewardRoot {
        bytes32 root;
        uint256 total;
        uint256 claimed;
    }

    mapping(uint256 taskId => mapping(uint256 round => RewardRoot)) private _rewardRoots;
    mapping(uint256 taskId => mapping(uint256 round => mapping(bytes32 leaf => bool))) private _leafClaimed;

    /// @notice Round `round` of task `taskId` was committed by the root of its reward tree; its
    /// published record (leaves, proofs, signed commitments) hashes to `recordHash`.
    event RoundRootCommitted(
        uint256 indexed taskId,
        uint256 indexed round,
        bytes32 root,
        bytes32 recordHash,
        uint256 leafCount,
        uint256 totalReward
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

    /// @notice Round `round` of task `taskId` has no reward root: it is not committed in merkle mode.
    error LedgerRewardRootUnknown(uint256 taskId, uint256 round);
    /// @notice The reward leaf of `participant` for this round was claimed already.
    error LedgerLeafAlreadyClaimed(uint256 taskId, uint256 round, address participant);
    /// @notice The proof does not lead from `participant`'s leaf to the round's reward root.
    error LedgerLeafProofInvalid(uint256 taskId, uint256 round, address participant);
    /// @notice Claims of the round would credit `claimed`, more than the `total` committed with its root.
    error LedgerRewardRootOverdrawn(uint256 taskId, uint256 round, uint256 total, uint256 claimed);

    /// @notice Closes an open round in merkle mode: the global model, its evaluation and the root
    /// of the round's reward leaves, in one transaction of constant gas.
    /// @dev The leaves are not on chain, so their sum cannot be checked here: `tree.totalReward`
    /// is checked against the round budget and the pool and reserved from it, and claims of the
    /// round can never credit more than it (`LedgerRewardRootOverdrawn`). An auditor rebuilds the
    /// root and the total from the published record.
    /// @param tree The root, the published record's hash, the number of leaves and their total.
    /// @param outcome The aggregated global model's hash and evaluation.
    function commitRoundRoot(uint256 taskId, uint256 round, RoundRoot calldata tree, RoundOutcome calldata outcome)
        external
    {
        Task storage task = _coordinatedTask(taskId);
        Round storage r = _rounds[taskId][round];
        if (r.state == RoundState.Committed) revert LedgerRoundAlreadyCommitted(taskId, round);
        if (r.state != RoundState.Open) revert LedgerRoundNotOpen(taskId, round);
        if (outcome.globalModelHash == 0 || tree.root == 0) revert LedgerZeroHash();
        uint256 total = tree.totalReward;
        if (total > task.rewardPerRound) revert LedgerRoundBudgetExceeded(taskId, round, total, task.rewardPerRound);
        uint256 available = task.funded - task.attributed;
        if (total > available) revert LedgerPoolInsufficient(taskId, total, available);

        task.attributed += total;
        _rewardRoots[taskId][round] = RewardRoot({root: tree.root, total: total, claimed: 0});
        r.state = RoundState.Committed;
        r.globalModelHash = outcome.globalModelHash;
        r.commitmentCount = tree.leafCount;
        task.headModelHash = outcome.globalModelHash;
        emit RoundRootCommitted(taskId, round, tree.root, tree.recordHash, tree.leafCount, total);
        emit RoundCommitted(
            taskId,
            round,
            outcome.globalModelHash,
            outcome.accuracyPpm,
            outcome.lossPpm,
            outcome.scoringHash,
            tree.leafCount,
            total
        );
    }

    /// @notice Proves `leaf` against round `round`'s reward root and credits its amount to the
    /// leaf's participant, who pulls it with `claim(token)`.
    /// @dev Anyone may submit a proof (a relayer, say); the tokens only ever go to the leaf's
    /// participant. Each leaf is credited once.
    /// @param proof The leaf's StandardMerkleTree proof (sibling hashes, leaf to root).
    function claimLeaf(uint256 taskId, uint256 round, RewardLeaf calldata leaf, bytes32[] calldata proof) external {
        _claimLeaf(_existingTask(taskId).token, taskId, round, leaf, proof);
    }

    /// @notice `claimLeaf` for several rounds in one transaction.
    /// @dev Bounded by the caller's own calldata.
    function claimLeaves(uint256 taskId, LeafClaim[] calldata claims) external {
        address token = _existingTask(taskId).token;
        for (uint256 i = 0; i < claims.length; ++i) {
            _claimLeaf(token, taskId, claims[i].round, claims[i].leaf, claims[i].proof);
        }
    }

    /// @notice The reward root committed for round `round` of task `taskId` (zero if none).
    function getRewardRoot(uint256 taskId, uint256 round) external view returns (RewardRoot memory) {
        return _rewardRoots[taskId][round];
    }

    /// @notice Whether the reward leaf with hash `leaf` of a round has been claimed.
    function leafClaimed(uint256 taskId, uint256 round, bytes32 leaf) external view returns (bool) {
        return _leafClaimed[taskId][round][leaf];
    }

    /// @notice The StandardMerkleTree hash of a reward leaf:
    /// keccak256(bytes.concat(keccak256(abi.encode(participant, updateHash, numExamples, score, amount)))).
    function rewardLeafHash(RewardLeaf calldata leaf) public pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                keccak256(abi.encode(leaf.participant, leaf.updateHash, leaf.numExamples, leaf.score, leaf.amount))
            )
        );
    }

    function _claimLeaf(
        address token,
        uint256 taskId,
        uint256 round,
        RewardLeaf calldata leaf,
        bytes32[] calldata proof
    ) private {
        RewardRoot storage tree = _rewardRoots[taskId][round];
        bytes32 root = tree.root;
        if (root == 0) revert LedgerRewardRootUnknown(taskId, round);
        bytes32 hash = rewardLeafHash(leaf);
        if (_leafClaimed[taskId][round][hash]) revert LedgerLeafAlreadyClaimed(taskId, round, leaf.participant);
        if (!MerkleProof.verifyCalldata(proof, root, hash)) {
            revert LedgerLeafProofInvalid(taskId, round, leaf.participant);
        }
        uint256 paidOut = tree.claimed + leaf.amount;
        if (paidOut > tree.total) revert LedgerRewardRootOverdrawn(taskId, round, tree.total, paidOut);
        _leafClaimed[taskId][round][hash] = true;
        tree.claimed = paidOut;
        if (leaf.amount != 0) _credit(token, leaf.participant, leaf.amount);
        emit RewardLeafClaimed(taskId, round, leaf.participant, hash, leaf.score, leaf.amount);
    }

    // ------------------------------------------------------------------ internals

    function _existingTask(uint256 taskId) private view returns (Task storage task) {
        task = _tasks[taskId];
        if (task.specHash == 0) revert LedgerTaskUnknown(taskId);
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

    function _requireActive(address account) private view {
        if (hasRole(PARTICIPANT_ROLE, account)) return;
        if (_participants[account].status == ParticipantStatus.Withdrawn) revert LedgerParticipantWithdrawn(account);
        revert LedgerParticipantNotRegistered(account);
    }

    function _withdraw(address account) private {
        Participant storage p = _participants[account];
        if (p.status != ParticipantStatus.Active) revert LedgerParticipantNotRegistered(account);
        p.status = ParticipantStatus.Withdrawn;
        p.withdrawnAt = uint64(block.number);
        _revokeRole(PARTICIPANT_ROLE, account);
        emit ParticipantWithdrew(account);
    }

    /// @dev Verifies and records relayed commitments. Ascending order makes "at most once per round"
    /// checkable without storage; direct commitments are looked up only when the round has any.
    function _recordRelayed(uint256 taskId, uint256 round, uint256 directCount, SignedCommitment[] calldata cs)
        private
    {
        address previous = address(0);
        for (uint256 i = 0; i < cs.length; ++i) {
            SignedCommitment calldata c = cs[i];
            if (c.participant <= previous) {
                if (c.participant == previous) revert LedgerDuplicateCommitment(taskId, round, c.participant);
                revert LedgerCommitmentsUnsorted(i);
            }
            previous = c.participant;
            if (c.updateHash == 0) revert LedgerZeroHash();
            bytes32 digest = commitmentDigest(taskId, round, c.updateHash, c.numExamples);
            // False positive: the error code is checked on the next line; the third value only
            // details why a malformed signature failed, and any failure is LedgerSignatureInvalid.
            // slither-disable-next-line unused-return
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, c.r, c.vs);
            if (err != ECDSA.RecoverError.NoError || signer != c.participant) {
                revert LedgerSignatureInvalid(taskId, round, c.participant);
            }
            _requireActive(c.participant);
            if (directCount != 0 && _directCommitments[taskId][round][c.participant] != 0) {
                revert LedgerDuplicateCommitment(taskId, round, c.participant);
            }
            emit CommitmentRecorded(taskId, round, c.participant, c.updateHash, c.numExamples, true);
        }
    }

    /// @dev Credits each reward after checking it has a commitment this round (merge walk over the
    /// two ascending lists) and that the round's total stays within the budget and the pool.
    function _attribute(
        Task storage task,
        uint256 taskId,
        uint256 round,
        SignedCommitment[] calldata cs,
        Reward[] calldata rewards
    ) private returns (uint256 total) {
        address token = task.token;
        address previous = address(0);
        uint256 j = 0;
        for (uint256 i = 0; i < rewards.length; ++i) {
            Reward calldata w = rewards[i];
            if (w.participant <= previous) revert LedgerRewardsUnsorted(i);
            previous = w.participant;
            while (j < cs.length && cs[j].participant < w.participant) ++j;
            bool relayed = j < cs.length && cs[j].participant == w.participant;
            if (!relayed && _directCommitments[taskId][round][w.participant] == 0) {
                revert LedgerRewardWithoutCommitment(taskId, round, w.participant);
            }
            total += w.amount;
            if (w.amount != 0) _credit(token, w.participant, w.amount);
            emit RewardAttributed(taskId, round, w.participant, w.score, w.amount);
        }
        if (total > task.rewardPerRound) revert LedgerRoundBudgetExceeded(taskId, round, total, task.rewardPerRound);
        uint256 available = task.funded - task.attributed;
        if (total > available) revert LedgerPoolInsufficient(taskId, total, available);
        task.attributed += total;
    }
}
