"""Chain errors: one typed exception per contract custom error, plus reachability and keystores.

A revert is decoded from its 4-byte selector into the class named after the contract's custom error
(``LedgerRoundAlreadyCommitted`` and so on), carrying the decoded arguments and a message that says
what to do next.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fedchain.errors import FedchainError

__all__ = [
    "REVERT_ERRORS",
    "AccessControlEnforcedDefaultAdminDelay",
    "AccessControlEnforcedDefaultAdminRules",
    "AccessControlInvalidDefaultAdmin",
    "AccessControlUnauthorizedAccount",
    "ChainError",
    "ChainReset",
    "ChainUnreachable",
    "ContractRevert",
    "DeploymentError",
    "ERC20InsufficientAllowance",
    "ERC20InsufficientBalance",
    "EnforcedPause",
    "ExpectedPause",
    "InsufficientGas",
    "KeystoreError",
    "LedgerAlreadyMember",
    "LedgerChallengePeriodOver",
    "LedgerChallengeUnfounded",
    "LedgerClaimDeadlinePassed",
    "LedgerClaimPeriodNotOver",
    "LedgerClaimPeriodTooShort",
    "LedgerCommitmentsUnsorted",
    "LedgerConsentSignatureInvalid",
    "LedgerDuplicateCommitment",
    "LedgerEpsilonAboveCap",
    "LedgerEpsilonDecreased",
    "LedgerExamplesAboveDataset",
    "LedgerLeafAlreadyClaimed",
    "LedgerLeafCountAboveMembers",
    "LedgerLeafCountExceeded",
    "LedgerLeafIndexMismatch",
    "LedgerLeafProofInvalid",
    "LedgerMemberLeft",
    "LedgerNotCoordinator",
    "LedgerNotEligible",
    "LedgerNotFunder",
    "LedgerNotMember",
    "LedgerNotTaskCoordinator",
    "LedgerParentMismatch",
    "LedgerPoolInsufficient",
    "LedgerRewardRootInChallenge",
    "LedgerRewardRootOverdrawn",
    "LedgerRewardRootUnknown",
    "LedgerRewardRootVoided",
    "LedgerRewardWithoutCommitment",
    "LedgerRewardsUnsorted",
    "LedgerRoundAlreadyCommitted",
    "LedgerRoundBudgetExceeded",
    "LedgerRoundNotOpen",
    "LedgerRoundOpenedThisBlock",
    "LedgerRoundOutOfOrder",
    "LedgerRoundStillOpen",
    "LedgerRoundTooShort",
    "LedgerSignatureInvalid",
    "LedgerSpecMismatch",
    "LedgerTaskNotActive",
    "LedgerTaskStillActive",
    "LedgerTaskUnknown",
    "LedgerZeroAddress",
    "LedgerZeroHash",
    "OrganisationRegistryNameEmpty",
    "OrganisationRegistryNotRegistered",
    "OrganisationRegistryRevoked",
    "OrganisationRegistryZeroAddress",
    "OrganisationRegistryZeroHash",
    "RewardPoolTransferShort",
    "RewardPoolZeroAmount",
    "SafeCastOverflowedUintDowncast",
    "SignatureError",
    "TransactionFailed",
]


class ChainError(FedchainError):
    """Root of the errors raised while talking to a chain."""


class ChainUnreachable(ChainError, ConnectionError):
    """No node answered at the RPC URL."""

    def __init__(self, url: str, cause: object = None) -> None:
        self.url = url
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"no chain at {url}{detail}: start one with `fedchain devnet` or drop --rpc-url "
            "to use the embedded chain"
        )


class ChainReset(ChainError, ConnectionError):
    """The node lost transactions it had already mined (it restarted from an older state).

    The writes queued since are sent again (each is recognised as done where the chain still
    holds it); raised to a caller only when that does not settle it.
    """

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(
            f"the node at {url} lost transactions it had mined ({detail}): it restarted from an "
            "older state; the lost writes are sent again. If this repeats, give the node a "
            "state file that is saved more often (anvil: --state-interval)"
        )


class DeploymentError(ChainError, ValueError):
    """A deployment file is missing, malformed, or does not match the chain it names."""


class KeystoreError(ChainError, ValueError):
    """A keystore cannot be read or decrypted, or its password is missing."""


class SignatureError(ChainError, ValueError):
    """A signature is malformed: no signer can be recovered from it."""


class RecordError(ChainError, ValueError):
    """A ledger record (hash, commitment, outcome, reward) is out of its on-chain range."""


class EventDecodeError(ChainError, ValueError):
    """A contract event cannot be decoded from its log."""


class CallArgumentsError(ChainError, TypeError):
    """A contract call was given its arguments in a form the encoder does not take."""


class WriteSkipped(ChainError, RuntimeError):
    """A queued ledger write was not sent because an earlier one failed."""


class TransactionFailed(ChainError, RuntimeError):
    """A transaction was mined but failed, or reverted without a known reason."""


class InsufficientGas(TransactionFailed):
    """The sending account cannot pay for the transaction's gas."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(
            f"{address} has too little of the chain's currency to pay for gas: send it some "
            f"(`fedchain account fund {address} --keystore FUNDER.json`), then try again"
        )


