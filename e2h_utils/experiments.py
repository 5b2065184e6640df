"""Experiment specs and the runner: split, train, score, store per item.

Methods: ``icl`` (k examples in the prompt), ``probe`` (linear probe on cached hidden
states), ``qlora`` (LoRA on a quantized base) — all scored by the choices' log-likelihoods —
and their chain-of-thought variants ``icl_cot`` and ``qlora_cot`` (generate, then read the
answer). The unsupervised baseline (``train_level="none"``) is zero-shot prompting, shared by
all answer-scoring methods. For chain of thought it follows the authors (``analysis.Rmd``
~856, ``run_jobs.py:447-449``): StrategyQA's baseline is the answer-scored zero-shot prompt
(``Q: ..\nA:`` scored yes/no, the same run as the other methods' baseline), GSM8K's is
zero-shot chain of thought after the worksheet instruction of prompt 5305. The option
``baseline: step_by_step`` gives the project's earlier "Let's think step by step." cue instead.

The split is the project's own, not the authors'. Under one hardness measure, every level
(easy / medium / hard) is shuffled once with a fixed seed and cut into a training pool and
held-out test items (``test_fraction``, 0.5 by default). A run trains on the pool of its
``train_level`` (``none`` = zero-shot, ``all`` = every pool) and is scored on all held-out test
items, each kept with its level, so accuracy can be read per level and hard-test items are the
same (paired) across training conditions and seeds. The authors instead draw each seed's
training items from the whole level and test on everything else (``data_utils.py::
stratified_test_sampling``), so each condition has its own test set. What pairing costs: the
test sets are about half the authors' (the other half is the pool), so CIs are about
sqrt(2) wider than theirs on the same data; what it buys: the easy, hard and unsupervised
accuracies are differences on identical items (docs/fidelity.md). Small profiles cap the test
items per level; the cap takes a prefix of the same fixed order, so a larger cap tests a
superset. A run never uses fewer training items than its spec says: a spec whose pool is
smaller than ``n_train`` stops with an error naming the pool size.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import answers, atomic, features, generation, hardness, icl, metrics, noise, prompts, scoring
from . import data
from .data import DATASETS
from .models import LoadedModel
from .probe import PROBE_VERSION, ProbeConfig, train_probe
from .qlora import COT_MIN_UPDATES, QLORA_VERSION, QLoRAConfig, train_and_generate, train_and_score
from .results import ResultStore

TRAIN_LEVELS = ("none", "easy", "medium", "hard", "all")
METHODS = ("icl", "probe", "qlora", "icl_cot", "qlora_cot")
COT_METHODS = ("icl_cot", "qlora_cot")  # chain of thought: generate reasoning, then the answer
# chain of thought: None = the paper's length for the dataset; the answer rule (answers.RULES);
# the unsupervised baseline ("authors" or the earlier "step_by_step" cue)
_GENERATION = {"max_new_tokens": None, "batch_size": 8, "extraction": "strict", "baseline": "authors"}
COT_BASELINES = ("authors", "step_by_step")
# options each method accepts (``ExperimentSpec.options``), with their defaults
METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "icl": {},
    "probe": {"layers": None, **asdict(ProbeConfig())},
    "qlora": {**asdict(QLoRAConfig()), "keep_adapter": None},
    "icl_cot": dict(_GENERATION),
    "qlora_cot": {**asdict(QLoRAConfig(min_updates=COT_MIN_UPDATES)), "keep_adapter": None, **_GENERATION},
}
# method options that change how a run executes, never what it computes (memory, batching, where an
# adapter is saved): they are left out of a run's identity, so changing them reuses stored results
EXECUTION_OPTIONS = frozenset({"micro_batch", "batch_size", "keep_adapter"})
SCORER_VERSION = 2  # bump when scoring or the prompts change what it computes (2: the authors' prompts)
COT_VERSION = 3  # 2: the authors' CoT prompts, answer rule and stops; 3: finished rows leave the generation batch
TRAIN_VERSIONS = {"probe": PROBE_VERSION, "qlora": QLORA_VERSION, "qlora_cot": QLORA_VERSION}
# how a k-shot prompt is split into tokens: "joint" = as the whole prompt tokenizes at once
ICL_TOKENIZATION = "joint"


class SpecError(ValueError):
    """An experiment spec names an unknown dataset, measure, level or method."""


NOISE_METHODS = ("icl", "probe", "qlora")  # label noise needs a label to resample


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
        if self.min_value is None and self.max_value is None:
            raise SpecError("a TrainSource needs min_value and/or max_value")

    @property
    def label(self) -> str:
        bounds = [f"{self.column} >= {self.min_value:g}" if self.min_value is not None else "",
                  f"{self.column} <= {self.max_value:g}" if self.max_value is not None else ""]
        return f"{self.dataset}: " + " and ".join(b for b in bounds if b)

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The pool: matching rows, in id order (draws are seeded shuffles of this order)."""
        if self.column not in frame.columns:
            raise SpecError(f"train source column {self.column!r} is not in the {self.dataset} frame")
        values = pd.to_numeric(frame[self.column], errors="coerce")
        keep = values.notna()
        if self.min_value is not None:
            keep &= values >= self.min_value
        if self.max_value is not None:
            keep &= values <= self.max_value
        return frame[keep].sort_values("id")


