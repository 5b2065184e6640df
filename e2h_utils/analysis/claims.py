"""The papers' claims, each with where it comes from and how a run's results test it.

``CLAIMS`` is the one registry. A claim names the notebook that tests it, quotes what the paper
says and where, and has a check that reads that notebook's result tables (``analysis.estimates``
rows: ``point``, ``lo``, ``hi`` with 95% paired-bootstrap CIs) and returns a ``Verdict``:

- **consistent**: the CIs agree with the claim;
- **inconsistent**: the CIs contradict it;
- **inconclusive**: the CIs are too wide to tell (e.g. no oracle gap clearly above zero, so no SGR
  is readable), or the profile did not run what the claim needs (e.g. one model for a claim about
  scale). A CI too wide says what would decide it: "would need ≈ N hard test items", the items at
  which the CI, centred where it is now, would clear the rule's nearest boundary (``analysis.power``;
  the CI scaled as 1/sqrt(n), its seed part included, so N is a lower bound when seeds dominate),
  and, where the result table knows it (``n_offered``), whether the dataset holds N hard items;
- **no verdict**: every row the claim reads is a *demonstration, not a measurement* (a result-table
  row with ``demonstration`` true: a method or dataset the profile runs at demonstration size only,
  because the model cannot do it at this size). Demonstration rows are never read by a check.

Verdicts come from the CIs by the rule each check states; none is written by hand. Every notebook
ends with ``table(notebook, tables)`` ("the paper says / this run / verdict"), writes it as
``tables/claims.csv``, and the report (``pipeline.report``) and the README read those files.

Thresholds that turn a claim's words into a test ("mostly", "nearly as well", "no difference")
are stated in each claim's ``rule`` and are the project's reading of the paper, not the authors'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from e2h_utils.analysis import hardness_stats

CONSISTENT, INCONSISTENT, INCONCLUSIVE = "consistent", "inconsistent", "inconclusive"
NO_VERDICT, DEMONSTRATION = "no verdict", "demonstration, not a measurement"
EQUIVALENCE = 0.10  # "no difference" / "as good": the difference's CI lies within +-10 points


@dataclass(frozen=True)
class Verdict:
    verdict: str  # consistent | inconsistent | inconclusive
    this_run: str  # the numbers the verdict rests on
    why: str = ""  # for inconclusive: CI too wide / not run in this profile

    @property
    def label(self) -> str:
        return self.verdict if not self.why else f"{self.verdict} ({self.why})"


Tables = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class Claim:
    id: str
    notebooks: tuple[str, ...]  # the notebooks whose result tables test it
    paper: str  # what the paper says
    source: str  # where the paper says it
    rule: str  # how the CIs decide the verdict
    check: Callable[[Tables], Verdict]


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def _ci(row: pd.Series) -> str:
    return f"{_pct(row['point'])} [{_pct(row['lo'])}, {_pct(row['hi'])}]"


def would_need(row: pd.Series, lower: tuple[float, ...] = (), upper: tuple[float, ...] = (),
               within: float | None = None) -> str:
    """What would decide an inconclusive row: the hard test items at which its CI, centred where it is,
    clears the nearest boundary of the rule (``lower``: decided once lo > b; ``upper``: once hi <= b;
    ``within``: once the CI lies inside +-within). The CI is scaled as 1/sqrt(n) from this run's n
    (``power.from_half_width``). Where the row says how many test items its level offers (``n_offered``),
    the text says whether N is more than that (no budget buys it) or how many of them this run read."""
    from e2h_utils.analysis import power

    point, lo, hi = float(row["point"]), float(row["lo"]), float(row["hi"])
    n, offered = (int(row[c]) if c in row and pd.notna(row.get(c)) else None for c in ("n_items", "n_offered"))
    if not all(map(math.isfinite, (point, lo, hi))) or not n:
        return ""
    room = [point - b for b in lower if point > b] + [b - point for b in upper if point < b]
    room += [within - abs(point)] if within is not None and abs(point) < within else []
    if not room or max(room) <= 0:
        return "no number of items decides it at this point estimate"
    target = 100 * max(room)
    needed = power.about(power.items_needed(target, power.from_half_width(100 * (hi - lo) / 2, n), 1) or n)
    if offered is None:
        return f"would need ≈ {needed:,} hard test items (this run: {n:,})"
    if needed > offered:  # no budget buys it: the dataset does not hold them
        return f"would need ≈ {needed:,} hard test items, more than the {offered:,} the level offers (this run: {n:,})"
    return f"would need ≈ {needed:,} hard test items (this run: {n:,} of the {offered:,} the level offers)"


def _with_need(text: str, need: str) -> str:
    return f"{text} ({need})" if need else text


def _rows(table: pd.DataFrame | None, quantity: str, **where: object) -> pd.DataFrame:
    if table is None or table.empty or "quantity" not in table.columns:
        return pd.DataFrame()
    rows = table[table["quantity"] == quantity]
    if "demonstration" in rows.columns:  # demonstrations are shown, never read
        rows = rows[~rows["demonstration"].fillna(False).astype(bool)]
    for column, value in where.items():
        if column not in rows.columns:
            return rows.iloc[:0]
        rows = rows[rows[column].isin(value if isinstance(value, (list, tuple, set)) else [value])]
    return rows


def _label(row: pd.Series) -> str:
    return "/".join(str(row[c]) for c in ("model", "dataset", "measure", "method") if c in row and pd.notna(row[c])
                    and not (c == "model" and row[c] == "embedded"))


NOT_RUN = Verdict(INCONCLUSIVE, "not run in this profile", "not run in this profile")


def _all_agree(states: list[str], parts: list[str]) -> Verdict:
    """One verdict from a claim's per-comparison states: inconsistent when any is, consistent when all
    are, else inconclusive (the CI of some comparison too wide)."""
    verdict = INCONSISTENT if INCONSISTENT in states else CONSISTENT if all(s == CONSISTENT for s in states) \
        else INCONCLUSIVE
    return Verdict(verdict, "; ".join(parts), "CI too wide" if verdict == INCONCLUSIVE else "")


# --- the checks ---------------------------------------------------------------------------------------

def _sgr_mostly_high(tables: Tables) -> Verdict:
    sgr = _rows(tables.get("results"), "sgr")
    if sgr.empty:
        return NOT_RUN
    readable = sgr[sgr["sgr_stable"].astype(bool)]
    if readable.empty:
        gaps = _rows(tables.get("results"), "gap")
        listed = "; ".join(_with_need(f"{_label(r)} {_ci(r)}", would_need(r, lower=(0.0,))) for _, r in gaps.iterrows())
        many = "comparison" if len(sgr) == 1 else "comparisons"
        return Verdict(INCONCLUSIVE, f"no oracle gap (hard − unsup., points) clearly above zero in {len(sgr)} {many}, "
                                     f"so no SGR is readable: {listed}", "CI too wide")
    high = readable[(readable["lo"] >= 0.5) & (readable["hi"] >= 0.7)]
    low = readable[readable["hi"] < 0.7]
    text = "; ".join(_with_need(f"{_label(r)} {_ci(r)}", "" if (r["lo"] >= 0.5 and r["hi"] >= 0.7) or r["hi"] < 0.7
                                else would_need(r, lower=(0.5,), upper=(0.7,))) for _, r in readable.iterrows())
    text = f"readable SGR (%) in {len(readable)} of {len(sgr)} comparisons: {text}"
    if len(high) > len(readable) / 2:
        return Verdict(CONSISTENT, text)
    if len(low) > len(readable) / 2:
        return Verdict(INCONSISTENT, text)
    return Verdict(INCONCLUSIVE, text, "CI too wide")


def _icl_no_easy_hard_difference(tables: Tables) -> Verdict:
    rows = _rows(tables.get("results"), "hard_minus_easy", method="icl", dataset=["arc", "mmlu_stem5"])
    if rows.empty:
        return NOT_RUN
    # "no difference": inconsistent when a CI excludes zero on either side
    if any((rows["lo"] > 0) | (rows["hi"] < 0)):
        verdict, why = INCONSISTENT, ""
    elif all((rows["lo"] >= -EQUIVALENCE) & (rows["hi"] <= EQUIVALENCE)):
        verdict, why = CONSISTENT, ""
    else:
        verdict, why = INCONCLUSIVE, "CI too wide"
    text = "; ".join(_with_need(f"{r['dataset']}/{r['measure']} hard − easy {_ci(r)} points",
                                would_need(r, lower=(0.0,), upper=(0.0,), within=EQUIVALENCE) if why else "")
                     for _, r in rows.iterrows())
    return Verdict(verdict, text, why)


def _third_grade_nearly_college(tables: Tables) -> Verdict:
    rows = _rows(tables.get("college"), "hard_minus_easy")
    if rows.empty:
        return NOT_RUN
    row = rows.iloc[0]
    lo, hi = float(row["lo"]), float(row["hi"])
    text = f"{_label(row)}: MMLU college prompts − ARC grade ≤ 3 prompts {_ci(row)} points on MMLU college items"
    if hi <= EQUIVALENCE:
        return Verdict(CONSISTENT, text)
    if lo > EQUIVALENCE:
        return Verdict(INCONSISTENT, text)
    return Verdict(INCONCLUSIVE, _with_need(text, would_need(row, lower=(EQUIVALENCE,), upper=(EQUIVALENCE,))),
                   "CI too wide")


def _sgr_does_not_fall_with_scale(tables: Tables) -> Verdict:
    sgr = _rows(tables.get("results"), "sgr")
    if sgr.empty or sgr["model"].nunique() < 2:
        models = ", ".join(sorted(sgr["model"].unique())) if not sgr.empty else "none"
        return Verdict(INCONCLUSIVE, f"one model ({models}): no trend across scale can be read",
                       "not run in this profile")
    order = list(dict.fromkeys(sgr["model"]))
    states, parts = [], []
    for key, part in sgr.groupby(["dataset", "measure", "method"], sort=False):
        part = part.set_index("model").reindex(order)
        small, large = part.iloc[0], part.iloc[-1]
        if not (bool(small["sgr_stable"]) and bool(large["sgr_stable"])):
            states.append(INCONCLUSIVE)
            continue
        parts.append(f"{'/'.join(key)}: {order[0]} {_ci(small)} → {order[-1]} {_ci(large)}")
        states.append(INCONSISTENT if large["hi"] < small["lo"] else CONSISTENT)
    if not parts:
        return Verdict(INCONCLUSIVE, "no comparison has a readable SGR at both ends of the scale", "CI too wide")
    return _all_agree(states, parts)


def _unpaired(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    """a − b with a normal-approximation 95% CI from the two runs' own CIs (unpaired runs)."""
    se = math.hypot((a["hi"] - a["lo"]) / 3.92, (b["hi"] - b["lo"]) / 3.92)
    d = float(a["point"] - b["point"])
    return d, d - 1.96 * se, d + 1.96 * se


