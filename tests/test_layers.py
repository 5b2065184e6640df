"""The package reads top-down: a module imports only its own layer and the layers before it.

Layers, in order: core (``paths``, ``atomic``), ``data``, ``engine``, ``methods``, ``experiments``,
``analysis``, ``pipeline``. Imports inside functions count too (a lazy import is still a
dependency), so a lower layer never reaches up to a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "e2h_utils"
LAYERS = ("core", "data", "engine", "methods", "experiments", "analysis", "pipeline")


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "e2h_utils":
        raise ValueError(module)
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def imported(path: Path) -> set[str]:
    """The e2h_utils modules a file imports (absolute imports; the package uses no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; use absolute e2h_utils imports"
            if node.module and node.module.startswith("e2h_utils"):
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("e2h_utils")}
    return names


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_only_to_earlier_layers(path):
    here = "core" if path.parent == PACKAGE else path.parent.name
    assert here in LAYERS
    for module in imported(path):
        there = layer_of(module)
        assert LAYERS.index(there) <= LAYERS.index(here), (f"{path.relative_to(PACKAGE)} ({here}) "
                                                           f"imports {module} ({there})")


def test_every_layer_is_a_package_with_a_map():
    for layer in LAYERS[1:]:
        init = PACKAGE / layer / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), layer
