"""Figures of the RQ1, RQ3 and RQ4 notebooks, in the project style (``plots.style``).

Every function takes the tidy frame a ``sweeps`` / ``hardness_stats`` function returns and
builds a ``matplotlib.figure.Figure`` without pyplot state; save it with ``plots.save_figure``.
Accuracies are fractions in the frames and percentages on the axes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from e2h_utils.analysis.plots import CONDITION_COLORS, NOT_SIGNIFICANT_COLOR, OKABE_ITO, color_for, style

if TYPE_CHECKING:
    from matplotlib.artist import Artist

LEVEL_ORDER = ("none", "easy", "medium", "hard", "all")


def _grid(n_panels: int, width: float = 3.2, height: float = 2.8, max_cols: int = 3) -> tuple[Figure, list]:
    """A figure of ``n_panels`` axes, ``max_cols`` per row, with constrained layout (tick labels,
    colorbars and outside legends get their room; no ``tight_layout`` needed)."""
    cols = max(1, min(max_cols, n_panels))
    rows = max(1, math.ceil(n_panels / cols))
    fig = Figure(figsize=(width * cols + 0.6, height * rows + 0.4), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _shared_legend(fig: Figure, axes: Sequence, title: str | None = None) -> None:
    """One legend for the figure, right of the panels, with every label drawn in any panel
    (a panel may lack a series: e.g. a dataset with one MDL learner)."""
    handles: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), title=title, loc="outside right upper")


def _size_axis(ax, values) -> None:
    """Log x axis with a tick at each size present, labelled plainly (2, 5, 20, not 2x10^0)."""
    present = sorted({float(v) for v in values if np.isfinite(v)})
    if not present:
        return
    if present[0] > 0:
        ax.set_xscale("log")
        pad = 1.25 if len(present) > 1 else 2.0
        ax.set_xlim(present[0] / pad, present[-1] * pad)
    else:  # a size of 0: linear near zero
        ax.set_xscale("symlog", linthresh=1)
    ax.xaxis.set_major_locator(FixedLocator(present))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


PANEL_COLS = ("dataset", "measure", "method")


def _panels(frame: pd.DataFrame, cols: Sequence[str] = PANEL_COLS) -> list[tuple[tuple, pd.DataFrame]]:
    """(key, rows) per distinct combination of ``cols``, in order of first appearance."""
    return [(key if isinstance(key, tuple) else (key,), part)
            for key, part in frame.groupby(list(cols), sort=False, dropna=False)]


def plot_correlations(matrices: dict[str, pd.DataFrame]) -> Figure:
    """Spearman heatmaps, one panel per dataset (values annotated; blank where undefined)."""
    with style():
        sizes = [len(m) for m in matrices.values()]
        fig, axes = _grid(len(matrices), width=0.55 * max(sizes, default=4) + 1.6,
                          height=0.5 * max(sizes, default=4) + 1.2)
        image = None
        for ax, (name, rho) in zip(axes, matrices.items()):
            values = rho.to_numpy(dtype=float)
            image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1)
            ax.set_xticks(range(len(rho)), list(rho.columns), rotation=60, ha="right", fontsize=7)
            ax.set_yticks(range(len(rho)), list(rho.index), fontsize=7)
            ax.grid(False)
            for i in range(len(rho)):
                for j in range(len(rho)):
                    if np.isfinite(values[i, j]):
                        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if abs(values[i, j]) > 0.6 else "black")
            ax.set_title(name)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, label="Spearman ρ")
    return fig


def plot_accuracy_by_level(table: pd.DataFrame, title: str = "zero-shot accuracy") -> Figure:
    """Accuracy per measure (x) and level (easy / medium / hard) as points with 95% CIs, one
    panel per dataset. A level with no items under a measure has no point (0% is drawn)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    with style():
        fig, axes = _grid(len(datasets), width=max(3.2, 0.9 * table.groupby("dataset")["measure"].nunique().max() + 1))
        for ax, dataset in zip(axes, datasets):
            part = table[table["dataset"] == dataset]
            measures = list(dict.fromkeys(part["measure"]))
            x = np.arange(len(measures))
            width = 0.8 / 3
            for k, level in enumerate(("easy", "medium", "hard")):
                rows = part[part["level"] == level].set_index("measure").reindex(measures)
                point = 100 * rows["point"].to_numpy(dtype=float)
                err = np.clip(np.vstack([point - 100 * rows["lo"].to_numpy(dtype=float),
                                         100 * rows["hi"].to_numpy(dtype=float) - point]), 0, None)
                shown = np.isfinite(point)
                ax.errorbar((x + (k - 1) * width)[shown], point[shown], yerr=np.nan_to_num(err[:, shown]),
                            fmt="o", markersize=4, color=CONDITION_COLORS[level], label=level, elinewidth=1)
            ax.set_xticks(x, measures, rotation=30, ha="right", fontsize=7)
            ax.set_xlim(-0.6, len(measures) - 0.4)
            ax.set_ylim(-3, 103)
            ax.set_ylabel("accuracy (%)")
            ax.set_title(dataset)
            ax.grid(axis="x", visible=False)
        _shared_legend(fig, axes, title="item level")
        fig.suptitle(title)
    return fig