def _fall_only_when_gap_large(tables: Tables) -> Verdict:
    pairs = _rows(tables.get("grid_pairs"), "hard_minus_easy")
    if not pairs.empty:
        return _fall_paired(pairs)
    grid = _rows(tables.get("level_grid"), "accuracy", test_level="hard")
    if grid.empty:
        return NOT_RUN
    parts, states = [], []
    for key, part in grid.groupby(["dataset", "measure", "method"], sort=False):
        cells = part.set_index("train_level")
        if not {"easy", "hard"} <= set(cells.index):
            continue
        d, lo, hi = _unpaired(cells.loc["hard"], cells.loc["easy"])  # hard-trained − easy-trained on hard items
        parts.append(f"{'/'.join(key)}: hard-trained − easy-trained on hard items "
                     f"{_pct(d)} [{_pct(lo)}, {_pct(hi)}] points")
        if lo > 0:  # a fall when the gap is largest (easy → hard)
            medium_fall = "medium" in cells.index and _unpaired(cells.loc["hard"], cells.loc["medium"])[1] > 0
            states.append(INCONSISTENT if medium_fall else CONSISTENT)
        elif hi < 0:
            states.append(INCONSISTENT)  # easy data clearly better on hard items: no fall at all
        else:
            states.append(INCONCLUSIVE)
    if not parts:
        return NOT_RUN
    return _all_agree(states, parts)


