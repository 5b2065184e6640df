"""Unit tests of e2h_utils.analysis.tables and e2h_utils.analysis.plots on a small synthetic result table."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from e2h_utils.analysis.estimates import Bootstrap, matrix_rows
from e2h_utils.analysis.plots import (
    CONDITION_COLORS,
    METHOD_COLORS,
    color_for,
    plot_hard_accuracy,
    plot_sgr,
    save_figure,
    style,
)
from e2h_utils.analysis.tables import (
    SGR_TABLE_COLUMNS,
    format_estimate,
    sgr_table,
    takeaway,
    write_table,
)

INDEX = ["dataset", "method"]


def _bernoulli(rng: np.random.Generator, p: float, n_seeds: int, n_items: int) -> np.ndarray:
    return (rng.random((n_seeds, n_items)) < p).astype(float)


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    """A result table of three comparisons. arc_c: clear gap (stable). mmlu: no gap (n.s.).
    gsm8k: easy beats hard (clipped SGR differs)."""
    rng = np.random.default_rng(0)
    n = 400
    same = _bernoulli(rng, 0.5, 1, n)
    boot = Bootstrap(200)
    parts = [
        ({"dataset": "arc_c", "method": "icl"},
         matrix_rows(_bernoulli(rng, 0.25, 1, n), _bernoulli(rng, 0.6, 3, n), _bernoulli(rng, 0.8, 3, n),
                     bootstrap=boot)),
        ({"dataset": "mmlu", "method": "icl"},
         matrix_rows(same, _bernoulli(rng, 0.5, 3, n), same.copy(), bootstrap=boot)),
        ({"dataset": "gsm8k", "method": "probe"},
         matrix_rows(_bernoulli(rng, 0.2, 1, n), _bernoulli(rng, 0.8, 3, n), _bernoulli(rng, 0.6, 3, n),
                     bootstrap=boot)),
    ]
    df = pd.DataFrame([{**keys, **row} for keys, rows in parts for row in rows])
    flags = df.drop_duplicates("dataset")
    assert list(flags["sgr_stable"]) == [True, False, True]
    assert list(flags["clipped_differs"]) == [False, True, True]  # mmlu: easy is off the (empty) gap
    return df


def value(table: pd.DataFrame, dataset: str, quantity: str, field: str = "point") -> float:
    return float(table.loc[(table["dataset"] == dataset) & (table["quantity"] == quantity), field].item())


def _leftovers(folder: Path, expected: set[str]) -> set[str]:
    return {p.name for p in folder.rglob("*")} - expected


# --- tables --------------------------------------------------------------------------------


def test_format_estimate() -> None:
    assert format_estimate(0.512, 0.48, 0.544) == "51.2 [48.0, 54.4]"
    assert format_estimate(0.512, 0.48, 0.544, percent=False, digits=3) == "0.512 [0.480, 0.544]"
    assert format_estimate(math.nan, 0.1, 0.2) == "–"
    assert format_estimate(0.5, math.nan, math.nan) == "50.0"


def test_sgr_table_cells(summary: pd.DataFrame) -> None:
    table = sgr_table(summary, INDEX)
    assert list(table.columns) == list(SGR_TABLE_COLUMNS)
    assert list(table.index.names) == INDEX
    stable = table.loc[("arc_c", "icl")]
    assert stable["SGR"] == format_estimate(*(value(summary, "arc_c", "sgr", f) for f in ("point", "lo", "hi")))
    assert stable["SGR clipped to [0, 1]"] == "=SGR"
    assert stable["unsupervised"].startswith(f"{100 * value(summary, 'arc_c', 'unsupervised'):.1f} [")
    unstable = table.loc[("mmlu", "icl")]
    assert unstable["SGR"] == "n/a (gap n.s.)"
    assert unstable["SGR clipped to [0, 1]"] == "n/a (gap n.s.)"
    assert unstable["gap (hard − unsup.)"].startswith("0.0 [")
    differs = table.loc[("gsm8k", "probe")]
    assert differs["SGR clipped to [0, 1]"].startswith("100.0")
    assert differs["SGR"] != differs["SGR clipped to [0, 1]"]


def test_sgr_table_single_index_and_missing_column(summary: pd.DataFrame) -> None:
    table = sgr_table(summary, ["dataset"])
    assert list(table.index) == ["arc_c", "mmlu", "gsm8k"]
    with pytest.raises(KeyError):
        sgr_table(summary, ["model"])


def test_write_table(tmp_path: Path, summary: pd.DataFrame) -> None:
    stem = tmp_path / "tables" / "sgr_main"
    paths = write_table(sgr_table(summary, INDEX), stem)
    assert paths == [stem.with_name("sgr_main.csv"), stem.with_name("sgr_main.tex")]
    assert all(p.is_file() for p in paths)
    assert _leftovers(tmp_path, {"tables", "sgr_main.csv", "sgr_main.tex"}) == set()
    back = pd.read_csv(paths[0])
    assert list(back.columns) == INDEX + list(SGR_TABLE_COLUMNS)
    assert list(back["dataset"]) == ["arc_c", "mmlu", "gsm8k"]
    tex = paths[1].read_text(encoding="utf-8")
    assert "\\begin{tabular}" in tex and "arc\\_c" in tex
    assert "\u2212" not in tex and "\u2013" not in tex
    write_table(sgr_table(summary, INDEX), stem)  # overwriting works too
    assert _leftovers(tmp_path, {"tables", "sgr_main.csv", "sgr_main.tex"}) == set()


def test_takeaway(summary: pd.DataFrame) -> None:
    text = takeaway(summary, INDEX)
    lines = text.splitlines()
    assert "arc_c / icl" in text and "SGR" in lines[0]
    assert "n.s." in lines[1] and "mmlu / icl" in lines[1]
    assert "median SGR" in text
    median = 100 * float(np.median([value(summary, d, "sgr") for d in ("arc_c", "gsm8k")]))
    assert f"{median:.1f}%" in text
    none_stable = takeaway(summary[summary["dataset"] == "mmlu"], INDEX)
    assert "no row has an oracle gap clearly above zero" in none_stable


# --- plots ---------------------------------------------------------------------------------


def test_style_does_not_touch_global_rc() -> None:
    before = matplotlib.rcParams["font.size"], matplotlib.rcParams["axes.grid"]
    with style():
        assert matplotlib.rcParams["axes.grid"] is True
    assert (matplotlib.rcParams["font.size"], matplotlib.rcParams["axes.grid"]) == before


def test_fixed_colors_distinct() -> None:
    colors = [*CONDITION_COLORS.values(), *METHOD_COLORS.values()]
    assert len(set(colors)) == len(colors)
    assert color_for("Easy") == CONDITION_COLORS["easy"]
    assert color_for("qlora") == METHOD_COLORS["qlora"]


def test_plot_hard_accuracy(summary: pd.DataFrame) -> None:
    fig = plot_hard_accuracy(summary, INDEX)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * summary["dataset"].nunique()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["arc_c\nicl", "mmlu\nicl", "gsm8k\nprobe"]


@pytest.mark.parametrize("hue", [None, "method"])
def test_plot_sgr(summary: pd.DataFrame, hue: str | None) -> None:
    fig = plot_sgr(summary, INDEX, hue=hue)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("gap n.s.") == 1
    xs = {round(line.get_xdata()[0], 6) for line in ax.lines if len(line.get_xdata()) == 2}
    assert {0.0, 100.0} <= xs  # the reference lines


def test_plot_sgr_single_method(summary: pd.DataFrame) -> None:
    fig = plot_sgr(summary[summary["method"] == "icl"], ["dataset", "method"], hue="method")
    assert fig.axes[0].get_title() == "method: icl"


def test_save_figure(tmp_path: Path, summary: pd.DataFrame) -> None:
    stem = tmp_path / "figs" / "sub" / "hard_acc"
    paths = save_figure(plot_hard_accuracy(summary, INDEX), stem)
    assert [p.name for p in paths] == ["hard_acc.pdf", "hard_acc.png"]
    assert paths[0].read_bytes()[:4] == b"%PDF"
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _leftovers(tmp_path, {"figs", "sub", "hard_acc.pdf", "hard_acc.png"}) == set()