class ContractRevert(ChainError, RuntimeError):
    """A contract call reverted with a custom error; subclasses are named after it."""

    #: Names of the custom error's arguments, in ABI order.
    fields: ClassVar[tuple[str, ...]] = ()
    #: What to do about it; formatted with the decoded arguments.
    hint: ClassVar[str] = ""

    def __init__(self, **arguments: Any) -> None:
        self.arguments = arguments
        shown = ", ".join(f"{k}={_show(v)}" for k, v in arguments.items())
        message = f"{type(self).__name__}({shown})"
        if self.hint:
            message += ": " + self.hint.format(**{k: _show(v) for k, v in arguments.items()})
        super().__init__(message)


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


class LedgerZeroHash(ContractRevert):
    hint = "a spec, model or update hash was zero: hash the real content (fedchain.hashing)"


class LedgerZeroAddress(ContractRevert):
    hint = "an address was zero: pass a real account or token address"


class LedgerTaskUnknown(ContractRevert):
    fields = ("taskId",)
    hint = "no task {taskId} on this ledger: check the task id and the deployment file"


class LedgerNotTaskCoordinator(ContractRevert):
    fields = ("taskId", "account")
    hint = "{account} is not the coordinator of task {taskId}: use the key that created the task"


class LedgerRoundOutOfOrder(ContractRevert):
    fields = ("taskId", "expected", "got")
    hint = "task {taskId} expects round {expected} next, not {got}: rounds are strictly sequential"


class LedgerRoundStillOpen(ContractRevert):
    fields = ("taskId", "round")
    hint = "round {round} of task {taskId} is still open: commit or fail it first"


class LedgerParentMismatch(ContractRevert):
    fields = ("taskId", "round", "expected", "got")
    hint = (
        "round {round} of task {taskId} must build on {expected}, not {got}: load the latest "
        "committed global model"
    )


class LedgerRoundNotOpen(ContractRevert):
    fields = ("taskId", "round")
    hint = "round {round} of task {taskId} is not open: open it first"


class LedgerRoundAlreadyCommitted(ContractRevert):
    fields = ("taskId", "round")
    hint = "round {round} of task {taskId} is already committed: it cannot change"


class LedgerSignatureInvalid(ContractRevert):
    fields = ("taskId", "round", "participant")
    hint = (
        "the commitment of {participant} for round {round} of task {taskId} is not signed by it "
        "for this round, task, chain and contract: drop that reply"
    )


class LedgerDuplicateCommitment(ContractRevert):
    fields = ("taskId", "round", "participant")
    hint = "{participant} already committed in round {round} of task {taskId}: relay it once"


class LedgerCommitmentsUnsorted(ContractRevert):
    fields = ("index",)
    hint = "relayed commitments must be sorted by participant address (entry {index} is not)"


class LedgerRewardsUnsorted(ContractRevert):
    fields = ("index",)
    hint = "rewards must be sorted by participant address without repeats (entry {index} is not)"


class LedgerRewardWithoutCommitment(ContractRevert):
    fields = ("taskId", "round", "participant")
    hint = (
        "{participant} has no commitment in round {round} of task {taskId}: it cannot be rewarded"
    )


