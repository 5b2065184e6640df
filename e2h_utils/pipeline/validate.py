"""Checking a profile's parameter values before any notebook starts.

``check_values(name, values, source)`` returns the problems of one notebook's YAML values: a
wrong type (``k_shot: two``, ``n_test: "3"``), an out-of-range number (``seeds: []``,
``test_fraction: 1.5``), an unknown name (dataset, measure, method, learner, prompt format,
quantization, dtype, model), method options a method does not take, and settings that a later
cell would miss (a method with no seeds, ICL on a dataset with no ``k_shot``). Each problem names
the file, the key and what is valid, so it can be fixed before minutes of computing are spent.
``reproduce.run`` calls it for every notebook of a profile and stops if any has a problem.

Rules are by parameter name (the notebooks share their vocabulary); a key with no rule is
accepted as the notebook's own business.
"""

from __future__ import annotations

import math
import numbers
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, cast

import pandas as pd

from e2h_utils import paths
from e2h_utils.data import datasets
from e2h_utils.data import hardness, prompts
from e2h_utils.engine import models
from e2h_utils.experiments import mdl, plans, settings, split
from e2h_utils.experiments.spec import POOLS, ExperimentSpec, SpecError, TestSelection
from e2h_utils.methods import base as methods
from e2h_utils.methods import noise

Problem = str


class Invalid(ValueError):
    """A parameter value that a notebook cannot use."""


# --- small type rules ----------------------------------------------------------------------------