# hard-data points are hollow squares, so an easy point at the same spot stays visible
_MARKERS = {"hard": {"marker": "s", "markerfacecolor": "white", "markersize": 6}}


def _band(ax, x, point, lo, hi, color, label, level=None):
    style_kw = _MARKERS.get(level, {"marker": "o", "markersize": 4})
    ax.plot(x, point, color=color, label=label, zorder=3 if level == "easy" else 2, **style_kw)
    ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)


def plot_learning_curves(curves: pd.DataFrame, x: str = "n",
                         panel_cols: Sequence[str] = ("dataset", "measure", "method"),
                         xlabel: str | None = None, title: str | None = None) -> Figure:
    """Hard-test accuracy vs ``x`` (``n`` or ``cost``) per training level, with 95% CI bands;
    the zero-shot baseline as a dashed line. ``curves``: the accuracy rows of a result table
    (``point``, ``lo``, ``hi``, ``train_level``, ``n``). One panel per ``panel_cols`` combination;
    keep ``xlabel`` short (it repeats under every panel) and put details in ``title``."""
    panels = _panels(curves, panel_cols)
    with style():
        fig, axes = _grid(len(panels))
        for ax, (key, part) in zip(axes, panels):
            for level in [lv for lv in LEVEL_ORDER if lv != "none" and lv in set(part["train_level"])]:
                rows = part[part["train_level"] == level].sort_values(x)
                _band(ax, rows[x].to_numpy(dtype=float), 100 * rows["point"], 100 * rows["lo"], 100 * rows["hi"],
                      color_for(level), f"{level} data", level)
            zero = part[part["train_level"] == "none"]
            if len(zero):
                ax.axhline(100 * float(zero["point"].iloc[0]), color=CONDITION_COLORS["unsupervised"],
                           linestyle="--", linewidth=1, label="zero-shot")
            _size_axis(ax, part.loc[part["train_level"] != "none", x].to_numpy(dtype=float))
            ax.set_ylim(-3, 103)
            ax.set_xlabel(xlabel or ("training examples (k for ICL)" if x == "n" else x))
            ax.set_ylabel("hard-test accuracy (%)")
            ax.set_title(" / ".join(str(k) for k in key), fontsize=9)
        _shared_legend(fig, axes)
        if title:
            fig.suptitle(title, fontsize=10)
    return fig


