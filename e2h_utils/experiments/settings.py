"""A notebook's parameters as typed settings, parsed once at the boundary, and its plan.

Each notebook has a ``parameters`` cell (papermill fills it from ``parameters/<profile>/<name>.yaml``;
its defaults are the embedded profile). The first code cell turns those values into one of the
dataclasses below (``settings.parse("easy_to_hard", globals())``): YAML names (methods, measures,
sources) become typed objects here, and nothing past this point passes dicts of options around.
Each class builds its notebook's plan from the builders of ``experiments.plans``, section by
section (``e2h_plan``, ``cot_plan``, ...) and whole (``plan``); the preflight plan
(``pipeline.plan``), the cluster jobs and the dry run call the same methods, so what a notebook
runs and what the plan lists are one list.

``values`` may hold more names than a class has (a notebook's ``globals()``); a missing name is an
error naming the notebook and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

import pandas as pd

from e2h_utils.data import hardness
from e2h_utils.engine.runtime import SettingsError
from e2h_utils.experiments import mdl, plans
from e2h_utils.experiments import schema as s
from e2h_utils.experiments.schema import Invalid, Size, param
from e2h_utils.experiments.spec import POOLS, TestSelection, TrainSource
from e2h_utils.experiments.evaluation import TRAIN_LEVELS, Candidates, EvaluatorSpec
from e2h_utils.methods.base import Method, build, kinds
from e2h_utils.methods.evaluators import EVALUATOR_KINDS
from e2h_utils.methods.sampling import MIN_TEMPERATURE, Sampling

if TYPE_CHECKING:
    from e2h_utils.methods.base import Probe, QLoRA

Frames = Mapping[str, pd.DataFrame]


def _levels_present(frames: Frames | None, dataset: str, measure: str) -> set[str]:
    if frames is None or dataset not in frames:
        return set(hardness.LEVELS)
    return set(hardness.assign_levels(frames[dataset], hardness.get_measure(dataset, measure)).dropna())


def parse_targets(targets: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str]]:
    """``{method: ["dataset/measure", ...]}`` (the notebooks' YAML form) -> (method, dataset, measure).

    Unknown methods, datasets and measures are reported here, before any model runs."""
    from e2h_utils.data.datasets import DATASETS

    if not isinstance(targets, Mapping):
        raise ValueError(f"expected a mapping {{method: ['dataset/measure', ...]}}, not {targets!r}")
    out = []
    for method, pairs in targets.items():
        if method not in kinds():
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(kinds())}")
        if isinstance(pairs, str):  # a single "dataset/measure" written without brackets
            pairs = [pairs]
        if not isinstance(pairs, (list, tuple)):
            raise ValueError(f"expected a list of 'dataset/measure' under {method!r}, not {pairs!r}")
        for pair in pairs:
            dataset, sep, measure = str(pair).partition("/")
            if not sep or not dataset or not measure:
                raise ValueError(f"expected 'dataset/measure' (e.g. 'arc/grade'), not {pair!r} under {method!r}")
            if dataset not in DATASETS:
                raise ValueError(f"unknown dataset {dataset!r} in {pair!r} under {method!r}; "
                                 f"valid: {', '.join(DATASETS)}")
            try:
                hardness.get_measure(dataset, measure)
            except KeyError as error:
                raise ValueError(f"{pair!r} under {method!r}: {error}") from None
            if (method, dataset, measure) in out:
                raise ValueError(f"{pair!r} is given twice under {method!r}: give each once (it would run and be "
                                 "counted twice)")
            out.append((method, dataset, measure))
    return out


def parse_sources(sources: Mapping[str, str | Mapping[str, Any]]) -> dict[str, str | TrainSource]:
    """YAML prompt sources -> a training level of the test split (a string) or a ``TrainSource``
    (a mapping: dataset, column, min_value and/or max_value)."""
    from e2h_utils.experiments.spec import POOLS, SpecError

    out: dict[str, str | TrainSource] = {}
    for name, value in sources.items():
        if isinstance(value, str):
            if value not in ("none", *POOLS):
                raise ValueError(f"source {name!r}: unknown training level {value!r}; valid: none, {', '.join(POOLS)} "
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


# --- each parameter's check (``schema``), where more than one field or notebook uses it ------------------


def _targets(value: Any) -> None:
    """``{method: ["dataset/measure", ...]}``."""
    try:
        parse_targets(value)
    except ValueError as error:
        raise Invalid(str(error)) from None


def _sources(value: Any) -> None:
    """name -> a training level, or a mapping (dataset, column, min_value / max_value)."""
    if not isinstance(value, Mapping) or not value:
        raise Invalid(f"expected a non-empty mapping name -> source, got {value!r}")
    try:
        parse_sources(value)
    except ValueError as error:
        raise Invalid(str(error)) from None


_POSITIVE = s.at_least(1)
_COUNT = s.at_least(0)
_POSITIVE_LIST = s.list_of(_POSITIVE)
_PER_METHOD_N = s.per_method(_POSITIVE)
_PER_METHOD_SEEDS = s.per_method(s.seed_list)
_PER_DATASET_K = s.per_dataset(_POSITIVE)
_HARDNESS_MODELS = s.list_of(s.model, non_empty=False)
_OPTIONAL_MODELS = s.list_of(s.model, non_empty=False)
_MDL_ITEMS = s.mapping(s.one_of(mdl.MC_DATASETS, "MDL dataset"), lambda n: s.optional_int(n, 2))
_ANSWER_SCORING = s.list_of(s.answer_scoring)
_METHOD_MEASURES = s.mapping(s.answer_scoring, s.measures)  # a method on fewer measures than `measures`
_COT_METHODS = s.list_of(s.chain_of_thought, non_empty=False)
_DEMONSTRATIONS = s.list_of(s.method, non_empty=False)
_TEST_LEVELS = s.list_of(s.one_of(hardness.LEVELS, "test level"))
_FORMATS = s.list_of(s.prompt_format, non_empty=False)
_FORMAT = s.optional(s.prompt_format)
_DATASETS = s.list_of(s.dataset)
_OPTIONAL_DATASETS = s.list_of(s.dataset, non_empty=False)
_RATES = s.list_of(lambda p: s.number(p, 0.0, 1.0))
_MULTIPLIER = lambda v: s.number(v, 1.0)  # noqa: E731  (hard labels at least as noisy as easy ones; the paper: 2)
_SIZES = s.per_method(s.list_of(_COUNT))
_LABEL_COSTS = s.mapping(s.training_level, lambda c: s.number(c, 0.0, open_low=True))
_GRID_LEVELS = s.list_of(s.one_of(("none", *POOLS), "training level"))
_FIXED_TEST = s.per_sampled(s.column)
_PER_SAMPLED_N = s.per_sampled(_POSITIVE)


def _samples(what: str, optional: bool = False) -> s.Check:
    """Candidates per problem of each sampled dataset: 1 to ``MAX_SAMPLES`` (``optional``: or None)."""
    ceiling = (s.MAX_SAMPLES, f"samples per {what} (Sun et al.: up to 1,024)")
    return s.per_sampled(lambda n: None if optional and n is None else s.integer(n, 1, ceiling))


_SAMPLES = _samples("problem")
_TRAIN_SAMPLES = _samples("training problem", optional=True)
_PER_SAMPLED_K = s.per_sampled(_COUNT)
_PER_SAMPLED_CAP = s.per_sampled(s.optional_int)


def _temperature(value: Any) -> float:
    temperature = s.number(value, 0.0, open_low=True)
    if temperature < MIN_TEMPERATURE:
        raise Invalid(f"{value!r} is below {MIN_TEMPERATURE}: sampling that cold is greedy decoding (chain of thought: "
                      "the icl_cot method), and a cold enough temperature turns 32-bit logits into inf and NaN")
    return temperature


_TEMPERATURE = _temperature
_TOP_P = lambda v: s.number(v, 0.0, 1.0, open_low=True)  # noqa: E731
_EVALUATORS = s.mapping(s.evaluator, s.list_of(s.dataset))
_EVALUATOR_N = s.mapping(s.evaluator, s.either(_POSITIVE, s.mapping(s.dataset, _POSITIVE)))
_EVALUATOR_SEEDS = s.mapping(s.evaluator, s.seed_list)
_TRAIN_LEVELS = s.list_of(s.one_of(("easy", "hard", "all"), "evaluator training level"))


@dataclass(frozen=True)
class _Checked:
    """Settings that check their own fields when built: each field's ``schema.param`` check."""

    def __post_init__(self) -> None:
        for f in fields(self):
            try:
                f.metadata[s.CHECK](getattr(self, f.name))
            except Invalid as error:
                notebook = next((name for name, cls in NOTEBOOKS.items() if cls is type(self)), type(self).__name__)
                raise SettingsError(f"{notebook}: {f.name}: {error}") from None


# --- pieces several notebooks share ---------------------------------------------------------------

@dataclass(frozen=True)
class _Model(_Checked):
    """The model a notebook runs, and its precision."""

    model: str = param(s.model)
    model_dtype: str = param(s.dtype)
    model_quantization: str = param(s.quantization)


@dataclass(frozen=True)
class _Bootstrap(_Checked):
    n_boot: int = param(s.boot, Size.BOOT)
    bootstrap_seed: int = param(s.seed)


@dataclass(frozen=True)
class _Split(_Checked):
    """The project's paired split of each level (``experiments.split``)."""

    test_fraction: float = param(s.fraction)
    split_seed: int = param(s.seed)


@dataclass(frozen=True)
class _CrossFit(_Checked):
    """``cross_fit``: score every item of a test level, each by a run trained without its fold
    (``experiments.split``); the notebooks that train and test on levels of one split have it."""

    cross_fit: bool = param(s.boolean)


@dataclass(frozen=True)
class _MDL(_Checked):
    """The ``mdl_*`` parameters (``experiments.mdl``)."""

    mdl_hardness_models: Sequence[str] = param(_HARDNESS_MODELS)
    mdl_learners: Mapping[str, Sequence[str]] = param(s.mdl_learners)
    mdl_max_items: Mapping[str, int | None] = param(_MDL_ITEMS, Size.MDL_ITEMS)
    mdl_subset_sizes: Sequence[int] = param(_POSITIVE_LIST, Size.MDL_SIZES)
    mdl_seeds: Sequence[int] = param(s.seed_list, Size.SEEDS)
    mdl_max_holdout: int | None = param(s.test_cap, Size.MDL_HOLDOUT)
    mdl_model_quantization: str = param(s.quantization)
    mdl_learner_options: Mapping[str, Mapping[str, Any]] = param(s.mdl_learner_options, Size.OPTIONS)

    @property
    def mdl(self) -> mdl.MDLSettings:
        return mdl_settings(self)


class _MethodTable:
    """How a notebook's ``k_shot``, ``n_train`` and ``method_options`` make typed methods, and which
    answer-scored prompt format each dataset is read with (``prompt_formats``; absent: the dataset's
    default, the authors' prompt)."""

    k_shot: Mapping[str, int]
    n_train: Mapping[str, int]
    method_options: Mapping[str, Mapping[str, Any]]
    prompt_formats: Mapping[str, str]

    def fmt(self, dataset: str) -> str | None:
        """The answer-scored prompt format of ``dataset`` (None: its default, the authors' prompt)."""
        return self.prompt_formats.get(dataset)

    def method(self, kind: str, dataset: str) -> Method:
        size = self.k_shot[dataset] if kind in kinds(in_context=True) else self.n_train[kind]
        return build(kind, size, self.method_options.get(kind))

    def targets(self, targets: Mapping[str, Sequence[str]]) -> list[tuple[str, str, Method]]:
        """``{method: [dataset/measure]}`` -> (dataset, measure, typed method)."""
        return [(dataset, measure, self.method(kind, dataset)) for kind, dataset, measure in parse_targets(targets)]


@dataclass(frozen=True)
class _Methods(_Checked, _MethodTable):
    k_shot: Mapping[str, int] = param(s.k_shot, Size.SHOTS)
    n_train: Mapping[str, int] = param(_PER_METHOD_N, Size.TRAIN)
    seeds: Mapping[str, Sequence[int]] = param(s.seeds, Size.SEEDS)
    method_options: Mapping[str, Mapping[str, Any]] = param(s.method_options, Size.OPTIONS)
    prompt_formats: Mapping[str, str] = param(s.prompt_formats)


def _test(values: _Split, cap: int | None, levels: Sequence[str] = ("hard",)) -> TestSelection:
    return TestSelection(test_fraction=values.test_fraction, max_per_level=cap, split_seed=values.split_seed,
                         levels=tuple(levels), cross_fit=isinstance(values, _CrossFit) and values.cross_fit)


def mdl_settings(values: Any) -> mdl.MDLSettings:
    """The ``mdl_*`` parameters of a notebook as ``experiments.mdl.MDLSettings``. ``mdl_model_quantization:
    auto`` is the authors' precision of each hardness model, its dtype included (``models.PINNED``:
    Falcon-7b and MPT-7b unquantized in float32, Llama-7b and Mistral-7B 8-bit over float16); any other
    quantization loads in the device's default dtype (``auto``)."""
    quantization = values.mdl_model_quantization
    return mdl.MDLSettings(
        hardness_models=tuple(values.mdl_hardness_models),
        learners=tuple((d, tuple(names)) for d, names in dict(values.mdl_learners).items()),
        max_items=tuple(dict(values.mdl_max_items).items()), subset_sizes=tuple(values.mdl_subset_sizes),
        seeds=tuple(values.mdl_seeds), max_holdout=values.mdl_max_holdout, quantization=quantization,
        dtype="authors" if quantization == "auto" else "auto",
        options=tuple((name, tuple(dict(opts).items())) for name, opts in dict(values.mdl_learner_options).items()))


# --- one class per notebook -------------------------------------------------------------------------

@dataclass(frozen=True)
class EasyToHard(_Model, _Methods, _Split, _CrossFit, _Bootstrap, _MDL):
    measures: Mapping[str, Sequence[str]] = param(s.measures)
    methods: Sequence[str] = param(_ANSWER_SCORING)
    # a method on fewer measures than `measures`
    method_measures: Mapping[str, Mapping[str, Sequence[str]]] = param(_METHOD_MEASURES)
    max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)
    test_levels: Sequence[str] = param(_TEST_LEVELS)
    all_to_all: bool = param(s.boolean)
    all_to_all_max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)
    sanity_check_items: int = param(_COUNT, Size.SANITY_ITEMS)
    sanity_check_formats: Sequence[str] = param(_FORMATS)
    cot_measures: Mapping[str, Sequence[str]] = param(s.cot_measures)
    cot_methods: Sequence[str] = param(_COT_METHODS)
    cot_k_shot: Mapping[str, int] = param(_PER_DATASET_K, Size.SHOTS)
    cot_n_train: Mapping[str, int] = param(_PER_METHOD_N, Size.COT_TRAIN)
    cot_seeds: Mapping[str, Sequence[int]] = param(_PER_METHOD_SEEDS, Size.SEEDS)
    cot_method_options: Mapping[str, Mapping[str, Any]] = param(s.method_options, Size.OPTIONS)
    cot_max_test_per_level: int | None = param(s.test_cap, Size.COT_TEST_ITEMS)
    # method kinds run at demonstration size: shown, never given a verdict
    demonstrations: Sequence[str] = param(_DEMONSTRATIONS)

    @property
    def uses_mdl(self) -> bool:
        return any(str(m).startswith("mdl") for names in self.measures.values() for m in names)

    @property
    def test(self) -> TestSelection:
        return _test(self, self.max_test_per_level, self.test_levels)

    @property
    def datasets(self) -> list[str]:
        """Every dataset the notebook reads: its measures', its chain of thought's, ARC for the sanity check."""
        return list(dict.fromkeys([*self.measures, *self.cot_measures, *(["arc"] if self.sanity_check_items else [])]))

    def cot_method(self, kind: str, dataset: str) -> Method:
        size = self.cot_k_shot[dataset] if kind in kinds(in_context=True) else self.cot_n_train[kind]
        return build(kind, size, self.cot_method_options.get(kind))

    def sanity_plan(self) -> list[plans.Reading]:
        if not self.sanity_check_items:
            return []
        test = TestSelection(max_per_level=self.sanity_check_items, levels=("easy", "hard"))
        return plans.zero_shot_checks("arc", "arc_split", list(self.sanity_check_formats), model=self.model, test=test,
                                      method=self.method("icl", "arc"))

    def measures_of(self, kind: str) -> Mapping[str, Sequence[str]]:
        """The measures method ``kind`` runs on: ``method_measures[kind]`` when given, else ``measures``."""
        return self.method_measures.get(kind, self.measures)

    def e2h_plan(self) -> list[plans.Comparison]:
        targets = [(d, m, self.method(kind, d)) for d, names in self.measures.items() for m in names
                   for kind in self.methods if m in self.measures_of(kind).get(d, ())]
        return plans.comparisons(targets, seeds=self.seeds, model=self.model, test=self.test,
                                 formats=self.prompt_formats)

    def cot_plan(self) -> list[plans.Comparison]:
        test = _test(self, self.cot_max_test_per_level, self.test_levels)
        targets = [(d, m, self.cot_method(kind, d)) for d, names in self.cot_measures.items() for m in names
                   for kind in self.cot_methods]
        return plans.comparisons(targets, seeds=self.cot_seeds, model=self.model, test=test)

    def all_to_all_plan(self) -> list[plans.Reading]:
        if not self.all_to_all:
            return []
        test = _test(self, self.all_to_all_max_test_per_level, hardness.LEVELS)
        return [entry for dataset, names in self.measures.items() for kind in self.methods
                for entry in plans.all_to_all(dataset, names[0], self.method(kind, dataset), seeds=self.seeds[kind],
                                              model=self.model, test=test, prompt_format=self.fmt(dataset))]

    def plan(self, frames: Frames | None = None) -> list[plans.Entry]:
        return [*self.sanity_plan(), *self.e2h_plan(), *self.cot_plan(), *self.all_to_all_plan()]


