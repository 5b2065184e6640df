"""What an experiment *is*: a typed spec with one canonical form, the key of its stored results.

``ExperimentSpec(dataset, measure, method, training, seeds, model, test, ...)``:

- ``method``: a typed method (``methods.ZeroShot | ICL(k) | Probe(n) | QLoRA(n) | CoT(...)``);
- ``training``: ``Training(pool, label_noise)`` where ``pool`` is a level of the split
  (``"easy"``, ``"medium"``, ``"hard"`` or ``"all"``) or a ``TrainSource`` (rows of a dataset
  selected by a column, e.g. ARC items of grade <= 3 for MMLU college questions); ``None`` for a
  method that does not train (zero-shot);
- ``test``: ``TestSelection`` (the share of each level held out, a cap, the split seed, the test
  levels scored).

``canonical()`` is the spec as its results mean it: every method default merged in, a chain of
thought's default length resolved, nothing that only changes how a run executes (those are run
settings, ``engine.runtime``), and the version of each piece of code that computes it. The result
store keys a run by the hash of ``canonical()`` plus the model's identity and a digest of the data
it reads (``key_payload``): two ways of writing one experiment share one key, and a change to the
code that computes it (a version bump) never reuses results of the old code.

The stored form keeps the field names of the project's first result layout (``train_level``,
``n_train``, ``method`` as a name, ``options`` as pairs), so results stored before the typed specs
keep their keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import pandas as pd

from e2h_utils.data import datasets, hardness, prompts
from e2h_utils.data.datasets import DATASETS
from e2h_utils.engine.generation import COT_VERSION
from e2h_utils.engine.scoring import SCORER_VERSION
from e2h_utils.methods.base import CoT, Method, MethodError, ZeroShot

POOLS = ("easy", "medium", "hard", "all")  # training pools of the split (a TrainSource is the other kind)
# how a k-shot prompt is split into tokens: "joint" = as the whole prompt tokenizes at once
ICL_TOKENIZATION = "joint"


class SpecError(ValueError):
    """An experiment spec names an unknown dataset, measure, level or method, or a combination
    that cannot run."""


@dataclass(frozen=True)
class TrainSource:
    """Training examples from outside the spec's own split: the rows of ``dataset`` whose
    ``column`` lies in [``min_value``, ``max_value``] (either bound optional), e.g. ARC items
    of grade <= 3 as in-context examples for MMLU college questions. When ``dataset`` is the
    test dataset, every held-out test item of the split is removed from the pool."""

    dataset: str
    column: str
    min_value: float | None = None
    max_value: float | None = None

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise SpecError(f"unknown train-source dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.dataset not in prompts.DEFAULT_FORMAT:  # its items go into the test dataset's answer-scored prompt
            raise SpecError(f"train-source dataset {self.dataset!r} has no answer choices to put in a prompt; "
                            f"give one of {', '.join(prompts.DEFAULT_FORMAT)}")
        if self.min_value is None and self.max_value is None:
            raise SpecError("a TrainSource needs min_value and/or max_value")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise SpecError(f"min_value {self.min_value:g} is above max_value {self.max_value:g}: no item lies between "
                            "them; swap them, or give one bound")

    @property
    def label(self) -> str:
        bounds = [f"{self.column} >= {self.min_value:g}" if self.min_value is not None else "",
                  f"{self.column} <= {self.max_value:g}" if self.max_value is not None else ""]
        return f"{self.dataset}: " + " and ".join(b for b in bounds if b)

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pool: matching rows, in id order (draws are seeded shuffles of this order)."""
        if self.column not in frame.columns:
            numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and c not in ("label",)]
            raise SpecError(f"train source column {self.column!r} is not a column of {self.dataset}; "
                            f"numeric columns: {', '.join(numeric)}")
        values = pd.to_numeric(frame[self.column], errors="coerce")
        keep = values.notna()
        if self.min_value is not None:
            keep &= values >= self.min_value
        if self.max_value is not None:
            keep &= values <= self.max_value
        return frame[keep].sort_values("id")


@dataclass(frozen=True)
class Training:
    """Where a run's training examples come from, and how noisy their labels are: ``pool`` is a
    level of the split (``POOLS``) or a ``TrainSource``; ``label_noise`` is the share of labels
    resampled uniformly over the choices (the label-noise experiments)."""

    pool: str | TrainSource
    label_noise: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.pool, str) and self.pool not in POOLS:
            raise SpecError(f"unknown training pool {self.pool!r}; valid: {', '.join(POOLS)} or a TrainSource "
                            "(no training at all: training=None, e.g. for methods.ZeroShot())")
        if not isinstance(self.pool, (str, TrainSource)):
            raise SpecError(f"a training pool is a level name or a TrainSource, not {self.pool!r}")
        if not 0.0 <= float(self.label_noise) <= 1.0:
            raise SpecError(f"label_noise must be in [0, 1], not {self.label_noise}")
        object.__setattr__(self, "label_noise", float(self.label_noise))

    @property
    def level(self) -> str:
        """The split level trained on (``"all"`` for a TrainSource: the pool is its rows)."""
        return self.pool if isinstance(self.pool, str) else "all"

    @property
    def source(self) -> TrainSource | None:
        return self.pool if isinstance(self.pool, TrainSource) else None


