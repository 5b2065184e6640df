"""Tables and a plain-English takeaway from rows of :func:`e2h_utils.metrics.summarize_e2h`.

The input everywhere is a DataFrame with one summary dict per row plus identifying
columns (``dataset``, ``measure``, ``method``, ``model``, ...) named in ``index_cols``.
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


def _cell(row: pd.Series, key: str) -> str:
    return format_estimate(row.get(key), row.get(f"{key}_lo"), row.get(f"{key}_hi"))


def _sgr_cells(row: pd.Series) -> tuple[str, str]:
    """The SGR and clipped-SGR cells of one row.

    SGR: percent with CI when the oracle gap is clearly above zero (``sgr_stable``); else
    ``"n/a (gap n.s.)"`` followed by the point value, so a reader sees what the ratio would
    have said. Clipped SGR (SGR clipped to [0, 1], a reading aid): only where it differs from
    SGR (``clipped_differs``), ``"=SGR"`` otherwise, and ``"n/a (gap n.s.)"`` when the gap is
    not clearly above zero.
    """
    if not _flag(row.get("sgr_stable")):
        point = row.get("sgr")
        shown = NOT_READABLE if _is_nan(point) else f"{NOT_READABLE}; point {100 * float(point):.1f}"
        return shown, NOT_READABLE
    clipped = _cell(row, "sgr_clipped") if _flag(row.get("clipped_differs")) else SAME_AS_SGR
    return _cell(row, "sgr"), clipped


def sgr_table(summary: pd.DataFrame, index_cols: Sequence[str]) -> pd.DataFrame:
    """A table of strings, one row per summary row, indexed by ``index_cols``.

    Columns: ``unsupervised``, ``easy``, ``hard`` (hard-test accuracy, percent with CI),
    ``gap (hard − unsup.)`` (points, with CI), ``SGR`` and ``SGR clipped to [0, 1]`` (percent with CI;
    see :func:`_sgr_cells` for when they are shown).
    """
    index_cols = list(index_cols)
    missing = [c for c in index_cols if c not in summary.columns]
    if missing:
        raise KeyError(f"index columns not in the summary: {missing}")
    records = []
    for _, row in summary.iterrows():
        sgr_cell, clipped_cell = _sgr_cells(row)
        records.append(
            {
                "unsupervised": _cell(row, "acc_unsupervised"),
                "easy": _cell(row, "acc_easy"),
                "hard": _cell(row, "acc_hard"),
                "gap (hard − unsup.)": _cell(row, "gap"),
                "SGR": sgr_cell,
                "SGR clipped to [0, 1]": clipped_cell,
            }
        )
    table = pd.DataFrame(records, columns=list(SGR_TABLE_COLUMNS))
    if index_cols:
        table.index = pd.MultiIndex.from_frame(summary[index_cols].reset_index(drop=True))
        if len(index_cols) == 1:
            table.index = table.index.get_level_values(0)
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
    return " / ".join(str(row[c]) for c in index_cols) if index_cols else str(row.name)


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
    gap = format_estimate(row.get("gap"), row.get("gap_lo"), row.get("gap_hi"))
    if not _flag(row.get("sgr_stable")) or _is_nan(row.get("sgr")):
        return (
            f"- **{label}**: the oracle gap (hard − unsupervised: {gap} points) is not clearly "
            "above zero for this model (n.s.), so SGR can't be read."
        )
    sgr_text = format_estimate(row.get("sgr"), row.get("sgr_lo"), row.get("sgr_hi"))
    return (
        f"- **{label}**: easy training {_recovery_words(float(row['sgr']))} "
        f"(SGR in %: {sgr_text}; oracle gap in points: {gap})."
    )


def takeaway(summary: pd.DataFrame, index_cols: Sequence[str]) -> str:
    """A short markdown takeaway computed from the numbers: one line per row plus an overall line."""
    index_cols = list(index_cols)
    if len(summary) == 0:
        return "No results to summarise."
    lines = [_row_sentence(row, index_cols) for _, row in summary.iterrows()]
    stable = summary[[_flag(v) for v in summary.get("sgr_stable", pd.Series(False, index=summary.index))]]
    values = pd.to_numeric(stable.get("sgr", pd.Series(dtype=float)), errors="coerce").dropna()
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
