"""Only the chain layer speaks web3: no module of fedchain outside fedchain/chain imports it, and
the audit imports no Ethereum library at all (it asks fedchain.chain). Imports inside functions
count too: each module's syntax tree is read, not its import-time behaviour."""

from __future__ import annotations

import ast
from pathlib import Path

import fedchain

PACKAGE = Path(fedchain.__file__).parent
ETHEREUM = ("web3", "eth_account", "eth_utils", "eth_abi", "eth_typing", "eth_tester", "hexbytes")


def _imports(path: Path) -> set[str]:
    """The top-level package of every absolute import in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _importers(of: tuple[str, ...], under: Path, outside: Path | None = None) -> list[str]:
    modules = sorted(under.rglob("*.py"))
    return [
        f"{p.relative_to(PACKAGE.parent)} imports {', '.join(sorted(_imports(p) & set(of)))}"
        for p in modules
        if (outside is None or outside not in p.parents) and _imports(p) & set(of)
    ]


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    # Prepare
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from web3.contract import Contract\n    import hexbytes\n")
    # Execute / Assert
    assert _imports(module) == {"web3", "hexbytes"}


def test_no_module_outside_the_chain_layer_imports_web3() -> None:
    assert _importers(("web3",), PACKAGE, outside=PACKAGE / "chain") == []


def test_the_audit_imports_no_ethereum_library() -> None:
    assert _importers(ETHEREUM, PACKAGE / "audit") == []
