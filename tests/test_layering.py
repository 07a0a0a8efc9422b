"""The API process must not import torch; optim_core must not import app/ or workers/."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_api_process_does_not_import_torch() -> None:
    code = (
        "import sys, app.main\n"
        "app.main.create_app()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"app imported torch: {proc.stdout} {proc.stderr[-2000:]}"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_dependencies_point_app_to_workers_to_core() -> None:
    for path in (ROOT / "optim_core").rglob("*.py"):
        assert not _imports(path) & {"app", "workers"}, f"{path} imports app/ or workers/"
    for path in (ROOT / "workers").rglob("*.py"):
        assert "app" not in _imports(path), f"{path} imports app/"
