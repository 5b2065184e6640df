"""Plans: which runs an experiment needs, and what each result means (pure: no model, no data).

A plan is a list of two kinds of entries, each carrying the labels it has in the result table
(``keys``: model, dataset, measure, method, and what varies, e.g. ``n`` or ``p``):

- ``Comparison``: unsupervised / easy / hard runs scored on the same test items: an SGR with its
  accuracies (the unit of RQ2 and of the label-noise and model-scale experiments);
- ``Reading``: one run's accuracy on the test items of one level (a learning-curve point, a cell
  of a train x test level grid, a prompt source).

The builders below return such lists; the notebooks, the preflight plan (``pipeline.plan``), the
cluster jobs and the dry run all build their runs with them, so what a notebook runs and what a
plan lists cannot drift apart. ``specs(plan)`` gives every spec once, in order, for
``experiments.runner.Runner.run_all``; ``analysis.estimates.table`` turns the plan and its
results into the one result table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence, Union

import pandas as pd

from e2h_utils.data import hardness
from e2h_utils.experiments.spec import (
    ExperimentSpec,
    TestSelection,
    Training,
    TrainSource,
    baseline_of,
)
from e2h_utils.methods import noise
from e2h_utils.methods.base import CoT, Method

Keys = tuple[tuple[str, Any], ...]


def keys(**labels: Any) -> Keys:
    return tuple(labels.items())


@dataclass(frozen=True)
class Comparison:
    """Unsupervised, easy and hard runs on the same test items: SGR = (easy - unsupervised) /
    (hard - unsupervised) on the items of ``level``, read from the column ``value`` (chain of
    thought: ``correct_strict`` / ``correct_lenient`` for one answer rule)."""

    unsupervised: ExperimentSpec
    easy: ExperimentSpec
    hard: ExperimentSpec
    keys: Keys
    level: str = "hard"
    value: str = "correct"

    @property
    def specs(self) -> tuple[ExperimentSpec, ...]:
        return (self.unsupervised, self.easy, self.hard)

    @property
    def labels(self) -> dict[str, Any]:
        return dict(self.keys)


@dataclass(frozen=True)
class Reading:
    """One run's accuracy on the test items of ``level`` (None: every test item)."""

    spec: ExperimentSpec
    keys: Keys
    level: str | None = "hard"

    @property
    def specs(self) -> tuple[ExperimentSpec, ...]:
        return (self.spec,)

    @property
    def labels(self) -> dict[str, Any]:
        return dict(self.keys)


Entry = Union[Comparison, Reading]


def specs(plan: Iterable[Entry]) -> list[ExperimentSpec]:
    """Every spec of a plan once, in the order the plan needs them."""
    return list(dict.fromkeys(spec for entry in plan for spec in entry.specs))


def table(plan: Iterable[Entry]) -> pd.DataFrame:
    """The runs of a plan, one row each, before anything runs: what a notebook is about to compute
    or read back (each run's seeds are stored and reused)."""
    rows = [{"model": spec.model, "dataset": spec.dataset, "measure": spec.measure, "method": spec.method.kind,
             "size": spec.method.size,
             "trained on": spec.train_level if spec.train_source is None else spec.train_source.label,
             "label noise": spec.label_noise, "prompt": spec.prompt_format or "authors'",
             "seeds": len(spec.run_seeds), "test levels": "/".join(spec.test.levels),
             "test items per level": spec.test.max_per_level or "all"}
            for spec in specs(plan)]
    return pd.DataFrame(rows)


# --- one experiment ------------------------------------------------------------------------------

def run(dataset: str, measure: str, method: Method, pool: str | TrainSource | None, *, seeds: Sequence[int],
        model: str, test: TestSelection, label_noise: float = 0.0, prompt_format: str | None = None) -> ExperimentSpec:
    """One spec: ``method`` trained on ``pool`` (None: the method's unsupervised baseline,
    ``spec.baseline_of``)."""
    if pool is None:
        baseline, fmt = baseline_of(method, dataset, prompt_format)
        return ExperimentSpec(dataset, measure, baseline, None, tuple(seeds), model, test, fmt)
    return ExperimentSpec(dataset, measure, method, Training(pool, label_noise), tuple(seeds), model, test,
                          prompt_format)


def comparison(dataset: str, measure: str, method: Method, *, seeds: Sequence[int], model: str,
               test: TestSelection, noise_easy: float = 0.0, noise_hard: float = 0.0,
               prompt_format: str | None = None, value: str = "correct", **labels: Any) -> Comparison:
    """Easy vs hard training of ``method`` against its unsupervised baseline, on the hard test items."""
    easy = run(dataset, measure, method, "easy", seeds=seeds, model=model, test=test, label_noise=noise_easy,
               prompt_format=prompt_format)
    hard = run(dataset, measure, method, "hard", seeds=seeds, model=model, test=test, label_noise=noise_hard,
               prompt_format=prompt_format)
    return Comparison(easy.unsupervised(), easy, hard,
                      keys(model=model, dataset=dataset, measure=measure, method=method.kind, **labels), value=value)


