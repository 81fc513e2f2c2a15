"""The one exception root of fedchain; every error fedchain raises derives from it."""

__all__ = ["FedchainError", "RunExistsError", "SettingsError"]


class FedchainError(Exception):
    """Root of every fedchain error."""


class SettingsError(FedchainError, ValueError):
    """A run setting is missing, of the wrong type, or out of range."""


class RunExistsError(FedchainError, FileExistsError):
    """An output directory already holds a run (or is a file): refused, never overwritten."""
