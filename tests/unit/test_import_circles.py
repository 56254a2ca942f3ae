"""No import circles among the project's modules (issue 16.6).

The graph is built with `ast` from the source of every package setuptools ships (pyproject.toml), with
every import that runs: at module level and inside functions alike, because a function-level import that
only dodges a circle is still a circle (the design one module cannot be understood without the other).
Imports under `if TYPE_CHECKING:` never run and are left out. An edge goes to the module imported:
`from pkg import sub` -> pkg.sub when sub is a module, else -> pkg. A package's parent `__init__` is not
an edge: a package that re-exports its submodules (appliance/notify) is the normal layout, not a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.unit.test_packaging import shipped_packages

REPO = Path(__file__).resolve().parents[2]


def packages(repo: Path) -> list[str]:
    """The top-level packages the wheel ships (setuptools' search of pyproject.toml, as in test_packaging)."""
    return sorted({p.split(".")[0] for p in shipped_packages(repo)})


def modules(root: Path, pkgs: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in pkgs:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its code (TYPE_CHECKING blocks excepted)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"), str(path))]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    here = name.split(".") if is_pkg else name.split(".")[:-1]
                    here = here[: len(here) - (child.level - 1)]
                    base = ".".join([*here, base] if base else here)
                subs = [f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in known]
                out.update(subs)
                if len(subs) < len(child.names):
                    out.add(base)
            stack.append(child)
    return {m for m in out if m in known and m != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def import_graph(root: Path, pkgs: Iterable[str]) -> dict[str, set[str]]:
    known = modules(root, pkgs)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def explain(graph: dict[str, set[str]], comp: list[str]) -> str:
    members = set(comp)
    return "\n".join(f"  {m} -> {t}" for m in comp for t in sorted(graph[m] & members))


def test_the_project_has_no_import_circle() -> None:
    pkgs = packages(REPO)
    assert {"appliance", "firewall", "ids", "vpn", "webui"} <= set(pkgs)
    graph = import_graph(REPO, pkgs)
    assert len(graph) > 100  # the whole project was read, not an empty walk
    found = circles(graph)
    assert not found, "import circles:\n" + "\n\n".join(explain(graph, c) for c in found)


def test_the_check_finds_a_circle_hidden_in_a_function_and_ignores_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "area"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from area.sub import b  # re-export: not a circle\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from area.sub import b\n\nX = 1\n")
    (pkg / "sub" / "b.py").write_text(
        "def f():\n    from area.a import X  # dodges the circle\n    return X\n"
    )
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from area import d\n")
    (pkg / "d.py").write_text("from . import c\n")
    graph = import_graph(tmp_path, ["area"])
    assert graph["area.d"] == {"area.c"} and graph["area.c"] == set()
    assert circles(graph) == [["area.a", "area.sub.b"]]