def _fall_paired(pairs: pd.DataFrame) -> Verdict:
    """T1 from the grid's paired comparisons: hard-trained − easy-trained (and − medium-trained) on the
    same hard test items."""
    parts, states = [], []
    for key, part in pairs.groupby(["dataset", "measure", "method"], sort=False):
        by = part.set_index("lower")
        if "easy" not in by.index:
            continue
        easy = by.loc["easy"]
        decided = easy["lo"] > 0 or easy["hi"] < 0
        parts.append(_with_need(f"{'/'.join(key)}: hard-trained − easy-trained on hard items {_ci(easy)} points",
                                "" if decided else would_need(easy, lower=(0.0,), upper=(0.0,))))
        if easy["lo"] > 0:  # a fall when the gap is largest (easy → hard)
            medium_fall = "medium" in by.index and by.loc["medium"]["lo"] > 0
            if "medium" in by.index:
                parts[-1] += f", hard − medium {_ci(by.loc['medium'])}"
            states.append(INCONSISTENT if medium_fall else CONSISTENT)
        elif easy["hi"] < 0:
            states.append(INCONSISTENT)  # easy data clearly better on hard items: no fall at all
        else:
            states.append(INCONCLUSIVE)
    if not parts:
        return NOT_RUN
    return _all_agree(states, parts)


