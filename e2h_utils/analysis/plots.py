"""One figure style and the figure savers used by every notebook.

Nothing here touches the global rcParams: :func:`style` applies the look inside a
``with`` block only, and the plot functions build ``matplotlib.figure.Figure`` objects
directly (no pyplot state), so they work headless under the Agg backend.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from e2h_utils.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# Okabe-Ito colorblind-safe palette.
OKABE_ITO = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#56B4E9",
    "#CC79A7",
    "#F0E442",
    "#000000",
)

# Fixed colors: training conditions and methods (read-only mappings).
CONDITION_COLORS: Mapping[str, str] = MappingProxyType(
    {
        "unsupervised": "#999999",
        "easy": "#56B4E9",
        "medium": "#009E73",
        "hard": "#D55E00",
        "all": "#000000",
    }
)
METHOD_COLORS: Mapping[str, str] = MappingProxyType(
    {"icl": "#E69F00", "probe": "#0072B2", "qlora": "#CC79A7"}
)
NOT_SIGNIFICANT_COLOR = "#999999"
CONDITIONS = ("unsupervised", "easy", "hard")


def style_rc() -> dict[RcKeyType, Any]:
    """The rc settings of the project's figure style (paper-sized, grid, colorblind-safe)."""
    return {
        "figure.figsize": (6.0, 3.2),
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "axes.grid": True,
        "axes.axisbelow": True,
        "grid.alpha": 0.35,
        "grid.linestyle": ":",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
        "lines.linewidth": 1.5,
        "errorbar.capsize": 2.5,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
    }


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply the project style inside a ``with style():`` block (global rcParams untouched)."""
    with rc_context(rc=style_rc()):
        yield


def color_for(name: str, default: str | None = None) -> str:
    """The fixed color of a condition or method (case-insensitive), else ``default`` or grey."""
    key = str(name).lower()
    if key in CONDITION_COLORS:
        return CONDITION_COLORS[key]
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return default if default is not None else NOT_SIGNIFICANT_COLOR


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Save ``stem.pdf`` and ``stem.png`` (dpi 150) atomically, creating folders; return both."""
    stem = Path(stem)
    paths = [stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")]
    with style():
        for path in paths:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    return paths


def comparisons(result: pd.DataFrame, group_cols: Sequence[str]) -> pd.DataFrame:
    """The comparisons of a result table, one row each (``estimates.wide``)."""
    from e2h_utils.analysis.estimates import CONDITIONS as QUANTITIES_OF_RUNS
    from e2h_utils.analysis.estimates import DERIVED, wide

    return wide(result[result["quantity"].isin([*QUANTITIES_OF_RUNS, *DERIVED])], group_cols)


def _labels(summary: pd.DataFrame, group_cols: Sequence[str]) -> list[str]:
    group_cols = list(group_cols)
    if not group_cols:
        return [str(i) for i in summary.index]
    return [" / ".join(str(v) for v in row) for row in zip(*(summary[(c, "")] for c in group_cols))]


def _errors(point: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(2, n) non-negative error-bar lengths; nan bounds give no bar."""
    below = np.nan_to_num(point - lo, nan=0.0)
    above = np.nan_to_num(hi - point, nan=0.0)
    return np.clip(np.vstack([below, above]), 0.0, None)


def _column(summary: pd.DataFrame, quantity: str, field: str = "point") -> np.ndarray:
    """One (quantity, field) column of ``estimates.wide`` as floats (nan when absent)."""
    if (quantity, field) not in summary.columns:
        return np.full(len(summary), np.nan)
    return pd.to_numeric(summary[(quantity, field)], errors="coerce").to_numpy(dtype=float)


def _flags(summary: pd.DataFrame, key: str) -> np.ndarray:
    if (key, "") not in summary.columns:
        return np.zeros(len(summary), dtype=bool)
    return np.array([False if pd.isna(v) else bool(v) for v in summary[(key, "")]], dtype=bool)


def plot_hard_accuracy(result: pd.DataFrame, group_cols: Sequence[str]) -> Figure:
    """Grouped bars of hard-test accuracy (unsupervised / easy / hard) with CI error bars.

    One group per comparison of the result table, labelled by ``group_cols`` joined with " / ".
    """
    summary = comparisons(result, group_cols)
    labels = [label.replace(" / ", "\n") for label in _labels(summary, group_cols)]
    n = len(labels)
    with style():
        fig = Figure(figsize=(max(3.5, 1.3 * n + 1.5), 3.6))
        ax = fig.add_subplot()
        x = np.arange(n)
        width = 0.8 / len(CONDITIONS)
        for k, cond in enumerate(CONDITIONS):
            point = 100 * _column(summary, cond)
            lo = 100 * _column(summary, cond, "lo")
            hi = 100 * _column(summary, cond, "hi")
            ax.bar(
                x + (k - (len(CONDITIONS) - 1) / 2) * width,
                np.nan_to_num(point, nan=0.0),
                width,
                yerr=_errors(point, lo, hi),
                color=color_for(cond),
                label=cond,
                error_kw={"elinewidth": 1.0, "ecolor": "#333333"},
            )
        ax.set_xticks(x, labels, fontsize="small")
        ax.set_ylabel("accuracy on hard test items (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="x", visible=False)
        ax.legend(
            title="trained on:", ncols=len(CONDITIONS), loc="lower left",
            bbox_to_anchor=(0.0, 1.0), alignment="left",
        )
        fig.tight_layout()
    return fig


def _hue_colors(values: Sequence[object]) -> dict[object, str]:
    """Fixed colors for known methods/conditions, Okabe-Ito for the rest (in order of appearance)."""
    colors: dict[object, str] = {}
    spare = iter(c for c in OKABE_ITO if c not in METHOD_COLORS.values())
    for v in dict.fromkeys(values):
        known = color_for(str(v), default="")
        colors[v] = known or next(spare, NOT_SIGNIFICANT_COLOR)
    return colors


def _x_limits(point: np.ndarray, lo: np.ndarray, hi: np.ndarray, stable: np.ndarray) -> tuple[float, float]:
    """x range covering 0..100 and the stable rows' CIs, capped so a noisy CI can't flatten the plot."""
    vals = np.concatenate([point[stable], lo[stable], hi[stable]])
    vals = vals[np.isfinite(vals)]
    left = min(-10.0, float(vals.min()) - 5) if vals.size else -10.0
    right = max(110.0, float(vals.max()) + 5) if vals.size else 110.0
    return max(left, -200.0), min(right, 300.0)


def plot_sgr(
    result: pd.DataFrame, group_cols: Sequence[str], hue: str | None = None
) -> Figure:
    """SGR (%) per comparison of the result table as points with CI error bars, one per line,
    reference lines at 0 and 100.

    Comparisons whose oracle gap is not clearly above zero (``sgr_stable`` False) are drawn hollow
    and grey, clipped to the axis, and annotated "gap n.s.". ``hue`` (e.g. ``"method"``, one of
    ``group_cols``) colors the stable points; with a single hue value it goes in the title instead
    of a legend.
    """
    summary = comparisons(result, group_cols)
    labels = _labels(summary, group_cols)
    n = len(labels)
    point = 100 * _column(summary, "sgr")
    lo = 100 * _column(summary, "sgr", "lo")
    hi = 100 * _column(summary, "sgr", "hi")
    stable = _flags(summary, "sgr_stable")
    hue_values = list(summary[(hue, "")]) if hue is not None else [None] * n
    colors = _hue_colors(hue_values) if hue is not None else {None: OKABE_ITO[0]}
    with style():
        fig = Figure(figsize=(5.5, max(1.8, 0.35 * n + 1.0)))
        ax = fig.add_subplot()
        left, right = _x_limits(point, lo, hi, stable)
        y = np.arange(n)[::-1]
        for i in range(n):
            p, low, h = (np.clip(v, left, right) for v in (point[i], lo[i], hi[i]))
            shown = p if math.isfinite(p) else 0.0
            xerr = _errors(np.array([shown]), np.array([low]), np.array([h]))
            if stable[i]:
                color = colors[hue_values[i]]
                ax.errorbar(shown, y[i], xerr=xerr, fmt="o", color=color, markersize=5)
            else:
                ax.errorbar(
                    shown, y[i], xerr=xerr, fmt="o", color=NOT_SIGNIFICANT_COLOR,
                    markerfacecolor="white", markersize=5,
                )
                ax.annotate(
                    "gap n.s.", (shown, y[i]), xytext=(6, 4), textcoords="offset points",
                    fontsize=7, color=NOT_SIGNIFICANT_COLOR,
                )
        ax.axvline(0, color="#333333", linewidth=0.8)
        ax.axvline(100, color="#333333", linewidth=0.8, linestyle="--")
        ax.set_xlim(left, right)
        ax.set_ylim(-0.7, n - 0.3)
        ax.set_yticks(y, labels)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("supervision gap recovered by easy data (SGR, %)")
        handles = []
        distinct = list(dict.fromkeys(hue_values))
        if hue is not None and len(distinct) > 1:
            drawn = dict.fromkeys(v for v, ok in zip(hue_values, stable) if ok)
            handles = [
                Line2D([], [], marker="o", linestyle="", color=colors[v], label=str(v)) for v in drawn
            ]
        elif hue is not None and distinct:
            ax.set_title(f"{hue}: {distinct[0]}")
        if not stable.all():
            handles.append(
                Line2D([], [], marker="o", linestyle="", color=NOT_SIGNIFICANT_COLOR,
                       markerfacecolor="white", label="gap n.s.")
            )
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
    return fig
