"""The one exception root of fedchain; every error fedchain raises derives from it."""

__all__ = ["FedchainError"]


class FedchainError(Exception):
    """Root of every fedchain error."""
