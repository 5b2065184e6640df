"""Model-based hardness (the paper's MDL measures), as the authors compute them.

The authors (``main.py::write_MDL_scores`` and ``postprocess_hardness_scores``,
``run_jobs.py::estimate_hardness``, ``globals.py:57-62``) score an item by the confidence that
*hardness models* give its correct answer, ``mdl = 1 - confidence``, averaged over four 7B
hardness models (Llama-7b, Falcon-7b, Mistral-7B, MPT-7b):

- ``zero_shot`` ("MDL (ZS Prompt)", the MDL of the paper's figures; every multiple-choice
  dataset): the zero-shot probability of the correct answer (``--hardness_method decoding``
  with ``supervision_n = [0]``);
- ``probe`` and ``qlora`` ("MDL (Linear Probe)", "MDL (QLoRA)"; ARC only): learners trained on
  nested random subsets of 5, 20, 80, 340 and 900 items of ARC's 1,000-item MDL hold-out
  (``datasets.mark_arc_population``), one nested draw per seed (5 seeds), each scoring every item
  outside the hold-out; the confidence is averaged over sizes and seeds.

So MDL scores exist for the items outside the hold-out (ARC) or for every item (MMLU-STEM-5,
StrategyQA), and cut at the 30th / 70th percentiles like every percentile measure. GSM8K has no
MDL here (the authors' GSM8K MDL is a generation-based variant left out of their figures; see
the fidelity ledger). The registered measures are ``mdl`` (zero-shot), ``mdl_probe`` and
``mdl_qlora``; ``scores`` computes them for one or several hardness models and ``mdl_scores``
turns the per-item confidences into the frame ``datasets.load_dataset(extra_measures=...)`` takes.

Results are stored per seed like experiment results (``ResultStore``, keyed by the spec and the
model's identity) and reused.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any, Sequence, Union, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from e2h_utils.data import datasets
from e2h_utils.data import hardness, prompts
from e2h_utils.engine import runtime, scoring
from e2h_utils.engine.models import LoadedModel, as_spec
from e2h_utils.engine.scoring import SCORER_VERSION
from e2h_utils.experiments.spec import SpecError
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods import features, icl
from e2h_utils.methods.base import Probe, QLoRA, ZeroShot, build
from e2h_utils.methods.probe import ProbeConfig, train_probe
from e2h_utils.methods.qlora import QLoRAConfig, train_and_score

Learner = Union[ZeroShot, Probe, QLoRA]  # a typed method: none, or trained on each nested subset of the hold-out
LEARNERS = ("zero_shot", "probe", "qlora")  # the names a YAML gives them (``learner``)
TRAINED = ("probe", "qlora")  # learners trained on the MDL hold-out
COLUMNS = {"zero_shot": "mdl", "probe": "mdl_probe", "qlora": "mdl_qlora"}  # measure columns
DEFAULT_SIZES = (5, 20, 80, 340, 900)  # main.py: supervision_n for learned / finetuned hardness
DEFAULT_SEEDS = (0, 1, 2, 3, 4)  # run_jobs.py: --hardness_bootstraps = --num_bootstraps (5)
MC_DATASETS = ("arc", "mmlu_stem5", "strategyqa")
HOLDOUT_DATASETS = ("arc",)  # datasets with the authors' MDL hold-out (datasets.mark_arc_population)
# the authors' hardness models (globals.py:57-62), averaged for every "_avg" MDL measure
PAPER_HARDNESS_MODELS = ("huggyllama/llama-7b", "tiiuae/falcon-7b", "mistralai/Mistral-7B-v0.1", "mosaicml/mpt-7b")


def learner(name: str, *, probe: ProbeConfig | None = None, qlora: QLoRAConfig | None = None,
            n: int = max(DEFAULT_SIZES)) -> Learner:
    """The MDL learner a YAML names, as a typed method: ``zero_shot`` (no training), ``probe`` or
    ``qlora`` with its config, sized by the largest nested subset ``n`` it trains on."""
    if name == "zero_shot":
        return ZeroShot()
    if name == "probe":
        return Probe(n, probe or ProbeConfig())
    if name == "qlora":
        return QLoRA(n, qlora or QLoRAConfig())
    raise SpecError(f"unknown MDL learner {name!r}; valid: {', '.join(LEARNERS)}")


@dataclass(frozen=True)
class MDLSpec:
    dataset: str
    learner: Learner = ZeroShot()  # a name (``LEARNERS``) is made the typed learner with its defaults
    model: str = "embedded"
    subset_sizes: tuple[int, ...] = DEFAULT_SIZES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    max_items: int | None = None  # score a seeded sample of this many items (None: every item)
    max_holdout: int | None = None  # trained learners: a seeded sample of the hold-out (None: all of it)
    sample_seed: int = 0
    prompt_format: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.learner, str):  # the YAML's name, at the boundary
            given = [int(n) for n in self.subset_sizes] if isinstance(self.subset_sizes, (tuple, list)) else []
            object.__setattr__(self, "learner", learner(self.learner, n=max([1, *given])))  # bad sizes: named below
        if self.dataset not in MC_DATASETS:
            raise SpecError(f"MDL is defined for the multiple-choice datasets {', '.join(MC_DATASETS)}, "
                            f"not {self.dataset!r} (GSM8K answers are free-form; see docs/fidelity.md)")
        if not isinstance(self.learner, (ZeroShot, Probe, QLoRA)):
            raise SpecError(f"an MDL learner is ZeroShot(), Probe(n) or QLoRA(n) (or a name: {', '.join(LEARNERS)}), "
                            f"not {self.learner!r}")
        if self.learner.trains and self.dataset not in HOLDOUT_DATASETS:
            raise SpecError(f"the {self.learner.kind!r} MDL learner trains on the authors' MDL hold-out, which only "
                            f"{', '.join(HOLDOUT_DATASETS)} has; {self.dataset} has the zero_shot MDL "
                            "(as in the paper)")
        sizes = tuple(int(n) for n in self.subset_sizes)
        if not sizes or min(sizes) < 1:
            raise SpecError(f"subset_sizes must be positive, not {self.subset_sizes}")
        if not self.seeds:
            raise SpecError("seeds must be non-empty")
        if self.max_items is not None and self.max_items < 2:
            raise SpecError(f"max_items must be at least 2 (or None for every item), not {self.max_items}")
        if self.max_holdout is not None and self.max_holdout < max(sizes):
            raise SpecError(f"max_holdout ({self.max_holdout}) must hold the largest subset size ({max(sizes)})")
        try:
            prompts.get_format(self.prompt_format, self.dataset)
        except KeyError as error:  # unknown prompt format: a spec error, as in ExperimentSpec
            raise SpecError(str(error.args[0])) from error
        object.__setattr__(self, "subset_sizes", tuple(sorted(set(sizes))))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @property
    def name(self) -> str:
        """The learner's name (``LEARNERS``), as results and tables label it."""
        return self.learner.kind

    @property
    def column(self) -> str:
        return COLUMNS[self.name]

    def payload(self, model_identity: str, data_digest: str = "") -> dict:
        spec: dict[str, Any] = {"dataset": self.dataset, "learner": self.name, "max_items": self.max_items,
                                "sample_seed": self.sample_seed,
                                "prompt_format": prompts.get_format(self.prompt_format, self.dataset).name}
        if isinstance(self.learner, (Probe, QLoRA)):
            spec["subset_sizes"] = list(self.subset_sizes)
            spec["max_holdout"] = self.max_holdout
            config = self.learner.config
            spec["config"] = asdict(config) if isinstance(config, ProbeConfig) else config.key_options()
            spec["train_version"] = self.learner.train_version()
        return {**spec, "method": f"mdl_{self.name}", "model_identity": model_identity,
                "scorer_version": SCORER_VERSION, "levels_version": hardness.LEVELS_VERSION, "data_digest": data_digest}


