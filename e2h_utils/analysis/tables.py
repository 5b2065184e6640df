"""Formatted tables and a plain-English takeaway, read from the result table
(``analysis.estimates``: one row per estimate with ``point``, ``lo``, ``hi``).

``sgr_table`` and ``takeaway`` take the result table and the key columns that identify one
comparison (``index_cols``, e.g. ``dataset``, ``measure``, ``method``); ``write_table`` writes any
table as CSV and LaTeX.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from e2h_utils.atomic import atomic_path

MISSING = "–"
NOT_READABLE = "n/a (gap n.s.)"
SAME_AS_SGR = "=SGR"

SGR_TABLE_COLUMNS = (
    "unsupervised",
    "easy",
    "hard",
    "gap (hard − unsup.)",
    "SGR",
    "SGR clipped to [0, 1]",
)


def _is_nan(x: object) -> bool:
    try:
        return x is None or math.isnan(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _flag(x: object) -> bool:
    """A boolean summary column read safely (nan/None/missing counts as False)."""
    return False if _is_nan(x) else bool(x)


def format_estimate(
    point: float, lo: float, hi: float, percent: bool = True, digits: int = 1
) -> str:
    """``"51.2 [48.0, 54.4]"`` (``percent`` multiplies by 100); nan point gives ``"–"``.

    A finite point with a nan interval is shown without brackets.
    """
    if _is_nan(point):
        return MISSING
    scale = 100.0 if percent else 1.0
    text = f"{float(point) * scale:.{digits}f}"
    if _is_nan(lo) or _is_nan(hi):
        return text
    return f"{text} [{float(lo) * scale:.{digits}f}, {float(hi) * scale:.{digits}f}]"


def _get(row: pd.Series, quantity: str, field: str = "point") -> float:
    """A value of one row of ``estimates.wide`` (nan when the quantity is absent)."""
    try:
        return row[(quantity, field)]
    except KeyError:
        return math.nan


def _cell(row: pd.Series, quantity: str) -> str:
    return format_estimate(_get(row, quantity), _get(row, quantity, "lo"), _get(row, quantity, "hi"))


def _sgr_cells(row: pd.Series) -> tuple[str, str]:
    """The SGR and clipped-SGR cells of one row.

    SGR: percent with CI when the oracle gap is clearly above zero (``sgr_stable``); else
    ``"n/a (gap n.s.)"`` followed by the point value, so a reader sees what the ratio would
    have said. Clipped SGR (SGR clipped to [0, 1], a reading aid): only where it differs from
    SGR (``clipped_differs``), ``"=SGR"`` otherwise, and ``"n/a (gap n.s.)"`` when the gap is
    not clearly above zero.
    """
    if not _flag(_get(row, "sgr_stable", "")):
        point = _get(row, "sgr")
        shown = NOT_READABLE if _is_nan(point) else f"{NOT_READABLE}; point {100 * float(point):.1f}"
        return shown, NOT_READABLE
    clipped = _cell(row, "sgr_clipped") if _flag(_get(row, "clipped_differs", "")) else SAME_AS_SGR
    return _cell(row, "sgr"), clipped


def comparisons(result: pd.DataFrame, index_cols: Sequence[str]) -> pd.DataFrame:
    """One row per comparison of the result table (``estimates.wide`` of its comparison rows)."""
    from e2h_utils.analysis.estimates import CONDITIONS, DERIVED, wide

    rows = result[result["quantity"].isin([*CONDITIONS, *DERIVED])]
    return wide(rows, index_cols)


def sgr_table(result: pd.DataFrame, index_cols: Sequence[str]) -> pd.DataFrame:
    """A table of strings, one row per comparison of the result table, indexed by ``index_cols``.

    Columns: ``unsupervised``, ``easy``, ``hard`` (hard-test accuracy, percent with CI),
    ``gap (hard − unsup.)`` (points, with CI), ``SGR`` and ``SGR clipped to [0, 1]`` (percent with CI;
    see :func:`_sgr_cells` for when they are shown).
    """
    index_cols = list(index_cols)
    summary = comparisons(result, index_cols)
    records = []
    for _, row in summary.iterrows():
        sgr_cell, clipped_cell = _sgr_cells(row)
        records.append({"unsupervised": _cell(row, "unsupervised"), "easy": _cell(row, "easy"),
                        "hard": _cell(row, "hard"), "gap (hard − unsup.)": _cell(row, "gap"),
                        "SGR": sgr_cell, "SGR clipped to [0, 1]": clipped_cell})
    table = pd.DataFrame(records, columns=list(SGR_TABLE_COLUMNS))
    if index_cols:
        keys = pd.DataFrame({c: summary[(c, "")].to_numpy() for c in index_cols})
        table.index = pd.MultiIndex.from_frame(keys)
        if len(index_cols) == 1:
            table.index = table.index.get_level_values(0)
    return table


def estimate_table(result: pd.DataFrame, index_cols: Sequence[str], quantity: str = "accuracy",
                   column: str = "accuracy") -> pd.DataFrame:
    """One formatted column (percent with CI) of ``quantity`` per ``index_cols`` group, with the
    number of test items: e.g. the accuracies of prompt sources or of the sanity check."""
    rows = result[result["quantity"] == quantity]
    table = pd.DataFrame({**{c: rows[c].to_numpy() for c in index_cols},
                          column: [format_estimate(p, lo, hi)
                                   for p, lo, hi in zip(rows["point"], rows["lo"], rows["hi"])],
                          "test items": rows["n_items"].to_numpy()})
    if "n_shots" in rows.columns and rows["n_shots"].notna().any():
        table["examples in the prompt"] = rows["n_shots"].to_numpy()
    return table


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    """Index levels as ordinary columns (a default RangeIndex is dropped)."""
    if all(name is None for name in table.index.names):
        return table.reset_index(drop=True)
    return table.reset_index()


def _latex(table: pd.DataFrame) -> str:
    """LaTeX tabular with special characters escaped and the Unicode dashes made ASCII."""
    tex = _flat(table).to_latex(index=False, escape=True)
    return tex.replace("\u2212", "-").replace("\u2013", "--")


def write_parquet(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Write ``stem.parquet`` atomically (creating folders): item-level tables too large for CSV."""
    path = Path(stem).with_name(Path(stem).name + ".parquet")
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    return [path]


