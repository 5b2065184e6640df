"""The runner: one object that runs any list of experiment specs on one model and returns their
item-level results, reusing every stored seed and storing every new one.

    runner = Runner(lm)                      # the model, the result store, the run settings
    results = runner.run_all(plan.specs)     # {spec: item-level results of every seed}

For each spec: the split (``experiments.split``) gives the test items and the training pool; each
seed draws its training examples from the pool (label noise applied after the draw, so every
noise rate sees the same examples) and the method's runner (``methods.runners.RUNNERS``) computes
the seed; the result store keeps it under the spec's key (``experiments.spec.key_payload``). A run
never trains on fewer items than its method says: a pool smaller than that is an error naming the
pool. ``timings`` records, per spec, the seconds spent and whether anything was computed (the
notebooks' provenance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Generic, Hashable, Iterable, Mapping, TypeVar

import pandas as pd
from tqdm.auto import tqdm

from e2h_utils.data import datasets, hardness
from e2h_utils.engine import runtime
from e2h_utils.engine.models import LoadedModel
from e2h_utils.experiments import split
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, key_payload
from e2h_utils.experiments.store import ResultStore, spec_key
from e2h_utils.methods import icl, noise
from e2h_utils.methods.base import SeedJob
from e2h_utils.methods.runners import runner_for


def draw_salt(spec: ExperimentSpec) -> str:
    """What makes one spec's draws independent of another's (the training level or source, and
    the method unless it is ICL), so that easy and hard runs draw differently."""
    suffix = spec.method.draw_salt()
    if spec.train_source is not None:
        return f"{spec.dataset}/source/{spec.train_source.label}{suffix}"
    return f"{spec.dataset}/{spec.measure}/{spec.train_level}{suffix}"


def draw(spec: ExperimentSpec, pool: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The training examples of one seed (label noise applied after the draw, so every noise
    rate sees the same examples)."""
    if not spec.method.trains:
        return pool.iloc[:0]
    salt = draw_salt(spec)
    drawn = icl.draw_examples(pool, spec.method.size, seed, salt=salt)
    if spec.label_noise and not drawn.empty:
        drawn = noise.corrupt_labels(drawn, spec.label_noise, seed, salt=salt)
    return drawn


