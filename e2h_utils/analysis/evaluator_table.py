"""The easy-to-hard evaluators' result table: samples and evaluator scores -> one row per estimate.

The same long schema as every other result table (``analysis.estimates``: ``quantity``, ``point``,
``lo``, ``hi``, ``n_items``, ``n_seeds``; ``wide`` pivots it), with these key columns:

| column | meaning |
|---|---|
| ``model``, ``dataset``, ``measure`` | the generator and the problems |
| ``method`` | the evaluator (``probe``, ``qlora``); ``none`` for the rules without one |
| ``rule`` | ``majority`` (the unsupervised baseline), ``best_of_n``, ``weighted``, ``pass_at_n`` (the ceiling) |
| ``train_level`` | the samples the evaluator was trained on: ``easy``, ``hard`` (the oracle), ``all``; ``none`` |
| ``n_samples`` | the candidates each problem's rule read (the first n of N) |

Quantities: ``accuracy`` (a rule's hard-test accuracy); per (evaluator, rule, n) a comparison whose
``unsupervised`` is majority voting over the same n samples, ``easy`` / ``hard`` the rule with the
easy- / hard-trained evaluator, and ``sgr`` the evaluator SGR = (easy - majority) / (hard - majority)
with the gap's CI rule (``sgr_stable``; these rows have ``train_level`` "comparison");
``weighted_minus_best``: weighted voting minus best-of-N with the same evaluator (``rule``
"weighted_vs_best_of_n"; problems and seeds resampled together); ``auroc``: the evaluator's AUROC on
the hard test samples, per seed and averaged (``n_samples`` = N; bootstrap draws that hold one class
only are dropped, so its CI is conditional on both classes being drawn).
Every CI is the paired bootstrap of ``analysis.metrics``: test problems resampled
(paired across rules) and evaluator seeds independently; majority voting and pass@N have one "seed"
(one sample set).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from e2h_utils.analysis import metrics, rerank
from e2h_utils.analysis.estimates import Bootstrap, matrix_rows

EVALUATOR_RULES = ("best_of_n", "weighted")


def _reading(matrix: np.ndarray, bootstrap: Bootstrap) -> dict[str, Any]:
    replicates = metrics.bootstrap_accuracies({"run": matrix}, n_boot=bootstrap.n_boot, seed=bootstrap.seed)["run"]
    estimate = metrics.estimate_from_replicates(float(matrix.mean()), replicates)
    return {"quantity": "accuracy", "point": estimate.point, "lo": estimate.lo, "hi": estimate.hi,
            "n_items": matrix.shape[1], "n_seeds": matrix.shape[0]}


def _difference(a: np.ndarray, b: np.ndarray, bootstrap: Bootstrap) -> dict[str, Any]:
    """Accuracy of ``a`` minus ``b``: two rules on the same problems with the same evaluator seeds,
    so problems and seeds are resampled together (the bootstrap of the difference matrix)."""
    difference = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    replicates = metrics.bootstrap_accuracies({"d": difference}, n_boot=bootstrap.n_boot, seed=bootstrap.seed)["d"]
    estimate = metrics.estimate_from_replicates(float(difference.mean()), replicates)
    return {"quantity": "weighted_minus_best", "point": estimate.point, "lo": estimate.lo, "hi": estimate.hi,
            "n_items": a.shape[1], "n_seeds": a.shape[0]}


def table(samples: pd.DataFrame, scores: Mapping[tuple[str, str], pd.DataFrame], *, labels: Mapping[str, Any],
          bootstrap: Bootstrap = Bootstrap(), ns: Sequence[int] | None = None, level: str = "hard") -> pd.DataFrame:
    """The result table of one candidate set: ``samples`` (the test problems' samples), ``scores``
    ``{(evaluator kind, train level): scores of every test sample and seed}``, ``labels`` (model,
    dataset, measure) on every row; rules read the first n samples for every n of ``ns`` (default:
    ``rerank.sample_ns(N)``), on the test problems of ``level``."""
    test = samples[samples["level"] == level]
    if test.empty:
        raise ValueError(f"no {level} test problems in these samples")
    n_max = int(test.groupby("item_id")["sample"].count().min())
    ns = list(ns or rerank.sample_ns(n_max))
    rows: list[dict[str, Any]] = []
    base = {k: labels[k] for k in ("model", "dataset", "measure")}
    plain = {rule: rerank.outcomes(test, rule, ns) for rule in ("majority", "pass_at_n")}
    for rule, by_n in plain.items():
        for n in ns:
            rows.append({**base, "method": "none", "rule": rule, "train_level": "none", "n_samples": n,
                         **_reading(by_n[n], bootstrap)})
    ruled: dict[tuple[str, str, str], dict[int, np.ndarray]] = {}
    for (kind, train_level), frame in scores.items():
        frame = frame[frame["item_id"].isin(test["item_id"])]
        for rule in EVALUATOR_RULES:
            ruled[kind, train_level, rule] = by_n = rerank.outcomes(test, rule, ns, frame)
            for n in ns:
                rows.append({**base, "method": kind, "rule": rule, "train_level": train_level, "n_samples": n,
                             **_reading(by_n[n], bootstrap)})
        point, replicates = rerank.auroc_replicates(test, frame, bootstrap.n_boot, bootstrap.seed)
        estimate = metrics.estimate_from_replicates(point, replicates)
        rows.append({**base, "method": kind, "rule": "none", "train_level": train_level, "n_samples": n_max,
                     "quantity": "auroc", "point": estimate.point, "lo": estimate.lo, "hi": estimate.hi,
                     "n_items": test["item_id"].nunique(), "n_seeds": frame["seed"].nunique()})
    for (kind, train_level) in scores:  # weighted voting against best-of-N, same evaluator, paired
        for n in ns:
            rows.append({**base, "method": kind, "rule": "weighted_vs_best_of_n", "train_level": train_level,
                         "n_samples": n, **_difference(ruled[kind, train_level, "weighted"][n],
                                                       ruled[kind, train_level, "best_of_n"][n], bootstrap)})
    for kind in sorted({k for k, _ in scores}):
        for rule in EVALUATOR_RULES:
            if (kind, "easy", rule) not in ruled or (kind, "hard", rule) not in ruled:
                continue
            for n in ns:
                parts = matrix_rows(plain["majority"][n], ruled[kind, "easy", rule][n], ruled[kind, "hard", rule][n],
                                    bootstrap)
                rows += [{**base, "method": kind, "rule": rule, "train_level": "comparison", "n_samples": n, **part}
                         for part in parts]
    return pd.DataFrame(rows)


def per_dataset(samples: pd.DataFrame, scores: Mapping[Any, pd.DataFrame], datasets: Mapping[str, str], *,
                model: str, bootstrap: Bootstrap = Bootstrap()) -> pd.DataFrame:
    """``table`` of every dataset in ``datasets`` (dataset -> measure), one after another: its test
    problems' samples (``sample_table``'s rows with ``problems == "test"``) and the scores of its
    evaluator specs (``EvaluatorRunner.run_all``, keyed by ``EvaluatorSpec``)."""
    parts = []
    for dataset, measure in datasets.items():
        test = samples[(samples["dataset"] == dataset) & (samples["problems"] == "test")]
        ranked = {(spec.evaluator.kind, spec.train_level): frame for spec, frame in scores.items()
                  if spec.candidates.dataset == dataset}
        parts.append(table(test.drop(columns=["dataset", "problems"]), ranked,
                           labels={"model": model, "dataset": dataset, "measure": measure}, bootstrap=bootstrap))
    return pd.concat(parts, ignore_index=True)


def sample_table(samples: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """``{dataset: {problem set: samples}}`` (``EvaluatorRunner.samples`` per dataset) as one
    table with ``dataset`` and ``problems`` columns."""
    parts = [frame.assign(dataset=dataset, problems=problems) for dataset, sets in samples.items()
             for problems, frame in sets.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def sample_summary(samples: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, problem set and level (``sample_table``): problems, samples per problem, the
    share of samples with an answer, per-sample accuracy and pass@N (what the generator can do)."""
    frame = samples.assign(answered=samples["vote_key"] >= 0)
    keys = ["dataset", "problems", "level"]
    per_problem = frame.groupby([*keys, "item_id"]).agg(
        n=("sample", "count"), answered=("answered", "mean"), accuracy=("correct", "mean"), any=("correct", "max"))
    out = per_problem.groupby(keys).agg(
        problems_n=("n", "size"), samples_per_problem=("n", "min"), answered=("answered", "mean"),
        sample_accuracy=("accuracy", "mean"), pass_at_n=("any", "mean"))
    return out.reset_index().rename(columns={"problems_n": "n_problems"})