class LedgerRoundBudgetExceeded(ContractRevert):
    fields = ("taskId", "round", "total", "budget")
    hint = "rewards of round {round} total {total}, above the task's round budget {budget}"


class LedgerPoolInsufficient(ContractRevert):
    fields = ("taskId", "needed", "available")
    hint = "task {taskId}'s pool holds {available}, {needed} needed: fund it with `fundTask`"


class LedgerRewardRootUnknown(ContractRevert):
    fields = ("taskId", "round")
    hint = (
        "round {round} of task {taskId} has no reward root (not committed in merkle mode): "
        "check the round number of the proof"
    )


class LedgerLeafAlreadyClaimed(ContractRevert):
    fields = ("taskId", "round", "participant")
    hint = "the reward of {participant} for round {round} of task {taskId} was claimed already"


class LedgerLeafProofInvalid(ContractRevert):
    fields = ("taskId", "round", "participant")
    hint = (
        "the proof of {participant}'s reward leaf does not match the root of round {round} of "
        "task {taskId}: use the leaf and proof published with the run (rounds/<round>.json)"
    )


class LedgerRewardRootOverdrawn(ContractRevert):
    fields = ("taskId", "round", "total", "claimed")
    hint = (
        "claims of round {round} of task {taskId} would reach {claimed}, above the {total} "
        "committed: the coordinator's tree and total disagree; run `fedchain audit`"
    )


class LedgerTaskNotActive(ContractRevert):
    fields = ("taskId",)
    hint = "task {taskId} was closed or cancelled: no new funding, members or rounds"


class LedgerTaskStillActive(ContractRevert):
    fields = ("taskId",)
    hint = (
        "task {taskId} is still active: refunds and sweeps start once its coordinator closes it "
        "(`fedchain task close`)"
    )


class LedgerNotCoordinator(ContractRevert):
    fields = ("account",)
    hint = "{account} does not hold COORDINATOR_ROLE: grant it before handing it a task"


class LedgerClaimPeriodTooShort(ContractRevert):
    fields = ("claimPeriod", "challengePeriod")
    hint = "the claim period {claimPeriod} s must exceed the challenge period {challengePeriod} s"


class LedgerSpecMismatch(ContractRevert):
    fields = ("taskId", "expected", "got")
    hint = (
        "task {taskId}'s spec hash is {expected}, not {got}: check the task id, or consent to the "
        "spec the task was created with"
    )


class LedgerConsentSignatureInvalid(ContractRevert):
    fields = ("taskId", "participant")
    hint = (
        "the consent of {participant} to task {taskId} is not signed by it for this task, spec, "
        "dataset size, data hash, chain and contract: have it sign again"
    )


class LedgerAlreadyMember(ContractRevert):
    fields = ("taskId", "account")
    hint = "{account} is a member of task {taskId} already: nothing to do"


class LedgerNotMember(ContractRevert):
    fields = ("taskId", "account")
    hint = "{account} never joined task {taskId}: it joins with `fedchain task join`"


class LedgerMemberLeft(ContractRevert):
    fields = ("taskId", "account", "leftRound")
    hint = (
        "{account} left task {taskId} from round {leftRound}: leaving is final for a task "
        "(a signed consent cannot be replayed); it may join other tasks"
    )


class LedgerNotEligible(ContractRevert):
    fields = ("taskId", "round", "account")
    hint = (
        "{account} is not an eligible member of task {taskId} for round {round}: it must join "
        "the task (`fedchain task join`) before the round, and not have left it"
    )


class LedgerExamplesAboveDataset(ContractRevert):
    fields = ("taskId", "account", "numExamples", "datasetSize")
    hint = (
        "{account} claims {numExamples} examples, above the dataset size {datasetSize} it "
        "consented to in task {taskId}: refuse that commitment"
    )


class LedgerEpsilonAboveCap(ContractRevert):
    fields = ("taskId", "account", "epsilon", "cap")
    hint = (
        "{account} committed a privacy spend of {epsilon} micro-epsilon, above task {taskId}'s "
        "cap of {cap} (0: the task has no DP terms): it must not train past its cap"
    )


