"""Every error fedchain raises derives from FedchainError (issue 14: fifteen raises escaped it)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import fedchain

PACKAGE = Path(fedchain.__file__).parent
#: Builtin exceptions that are not errors a caller handles: control flow and broken invariants.
ALLOWED = {
    "KeyboardInterrupt",
    "SystemExit",
    "StopIteration",
    "NotImplementedError",
    "AssertionError",
}
#: Raises a protocol requires, or that are converted within the same function.
ALLOWED_AT = {
    ("fedchain/__init__.py", "AttributeError"),  # a module's __getattr__ (PEP 562)
    ("fedchain/settings.py", "ValueError"),  # _coerce raises and converts to SettingsError
}
BUILTIN_ERRORS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException) and name not in ALLOWED
}


def _bare_raises(path: Path) -> list[str]:
    """``raise ValueError(...)`` and the like, outside except blocks that re-raise them."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(call, ast.Name) and call.id in BUILTIN_ERRORS:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} raise {call.id}")
    return found


def test_every_raise_is_a_fedchain_error() -> None:
    # Prepare / Execute
    bare = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _bare_raises(path)]

    # Assert: a caller catching FedchainError catches everything fedchain raises.
    escaping = [hit for hit in bare if (hit.split(":")[0], hit.split()[-1]) not in ALLOWED_AT]
    assert escaping == []