def scored_items(frame: pd.DataFrame, spec: MDLSpec) -> pd.DataFrame:
    """The items that get an MDL score: labelled items (ARC: the annotated ones outside the MDL
    hold-out, the authors' 'probing data'), or a seeded sample of them."""
    items = frame[frame["label"].notna()]
    if spec.dataset in HOLDOUT_DATASETS:
        items = items[items["arc_annotated"].astype(bool) & ~items["mdl_holdout"].astype(bool)]
    items = items.sort_values("id")
    if spec.max_items is not None and len(items) > spec.max_items:
        rng = np.random.default_rng([spec.sample_seed, zlib.crc32(f"mdl-sample/{spec.dataset}".encode())])
        items = items.iloc[np.sort(rng.choice(len(items), size=spec.max_items, replace=False))]
    return items


def holdout_items(frame: pd.DataFrame, spec: MDLSpec | None = None) -> pd.DataFrame:
    """The authors' MDL hold-out (the trained learners' training population), in id order; a
    seeded sample of ``spec.max_holdout`` of it for small profiles."""
    if "mdl_holdout" not in frame.columns:
        raise SpecError("the frame has no 'mdl_holdout' column: "
                        "load it with e2h_utils.data.datasets.load_dataset('arc')")
    items = frame[frame["mdl_holdout"].astype(bool)].sort_values("id")
    if spec is not None and spec.max_holdout is not None and len(items) > spec.max_holdout:
        rng = np.random.default_rng([spec.sample_seed, zlib.crc32(f"mdl-holdout/{spec.dataset}".encode())])
        items = items.iloc[np.sort(rng.choice(len(items), size=spec.max_holdout, replace=False))]
    return items


