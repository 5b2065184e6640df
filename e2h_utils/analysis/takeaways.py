"""The sentences each notebook ends with, computed from its result table (never hand-written).

One function per notebook; each returns Markdown. They read only the result table
(``analysis.estimates``) and the notebook's own derived tables, so a rerun with other numbers
changes the sentences with them.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from e2h_utils.analysis import hardness_stats, tables
from e2h_utils.analysis.estimates import wide


def _points(row: pd.Series, quantity: str) -> str:
    return (f"{100 * row[(quantity, 'point')]:+.1f} points [{100 * row[(quantity, 'lo')]:+.1f}, "
            f"{100 * row[(quantity, 'hi')]:+.1f}]")


def easy_to_hard(result: pd.DataFrame, index_cols: Sequence[str] = ("dataset", "measure", "method")) -> str:
    """One line per comparison (does easy data recover the gap, and can SGR be read), and the
    median SGR over the readable ones."""
    return tables.takeaway(result, list(index_cols))


def live_experiment(result: pd.DataFrame, target: float = 5.0) -> str:
    """What the walkthrough's live comparison can and cannot show: its oracle gap and hard − easy with
    their CIs, and how many hard test items a CI of +-``target`` points would take at this size
    (``analysis.power``, from the CI this run measured)."""
    from e2h_utils.analysis import power

    lines = []
    for quantity, name in (("gap", "oracle gap (hard − zero-shot)"), ("hard_minus_easy", "hard − easy")):
        rows = result[result["quantity"] == quantity]
        if rows.empty:
            continue
        row = rows.iloc[0]
        half = 100 * (row["hi"] - row["lo"]) / 2
        n, seeds = int(row["n_items"]), int(row["n_seeds"])
        needed = power.items_needed(target, power.from_half_width(half, n), 1)
        lines.append(f"- {name}: {100 * row['point']:+.1f} points [{100 * row['lo']:+.1f}, {100 * row['hi']:+.1f}] "
                     f"on {n} hard test items and {seeds} seed{'s' if seeds != 1 else ''}, a CI of ±{half:.1f} points; "
                     f"±{target:g} would need ≈ {power.about(needed or n):,} items.")
    lines.append("- A live experiment this size can show the pipeline, not the effect: read the measurement "
                 "(hundreds of hard test items per measure and several seeds; `make plan` prints its design's widths) "
                 "in `easy_to_hard`.")
    return "\n".join(lines)


def hardness_measures(correlations: hardness_stats.Correlations, by_level: pd.DataFrame) -> str:
    """Per dataset: the median |rho| and the strongest pair; per measure: whether zero-shot
    accuracy is clearly lower on its hard items."""
    lines = []
    strongest = correlations.strongest()
    for dataset, rho in correlations.matrices.items():
        top = strongest[strongest["dataset"] == dataset]
        best = (f"strongest pair: {top.iloc[0]['measure a']} vs {top.iloc[0]['measure b']} (rho = "
                f"{top.iloc[0]['rho']:.2f}, {top.iloc[0]['items']} items)" if len(top) else "no pair with enough items")
        lines.append(f"- **{dataset}**: median |rho| over pairs of its {len(rho)} measures = "
                     f"{hardness_stats.median_abs_correlation(rho):.2f}; {best}.")
    if len(by_level):
        for row in hardness_stats.easy_vs_hard(by_level).to_dict("records"):
            verdict = ("clearly lower on hard items" if row["clearly harder"]
                       else "no clear difference (95% CIs overlap)")
            lines.append(f"- zero-shot {row['dataset']}/{row['measure']}: easy {100 * row['easy']:.1f}% "
                         f"({row['n easy']} items) vs hard {100 * row['hard']:.1f}% ({row['n hard']} items) "
                         f"— {verdict}.")
    return "\n".join(lines)


def label_noise(result: pd.DataFrame) -> str:
    """Per sweep: hard − easy accuracy at the lowest and the highest noise rate."""
    summary = wide(result, ["dataset", "measure", "method", "p", "noise_hard_rate"])
    lines = []
    for key, part in summary.groupby([("dataset", ""), ("measure", ""), ("method", "")], sort=False):
        part = part.sort_values(("p", ""))
        first, last = part.iloc[0], part.iloc[-1]
        lines.append(f"- {'/'.join(key)}: hard − easy at p = {first[('p', '')]:g}: "
                     f"{_points(first, 'hard_minus_easy')}; "
                     f"at p = {last[('p', '')]:g} (hard noise {last[('noise_hard_rate', '')]:g}): "
                     f"{_points(last, 'hard_minus_easy')}.")
    return "\n".join(lines)


def sample_count(few: pd.DataFrame) -> str:
    """Per curve: zero-shot, the first easy point at or above ``few`` examples, the best hard point."""
    return "\n".join(
        f"- {row['dataset']}/{row['measure']} ({row['method']}): zero-shot {100 * row['zero-shot']:.1f}%, "
        f"{row['easy n']} easy examples {100 * row['easy accuracy']:.1f}% {row['easy CI']}, "
        f"best hard ({row['best hard n']}) {100 * row['best hard accuracy']:.1f}% {row['best hard CI']}."
        for row in few.to_dict("records"))


def model_scale(result: pd.DataFrame, models: Sequence[str]) -> str:
    """The easy-to-hard takeaway per model, with a warning when one model cannot speak to scale."""
    note = "" if len(models) > 1 else (f"Only one model ({models[0]}) was run, so nothing here speaks to scale.\n\n")
    return note + tables.takeaway(result, ["model", "dataset", "measure", "method"])


def train_test_gap(grid: pd.DataFrame, college: pd.DataFrame, train_levels: Sequence[str]) -> str:
    """Accuracy on hard test items by training level, and MMLU college by prompt source."""
    lines = []
    hard_rows = grid[grid["test_level"] == "hard"]
    for key, part in hard_rows.groupby(["dataset", "measure", "method"], sort=False):
        acc = part.set_index("train_level")["point"]
        cells = ", ".join(f"{level} {100 * acc[level]:.1f}%" for level in train_levels if level in acc)
        lines.append(f"- hard test items, {'/'.join(key)}: {cells}.")
    for row in college.to_dict("records"):
        lines.append(f"- MMLU college with prompts from {row['source']}: {100 * row['point']:.1f}% "
                     f"[{100 * row['lo']:.1f}, {100 * row['hi']:.1f}].")
    return "\n".join(lines)


def easy_to_hard_evaluators(result: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Per dataset: what the generator can do at all (pass@N, per-sample accuracy on hard test
    problems), and per evaluator at the largest N: weighted voting and best-of-N with the
    easy-trained evaluator against majority voting, the evaluator SGR (or "gap n.s."), AUROC."""
    from e2h_utils.analysis.evaluator_table import sgr_rows

    def ci(row: pd.Series, scale: float = 100.0, signed: bool = False) -> str:
        fmt = "+.1f" if signed else ".1f"
        return f"{scale * row['point']:{fmt}} [{scale * row['lo']:{fmt}}, {scale * row['hi']:{fmt}}]"

    lines = []
    acc = result[result["quantity"] == "accuracy"]
    for dataset in dict.fromkeys(result["dataset"]):
        part = acc[acc["dataset"] == dataset]
        n = int(part["n_samples"].max())
        pass_n = part[(part["rule"] == "pass_at_n") & (part["n_samples"] == n)].iloc[0]
        majority = part[(part["rule"] == "majority") & (part["n_samples"] == n)].iloc[0]
        hard = summary[(summary["dataset"] == dataset) & (summary["problems"] == "test")]
        per_sample = f"{100 * hard['sample_accuracy'].mean():.1f}%" if len(hard) else "n/a"
        lines.append(f"- **{dataset}** (N = {n}, {int(majority['n_items'])} hard test problems): a single sample is "
                     f"right {per_sample} of the time; pass@{n} {ci(pass_n)}%, majority voting {ci(majority)}%.")
        if float(pass_n["hi"]) < 0.05:
            lines.append("  The generator (almost) never writes a correct solution here, so no selection rule can "
                         "do better than majority voting: the samples are shown, not re-ranked into a result.")
        comparisons = sgr_rows(result[result["dataset"] == dataset])
        for kind in dict.fromkeys(comparisons["method"]):
            for rule in ("weighted", "best_of_n"):
                rows = comparisons[(comparisons["method"] == kind) & (comparisons["rule"] == rule)]
                if rows.empty:
                    continue
                gain = rows[rows["quantity"] == "easy_gain"].iloc[0]
                sgr = rows[rows["quantity"] == "sgr"].iloc[0]
                readable = (f"evaluator SGR {ci(sgr, signed=False)}%" if bool(sgr["sgr_stable"])
                            else "evaluator SGR not readable (gap n.s.: the hard-trained evaluator does not beat "
                                 "majority voting clearly)")
                name = "weighted voting" if rule == "weighted" else "best-of-N"
                lines.append(f"  - {kind}, {name} with the easy-trained evaluator − majority: "
                             f"{ci(gain, signed=True)} points; {readable}.")
            auroc = result[(result["dataset"] == dataset) & (result["quantity"] == "auroc")
                           & (result["method"] == kind)]
            if len(auroc):
                parts = ", ".join(f"{r['train_level']}-trained {r['point']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"
                                  if r["point"] == r["point"] else f"{r['train_level']}-trained n/a"
                                  for _, r in auroc.iterrows())
                lines.append(f"  - {kind} AUROC on hard test samples: {parts}.")
    return "\n".join(lines)
