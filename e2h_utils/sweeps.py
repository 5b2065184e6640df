"""Grids of experiments for RQ3 and RQ4, each a loop over ``experiments.run_experiment``.

Every point is an ordinary experiment spec, so its item-level results are stored under its
own key and reused: a point shared with another notebook (e.g. k = 10 in the learning curve
and in the easy-to-hard notebook, with the same test selection) is computed once.

- ``learning_curve``: hard-test accuracy vs number of training examples, easy vs hard data;
  ``with_cost`` re-expresses n as labelling cost (hard examples cost more).
- ``noise_sweep``: easy data with label noise p, hard data with 2p.
- ``level_grid``: train on each level, test on each level.
- ``source_comparison``: in-context examples from named pools (e.g. ARC grade <= 3) tested
  on one set of test items (e.g. MMLU college).
- ``e2h_summary``: the unsupervised / easy / hard comparison of one dataset, measure, method.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from . import hardness, noise
from .data import DATASETS
from .experiments import (
    METHODS,
    TRAIN_LEVELS,
    ExperimentSpec,
    SpecError,
    TestSelection,
    TrainSource,
    accuracy_with_ci,
    pool_size,
    run_experiment,
    summarize_conditions,
)
from .models import LoadedModel
from .results import ResultStore


def _spec(lm: LoadedModel, dataset: str, measure: str, train_level: str, method: str, n: int,
          seeds: Sequence[int], test: TestSelection, options: Mapping[str, Any] | None, **fields: Any) -> ExperimentSpec:
    return ExperimentSpec(dataset=dataset, measure=measure, train_level=train_level, method=method, n_train=int(n),
                          seeds=tuple(seeds), model=lm.spec.name, test=test,
                          options=tuple((options or {}).items()), **fields)


def _accuracy_row(result: pd.DataFrame, level: str | None, n_boot: int, boot_seed: int, **keys: Any) -> dict:
    estimate = accuracy_with_ci(result, level=level, n_boot=n_boot, seed=boot_seed)
    subset = result if level is None else result[result["level"] == level]
    return {**keys, "accuracy": estimate.point, "lo": estimate.lo, "hi": estimate.hi,
            "n_items": int(subset["item_id"].nunique()), "n_seeds": int(subset["seed"].nunique())}


def e2h_summary(lm: LoadedModel, frame: pd.DataFrame, dataset: str, measure: str, *, method: str, n_train: int,
                seeds: Sequence[int], test: TestSelection, options: Mapping[str, Any] | None = None,
                n_boot: int = 1000, boot_seed: int = 0, store: ResultStore | None = None,
                progress: bool = True) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """(summary row with SGR and CIs on the hard test items, item results per condition)."""
    runs = {level: run_experiment(_spec(lm, dataset, measure, level, method, n_train, seeds, test, options),
                                  lm, frame, store=store, progress=progress)
            for level in ("none", "easy", "hard")}
    summary = summarize_conditions(runs["none"], runs["easy"], runs["hard"], n_boot=n_boot, seed=boot_seed)
    return {"model": lm.spec.name, "dataset": dataset, "measure": measure, "method": method, **summary}, runs


def learning_curve(lm: LoadedModel, frame: pd.DataFrame, dataset: str, measure: str, *, method: str,
                   sizes: Sequence[int], seeds: Sequence[int], test: TestSelection,
                   train_levels: Sequence[str] = ("easy", "hard"), options: Mapping[str, Any] | None = None,
                   n_boot: int = 1000, boot_seed: int = 0, store: ResultStore | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Hard-test accuracy for every training level and size n (k for ICL), with 95% CIs.

    One row per (train_level, n); the zero-shot baseline is the row ``train_level="none"``,
    ``n=0`` (a size of 0 is that baseline for every level)."""
    grid = [(level, int(n)) for level in train_levels for n in sizes if int(n) > 0]
    too_large = []
    for level in train_levels:
        largest = max([n for lv, n in grid if lv == level], default=0)
        available = pool_size(frame, _spec(lm, dataset, measure, level, method, 1, seeds, test, options))
        if largest > available:
            too_large.append(f"{level}: n up to {largest}, pool {available}")
    if too_large:
        raise SpecError(
            f"learning curve {dataset}/{measure}/{method}: sizes larger than the training pool "
            f"({'; '.join(too_large)}). Drop those sizes or lower test_fraction (now {test.test_fraction}); "
            "a point is never recorded with an n it did not train on.")
    rows = []
    zero = run_experiment(_spec(lm, dataset, measure, "none", method, 0, seeds, test, options), lm, frame,
                          store=store, progress=progress)
    rows.append(_accuracy_row(zero, "hard", n_boot, boot_seed, dataset=dataset, measure=measure, method=method,
                              train_level="none", n=0))
    for level, n in tqdm(grid, desc=f"{dataset}/{measure}/{method} learning curve", disable=not progress):
        result = run_experiment(_spec(lm, dataset, measure, level, method, n, seeds, test, options), lm, frame,
                                store=store, progress=progress)
        rows.append(_accuracy_row(result, "hard", n_boot, boot_seed, dataset=dataset, measure=measure,
                                  method=method, train_level=level, n=n))
    return pd.DataFrame(rows)