@dataclass(frozen=True)
class HardnessMeasures(_Model, _Bootstrap, _MDL):
    datasets: Sequence[str] = param(_DATASETS)

    def plan(self, frames: Frames | None = None) -> list[plans.Entry]:
        return []  # MDL and zero-shot item scores, not experiments: experiments.mdl


@dataclass(frozen=True)
class LabelNoise(_Model, _Methods, _Split, _CrossFit, _Bootstrap):
    sweeps_to_run: Mapping[str, Sequence[str]] = param(_targets)
    rates: Sequence[float] = param(_RATES)
    hard_multiplier: float = param(_MULTIPLIER)
    max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)

    def plan(self, frames: Frames | None = None) -> list[plans.Comparison]:
        test = _test(self, self.max_test_per_level)
        return [entry for dataset, measure, method in self.targets(self.sweeps_to_run)
                for entry in plans.label_noise(dataset, measure, method, self.rates, seeds=self.seeds[method.kind],
                                               model=self.model, test=test, hard_multiplier=self.hard_multiplier,
                                               prompt_format=self.fmt(dataset))]


@dataclass(frozen=True)
class SampleCount(_Model, _Split, _CrossFit, _Bootstrap, _MethodTable):
    curves: Mapping[str, Sequence[str]] = param(_targets)
    sizes: Mapping[str, Sequence[int]] = param(_SIZES, Size.CURVE)
    seeds: Mapping[str, Sequence[int]] = param(s.seeds, Size.SEEDS)
    method_options: Mapping[str, Mapping[str, Any]] = param(s.method_options, Size.OPTIONS)
    prompt_formats: Mapping[str, str] = param(s.prompt_formats)
    label_costs: Mapping[str, float] = param(_LABEL_COSTS)
    few_easy: int = param(_POSITIVE, Size.TRAIN)
    max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)

    def method(self, kind: str, dataset: str) -> Method:  # sizes vary along the curve: start from the first
        first = max(1, int(max(self.sizes[kind])))
        return build(kind, first, self.method_options.get(kind))

    def plan(self, frames: Frames | None = None) -> list[plans.Reading]:
        test = _test(self, self.max_test_per_level)
        return [entry for dataset, measure, method in self.targets(self.curves)
                for entry in plans.learning_curve(dataset, measure, method, self.sizes[method.kind],
                                                  seeds=self.seeds[method.kind], model=self.model, test=test,
                                                  prompt_format=self.fmt(dataset))]

    def few_plan(self) -> list[plans.Comparison]:
        """Per curve: zero-shot, the first easy size >= ``few_easy`` and the largest hard size, as a
        comparison (its SGR: how much of the best hard data's gap a few easy examples recover)."""
        return plans.few_vs_most(self.plan(), self.few_easy)

    def cost_plan(self) -> list[plans.Comparison]:
        """Per curve: easy and hard data at the largest labelling cost both reach (``label_costs``),
        with zero-shot, as one comparison on the same test items: its ``hard_minus_easy`` is paired."""
        return plans.at_equal_cost(self.plan(), self.label_costs)

    def derived_plan(self, frames: Frames | None = None) -> list[plans.Comparison]:
        """The comparisons the notebook reads from its own runs (no runs of their own): what its claims read."""
        return [*self.few_plan(), *self.cost_plan()]


