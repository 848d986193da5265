"""The tree shows the architecture: packages by concern, imports in one direction, no cycle.

Every ``import`` in ``generator/`` is read with :mod:`ast` (function-level imports and
``lazy_module("...")`` included; imports under ``if TYPE_CHECKING:`` are annotations only and
not counted). The rules:

- a package imports only itself and the packages before it in :data:`ORDER`;
- the pure core (:data:`PURE`) imports nothing of the IO shell: no git, HTTP, subprocess or
  socket library, and no module outside the pure core;
- no module import cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "generator"

#: The packages in import order: each may import itself and those before it, never after.
ORDER = ["errors", "resources", "spec", "routing", "rollout", "targets", "render", "importer", "gitops", "bot", "report",
         "cli", "__main__"]

#: The pure core: spec, routing, the rollout decision, and the pure parts of render.
PURE = {"generator", "generator.errors", "generator.resources",
        "generator.render.checks", "generator.render.quoting", "generator.render.analysis", "generator.render.cel",
        "generator.render.shapes",
        "generator.importer", "generator.importer.read", "generator.importer.convert"}
PURE_PACKAGES = ("generator.spec", "generator.routing", "generator.rollout", "generator.targets")

#: Libraries of the IO shell that the pure core must not import.
SHELL_LIBRARIES = {"git", "httpx", "subprocess", "socket", "urllib", "http", "tempfile", "shutil"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(GENERATOR.rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules (of generator, or top-level libraries) that ``name`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_module" and node.args \
                and isinstance(node.args[0], ast.Constant):  # generator.cli.base.lazy_module("a.b")
            found.add(node.args[0].value)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "generator" or len(parts) == 1:
        return None
    return parts[1]


def test_generator_is_packages_by_concern():
    top = sorted(p.name for p in GENERATOR.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py", "__main__.py", "errors.py", "resources.py"]
    packages = {p.name for p in GENERATOR.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ORDER) - {"errors", "resources", "__main__"}


def test_every_package_imports_only_those_before_it(graph):
    wrong = []
    for module, imported in graph.items():
        mine = package_of(module)
        if mine is None:
            continue
        for target in imported:
            theirs = package_of(target)
            if theirs is not None and ORDER.index(theirs) > ORDER.index(mine):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_pure_core_imports_nothing_of_the_io_shell(graph):
    pure = {m for m in graph if m in PURE or m.startswith(PURE_PACKAGES)}
    assert {"generator.routing.compiler", "generator.rollout.decision", "generator.spec.config",
            "generator.render.analysis"} <= pure
    wrong = []
    for module in sorted(pure):
        for target in graph[module]:
            if target.startswith("generator") and target not in pure:
                wrong.append(f"{module} imports {target} (IO shell)")
            elif target.split(".")[0] in SHELL_LIBRARIES:
                wrong.append(f"{module} imports {target} (an IO library)")
    assert not wrong, "\n".join(wrong)


def test_pure_core_does_not_read_the_clock():
    offenders = []
    for name, path in modules().items():
        if name in PURE or name.startswith(PURE_PACKAGES):
            text = path.read_text(encoding="utf-8")
            for needle in ("datetime.now(", "time.time(", "time.monotonic(", "date.today("):
                if needle in text:
                    offenders.append(f"{name}: {needle}")
    assert not offenders


def test_no_import_cycle(graph):
    internal = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(internal[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(internal):
        if node not in state:
            visit(node)
    # A package's __init__ importing its own submodules is how a package is built, not a cycle
    # (submodules never import their package's __init__ for names).
    cycles = [c for c in cycles if not any(
        a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(c, c[1:]))]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_entry_point_still_resolves():
    from generator import cli

    assert callable(cli.main)
    assert {"render", "check", "validate", "init", "explain", "diff", "publish", "rollout"} <= set(cli.main.commands)


def test_a_command_imports_only_its_own_module():
    """``meshgen check`` does not pay for the rollout bot's, the report's or explain's imports."""
    import subprocess

    code = ("import sys; from generator.cli import main; main.get_command(None, 'check'); "
            "print(sorted(m for m in sys.modules if m.startswith('generator.cli.')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['generator.cli.base', 'generator.cli.render']"


def test_every_package_of_generator_is_in_the_wheel():
    """A package missing from pyproject's ``packages`` works in a checkout (an editable install)
    and is absent from the wheel that pre-commit and pip install: every folder of ``generator/``
    with an ``__init__.py`` is listed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in GENERATOR.rglob("__init__.py")
             if "__pycache__" not in p.parts}
    assert found - listed == set()
