"""The deployment file: where the contracts live, so nothing hard-codes an address."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from fedchain.chain.errors import DeploymentError

__all__ = ["DEFAULT_DEPLOYMENT_FILE", "Deployment"]

DEFAULT_DEPLOYMENT_FILE = Path("fedchain-deployment.json")


@dataclass(frozen=True)
class Deployment:
    """A deployed ledger (and its dev reward token) on one chain."""

    chain_id: int
    ledger: str
    token: str
    block: int
    deployer: str
    rpc_url: str | None = None

    def save(self, path: Path) -> None:
        """Write the deployment as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment file written by :meth:`save` (or ``fedchain deploy``)."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DeploymentError(
                f"no deployment file at {path}: run `fedchain deploy` first or pass --deployment"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DeploymentError(f"{path} is not JSON: {exc}") from exc
        try:
            return cls(
                chain_id=int(data["chain_id"]),
                ledger=str(data["ledger"]),
                token=str(data["token"]),
                block=int(data["block"]),
                deployer=str(data["deployer"]),
                rpc_url=data.get("rpc_url"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentError(f"{path} is not a fedchain deployment: bad field {exc}") from exc
