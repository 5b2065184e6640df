"""Model-based hardness (the paper's MDL measure): how hard an item is for learners trained on
growing amounts of other data.

For every scored item, learners are trained on nested random subsets (5, 20, 80, 340, 900
items by default) of a *held-out* part of the dataset, and the probability each gives the
item's correct answer is recorded. Averaged over subset sizes and seeds, that is the item's
confidence; ``mdl = 1 - confidence`` (higher is harder), cut at the 30th / 70th percentiles
like every percentile measure in ``hardness``.

Held-out: the scored items are cut into ``n_folds`` folds; the items of one fold are scored
by learners trained on subsets of the other folds only. Learners:

- ``probe``: a linear probe on the cached hidden states (``features``), ``n`` training items;
- ``icl``: in-context learning with ``min(n, max_shots)`` examples drawn from the subset of
  size ``n`` (the context holds only a few examples, so larger subsets widen the draw).

MDL is defined for the multiple-choice datasets (ARC, MMLU-STEM-5, StrategyQA); GSM8K has
free-form answers and no choice to be confident in.

Results are stored per seed like experiment results (``ResultStore``, keyed by the full
spec and the model's identity) and reused on rerun.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import features, icl, prompts, scoring
from .experiments import SCORER_VERSION, SpecError
from .models import LoadedModel
from .probe import ProbeConfig, train_probe
from .results import ResultStore

LEARNERS = ("probe", "icl")
DEFAULT_SIZES = (5, 20, 80, 340, 900)
MC_DATASETS = ("arc", "mmlu_stem5", "strategyqa")


@dataclass(frozen=True)
class MDLSpec:
    dataset: str
    learner: str = "probe"
    subset_sizes: tuple[int, ...] = DEFAULT_SIZES
    seeds: tuple[int, ...] = (0,)
    n_folds: int = 2
    max_items: int | None = None  # score a seeded sample of this many items (None: every item)
    sample_seed: int = 0
    max_shots: int = 10  # icl: examples in the prompt
    probe_epochs: int = 100  # probe: training epochs (ProbeConfig.epochs)
    model: str = "embedded"
    prompt_format: str | None = None

    def __post_init__(self) -> None:
        if self.dataset not in MC_DATASETS:
            raise SpecError(f"MDL is defined for the multiple-choice datasets {', '.join(MC_DATASETS)}, "
                            f"not {self.dataset!r} (GSM8K answers are free-form)")
        if self.learner not in LEARNERS:
            raise SpecError(f"unknown MDL learner {self.learner!r}; valid: {', '.join(LEARNERS)}")
        sizes = tuple(int(n) for n in self.subset_sizes)
        if not sizes or min(sizes) < 1:
            raise SpecError(f"subset_sizes must be positive, not {self.subset_sizes}")
        if self.n_folds < 2:
            raise SpecError("n_folds must be at least 2 (items are scored by learners trained on other folds)")
        if not self.seeds:
            raise SpecError("seeds must be non-empty")
        if self.max_items is not None and self.max_items < 2 * self.n_folds:
            raise SpecError(f"max_items must be at least {2 * self.n_folds} (or None for every item)")
        try:
            prompts.get_format(self.prompt_format, self.dataset)
        except KeyError as error:  # unknown prompt format: a spec error, as in ExperimentSpec
            raise SpecError(str(error.args[0])) from error
        object.__setattr__(self, "subset_sizes", tuple(sorted(set(sizes))))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    def payload(self, model_identity: str) -> dict:
        spec = asdict(self)
        spec.pop("seeds")
        if self.learner != "icl":
            spec.pop("max_shots")
        if self.learner != "probe":
            spec.pop("probe_epochs")
        return {**spec, "method": f"mdl_{self.learner}", "model_identity": model_identity,
                "scorer_version": SCORER_VERSION}


def scored_items(frame: pd.DataFrame, spec: MDLSpec) -> pd.DataFrame:
    """The items that get an MDL score: those with a label, or a seeded sample of them."""
    items = frame[frame["label"].notna()].sort_values("id")
    if spec.max_items is not None and len(items) > spec.max_items:
        rng = np.random.default_rng([spec.sample_seed, zlib.crc32(f"mdl-sample/{spec.dataset}".encode())])
        items = items.iloc[np.sort(rng.choice(len(items), size=spec.max_items, replace=False))]
    return items


def folds(items: pd.DataFrame, spec: MDLSpec) -> np.ndarray:
    """Fold number of every item (a seeded, balanced assignment)."""
    rng = np.random.default_rng([spec.sample_seed, zlib.crc32(f"mdl-folds/{spec.dataset}".encode())])
    return rng.permutation(np.arange(len(items)) % spec.n_folds)


def nested_subsets(population: pd.DataFrame, sizes: Sequence[int], seed: int, salt: str) -> dict[int, pd.DataFrame]:
    """Subsets of growing size, each containing the smaller ones (sizes capped at the population)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(f"mdl-subsets/{salt}".encode())])
    order = population.iloc[rng.permutation(len(population))]
    capped = sorted({min(int(n), len(order)) for n in sizes})
    return {n: order.iloc[:n] for n in capped if n > 0}