def _no_worse_than_easy(rows: pd.DataFrame, describe: Callable[[pd.Series], str]) -> Verdict:
    """hard − easy rows read by the rule of N1 and S2: consistent when every CI's upper bound is <= 10
    points, inconsistent when one lies above zero."""
    states = [INCONSISTENT if r["lo"] > 0 else CONSISTENT if r["hi"] <= EQUIVALENCE else INCONCLUSIVE
              for _, r in rows.iterrows()]
    parts = [_with_need(describe(r), would_need(r, lower=(0.0,), upper=(EQUIVALENCE,)) if st == INCONCLUSIVE else "")
             for st, (_, r) in zip(states, rows.iterrows())]
    return _all_agree(states, parts)


def _noisy_hard_labels(tables: Tables) -> Verdict:
    rows = _rows(tables.get("results"), "hard_minus_easy")
    if rows.empty or "p" not in rows.columns:
        return NOT_RUN
    top = rows[rows["p"] == rows["p"].max()]
    if float(top["p"].iloc[0]) <= 0:
        return NOT_RUN
    return _no_worse_than_easy(top, lambda r: f"{_label(r)} at p = {r['p']:g} (hard labels {r['noise_hard_rate']:g}): "
                                              f"hard − easy {_ci(r)} points")


def _costly_hard_labels(tables: Tables) -> Verdict:
    pairs = _rows(tables.get("cost_pairs"), "hard_minus_easy")
    if not pairs.empty:  # paired: easy and hard data at the same cost, on the same test items
        return _no_worse_than_easy(pairs, lambda r: f"{_label(r)} at cost {r['cost']:g} (easy n = {int(r['n_easy'])}, "
                                                    f"hard n = {int(r['n_hard'])}): hard − easy {_ci(r)} points")
    curve = _rows(tables.get("curves"), "accuracy")
    if curve.empty or "cost" not in curve.columns:
        return NOT_RUN
    parts, states = [], []
    for key, part in curve.groupby(["dataset", "measure", "method"], sort=False):
        easy = part[part["train_level"] == "easy"].set_index("cost")
        hard = part[part["train_level"] == "hard"].set_index("cost")
        shared = sorted(set(easy.index) & set(hard.index))
        if not shared:
            continue
        cost = shared[-1]  # the largest budget both buy
        d, lo, hi = _unpaired(hard.loc[cost], easy.loc[cost])
        parts.append(f"{'/'.join(key)} at cost {cost:g}: hard − easy {_pct(d)} [{_pct(lo)}, {_pct(hi)}] points")
        states.append(INCONSISTENT if lo > 0 else CONSISTENT if hi <= EQUIVALENCE else INCONCLUSIVE)
    if not parts:
        return NOT_RUN
    return _all_agree(states, parts)