def nested_subsets(population: pd.DataFrame, sizes: Sequence[int], seed: int, salt: str) -> dict[int, pd.DataFrame]:
    """Subsets of growing size, each containing the smaller ones (the authors'
    ``get_sample_efficiency_subsets``). A size larger than the population is an error."""
    too_large = [int(n) for n in sizes if int(n) > len(population)]
    if too_large:
        raise SpecError(f"MDL subset size(s) {too_large} exceed the {len(population)} items learners can train on")
    rng = np.random.default_rng([int(seed), zlib.crc32(f"mdl-subsets/{salt}".encode())])
    order = population.iloc[rng.permutation(len(population))]
    return {int(n): order.iloc[:int(n)] for n in sorted(set(sizes))}


def _probe_confidences(spec: MDLSpec, subsets: dict[int, pd.DataFrame], scored: pd.DataFrame,
                       feats: dict[str, np.ndarray], seed: int) -> dict[int, list[float]]:
    config = cast(Probe, spec.learner).config
    out = {}
    for n, subset in subsets.items():
        probe = train_probe([feats[i] for i in subset["id"]], list(subset["label"].astype(int)), config, seed)
        scores = probe.scores([feats[i] for i in scored["id"]])
        out[n] = list(scoring.predictions(scores, list(scored["label"]))["p_correct"])
    return out


def _qlora_confidences(lm: LoadedModel, spec: MDLSpec, subsets: dict[int, pd.DataFrame], scored: pd.DataFrame,
                       seed: int, progress: bool) -> dict[int, list[float]]:
    fmt = prompts.get_format(spec.prompt_format, spec.dataset)
    config = cast(QLoRA, spec.learner).config

    def items(rows: pd.DataFrame) -> list[scoring.ScoringItem]:
        return [scoring.make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in rows.to_dict("records")]

    test = items(scored)
    out = {}
    for n, subset in subsets.items():
        scores, _ = train_and_score(lm, items(subset), list(subset["label"].astype(int)), test, config, seed,
                                    progress=progress, micro_batch=lm.settings.micro_batch)
        out[n] = list(scoring.predictions(scores, list(scored["label"]))["p_correct"])
    return out


