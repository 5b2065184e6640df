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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The e2h_utils modules a file imports, ``from package import module`` resolved to the module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("e2h_utils"):
            folder = PACKAGE.parent.joinpath(*node.module.split("."))
            for alias in node.names:
                is_module = (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir()
                names.add(f"{node.module}.{alias.name}" if is_module else node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("e2h_utils")}
    return names


def test_no_two_modules_import_each_other_even_lazily():
    """No import circle, counting imports inside functions: a module's dependencies are all read
    before it (the package reads top-down within a layer too)."""
    graph = {module_name(p): imported_modules(p) - {module_name(p)} for p in MODULES}
    packages = {module_name(p) for p in MODULES if p.name == "__init__.py"}
    graph = {m: {d for d in deps if d in graph and d not in packages} for m, deps in graph.items() if m not in packages}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for dep in graph[module]:
            if dep not in index:
                visit(dep)
                low[module] = min(low[module], low[dep])
            elif dep in stack:
                low[module] = min(low[module], index[dep])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not circles, circles
