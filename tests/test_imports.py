"""The package's floor plan holds: no import cycle among minift's modules, lazy imports included.

A cycle (a imports b, b imports a, perhaps through others) makes a module's meaning depend on which
one was imported first, and it hides when the second import sits inside a function. So every
``import`` and ``from ... import`` in every file of ``minift/`` counts here, at module level or in
a function body, read from the source with ``ast`` (nothing is executed). ``from minift import x``
names the module ``minift.x`` when that is a module, else the package itself.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minift"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The minift modules ``path`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .a import b
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # from pkg import mod names a module; from mod import func names mod
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for t in targets:
            # import minift.a.b also runs minift.a's __init__, which is an edge too (but not to oneself)
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("minift"):
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    g = {name: imports_of(name, path, known) for name, path in mods.items()}
    # A package's __init__ importing its own submodules is how a package is built, and a submodule
    # importing a sibling goes through the package: keep those edges, but do not count a module
    # importing the package that contains it (that is Python running __init__ first, not a cycle).
    for name in g:
        g[name] = {t for t in g[name] if not name.startswith(t + ".")}
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None. Depth-first search with colours."""
    colour = dict.fromkeys(g, 0)  # 0 unseen, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n):
        colour[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if colour.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if colour.get(m) == 0:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(g):
        if colour[n] == 0:
            found = visit(n)
            if found:
                return found
    return None


def test_the_walker_sees_lazy_imports_and_finds_a_planted_cycle():
    # Lazy (function-body) imports count: finetune imports plot inside run_recipe.
    g = graph()
    assert "minift.plot" in g["minift.finetune"]
    assert "minift.model" in g["minift.checkpoint"]
    planted = {k: set(v) for k, v in g.items()}
    planted["minift.model"].add("minift.finetune")  # model -> finetune -> ... -> model
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1] and "minift.model" in cycle


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
