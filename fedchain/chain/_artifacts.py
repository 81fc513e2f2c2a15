"""The committed contract artifacts (ABI + bytecode), read from package data: no compiler needed."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load_artifact"]


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name`` (``Ledger`` or ``DevToken``)."""
    text = resources.files("fedchain.chain").joinpath("artifacts", f"{name}.json").read_text()
    artifact: dict[str, Any] = json.loads(text)
    return artifact