@dataclass(frozen=True)
class ModelScale(_Methods, _Split, _CrossFit, _Bootstrap):
    models_to_compare: Sequence[str] = param(s.models_list)
    model_dtype: str = param(s.dtype)
    model_quantization: str = param(s.quantization)
    runs: Mapping[str, Sequence[str]] = param(_targets)
    max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)
    robustness_models: Sequence[str] = param(_OPTIONAL_MODELS)
    robustness_runs: Mapping[str, Sequence[str]] = param(_targets)
    # in-context examples of the robustness runs (the paper: 4, analysis.Rmd:964)
    robustness_k_shot: Mapping[str, int] = param(_PER_DATASET_K, Size.SHOTS)
    robustness_seeds: Sequence[int] = param(s.seed_list, Size.SEEDS)
    robustness_max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)

    def scale_plan(self, model: str) -> list[plans.Comparison]:
        return plans.comparisons(self.targets(self.runs), seeds=self.seeds, model=model,
                                 test=_test(self, self.max_test_per_level), formats=self.prompt_formats)

    def robustness_k(self, dataset: str) -> int:
        """k of the robustness runs on ``dataset``: ``robustness_k_shot``, else ``k_shot``."""
        return int(self.robustness_k_shot.get(dataset, self.k_shot[dataset]))

    def robustness_plan(self, model: str) -> list[plans.Comparison]:
        targets = [(d, m, build(kind, self.robustness_k(d) if kind in kinds(in_context=True) else self.n_train[kind]))
                   for kind, d, m in parse_targets(self.robustness_runs)]
        seeds = {method.kind: self.robustness_seeds for _, _, method in targets}
        return plans.comparisons(targets, seeds=seeds, model=model,
                                 test=_test(self, self.robustness_max_test_per_level))

    def plan(self, frames: Frames | None = None) -> list[plans.Comparison]:
        return [*(e for name in self.models_to_compare for e in self.scale_plan(name)),
                *(e for name in self.robustness_models for e in self.robustness_plan(name))]


