"""The training methods as types: what a method *is* (its size and the settings that change its
results), and what a method's runner is handed for one seed.

``ZeroShot | ICL(k) | Probe(n, config) | QLoRA(n, config) | CoT(inner, max_new_tokens, ...)``
are frozen dataclasses. Each knows

- ``kind``: its name in stored results (``results/<dataset>/<kind>/<key>/``) and in YAML files;
- ``size``: the training examples it takes (k in-context examples, n for a probe or QLoRA);
- ``options()``: its settings in canonical form, every default merged in, nothing that only
  changes how it executes (micro-batches, generation batches, adapter folders live in
  ``engine.runtime.RunSettings``): two ways of writing one method give one result key;
- ``baseline()``: the method that is its unsupervised baseline (zero-shot prompting; zero-shot
  chain of thought for chain of thought).

``build(kind, size, options)`` turns a YAML's method name and option mapping into one of them;
``methods.RUNNERS`` (in ``methods/__init__``) maps each type to the one function that runs it for
one seed, given a ``SeedJob``. A new method is one class here and one runner there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Mapping, cast

import pandas as pd

from e2h_utils.data import answers, prompts
from e2h_utils.engine.models import LoadedModel
from e2h_utils.engine.runtime import RunSettings
from e2h_utils.methods.probe import PROBE_VERSION, ProbeConfig
from e2h_utils.methods.qlora import COT_MIN_UPDATES, QLORA_VERSION, QLoRAConfig

# chain of thought's unsupervised baseline (see ExperimentSpec.unsupervised)
COT_BASELINES = ("authors", "step_by_step")


class MethodError(ValueError):
    """A method name, size or option that does not exist."""


Options = tuple[tuple[str, Any], ...]


def _canonical(values: Mapping[str, Any]) -> Options:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))


@dataclass(frozen=True)
class Method:
    """Base of the method types (never used alone)."""

    kind: ClassVar[str] = ""
    trains: ClassVar[bool] = True  # takes training examples (a pool of the split or a TrainSource)
    uses_labels: ClassVar[bool] = True  # learns from answer labels (label noise applies)
    generates: ClassVar[bool] = False  # writes its answer (chain of thought) instead of scoring choices

    @property
    def size(self) -> int:
        return 0

    def options(self) -> Options:
        return ()

    def resized(self, size: int) -> "Method":
        """The same method with ``size`` training examples (a point of a learning curve)."""
        raise MethodError(f"{self.kind} has no training size")

    def baseline(self) -> "Method":
        return ZeroShot()

    def train_version(self) -> int | None:
        """The version of the training code whose results this method's runs are (None: none)."""
        return None

    @property
    def in_context(self) -> bool:
        """Whether its examples are put in the prompt (its prompts are tokenized as ICL's are)."""
        return False

    def draw_salt(self) -> str:
        """What separates this method's training draws from another method's on the same pool
        (ICL's is empty: its draws were keyed before other methods drew)."""
        return f"/{self.kind}"


@dataclass(frozen=True)
class ZeroShot(Method):
    """Zero-shot prompting: every choice scored after the question, no examples."""

    kind: ClassVar[str] = "zero_shot"
    trains: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = False


@dataclass(frozen=True)
class ICL(Method):
    """In-context learning: ``k`` solved examples in front of every test question (one draw per seed)."""

    k: int
    kind: ClassVar[str] = "icl"

    def __post_init__(self) -> None:
        if int(self.k) < 1:
            raise MethodError(f"ICL needs k >= 1 in-context examples, not {self.k} (zero-shot is ZeroShot())")
        object.__setattr__(self, "k", int(self.k))

    @property
    def size(self) -> int:
        return self.k

    def resized(self, size: int) -> "ICL":
        return replace(self, k=int(size))

    @property
    def in_context(self) -> bool:
        return True

    def draw_salt(self) -> str:
        return ""


@dataclass(frozen=True)
class Probe(Method):
    """A linear probe on hidden states (``layers``: indices into ``hidden_states``; None: the
    authors' middle and last layer), trained on ``n`` examples."""

    n: int
    config: ProbeConfig = ProbeConfig()
    layers: tuple[int, ...] | None = None
    kind: ClassVar[str] = "probe"

    def __post_init__(self) -> None:
        if int(self.n) < 1:
            raise MethodError(f"a probe needs n >= 1 training examples, not {self.n}")
        object.__setattr__(self, "n", int(self.n))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))

    @property
    def size(self) -> int:
        return self.n

    def options(self) -> Options:
        return _canonical({"layers": self.layers, **asdict(self.config)})

    def resized(self, size: int) -> "Probe":
        return replace(self, n=int(size))

    def train_version(self) -> int:
        return PROBE_VERSION


