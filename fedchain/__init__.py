"""fedchain: federated learning with on-chain contribution accounting."""

__all__ = ["__version__"]

__version__ = "0.1.0"