def with_cost(curve: pd.DataFrame, costs: Mapping[str, float]) -> pd.DataFrame:
    """``curve`` with ``cost`` = n x the per-example labelling cost of its training level
    (e.g. ``{"easy": 1, "hard": 2}``: hard labels cost twice as much)."""
    missing = set(curve["train_level"]) - set(costs) - {"none"}
    if missing:
        raise ValueError(f"no labelling cost given for training level(s) {sorted(missing)}")
    return curve.assign(cost=[0.0 if level == "none" else float(n) * float(costs[level])
                              for level, n in zip(curve["train_level"], curve["n"])])


def noise_sweep(lm: LoadedModel, frame: pd.DataFrame, dataset: str, measure: str, *, method: str, n_train: int,
                rates: Sequence[float], seeds: Sequence[int], test: TestSelection, hard_multiplier: float = 2.0,
                options: Mapping[str, Any] | None = None, n_boot: int = 1000, boot_seed: int = 0,
                store: ResultStore | None = None, progress: bool = True) -> pd.DataFrame:
    """For each base rate p: hard-test accuracy of easy data at noise p and hard data at
    ``hard_multiplier`` x p, the zero-shot baseline, and SGR of that pair (with CIs)."""
    zero = run_experiment(_spec(lm, dataset, measure, "none", method, 0, seeds, test, options), lm, frame,
                          store=store, progress=progress)
    rows = []
    for p in tqdm(list(rates), desc=f"{dataset}/{measure}/{method} label noise", disable=not progress):
        rates_used = noise.noise_rates(p, hard_multiplier)
        noised = {}
        for level, rate in rates_used.items():
            noised[level] = run_experiment(
                _spec(lm, dataset, measure, level, method, n_train, seeds, test, options, label_noise=rate),
                lm, frame, store=store, progress=progress)
        summary = summarize_conditions(zero, noised["easy"], noised["hard"], n_boot=n_boot, seed=boot_seed)
        rows.append({"dataset": dataset, "measure": measure, "method": method, "p": float(p),
                     "noise_easy": rates_used["easy"], "noise_hard": rates_used["hard"], **summary})
    return pd.DataFrame(rows)


def level_grid(lm: LoadedModel, frame: pd.DataFrame, dataset: str, measure: str, *, method: str, n_train: int,
               seeds: Sequence[int], test: TestSelection, train_levels: Sequence[str] = ("none", "easy", "medium", "hard"),
               options: Mapping[str, Any] | None = None, n_boot: int = 1000, boot_seed: int = 0,
               store: ResultStore | None = None, progress: bool = True) -> pd.DataFrame:
    """Accuracy for every (train level, test level) pair, with 95% CIs (``test.levels`` are tested).

    Levels the measure does not produce are skipped, both as training and as test level: a
    two-valued measure such as MMLU's high school / college has no medium level."""
    present = set(hardness.assign_levels(frame, hardness.get_measure(dataset, measure)).dropna())
    train_levels = [level for level in train_levels if level in present or level in ("none", "all")]
    test_levels = [level for level in test.levels if level in present]
    rows = []
    for train_level in tqdm(train_levels, desc=f"{dataset}/{measure}/{method} grid", disable=not progress):
        result = run_experiment(_spec(lm, dataset, measure, train_level, method, n_train, seeds, test, options),
                                lm, frame, store=store, progress=progress)
        for test_level in test_levels:
            rows.append(_accuracy_row(result, test_level, n_boot, boot_seed, dataset=dataset, measure=measure,
                                      method=method, train_level=train_level, test_level=test_level))
    return pd.DataFrame(rows)