@dataclass(frozen=True)
class TestSelection:
    test_fraction: float = 0.5  # share of each level held out as test items
    max_per_level: int | None = None  # cap on test items per level (None: all)
    split_seed: int = 0
    levels: tuple[str, ...] = hardness.LEVELS  # test levels to score (hard alone saves time)

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise SpecError(f"test_fraction must be in (0, 1), not {self.test_fraction}")
        if self.max_per_level is not None and self.max_per_level < 1:
            raise SpecError(f"max_per_level must be positive or None, not {self.max_per_level}")
        object.__setattr__(self, "levels", tuple(self.levels))
        unknown = set(self.levels) - set(hardness.LEVELS)
        if unknown or not self.levels:
            raise SpecError(f"test levels must be a non-empty subset of {hardness.LEVELS}, not {self.levels}")


@dataclass(frozen=True)
class ExperimentSpec:
    dataset: str
    measure: str
    train_level: str
    method: str = "icl"
    n_train: int = 10  # k for ICL
    seeds: tuple[int, ...] = (0,)
    model: str = "embedded"
    test: TestSelection = field(default_factory=TestSelection)
    prompt_format: str | None = None  # None: the dataset's default
    max_length: int | None = None  # None: the model's context length
    options: tuple[tuple[str, Any], ...] = ()  # method options, see METHOD_OPTIONS
    # share of training labels resampled uniformly over the choices (label-noise experiments)
    label_noise: float = 0.0
    train_source: TrainSource | None = None  # examples from another pool (train_level must be "all")

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise SpecError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.method not in METHODS:
            raise SpecError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        try:
            hardness.get_measure(self.dataset, self.measure)
            if self.method in COT_METHODS:
                prompts.get_cot_format(self.prompt_format, self.dataset)
            else:
                prompts.get_format(self.prompt_format, self.dataset)
        except KeyError as error:  # unknown measure or prompt format: the message lists valid names
            raise SpecError(str(error.args[0])) from error
        if self.train_level not in TRAIN_LEVELS:
            raise SpecError(f"unknown train level {self.train_level!r}; valid: {', '.join(TRAIN_LEVELS)}")
        if self.n_train < 0 or not self.seeds:
            raise SpecError("n_train must be >= 0 and seeds non-empty")
        options = dict(self.options.items() if isinstance(self.options, dict) else self.options)
        unknown = set(options) - set(METHOD_OPTIONS[self.method])
        if unknown:
            valid = ", ".join(METHOD_OPTIONS[self.method]) or "none"
            raise SpecError(f"unknown option(s) {sorted(unknown)} for method {self.method!r}; valid: {valid}")
        if not 0.0 <= float(self.label_noise) <= 1.0:
            raise SpecError(f"label_noise must be in [0, 1], not {self.label_noise}")
        if self.label_noise and self.method not in NOISE_METHODS:
            raise SpecError(f"label noise applies to {', '.join(NOISE_METHODS)}, not {self.method!r}")
        if self.train_source is not None and self.train_level != "all":
            raise SpecError("with a train_source the pool is the source's rows: use train_level='all'")
        if self.train_source is not None and self.method in COT_METHODS:
            raise SpecError("train_source applies to answer-scoring methods, not chain of thought")
        if self.method in COT_METHODS:
            merged = {**METHOD_OPTIONS[self.method], **options}
            if merged["extraction"] not in answers.RULES:
                raise SpecError(f"unknown extraction rule {merged['extraction']!r}; valid: {', '.join(answers.RULES)}")
            if merged["baseline"] not in COT_BASELINES:
                raise SpecError(f"unknown chain-of-thought baseline {merged['baseline']!r}; valid: "
                                f"{', '.join(COT_BASELINES)}")
        object.__setattr__(self, "label_noise", float(self.label_noise))
        normalised = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
        object.__setattr__(self, "options", normalised)
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @property
    def zero_shot(self) -> bool:
        return self.train_level == "none" or self.n_train == 0

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """Zero-shot is deterministic: one seed is enough."""
        return (0,) if self.zero_shot else self.seeds

    def payload(self, model_identity: str) -> dict[str, Any]:
        """Everything that determines a seed's results (seeds excluded: one file per seed)."""
        spec = asdict(self)
        spec.pop("seeds")
        # fields added later stay out of the payload at their defaults, so stored results keep their keys
        if not self.label_noise or self.zero_shot:
            spec.pop("label_noise")
        if self.train_source is None or self.zero_shot:
            spec.pop("train_source")
        spec["options"] = self.canonical_options()
        if self.zero_shot and self.method in COT_METHODS:  # zero-shot chain of thought, shared
            options = self.method_options()
            spec.update(train_level="none", n_train=0, method="zero_shot_cot",
                        options=(("max_new_tokens", self.max_new_tokens()), ("baseline", options["baseline"]),
                                 ("extraction", options["extraction"])))
        elif self.zero_shot:  # the unsupervised baseline is zero-shot prompting, whatever the method
            spec.update(train_level="none", n_train=0, method="zero_shot", options=())
        if self.method in ("icl", "icl_cot") and not self.zero_shot:
            spec["prompt_tokenization"] = ICL_TOKENIZATION
        versions = {"scorer_version": SCORER_VERSION, "levels_version": hardness.LEVELS_VERSION}
        if self.method in COT_METHODS:
            versions["cot_version"] = COT_VERSION
        if not self.zero_shot and self.method in TRAIN_VERSIONS:
            versions["train_version"] = TRAIN_VERSIONS[self.method]
        return {**spec, "model_identity": model_identity, **versions}

    def unsupervised(self) -> "ExperimentSpec":
        """The spec whose results are this spec's unsupervised baseline: zero-shot prompting;
        for chain of thought on StrategyQA under the authors' recipe, the answer-scored zero-shot
        run (``Q: ..\nA:`` scored yes/no), not zero-shot chain of thought."""
        base = replace(self, train_level="none", train_source=None, label_noise=0.0)
        if (self.method in COT_METHODS and self.method_options()["baseline"] == "authors"
                and self.dataset in prompts.DEFAULT_FORMAT):
            return replace(base, method="icl", prompt_format=None, options=())
        return base

    def canonical_options(self) -> tuple[tuple[str, Any], ...]:
        """The options as they define the run: every default merged in (``{epochs: 100}`` and ``{}``
        are one probe run), a chain of thought's default length resolved, execution settings
        (``EXECUTION_OPTIONS``) left out."""
        options = self.method_options()
        if "max_new_tokens" in options:
            options["max_new_tokens"] = self.max_new_tokens()
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                            for k, v in options.items() if k not in EXECUTION_OPTIONS))

    def method_options(self) -> dict[str, Any]:
        """The method's options: defaults overridden by ``options``."""
        return {**METHOD_OPTIONS[self.method], **dict(self.options)}

    def max_new_tokens(self) -> int:
        """Generation length of a chain-of-thought method (the paper's by default)."""
        value = self.method_options().get("max_new_tokens")
        return int(prompts.MAX_NEW_TOKENS[self.dataset] if value is None else value)


