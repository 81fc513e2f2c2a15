"""No import cycles among fedchain's modules, counting imports inside functions.

A function-local import hides a cycle from Python's import machinery, not from the design: the
three cycles the layout move removed all hid so. Imports under ``if TYPE_CHECKING:`` are left
out (they never run). The layer order itself is checked by import-linter (`make lint`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fedchain

PACKAGE = Path(fedchain.__file__).parent


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at ``root``."""
    found = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imported_names(tree: ast.AST, package: str) -> Iterator[str]:
    """Every absolute name imported in ``tree`` (relative ones resolved against ``package``),
    except under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _imported_names(ast.Module(body=node.orelse, type_ignores=[]), package)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        yield from _imported_names(node, package)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name resolves to its longest module)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imported_names(ast.parse(path.read_text(), str(path)), package):
            module = _longest_module(imported, modules)
            if module and module != name:
                graph[name].add(module)
    return graph


def _longest_module(name: str, modules: dict[str, Path]) -> str:
    """``name`` or its longest prefix that is a module of the package ('' if none is)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_fedchain_has_no_import_cycles() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50  # the whole package was read
    assert cycles(graph) == []


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    # Prepare: pkg.a imports pkg.b at the top; pkg.b imports pkg.a inside a function, relatively
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\nimport pkg.b\n"
    )
    # Execute
    graph = import_graph(package)
    # Assert
    assert graph["pkg.c"] == {"pkg.b"}  # the TYPE_CHECKING import is not counted
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
