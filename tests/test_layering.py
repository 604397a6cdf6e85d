"""The layers stay apart: graphs/ is pure Python (+ networkx); importing the node catalogue
must not pull in Qt or torch (they load lazily, when a node runs)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("PySide6", "torch", "diffusers", "transformers", "accelerate")


def _loaded_after(statement: str) -> dict:
    code = (f"import sys, json; {statement}; "
            f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_graphs_is_light():
    loaded = _loaded_after("import graphs")
    assert not any(loaded.values()), loaded


def test_import_graphs_and_nodes_leaves_qt_and_torch_out():
    loaded = _loaded_after("import graphs, nodes")
    assert not loaded["PySide6"] and not loaded["torch"], loaded
    assert not loaded["diffusers"], loaded


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" \
                and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value).split(".")[0])
    return found


IMPORT_TEXT = re.compile(r"(?m)^\s*(import|from)\s+(PySide6|torch|diffusers)\b"
                         r"|import_module\(\s*[\"'](PySide6|torch|diffusers)")
SOURCES = sorted((ROOT / "graphs").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_graphs_sources_import_no_heavy_library(path):
    imports = _imports(path)
    assert not imports & {"PySide6", "PyQt5", "PyQt6", "torch", "diffusers", "transformers",
                          "accelerate", "numpy", "PIL"}, (path, imports)
    # a plain text search too, for imports the AST walk misses (importlib with a string,
    # imports inside exec'd text)
    text = path.read_text(encoding="utf-8")
    assert not IMPORT_TEXT.search(text), f"{path.name}: {IMPORT_TEXT.search(text).group(0)!r}"


def test_graphs_depends_only_on_stdlib_and_networkx():
    allowed = set(sys.stdlib_module_names) | {"networkx", "graphs", "__future__"}
    for path in SOURCES:
        assert _imports(path) <= allowed, (path, _imports(path) - allowed)