def _trained_seed(lm: LoadedModel, spec: MDLSpec, frame: pd.DataFrame, scored: pd.DataFrame, seed: int,
                  progress: bool, cache: features.FeatureCache) -> pd.DataFrame:
    population = holdout_items(frame, spec)
    subsets = nested_subsets(population, spec.subset_sizes, seed, spec.dataset)
    if isinstance(spec.learner, Probe):
        feats = features.features_for(lm, pd.concat([population, scored]), spec.dataset,
                                      prompt_format=spec.prompt_format, cache=cache, progress=progress)
        confidences = _probe_confidences(spec, subsets, scored, feats, seed)
    else:
        confidences = _qlora_confidences(lm, spec, subsets, scored, seed, progress)
    return pd.concat([pd.DataFrame({"item_id": list(scored["id"]), "seed": seed, "size": n, "p_correct": values})
                      for n, values in confidences.items()], ignore_index=True)


def trained_payload(model_identity: str, frame: pd.DataFrame, spec: MDLSpec) -> dict:
    """What a trained learner's confidences are stored under (no model needed: plans read it)."""
    return spec.payload(model_identity, datasets.content_digest(frame, ("arc_annotated", "mdl_holdout")))


# --- zero-shot scores of given items (the zero-shot MDL learner, and accuracy by level) -----------

def zero_shot_payload(model_identity: str, items: pd.DataFrame, dataset: str,
                      prompt_format: str | None = None) -> dict:
    """What ``zero_shot_items`` stores its results under (no model needed: plans read it)."""
    return {"dataset": dataset, "method": "zero_shot_items",
            "prompt_format": prompts.get_format(prompt_format, dataset).name,
            "items": datasets.content_digest(items), "n_items": int(items["id"].nunique()),
            "model_identity": model_identity, "scorer_version": SCORER_VERSION}


def zero_shot_items(lm: LoadedModel, items: pd.DataFrame, dataset: str, *, prompt_format: str | None = None,
                    store: ResultStore | None = None, progress: bool = True) -> pd.DataFrame:
    """Zero-shot ``correct`` and ``p_correct`` of every item (by ``item_id``), stored and reused."""
    store = store or ResultStore()
    fmt = prompts.get_format(prompt_format, dataset)

    def compute() -> pd.DataFrame:
        rows = items.sort_values("id")
        scores, _ = icl.score_with_examples(lm, fmt, rows.iloc[:0], rows, progress=progress,
                                            desc=f"{dataset} zero-shot")
        out = scoring.predictions(scores, list(rows["label"].astype(int)))
        out.insert(0, "item_id", list(rows["id"]))
        return out

    return store.get_or_compute(zero_shot_payload(lm.identity, items, dataset, prompt_format), 0, compute)[0]


def _confidence_frame(zero: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"item_id": zero["item_id"], "seed": 0, "size": 0, "p_correct": zero["p_correct"]})


def stored_confidences(model_identity: str, frame: pd.DataFrame, spec: MDLSpec,
                       store: ResultStore | None = None) -> pd.DataFrame | None:
    """``run_mdl``'s table from stored results alone (None when any part is missing): a plan and
    a cluster job read MDL levels without loading the hardness models."""
    store = store or ResultStore()
    scored = scored_items(frame, spec)
    if not spec.learner.trains:
        zero = store.load(zero_shot_payload(model_identity, scored, spec.dataset, spec.prompt_format), 0)
        out = None if zero is None else _confidence_frame(zero)
    else:
        payload = trained_payload(model_identity, frame, spec)
        parts = [store.load(payload, seed) for seed in spec.seeds]
        out = None if any(p is None for p in parts) else pd.concat(parts, ignore_index=True)
    return None if out is None else out.assign(learner=spec.name, model=spec.model)