class LedgerEpsilonDecreased(ContractRevert):
    fields = ("taskId", "account", "epsilon", "spent")
    hint = (
        "{account} committed a privacy spend of {epsilon} micro-epsilon in task {taskId}, below "
        "the {spent} it has on record: a spend only grows; commit the cumulative epsilon"
    )


class LedgerRoundOpenedThisBlock(ContractRevert):
    fields = ("taskId", "round")
    hint = (
        "round {round} of task {taskId} was opened in this block: commit it in a later "
        "transaction (one round per block at most)"
    )


class LedgerRoundTooShort(ContractRevert):
    fields = ("taskId", "round", "earliestCommit")
    hint = (
        "round {round} of task {taskId} is younger than the task's minimum round duration: "
        "commit it from timestamp {earliestCommit} on"
    )


class LedgerNotFunder(ContractRevert):
    fields = ("taskId", "account")
    hint = "{account} never funded task {taskId}: only funders are refunded"


class LedgerClaimPeriodNotOver(ContractRevert):
    fields = ("taskId", "claimDeadline")
    hint = "unproven rewards of task {taskId} can be swept after its claim deadline {claimDeadline}"


class LedgerRewardRootVoided(ContractRevert):
    fields = ("taskId", "round")
    hint = (
        "the reward root of round {round} of task {taskId} was voided by a challenge: its "
        "leaves pay nothing; the reserve went back to the pool"
    )


class LedgerRewardRootInChallenge(ContractRevert):
    fields = ("taskId", "round", "claimableAt")
    hint = (
        "the reward root of round {round} of task {taskId} is in its challenge period: claim "
        "from timestamp {claimableAt} on"
    )


class LedgerChallengePeriodOver(ContractRevert):
    fields = ("taskId", "round", "claimableAt")
    hint = (
        "the challenge period of round {round} of task {taskId} ended at {claimableAt}: the root "
        "can no longer be voided (a faulty leaf is still refused at claim time)"
    )


class LedgerChallengeUnfounded(ContractRevert):
    fields = ("taskId", "round", "participant")
    hint = "the leaf of {participant} in round {round} of task {taskId} is valid: nothing to void"


class LedgerClaimDeadlinePassed(ContractRevert):
    fields = ("taskId", "claimDeadline")
    hint = (
        "task {taskId}'s claim deadline {claimDeadline} passed: unproven leaves are now swept "
        "to the funders"
    )


class LedgerLeafIndexMismatch(ContractRevert):
    fields = ("taskId", "participant", "expected", "got")
    hint = (
        "the leaf of {participant} carries index {got}, its member index in task {taskId} is "
        "{expected}: the coordinator's tree is wrong; run `fedchain audit`"
    )


class LedgerLeafCountExceeded(ContractRevert):
    fields = ("taskId", "round", "declaredLeafCount")
    hint = (
        "all {declaredLeafCount} declared leaves of round {round} of task {taskId} are claimed: "
        "the tree holds more leaves than declared; run `fedchain audit`"
    )


class LedgerLeafCountAboveMembers(ContractRevert):
    fields = ("taskId", "leafCount", "memberCount")
    hint = "{leafCount} leaves declared, task {taskId} has only {memberCount} members"


class OrganisationRegistryZeroAddress(ContractRevert):
    hint = "an organisation's address was zero: pass its account address"


class OrganisationRegistryNameEmpty(ContractRevert):
    fields = ("account",)
    hint = "give the organisation {account} a name (--name)"


class OrganisationRegistryZeroHash(ContractRevert):
    fields = ("account",)
    hint = "the metadata hash of {account} was zero: hash its metadata document"


class OrganisationRegistryNotRegistered(ContractRevert):
    fields = ("account",)
    hint = (
        "{account} is not a registered organisation: the registrar registers it first "
        "(`fedchain participant add`)"
    )


class OrganisationRegistryRevoked(ContractRevert):
    fields = ("account",)
    hint = "the organisation {account} was revoked by the registrar: revocation is final"


class EnforcedPause(ContractRevert):
    hint = "the ledger is paused: new work waits until the admin unpauses it (claims still work)"


class ExpectedPause(ContractRevert):
    hint = "the ledger is not paused"


class RewardPoolZeroAmount(ContractRevert):
    hint = "fund with a positive amount"