@dataclass(frozen=True)
class TrainTestGap(_Model, _Methods, _Split, _CrossFit, _Bootstrap):
    grid: Mapping[str, Sequence[str]] = param(_targets)
    grid_train_levels: Sequence[str] = param(_GRID_LEVELS)
    grid_max_test_per_level: int | None = param(s.test_cap, Size.TEST_ITEMS)
    college_models: Sequence[str] = param(s.models_list)
    college_sources: Mapping[str, Any] = param(_sources)
    college_k: int = param(_POSITIVE, Size.SHOTS)
    college_seeds: Sequence[int] = param(s.seed_list, Size.SEEDS)
    college_max_test: int | None = param(s.test_cap, Size.TEST_ITEMS)

    @property
    def grid_datasets(self) -> list[str]:
        """The datasets of the level grid (its levels are read from their frames)."""
        return list(dict.fromkeys(dataset for _, dataset, _ in parse_targets(self.grid)))

    def grid_plan(self, frames: Frames | None = None) -> list[plans.Reading]:
        test = _test(self, self.grid_max_test_per_level, hardness.LEVELS)
        return [entry for dataset, measure, method in self.targets(self.grid)
                for entry in plans.level_grid(dataset, measure, method, seeds=self.seeds[method.kind],
                                              model=self.model, test=test, train_levels=self.grid_train_levels,
                                              levels_present=_levels_present(frames, dataset, measure),
                                              prompt_format=self.fmt(dataset))]

    def grid_comparisons(self, frames: Frames | None = None) -> list[plans.Comparison]:
        """The grid's hard test items read as paired comparisons: zero-shot, easy- (or medium-) trained
        and hard-trained runs on the same items (``hard_minus_easy``: the fall as the gap grows)."""
        return plans.grid_pairs(self.grid_plan(frames))

    def college_plan(self, model: str) -> list[plans.Reading]:
        test = _test(self, self.college_max_test)
        return plans.prompt_sources("mmlu_stem5", "school_level", build("icl", self.college_k),
                                    parse_sources(self.college_sources), seeds=self.college_seeds, model=model,
                                    test=test, prompt_format=self.fmt("mmlu_stem5"))

    def college_comparison(self, model: str) -> list[plans.Comparison]:
        """MMLU college prompts against prompts of the easiest ARC questions (the first ARC source with
        an upper bound), with zero-shot as the baseline: a paired comparison on the same items."""
        sources = parse_sources(self.college_sources)
        easiest = next((name for name, s in sources.items() if isinstance(s, TrainSource) and s.dataset == "arc"
                        and s.max_value is not None), None)
        zero = next((name for name, s in sources.items() if s == "none"), None)
        college = next((name for name, s in sources.items() if s == "hard"), None)
        if None in (easiest, zero, college):
            return []
        readings = {reading.labels["source"]: reading.spec for reading in self.college_plan(model)}
        return [plans.Comparison(readings[zero], readings[easiest], readings[college],
                                 plans.keys(model=model, dataset="mmlu_stem5", measure="school_level", method="icl",
                                            easy_source=easiest, hard_source=college))]

    def plan(self, frames: Frames | None = None) -> list[plans.Reading]:
        return [*self.grid_plan(frames), *(e for name in self.college_models for e in self.college_plan(name))]

    def derived_plan(self, frames: Frames | None = None) -> list[plans.Comparison]:
        """The comparisons the notebook reads from its own runs (no runs of their own): what its claims read."""
        return [*self.grid_comparisons(frames),
                *(e for name in self.college_models for e in self.college_comparison(name))]