# --- splitting ---------------------------------------------------------------------------

def split_roles(frame: pd.DataFrame, measure: hardness.Measure, test: TestSelection) -> pd.DataFrame:
    """Per row: ``level``, ``role`` (train / test / <NA>) and ``order`` (rank in its level's shuffle)."""
    levels = hardness.assign_levels(frame, measure)
    out = pd.DataFrame({"level": levels, "role": pd.Series(pd.NA, index=frame.index, dtype=object),
                        "order": -1}, index=frame.index)
    rng = np.random.default_rng([test.split_seed, zlib.crc32(measure.key.encode())])
    for level in hardness.LEVELS:
        index = frame.index[levels == level]
        shuffled = index[rng.permutation(len(index))]
        n_test = int(round(test.test_fraction * len(index)))
        out.loc[shuffled, "order"] = np.arange(len(index))
        out.loc[shuffled[:n_test], "role"] = "test"
        out.loc[shuffled[n_test:], "role"] = "train"
    return out


def test_items(frame: pd.DataFrame, roles: pd.DataFrame, test: TestSelection) -> pd.DataFrame:
    chosen = roles[(roles["role"] == "test") & roles["level"].isin(test.levels)]
    if test.max_per_level is not None:
        chosen = chosen[chosen["order"] < test.max_per_level]
    chosen = chosen.sort_values(["level", "order"])
    return frame.loc[chosen.index].assign(level=chosen["level"].astype(str))