def comparisons(targets: Iterable[tuple[str, str, Method]], *, seeds: Mapping[str, Sequence[int]], model: str,
                test: TestSelection, formats: Mapping[str, str] | None = None, **labels: Any) -> list[Comparison]:
    """One comparison per (dataset, measure, method); ``seeds`` by method kind, ``formats`` (answer-scored
    prompt format) by dataset (absent: the dataset's default, the authors' prompt)."""
    formats = formats or {}
    return [comparison(dataset, measure, method, seeds=seeds[method.kind], model=model, test=test,
                       prompt_format=None if isinstance(method, CoT) else formats.get(dataset), **labels)
            for dataset, measure, method in targets]


def answer_rules(entry: Comparison, rules: Sequence[str]) -> list[Comparison]:
    """A chain-of-thought comparison read under each answer rule (the same generations)."""
    return [replace(entry, keys=entry.keys + (("rule", rule),), value=f"correct_{rule}") for rule in rules]


# --- RQ3 and RQ4 sweeps ----------------------------------------------------------------------------

def by_answer_rule(plan: Iterable[Comparison], rules: Sequence[str]) -> list[Comparison]:
    """``answer_rules`` of every comparison of a chain-of-thought plan."""
    return [entry for comparison in plan for entry in answer_rules(comparison, rules)]


def learning_curve(dataset: str, measure: str, method: Method, sizes: Sequence[int], *, seeds: Sequence[int],
                   model: str, test: TestSelection, pools: Sequence[str] = ("easy", "hard"),
                   prompt_format: str | None = None) -> list[Reading]:
    """Hard-test accuracy for every training pool and size n (k for ICL); the zero-shot baseline
    is the entry with ``train_level="none"``, ``n=0`` (a size of 0 is that baseline for every pool)."""
    label = keys(model=model, dataset=dataset, measure=measure, method=method.kind)
    out = [Reading(run(dataset, measure, method, None, seeds=seeds, model=model, test=test,
                       prompt_format=prompt_format),
                   label + (("train_level", "none"), ("n", 0)))]
    for pool in pools:
        for n in sizes:
            if int(n) > 0:
                spec = run(dataset, measure, method.resized(int(n)), pool, seeds=seeds, model=model, test=test,
                           prompt_format=prompt_format)
                out.append(Reading(spec, label + (("train_level", pool), ("n", int(n)))))
    return out


def few_vs_most(curve: Iterable[Reading], few: int) -> list[Comparison]:
    """For each learning curve of ``curve`` (readings of ``learning_curve``): zero-shot, the first
    easy size at or above ``few`` and the largest hard size as one comparison (same test items)."""
    out = []
    for key, readings in _by_curve(curve).items():
        zero = [r for r in readings if r.labels["train_level"] == "none"]
        easy = sorted((r for r in readings if r.labels["train_level"] == "easy" and r.labels["n"] >= few),
                      key=lambda r: r.labels["n"])
        hard = sorted((r for r in readings if r.labels["train_level"] == "hard"), key=lambda r: r.labels["n"])
        if zero and easy and hard:
            out.append(Comparison(zero[0].spec, easy[0].spec, hard[-1].spec,
                                  keys(**dict(zip(("model", "dataset", "measure", "method"), key)),
                                       n=easy[0].labels["n"], n_hard=hard[-1].labels["n"])))
    return out


def _by_curve(readings: Iterable[Reading]) -> dict[tuple, list[Reading]]:
    out: dict[tuple, list[Reading]] = {}
    for reading in readings:
        labels = reading.labels
        out.setdefault(tuple(labels[k] for k in ("model", "dataset", "measure", "method")), []).append(reading)
    return out


def at_equal_cost(curve: Iterable[Reading], costs: Mapping[str, float]) -> list[Comparison]:
    """For each learning curve: zero-shot, easy data and hard data at the largest labelling cost both
    reach (n x the per-example cost of the level), as one comparison on the same test items."""
    out = []
    for key, readings in _by_curve(curve).items():
        zero = [r for r in readings if r.labels["train_level"] == "none"]
        by_cost = {level: {float(r.labels["n"]) * float(costs[level]): r for r in readings
                           if r.labels["train_level"] == level} for level in ("easy", "hard") if level in costs}
        shared = sorted(set(by_cost.get("easy", {})) & set(by_cost.get("hard", {})))
        if zero and shared:
            cost = shared[-1]
            easy, hard = by_cost["easy"][cost], by_cost["hard"][cost]
            out.append(Comparison(zero[0].spec, easy.spec, hard.spec,
                                  keys(**dict(zip(("model", "dataset", "measure", "method"), key)), cost=cost,
                                       n_easy=easy.labels["n"], n_hard=hard.labels["n"])))
    return out