def examples(samples: pd.DataFrame, per_dataset: int = 3, width: int = 300) -> pd.DataFrame:
    """The first samples of the first hard test problems of each dataset (``sample_table``): the
    generation (cut at ``width`` characters), the answer read from it, the gold answer, correctness."""
    test = samples[samples["problems"] == "test"].sort_values(["dataset", "item_id", "sample"])
    first = test.groupby("dataset", sort=False).head(per_dataset)
    out = first[["dataset", "item_id", "sample", "generation", "extracted", "gold", "correct"]].copy()
    out["generation"] = out["generation"].map(lambda t: t if len(t) <= width else t[:width] + " …")
    return out.reset_index(drop=True)


def headline(result: pd.DataFrame) -> pd.DataFrame:
    """At the largest N of each dataset, per evaluator and rule: majority voting, the rule with the
    easy- and hard-trained evaluator, pass@N (accuracies in %, 95% CIs), the evaluator SGR (or
    "gap n.s.") and the easy-trained evaluator's AUROC ("n/a" when every hard test sample is wrong,
    or every one right)."""
    def ci(row: pd.Series, scale: float = 100.0, digits: int = 1) -> str:
        if not np.isfinite(row["point"]):
            return "n/a"
        return f"{scale * row['point']:.{digits}f} [{scale * row['lo']:.{digits}f}, {scale * row['hi']:.{digits}f}]"

    rows = []
    comparisons = sgr_rows(result)
    for (dataset, kind, rule), part in comparisons.groupby(["dataset", "method", "rule"], sort=False):
        q = part.set_index("quantity")
        n = int(part["n_samples"].iloc[0])
        pass_n = result[(result["dataset"] == dataset) & (result["rule"] == "pass_at_n")
                        & (result["n_samples"] == n) & (result["quantity"] == "accuracy")]
        auroc = result[(result["dataset"] == dataset) & (result["method"] == kind) & (result["quantity"] == "auroc")
                       & (result["train_level"] == "easy")]
        rows.append({"dataset": dataset, "evaluator": kind, "rule": rule, "N": n,
                     "majority": ci(q.loc["unsupervised"]), "easy-trained": ci(q.loc["easy"]),
                     "hard-trained": ci(q.loc["hard"]), "pass@N": ci(pass_n.iloc[0]) if len(pass_n) else "",
                     "evaluator SGR": ci(q.loc["sgr"]) if bool(q.loc["sgr", "sgr_stable"]) else "gap n.s.",
                     "AUROC (easy-trained)": ci(auroc.iloc[0], 1.0, 2) if len(auroc) else ""})
    return pd.DataFrame(rows)


def sgr_rows(result: pd.DataFrame) -> pd.DataFrame:
    """The evaluator SGR at the largest N of each (dataset, evaluator, rule): the headline table."""
    comparisons = result[result["train_level"] == "comparison"]
    if comparisons.empty:
        return comparisons
    largest = comparisons.groupby(["dataset", "method", "rule"])["n_samples"].transform("max")
    return comparisons[comparisons["n_samples"] == largest].reset_index(drop=True)