def training_pool(frame: pd.DataFrame, roles: pd.DataFrame, train_level: str) -> pd.DataFrame:
    if train_level == "none":
        return frame.iloc[:0]
    train = roles[roles["role"] == "train"]
    if train_level != "all":
        train = train[train["level"] == train_level]
    return frame.loc[train.sort_values(["level", "order"]).index]


def pool_size(frame: pd.DataFrame, spec: ExperimentSpec) -> int:
    """How many training items the spec's training level offers under its split (pure)."""
    measure = hardness.get_measure(spec.dataset, spec.measure)
    return len(training_pool(frame, split_roles(frame, measure, spec.test), spec.train_level))


# --- running -----------------------------------------------------------------------------

def _result_frame(test: pd.DataFrame, scores: list[np.ndarray], seed: int, train: pd.DataFrame) -> pd.DataFrame:
    """Per test item: scores and prediction, plus the training examples (and their noised
    labels, when label noise changed any)."""
    result = scoring.predictions(scores, list(test["label"]))
    result.insert(0, "item_id", list(test["id"]))
    result.insert(1, "level", list(test["level"]))
    result.insert(2, "seed", seed)
    result["n_shots"] = len(train)
    result["example_ids"] = [list(train["id"])] * len(result)
    if noise.FLIPPED in train.columns:
        result["n_noised"] = int(train[noise.FLIPPED].sum())
    return result


def _items(lm: LoadedModel, fmt: prompts.PromptFormat, frame: pd.DataFrame) -> list[scoring.ScoringItem]:
    return [scoring.make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in frame.to_dict("records")]