@dataclass(frozen=True)
class Walkthrough(_Checked):
    model: str = param(s.model)
    dataset: str = param(s.dataset)
    measure: str = param(s.text)
    k_shot: int = param(s.k_shot, Size.SHOTS)
    n_test: int = param(_POSITIVE, Size.TEST_ITEMS)
    seeds: Sequence[int] = param(s.seeds, Size.SEEDS)
    n_boot: int = param(s.boot, Size.BOOT)
    prompt_format: str | None = param(_FORMAT)  # None: the dataset's default (the authors' prompt)

    def plan(self, frames: Frames | None = None) -> list[plans.Comparison]:
        test = TestSelection(max_per_level=self.n_test, levels=("hard",))
        return [plans.comparison(self.dataset, self.measure, build("icl", self.k_shot), seeds=self.seeds,
                                 model=self.model, test=test, prompt_format=self.prompt_format)]


@dataclass(frozen=True)
class EasyToHardEvaluators(_Model, _Split, _Bootstrap):
    """Sun et al.'s easy-to-hard evaluators: the generator's candidates per dataset, and the
    evaluators trained on easy / hard / all samples that re-rank them."""

    evaluator_datasets: Mapping[str, str] = param(s.evaluator_datasets)  # dataset -> hardness measure (MATH: level)
    fixed_test: Mapping[str, str] = param(_FIXED_TEST)  # dataset -> a fixed test-set column (MATH: math500)
    n_samples: Mapping[str, int] = param(_SAMPLES, Size.SAMPLES)  # N candidates per test problem
    # candidates per training problem (None / absent: N)
    n_train_samples: Mapping[str, int | None] = param(_TRAIN_SAMPLES, Size.SAMPLES)
    temperature: float = param(_TEMPERATURE)
    top_k: int | None = param(s.test_cap)
    top_p: float = param(_TOP_P)
    generator_k: Mapping[str, int] = param(_PER_SAMPLED_K, Size.SHOTS)  # worked examples in the generator's prompt
    max_new_tokens: Mapping[str, int | None] = param(_PER_SAMPLED_CAP, Size.NEW_TOKENS)
    sampling_seed: int = param(s.seed)
    # hard test problems per dataset (None: all)
    test_problems: Mapping[str, int | None] = param(_PER_SAMPLED_CAP, Size.PROBLEMS)
    # problems per training level whose samples train evaluators
    train_problems: Mapping[str, int] = param(_PER_SAMPLED_N, Size.PROBLEMS)
    evaluators: Mapping[str, Sequence[str]] = param(_EVALUATORS)  # evaluator kind -> the datasets it runs on
    # training samples per evaluator kind (or per dataset)
    evaluator_n: Mapping[str, int | Mapping[str, int]] = param(_EVALUATOR_N, Size.EVALUATOR_N)
    evaluator_seeds: Mapping[str, Sequence[int]] = param(_EVALUATOR_SEEDS, Size.SEEDS)
    evaluator_options: Mapping[str, Mapping[str, Any]] = param(s.method_options, Size.OPTIONS)
    train_levels: Sequence[str] = param(_TRAIN_LEVELS)
    # sampled at demonstration size: shown, never given a verdict
    demonstration_datasets: Sequence[str] = param(_OPTIONAL_DATASETS)

    def __post_init__(self) -> None:
        super().__post_init__()
        from e2h_utils.data.datasets import DATASETS

        for dataset, measure in self.evaluator_datasets.items():
            if dataset not in DATASETS:
                raise SettingsError(f"easy_to_hard_evaluators: unknown dataset {dataset!r}; "
                                    f"valid: {', '.join(DATASETS)}")
            try:
                hardness.get_measure(dataset, measure)
            except KeyError as error:
                raise SettingsError(f"easy_to_hard_evaluators: {dataset}/{measure}: {error}") from None
            for name in ("n_samples", "generator_k", "test_problems", "train_problems"):
                if dataset not in getattr(self, name):
                    raise SettingsError(f"easy_to_hard_evaluators: {name} has no value for dataset {dataset!r}")
        for kind, names in self.evaluators.items():
            if kind not in EVALUATOR_KINDS:
                raise SettingsError(f"easy_to_hard_evaluators: unknown evaluator {kind!r}; valid: "
                                    f"{', '.join(EVALUATOR_KINDS)}")
            unknown = sorted(set(names) - set(self.evaluator_datasets))
            if unknown:
                raise SettingsError(f"easy_to_hard_evaluators: evaluator {kind!r} names dataset(s) {unknown} that "
                                    f"evaluator_datasets does not sample ({', '.join(self.evaluator_datasets)})")
            for name in ("evaluator_n", "evaluator_seeds"):
                if kind not in getattr(self, name):
                    raise SettingsError(f"easy_to_hard_evaluators: {name} has no value for evaluator {kind!r}")
            sizes = self.evaluator_n[kind]
            if isinstance(sizes, Mapping):
                missing = sorted(set(names) - set(sizes))
                if missing:
                    raise SettingsError(f"easy_to_hard_evaluators: evaluator_n: {kind} has no n for dataset(s) "
                                        f"{missing}")
        bad = sorted(set(self.train_levels) - set(TRAIN_LEVELS))
        if bad:
            raise SettingsError(f"easy_to_hard_evaluators: unknown train level(s) {bad}; "
                                f"valid: {', '.join(TRAIN_LEVELS)}")

    def candidates(self, dataset: str) -> Candidates:
        sampling = Sampling(n=self.n_samples[dataset], temperature=self.temperature, top_k=self.top_k,
                            top_p=self.top_p, k=self.generator_k[dataset],
                            max_new_tokens=self.max_new_tokens.get(dataset), seed=self.sampling_seed)
        test = TestSelection(test_fraction=self.test_fraction, max_per_level=self.test_problems[dataset],
                             split_seed=self.split_seed, levels=("hard",), fixed=self.fixed_test.get(dataset))
        return Candidates(dataset, self.evaluator_datasets[dataset], sampling, test=test,
                          train_problems=self.train_problems[dataset], train_n=self.n_train_samples.get(dataset),
                          model=self.model)

    def candidate_sets(self) -> dict[str, Candidates]:
        """dataset -> its ``candidates``, for every sampled dataset."""
        return {dataset: self.candidates(dataset) for dataset in self.evaluator_datasets}

    def evaluator(self, kind: str, dataset: str) -> Method:
        sizes = self.evaluator_n[kind]
        n = sizes[dataset] if isinstance(sizes, Mapping) else sizes
        return build(kind, n, self.evaluator_options.get(kind))

    def evaluator_plan(self) -> list[EvaluatorSpec]:
        # EvaluatorSpec checks that the evaluator is a Probe or QLoRA
        return [EvaluatorSpec(self.candidates(dataset), cast("Probe | QLoRA", self.evaluator(kind, dataset)), level,
                              tuple(self.evaluator_seeds[kind]))
                for dataset in self.evaluator_datasets for kind, names in self.evaluators.items() if dataset in names
                for level in self.train_levels]

    def plan(self, frames: Frames | None = None) -> list[plans.Entry]:
        return []  # candidates and evaluators, not experiments: evaluator_plan (experiments.evaluation)


