"""Compile the Solidity sources into the ABI + bytecode artifacts committed as package data.

Development-time only: running fedchain needs the committed artifacts, not a compiler. The compiler
is native ``solc`` when one is on PATH, otherwise solc-js (npm ``solc``) through ``scripts/solcjs``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACTS_DIR", "CONTRACTS", "SETTINGS", "build", "collect_sources", "sources_hash"]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACTS = ("Ledger", "DevToken")
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "viaIR": True,
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"]}
    },
}
_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*\bfrom\s+)?["\']([^"\']+)["\']', re.MULTILINE)


def _resolve(unit: str, root: Path) -> Path:
    if unit.startswith("contracts/"):
        return root / unit
    return root / "node_modules" / unit


def collect_sources(root: Path = ROOT) -> dict[str, str]:
    """Every source unit the contracts need, by unit name, following imports."""
    pending = [f"contracts/{name}.sol" for name in CONTRACTS]
    sources: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = _resolve(unit, root).read_text(encoding="utf-8")
        sources[unit] = text
        for target in _IMPORT.findall(text):
            relative = target.startswith(".")
            base = posixpath.dirname(unit)
            pending.append(posixpath.normpath(posixpath.join(base, target)) if relative else target)
    return dict(sorted(sources.items()))


def sources_hash(sources: dict[str, str]) -> str:
    """SHA-256 over the unit names and contents, in name order, plus the compiler settings."""
    digest = hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode())
    for unit, text in sorted(sources.items()):
        digest.update(unit.encode() + b"\0" + text.encode() + b"\0")
    return "0x" + digest.hexdigest()


def _solc_binary(root: Path) -> Path:
    native = shutil.which("solc")
    return Path(native) if native else root / "scripts" / "solcjs"


def build(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """Compile the contracts; return one artifact dict per contract name."""
    import solcx
    from solcx.wrapper import get_version_str_from_solc_binary

    binary = _solc_binary(root)
    sources = collect_sources(root)
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": SETTINGS,
    }
    output = solcx.compile_standard(standard_input, solc_binary=binary)
    version = get_version_str_from_solc_binary(binary)
    artifacts = {}
    for name in CONTRACTS:
        compiled = output["contracts"][f"contracts/{name}.sol"][name]
        artifacts[name] = {
            "contractName": name,
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
            "storageLayout": compiled["storageLayout"],
            "compiler": version,
            "settings": SETTINGS,
            "sourcesHash": sources_hash(sources),
        }
    return artifacts


def write(artifacts: dict[str, dict[str, Any]], directory: Path = ARTIFACTS_DIR) -> None:
    """Write each artifact as ``<directory>/<name>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, artifact in artifacts.items():
        (directory / f"{name}.json").write_text(json.dumps(artifact, indent=1) + "\n")
