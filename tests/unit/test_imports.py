"""civicbot's modules import each other without a circle (issue 18: the bot and editing
closed one). Read with `ast`, so nothing is imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "civicbot"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run when a module is imported, including those under `if` (such as
    `if TYPE_CHECKING:`, which closed the bot/editing circle) and `try`; not the bodies
    of functions (a lazy import in a function is a deliberate late edge)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += module_level(node.body) + module_level(node.orelse)
        elif isinstance(node, ast.Try):
            out += module_level(node.body) + module_level(node.orelse)
            for handler in node.handlers:
                out += module_level(handler.body)
    return out


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The civicbot modules `path` imports at module level."""
    found: set[str] = set()
    for node in module_level(ast.parse(path.read_text(encoding="utf-8")).body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in known}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import circle, as the list of modules along it, or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_civicbot_has_no_import_circle():
    edges = graph()
    assert "civicbot.matrix.bot" in edges and "civicbot.matrix.editing" in edges
    cycle = find_cycle(edges)
    assert not cycle, " -> ".join(cycle)


def test_editing_does_not_import_the_bot():
    assert "civicbot.matrix.bot" not in graph()["civicbot.matrix.editing"]
