"""The package's layers (docs/design.md, "The map"): each imports only the layers before it, and no two
modules import each other at import time."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "videozoo"
# In order: a module may import its own layer and those before it. errors.py is shared by all.
LAYERS = ["errors", "zoo", "video", "models", "tasks", "cli"]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # also the imports under `if`/`try` at module level, not those in functions
        nodes = [n for stmt in tree.body for n in ast.walk(stmt) if not isinstance(stmt, (ast.FunctionDef, ast.ClassDef))]
        nodes = [n for n in nodes if not _under_type_checking(tree, n)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("videozoo"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("videozoo"))
    return found


def _under_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING":
            if any(n is node for n in ast.walk(stmt)):
                return True
    return False


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name not in ("__init__.py", "__main__.py"))


def test_every_module_belongs_to_a_layer():
    assert [_module(p) for p in _files() if _layer(_module(p)) is None] == []


def test_no_import_runs_back_up_the_layers():
    upward = []
    for path in _files():
        own = _layer(_module(path))
        for target in _imports(path, top_level_only=False):
            layer = _layer(target)
            if layer is not None and layer > own:
                upward.append(f"{_module(path)} imports {target}")
    assert upward == []


def test_no_import_cycles():
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {t for t in _imports(path, top_level_only=True) if t in modules and t != name}
        for name, path in modules.items()
    }
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        for nxt in sorted(graph[node]):
            if nxt not in done:
                visit(nxt, stack + [node])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [])
    # a package importing its own submodules is not a cycle; a submodule importing its package's
    # __init__ for names the __init__ re-exports would be
    cycles = [c for c in cycles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert cycles == []