@dataclass(frozen=True)
class QLoRA(Method):
    """LoRA adapters on a quantized base, trained on ``n`` examples with the scorer's objective."""

    n: int
    config: QLoRAConfig = QLoRAConfig()
    kind: ClassVar[str] = "qlora"

    def __post_init__(self) -> None:
        if int(self.n) < 1:
            raise MethodError(f"QLoRA needs n >= 1 training examples, not {self.n}")
        object.__setattr__(self, "n", int(self.n))

    @property
    def size(self) -> int:
        return self.n

    def options(self) -> Options:
        return _canonical(self.config.key_options())

    def resized(self, size: int) -> "QLoRA":
        return replace(self, n=int(size))

    def train_version(self) -> int:
        return QLORA_VERSION


@dataclass(frozen=True)
class CoT(Method):
    """Chain of thought: the model writes its reasoning and answer (greedy), read by the answer
    rule ``extraction``. ``inner`` says how it learns: ``ZeroShot()`` (zero-shot CoT, the
    baseline), ``ICL(k)`` (k worked examples) or ``QLoRA(n)`` (trained on reasoning + answer).
    ``max_new_tokens`` None: the paper's length for the dataset (resolved by the experiment spec).
    ``baseline``: the unsupervised baseline's recipe (``COT_BASELINES``)."""

    inner: ZeroShot | ICL | QLoRA
    max_new_tokens: int | None = None
    extraction: str = "strict"
    baseline_recipe: str = "authors"
    uses_labels: ClassVar[bool] = False  # label noise resamples a choice; CoT targets are worked solutions
    generates: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.inner, (ZeroShot, ICL, QLoRA)):
            raise MethodError(f"chain of thought learns by zero-shot, ICL or QLoRA, not {self.inner!r}")
        if self.extraction not in answers.RULES:
            raise MethodError(f"unknown extraction rule {self.extraction!r}; valid: {', '.join(answers.RULES)}")
        if self.baseline_recipe not in COT_BASELINES:
            raise MethodError(f"unknown chain-of-thought baseline {self.baseline_recipe!r}; valid: "
                              f"{', '.join(COT_BASELINES)}")
        if self.max_new_tokens is not None:
            if int(self.max_new_tokens) < 1:
                raise MethodError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}")
            object.__setattr__(self, "max_new_tokens", int(self.max_new_tokens))

    @property
    def kind(self) -> str:  # type: ignore[override]
        return {"zero_shot": "zero_shot_cot", "icl": "icl_cot", "qlora": "qlora_cot"}[self.inner.kind]

    @property
    def trains(self) -> bool:  # type: ignore[override]
        return self.inner.trains

    @property
    def size(self) -> int:
        return self.inner.size

    def with_length(self, dataset: str) -> "CoT":
        """The same method with the paper's generation length for ``dataset`` when none is set."""
        if self.max_new_tokens is not None:
            return self
        return replace(self, max_new_tokens=int(prompts.MAX_NEW_TOKENS[dataset]))

    def options(self) -> Options:
        if self.max_new_tokens is None:
            raise MethodError("resolve the generation length first (CoT.with_length(dataset))")
        if isinstance(self.inner, ZeroShot):  # the order the stored zero-shot CoT runs are keyed by
            return (("max_new_tokens", self.max_new_tokens), ("baseline", self.baseline_recipe),
                    ("extraction", self.extraction))
        inner = dict(self.inner.options())
        return _canonical({**inner, "max_new_tokens": self.max_new_tokens, "extraction": self.extraction,
                           "baseline": self.baseline_recipe})

    def resized(self, size: int) -> "CoT":
        # ICL and QLoRA resize to their own kind (ZeroShot has no size: Method.resized raises)
        return replace(self, inner=cast("ZeroShot | ICL | QLoRA", self.inner.resized(size)))

    def baseline(self) -> "CoT":
        return replace(self, inner=ZeroShot())

    @property
    def in_context(self) -> bool:
        return self.inner.in_context

    def train_version(self) -> int | None:
        return self.inner.train_version()


# --- YAML names and option mappings -> typed methods ---------------------------------------------

KINDS = ("icl", "probe", "qlora", "icl_cot", "qlora_cot")  # the methods a YAML names
ANSWER_SCORING = ("icl", "probe", "qlora")
CHAIN_OF_THOUGHT = ("icl_cot", "qlora_cot")
IN_CONTEXT = ("icl", "icl_cot")  # sized by k (the YAML's k_shot), the others by n (n_train)
TRAINS_WEIGHTS = ("qlora", "qlora_cot")  # train adapters (the dry run caps their updates)
_GENERATION = ("max_new_tokens", "extraction", "baseline")
# options that used to be method options and only change how a run executes: now run settings
RUN_SETTING_OPTIONS = {"micro_batch": "micro_batch", "batch_size": "generation_batch", "keep_adapter": "keep_adapters"}


def _config(cls: type, values: Mapping[str, Any], kind: str, defaults: Mapping[str, Any] | None = None) -> Any:
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{**(defaults or {}), **{k: (tuple(v) if isinstance(v, list) else v)
                                             for k, v in values.items() if k in names}})
    except (TypeError, ValueError) as error:
        raise MethodError(f"{kind}: {error}") from None