def grid_pairs(grid: Iterable[Reading]) -> list[Comparison]:
    """The hard test items of a level grid as paired comparisons: (zero-shot, easy, hard) and
    (zero-shot, medium, hard) per dataset, measure and method (``lower``: the easier training level)."""
    out = []
    for key, readings in _by_curve(r for r in grid if r.labels.get("test_level") == "hard").items():
        spec = {r.labels["train_level"]: r.spec for r in readings}
        for lower in ("easy", "medium"):
            if {"none", lower, "hard"} <= set(spec):
                out.append(Comparison(spec["none"], spec[lower], spec["hard"],
                                      keys(**dict(zip(("model", "dataset", "measure", "method"), key)), lower=lower)))
    return out


def label_noise(dataset: str, measure: str, method: Method, rates: Sequence[float], *, seeds: Sequence[int],
                model: str, test: TestSelection, hard_multiplier: float = 2.0,
                prompt_format: str | None = None) -> list[Comparison]:
    """For each base rate p: easy data at noise p and hard data at ``hard_multiplier`` x p (capped at 1),
    against the same zero-shot baseline."""
    out = []
    for p in rates:
        rate = noise.noise_rates(float(p), hard_multiplier)
        out.append(comparison(dataset, measure, method, seeds=seeds, model=model, test=test, noise_easy=rate["easy"],
                              noise_hard=rate["hard"], prompt_format=prompt_format, p=float(p),
                              noise_easy_rate=rate["easy"], noise_hard_rate=rate["hard"]))
    return out


def level_grid(dataset: str, measure: str, method: Method, *, seeds: Sequence[int], model: str, test: TestSelection,
               train_levels: Sequence[str] = ("none", "easy", "medium", "hard"),
               levels_present: Iterable[str] = hardness.LEVELS, prompt_format: str | None = None) -> list[Reading]:
    """Accuracy for every (training level, test level) pair (``test.levels`` are tested). Levels
    the measure does not produce (``levels_present``; MMLU's school level has no medium) are left
    out, as training and as test level."""
    present = set(levels_present)
    label = keys(model=model, dataset=dataset, measure=measure, method=method.kind)
    out = []
    for level in [lv for lv in train_levels if lv in present or lv in ("none", "all")]:
        spec = run(dataset, measure, method, None if level == "none" else level, seeds=seeds, model=model, test=test,
                   prompt_format=prompt_format)
        for test_level in [lv for lv in test.levels if lv in present]:
            out.append(Reading(spec, label + (("train_level", level), ("test_level", test_level)), level=test_level))
    return out


def prompt_sources(dataset: str, measure: str, method: Method, sources: Mapping[str, str | TrainSource], *,
                   seeds: Sequence[int], model: str, test: TestSelection, level: str = "hard",
                   prompt_format: str | None = None) -> list[Reading]:
    """``method`` (ICL) with examples from each named source, tested on the ``level`` items of
    ``dataset`` split by ``measure``. A source is a training level of that split (``"none"``:
    zero-shot) or a ``TrainSource`` (e.g. another dataset's rows)."""
    out = []
    for name, source in sources.items():
        pool = None if source == "none" else source
        spec = run(dataset, measure, method, pool, seeds=seeds, model=model, test=test, prompt_format=prompt_format)
        if isinstance(source, TrainSource):
            described = source.label
        else:
            described = f"{dataset}: {measure} level {source}" if source != "none" else "no examples (zero-shot)"
        out.append(Reading(spec, keys(model=model, dataset=dataset, measure=measure, method=method.kind, source=name,
                                      pool=described), level=level))
    return out


def all_to_all(dataset: str, measure: str, method: Method, *, seeds: Sequence[int], model: str,
               test: TestSelection, prompt_format: str | None = None) -> list[Reading]:
    """Trained on every level's pool and tested on every level (the reference point of the
    paper's tables), with the zero-shot run beside it."""
    label = keys(model=model, dataset=dataset, measure=measure, method=method.kind)
    return [Reading(run(dataset, measure, method, pool, seeds=seeds, model=model, test=test,
                        prompt_format=prompt_format),
                    label + (("train_level", pool or "none"),), level=None) for pool in (None, "all")]


def zero_shot_checks(dataset: str, measure: str, formats: Sequence[str | None], *, model: str, test: TestSelection,
                     method: Method) -> list[Reading]:
    """Zero-shot accuracy per test level under each prompt format (the sanity check)."""
    out = []
    for fmt in formats:
        spec = run(dataset, measure, method, None, seeds=(0,), model=model, test=test, prompt_format=fmt)
        for level in test.levels:
            out.append(Reading(spec, keys(model=model, dataset=dataset, measure=measure, method="zero_shot",
                                          prompt_format=fmt or "default", test_level=level), level=level))
    return out
