"""The architecture's rules, checked: which way dependencies point, no import cycles, and which
code runs without torch and numpy (the API image installs neither).

Static checks read every ``import`` in app/, workers/ and optim_core/ — function-local ones too,
since a cycle that only closes at call time still ties two modules together. Imports under
``if TYPE_CHECKING:`` are for type checkers only and are left out. The run-time check imports the
API app and every torch-free module in a fresh interpreter where ``torch`` and ``numpy`` cannot be
imported at all, so a module that needs either fails there, not in production.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("app", "workers", "optim_core")
# optim_core's torch-free parts: the API process imports these.
TORCH_FREE = ("optim_core", "optim_core.bounds", "optim_core.errors", "optim_core.canonical",
              "optim_core.specs", "optim_core.numerics", "optim_core.advice")
# Modules only a worker process loads: the API must build neither the worker's Celery app nor its
# signal handlers (it needs the Celery configuration and the task names only).
WORKER_ONLY = ("workers.celery_app", "workers.lifecycle", "workers.tasks", "workers.runtime",
               "workers.healthcheck")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, pathlib.Path] = {
    _module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those guarded by ``if TYPE_CHECKING``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in _import_nodes_of(child))
            continue
        yield from _import_nodes_of(node)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def _imported_modules(module: str) -> set[str]:
    """Fully qualified names of what ``module`` imports (``from pkg import sub`` names
    ``pkg.sub`` when that is a module of ours)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_pkg else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.add(sub if sub in MODULES else base)
    return out


def _graph() -> dict[str, set[str]]:
    return {m: {t for t in _imported_modules(m) if t in MODULES} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_graph_sees_function_local_and_relative_imports() -> None:
    # The checks below are only as good as the graph: pin two edges it must contain.
    graph = _graph()
    assert "optim_core.training.experiment" in graph["workers.tasks"]  # inside a function
    assert "workers.jobstore.aio" in graph["workers.jobstore"]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_dependencies_point_app_to_workers_to_core() -> None:
    for module in MODULES:
        imported = {_top(m) for m in _imported_modules(module)}
        if module.startswith("optim_core"):
            assert not imported & {"app", "workers"}, f"{module} imports app/ or workers/"
        elif module.startswith("workers"):
            assert "app" not in imported, f"{module} imports app/"


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if m.startswith(TORCH_FREE[1:]) or m in TORCH_FREE))
def test_torch_free_modules_never_import_torch_numpy_or_training(module: str) -> None:
    # Statically, at any depth: a function-local `import numpy` would pass the run-time check
    # below until the day that function is called in the API process.
    imported = _imported_modules(module)
    bad = sorted(m for m in imported
                 if _top(m) in {"torch", "numpy"} or m.startswith("optim_core.training"))
    assert not bad, f"{module} imports {bad}"


GUARD = r"""
import importlib, importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    # torch and numpy are not installed in the API image: make them unimportable here too.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "numpy"}:
            raise ModuleNotFoundError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
import app.main
app.main.create_app()
names = sys.argv[1:]
for pkg_name in names:
    pkg = importlib.import_module(pkg_name)
    if pkg_name == "optim_core":  # the package itself; its torch-free subpackages are listed
        continue
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), pkg_name + "."):
        importlib.import_module(info.name)
import optim_core
for name in ("advise", "suggest", "AdviceRequest", "OptimizerSpec", "ScheduleSpec",
             "ExperimentSpec", "TrialsConfig", "RangeTestConfig"):
    getattr(optim_core, name)  # the front door's torch-free names
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "numpy"})
worker_only = sorted(m for m in sys.modules if m in WORKER_ONLY)
print("LOADED", loaded, "WORKER_ONLY", worker_only)
sys.exit(1 if loaded or worker_only else 0)
"""


def test_api_and_torch_free_modules_import_without_torch_and_numpy() -> None:
    code = f"WORKER_ONLY = {WORKER_ONLY!r}\n" + GUARD
    # The HTTP client and CLI ship to users who train elsewhere: torch-free too.
    proc = subprocess.run([sys.executable, "-c", code, *TORCH_FREE, "optim_advisor_client"],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