def source_comparison(lm: LoadedModel, frame: pd.DataFrame, dataset: str, measure: str, *,
                      sources: Mapping[str, str | TrainSource], n_train: int, seeds: Sequence[int],
                      test: TestSelection, test_level: str = "hard", frames: Mapping[str, pd.DataFrame] | None = None,
                      n_boot: int = 1000, boot_seed: int = 0, store: ResultStore | None = None,
                      progress: bool = True) -> pd.DataFrame:
    """In-context learning with examples from each named source, tested on the ``test_level``
    items of ``dataset`` split by ``measure``. A source is a training level of that split
    (``"none"``, ``"easy"``, ``"hard"``, ...) or a ``TrainSource`` (e.g. another dataset)."""
    frames = dict(frames or {})
    rows = []
    for name, source in tqdm(list(sources.items()), desc=f"{dataset} prompt sources", disable=not progress):
        if isinstance(source, TrainSource):
            spec = _spec(lm, dataset, measure, "all", "icl", n_train, seeds, test, None, train_source=source)
            result = run_experiment(spec, lm, frame, store=store, progress=progress,
                                    source_frame=frames.get(source.dataset))
            described = source.label
        else:
            result = run_experiment(_spec(lm, dataset, measure, source, "icl", n_train, seeds, test, None), lm, frame,
                                    store=store, progress=progress)
            described = f"{dataset}: {measure} level {source}" if source != "none" else "no examples (zero-shot)"
        rows.append(_accuracy_row(result, test_level, n_boot, boot_seed, source=name, pool=described,
                                  n_shots=int(result["n_shots"].max())))
    return pd.DataFrame(rows)


# --- reading notebook parameters ----------------------------------------------------------

def parse_targets(targets: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str]]:
    """``{method: ["dataset/measure", ...]}`` (the notebooks' YAML form) -> (method, dataset, measure).

    Unknown methods, datasets and measures are reported here, before any model runs."""
    if not isinstance(targets, Mapping):
        raise ValueError(f"expected a mapping {{method: ['dataset/measure', ...]}}, not {targets!r}")
    out = []
    for method, pairs in targets.items():
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
        if isinstance(pairs, str):  # a single "dataset/measure" written without brackets
            pairs = [pairs]
        for pair in pairs:
            dataset, sep, measure = str(pair).partition("/")
            if not sep or not dataset or not measure:
                raise ValueError(f"expected 'dataset/measure' (e.g. 'arc/grade'), not {pair!r} under {method!r}")
            if dataset not in DATASETS:
                raise ValueError(f"unknown dataset {dataset!r} in {pair!r} under {method!r}; valid: {', '.join(DATASETS)}")
            try:
                hardness.get_measure(dataset, measure)
            except KeyError as error:
                raise ValueError(f"{pair!r} under {method!r}: {error}") from None
            out.append((method, dataset, measure))
    return out


def parse_sources(sources: Mapping[str, str | Mapping[str, Any]]) -> dict[str, str | TrainSource]:
    """YAML sources -> ``source_comparison`` sources: a string is a training level of the test
    split; a mapping is a ``TrainSource`` (dataset, column, min_value and/or max_value)."""
    out: dict[str, str | TrainSource] = {}
    for name, value in sources.items():
        if isinstance(value, str):
            if value not in TRAIN_LEVELS:
                raise ValueError(f"source {name!r}: unknown training level {value!r}; valid: {', '.join(TRAIN_LEVELS)} "
                                 "(or a mapping with dataset, column, min_value / max_value)")
            out[name] = value
        elif isinstance(value, Mapping):
            unknown = set(value) - {"dataset", "column", "min_value", "max_value"}
            if unknown:
                raise ValueError(f"source {name!r}: unknown key(s) {sorted(unknown)}; "
                                 "valid: dataset, column, min_value, max_value")
            missing = {"dataset", "column"} - set(value)
            if missing:
                raise ValueError(f"source {name!r}: missing key(s) {sorted(missing)} (a source mapping needs "
                                 "dataset, column and min_value and/or max_value)")
            try:
                out[name] = TrainSource(**value)
            except SpecError as error:
                raise ValueError(f"source {name!r}: {error}") from None
        else:
            raise ValueError(f"source {name!r} must be a training level or a mapping, not {value!r}")
    return out


def few_vs_many(curves: pd.DataFrame, few: int = 10) -> pd.DataFrame:
    """Per curve: zero-shot, easy data at ``few`` examples (the nearest size at or above it),
    and the best point of hard data: "as few as ten easy examples" next to the oracle."""
    rows = []
    for key, part in curves.groupby(["dataset", "measure", "method"], sort=False):
        zero = part[part["train_level"] == "none"]
        easy = part[(part["train_level"] == "easy") & (part["n"] >= few)].sort_values("n").head(1)
        hard = part[part["train_level"] == "hard"].sort_values("accuracy").tail(1)
        row = dict(zip(["dataset", "measure", "method"], key))
        row["zero-shot"] = float(zero["accuracy"].iloc[0]) if len(zero) else float("nan")
        for name, pick in (("easy", easy), ("best hard", hard)):
            row[f"{name} n"] = int(pick["n"].iloc[0]) if len(pick) else None
            row[f"{name} accuracy"] = float(pick["accuracy"].iloc[0]) if len(pick) else float("nan")
            row[f"{name} CI"] = (f"[{100 * pick['lo'].iloc[0]:.1f}, {100 * pick['hi'].iloc[0]:.1f}]" if len(pick) else "")  # in %
        rows.append(row)
    return pd.DataFrame(rows)
