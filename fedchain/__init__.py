"""fedchain: federated learning with on-chain contribution accounting.

The Python API (docs/api.md)::

    import fedchain

    run = fedchain.simulate(clients=3, rounds=2, engine="inprocess", out="runs/api")
    fedchain.audit_run(run).ok

The API's names are imported on first use (PEP 562), so ``import fedchain.errors`` or
``import fedchain.ml`` loads no Flower, Ray or web3. The audit and the report are ``audit_run``
and ``write_report``: ``fedchain.audit`` and ``fedchain.report`` are subpackages.
"""

from typing import TYPE_CHECKING, Any

from fedchain._version import __version__

__all__ = ["Run", "__version__", "audit_run", "simulate", "verify_model", "write_report"]

_API = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:
    from fedchain.api import Run, audit_run, simulate, verify_model, write_report
else:  # type checkers see the imports above; a __getattr__ would type every unknown name Any

    def __getattr__(name: str) -> Any:
        if name not in _API:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from fedchain import api

        value = getattr(api, name)
        globals()[name] = value  # found directly from now on
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