NOTEBOOKS: dict[str, type] = {
    "hardness_measures": HardnessMeasures, "easy_to_hard": EasyToHard, "label_noise": LabelNoise,
    "sample_count": SampleCount, "model_scale": ModelScale, "train_test_gap": TrainTestGap,
    "walkthrough": Walkthrough, "easy_to_hard_evaluators": EasyToHardEvaluators,
}


def rules() -> dict[str, s.Check]:
    """parameter name -> its check, from every notebook's settings (the profile check's rules). A name
    several notebooks share has one check: ``k_shot`` is an integer or a mapping wherever it appears."""
    out: dict[str, s.Check] = {}
    for notebook, cls in NOTEBOOKS.items():
        for f in fields(cls):
            check = f.metadata.get(s.CHECK)
            if check is None:
                raise TypeError(f"{notebook}: field {f.name!r} declares no check: declare it with schema.param(check)")
            if out.setdefault(f.name, check) is not check:
                raise TypeError(f"{notebook}: field {f.name!r} declares another check than the same name elsewhere")
    return out


def sizes() -> dict[str, Size]:
    """parameter name -> what it counts (``schema.Size``), for the parameters that count something."""
    return {f.name: f.metadata[s.SIZE] for cls in NOTEBOOKS.values() for f in fields(cls)
            if f.metadata.get(s.SIZE) is not None}