def in_test_order(scored: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """A seed's item results (one part per fold under cross-fitting) in the order of its test items."""
    rank = pd.Series(range(len(test)), index=test["id"].to_numpy())
    return scored.iloc[rank.loc[scored["item_id"]].to_numpy().argsort(kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class Timing:
    """One run's wall time, and how much of it was computed now rather than read from the store."""

    label: str  # what ran
    seconds: float
    computed: int  # seeds (or sample sets) computed now (0: every one was stored)


SpecT = TypeVar("SpecT", bound=Hashable)


class ModelRunner(Generic[SpecT]):
    """What every runner of one loaded model shares: the result store, the run settings, the dataset
    frames (each loaded once), progress bars and timings; ``run_all`` checks every spec, then runs
    each once. A runner gives ``check`` (stop before anything runs) and ``run`` (one spec's results)."""

    computed_column = "computed"  # the timing table's name for what was computed now

    def __init__(self, lm: LoadedModel, *, store: ResultStore | None = None,
                 settings: runtime.RunSettings | None = None, frames: Mapping[str, pd.DataFrame] | None = None,
                 progress: bool = True) -> None:
        self.lm = lm
        self.store = store or ResultStore()
        self.settings = settings or lm.settings  # by default the settings the model was placed with
        self.frames = dict(frames or {})  # read, never changed: their digests are remembered
        self.digests = datasets.Digests()
        self.progress = progress
        self.timings: list[Timing] = []
        self.runs_name = "runs"  # run_all's progress bar

    def frame(self, dataset: str) -> pd.DataFrame:
        if dataset not in self.frames:
            self.frames[dataset] = datasets.load_dataset(dataset)
        return self.frames[dataset]

    def frames_of(self, datasets: Iterable[str]) -> dict[str, pd.DataFrame]:
        """dataset -> ``frame(dataset)``, for each dataset named."""
        return {dataset: self.frame(dataset) for dataset in dict.fromkeys(datasets)}

    def check(self, specs: Iterable[SpecT]) -> None:
        raise NotImplementedError

    def run(self, spec: SpecT) -> pd.DataFrame:
        raise NotImplementedError

    def run_all(self, specs: Iterable[SpecT], desc: str | None = None) -> dict[SpecT, pd.DataFrame]:
        """Every spec's results (each spec once, in order), after checking that every one of them
        can run (``check``)."""
        unique = list(dict.fromkeys(specs))
        self.check(unique)
        desc = desc or self.runs_name
        return {spec: self.run(spec) for spec in tqdm(unique, desc=desc, disable=not self.progress or len(unique) < 2)}

    def timing_table(self) -> pd.DataFrame:
        """Seconds per run so far, and how much was computed now (not read from the store)."""
        return pd.DataFrame([{"run": t.label, "seconds": round(t.seconds, 1), self.computed_column: t.computed}
                             for t in self.timings], columns=["run", "seconds", self.computed_column])


class Runner(ModelRunner[ExperimentSpec]):
    """Runs experiment specs on one loaded model.

    ``frames``: dataset frames to read (e.g. with MDL columns merged in); a dataset not given is
    loaded once with ``data.load_dataset``. ``settings``: how runs execute (micro-batches,
    generation batches, adapters: ``engine.runtime.RunSettings``; default: this process's)."""

    computed_column = "seeds computed"

    def __init__(self, lm: LoadedModel, *, store: ResultStore | None = None,
                 settings: runtime.RunSettings | None = None, frames: Mapping[str, pd.DataFrame] | None = None,
                 progress: bool = True) -> None:
        super().__init__(lm, store=store, settings=settings, frames=frames, progress=progress)
        self.store.rekey()

    def _source_frame(self, spec: ExperimentSpec, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The frame a spec's ``train_source`` draws from (None: it trains on its own levels)."""
        source = spec.train_source
        if source is None:
            return None
        return frame if source.dataset == spec.dataset else self.frame(source.dataset)

    def _folds(self, spec: ExperimentSpec, frame: pd.DataFrame, roles: pd.DataFrame,
               test: pd.DataFrame) -> list[split.Fold]:
        """``split.folds`` of a spec, after checking that every fold's pool holds what the method
        trains on (a run never trains on fewer items than its spec says)."""
        source_frame = self._source_frame(spec, frame)
        if spec.method.trains:
            for k in range(spec.test.folds):
                pool, where = split.spec_pool(spec, frame, roles, k, source_frame)
                if pool.empty:
                    raise SpecError(f"no training items in {where}")
                if spec.method.size > len(pool):
                    raise SpecError(
                        f"{spec.method.kind} needs {spec.method.size} training items but the pool of {where} has "
                        f"only {len(pool)} (test_fraction = {spec.test.test_fraction}). Ask for at most {len(pool)} "
                        "items, or lower test_fraction to leave more of the level for training; a run never trains "
                        "on fewer items than its spec says.")
        return split.folds(spec, frame, roles, test, source_frame)

    def payload(self, spec: ExperimentSpec) -> dict:
        """The key payload of a spec's stored results on this model and data."""
        frame = self.frame(spec.dataset)
        return key_payload(spec, self.lm.identity, frame, self._source_frame(spec, frame), self.digests)

    def run(self, spec: ExperimentSpec) -> pd.DataFrame:
        """Item-level results of every seed of ``spec`` (``item_id``, ``level``, ``seed``, the
        method's columns, and ``level_offers``: the test items the item's level offers before any cap,
        ``split.offered``), reusing stored seeds and storing new ones."""
        if self.lm.spec.name != spec.model:
            raise SpecError(f"spec is for model {spec.model!r} but the loaded model is {self.lm.spec.name!r}")
        started = time.perf_counter()
        frame = self.frame(spec.dataset)
        roles = split.split_roles(frame, hardness.get_measure(spec.dataset, spec.measure), spec.test)
        test = split.test_items(frame, roles, spec.test)
        folds = self._folds(spec, frame, roles, test)
        payload = self.payload(spec)
        run_seed = runner_for(spec.method)
        label = f"{spec.dataset}/{spec.measure} {spec.train_level}"
        parts, computed = [], 0
        for seed in spec.run_seeds:
            def compute(seed: int = seed) -> pd.DataFrame:
                scored = [run_seed(spec.method, SeedJob(
                    lm=self.lm, dataset=spec.dataset, test=fold.test, train=draw(spec, fold.pool, seed), seed=seed,
                    prompt_format=spec.prompt_format, max_length=spec.max_length, features_root=self.store.root,
                    settings=self.settings, progress=self.progress,
                    key=spec_key(payload) if len(folds) == 1 else f"{spec_key(payload)}/fold-{fold.index}",  # kept
                    label=label if len(folds) == 1 else f"{label} fold {fold.index + 1}/{spec.test.folds}"))
                    for fold in folds]
                return in_test_order(pd.concat(scored, ignore_index=True), test)

            result, new = self.store.get_or_compute(payload, seed, compute)
            computed += int(new)
            parts.append(result)
        self.timings.append(Timing(spec.describe(), time.perf_counter() - started, computed))
        out = pd.concat(parts, ignore_index=True)
        return out.assign(dataset=spec.dataset, measure=spec.measure, method=spec.method.kind,
                          train_level=spec.train_level, model=spec.model,
                          level_offers=out["level"].map(split.offered(roles)).astype("Int64"))

    def check(self, specs: Iterable[ExperimentSpec]) -> None:
        """Stop before any run when a spec cannot run: a training size larger than its pool, an
        empty pool, a model other than the loaded one. Every problem is named at once."""
        problems = []
        for spec in dict.fromkeys(specs):
            try:
                if self.lm.spec.name != spec.model:
                    raise SpecError(f"spec is for model {spec.model!r} but the loaded model is {self.lm.spec.name!r}")
                if spec.method.trains:
                    frame = self.frame(spec.dataset)
                    roles = split.split_roles(frame, hardness.get_measure(spec.dataset, spec.measure), spec.test)
                    self._folds(spec, frame, roles, split.test_items(frame, roles, spec.test))
            except SpecError as error:
                problems.append(f"- {spec.describe()}: {error}")
        if problems:
            raise SpecError("these runs cannot run as specified (nothing was run):\n" + "\n".join(problems))
