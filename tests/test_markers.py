"""The `qgis` marker (pyproject.toml): every test that needs QGIS carries it, so that
`pytest -m "not qgis"` runs the engine's tests alone and none of them touches QGIS.

A test needs QGIS when it imports QGIS, the plugin or QGIS's Processing, uses one of the QGIS
helpers of helpers.py, or asks (itself or through a fixture of its module) for a QGIS fixture. A
module whose top imports any of these carries ``pytestmark = pytest.mark.qgis``; in a module that
mixes both, each QGIS test carries ``@pytest.mark.qgis``."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import QGIS_HELPERS, ROOT

TESTS = Path(__file__).resolve().parent
QGIS_PACKAGES = {"qgis", "damp_qgis", "processing"}
QGIS_FIXTURES = {"qgis_app", "qgis_bot", "qgis_canvas", "qgis_iface", "qgis_new_project", "qgis_parent",
                 "processing"}  # pytest-qgis's, and conftest's processing


def imports_qgis(nodes: list[ast.stmt]) -> bool:
    """True when these statements import QGIS, the plugin, Processing or a QGIS helper."""
    for node in (inner for statement in nodes for inner in ast.walk(statement)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in QGIS_PACKAGES for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in QGIS_PACKAGES:
                return True
            if node.module == "helpers" and any(a.name in QGIS_HELPERS for a in node.names):
                return True
    return False


def is_qgis_mark(node: ast.expr) -> bool:
    return ast.unparse(node) in ("pytest.mark.qgis", "mark.qgis")


def unmarked_qgis_tests(path: Path) -> list[str]:
    """The tests of a module that need QGIS and do not carry the marker."""
    tree = ast.parse(path.read_text())
    module_marked = any(isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
                        and is_qgis_mark(node.value) for node in tree.body)
    top_imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    if imports_qgis(top_imports):
        return [] if module_marked else [f"{path.name} (its imports)"]
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    needs = {f.name: imports_qgis(f.body) or bool({a.arg for a in f.args.args} & QGIS_FIXTURES) for f in functions}
    changed = True
    while changed:  # through the module's own fixtures
        changed = False
        for f in functions:
            if not needs[f.name] and any(needs.get(a.arg) for a in f.args.args):
                needs[f.name] = changed = True
    marked = {f.name for f in functions if any(is_qgis_mark(d) for d in f.decorator_list)}
    if module_marked:
        return []
    return [f"{path.name}::{f.name}" for f in functions
            if f.name.startswith("test_") and needs[f.name] and f.name not in marked]


def test_every_test_that_needs_qgis_carries_the_marker():
    modules = sorted(TESTS.glob("test_*.py"))
    assert len(modules) > 30
    assert [name for path in modules for name in unmarked_qgis_tests(path)] == []


def test_the_check_sees_each_way_of_needing_qgis(tmp_path):
    cases = {
        "top.py": "from qgis.core import QgsApplication\ndef test_a():\n    pass\n",
        "helper.py": "def test_a():\n    from helpers import wait_for\n",
        "fixture.py": "import pytest\n@pytest.fixture\ndef layer(qgis_app):\n    pass\ndef test_a(layer):\n    pass\n",
        "marked.py": "import pytest\n@pytest.mark.qgis\ndef test_a(processing):\n    pass\ndef test_b():\n    pass\n",
        "module.py": "import pytest\nimport damp_qgis\npytestmark = pytest.mark.qgis\ndef test_a():\n    pass\n",
    }
    found = {}
    for name, source in cases.items():
        (tmp_path / name).write_text(source)
        found[name] = unmarked_qgis_tests(tmp_path / name)
    assert found == {"top.py": ["top.py (its imports)"], "helper.py": ["helper.py::test_a"],
                     "fixture.py": ["fixture.py::test_a"], "marked.py": [], "module.py": []}


def test_not_qgis_selects_the_engine_tests_only():
    """Collected as a user would run it: `-m "not qgis"` keeps no test of a plugin module."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           "-m", "not qgis", "tests"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    selected = {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}
    plugin_modules = {"tests/test_dock.py", "tests/test_plugin_algorithms.py", "tests/test_processing_conventions.py"}
    assert "tests/test_prompt.py" in selected and not selected & plugin_modules