class RewardPoolTransferShort(ContractRevert):
    fields = ("expected", "received")
    hint = "the token delivered {received} of {expected}: fee-on-transfer tokens are not supported"


class AccessControlUnauthorizedAccount(ContractRevert):
    fields = ("account", "neededRole")
    hint = "{account} lacks role {neededRole}: an admin must grant it"


class AccessControlEnforcedDefaultAdminRules(ContractRevert):
    hint = (
        "the admin role moves only in two delayed steps: beginDefaultAdminTransfer, then "
        "acceptDefaultAdminTransfer after the delay"
    )


class AccessControlEnforcedDefaultAdminDelay(ContractRevert):
    fields = ("schedule",)
    hint = "the admin transfer is scheduled for {schedule}: accept it after that time"


class AccessControlInvalidDefaultAdmin(ContractRevert):
    fields = ("defaultAdmin",)
    hint = "{defaultAdmin} is not the pending admin: only it can accept the transfer"


class SafeCastOverflowedUintDowncast(ContractRevert):
    fields = ("bits", "value")
    hint = "{value} does not fit in {bits} bits: pass a smaller number (a dataset size, say)"


class ERC20InsufficientBalance(ContractRevert):
    fields = ("sender", "balance", "needed")
    hint = "{sender} holds {balance} tokens, {needed} needed"


class ERC20InsufficientAllowance(ContractRevert):
    fields = ("spender", "allowance", "needed")
    hint = "{spender} may spend {allowance} tokens, {needed} needed: approve it first"


#: Every typed revert, by custom error name.
REVERT_ERRORS: dict[str, type[ContractRevert]] = {
    cls.__name__: cls
    for cls in (
        LedgerZeroHash,
        LedgerZeroAddress,
        LedgerEpsilonAboveCap,
        LedgerEpsilonDecreased,
        LedgerTaskUnknown,
        LedgerNotTaskCoordinator,
        LedgerRoundOutOfOrder,
        LedgerRoundStillOpen,
        LedgerParentMismatch,
        LedgerRoundNotOpen,
        LedgerRoundAlreadyCommitted,
        LedgerSignatureInvalid,
        LedgerDuplicateCommitment,
        LedgerCommitmentsUnsorted,
        LedgerRewardsUnsorted,
        LedgerRewardWithoutCommitment,
        LedgerRoundBudgetExceeded,
        LedgerPoolInsufficient,
        LedgerRewardRootUnknown,
        LedgerLeafAlreadyClaimed,
        LedgerLeafProofInvalid,
        LedgerRewardRootOverdrawn,
        LedgerTaskNotActive,
        LedgerTaskStillActive,
        LedgerNotCoordinator,
        LedgerClaimPeriodTooShort,
        LedgerSpecMismatch,
        LedgerConsentSignatureInvalid,
        LedgerAlreadyMember,
        LedgerNotMember,
        LedgerMemberLeft,
        LedgerNotEligible,
        LedgerExamplesAboveDataset,
        LedgerRoundOpenedThisBlock,
        LedgerRoundTooShort,
        LedgerNotFunder,
        LedgerClaimPeriodNotOver,
        LedgerRewardRootVoided,
        LedgerRewardRootInChallenge,
        LedgerChallengePeriodOver,
        LedgerChallengeUnfounded,
        LedgerClaimDeadlinePassed,
        LedgerLeafIndexMismatch,
        LedgerLeafCountExceeded,
        LedgerLeafCountAboveMembers,
        OrganisationRegistryZeroAddress,
        OrganisationRegistryNameEmpty,
        OrganisationRegistryZeroHash,
        OrganisationRegistryNotRegistered,
        OrganisationRegistryRevoked,
        EnforcedPause,
        ExpectedPause,
        RewardPoolZeroAmount,
        RewardPoolTransferShort,
        AccessControlUnauthorizedAccount,
        ERC20InsufficientBalance,
        ERC20InsufficientAllowance,
        AccessControlEnforcedDefaultAdminRules,
        AccessControlEnforcedDefaultAdminDelay,
        AccessControlInvalidDefaultAdmin,
        SafeCastOverflowedUintDowncast,
    )
}
