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
    "AccessControlUnauthorizedAccount",
    "ChainError",
    "ChainReset",
    "ChainUnreachable",
    "ContractRevert",
    "DeploymentError",
    "ERC20InsufficientAllowance",
    "ERC20InsufficientBalance",
    "InsufficientGas",
    "KeystoreError",
    "LedgerCommitmentsUnsorted",
    "LedgerDuplicateCommitment",
    "LedgerLeafAlreadyClaimed",
    "LedgerLeafProofInvalid",
    "LedgerLengthMismatch",
    "LedgerNotTaskCoordinator",
    "LedgerParentMismatch",
    "LedgerParticipantAlreadyRegistered",
    "LedgerParticipantNotRegistered",
    "LedgerParticipantWithdrawn",
    "LedgerPoolInsufficient",
    "LedgerRewardRootOverdrawn",
    "LedgerRewardRootUnknown",
    "LedgerRewardWithoutCommitment",
    "LedgerRewardsUnsorted",
    "LedgerRoundAlreadyCommitted",
    "LedgerRoundBudgetExceeded",
    "LedgerRoundNotOpen",
    "LedgerRoundOutOfOrder",
    "LedgerRoundStillOpen",
    "LedgerSignatureInvalid",
    "LedgerTaskUnknown",
    "LedgerZeroAddress",
    "LedgerZeroHash",
    "RewardPoolTransferShort",
    "RewardPoolZeroAmount",
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


class LedgerParticipantAlreadyRegistered(ContractRevert):
    fields = ("account",)
    hint = "{account} is already registered: nothing to do"


class LedgerParticipantNotRegistered(ContractRevert):
    fields = ("account",)
    hint = "{account} is not a registered participant: a coordinator must register it first"


class LedgerParticipantWithdrawn(ContractRevert):
    fields = ("account",)
    hint = "{account} has withdrawn its consent: its commitments are refused; drop it from the run"


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


class LedgerLengthMismatch(ContractRevert):
    fields = ("accounts", "orgHashes")
    hint = "{accounts} accounts but {orgHashes} organisation hashes: give one hash per account"


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


class RewardPoolZeroAmount(ContractRevert):
    hint = "fund with a positive amount"


class RewardPoolTransferShort(ContractRevert):
    fields = ("expected", "received")
    hint = "the token delivered {received} of {expected}: fee-on-transfer tokens are not supported"


class AccessControlUnauthorizedAccount(ContractRevert):
    fields = ("account", "neededRole")
    hint = "{account} lacks role {neededRole}: an admin must grant it"


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
        LedgerTaskUnknown,
        LedgerNotTaskCoordinator,
        LedgerParticipantAlreadyRegistered,
        LedgerParticipantNotRegistered,
        LedgerParticipantWithdrawn,
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
        LedgerLengthMismatch,
        LedgerRewardRootUnknown,
        LedgerLeafAlreadyClaimed,
        LedgerLeafProofInvalid,
        LedgerRewardRootOverdrawn,
        RewardPoolZeroAmount,
        RewardPoolTransferShort,
        AccessControlUnauthorizedAccount,
        ERC20InsufficientBalance,
        ERC20InsufficientAllowance,
    )
}
