"""The one exception root of fedchain; every error fedchain raises derives from it."""

__all__ = ["FedchainError", "SettingsError"]


class FedchainError(Exception):
    """Root of every fedchain error."""


class SettingsError(FedchainError, ValueError):
    """A run setting is missing, of the wrong type, or out of range."""