def _draw(spec: ExperimentSpec, pool: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The training examples of one seed (label noise applied after the draw, so every noise
    rate sees the same examples)."""
    salt = f"{spec.dataset}/{spec.measure}/{spec.train_level}" + ("" if spec.method == "icl" else f"/{spec.method}")
    if spec.train_source is not None:
        salt = f"{spec.dataset}/source/{spec.train_source.label}" + ("" if spec.method == "icl" else f"/{spec.method}")
    drawn = icl.draw_examples(pool, 0 if spec.zero_shot else spec.n_train, seed, salt=salt)
    if spec.label_noise and not drawn.empty:
        drawn = noise.corrupt_labels(drawn, spec.label_noise, seed, salt=salt)
    return drawn


def _icl_seed(spec: ExperimentSpec, lm: LoadedModel, test: pd.DataFrame, pool: pd.DataFrame, seed: int,
              store: ResultStore, progress: bool) -> pd.DataFrame:
    fmt = prompts.get_format(spec.prompt_format, spec.dataset)
    examples = _draw(spec, pool, seed)
    scores, kept = icl.score_with_examples(
        lm, fmt, examples, test, max_length=spec.max_length, progress=progress,
        desc=f"{spec.dataset}/{spec.measure} {spec.train_level} seed {seed}")
    return _result_frame(test, scores, seed, examples.iloc[:kept])


def _probe_seed(spec: ExperimentSpec, lm: LoadedModel, test: pd.DataFrame, pool: pd.DataFrame, seed: int,
                store: ResultStore, progress: bool) -> pd.DataFrame:
    options = spec.method_options()
    train = _draw(spec, pool, seed)
    feats = features.features_for(lm, pd.concat([train, test]), spec.dataset, prompt_format=spec.prompt_format,
                                  layers=options["layers"], cache=features.FeatureCache(store.root),
                                  progress=progress)
    config = ProbeConfig(**{k: options[k] for k in asdict(ProbeConfig())})
    probe = train_probe([feats[i] for i in train["id"]], list(train["label"]), config, seed)
    return _result_frame(test, probe.scores([feats[i] for i in test["id"]]), seed, train)


def _qlora_seed(spec: ExperimentSpec, lm: LoadedModel, test: pd.DataFrame, pool: pd.DataFrame, seed: int,
                store: ResultStore, progress: bool) -> pd.DataFrame:
    options = spec.method_options()
    fmt = prompts.get_format(spec.prompt_format, spec.dataset)
    train = _draw(spec, pool, seed)
    config = QLoRAConfig(**{k: options[k] for k in asdict(QLoRAConfig())})
    keep = options["keep_adapter"]
    scores, losses = train_and_score(lm, _items(lm, fmt, train), list(train["label"]), _items(lm, fmt, test),
                                     config, seed, keep_adapter=None if keep is None else f"{keep}/seed-{seed}",
                                     progress=progress)
    result = _result_frame(test, scores, seed, train)
    result["train_losses"] = [losses] * len(result)
    return result


def _generation_frame(fmt: prompts.CoTFormat, test: pd.DataFrame, texts: list[str], seed: int,
                      train_ids: list[str], rule: str, cut_at_newline: bool) -> pd.DataFrame:
    """Per test item: the generation, the answer read from it and its correctness under the
    spec's rule (``extracted``, ``correct``) and under both named rules (``*_strict``,
    ``*_lenient``), so a notebook can report either."""
    rows = test.to_dict("records")
    gold = [str(r["answer"]) for r in rows]
    out = pd.DataFrame({"item_id": [r["id"] for r in rows], "level": [r["level"] for r in rows], "seed": seed,
                        "generation": texts, "gold": gold})
    for name in answers.RULES:
        extracted = [answers.extract(t, fmt.kind, name, cut_at_newline) for t in texts]
        out[f"extracted_{name}"] = extracted
        out[f"correct_{name}"] = [float(answers.is_correct(e, g, fmt.kind, name)) for e, g in zip(extracted, gold)]
    out.insert(4, "extracted", out[f"extracted_{rule}"])
    out.insert(6, "correct", out[f"correct_{rule}"])
    out["extraction"] = rule
    out["n_shots"] = len(train_ids)
    out["example_ids"] = [list(train_ids)] * len(rows)
    return out


def _stops(fmt: prompts.CoTFormat, rule: str, trained: bool) -> tuple[tuple[str, ...], tuple]:
    """(stop strings, stop patterns) of a generation. Strict (the authors'): in-context learning
    stops once the first "the answer is" has a line break after it (nothing later can change
    the answer) or at the next question; QLoRA generates to end-of-sequence, as theirs (their
    rule reads everything after the trigger there). Lenient: at the example separator."""
    if rule == "strict":
        return ((), ()) if trained else (("\nQ:",), (generation.ANSWER_LINE,))
    return (fmt.separator, "\nQ:"), ()


def _cot_icl_seed(spec: ExperimentSpec, lm: LoadedModel, test: pd.DataFrame, pool: pd.DataFrame, seed: int,
                  store: ResultStore, progress: bool) -> pd.DataFrame:
    fmt = prompts.get_cot_format(spec.prompt_format, spec.dataset)
    options = spec.method_options()
    new_tokens = spec.max_new_tokens()
    rows = test.to_dict("records")
    texts = [fmt.prompt(r) if not spec.zero_shot else fmt.zero_shot_prompt(r, options["baseline"]) for r in rows]
    examples = _draw(spec, pool, seed)
    # room for the longest prompt (with the separator after the examples) plus the generated tokens
    budget = [scoring.ScoringItem(tuple(scoring.encode(lm.tokenizer, icl.question_text(t, fmt, not examples.empty))),
                                  ((0,) * new_tokens,)) for t in texts]
    max_length = spec.max_length or int(getattr(lm.model.config, "max_position_embeddings", 2048))
    prefix_ids, kept = icl.fit_prefix(lm.tokenizer, lm.bos_ids(), examples, fmt, budget, max_length)
    prompt_ids = icl.question_ids(lm.tokenizer, examples.iloc[:kept], fmt, texts)
    stop, patterns = _stops(fmt, options["extraction"], trained=False)
    generated = generation.greedy_generate(
        lm.model, lm.tokenizer, prefix_ids, prompt_ids, max_new_tokens=new_tokens, stop=stop, stop_patterns=patterns,
        batch_size=int(options.get("batch_size") or 8), progress=progress,
        desc=f"{spec.dataset}/{spec.measure} CoT {spec.train_level} seed {seed}")
    return _generation_frame(fmt, test, generated, seed, list(examples["id"].iloc[:kept]), options["extraction"],
                             cut_at_newline=True)


def _cot_qlora_seed(spec: ExperimentSpec, lm: LoadedModel, test: pd.DataFrame, pool: pd.DataFrame, seed: int,
                    store: ResultStore, progress: bool) -> pd.DataFrame:
    fmt = prompts.get_cot_format(spec.prompt_format, spec.dataset)
    options = spec.method_options()
    train = _draw(spec, pool, seed)
    bos, eos = lm.bos_ids(), lm.tokenizer.eos_token_id
    pairs = [(bos + scoring.encode(lm.tokenizer, fmt.prompt(r)), scoring.encode(lm.tokenizer, fmt.target(r)) + [eos])
             for r in train.to_dict("records")]
    prompt_ids = [scoring.encode(lm.tokenizer, fmt.prompt(r)) for r in test.to_dict("records")]
    config = QLoRAConfig(**{k: options[k] for k in asdict(QLoRAConfig())})
    keep = options["keep_adapter"]
    stop, patterns = _stops(fmt, options["extraction"], trained=True)
    texts, losses = train_and_generate(lm, pairs, prompt_ids, config, seed, max_new_tokens=spec.max_new_tokens(),
                                       stop=stop, stop_patterns=patterns,
                                       keep_adapter=None if keep is None else f"{keep}/seed-{seed}", progress=progress)
    result = _generation_frame(fmt, test, texts, seed, list(train["id"]), options["extraction"], cut_at_newline=False)
    result["train_losses"] = [losses] * len(result)
    return result


def _runner(spec: ExperimentSpec):
    """The per-seed function of a spec's method (looked up at call time)."""
    if spec.zero_shot:
        return _cot_icl_seed if spec.method in COT_METHODS else _icl_seed
    return {"icl": _icl_seed, "probe": _probe_seed, "qlora": _qlora_seed,
            "icl_cot": _cot_icl_seed, "qlora_cot": _cot_qlora_seed}[spec.method]


def stored_payload(spec: ExperimentSpec, model_identity: str, frame: pd.DataFrame,
                   source_frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """What a run's stored results are keyed by: the spec's payload and a digest of the data it
    reads (the frame's content and measure column; a train source's rows), so that results are
    never reused for data that has changed since."""
    measure = hardness.get_measure(spec.dataset, spec.measure)
    payload = {**spec.payload(model_identity),
               "data_digest": data.content_digest(frame, [c for c in (measure.column, measure.population) if c])}
    if spec.train_source is not None and not spec.zero_shot and source_frame is not None:
        payload["source_digest"] = data.content_digest(source_frame, [spec.train_source.column])
    return payload


# --- stored keys of an earlier layout ------------------------------------------------------

KEYS_MARKER = ".keys-canonical"  # in results/: its runs are stored under canonical-option keys


def canonical_payload(stored: dict[str, Any]) -> dict[str, Any] | None:
    """The payload a stored run (its ``spec.json``) has under canonical options, or None when the
    run is not an experiment of this module or was computed by other code (another version)."""
    if stored.get("method") not in METHODS or "options" not in stored:
        return None  # zero-shot runs kept their keys
    try:
        test = dict(stored["test"])
        source = stored.get("train_source")
        spec = ExperimentSpec(
            dataset=stored["dataset"], measure=stored["measure"], train_level=stored["train_level"],
            method=stored["method"], n_train=int(stored["n_train"]), model=stored["model"],
            test=TestSelection(**{**test, "levels": tuple(test["levels"])}), prompt_format=stored["prompt_format"],
            max_length=stored["max_length"], options=tuple((k, v) for k, v in stored["options"]),
            label_noise=float(stored.get("label_noise", 0.0)),
            train_source=TrainSource(**source) if source else None)
        payload = spec.payload(stored["model_identity"])
    except (KeyError, TypeError, ValueError):
        return None
    payload.update({k: stored[k] for k in ("data_digest", "source_digest") if k in stored})
    same = json.loads(json.dumps(payload, default=str))
    if {k: v for k, v in same.items() if k != "options"} != {k: v for k, v in stored.items() if k != "options"}:
        return None  # not only the options differ: results of other code, never reused
    return payload


def rekey_stored_runs(store: ResultStore) -> int:
    """Move runs stored under the earlier keys (options as written, execution settings included)
    to their canonical keys, once per results folder; returns how many runs moved. Their seeds
    are reused, not recomputed. Two earlier keys of one run merge (the first seed file wins)."""
    root = store.root
    if (root / KEYS_MARKER).is_file() or not root.is_dir():
        return 0
    import fcntl
    import os
    import shutil

    moved = 0
    with open(root / ".rekey.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one migrating process at a time
        if (root / KEYS_MARKER).is_file():
            return 0
        for spec_file in sorted(root.glob("*/*/*/spec.json")):
            try:
                stored = json.loads(spec_file.read_text())
            except (OSError, ValueError):
                continue
            payload = canonical_payload(stored)
            if payload is None:
                continue
            old, new = spec_file.parent, store.folder(payload)
            if new == old:
                continue
            if not new.exists():
                os.replace(old, new)
            else:
                for seed_file in old.glob("seed-*.parquet"):
                    if not (new / seed_file.name).exists():
                        os.replace(seed_file, new / seed_file.name)
                shutil.rmtree(old, ignore_errors=True)
            atomic.write_text(new / "spec.json", json.dumps(payload, sort_keys=True, indent=1, default=str))
            moved += 1
        atomic.write_text(root / KEYS_MARKER, "runs are keyed by canonical options (experiments.canonical_payload)\n")
    if moved:
        print(f"results: {moved} stored run(s) moved to the keys of their canonical spec (defaults merged, "
              "execution settings left out); nothing is recomputed")
    return moved


def run_experiment(
    spec: ExperimentSpec, lm: LoadedModel, frame: pd.DataFrame, *,
    store: ResultStore | None = None, progress: bool = True, source_frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Item-level results of every seed of ``spec``, reusing stored seeds and storing new ones.

    ``source_frame``: the frame of ``spec.train_source.dataset`` (loaded when not given)."""
    if lm.spec.name != spec.model:
        raise SpecError(f"spec is for model {spec.model!r} but the loaded model is {lm.spec.name!r}")
    if spec.zero_shot and spec.unsupervised().method != spec.method:  # a baseline run by another method
        baseline = run_experiment(spec.unsupervised(), lm, frame, store=store, progress=progress)
        return baseline.assign(method=spec.method, baseline_method=baseline["method"].iloc[0])
    store = store or ResultStore()
    rekey_stored_runs(store)
    measure = hardness.get_measure(spec.dataset, spec.measure)
    payload = stored_payload(spec, lm.identity, frame)
    roles = split_roles(frame, measure, spec.test)
    test = test_items(frame, roles, spec.test)
    if spec.train_source is not None and not spec.zero_shot:
        source = spec.train_source
        if source_frame is None:
            source_frame = frame if source.dataset == spec.dataset else data.load_dataset(source.dataset)
        pool = source.select(source_frame)
        payload = stored_payload(spec, lm.identity, frame, source_frame)
        if source.dataset == spec.dataset:
            pool = pool[~pool["id"].isin(frame.loc[roles["role"] == "test", "id"])]  # every held-out item
        if pool.empty:
            raise SpecError(f"train source {source.label} has no rows")
    else:
        pool = training_pool(frame, roles, spec.train_level)
    if not spec.zero_shot and pool.empty:
        raise SpecError(f"no training items at level {spec.train_level!r} for {measure.key}")
    if not spec.zero_shot and spec.n_train > len(pool):
        where = spec.train_source.label if spec.train_source is not None else f"level {spec.train_level!r} of {measure.key}"
        raise SpecError(
            f"n_train = {spec.n_train} but the training pool of {where} has only {len(pool)} items "
            f"(test_fraction = {spec.test.test_fraction}). Ask for at most {len(pool)} items, or lower "
            "test_fraction to leave more of the level for training; a run never trains on fewer items than "
            "its spec says.")
    parts = []
    for seed in spec.run_seeds:
        stored = store.load(payload, seed)
        if stored is None:
            store.check_writable()  # before minutes of computing, not after
            stored = _runner(spec)(spec, lm, test, pool, seed, store, progress)
            store.save(payload, seed, stored)
        parts.append(stored)
    out = pd.concat(parts, ignore_index=True)
    return out.assign(dataset=spec.dataset, measure=spec.measure, method=spec.method,
                      train_level=spec.train_level, model=spec.model)


# --- reading results ---------------------------------------------------------------------

def correct_matrix(results: pd.DataFrame, level: str | None = "hard",
                   value: str = "correct") -> tuple[np.ndarray, list[str]]:
    """(seeds x items) array of ``value`` on the test items of ``level``, items sorted by id."""
    subset = results if level is None else results[results["level"] == level]
    if subset.empty:
        raise ValueError(f"no test items at level {level!r} in these results")
    table = subset.pivot_table(index="seed", columns="item_id", values=value, aggfunc="first")
    if table.isna().any().any():
        raise ValueError("seeds were scored on different items; cannot pair them")
    table = table.sort_index(axis=1)
    return table.to_numpy(dtype=float), list(table.columns)


def accuracy_by_level(results: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per training condition and test level (averaged over seeds)."""
    keys = [c for c in ("dataset", "measure", "method", "model", "train_level") if c in results.columns]
    return (results.groupby(keys + ["level"], observed=True)["correct"].agg(["mean", "count"])
            .rename(columns={"mean": "accuracy", "count": "n"}).reset_index())


def summarize_conditions(unsupervised: pd.DataFrame, easy: pd.DataFrame, hard: pd.DataFrame, *,
                         level: str = "hard", n_boot: int = 1000, seed: int = 0,
                         value: str = "correct") -> dict[str, Any]:
    """SGR and accuracies with paired-bootstrap CIs on the test items of ``level``.

    ``value``: the correctness column to read (e.g. ``correct_lenient`` for chain of thought
    under the lenient answer rule); a frame without it (an answer-scored baseline) uses ``correct``."""
    arrays, ids = [], None
    for frame in (unsupervised, easy, hard):
        matrix, item_ids = correct_matrix(frame, level, value if value in frame.columns else "correct")
        if ids is not None and item_ids != ids:
            raise ValueError("the three conditions were not scored on the same test items")
        ids = item_ids
        arrays.append(matrix)
    return metrics.summarize_e2h(*arrays, n_boot=n_boot, seed=seed)


def summarize_rules(runs: dict[str, pd.DataFrame], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Chain of thought under both answer rules (``answers.RULES``): one summary row per rule, read
    from the same generations (``runs``: the "none", "easy" and "hard" results of ``run_e2h``)."""
    rows = [{"rule": rule, **summarize_conditions(runs["none"], runs["easy"], runs["hard"], n_boot=n_boot, seed=seed,
                                                  value=f"correct_{rule}")}
            for rule in answers.RULES]
    return pd.DataFrame(rows)


def run_e2h(
    lm: LoadedModel, frame: pd.DataFrame, dataset: str, measure: str, *, n_train: int,
    seeds: Sequence[int], test: TestSelection, method: str = "icl",
    levels: Sequence[str] = ("none", "easy", "hard"), store: ResultStore | None = None,
    options: dict[str, Any] | None = None, progress: bool = True, **spec_fields: Any,
) -> dict[str, pd.DataFrame]:
    """Run the training conditions of one dataset/measure/method; item-level results per condition."""
    out = {}
    for level in tqdm(list(levels), desc=f"{dataset}/{measure}/{method}", disable=not progress):
        spec = ExperimentSpec(dataset=dataset, measure=measure, train_level=level, method=method,
                              n_train=n_train, seeds=tuple(seeds), model=lm.spec.name, test=test,
                              options=tuple((options or {}).items()), **spec_fields)
        out[level] = run_experiment(spec, lm, frame, store=store, progress=progress)
    return out


def accuracy_with_ci(results: pd.DataFrame, *, level: str | None = None, n_boot: int = 1000,
                     seed: int = 0) -> metrics.Estimate:
    """Accuracy over seeds and test items (of ``level``, or all) with a bootstrap 95% CI."""
    matrix, _ = correct_matrix(results, level)
    replicates = metrics.bootstrap_accuracies({"run": matrix}, n_boot=n_boot, seed=seed)["run"]
    return metrics.estimate_from_replicates(float(matrix.mean()), replicates)