def _ten_easy_examples(tables: Tables) -> Verdict:
    rows = _rows(tables.get("few"), "sgr")
    if rows.empty:
        return NOT_RUN
    gaps = _rows(tables.get("few"), "gap")
    states, parts = [], []
    for _, row in rows.iterrows():
        head = f"{_label(row)}: {int(row['n'])} easy examples vs the largest hard n"
        if bool(row["sgr_stable"]):
            parts.append(f"{head}, SGR {_ci(row)}")
            states.append(CONSISTENT if row["lo"] >= 0.5 else INCONSISTENT if row["hi"] < 0.5 else INCONCLUSIVE)
            continue
        # the oracle gap is not clearly above zero: the ratio is noise (its percentile CI may not even
        # hold its point), so it is not printed, as in the SGR tables; the gap says why
        gap = _same_comparison(gaps, row)
        parts.append(_with_need(f"{head}, oracle gap (hard − unsup.) {_ci(gap)} points, not above zero: SGR not "
                                "readable", would_need(gap, lower=(0.0,)))
                     if gap is not None else f"{head}, oracle gap not above zero: SGR not readable")
        states.append(INCONCLUSIVE)
    return _all_agree(states, parts)


def _same_comparison(table: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """The row of ``table`` with the keys of ``row`` (another quantity of the same comparison)."""
    keys = [c for c in ("model", "dataset", "measure", "method", "n") if c in row and c in table.columns]
    match = (table[np.logical_and.reduce([table[c] == row[c] for c in keys])] if keys and not table.empty
             else table.iloc[:0])
    return match.iloc[0] if len(match) else None


def _weak_correlations(tables: Tables) -> Verdict:
    medians = tables.get("correlations")
    if medians is None or medians.empty:
        return NOT_RUN
    text = "; ".join(f"{r['dataset']} median |ρ| {r['median_abs_rho']:.2f} over {int(r['pairs'])} pairs"
                     for _, r in medians.iterrows())
    return Verdict(CONSISTENT if (medians["median_abs_rho"] < 0.5).all() else INCONSISTENT, text)


def _largest_n(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return rows
    largest = rows.groupby(["dataset", "method"])["n_samples"].transform("max")
    return rows[rows["n_samples"] == largest]


def _mostly(states: list[str]) -> str:
    if sum(s == CONSISTENT for s in states) > len(states) / 2:
        return CONSISTENT
    if sum(s == INCONSISTENT for s in states) > len(states) / 2:
        return INCONSISTENT
    return INCONCLUSIVE


def _rerankable(tables: Tables, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(rows of datasets where some hard test problem has a correct sample, the datasets without
    one): with no correct sample there is nothing for an evaluator to pick."""
    results = tables.get("results")
    ceiling = _rows(results, "accuracy", rule="pass_at_n")
    empty = []
    for dataset in dict.fromkeys(rows["dataset"]):
        part = ceiling[ceiling["dataset"] == dataset]
        if len(part) and float(part.loc[part["n_samples"].idxmax(), "point"]) == 0.0:
            empty.append(dataset)
    return rows[~rows["dataset"].isin(empty)], empty


def _rerank_verdict(tables: Tables, rows: pd.DataFrame, describe: Callable[[pd.Series], str]) -> Verdict:
    if rows.empty:
        return NOT_RUN
    rows, empty = _rerankable(tables, rows)
    note = f"no hard test problem with a correct sample (nothing to re-rank): {', '.join(empty)}" if empty else ""
    if rows.empty:
        return Verdict(INCONCLUSIVE, note, "nothing to re-rank")
    states = [CONSISTENT if r["lo"] > 0 else INCONSISTENT if r["hi"] < 0 else INCONCLUSIVE for _, r in rows.iterrows()]
    text = "; ".join(_with_need(describe(r), would_need(r, lower=(0.0,), upper=(0.0,)).replace("hard test items",
                                                                                             "hard test problems")
                                if st == INCONCLUSIVE else "")
                     for st, (_, r) in zip(states, rows.iterrows())) + (f"; {note}" if note else "")
    verdict = _mostly(states)
    return Verdict(verdict, text, "CI too wide" if verdict == INCONCLUSIVE else "")


def _easy_evaluators_beat_majority(tables: Tables) -> Verdict:
    rows = _largest_n(_rows(tables.get("results"), "easy_gain", rule="weighted", train_level="comparison"))
    return _rerank_verdict(tables, rows,
                           lambda r: f"{r['dataset']} {r['method']} evaluator, N = {int(r['n_samples'])}: "
                                     f"weighted voting − majority {_ci(r)} points")


def _weighted_beats_best_of_n(tables: Tables) -> Verdict:
    rows = _largest_n(_rows(tables.get("results"), "weighted_minus_best", train_level="easy"))
    return _rerank_verdict(tables, rows, lambda r: f"{r['dataset']} {r['method']} evaluator (easy-trained), "
                                                   f"N = {int(r['n_samples'])}: weighted − best-of-N {_ci(r)} points")


CLAIMS: tuple[Claim, ...] = (
    Claim("H1", ("hardness_measures",),
          "The hardness measures are only weakly correlated with one another: \"hard\" means different things "
          "under different measures.",
          "Hase et al. 2024, §4 (RQ1), Fig. 2",
          "consistent when the median |Spearman ρ| over each dataset's pairs of measures is below 0.5 (points on "
          "every item, no CI)", _weak_correlations),
    Claim("E1", ("easy_to_hard", "walkthrough"),  # the first notebook is the measurement; the walkthrough's is live
          "Easy data recovers most of the supervision gap: SGR is mostly between 70% and 100%.",
          "Hase et al. 2024, §5.1 (RQ2), Fig. 3",
          "among comparisons whose gap CI lies above zero: consistent when most have an SGR CI with lower bound >= 50% "
          "and upper bound >= 70%, inconsistent when most lie wholly below 70%; no readable SGR is inconclusive",
          _sgr_mostly_high),
    Claim("E2", ("easy_to_hard",),
          "In-context learning shows no difference between easy and hard prompts on ARC and MMLU.",
          "Hase et al. 2024, §5.1, Fig. 3 (ICL)",
          "consistent when every ICL hard − easy CI on ARC and MMLU lies within ±10 points, inconsistent when one "
          "excludes zero", _icl_no_easy_hard_difference),
    Claim("S1", ("sample_count",),
          "A handful of easy examples (as few as ten) already recovers most of the gap.",
          "Hase et al. 2024, §5.2 (RQ3), Fig. 4",
          "SGR of ~10 easy examples against the largest hard n: consistent when its CI lower bound is >= 50%, "
          "inconsistent when its upper bound is below 50%; a gap not above zero is inconclusive", _ten_easy_examples),
    Claim("S2", ("sample_count",),
          "When hard labels cost twice as much, easy data is as good as or better than hard data at the same cost.",
          "Hase et al. 2024, §5.2 (RQ3), Fig. 5",
          "hard − easy at the largest cost both reach (unpaired, normal approximation from the two CIs): consistent "
          "when the CI's upper bound is <= 10 points, inconsistent when it lies above zero", _costly_hard_labels),
    Claim("N1", ("label_noise",),
          "When hard labels are twice as noisy as easy ones, easy data is as good as or better than hard data.",
          "Hase et al. 2024, §5.2 (RQ3), Fig. 6",
          "hard (2p) − easy (p) at the largest p: consistent when the CI's upper bound is <= 10 points, inconsistent "
          "when it lies above zero", _noisy_hard_labels),
    Claim("M1", ("model_scale",),
          "SGR does not fall as models grow (Llama-2 7b, 13b, 70b).",
          "Hase et al. 2024, §5.3 (RQ4), Fig. 7",
          "needs two or more models; consistent when, per comparison, the largest model's SGR CI does not lie wholly "
          "below the smallest's", _sgr_does_not_fall_with_scale),
    Claim("T1", ("train_test_gap",),
          "Hard-test accuracy begins to fall only when the train-test hardness gap grows large.",
          "Hase et al. 2024, §5.3 (RQ4), Fig. 8",
          "on hard test items, hard-trained − easy-trained (unpaired, from the two CIs): consistent when it lies above "
          "zero and hard-trained − medium-trained does not; inconsistent when easy is clearly better, or medium "
          "already falls", _fall_only_when_gap_large),
    Claim("T2", ("train_test_gap",),
          "Prompts of ARC grade ≤ 3 questions do nearly as well on MMLU college questions as MMLU college prompts "
          "(\"third grade to college\").",
          "Hase et al. 2024, §1, Fig. 1",
          "paired MMLU college − ARC grade ≤ 3 accuracy on the same items: consistent when its CI's upper bound is "
          "<= 10 points, inconsistent when its lower bound is above 10 points", _third_grade_nearly_college),
    Claim("V1", ("easy_to_hard_evaluators",),
          "Evaluators (reward models) trained only on easy problems (MATH levels 1-3) re-rank a generator's samples "
          "of hard problems (levels 4-5) better than majority voting.",
          "Sun et al. 2024, §4.2.1, Fig. 4 (weighted voting with level 1-3 reward models vs majority voting)",
          "weighted voting with the easy-trained evaluator − majority voting on the same hard problems and samples, at "
          "the largest N, per dataset and evaluator: consistent when most CIs lie above zero, inconsistent when most "
          "lie below; a dataset without a correct sample on any hard test problem is left out (nothing to re-rank)",
          _easy_evaluators_beat_majority),
    Claim("V2", ("easy_to_hard_evaluators",),
          "Weighted voting beats best-of-N with the same (easy-trained) evaluator.",
          "Sun et al. 2024, §4.2.1 (\"Weighted voting outshines Best-of-n\")",
          "weighted voting − best-of-N with the easy-trained evaluator on the same hard problems, at the largest N, "
          "per dataset and evaluator: consistent when most CIs lie above zero, inconsistent when most lie below; a "
          "dataset without a correct sample on any hard test problem is left out (nothing to re-rank)",
          _weighted_beats_best_of_n),
)


def for_notebook(notebook: str) -> list[Claim]:
    return [claim for claim in CLAIMS if notebook in claim.notebooks]


def demonstrations(tables: Tables) -> list[str]:
    """The runs the tables mark as demonstrations (dataset/measure/method), each once."""
    out: list[str] = []
    for frame in tables.values():
        if isinstance(frame, pd.DataFrame) and "demonstration" in frame.columns and len(frame):
            demo = frame[frame["demonstration"].fillna(False).astype(bool)]
            out += [_label(row.drop("method") if row.get("method") == "none" else row) for _, row in demo.iterrows()]
    return list(dict.fromkeys(out))


def table(notebook: str, tables: Tables) -> pd.DataFrame:
    """"The paper says / this run / verdict" for every claim the notebook tests. Rows marked as
    demonstrations are never read: a claim with nothing else to read gets no verdict, the others say
    which demonstrations they left out."""
    rows = []
    shown = demonstrations(tables)
    for claim in for_notebook(notebook):
        verdict = claim.check(tables)
        if shown and verdict == NOT_RUN:
            verdict = Verdict(NO_VERDICT, f"{DEMONSTRATION} only: {', '.join(shown)}", DEMONSTRATION)
        elif shown:
            verdict = Verdict(verdict.verdict, f"{verdict.this_run}; not read ({DEMONSTRATION}): {', '.join(shown)}",
                              verdict.why)
        rows.append({"claim": claim.id, "the paper says": claim.paper, "where": claim.source,
                     "this run": verdict.this_run, "verdict": verdict.label, "rule": claim.rule})
    return pd.DataFrame(rows, columns=["claim", "the paper says", "where", "this run", "verdict", "rule"])


def correlation_summary(correlations: hardness_stats.Correlations) -> pd.DataFrame:
    """Per dataset: the median |ρ| over the pairs of its measures and how many pairs (claim H1)."""
    rows = []
    for dataset, rho in correlations.matrices.items():
        rows.append({"dataset": dataset, "median_abs_rho": hardness_stats.median_abs_correlation(rho),
                     "pairs": int(hardness_stats.abs_correlations(rho).size)})
    return pd.DataFrame(rows, columns=["dataset", "median_abs_rho", "pairs"])