@dataclass(frozen=True)
class TestSelection:
    test_fraction: float = 0.5  # share of each level held out as test items
    max_per_level: int | None = None  # cap on test items per level (None: all)
    split_seed: int = 0
    levels: tuple[str, ...] = hardness.LEVELS  # test levels to score (hard alone saves time)
    # a boolean column marking a fixed test set (MATH-500 in MATH: ``math500``); the other rows of
    # each level are the training pool and ``test_fraction`` is not used (None: the paired split)
    fixed: str | None = None
    # cross-fitting (``experiments.split``): each level is cut into K = 1 / test_fraction folds and
    # every item (up to the cap) is a test item, scored by a run trained without its fold
    cross_fit: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise SpecError(f"test_fraction must be in (0, 1), not {self.test_fraction}")
        if self.cross_fit and self.fixed is not None:
            raise SpecError(f"cross_fit cannot be used with a fixed test set ({self.fixed!r}): its pool is fixed")
        if self.cross_fit and abs(1.0 / self.test_fraction - round(1.0 / self.test_fraction)) > 1e-9:
            raise SpecError(f"cross_fit needs test_fraction = 1/K for K folds (0.5, 0.25, 0.2, ...), not "
                            f"{self.test_fraction}")
        if self.max_per_level is not None and self.max_per_level < 1:
            raise SpecError(f"max_per_level must be positive or None, not {self.max_per_level}")
        object.__setattr__(self, "levels", tuple(self.levels))
        unknown = set(self.levels) - set(hardness.LEVELS)
        if unknown or not self.levels:
            raise SpecError(f"test levels must be a non-empty subset of {hardness.LEVELS}, not {self.levels}")

    @property
    def folds(self) -> int:
        """How many training runs per seed score the test items: K = 1 / test_fraction under
        cross-fitting, else 1 (the pool is trained on once and the held-out items are scored)."""
        return int(round(1.0 / self.test_fraction)) if self.cross_fit else 1


@dataclass(frozen=True)
class ExperimentSpec:
    dataset: str
    measure: str
    method: Method
    training: Training | None = None  # None: the method does not train (zero-shot)
    seeds: tuple[int, ...] = (0,)
    model: str = "embedded"
    test: TestSelection = field(default_factory=TestSelection)
    prompt_format: str | None = None  # None: the dataset's default
    max_length: int | None = None  # None: the model's context length

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise SpecError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if not isinstance(self.method, Method):
            raise SpecError(f"method must be a typed method (e2h_utils.methods: ZeroShot(), ICL(k), Probe(n), "
                            f"QLoRA(n), CoT(...)), not {self.method!r}")
        try:
            hardness.get_measure(self.dataset, self.measure)
            if self.method.generates:
                prompts.get_cot_format(self.prompt_format, self.dataset)
            else:
                prompts.get_format(self.prompt_format, self.dataset)
        except KeyError as error:  # unknown measure or prompt format: the message lists valid names
            raise SpecError(str(error.args[0])) from error
        if self.method.trains and self.training is None:
            raise SpecError(f"{self.method.kind} trains: give training=Training(pool) (a level or a TrainSource)")
        if not self.method.trains and self.training is not None:
            raise SpecError(f"{self.method.kind} does not train: training must be None")
        if self.training is not None:
            if self.training.label_noise and not self.method.uses_labels:
                raise SpecError(f"label noise applies to methods that learn from answer labels (icl, probe, qlora), "
                                f"not {self.method.kind!r}")
            if self.training.source is not None and self.method.generates:
                raise SpecError("a TrainSource applies to answer-scoring methods, not chain of thought")
        if not self.seeds:
            raise SpecError("seeds must be non-empty")
        if isinstance(self.method, CoT) and self.method.max_new_tokens is None:
            object.__setattr__(self, "method", self.method.with_length(self.dataset))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @property
    def train_level(self) -> str:
        """``"none"`` without training, else the split level trained on (``"all"`` for a source)."""
        return "none" if self.training is None else self.training.level

    @property
    def label_noise(self) -> float:
        return 0.0 if self.training is None else self.training.label_noise

    @property
    def train_source(self) -> TrainSource | None:
        return None if self.training is None else self.training.source

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """Without training a run is deterministic: one seed is enough."""
        return self.seeds if self.method.trains else (0,)

    def unsupervised(self) -> "ExperimentSpec":
        """The spec whose results are this spec's unsupervised baseline (``baseline_of``)."""
        method, prompt_format = baseline_of(self.method, self.dataset, self.prompt_format)
        return replace(self, method=method, training=None, prompt_format=prompt_format)

    def canonical(self) -> dict[str, Any]:
        """The spec as its results mean it (seeds excluded: one stored file per seed)."""
        method = self.method
        out: dict[str, Any] = {
            "dataset": self.dataset, "measure": self.measure, "train_level": self.train_level,
            "method": method.kind, "n_train": method.size, "model": self.model, "test": test_form(self.test),
            "prompt_format": self.prompt_format, "max_length": self.max_length, "options": method.options(),
        }
        if self.label_noise:
            out["label_noise"] = self.label_noise
        if self.train_source is not None:
            out["train_source"] = asdict(self.train_source)
        if method.in_context:
            out["prompt_tokenization"] = ICL_TOKENIZATION
        out["scorer_version"] = SCORER_VERSION
        out["levels_version"] = hardness.LEVELS_VERSION
        if method.generates:
            out["cot_version"] = COT_VERSION
        if method.train_version() is not None:
            out["train_version"] = method.train_version()
        return out

    def describe(self) -> str:
        """One line for progress bars and messages: dataset/measure method pool."""
        pool = self.train_level if self.train_source is None else self.train_source.label
        noise = f" noise {self.label_noise:g}" if self.label_noise else ""
        return f"{self.dataset}/{self.measure} {self.method.kind} {pool}{noise}"


