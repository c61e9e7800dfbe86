"""No import cycles in bench/ (issue 38), counting function-local imports too.

A cycle hidden by an import inside a function still ties the modules together: neither can be read,
tested or moved without the other. So every ``import`` and ``from ... import`` of a bench module,
at module level or inside a function, is an edge here; only ``if TYPE_CHECKING:`` blocks (never run)
are left out. An edge goes to the deepest module the statement names: ``from bench.run import grid``
to ``bench.run.grid`` when that is a module, else to ``bench.run`` (the package's ``__init__``).

Importing a module runs the ``__init__`` of every package above it first, so an import of
``bench.run.folder`` from outside ``bench.run`` is an edge to ``bench.run`` too: a cycle through a
package's ``__init__`` fails at import time just the same. A module's own packages (``bench``, and
``bench.run`` for ``bench.run.grid``) are left out as targets: they are initialised before the
module runs, so naming them (``from bench import __version__``) orders nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bench"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement of ``tree``, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: set[str]) -> str | None:
    """The deepest bench module that ``name`` (a dotted name) is or lies in; None outside bench."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """module -> the bench modules it imports (an edge to itself left out)."""
    paths = {module_name(path, root): path for path in (root / package).rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # "from pkg import sub" names the submodule when there is one, else pkg itself
                names = [f"{base}.{alias.name}" for alias in node.names] or [base]
                names = [n if n in modules else base for n in names]
            targets |= {t for t in (_resolve(n, modules) for n in names) if t is not None}
        # importing a target runs it and the packages above it; the importer's own packages ran already
        graph[name] = {package for target in targets for package in _packages(target)} - _packages(name)
    return graph


def _packages(module: str) -> set[str]:
    """``module`` and every package above it: ``bench.run.grid`` -> itself, ``bench.run``, ``bench``."""
    parts = module.split(".")
    return {".".join(parts[:n]) for n in range(1, len(parts) + 1)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of modules around it (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_bench_has_no_import_cycle():
    graph = import_graph()
    assert "bench.cli" in graph and graph["bench.cli"], "the graph found no module or no import"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in bench/: " + " -> ".join(cycle)


def test_the_graph_sees_function_local_and_relative_imports(tmp_path):
    """The checks catch what they are for: a cycle closed by an import inside a function, and one
    through a relative import; an import under ``if TYPE_CHECKING:`` is no edge."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg import a\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]

    (package / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                          "    from pkg.a import X\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None

    (package / "sub" / "b.py").write_text("from .. import a\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.a", "pkg.sub.b", "pkg.a"]


def test_the_graph_sees_cycles_through_a_package_init(tmp_path):
    """Importing ``pkg.sub.c`` runs ``pkg/sub/__init__.py`` first: when that imports a module that
    imports ``pkg.sub.c`` from outside the package, the import fails, and the graph says so. A
    module naming its own package (``from pkg.sub import x`` inside ``pkg.sub``) is no edge."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("VERSION = 1\n")
    (package / "a.py").write_text("from pkg.sub.c import C\n")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (package / "sub" / "b.py").write_text("from pkg import VERSION\nimport pkg.a\nB = 1\n")
    (package / "sub" / "c.py").write_text("from pkg.sub import B\nC = 1\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.c"} and graph["pkg.sub.c"] == set()
    assert find_cycle(graph) == ["pkg.a", "pkg.sub", "pkg.sub.b", "pkg.a"]