def parse(notebook: str, values: Mapping[str, Any]) -> Any:
    """The typed settings of ``notebook`` from its parameter values (a notebook's ``globals()``,
    or the YAML merged over the notebook's defaults). Lists become tuples; every field must be given."""
    try:
        cls = NOTEBOOKS[notebook]
    except KeyError:
        raise SettingsError(f"no settings for notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}") from None
    names = [f.name for f in fields(cls)]
    missing = [name for name in names if name not in values]
    if missing:
        raise SettingsError(f"{notebook}: missing parameter(s) {', '.join(missing)}")
    import types

    shadowed = [name for name in names if isinstance(values[name], (types.ModuleType, types.FunctionType, type))]
    if shadowed:
        raise SettingsError(f"{notebook}: parameter(s) {', '.join(shadowed)} are shadowed by an import or definition "
                            "of the same name: parse the settings before importing it, or import it under another name")
    converted = {name: _freeze(values[name]) for name in names}
    return cls(**converted)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _freeze(v) if not isinstance(v, Mapping) else dict(v) for k, v in value.items()}
    return value


__all__ = ["EasyToHard", "EasyToHardEvaluators", "HardnessMeasures", "LabelNoise", "ModelScale", "NOTEBOOKS",
           "SampleCount", "SettingsError", "TrainTestGap", "Walkthrough", "parse", "parse_sources", "parse_targets"]
