"""The package's dependencies point down: scripts/import_graph.py (pure ast, nothing imported)
measures no import cycle at run time, none wider than 3 modules counting TYPE_CHECKING imports,
no private name or private module imported across modules, and no private attribute of another
module's object read; and only the façade's users import ``deepfake_detect.detector``."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_graph.py"
PACKAGE = ROOT / "src" / "deepfake_detect"

#: The modules allowed to import ``deepfake_detect.detector`` (the façade): the package's
#: ``__init__`` and the modules above it, which take a Detector from the user.
ABOVE_THE_FACADE = {
    "deepfake_detect",
    "deepfake_detect.cli",
    "deepfake_detect.serve",
    "deepfake_detect.serve.app",
    "deepfake_detect.robustness",
    "deepfake_detect.submission",
}


@pytest.fixture(scope="module")
def import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # its dataclasses look their module up while being made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["import_graph"]
    return module


def test_the_measured_targets_are_met(import_graph: ModuleType) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert import_graph.main(["--root", str(PACKAGE)]) == 0
    text = out.getvalue()

    def number(label: str) -> int:
        found = re.search(rf"^{re.escape(label)}: (\d+)", text, re.MULTILINE)
        assert found is not None, f"{label!r} is not in the output:\n{text}"
        return int(found.group(1))

    assert number("largest cycle at run time") == 0, text
    assert number("largest cycle counting TYPE_CHECKING imports") <= 3, text
    assert number("private names imported across modules") == 0, text
    assert number("private modules imported from outside their package") == 0, text
    assert number("private attribute reads across modules (heuristic)") == 0, text
    assert "NOT met" not in text, text


def test_only_the_facades_users_import_the_detector_module(import_graph: ModuleType) -> None:
    modules = import_graph.module_names(PACKAGE)
    importers = set()
    for name, path in modules.items():
        scanner = import_graph.ModuleScanner(name, path.name == "__init__.py", modules)
        scanner.visit(import_graph.ast.parse(path.read_text(encoding="utf-8")))
        if any(edge.target == "deepfake_detect.detector" for edge in scanner.edges):  # run time or TYPE_CHECKING
            importers.add(name)
    assert importers <= ABOVE_THE_FACADE, sorted(importers - ABOVE_THE_FACADE)