def run_mdl(lm: LoadedModel, frame: pd.DataFrame, spec: MDLSpec, *, store: ResultStore | None = None,
            progress: bool = True) -> pd.DataFrame:
    """Per (item, seed, subset size): the learner's probability of the correct answer, with the
    ``learner`` and the hardness ``model``. Zero-shot has one seed and size 0."""
    if lm.spec.name != spec.model:
        raise SpecError(f"MDL spec is for model {spec.model!r} but the loaded model is {lm.spec.name!r}")
    store = store or ResultStore()
    scored = scored_items(frame, spec)
    if not spec.learner.trains:
        out = _confidence_frame(zero_shot_items(lm, scored, spec.dataset, prompt_format=spec.prompt_format,
                                                store=store, progress=progress))
    else:
        payload = trained_payload(lm.identity, frame, spec)
        cache = features.FeatureCache(store.root)
        # the ignore: mypy cannot infer a lambda that binds ``seed`` through a default argument
        parts = [store.get_or_compute(payload, seed,
                                      lambda seed=seed: _trained_seed(lm, spec, frame, scored, seed,  # type: ignore[misc]
                                                                      progress, cache))[0]
                 for seed in tqdm(spec.seeds, desc=f"MDL {spec.dataset} {spec.name}", disable=not progress,
                                  leave=False)]
        out = pd.concat(parts, ignore_index=True)
    return out.assign(learner=spec.name, model=spec.model)


def mdl_scores(confidences: pd.DataFrame) -> pd.DataFrame:
    """One row per item (``id``) and one column per learner present (``mdl``, ``mdl_probe``,
    ``mdl_qlora``): 1 - the mean confidence over seeds and sizes, averaged over the hardness
    models (the authors' ``_avg`` measures). Items a learner did not score have no value."""
    per_model = (confidences.groupby(["item_id", "learner", "model"])["p_correct"].mean()
                 .groupby(["item_id", "learner"]).mean().unstack("learner"))
    out = pd.DataFrame({"id": per_model.index.astype(str)})
    for learner in per_model.columns:
        out[COLUMNS[learner]] = 1.0 - per_model[learner].to_numpy()
    return out.reset_index(drop=True)