def plot_noise(result: pd.DataFrame) -> Figure:
    """Hard-test accuracy of easy (noise p) and hard (noise ``noise_hard_rate``, e.g. 2p) training
    vs p, with 95% CIs; zero-shot as a dashed line. One panel per dataset / measure / method.
    ``result``: the result table of the label-noise plan."""
    from e2h_utils.analysis.plots import comparisons

    wide = comparisons(result, ["dataset", "measure", "method", "p", "noise_hard_rate"])
    sweep = pd.DataFrame({"dataset": wide[("dataset", "")], "measure": wide[("measure", "")],
                          "method": wide[("method", "")], "p": wide[("p", "")].astype(float),
                          "noise_hard": wide[("noise_hard_rate", "")].astype(float),
                          **{f"{q}{suffix}": wide[(q, field)].astype(float)
                             for q in ("unsupervised", "easy", "hard")
                             for suffix, field in (("", "point"), ("_lo", "lo"), ("_hi", "hi"))}})
    panels = _panels(sweep)
    with style():
        fig, axes = _grid(len(panels))
        for ax, (key, part) in zip(axes, panels):
            part = part.sort_values("p")
            p = 100 * part["p"].to_numpy(dtype=float)
            noisy = part[(part["p"] > 0) & (part["noise_hard"] < 1)] if "noise_hard" in part else part.iloc[:0]
            hard_rate = f"{float(noisy['noise_hard'].iloc[0] / noisy['p'].iloc[0]):g}p" if len(noisy) else "2p"
            for level in ("easy", "hard"):
                _band(ax, p, 100 * part[level], 100 * part[f"{level}_lo"], 100 * part[f"{level}_hi"],
                      color_for(level), f"{level} data (noise {'p' if level == 'easy' else hard_rate})",
                      level)
            ax.axhline(100 * float(part["unsupervised"].iloc[0]), color=CONDITION_COLORS["unsupervised"],
                       linestyle="--", linewidth=1, label="zero-shot")
            ax.set_xticks(p)
            ax.set_ylim(-3, 103)
            ax.set_xlabel("label noise p of easy data (%)")
            ax.set_ylabel("hard-test accuracy (%)")
            ax.set_title(" / ".join(map(str, key)), fontsize=9)
        _shared_legend(fig, axes)
    return fig


def plot_level_grid(grid: pd.DataFrame) -> Figure:
    """Heatmaps of accuracy (%) by train level (rows) and test level (columns), one per
    dataset / measure / method (``grid``: the accuracy rows of a level-grid result table)."""
    panels = _panels(grid)
    with style():
        fig, axes = _grid(len(panels), width=3.0, height=2.6)
        for ax, (key, part) in zip(axes, panels):
            table = part.pivot_table(index="train_level", columns="test_level", values="point", aggfunc="first")
            table = table.reindex([lv for lv in LEVEL_ORDER if lv in table.index],
                                  axis=0).reindex([lv for lv in LEVEL_ORDER if lv in table.columns], axis=1)
            values = 100 * table.to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            vmin, vmax = (finite.min() - 5, finite.max() + 5) if finite.size else (0.0, 100.0)
            ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_xticks(range(table.shape[1]), list(table.columns), fontsize=7)
            ax.set_yticks(range(table.shape[0]), ["none (zero-shot)" if r == "none" else r for r in table.index],
                          fontsize=7)
            ax.set_xlabel("test items", fontsize=8)
            ax.set_ylabel("training data", fontsize=8)
            ax.grid(False)
            for i in range(values.shape[0]):
                for j in range(values.shape[1]):
                    if np.isfinite(values[i, j]):  # dark text on the light (yellow) end of viridis
                        light = (values[i, j] - vmin) / (vmax - vmin) > 0.6
                        ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="black" if light else "white")
            ax.set_title(" / ".join(map(str, key)), fontsize=9)
        fig.suptitle("accuracy (%) by training and test level", fontsize=9)
    return fig


def plot_sources(table: pd.DataFrame, title: str) -> Figure:
    """Horizontal bars: accuracy (with 95% CI) for each source of in-context examples (``table``:
    the accuracy rows of a prompt-sources result table)."""
    with style():
        fig = Figure(figsize=(5.5, 0.4 * len(table) + 1.2))
        ax = fig.add_subplot()
        y = np.arange(len(table))[::-1]
        point = 100 * table["point"].to_numpy(dtype=float)
        err = np.clip(np.vstack([point - 100 * table["lo"].to_numpy(dtype=float),
                                 100 * table["hi"].to_numpy(dtype=float) - point]), 0, None)
        colors = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(table))]
        ax.barh(y, np.nan_to_num(point), xerr=err, color=colors, error_kw={"elinewidth": 0.8})
        ends = np.nan_to_num(point + err[1])
        for yi, value, end in zip(y, point, ends):  # the value beside each bar (0% has no visible bar)
            ax.text(min(end, 88.0) + 1.5, yi, "n/a" if not np.isfinite(value) else f"{value:.1f}%",
                    va="center", fontsize=7)
        ax.set_yticks(y, list(table["source"]))
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        fig.tight_layout()
    return fig