def write_table(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Write ``stem.csv`` and ``stem.tex`` atomically (creating folders); return both paths.

    In the ``.tex`` file the Unicode minus becomes ``-`` and the en dash ``--`` so that
    it compiles with pdflatex.
    """
    stem = Path(stem)
    csv_path = stem.with_name(stem.name + ".csv")
    tex_path = stem.with_name(stem.name + ".tex")
    with atomic_path(csv_path) as tmp:
        _flat(table).to_csv(tmp, index=False, encoding="utf-8")
    with atomic_path(tex_path) as tmp:
        tmp.write_text(_latex(table), encoding="utf-8")
    return [csv_path, tex_path]


def _label(row: pd.Series, index_cols: Sequence[str]) -> str:
    return " / ".join(str(row[(c, "")]) for c in index_cols) if index_cols else str(row.name)


def _recovery_words(sgr_value: float) -> str:
    if sgr_value >= 1.0:
        return "recovers all of the gap (easy-trained matches or beats hard-trained)"
    if sgr_value >= 0.9:
        return "recovers nearly all of the gap"
    if sgr_value >= 0.5:
        return "recovers most of the gap"
    if sgr_value > 0:
        return "recovers less than half of the gap"
    return "recovers none of the gap"


def _row_sentence(row: pd.Series, index_cols: Sequence[str]) -> str:
    label = _label(row, index_cols)
    gap = _cell(row, "gap")
    if not _flag(_get(row, "sgr_stable", "")) or _is_nan(_get(row, "sgr")):
        return (
            f"- **{label}**: the oracle gap (hard − unsupervised: {gap} points) is not clearly "
            "above zero for this model (n.s.), so SGR can't be read."
        )
    return (
        f"- **{label}**: easy training {_recovery_words(float(_get(row, 'sgr')))} "
        f"(SGR in %: {_cell(row, 'sgr')}; oracle gap in points: {gap})."
    )


def takeaway(result: pd.DataFrame, index_cols: Sequence[str]) -> str:
    """A short markdown takeaway computed from the comparisons of the result table: one line per
    comparison plus an overall line."""
    index_cols = list(index_cols)
    if len(result) == 0:
        return "No results to summarise."
    summary = comparisons(result, index_cols)
    lines = [_row_sentence(row, index_cols) for _, row in summary.iterrows()]
    stable = [_flag(_get(row, "sgr_stable", "")) for _, row in summary.iterrows()]
    values = pd.Series([_get(row, "sgr") for _, row in summary.iterrows()], dtype=float)[stable].dropna()
    n, n_ns = len(summary), len(summary) - len(values)
    if len(values) == 0:
        overall = (
            f"Overall: no row has an oracle gap clearly above zero ({n_ns} of {n} n.s.), "
            "so no SGR can be read from these runs."
        )
    else:
        median = float(np.median(values.to_numpy(dtype=float)))
        overall = (
            f"Overall: across the {len(values)} of {n} rows with a gap clearly above zero, "
            f"the median SGR is {100 * median:.1f}%"
            + (f"; {n_ns} row(s) are n.s. and not counted." if n_ns else ".")
        )
    return "\n".join(lines + ["", overall])