def _probe_confidences(spec: MDLSpec, subsets: dict[int, pd.DataFrame], scored: pd.DataFrame,
                       feats: dict[str, np.ndarray], seed: int) -> dict[int, list[float]]:
    config = ProbeConfig(epochs=spec.probe_epochs)
    out = {}
    for n, subset in subsets.items():
        probe = train_probe([feats[i] for i in subset["id"]], list(subset["label"].astype(int)), config, seed)
        scores = probe.scores([feats[i] for i in scored["id"]])
        out[n] = list(scoring.predictions(scores, list(scored["label"]))["p_correct"])
    return out


def _icl_confidences(lm: LoadedModel, spec: MDLSpec, subsets: dict[int, pd.DataFrame], scored: pd.DataFrame,
                     seed: int, salt: str, progress: bool) -> dict[int, list[float]]:
    fmt = prompts.get_format(spec.prompt_format, spec.dataset)
    out = {}
    for n, subset in subsets.items():
        examples = icl.draw_examples(subset, min(n, spec.max_shots), seed, salt=f"mdl/{salt}/{n}")
        scores, _ = icl.score_with_examples(lm, fmt, examples, scored, progress=progress,
                                            desc=f"MDL {spec.dataset} icl n={n}")
        out[n] = list(scoring.predictions(scores, list(scored["label"]))["p_correct"])
    return out


def _run_seed(lm: LoadedModel, spec: MDLSpec, items: pd.DataFrame, fold_of: np.ndarray, seed: int,
              progress: bool, cache: features.FeatureCache | None = None) -> pd.DataFrame:
    feats = None
    if spec.learner == "probe":
        feats = features.features_for(lm, items, spec.dataset, prompt_format=spec.prompt_format, cache=cache,
                                      progress=progress)
    parts = []
    for fold in tqdm(range(spec.n_folds), desc=f"MDL {spec.dataset} {spec.learner} seed {seed}",
                     disable=not progress, leave=False):
        scored, population = items[fold_of == fold], items[fold_of != fold]
        subsets = nested_subsets(population, spec.subset_sizes, seed, f"{spec.dataset}/{fold}")
        if spec.learner == "probe":
            confidences = _probe_confidences(spec, subsets, scored, feats, seed)
        else:
            confidences = _icl_confidences(lm, spec, subsets, scored, seed, f"{spec.dataset}/{fold}", progress)
        for n, values in confidences.items():
            parts.append(pd.DataFrame({"item_id": list(scored["id"]), "fold": fold, "seed": seed, "size": n,
                                       "p_correct": values}))
    return pd.concat(parts, ignore_index=True)


def run_mdl(lm: LoadedModel, frame: pd.DataFrame, spec: MDLSpec, *, store: ResultStore | None = None,
            progress: bool = True) -> pd.DataFrame:
    """Per (item, seed, subset size): the learner's probability of the correct answer."""
    if lm.spec.name != spec.model:
        raise SpecError(f"MDL spec is for model {spec.model!r} but the loaded model is {lm.spec.name!r}")
    store = store or ResultStore()
    payload = spec.payload(lm.identity)
    items = scored_items(frame, spec)
    fold_of = folds(items, spec)
    parts = []
    for seed in spec.seeds:
        stored = store.load(payload, seed)
        if stored is None:
            stored = _run_seed(lm, spec, items, fold_of, seed, progress, features.FeatureCache(store.root))
            store.save(payload, seed, stored)
        parts.append(stored)
    return pd.concat(parts, ignore_index=True).assign(learner=spec.learner)


def mdl_scores(confidences: pd.DataFrame) -> pd.DataFrame:
    """One row per item: ``mdl_<learner>`` = 1 - mean confidence over sizes and seeds for each
    learner present, and ``mdl`` = their mean (the registered ``mdl`` measure's column)."""
    per_learner = (confidences.groupby(["item_id", "learner"])["p_correct"].mean().unstack("learner"))
    out = pd.DataFrame({"id": per_learner.index.astype(str)})
    for learner in per_learner.columns:
        out[f"mdl_{learner}"] = 1.0 - per_learner[learner].to_numpy()
    out["mdl"] = out[[f"mdl_{c}" for c in per_learner.columns]].mean(axis=1, skipna=True)
    return out.reset_index(drop=True)