def plot_sources_by_model(result: pd.DataFrame, models: Sequence[str], k: int,
                          stem: str = "third_grade_to_college") -> dict[str, Figure]:
    """``plot_sources`` of each model's rows of ``result``, named ``stem`` for the first (the headline
    model) and ``<stem>_model<i>`` for the i-th after it."""
    figs = {}
    for position, name in enumerate(models):
        table = result[result["model"] == name].reset_index(drop=True)
        title = f"{name}: MMLU college test items ({int(table['n_items'].iloc[0])}), k = {k}"
        figs[stem if position == 0 else f"{stem}_model{position + 1}"] = plot_sources(table, title)
    return figs


def plot_by_model(result: pd.DataFrame, models: Sequence[str]) -> Figure:
    """Hard-test accuracy (unsupervised / easy / hard, with CIs) across models in the given
    order, one panel per dataset / measure / method. With one model the x axis has one point."""
    from e2h_utils.analysis.plots import comparisons

    wide = comparisons(result, ["model", "dataset", "measure", "method"])
    summary = pd.DataFrame({**{c: wide[(c, "")] for c in ("model", "dataset", "measure", "method")},
                            **{f"{q}{suffix}": wide[(q, field)].astype(float)
                               for q in ("unsupervised", "easy", "hard")
                               for suffix, field in (("", "point"), ("_lo", "lo"), ("_hi", "hi"))}})
    panels = _panels(summary)
    with style():
        fig, axes = _grid(len(panels))
        for ax, (key, part) in zip(axes, panels):
            part = part.set_index("model").reindex(models)
            x = np.arange(len(models))
            for offset, cond in zip((-0.1, 0.0, 0.1), ("unsupervised", "easy", "hard")):
                point = 100 * part[cond].to_numpy(dtype=float)
                err = np.clip(np.vstack([point - 100 * part[f"{cond}_lo"].to_numpy(dtype=float),
                                         100 * part[f"{cond}_hi"].to_numpy(dtype=float) - point]), 0, None)
                ax.errorbar(x + offset, point, yerr=np.nan_to_num(err), marker="o", markersize=4,
                            color=color_for(cond), label=cond, linestyle="-" if len(models) > 1 else "none")
            ax.set_xticks(x, [m.split("/")[-1] for m in models], rotation=20, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(models) - 0.5)
            ax.set_ylim(-3, 103)
            ax.set_ylabel("hard-test accuracy (%)")
            ax.set_title(" / ".join(map(str, key)), fontsize=9)
        _shared_legend(fig, axes, title="trained on:")
    return fig


def plot_mdl_curves(confidences: pd.DataFrame) -> Figure:
    """Mean confidence in the correct answer vs training-subset size, per MDL learner (averaged
    over seeds and hardness models), one panel per dataset: what each MDL score averages over.
    The zero-shot learner (no training, size 0) is a dashed horizontal line."""
    datasets = list(dict.fromkeys(confidences["dataset"]))
    with style():
        fig, axes = _grid(len(datasets))
        for ax, dataset in zip(axes, datasets):
            part = confidences[confidences["dataset"] == dataset]
            trained = part[part["size"] > 0]
            for k, (learner, rows) in enumerate(part.groupby("learner", sort=True)):
                color = color_for(learner, OKABE_ITO[k])
                if (rows["size"] == 0).all():
                    ax.axhline(100 * rows["p_correct"].mean(), color=color, linestyle="--", label=learner)
                    continue
                mean = rows.groupby("size")["p_correct"].mean()
                ax.plot(mean.index, 100 * mean.to_numpy(), marker="o", markersize=4, color=color, label=learner)
            if len(trained):
                _size_axis(ax, trained["size"].to_numpy(dtype=float))
            else:
                ax.set_xticks([])
            ax.set_xlabel("training subset size")
            ax.set_ylabel("mean P(correct answer) (%)")
            ax.set_title(dataset)
        _shared_legend(fig, axes, title="learner")
    return fig