def scores_by_dataset(confidences: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """dataset -> ``mdl_scores`` of its items (empty when nothing was scored)."""
    return {dataset: mdl_scores(part) for dataset, part in confidences.groupby("dataset", sort=False)}


def scores_table(scored: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every dataset's ``mdl_scores`` in one table, with a ``dataset`` column (what the notebook stores)."""
    return pd.concat([scores.assign(dataset=dataset) for dataset, scores in scored.items()])


def specs_for(model: str, learners: dict[str, Sequence[str]], *, max_items: dict[str, int | None] | None = None,
              max_holdout: int | None = None, subset_sizes: Sequence[int] = DEFAULT_SIZES,
              seeds: Sequence[int] = DEFAULT_SEEDS, probe: ProbeConfig | None = None,
              qlora: QLoRAConfig | None = None) -> list[MDLSpec]:
    """The MDL specs of one hardness model (pure: a plan lists them without a model); ``learners``
    names them (``LEARNERS``), made typed learners here with ``probe`` and ``qlora``."""
    largest = max(subset_sizes)
    return [MDLSpec(dataset, learner(name, probe=probe, qlora=qlora, n=largest), model=model,
                    subset_sizes=tuple(subset_sizes), seeds=tuple(seeds), max_items=(max_items or {}).get(dataset),
                    max_holdout=max_holdout if name in TRAINED else None)
            for dataset, names in learners.items() for name in names]


@dataclass(frozen=True)
class MDLSettings:
    """A notebook's MDL settings: hardness models (averaged), learners per dataset, the items
    scored, the nested subset sizes and seeds of the trained learners, the hold-out sample and
    the hardness models' precision. The QLoRA learner trains each hardness model at the precision
    it is loaded with, as the authors do (``run_jobs.py:302``: ``model_to_quantization_finetuned``,
    the same as for decoding for their four hardness models: Llama-7b and Mistral-7B 8-bit, Falcon-7b
    and MPT-7b unquantized, ``run_jobs.py:120-151``)."""

    hardness_models: tuple[str, ...] = ()
    learners: tuple[tuple[str, tuple[str, ...]], ...] = ()
    max_items: tuple[tuple[str, int | None], ...] = ()
    subset_sizes: tuple[int, ...] = DEFAULT_SIZES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    max_holdout: int | None = None
    quantization: str = "none"
    dtype: str = "auto"
    # learner -> its options (``mdl_learner_options``: probe / QLoRA options; none: the authors' defaults)
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def learner_config(self, name: str, **fixed: Any) -> Any:
        """The typed config of a trained learner (``probe`` or ``qlora``): its options, then ``fixed``."""
        return cast(Any, build(name, 1, {**dict(dict(self.options).get(name, ())), **fixed})).config

    def table(self) -> pd.DataFrame:
        """Every MDL run, one row each (hardness model, dataset, learner, items scored, subset sizes,
        seeds), before anything runs."""
        rows = [{"model": model, "dataset": spec.dataset, "learner": spec.name,
                 "items scored": spec.max_items or "all",
                 "subset sizes": ", ".join(map(str, spec.subset_sizes)) if spec.learner.trains else "-",
                 "seeds": len(spec.seeds) if spec.learner.trains else 1}
                for model in self.hardness_models for spec in self.specs(model)]
        return pd.DataFrame(rows, columns=["model", "dataset", "learner", "items scored", "subset sizes", "seeds"])

    def specs(self, model: str) -> list[MDLSpec]:
        quantization = as_spec(model, quantization=self.quantization).resolved_quantization
        return specs_for(model, {d: list(names) for d, names in self.learners}, max_items=dict(self.max_items),
                         max_holdout=self.max_holdout, subset_sizes=self.subset_sizes, seeds=self.seeds,
                         probe=self.learner_config("probe"),
                         qlora=self.learner_config("qlora", quantization=quantization))


def run_for_models(settings: MDLSettings, frames: dict[str, pd.DataFrame], *, run_settings: runtime.RunSettings,
                   store: ResultStore | None = None, progress: bool = True) -> pd.DataFrame:
    """Confidences of every (hardness model, dataset, learner), one model loaded at a time (placed by
    ``run_settings``);
    the long table of ``run_mdl`` with a ``dataset`` column. Stored results are reused, and a
    model whose results are all stored (e.g. by cluster jobs) is not loaded at all."""
    import gc

    from e2h_utils.engine.models import load_model, model_identity

    parts = []
    for name in settings.hardness_models:
        specs = settings.specs(name)
        identity = model_identity(as_spec(name, dtype=settings.dtype, quantization=settings.quantization))
        stored = [stored_confidences(identity, frames[spec.dataset], spec, store) for spec in specs]
        if all(part is not None for part in stored):
            parts += [cast(pd.DataFrame, part).assign(dataset=spec.dataset) for spec, part in zip(specs, stored)]
            continue
        lm = load_model(name, run_settings, dtype=settings.dtype, quantization=settings.quantization)
        for spec in specs:
            parts.append(run_mdl(lm, frames[spec.dataset], spec, store=store, progress=progress)
                         .assign(dataset=spec.dataset))
        del lm
        gc.collect()
    if not parts:
        return pd.DataFrame(columns=["item_id", "seed", "size", "p_correct", "learner", "model", "dataset"])
    return pd.concat(parts, ignore_index=True)


def frames_with_mdl(frames: dict[str, pd.DataFrame], confidences: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The frames again, with the MDL columns of ``confidences`` merged in and their levels."""
    out = dict(frames)
    for dataset, part in confidences.groupby("dataset", sort=False):
        # the MDL columns and every measure's level column (tidy adds them again); a value column
        # that happens to end in "_level" (MMLU's school_level) is data and stays
        derived = set(COLUMNS.values()) | {m.level_column for m in hardness.measures(dataset)}
        drop = [c for c in frames[dataset].columns if c in derived]
        out[dataset] = datasets.tidy(frames[dataset].drop(columns=drop), dataset, extra_measures=mdl_scores(part))
    return out
