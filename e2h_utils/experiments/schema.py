"""What a notebook parameter may be: its check (type and range) and what it counts, declared once.

Each field of a notebook's typed settings (``experiments.settings``) is declared with ``param(check,
size)``: ``check`` takes the value and raises ``Invalid`` naming what is wrong and what is valid
(finite, bounded, non-empty, known names); ``size`` says what the value counts (test items, seeds,
in-context examples, ...), so that a dry run knows how to shrink it (``pipeline.dry_run``). The
settings check their own fields when built, and the profile check (``pipeline.validate``) reads its
rules from the same declarations (``settings.rules()``): a new option cannot skip either.

The checks here take a parameter's YAML form (lists, mappings, scalars); a built settings object holds
lists as tuples, which they accept too.
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import field
from typing import Any, Callable, Iterable, Mapping

from e2h_utils.data import datasets as data_sets
from e2h_utils.data import hardness, prompts
from e2h_utils.engine import models
from e2h_utils.experiments import mdl
from e2h_utils.experiments.spec import SpecError
from e2h_utils.methods import base as methods
from e2h_utils.methods.evaluators import EVALUATOR_KINDS

Check = Callable[[Any], Any]


class Invalid(ValueError):
    """A parameter value that a notebook cannot use."""


class Size(enum.Enum):
    """What a parameter counts, for a dry run that shrinks every size and keeps every name."""

    SEEDS = "seed lists (or method -> seeds)"
    TEST_ITEMS = "test items per level"
    COT_TEST_ITEMS = "chain-of-thought test items per level"
    SANITY_ITEMS = "sanity-check items per level (0: none)"
    SHOTS = "in-context examples (or dataset -> k)"
    TRAIN = "training items (or method -> n)"
    COT_TRAIN = "chain-of-thought training items (method -> n)"
    CURVE = "learning-curve sizes (method -> [n, ...])"
    OPTIONS = "method options (method -> {option: value})"
    MDL_ITEMS = "MDL items (dataset -> n)"
    MDL_HOLDOUT = "MDL hold-out items"
    MDL_SIZES = "MDL training-subset sizes"
    BOOT = "bootstrap draws"
    SAMPLES = "candidates per problem (dataset -> N)"
    PROBLEMS = "problems (dataset -> n)"
    NEW_TOKENS = "generated tokens (dataset -> n)"
    EVALUATOR_N = "evaluator training samples (kind -> n or dataset -> n)"


CHECK, SIZE = "check", "size"  # the keys of a field's metadata


def param(check: Check, size: Size | None = None) -> Any:
    """A settings field with its check and, for a count, what it counts (``Size``)."""
    return field(metadata={CHECK: check, SIZE: size})


# --- small type rules ----------------------------------------------------------------------------

MAX_FOLDS = 100  # cross-fitting: trainings per seed (1 / test_fraction)
MAX_BOOT = 1_000_000  # bootstrap draws: the paper's 10,000 and far beyond, short of an array no machine holds
MAX_SAMPLES = 65_536  # candidates per problem: Sun et al. sample at most 1,024 (generation would run for weeks)
SEED_MAX = 2**32 - 1  # numpy's and torch's seeding take it, and a stored result's int64 column holds it


def integer(value: Any, minimum: int | None = None, maximum: tuple[int, str] | None = None) -> int:
    """An integer >= ``minimum``; ``maximum``: (the most any run needs, what is counted, with the paper's value)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise Invalid(f"expected an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise Invalid(f"expected an integer >= {minimum}, got {value}")
    if maximum is not None and int(value) > maximum[0]:
        raise Invalid(f"{value!r} {maximum[1]} is more than any run needs (at most {maximum[0]:,})")
    return int(value)


def at_least(minimum: int) -> Check:
    return lambda value: integer(value, minimum)


def number(value: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False,
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


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {value!r}")
    return value


def optional_int(value: Any, minimum: int = 1) -> None:
    """None (no cap) or an integer >= ``minimum``."""
    if value is not None:
        integer(value, minimum)


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"expected a non-empty name, got {value!r}")
    return value


def list_of(item: Check, *, non_empty: bool = True) -> Check:
    """A list whose every element passes ``item``, each given once."""
    def check(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise Invalid(f"expected a list, got {value!r} ({type(value).__name__})")
        if non_empty and not value:
            raise Invalid("expected a non-empty list")
        for element in value:
            item(element)
        repeated = sorted({repr(x) for k, x in enumerate(value) if x in value[:k]})
        if repeated:  # a repeated seed, rate or method would be read once or run and counted twice
            raise Invalid(f"{', '.join(repeated)} given more than once in {list(value)!r}: give each once")
        return value
    return check


def mapping(key: Check, item: Check, *, non_empty: bool = False) -> Check:
    """A mapping whose keys pass ``key`` and values ``item`` (a problem names its key)."""
    def check(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a mapping (key: value), got {value!r} ({type(value).__name__})")
        if non_empty and not value:
            raise Invalid("expected a non-empty mapping")
        for k, v in value.items():
            key(k)
            try:
                item(v)
            except Invalid as error:
                raise Invalid(f"{k}: {error}") from None
        return value
    return check


def one_of(valid: Iterable[str] | Callable[[], Iterable[str]], what: str) -> Check:
    """A check that a value is one of ``valid`` (a callable: read at each check, e.g. the methods
    registered so far)."""
    def check(value: Any) -> str:
        names = tuple(valid() if callable(valid) else valid)
        if value not in names:
            raise Invalid(f"unknown {what} {value!r}; valid: {', '.join(names)}")
        return value
    return check


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def either(scalar: Check, table: Check) -> Check:
    """A plain value (``scalar``) or a mapping (``table``): ``k_shot: 3`` or ``k_shot: {arc: 10}``."""
    return lambda value: table(value) if isinstance(value, Mapping) else scalar(value)


# --- the project's vocabulary ----------------------------------------------------------------------------

dataset = one_of(data_sets.DATASETS, "dataset")
method = one_of(methods.kinds, "method")
answer_scoring = one_of(lambda: methods.kinds(chain_of_thought=False), "answer-scoring method")
chain_of_thought = one_of(lambda: methods.kinds(chain_of_thought=True), "chain-of-thought method")
sampled = one_of(tuple(prompts.DEFAULT_COT_FORMAT), "dataset with a chain-of-thought format")
prompt_format = one_of(prompts.FORMATS, "prompt format")
evaluator = one_of(EVALUATOR_KINDS, "evaluator")
training_level = one_of(("easy", "medium", "hard", "all"), "training level")


def seed(value: Any) -> int:
    number_ = integer(value, 0)
    if number_ > SEED_MAX:
        raise Invalid(f"expected a seed between 0 and {SEED_MAX} (2**32 - 1), got {number_}")
    return number_


seed_list = list_of(seed)
seeds = either(seed_list, mapping(method, seed_list))  # a list, or method -> seeds
k_shot = either(at_least(1), mapping(dataset, at_least(1)))  # k, or dataset -> k
per_dataset = lambda item: mapping(dataset, item)  # noqa: E731
per_method = lambda item: mapping(method, item)  # noqa: E731
per_sampled = lambda item: mapping(sampled, item)  # noqa: E731  (the evaluators: datasets that are sampled)


def model(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise Invalid(f"expected a model name (embedded, a local folder or a Hub id), got {value!r}")
    try:
        models.resolve_source(models.ModelSpec(name=value))
    except models.ModelSpecError as error:
        raise Invalid(str(error)) from None


def measures(value: Any, known: Iterable[str] = data_sets.DATASETS) -> None:
    """dataset -> [hardness measures]."""
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping dataset -> [measures], got {value!r}")
    for name, names in value.items():
        one_of(known, "dataset")(name)
        try:
            list_of(lambda m: None)(names)
            for measure in names:
                try:
                    hardness.get_measure(name, measure)
                except KeyError as error:
                    raise Invalid(str(error.args[0])) from None
        except Invalid as error:
            raise Invalid(f"{name}: {error}") from None


def cot_measures(value: Any) -> None:
    measures(value, tuple(prompts.DEFAULT_COT_FORMAT))


def method_options(value: Any) -> None:
    """method -> {option: value}: every option one its method takes, in its range (the method's own check)."""
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping method -> {{option: value}}, got {value!r}")
    for kind, options in value.items():
        method(kind)
        if not isinstance(options, Mapping):
            raise Invalid(f"{kind}: expected a mapping of options, got {options!r}")
        try:
            methods.build(kind, 1, dict(options))
        except (methods.MethodError, SpecError, ValueError, TypeError) as error:
            raise Invalid(f"{kind}: {error}") from None


def mdl_learner_options(value: Any) -> None:
    """learner -> {option: value} for the MDL learners that train (``probe``, ``qlora``); QLoRA's
    precision is not among them: the learner trains each hardness model at the precision it is
    loaded with (``mdl_model_quantization``)."""
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping learner -> {{option: value}}, got {value!r}")
    for name, options in value.items():
        one_of(mdl.TRAINED, "MDL learner that trains")(name)
        if isinstance(options, Mapping) and "quantization" in options:
            raise Invalid(f"{name}: quantization is set by mdl_model_quantization (the learner trains each "
                          "hardness model at the precision it is loaded with); remove it here")
    method_options(value)


def mdl_learners(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping dataset -> [learners], got {value!r}")
    for name, learners in value.items():
        list_of(one_of(mdl.LEARNERS, "MDL learner"))(learners)
        for learner in learners:
            try:
                mdl.MDLSpec(dataset=name, learner=mdl.learner(learner))
            except SpecError as error:
                raise Invalid(f"{name}: {error}") from None


def evaluator_datasets(value: Any) -> None:
    """dataset -> one hardness measure, for datasets with a chain-of-thought format (they are sampled)."""
    if not isinstance(value, Mapping) or not value:
        raise Invalid(f"expected a non-empty mapping dataset -> measure, got {value!r}")
    for name, measure in value.items():
        sampled(name)
        try:
            hardness.get_measure(name, measure)
        except KeyError as error:
            raise Invalid(f"{name}: {error.args[0]}") from None


def column(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise Invalid(f"expected the name of a boolean column marking the test set (MATH: math500), got {value!r}")


def fraction(value: Any) -> float:
    """A number strictly between 0 and 1."""
    return number(value, 0.0, 1.0, open_low=True, open_high=True)


# --- checks several notebooks' fields share (one object per name: ``settings.rules`` checks it) -------------

dtype = one_of(models.DTYPES, "dtype")
quantization = one_of(models.QUANTIZATIONS, "quantization")
test_cap = optional_int  # test items per level (None: every item)
boot = lambda value: integer(value, 1, (MAX_BOOT, "bootstrap draws (the paper: 10,000)"))  # noqa: E731
prompt_formats = mapping(one_of(tuple(prompts.DEFAULT_FORMAT), "answer-scored dataset"), prompt_format)
models_list = list_of(model)


__all__ = ["Check", "Invalid", "MAX_BOOT", "MAX_FOLDS", "SEED_MAX", "Size", "param"]