# --- easy-to-hard evaluators (Sun et al. 2024) ---------------------------------------------------

_RULE_STYLE = {"majority": ("majority voting", "unsupervised", "--"), "pass_at_n": ("pass@N (ceiling)", None, ":")}


def plot_rerank_by_n(result: pd.DataFrame, evaluator: str = "probe") -> Figure:
    """Hard-test accuracy as the number of samples N grows, per dataset: majority voting (the
    unsupervised baseline, dashed), pass@N (the ceiling, dotted), and weighted voting / best-of-N
    with the ``evaluator`` trained on easy and on hard samples (95% CI bands). ``result``: the
    evaluator result table (``analysis.evaluator_table``)."""
    acc = result[result["quantity"] == "accuracy"]
    datasets = list(dict.fromkeys(acc["dataset"]))
    with style():
        fig, axes = _grid(len(datasets))
        for ax, dataset in zip(axes, datasets):
            part = acc[acc["dataset"] == dataset]
            for rule, (label, color, line) in _RULE_STYLE.items():
                rows = part[part["rule"] == rule].sort_values("n_samples")
                ax.plot(rows["n_samples"], 100 * rows["point"], linestyle=line, linewidth=1.2, label=label,
                        color=color_for(color) if color else "#000000")
            for rule, marker in (("weighted", "o"), ("best_of_n", "^")):
                for level in ("easy", "hard"):
                    rows = part[(part["method"] == evaluator) & (part["rule"] == rule)
                                & (part["train_level"] == level)].sort_values("n_samples")
                    if rows.empty:
                        continue
                    name = "weighted voting" if rule == "weighted" else "best-of-N"
                    ax.plot(rows["n_samples"], 100 * rows["point"], color=color_for(level), marker=marker,
                            markersize=4, markerfacecolor="white" if rule == "best_of_n" else color_for(level),
                            label=f"{name}, {level}-trained {evaluator}")
                    ax.fill_between(rows["n_samples"], 100 * rows["lo"], 100 * rows["hi"], color=color_for(level),
                                    alpha=0.10, linewidth=0)
            _size_axis(ax, part["n_samples"])
            ax.set_ylim(-3, 103)
            ax.set_xlabel("samples per problem (N)")
            ax.set_ylabel("hard-test accuracy (%)")
            ax.set_title(f"{dataset} / {part['measure'].iloc[0]}", fontsize=9)
        _shared_legend(fig, axes)
    return fig


def plot_evaluator_sgr(result: pd.DataFrame) -> Figure:
    """Evaluator SGR at the largest N, one bar per dataset / evaluator / rule with its 95% CI;
    grey bars where the gap (hard-trained rerank − majority) is not clearly above zero (n.s.)."""
    from e2h_utils.analysis.evaluator_table import sgr_rows

    rows = sgr_rows(result)
    rows = rows[rows["quantity"] == "sgr"].reset_index(drop=True)
    with style():
        fig = Figure(figsize=(max(4.0, 0.9 * len(rows) + 1.5), 3.0), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        labels = [f"{r.dataset}\n{r.method} {r.rule.replace('_', '-')}" for r in rows.itertuples()]
        for i, r in enumerate(rows.itertuples()):
            stable = bool(r.sgr_stable)
            color = color_for(r.method) if stable else NOT_SIGNIFICANT_COLOR
            point = 100 * float(np.clip(r.point, -1, 2)) if np.isfinite(r.point) else 0.0
            ax.bar(i, point, color=color, alpha=0.85 if stable else 0.4)
            if stable and np.isfinite(r.lo):
                ax.errorbar(i, point, yerr=[[point - 100 * r.lo], [100 * r.hi - point]], color="#000000", linewidth=1)
            if not stable:
                ax.text(i, 2, "gap n.s.", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.axhline(100, color="#000000", linewidth=0.8, linestyle=":")
        ax.axhline(0, color="#000000", linewidth=0.8)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylabel("evaluator SGR (%)")
    return fig
