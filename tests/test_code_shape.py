"""The shape of the code under bench/: no function or method over 80 lines, no module over 500, and
packages by concern at the top level (issue 38).

Long functions and modules are where several concerns end up tangled; these limits keep each piece
small enough to read at once. Lines are counted as the source has them: a function from its first
decorator (or its ``def``) to its last line, docstring and comments included; a module as its
number of lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500

# The only modules at bench/'s top level: the entry points (the CLI, the Python API) and what every
# package uses (errors, file io, the entry-point registries). Anything else belongs in a package.
TOP_LEVEL_MODULES = {"__init__.py", "api.py", "cli.py", "errors.py", "io.py", "plugins.py"}

# Modules still being restructured in issue 38: not checked until that work lands (then this list
# is emptied). Paths relative to bench/, as glob patterns.
PENDING: list[str] = []


def matches(path: Path, pattern: str) -> bool:
    """Whether ``path`` (under bench/) is the one ``pattern`` names, relative to bench/ and whole."""
    relative = path.relative_to(BENCH)
    return relative.match(pattern) and len(relative.parts) == len(Path(pattern).parts)


def is_pending(path: Path) -> bool:
    return any(matches(path, pattern) for pattern in PENDING)


def modules() -> list[Path]:
    return sorted(path for path in BENCH.rglob("*.py") if not is_pending(path))


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function or method in ``source`` longer than ``limit`` lines,
    nested ones included."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    lines = child.end_lineno - first + 1
                    if lines > limit:
                        found.append((name, lines))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def module_lines(source: str) -> int:
    return len(source.splitlines())


def test_the_checks_catch_a_long_function_and_a_long_module():
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    # a method of 81 lines: its decorator, its def line and 79 lines of body
    source = f"class A:\n    def ok(self):\n        pass\n\n    @staticmethod\n    def long():\n{body}"
    assert long_functions(source) == [("A.long", MAX_FUNCTION_LINES + 1)]
    assert long_functions(source, limit=MAX_FUNCTION_LINES + 1) == []
    assert module_lines("\n" * MAX_MODULE_LINES + "x = 1\n") == MAX_MODULE_LINES + 1


def test_pending_list_names_existing_modules_only():
    """A pending entry that matches no file is stale (renamed or split already): drop it."""
    for pattern in PENDING:
        assert any(matches(path, pattern) for path in BENCH.rglob("*.py")), pattern
    # how a pattern names modules (checked on patterns of its own, so an empty list checks it too)
    assert matches(BENCH / "commands" / "run.py", "commands/*.py")
    assert not matches(BENCH / "report" / "tables.py", "commands/*.py")
    assert not matches(BENCH / "nn" / "runner.py", "runner.py")  # "runner.py" is bench/runner.py only


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(BENCH)))
def test_module_and_its_functions_are_short(path):
    source = path.read_text(encoding="utf-8")
    assert module_lines(source) <= MAX_MODULE_LINES, f"{path} has {module_lines(source)} lines"
    assert long_functions(source) == [], f"{path}: functions over {MAX_FUNCTION_LINES} lines"


def test_the_top_level_holds_packages_by_concern():
    flat = {path.name for path in BENCH.glob("*.py")}
    assert flat <= TOP_LEVEL_MODULES, f"modules at bench/'s top level that belong in a package: {sorted(flat - TOP_LEVEL_MODULES)}"
    packages = [path for path in BENCH.iterdir() if path.is_dir() and (path / "__init__.py").exists()]
    for package in packages:  # each package says what its modules are for
        assert ast.get_docstring(ast.parse((package / "__init__.py").read_text())), f"{package.name}/__init__.py has no docstring"