def _int(value: Any, minimum: int | None = None, maximum: tuple[int, str] | None = None) -> int:
    """An integer >= ``minimum``; ``maximum``: (the most any run needs, what is counted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise Invalid(f"expected an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise Invalid(f"expected an integer >= {minimum}, got {value}")
    if maximum is not None and int(value) > maximum[0]:
        _too_many(value, *maximum)
    return int(value)


def _number(value: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False,
            open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Invalid(f"expected a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(float(value)):  # .nan passes every comparison below
        raise Invalid(f"expected a finite number, got {value!r}")
    if low is not None and (value < low or (open_low and value == low)):
        raise Invalid(f"expected a number {'>' if open_low else '>='} {low}, got {value}")
    # numbers.Real declares only __lt__ and __le__, so mypy rejects ``value > high`` (every real type has it)
    if high is not None and (value > high or (open_high and value == high)):  # type: ignore[operator]
        raise Invalid(f"expected a number {'<' if open_high else '<='} {high}, got {value}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {value!r}")
    return value


def _optional_int(value: Any, minimum: int = 1) -> None:
    if value is not None:
        _int(value, minimum)


MAX_FOLDS = 100  # cross-fitting: trainings per seed (1 / test_fraction)
MAX_BOOT = 1_000_000  # bootstrap draws: the paper's 10,000 and far beyond, short of an array no machine holds


def _too_many(value: Any, limit: int, what: str) -> None:
    raise Invalid(f"{value!r} {what} is more than any run needs (at most {limit:,}); the paper uses 10,000")


def _list(value: Any, item: Callable[[Any], Any], *, non_empty: bool = True) -> list:
    if not isinstance(value, list):
        raise Invalid(f"expected a list, got {value!r} ({type(value).__name__})")
    if non_empty and not value:
        raise Invalid("expected a non-empty list")
    for element in value:
        item(element)
    repeated = sorted({repr(x) for k, x in enumerate(value) if x in value[:k]})
    if repeated:  # a repeated seed, rate or method would be read once or run and counted twice
        raise Invalid(f"{', '.join(repeated)} given more than once in {value!r}: give each once")
    return value


def _mapping(value: Any, key: Callable[[Any], Any], item: Callable[[Any], Any]) -> Mapping:
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping (key: value), got {value!r} ({type(value).__name__})")
    for k, v in value.items():
        key(k)
        try:
            item(v)
        except Invalid as error:
            raise Invalid(f"{k}: {error}") from None
    return value


def _one_of(valid: Iterable[str] | Callable[[], Iterable[str]], what: str) -> Callable[[Any], str]:
    """A check that a value is one of ``valid`` (a callable: read at each check, e.g. the methods
    registered so far)."""
    def check(value: Any) -> str:
        names = tuple(valid() if callable(valid) else valid)
        if value not in names:
            raise Invalid(f"unknown {what} {value!r}; valid: {', '.join(names)}")
        return value

    return check


_dataset = _one_of(datasets.DATASETS, "dataset")
_method = _one_of(methods.kinds, "method")
_answer_scoring = _one_of(lambda: methods.kinds(chain_of_thought=False), "answer-scoring method")
_chain_of_thought = _one_of(lambda: methods.kinds(chain_of_thought=True), "chain-of-thought method")
SEED_MAX = 2**32 - 1  # numpy's and torch's seeding take it, and a stored result's int64 column holds it


def _seed(value: Any) -> int:
    seed = _int(value, 0)
    if seed > SEED_MAX:
        raise Invalid(f"expected a seed between 0 and {SEED_MAX} (2**32 - 1), got {seed}")
    return seed


_seed_list = lambda value: _list(value, _seed)  # noqa: E731


def _model(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise Invalid(f"expected a model name (embedded, a local folder or a Hub id), got {value!r}")
    try:
        models.resolve_source(models.ModelSpec(name=value))
    except models.ModelSpecError as error:
        raise Invalid(str(error)) from None


def _measures(value: Any, datasets: Iterable[str] = datasets.DATASETS) -> None:
    def names(dataset):
        def check(measures):
            _list(measures, lambda m: None)
            for measure in measures:
                try:
                    hardness.get_measure(dataset, measure)
                except KeyError as error:
                    raise Invalid(str(error.args[0])) from None
        return check

    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping dataset -> [measures], got {value!r}")
    for dataset, measures in value.items():
        _one_of(datasets, "dataset")(dataset)
        try:
            names(dataset)(measures)
        except Invalid as error:
            raise Invalid(f"{dataset}: {error}") from None


def _targets(value: Any) -> None:
    try:
        settings.parse_targets(value)
    except ValueError as error:
        raise Invalid(str(error)) from None


def _sources(value: Any) -> None:
    if not isinstance(value, Mapping) or not value:
        raise Invalid(f"expected a non-empty mapping name -> source, got {value!r}")
    try:
        settings.parse_sources(value)
    except ValueError as error:
        raise Invalid(str(error)) from None


def _k_shot(value: Any) -> None:
    if isinstance(value, Mapping):
        _mapping(value, _dataset, lambda k: _int(k, 1))
    else:
        _int(value, 1)


def _seeds(value: Any) -> None:
    if isinstance(value, Mapping):
        _mapping(value, _method, _seed_list)
    else:
        _seed_list(value)


def _method_options() -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a mapping method -> {{option: value}}, got {value!r}")
        for method, options in value.items():
            _method(method)
            if not isinstance(options, Mapping):
                raise Invalid(f"{method}: expected a mapping of options, got {options!r}")
            try:
                methods.build(method, 1, dict(options))
            except (methods.MethodError, SpecError, ValueError, TypeError) as error:
                raise Invalid(f"{method}: {error}") from None
    return check


def _mdl_learners(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping dataset -> [learners], got {value!r}")
    for dataset, learners in value.items():
        _list(learners, _one_of(mdl.LEARNERS, "MDL learner"))
        for learner in learners:
            try:
                mdl.MDLSpec(dataset=dataset, learner=learner)
            except SpecError as error:
                raise Invalid(f"{dataset}: {error}") from None


def _evaluator_datasets(value: Any) -> None:
    """dataset -> one hardness measure, for datasets with a chain-of-thought format (they are sampled)."""
    if not isinstance(value, Mapping) or not value:
        raise Invalid(f"expected a non-empty mapping dataset -> measure, got {value!r}")
    for dataset, measure in value.items():
        _one_of(tuple(prompts.DEFAULT_COT_FORMAT), "dataset with a chain-of-thought format")(dataset)
        try:
            hardness.get_measure(dataset, measure)
        except KeyError as error:
            raise Invalid(f"{dataset}: {error.args[0]}") from None


def _column(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise Invalid(f"expected the name of a boolean column marking the test set (MATH: math500), got {value!r}")


_per_sampled = lambda item: lambda v: _mapping(v, _one_of(tuple(prompts.DEFAULT_COT_FORMAT), "dataset"), item)  # noqa: E731
_evaluator = _one_of(("probe", "qlora"), "evaluator")

RULES: dict[str, Callable[[Any], Any]] = {
    "model": _model,
    "models_to_compare": lambda v: _list(v, _model),
    "robustness_models": lambda v: _list(v, _model, non_empty=False),
    "college_models": lambda v: _list(v, _model),
    "mdl_hardness_models": lambda v: _list(v, _model, non_empty=False),
    "model_dtype": _one_of(models.DTYPES, "dtype"),
    "model_quantization": _one_of(models.QUANTIZATIONS, "quantization"),
    "mdl_model_quantization": _one_of(models.QUANTIZATIONS, "quantization"),
    "dataset": _dataset,
    "datasets": lambda v: _list(v, _dataset),
    "measures": _measures,
    "method_measures": lambda v: _mapping(v, _answer_scoring, _measures),
    "cot_measures": lambda v: _measures(v, tuple(prompts.DEFAULT_COT_FORMAT)),
    "methods": lambda v: _list(v, _answer_scoring),
    "cot_methods": lambda v: _list(v, _chain_of_thought, non_empty=False),
    "runs": _targets, "curves": _targets, "grid": _targets, "sweeps_to_run": _targets, "robustness_runs": _targets,
    "k_shot": _k_shot,
    "cot_k_shot": lambda v: _mapping(v, _dataset, lambda k: _int(k, 1)),
    "robustness_k_shot": lambda v: _mapping(v, _dataset, lambda k: _int(k, 1)),
    "n_train": lambda v: _mapping(v, _method, lambda n: _int(n, 1)),
    "cot_n_train": lambda v: _mapping(v, _method, lambda n: _int(n, 1)),
    "seeds": _seeds,
    "cot_seeds": lambda v: _mapping(v, _method, _seed_list),
    "college_seeds": _seed_list, "robustness_seeds": _seed_list, "mdl_seeds": _seed_list,
    "method_options": _method_options(),
    "cot_method_options": _method_options(),
    "test_fraction": lambda v: _number(v, 0.0, 1.0, open_low=True, open_high=True),
    "max_test_per_level": _optional_int, "all_to_all_max_test_per_level": _optional_int,
    "cot_max_test_per_level": _optional_int, "grid_max_test_per_level": _optional_int,
    "college_max_test": _optional_int, "robustness_max_test_per_level": _optional_int,
    "test_levels": lambda v: _list(v, _one_of(hardness.LEVELS, "test level")),
    "grid_train_levels": lambda v: _list(v, _one_of(("none", *POOLS), "training level")),
    "split_seed": _seed, "bootstrap_seed": _seed,
    "n_boot": lambda v: _int(v, 1, (MAX_BOOT, "bootstrap draws")),
    "all_to_all": _bool, "cross_fit": _bool,
    "sanity_check_items": lambda v: _int(v, 0),
    "sanity_check_formats": lambda v: _list(v, _one_of(prompts.FORMATS, "prompt format"), non_empty=False),
    "demonstrations": lambda v: _list(v, _method, non_empty=False),
    "demonstration_datasets": lambda v: _list(v, _dataset, non_empty=False),
    "prompt_formats": lambda v: _mapping(v, _one_of(tuple(prompts.DEFAULT_FORMAT), "answer-scored dataset"),
                                         _one_of(prompts.FORMATS, "prompt format")),
    "prompt_format": lambda v: None if v is None else _one_of(prompts.FORMATS, "prompt format")(v),
    "rates": lambda v: _list(v, lambda p: _number(p, 0.0, 1.0)),
    "hard_multiplier": lambda v: _number(v, 1.0),  # hard labels at least as noisy as easy ones (the paper: 2)
    "sizes": lambda v: _mapping(v, _method, lambda s: _list(s, lambda n: _int(n, 0))),
    "label_costs": lambda v: _mapping(v, _one_of(("easy", "medium", "hard", "all"), "training level"),
                                      lambda c: _number(c, 0.0, open_low=True)),
    "few_easy": lambda v: _int(v, 1),
    "college_sources": _sources,
    "college_k": lambda v: _int(v, 1),
    "mdl_learners": _mdl_learners,
    "mdl_max_items": lambda v: _mapping(v, _one_of(mdl.MC_DATASETS, "MDL dataset"), lambda n: _optional_int(n, 2)),
    "mdl_subset_sizes": lambda v: _list(v, lambda n: _int(n, 1)),
    "mdl_max_holdout": lambda v: _optional_int(v, 1),
    "n_test": lambda v: _int(v, 1),
    # the easy-to-hard evaluators
    "evaluator_datasets": _evaluator_datasets,
    "fixed_test": _per_sampled(_column),
    "n_samples": _per_sampled(lambda n: _int(n, 1)), "n_train_samples": _per_sampled(_optional_int),
    "temperature": lambda v: _number(v, 0.0, open_low=True), "top_k": _optional_int,
    "top_p": lambda v: _number(v, 0.0, 1.0, open_low=True), "generator_k": _per_sampled(lambda k: _int(k, 0)),
    "max_new_tokens": _per_sampled(_optional_int), "sampling_seed": _seed,
    "test_problems": _per_sampled(_optional_int), "train_problems": _per_sampled(lambda n: _int(n, 1)),
    "evaluators": lambda v: _mapping(v, _evaluator, lambda names: _list(names, _dataset)),
    "evaluator_n": lambda v: _mapping(v, _evaluator, lambda n: _mapping(n, _dataset, lambda m: _int(m, 1))
                                      if isinstance(n, Mapping) else _int(n, 1)),
    "evaluator_seeds": lambda v: _mapping(v, _evaluator, _seed_list),
    "evaluator_options": _method_options(),
    "train_levels": lambda v: _list(v, _one_of(("easy", "hard", "all"), "evaluator training level")),
}


# --- settings one cell needs from another -------------------------------------------------------------


def _needed(values: Mapping[str, Any]) -> list[Problem]:
    """Settings a later cell would look up and not find (a late ``KeyError`` otherwise)."""
    problems = []
    runs: list[tuple[str, str]] = []  # (method, dataset)
    if isinstance(values.get("methods"), list) and isinstance(values.get("measures"), Mapping):
        runs += [(m, d) for m in values["methods"] if isinstance(m, str) for d in values["measures"]]
    for key in ("runs", "curves", "grid", "sweeps_to_run"):
        if isinstance(values.get(key), Mapping):
            try:
                runs += [(m, d) for m, d, _ in settings.parse_targets(values[key])]
            except ValueError:
                pass  # reported by its own rule
    seeds, k_shot, n_train = values.get("seeds"), values.get("k_shot"), values.get("n_train")
    for method, dataset in runs:
        if isinstance(seeds, Mapping) and method not in seeds:
            problems.append(f"seeds: no seeds for method {method!r} (add `{method}: [0, 1, 2]`)")
        if method in methods.kinds(in_context=True) and isinstance(k_shot, Mapping) and dataset not in k_shot:
            problems.append(f"k_shot: no k for dataset {dataset!r}, which {method} runs on")
        if method in methods.kinds(in_context=False, chain_of_thought=False) and isinstance(n_train, Mapping) \
                and method not in n_train:
            problems.append(f"n_train: no n for method {method!r}")
        if "sizes" in values and isinstance(values["sizes"], Mapping) and method not in values["sizes"]:
            problems.append(f"sizes: no sizes for method {method!r}")
    if isinstance(values.get("cot_methods"), list) and isinstance(values.get("cot_measures"), Mapping):
        for method in (m for m in values["cot_methods"] if isinstance(m, str)):
            if isinstance(values.get("cot_seeds"), Mapping) and method not in values["cot_seeds"]:
                problems.append(f"cot_seeds: no seeds for method {method!r}")
            for dataset in values["cot_measures"]:
                if method in methods.kinds(in_context=True) and isinstance(values.get("cot_k_shot"), Mapping) \
                        and dataset not in values["cot_k_shot"]:
                    problems.append(f"cot_k_shot: no k for dataset {dataset!r}")
                if method in methods.kinds(in_context=False) and isinstance(values.get("cot_n_train"), Mapping) \
                        and method not in values["cot_n_train"]:
                    problems.append(f"cot_n_train: no n for method {method!r}")
    rates, multiplier = values.get("rates"), values.get("hard_multiplier")
    if isinstance(rates, list) and isinstance(multiplier, (int, float)) and not isinstance(multiplier, bool):
        for rate in (r for r in rates if isinstance(r, (int, float)) and not isinstance(r, bool)):
            try:
                noise.noise_rates(float(rate), float(multiplier))
            except ValueError as error:
                problems.append(f"rates: {error}")
                break
    fraction = values.get("test_fraction")
    if values.get("cross_fit") is True and isinstance(fraction, (int, float)) and 0 < fraction < 1 \
            and abs(1 / fraction - round(1 / fraction)) > 1e-9:
        problems.append(f"test_fraction: cross_fit cuts each level into 1 / test_fraction folds, so test_fraction "
                        f"must be 1/K (0.5, 0.25, 0.2, ...), not {fraction} (or set cross_fit: false)")
    elif values.get("cross_fit") is True and isinstance(fraction, (int, float)) and 0 < fraction < 1 / MAX_FOLDS:
        problems.append(f"test_fraction: cross_fit trains once per fold, 1 / test_fraction = {1 / fraction:.3g} times "
                        f"per seed; at most {MAX_FOLDS} (test_fraction >= {1 / MAX_FOLDS:g}), or set cross_fit: false")
    if "measure" in values and "dataset" in values and values["dataset"] in datasets.DATASETS:
        try:
            hardness.get_measure(values["dataset"], values["measure"])
        except KeyError as error:
            problems.append(f"measure: {error.args[0]}")
    if isinstance(values.get("evaluator_datasets"), Mapping) and isinstance(values.get("evaluators"), Mapping):
        try:  # what one dataset or evaluator lacks (n_samples, seeds, ...), as the notebook would find it
            settings.parse("easy_to_hard_evaluators", values)
        except (settings.SettingsError, KeyError, ValueError, TypeError) as error:
            if "missing parameter" not in str(error):  # a YAML gives only what differs from the notebook
                problems.append(str(error).removeprefix("easy_to_hard_evaluators: "))
    measures = cast(Mapping, values.get("measures")) if isinstance(values.get("measures"), Mapping) else {}
    if any(str(m).startswith("mdl") for names in measures.values() if isinstance(names, list) for m in names):
        if not values.get("mdl_hardness_models"):
            problems.append("mdl_hardness_models: the MDL measures in `measures` need at least one hardness model")
    return sorted(set(problems))


def _shape(hint: Any, value: Any) -> str | None:
    """What is wrong with the outer shape of ``value`` for a typed-settings field annotated ``hint``
    (a mapping, a list, a bool, a number, a string, or None where the field allows it); None: nothing."""
    import collections.abc
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        found = [_shape(option, value) for option in options]
        return None if any(f is None for f in found) else found[0]
    if hint is Any:
        return None
    if hint is dict or origin in (dict, collections.abc.Mapping):
        return None if isinstance(value, Mapping) else f"expected a mapping (key: value), got {value!r}"
    if hint in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        return None if isinstance(value, list) else f"expected a list, got {value!r}"
    if hint is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if ok else f"expected an integer, got {value!r}"
    if hint is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    return None


def _typed(values: Mapping[str, Any], notebook: str) -> list[Problem]:
    """The typed settings' own check: each field's shape from its annotation, then the settings and
    the plan built from the values, so that a value every rule let through cannot fail in the notebook."""
    import dataclasses
    import typing

    cls = settings.NOTEBOOKS.get(notebook)
    if cls is None:
        return []
    hints = typing.get_type_hints(cls)
    problems = [f"{f.name}: {problem}" for f in dataclasses.fields(cls) if f.name in values
                for problem in [_shape(hints[f.name], values[f.name])] if problem]
    if problems or any(f.name not in values for f in dataclasses.fields(cls)):
        return problems  # a YAML alone gives only what differs from the notebook: nothing to build
    try:
        entries = settings.parse(notebook, values).plan()
    except Exception as error:  # noqa: BLE001 - any failure here is one the notebook would hit later
        problems.append(f"the {notebook} settings do not build from these values ({type(error).__name__}: {error}); "
                        "fix the value it names")
        return problems
    return problems + _pool_problems(plans.specs(entries))


@lru_cache(maxsize=8)
def _frame(dataset: str, mirror: str | None) -> pd.DataFrame:
    return datasets.load_dataset(dataset)


@lru_cache(maxsize=64)
def _roles(dataset: str, measure: str, test: TestSelection, mirror: str | None) -> pd.DataFrame:
    return split.split_roles(_frame(dataset, mirror), hardness.get_measure(dataset, measure), test)


_SMALLEST: dict[tuple, tuple[int, str]] = {}  # (what fixes a pool, mirror) -> (smallest pool, where)


def _smallest_pool(spec: ExperimentSpec, mirror: str | None) -> tuple[int, str]:
    """(the size of the smallest training pool of the spec's folds, where it comes from), once per
    dataset, measure, training level or source and test selection."""
    key = (spec.dataset, spec.measure, spec.train_level, spec.train_source, spec.test, mirror)
    if key not in _SMALLEST:
        source = None if spec.train_source is None else _frame(spec.train_source.dataset, mirror)
        _SMALLEST[key] = split.pool_size(_frame(spec.dataset, mirror), spec, source,
                                         _roles(spec.dataset, spec.measure, spec.test, mirror))
    return _SMALLEST[key]


def _pool_problems(specs: Iterable[ExperimentSpec]) -> list[Problem]:
    """Runs that would train on more items than their pool holds (a learning-curve size, ``n_train``,
    ``k_shot``), read from the data before any notebook starts; the runner refuses the same runs
    when their notebook reaches them. Runs on MDL levels are left to it (they need MDL's scores)."""
    mirror = os.environ.get(paths.MIRROR_ENV)
    problems = []
    for spec in specs:
        if not spec.method.trains or spec.measure.startswith("mdl") or spec.test.folds > MAX_FOLDS:
            continue
        try:
            n, where = _smallest_pool(spec, mirror)
        except (OSError, ConnectionError, KeyError, ValueError):
            continue  # data that cannot be read here is named by the mirror check or the notebook
        if spec.method.size > n:
            problems.append(f"training items: {spec.describe()} needs {spec.method.size} but the pool of {where} "
                            f"holds {n} (test_fraction = {spec.test.test_fraction}): ask for at most {n}, or lower "
                            "test_fraction; a run never trains on fewer items than it says")
    return sorted(set(problems))


def check_values(values: Mapping[str, Any], source: Path | str, notebook: str | None = None,
                 origins: Mapping[str, Path | str] | None = None) -> list[Problem]:
    """Every problem of one notebook's parameter values, each as ``"<file>: <key>: ..."``: the file is
    the key's in ``origins`` (e.g. the shared file a value came from), else ``source``. With
    ``notebook``, also its typed settings' check (``_typed``)."""
    problems = []
    for key, value in values.items():
        rule = RULES.get(str(key))
        if rule is None:
            continue
        try:
            rule(value)
        except Invalid as error:
            problems.append(f"{key}: {error}")
    problems += _needed(values)
    if notebook is not None and not problems:
        problems += _typed(values, notebook)
    origins = origins or {}
    return [f"{origins.get(problem.split(':', 1)[0], source)}: {problem}" for problem in problems]
