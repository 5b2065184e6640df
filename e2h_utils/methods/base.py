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

``build(kind, size, options)`` turns a YAML's method name and option mapping into one of them,
through the method's ``Recipe`` (``register``: its name, its option keys, how a size becomes the
method, whether it is sized by k, writes its answer or trains adapters; the profile check, the
settings and the dry run read these); ``runners.RUNNERS`` maps each type to the one function that
runs it for one seed, given a ``SeedJob``. A new method is one class and one ``register`` here and
one runner there (``tests/test_toy_method.py`` adds one from a single file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, ClassVar, Mapping, cast

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

_GENERATION = ("max_new_tokens", "extraction", "baseline")
# options that used to be method options and only change how a run executes: now run settings
RUN_SETTING_OPTIONS = {"micro_batch": "micro_batch", "batch_size": "generation_batch", "keep_adapter": "keep_adapters"}


@dataclass(frozen=True)
class Recipe:
    """A method as a YAML names it: its name, its ``method_options`` keys, and how a training size
    (k or n; 0 gives its baseline) and those options become the typed method (``make``). A new
    method is its class, one ``register(Recipe(...))`` beside it, and its runner in
    ``runners.RUNNERS``; the profile check, the settings and the dry run read what they need here."""

    kind: str
    options: tuple[str, ...]
    make: Callable[[int, Mapping[str, Any]], Method]
    in_context: bool = False  # sized by k (the YAML's k_shot, cot_k_shot), else by n (n_train)
    chain_of_thought: bool = False  # writes its answer (cot_methods, cot_measures)
    trains_weights: bool = False  # trains adapters (the dry run caps its updates)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Make a method nameable in YAML files (``methods``, ``method_options``, ``curves``, ...)."""
    RECIPES[recipe.kind] = recipe
    return recipe


def kinds(*, in_context: bool | None = None, chain_of_thought: bool | None = None,
          trains_weights: bool | None = None) -> tuple[str, ...]:
    """The method names a YAML may use, those with the given properties only."""
    return tuple(kind for kind, r in RECIPES.items()
                 if (in_context is None or r.in_context == in_context)
                 and (chain_of_thought is None or r.chain_of_thought == chain_of_thought)
                 and (trains_weights is None or r.trains_weights == trains_weights))


def _config(cls: type, values: Mapping[str, Any], kind: str, defaults: Mapping[str, Any] | None = None) -> Any:
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{**(defaults or {}), **{k: (tuple(v) if isinstance(v, list) else v)
                                             for k, v in values.items() if k in names}})
    except (TypeError, ValueError) as error:
        raise MethodError(f"{kind}: {error}") from None


def _scored(make: Callable[[int, Mapping[str, Any]], Method]) -> Callable[[int, Mapping[str, Any]], Method]:
    """An answer-scoring method; size 0 is zero-shot prompting."""
    return lambda size, options: ZeroShot() if size == 0 else make(size, options)


def _chain_of_thought(kind: str, inner: Callable[[int, Mapping[str, Any]], Method]
                      ) -> Callable[[int, Mapping[str, Any]], Method]:
    """Chain of thought around ``inner`` (size 0: zero-shot chain of thought), with its generation options."""
    def make(size: int, options: Mapping[str, Any]) -> Method:
        generation = {k: options[k] for k in _GENERATION if k in options and options[k] is not None}
        method = ZeroShot() if size == 0 else inner(size, options)
        try:
            return CoT(cast("ZeroShot | ICL | QLoRA", method), max_new_tokens=generation.get("max_new_tokens"),
                       extraction=generation.get("extraction", "strict"),
                       baseline_recipe=generation.get("baseline", "authors"))
        except MethodError as error:
            raise MethodError(f"{kind}: {error}") from None
    return make


_PROBE = tuple(f.name for f in fields(ProbeConfig))
_QLORA = tuple(f.name for f in fields(QLoRAConfig))
register(Recipe("icl", (), _scored(lambda k, o: ICL(k)), in_context=True))
register(Recipe("probe", ("layers", *_PROBE),
                _scored(lambda n, o: Probe(n, _config(ProbeConfig, o, "probe"), o.get("layers")))))
register(Recipe("qlora", _QLORA, _scored(lambda n, o: QLoRA(n, _config(QLoRAConfig, o, "qlora"))),
                trains_weights=True))
register(Recipe("icl_cot", _GENERATION, _chain_of_thought("icl_cot", lambda k, o: ICL(k)),
                in_context=True, chain_of_thought=True))
register(Recipe("qlora_cot", (*_QLORA, *_GENERATION), _chain_of_thought(
    "qlora_cot", lambda n, o: QLoRA(n, _config(QLoRAConfig, o, "qlora_cot", {"min_updates": COT_MIN_UPDATES}))),
    chain_of_thought=True, trains_weights=True))


def option_names(kind: str) -> tuple[str, ...]:
    """The options a YAML may give method ``kind`` (its ``method_options`` keys)."""
    return RECIPES[kind].options


def build(kind: str, size: int, options: Mapping[str, Any] | None = None) -> Method:
    """The typed method a YAML means: ``kind`` (``kinds()``), its training size (k or n; 0 gives the
    zero-shot baseline) and its ``method_options`` mapping. Unknown names are errors that list the
    valid ones; an execution setting (``micro_batch``, ``batch_size``, ``keep_adapter``) is an
    error that says where it lives now."""
    if kind not in RECIPES:
        raise MethodError(f"unknown method {kind!r}; valid: {', '.join(kinds())}")
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
    return RECIPES[kind].make(int(size), options)


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
