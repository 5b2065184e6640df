"""A notebook's parameters, read without running it (the plan, the profile check and ``reproduce``
all read them here, so none of them imports another for it)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat


def notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The values of a notebook's ``parameters`` cell, read without running it: every statement must be
    ``name = <literal>`` (numbers, strings, lists, dicts, tuples, True/False/None), so planning runs no
    notebook code. Anything else is an error naming the notebook and the line."""
    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            values: dict[str, Any] = {}
            for node in ast.parse(cell.source, str(notebook)).body:
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)):
                    raise ValueError(f"{notebook}: the parameters cell, line {node.lineno}: only 'name = <literal>' "
                                     "assignments belong there (the plan reads them without running the notebook)")
                try:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    raise ValueError(f"{notebook}: the parameters cell, line {node.lineno}: {node.targets[0].id} "
                                     "is not a literal (numbers, strings, lists, dicts, True/False/None)") from None
            return values
    raise ValueError(f"{notebook} has no cell tagged 'parameters'")