def option_names(kind: str) -> tuple[str, ...]:
    """The options a YAML may give method ``kind`` (its ``method_options`` keys)."""
    probe, qlora = tuple(f.name for f in fields(ProbeConfig)), tuple(f.name for f in fields(QLoRAConfig))
    return {"icl": (), "probe": ("layers", *probe), "qlora": qlora, "icl_cot": _GENERATION,
            "qlora_cot": (*qlora, *_GENERATION)}[kind]


def build(kind: str, size: int, options: Mapping[str, Any] | None = None) -> Method:
    """The typed method a YAML means: ``kind`` (``KINDS``), its training size (k or n; 0 gives the
    zero-shot baseline) and its ``method_options`` mapping. Unknown names are errors that list the
    valid ones; an execution setting (``micro_batch``, ``batch_size``, ``keep_adapter``) is an
    error that says where it lives now."""
    if kind not in KINDS:
        raise MethodError(f"unknown method {kind!r}; valid: {', '.join(KINDS)}")
    options = dict(options or {})
    moved = sorted(set(options) & set(RUN_SETTING_OPTIONS))
    if moved:
        where = ", ".join(f"{name} -> {RUN_SETTING_OPTIONS[name]}" for name in moved)
        raise MethodError(f"{kind}: {', '.join(moved)} only change how a run executes, not its results: they are "
                          f"run settings now ({where} in parameters/<profile>/_run.yaml), not method options")
    unknown = sorted(set(options) - set(option_names(kind)))
    if unknown:
        raise MethodError(f"unknown option(s) {unknown} for method {kind!r}; valid: "
                          f"{', '.join(option_names(kind)) or 'none'}")
    size = int(size)
    if kind in CHAIN_OF_THOUGHT:
        generation = {k: options[k] for k in _GENERATION if k in options and options[k] is not None}
        if size == 0:
            inner: ZeroShot | ICL | QLoRA = ZeroShot()
        elif kind == "icl_cot":
            inner = ICL(size)
        else:
            inner = QLoRA(size, _config(QLoRAConfig, options, kind, {"min_updates": COT_MIN_UPDATES}))
        try:
            return CoT(inner, max_new_tokens=generation.get("max_new_tokens"),
                       extraction=generation.get("extraction", "strict"),
                       baseline_recipe=generation.get("baseline", "authors"))
        except MethodError as error:
            raise MethodError(f"{kind}: {error}") from None
    if size == 0:
        return ZeroShot()
    if kind == "icl":
        return ICL(size)
    if kind == "probe":
        return Probe(size, _config(ProbeConfig, options, kind), options.get("layers"))
    return QLoRA(size, _config(QLoRAConfig, options, kind))


def stored_method(kind: str, size: int, options: Options | list) -> Method | None:
    """The method of a stored run's ``spec.json`` (its kind, n_train and options as stored),
    or None when the stored options are not a method's (results of other code)."""
    values = {k: v for k, v in (options or [])}
    try:
        if kind == "zero_shot":
            return ZeroShot()
        if kind == "zero_shot_cot":
            return CoT(ZeroShot(), values.get("max_new_tokens"), values.get("extraction", "strict"),
                       values.get("baseline", "authors"))
        clean = {k: v for k, v in values.items() if k not in RUN_SETTING_OPTIONS}
        return build(kind, size, clean)
    except (MethodError, KeyError, TypeError, ValueError):
        return None


# --- what a runner gets for one seed ------------------------------------------------------------

@dataclass
class SeedJob:
    """Everything one seed of one run needs: the model, the test items (with their ``level``),
    the seed's training examples (drawn, label noise applied; empty for zero-shot), the prompt
    format and length limit of the spec, where probe features are cached, and the run settings."""

    lm: LoadedModel
    dataset: str
    test: pd.DataFrame
    train: pd.DataFrame
    seed: int
    prompt_format: str | None
    max_length: int | None
    features_root: Any  # the results folder whose features/ subfolders cache hidden states
    settings: RunSettings
    progress: bool = True
    label: str = ""  # for progress bars: dataset/measure level
    key: str = ""  # the run's storage key (results/<dataset>/<kind>/<key>/): kept adapters go under it too


def result_frame(test: pd.DataFrame, scores: list, seed: int, train: pd.DataFrame) -> pd.DataFrame:
    """Per test item of an answer-scoring method: choice log-probabilities, probabilities,
    prediction and correctness (``engine.scoring.predictions``), and the training examples (and
    how many labels noise changed, when it did)."""
    from e2h_utils.engine import scoring
    from e2h_utils.methods import noise

    result = scoring.predictions(scores, list(test["label"]))
    result.insert(0, "item_id", list(test["id"]))
    result.insert(1, "level", list(test["level"]))
    result.insert(2, "seed", seed)
    result["n_shots"] = len(train)
    result["example_ids"] = [list(train["id"])] * len(result)
    if noise.FLIPPED in train.columns:
        result["n_noised"] = int(train[noise.FLIPPED].sum())
    return result
