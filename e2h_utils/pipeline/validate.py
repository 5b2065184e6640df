"""Checking a profile's parameter values before any notebook starts.

``check_values(name, values, source)`` returns the problems of one notebook's YAML values: a
wrong type (``k_shot: two``, ``n_test: "3"``), an out-of-range number (``seeds: []``,
``test_fraction: 1.5``), an unknown name (dataset, measure, method, learner, prompt format,
quantization, dtype, model), method options a method does not take, and settings that a later
cell would miss (a method with no seeds, ICL on a dataset with no ``k_shot``). Each problem names
the file, the key and what is valid, so it can be fixed before minutes of computing are spent.
``reproduce.run`` calls it for every notebook of a profile and stops if any has a problem.

Rules are by parameter name (the notebooks share their vocabulary) and come from the typed settings:
each field declares its check (``experiments.schema``), and the settings run the same checks when a
notebook builds them. A key no notebook's settings declare is accepted as the notebook's own business.
"""

from __future__ import annotations

import numbers
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, cast

import pandas as pd

from e2h_utils import paths
from e2h_utils.data import datasets
from e2h_utils.data import hardness
from e2h_utils.experiments import plans, schema, settings, split
from e2h_utils.experiments.schema import Size
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, TestSelection
from e2h_utils.methods import base as methods
from e2h_utils.methods import noise

Problem = str
Invalid = schema.Invalid
MAX_FOLDS = schema.MAX_FOLDS

# parameter name -> its check: declared by each field of the notebooks' typed settings (``schema.param``)
RULES = settings.rules()


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
    return problems + _pool_problems(plans.specs(entries), values)


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


_TRAINING_SIZES = (Size.SHOTS, Size.TRAIN, Size.COT_TRAIN, Size.CURVE)


def _holds(value: Any, number: int) -> bool:
    """Whether ``number`` is one of the sizes in a parameter's value (a number, or a list or mapping of them)."""
    if isinstance(value, Mapping):
        return any(_holds(v, number) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, number) for v in value)
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) == number


def _size_key(values: Mapping[str, Any], size: int) -> str:
    """The one parameter that counts training items and asks for ``size`` (so the problem is named under
    its key and the file it came from, e.g. ``k_shot`` in ``_shared.yaml``), else "training items"."""
    counted = settings.sizes()
    keys = [key for key, value in values.items() if counted.get(key) in _TRAINING_SIZES and _holds(value, size)]
    return keys[0] if len(keys) == 1 else "training items"


def _pool_problems(specs: Iterable[ExperimentSpec], values: Mapping[str, Any] | None = None) -> list[Problem]:
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
        except SpecError as error:  # e.g. a training source's column that its dataset does not have
            problems.append(f"training items: {spec.describe()}: {error}")
            continue
        except (OSError, ConnectionError, KeyError, ValueError):
            continue  # data that cannot be read here is named by the mirror check or the notebook
        if spec.method.size > n:
            key = _size_key(values or {}, spec.method.size)
            problems.append(f"{key}: {spec.describe()} needs {spec.method.size} training items but the pool of {where} "
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


# --- models this machine can load ---------------------------------------------------------------

MODEL_KEYS = ("model", "mdl_hardness_models", "models_to_compare", "robustness_models", "college_models")


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def unavailable_models(values: Mapping[str, Any], source: Path | str,
                       origins: Mapping[str, Path | str] | None = None) -> list[Problem]:
    """The Hub ids among a notebook's models (``MODEL_KEYS``) that this machine cannot load: the Hub is
    off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) and the id is not in the Hugging Face cache. Without
    this a real run would reach the model only when its notebook loads it, after the notebooks before it ran."""
    if not _offline():
        return []
    from huggingface_hub import constants, try_to_load_from_cache

    from e2h_utils.engine import models

    problems = []
    for key in MODEL_KEYS:
        value = values.get(key)
        for name in ([value] if isinstance(value, str) else value or []):
            try:
                kind, _ = models.resolve_source(models.ModelSpec(name=name))
            except models.ModelSpecError:
                continue  # the value check names it
            if kind == "hub" and not isinstance(try_to_load_from_cache(name, "config.json"), str):
                problems.append(f"{(origins or {}).get(key, source)}: {key}: {name!r} is a Hub id, but the Hub is off "
                                f"(HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) and it is not in the Hugging Face cache "
                                f"({constants.HF_HUB_CACHE}): download it where there is a network (`hf download "
                                f"{name}`), give a local folder of the checkpoint, or turn the Hub on")
    return problems