def test_form(test: TestSelection) -> dict[str, Any]:
    """A test selection as results are keyed by it (``fixed`` and ``cross_fit`` only when set, so the
    paired split's keys are those of the first layout)."""
    form = asdict(test)
    if form["fixed"] is None:
        form.pop("fixed")
    if not form["cross_fit"]:
        form.pop("cross_fit")
    return form


def baseline_of(method: Method, dataset: str, prompt_format: str | None) -> tuple[Method, str | None]:
    """(method, prompt format) of ``method``'s unsupervised baseline on ``dataset``: zero-shot
    prompting (zero-shot chain of thought for chain of thought); for chain of thought on StrategyQA
    under the authors' recipe, the answer-scored zero-shot run (``Q: ..\\nA:`` scored yes/no) in the
    dataset's default format, not zero-shot chain of thought (their ``analysis.Rmd`` ~856)."""
    if isinstance(method, CoT) and method.baseline_recipe == "authors" and dataset in prompts.DEFAULT_FORMAT:
        return ZeroShot(), None
    return method.baseline(), prompt_format


def key_payload(spec: ExperimentSpec, model_identity: str, frame: pd.DataFrame,
                source_frame: pd.DataFrame | None = None,
                digest: Callable[[pd.DataFrame, Sequence[str]], str] = datasets.content_digest) -> dict[str, Any]:
    """What a run's stored results are keyed by: the canonical spec, the model's identity and a
    digest of the data it reads (the frame's content and measure column; a train source's rows),
    so that results are never reused for data that has changed since. ``digest``: the digest
    function (a ``datasets.Digests`` remembers it per frame for an owner of fixed frames)."""
    measure = hardness.get_measure(spec.dataset, spec.measure)
    payload = {**spec.canonical(), "model_identity": model_identity,
               "data_digest": digest(frame, [c for c in (measure.column, measure.population) if c])}
    if spec.train_source is not None and source_frame is not None:
        payload["source_digest"] = digest(source_frame, [spec.train_source.column])
    return payload


def from_stored(stored: dict[str, Any]) -> ExperimentSpec | None:
    """The spec of a stored run's ``spec.json`` (None when it is not an experiment of this module:
    MDL, zero-shot item scores, or options no method has)."""
    from e2h_utils.methods.base import stored_method

    try:
        method = stored_method(stored["method"], int(stored["n_train"]), stored["options"])
        if method is None:
            return None
        source = stored.get("train_source")
        level = stored["train_level"]
        training = None
        if method.trains:
            training = Training(TrainSource(**source) if source else level, float(stored.get("label_noise", 0.0)))
        test = dict(stored["test"])
        return ExperimentSpec(dataset=stored["dataset"], measure=stored["measure"], method=method, training=training,
                              model=stored["model"], test=TestSelection(**{**test, "levels": tuple(test["levels"])}),
                              prompt_format=stored["prompt_format"], max_length=stored["max_length"])
    except (KeyError, TypeError, ValueError, SpecError, MethodError):
        return None
