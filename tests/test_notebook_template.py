"""Every notebook is a document of one shape, and its defaults are the embedded profile.

- its ``parameters`` cell holds exactly the values ``make reproduce`` passes under the embedded
  profile (``test_reproduce.py::test_parameters_cells_are_the_embedded_profile``), so *Run All* in
  JupyterLab reads what ``make reproduce`` stored;
- it parses its parameters into typed settings once (``settings.parse``) and builds its runs from
  the package's plans: no loop of its own over datasets, measures and methods;
- it states the paper's claim it checks, links the fidelity ledger, has a takeaway computed by
  ``analysis.takeaways``, ends with the claims table of ``analysis.claims`` and keeps its
  provenance in a last, collapsed cell;
- source notebooks are committed without outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from e2h_utils.experiments import settings
from e2h_utils.pipeline import notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def _cells(name: str) -> list:
    return nbformat.read(str(ROOT / "notebooks" / f"{name}.ipynb"), as_version=4).cells


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_parse_into_typed_settings(name):
    defaults = notebooks.notebook_defaults(ROOT / "notebooks" / f"{name}.ipynb")
    typed = settings.parse(name, defaults)
    assert isinstance(typed, settings.NOTEBOOKS[name])
    typed.plan()  # builds without a model or data


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_follows_the_template(name):
    cells = _cells(name)
    code = [c for c in cells if c.cell_type == "code"]
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell is the parameters cell"
    assert f'settings.parse("{name}", globals())' in code[1].source, "the setup cell parses the typed settings"
    assert "fidelity.md" in markdown and "](../docs/fidelity.md)" in markdown
    if name != "walkthrough":
        assert "**The paper's claim" in cells[0].source
        assert any("takeaways." in c.source for c in code), "a takeaway computed by analysis.takeaways"
    claims_cell = next(i for i, c in enumerate(code) if f'claims.table("{name}"' in c.source)
    assert claims_cell == len(code) - 2, "the claims table is the last cell before the provenance"
    last = code[-1]
    assert "provenance" in last.metadata.get("tags", []) and last.metadata.get("jupyter", {}).get("source_hidden")
    assert "log.write(" in last.source
    for cell in code:  # orchestration lives in the package: no loops over the grid, no timing bookkeeping
        assert "time.perf_counter" not in cell.source and "for method in" not in cell.source, cell.source[:80]
        assert not cell.get("outputs") and cell.get("execution_count") is None, "committed without outputs"
    for cell in code[1:]:  # no loop, function or file bookkeeping of the notebook's own: the package owns them
        statements = "\n".join(line.split("#")[0] for line in cell.source.splitlines())
        assert not re.search(r"\b(for|while|def|lambda)\b", statements), f"{name}: a loop or function in a cell: " \
            f"{cell.source[:120]}"
        assert "written" not in statements and ".to_parquet(" not in statements and "save_figure(" not in statements, \
            f"{name}: write tables and figures through outputs.Outputs (out.table / out.figure): {cell.source[:120]}"
    reading = "\n".join(line.split("#")[0] for c in code[1:] for line in c.source.splitlines())
    shown = re.search(r"plans\.table\(|cfg\.mdl\.table\(|evaluation\.plan_table\(", reading)
    runs = re.search(r"run_all\(|run_for_models\(|samples_of\(|per_model\.table\(", reading)
    assert shown and runs and shown.start() < runs.start(), f"{name}: the plan is shown as a table before it runs"
