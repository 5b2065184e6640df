"""The result table: a plan and its item-level results -> one row per estimate, with a 95% CI.

Every table and figure of the notebooks reads this one long table (``table``). Its columns:

| column | meaning |
|---|---|
| ``model``, ``dataset``, ``measure``, ``method`` | what ran (``method``: the method's kind, e.g. ``icl``, \
``probe``, ``icl_cot``) |
| what varies, where it applies | ``train_level`` (none / easy / medium / hard / all), ``n`` (training size), \
``test_level``, ``p`` / ``noise_easy_rate`` / ``noise_hard_rate`` (label noise), ``source`` / ``pool`` (prompt \
sources), ``rule`` (answer rule), ``prompt_format`` |
| ``quantity`` | ``accuracy`` (one run, a ``Reading``); for a ``Comparison``: ``unsupervised``, ``easy``, ``hard`` \
(accuracies), ``gap`` (hard - unsupervised), ``easy_gain`` (easy - unsupervised), ``hard_minus_easy``, ``sgr``, \
``sgr_clipped`` |
| ``point``, ``lo``, ``hi`` | the estimate on all items and seeds, and its 95% paired-bootstrap interval (fractions, \
not percent) |
| ``n_items``, ``n_seeds`` | test items read, and seeds of the run (a comparison's derived quantities: of the easy \
run) |
| ``n_offered`` | the test items the measure's level offers before any cap (``split.offered``): the most a larger \
cap could buy; more would need another dataset. Absent where the results do not say (a reading of every level) |
| ``n_shots`` | readings: the most training examples a seed's run used (in-context examples that fit the prompt) |
| ``sgr_stable`` | comparisons: the gap's CI lies above zero, so SGR is readable (else shown as n.s.) |
| ``clipped_differs`` | comparisons: easy >= hard or easy < unsupervised, where clipped SGR differs from SGR |
| ``demonstration`` | where a notebook marks them (``mark_demonstrations``): a run the profile makes at \
demonstration size only, shown but never read by a claim (``analysis.claims``) |

The bootstrap (``metrics``) resamples test items (paired across the three runs of a comparison)
and seeds (independently per run). ``wide(table, index)`` pivots it to one row per comparison or
reading with a column per (quantity, field), which is what tables and plots index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from e2h_utils.analysis import metrics
from e2h_utils.experiments.plans import Comparison, Entry, Reading
from e2h_utils.experiments.spec import ExperimentSpec

KEY_COLUMNS = ("model", "dataset", "measure", "method", "train_level", "n", "test_level", "p", "noise_easy_rate",
               "noise_hard_rate", "source", "pool", "rule", "prompt_format", "n_samples")
CONDITIONS = ("unsupervised", "easy", "hard")
DERIVED = ("gap", "easy_gain", "hard_minus_easy", "sgr", "sgr_clipped")
QUANTITIES = ("accuracy", *CONDITIONS, *DERIVED, "weighted_minus_best", "auroc")  # the last two: evaluator_table
FIELDS = ("point", "lo", "hi")
COUNTS = ("n_items", "n_offered", "n_seeds", "n_shots")


@dataclass(frozen=True)
class Bootstrap:
    n_boot: int = 1000
    seed: int = 0


def correct_matrix(results: pd.DataFrame, level: str | None = "hard",
                   value: str = "correct") -> tuple[np.ndarray, list[str]]:
    """(seeds x items) array of ``value`` on the test items of ``level`` (None: all), items sorted by id."""
    subset = results if level is None else results[results["level"] == level]
    if subset.empty:
        raise ValueError(f"no test items at level {level!r} in these results")
    column = value if value in subset.columns else "correct"  # an answer-scored baseline has no per-rule column
    table = subset.pivot_table(index="seed", columns="item_id", values=column, aggfunc="first")
    if table.isna().any().any():
        raise ValueError("seeds were scored on different items; cannot pair them")
    table = table.sort_index(axis=1)
    return table.to_numpy(dtype=float), list(table.columns)


def offered(results: pd.DataFrame, level: str | None) -> dict[str, int]:
    """``{"n_offered": N}``: the test items ``level`` offers before any cap, where the item-level results
    say (``Runner.run``'s ``level_offers``); else empty."""
    if level is None or "level_offers" not in results.columns:
        return {}
    counts = results.loc[results["level"] == level, "level_offers"].dropna()
    return {"n_offered": int(counts.max())} if len(counts) else {}


def accuracy(results: pd.DataFrame, level: str | None, bootstrap: Bootstrap) -> dict[str, Any]:
    """Accuracy over seeds and test items (of ``level``) with its bootstrap 95% CI, as a row."""
    matrix, _ = correct_matrix(results, level)
    replicates = metrics.bootstrap_accuracies({"run": matrix}, n_boot=bootstrap.n_boot, seed=bootstrap.seed)["run"]
    estimate = metrics.estimate_from_replicates(float(matrix.mean()), replicates)
    row = {"quantity": "accuracy", "point": estimate.point, "lo": estimate.lo, "hi": estimate.hi,
           "n_items": matrix.shape[1], "n_seeds": matrix.shape[0], **offered(results, level)}
    if "n_shots" in results.columns:  # the in-context examples the prompts held (fewer when some did not fit)
        row["n_shots"] = int(results["n_shots"].max())
    return row


def comparison_rows(unsupervised: pd.DataFrame, easy: pd.DataFrame, hard: pd.DataFrame, bootstrap: Bootstrap,
                    level: str = "hard", value: str = "correct") -> list[dict[str, Any]]:
    """The rows of one comparison: the three accuracies and the derived quantities, paired."""
    arrays, ids = [], None
    for frame in (unsupervised, easy, hard):
        matrix, item_ids = correct_matrix(frame, level, value)
        if ids is not None and item_ids != ids:
            raise ValueError("the three runs of a comparison were not scored on the same test items")
        ids = item_ids
        arrays.append(matrix)
    # mypy cannot see that ``arrays`` holds exactly the three matrices
    rows = matrix_rows(*arrays, bootstrap=bootstrap)  # type: ignore[misc, arg-type]
    return [{**row, **offered(hard, level)} for row in rows]


def matrix_rows(unsupervised: np.ndarray, easy: np.ndarray, hard: np.ndarray,
                bootstrap: Bootstrap = Bootstrap()) -> list[dict[str, Any]]:
    """The rows of one comparison from its ``correct[seed, item]`` matrices (same items, same order)."""
    arrays = [np.asarray(a, dtype=float) for a in (unsupervised, easy, hard)]
    # mypy cannot see that ``arrays`` holds exactly the three matrices
    summary = metrics.summarize_e2h(*arrays, n_boot=bootstrap.n_boot,  # type: ignore[misc, arg-type]
                                    seed=bootstrap.seed)
    flags = {"sgr_stable": summary["sgr_stable"], "clipped_differs": summary["clipped_differs"]}
    rows = []
    for name, matrix in zip(CONDITIONS, arrays):
        key = f"acc_{name}"
        rows.append({"quantity": name, "point": summary[key], "lo": summary[f"{key}_lo"], "hi": summary[f"{key}_hi"],
                     "n_items": matrix.shape[1], "n_seeds": matrix.shape[0], **flags})
    for name in DERIVED:
        rows.append({"quantity": name, "point": summary[name], "lo": summary[f"{name}_lo"], "hi": summary[f"{name}_hi"],
                     "n_items": arrays[1].shape[1], "n_seeds": arrays[1].shape[0], **flags})
    return rows


def table(plan: Iterable[Entry], results: Mapping[ExperimentSpec, pd.DataFrame],
          bootstrap: Bootstrap = Bootstrap()) -> pd.DataFrame:
    """The result table of ``plan`` (see the module docstring), from the item-level ``results``
    of its specs (``Runner.run_all``)."""
    rows = []
    for entry in plan:
        labels = entry.labels
        if isinstance(entry, Comparison):
            parts = comparison_rows(results[entry.unsupervised], results[entry.easy], results[entry.hard], bootstrap,
                                    entry.level, entry.value)
        elif isinstance(entry, Reading):
            parts = [accuracy(results[entry.spec], entry.level, bootstrap)]
        else:
            raise TypeError(f"not a plan entry: {entry!r}")
        rows += [{**labels, **part} for part in parts]
    out = pd.DataFrame(rows)
    values = ("quantity", *FIELDS, *COUNTS, "sgr_stable", "clipped_differs")
    keys = [c for c in KEY_COLUMNS if c in out.columns] + sorted(set(out.columns) - set(KEY_COLUMNS) - set(values))
    tail = [c for c in values if c in out.columns]
    return out[keys + tail] if len(out) else out


def mark_demonstrations(result: pd.DataFrame, methods: Iterable[str] = (),
                        datasets: Iterable[str] = ()) -> pd.DataFrame:
    """``result`` with a boolean column ``demonstration``: rows of ``methods`` (method kinds) or of
    ``datasets`` that the profile runs at demonstration size only (the model cannot do them at this
    size). Claims never read such rows; tables and figures show them, marked."""
    methods, datasets = set(methods), set(datasets)
    marked = pd.Series(False, index=result.index)
    if "method" in result.columns:
        marked |= result["method"].isin(methods)
    if "dataset" in result.columns:
        marked |= result["dataset"].isin(datasets)
    return result.assign(demonstration=marked.astype(bool))


def measurements(result: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``result`` that are measurements (not marked as demonstrations)."""
    if "demonstration" not in result.columns:
        return result
    return result[~result["demonstration"].fillna(False).astype(bool)]


def key_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a result table that identify an estimate (everything but quantity and values)."""
    values = {"quantity", *FIELDS, *COUNTS, "sgr_stable", "clipped_differs"}
    return [c for c in frame.columns if c not in values]


def wide(result: pd.DataFrame, index: Sequence[str]) -> pd.DataFrame:
    """One row per ``index`` group, columns ``(quantity, field)`` for every quantity present
    (``field``: point / lo / hi), plus ``("sgr_stable", "")``, ``("clipped_differs", "")``,
    ``("n_items", "")`` where present. Row order: first appearance in ``result``."""
    index = list(index)
    missing = [c for c in index if c not in result.columns]
    if missing:
        raise KeyError(f"index columns not in the result table: {missing}")
    frame = result.copy()
    for column in index:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
    frame = frame.drop_duplicates(index + ["quantity"])
    order = list(dict.fromkeys(map(tuple, frame[index].itertuples(index=False))))
    values = frame.set_index(index + ["quantity"])[list(FIELDS)].unstack("quantity")
    values = values.swaplevel(0, 1, axis=1)
    present = [q for q in QUANTITIES if q in values.columns.get_level_values(0)]
    values = values.reindex(columns=pd.MultiIndex.from_product([present, FIELDS]))
    extra = frame.drop_duplicates(index).set_index(index)[
        [name for name in ("sgr_stable", "clipped_differs", "n_items") if name in frame.columns]]
    extra.columns = pd.MultiIndex.from_tuples([(name, "") for name in extra.columns])
    out = values.join(extra)
    out = out.reindex(pd.MultiIndex.from_tuples(order, names=index) if len(index) > 1 else pd.Index(
        [o[0] for o in order], name=index[0]))
    return out.reset_index()


def accuracy_by_level(items: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per run and test level (over seeds and items), with the number of item-seed
    scores, from ``item_table``: the per-level table of the easy-to-hard notebook."""
    keys = [c for c in ("model", "dataset", "measure", "method", "condition", "train_level", "rule")
            if c in items.columns]
    if items.empty:
        return pd.DataFrame(columns=[*keys, "level", "accuracy", "n"])
    return (items.groupby(keys + ["level"], observed=True, dropna=False)["correct"].agg(["mean", "count"])
            .rename(columns={"mean": "accuracy", "count": "n"}).reset_index())


# --- tables derived from the result table ---------------------------------------------------------

def item_table(plan: Iterable[Entry], results: Mapping[ExperimentSpec, pd.DataFrame]) -> pd.DataFrame:
    """Every item-level result of a plan, labelled as the plan reads it: the entry's keys, and for
    a comparison the ``condition`` (unsupervised / easy / hard) each run plays in it (the
    baseline's rows carry the comparison's method). One row per (run, seed, item) and role."""
    parts = []
    for entry in plan:
        roles = (zip(CONDITIONS, entry.specs) if isinstance(entry, Comparison) else [("run", entry.spec)])
        for condition, spec in roles:
            frame = results[spec]
            labels = {k: v for k, v in entry.labels.items() if k not in ("train_level",)}
            parts.append(frame.assign(**labels, condition=condition, train_level=spec.train_level))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def with_cost(curve: pd.DataFrame, costs: Mapping[str, float]) -> pd.DataFrame:
    """The accuracy rows of a learning curve with ``cost`` = n x the per-example labelling cost of
    its training level (e.g. ``{"easy": 1, "hard": 2}``: hard labels cost twice as much)."""
    missing = set(curve["train_level"]) - set(costs) - {"none"}
    if missing:
        raise ValueError(f"no labelling cost given for training level(s) {sorted(missing)}")
    return curve.assign(cost=[0.0 if level == "none" else float(n) * float(costs[level])
                              for level, n in zip(curve["train_level"], curve["n"])])


def few_vs_many(curves: pd.DataFrame, few: int = 10) -> pd.DataFrame:
    """Per curve: zero-shot, easy data at ``few`` examples (the nearest size at or above it),
    and the best point of hard data: "as few as ten easy examples" next to the oracle (accuracies
    as fractions, CIs in percent)."""
    rows = []
    for key, part in curves.groupby(["dataset", "measure", "method"], sort=False):
        zero = part[part["train_level"] == "none"]
        easy = part[(part["train_level"] == "easy") & (part["n"] >= few)].sort_values("n").head(1)
        hard = part[part["train_level"] == "hard"].sort_values("point").tail(1)
        row = dict(zip(["dataset", "measure", "method"], key))
        row["zero-shot"] = float(zero["point"].iloc[0]) if len(zero) else float("nan")
        for name, pick in (("easy", easy), ("best hard", hard)):
            row[f"{name} n"] = int(pick["n"].iloc[0]) if len(pick) else None
            row[f"{name} accuracy"] = float(pick["point"].iloc[0]) if len(pick) else float("nan")
            row[f"{name} CI"] = (f"[{100 * pick['lo'].iloc[0]:.1f}, {100 * pick['hi'].iloc[0]:.1f}]" if len(pick)
                                 else "")
        rows.append(row)
    return pd.DataFrame(rows)
