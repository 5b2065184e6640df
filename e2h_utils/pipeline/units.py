"""The units of work a plan lists, and the one protocol they share.

Every kind of work that stores results is a ``Unit``: an experiment (``Experiment``: an
``ExperimentSpec``), an MDL run (``MDL``), the zero-shot scores of MDL's items (``ZeroShotItems``),
a sample set of the evaluators' generator (``SampleSet``) and an evaluator (``Evaluator``). A unit
owns what it costs (``work``), whether it trains weights (``updates_weights``: the plan's memory
check) and how it runs with a loaded model (``execute``). A plan lists ``PlannedRun``s, each
holding its unit; ``plan`` costs them and ``cluster`` runs them through this protocol only, so a
new kind of work is one class here (the test suite adds a toy one in its own file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, Sequence, cast

import numpy as np
import pandas as pd

from e2h_utils.data import hardness
from e2h_utils.experiments import mdl, split
from e2h_utils.experiments.runner import draw
from e2h_utils.experiments.spec import ExperimentSpec
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods.base import CoT, Probe, QLoRA, ZeroShot, kinds
from e2h_utils.methods.qlora import schedule
from e2h_utils.pipeline.cost import Context, Work, scoring

if TYPE_CHECKING:
    from e2h_utils.engine.models import LoadedModel
    from e2h_utils.experiments.evaluation import Candidates, EvaluatorSpec

PHASES = (1, 2, 3)  # 1: MDL (other runs' levels depend on it), 2: the rest, 3: evaluators (they read 2's samples)


class Unit(Protocol):
    """A kind of work: its name in tables, whether its label shows the training level, its cost,
    whether it trains weights, how it runs."""

    kind: ClassVar[str]
    shows_level: ClassVar[bool]

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        """The tokens ``run`` processes for ``seeds`` (``frame``: its dataset's frame)."""
        ...

    def updates_weights(self) -> bool:
        """Whether it trains the model's weights (adapters): the plan checks training memory."""
        ...

    def execute(self, run: PlannedRun, lm: LoadedModel, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        """Compute (or reuse) ``run``'s results with ``lm``, exactly as its notebook would."""
        ...


@dataclass(frozen=True)
class PlannedRun:
    """One unit of work for ``model``: the seeds it computes, the items it scores and its key."""

    notebook: str
    unit: Unit = field(compare=False, repr=False)
    model: str
    dtype: str
    quantization: str  # as the notebook asks ("auto": the model's default)
    dataset: str
    method: str
    measure: str
    train_level: str
    n_train: int
    seeds: tuple[int, ...]
    test_items: int
    item_ids: tuple[str, ...] = field(default=(), compare=False, repr=False)  # the items it scores
    item_levels: tuple[str, ...] = field(default=(), compare=False, repr=False)  # each item's level (experiments)
    frame: Any = field(default=None, compare=False, repr=False)  # the frame it reads (with MDL columns)
    key: str | None = None  # None: keyed by MDL results not yet stored (pending)
    cached: tuple[int, ...] = ()  # seeds already in the store
    shared_with: tuple[str, ...] = ()  # other notebooks that list the same run
    phase: int = 2  # PHASES
    payload: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # what ``key`` hashes

    @property
    def kind(self) -> str:
        return self.unit.kind

    @property
    def pending(self) -> bool:
        return self.key is None

    @property
    def done(self) -> bool:
        return self.key is not None and set(self.seeds) <= set(self.cached)

    @property
    def label(self) -> str:
        level = f" {self.train_level}" if self.unit.shows_level else ""
        return f"{self.dataset}/{self.measure}/{self.method}{level}"


def _features_key(run: PlannedRun, prompt_format: str | None) -> tuple:
    """What the features cache is keyed by: model, precision, dataset, prompt format."""
    return (run.model, run.quantization, run.dataset, prompt_format)


def _training(n: int, config: Any, per_item: float) -> Work:
    """QLoRA's training on ``n`` items of ``per_item`` tokens, for as many epochs as its schedule."""
    _, _, epochs = schedule(n, config)
    return Work(train_tokens=epochs * n * per_item, train_context=per_item / 2)


@dataclass(frozen=True)
class Experiment:
    """``Runner.run(spec)``: a method's seeds on a split's test items."""

    spec: ExperimentSpec
    kind: ClassVar[str] = "experiment"
    shows_level: ClassVar[bool] = True

    def updates_weights(self) -> bool:
        method = self.spec.method
        return isinstance(method.inner if isinstance(method, CoT) else method, QLoRA)

    def execute(self, run: PlannedRun, lm: LoadedModel, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        from e2h_utils.experiments.runner import Runner

        frames = {run.dataset: run.frame}
        source = self.spec.train_source
        if source is not None and source.dataset != run.dataset:
            frames[source.dataset] = frame_of(source.dataset)
        Runner(lm, store=store, frames=frames, progress=progress).run(self.spec)

    def _probe_ids(self, run: PlannedRun, ctx: Context, seeds: Sequence[int]) -> list[str]:
        """Test items and each seed's training draw, per fold (what a probe run extracts features of)."""
        spec = self.spec
        roles = split.split_roles(run.frame, hardness.get_measure(spec.dataset, spec.measure), spec.test)
        source = None if spec.train_source is None else ctx.frame(spec.train_source.dataset)
        folds = split.folds(spec, run.frame, roles, split.test_items(run.frame, roles, spec.test), source)
        return list(run.item_ids) + [i for seed in seeds for fold in folds for i in draw(spec, fold.pool, seed)["id"]]

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        spec, method = self.spec, self.spec.method
        test = list(run.item_ids)
        cot = isinstance(method, CoT)
        tokens = ctx.counter.table(spec.dataset, frame, spec.prompt_format, cot)
        pool = tokens if spec.train_source is None else ctx.counter.table(
            spec.train_source.dataset, ctx.frame(spec.train_source.dataset), None, cot)
        examples = 0.0 if not method.trains else float(method.size * pool["example"].mean())
        per_item = float(tokens["prompt"].mean() + tokens["target"].mean())
        if not cot:
            if isinstance(method, Probe):  # features of the test items and each seed's draw
                ids = ctx.new_features(_features_key(run, spec.prompt_format), self._probe_ids(run, ctx, seeds))
                return scoring(tokens, ids)
            if isinstance(method, QLoRA):  # one training per fold
                train = _training(method.n, method.config, per_item).scaled(spec.test.folds)
                return (train + scoring(tokens, test)).scaled(len(seeds))
            return scoring(tokens, test, prefix=examples).scaled(len(seeds))
        # chain of thought: prefill, then generate about the reference reasoning's length
        cot_method = cast(CoT, method)  # its length is resolved (ExperimentSpec: CoT.with_length)
        new = float(cast(int, cot_method.max_new_tokens))
        lengths = np.minimum(tokens.loc[test, "target"].to_numpy(dtype=float), new)
        batch = ctx.settings.generation_batch
        # a batch decodes until its longest generation stops (reference reasoning length, capped)
        steps = float(sum(lengths[i:i + batch].max() for i in range(0, len(lengths), batch)))
        prompt = float(tokens.loc[test, "prompt"].sum())
        per_prompt = prompt / max(len(test), 1)
        work = (Work(forward_tokens=prompt + examples, forward_context=examples + per_prompt / 2)
                + Work(generated_tokens=float(lengths.sum()), generation_context=examples + per_prompt + new / 2,
                       decode_steps=steps))
        if isinstance(cot_method.inner, QLoRA):  # one training per fold
            inner = cot_method.inner
            work = work + _training(inner.n, inner.config, per_item).scaled(spec.test.folds)
        return work.scaled(len(seeds))


@dataclass(frozen=True)
class MDL:
    """``mdl.run_mdl``: a learner's confidences on the items MDL scores (hardness by model)."""

    spec: mdl.MDLSpec
    kind: ClassVar[str] = "mdl"
    shows_level: ClassVar[bool] = False

    def updates_weights(self) -> bool:
        return self.spec.learner.kind in kinds(trains_weights=True)

    def execute(self, run: PlannedRun, lm: LoadedModel, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        mdl.run_mdl(lm, run.frame, self.spec, store=store, progress=progress)

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        spec = self.spec
        tokens = ctx.counter.table(spec.dataset, frame, spec.prompt_format, False)
        scored = list(run.item_ids)
        learner = spec.learner
        if isinstance(learner, ZeroShot):
            return scoring(tokens, scored)
        holdout = list(mdl.holdout_items(frame, spec)["id"])
        if isinstance(learner, Probe):  # hidden states of every item once (cached across seeds)
            return scoring(tokens, ctx.new_features(_features_key(run, spec.prompt_format), holdout + scored))
        per_item = float(tokens.loc[holdout, ["prompt", "target"]].sum(axis=1).mean())
        total = Work()
        for n in spec.subset_sizes:  # QLoRA per seed and size: train on the subset, score every item
            total = total + _training(n, learner.config, per_item) + scoring(tokens, scored)
        return total.scaled(len(seeds))


@dataclass(frozen=True)
class ZeroShotItems:
    """The hardness notebook's zero-shot scores of the items MDL scores (accuracy by level)."""

    kind: ClassVar[str] = "zero_shot_items"
    shows_level: ClassVar[bool] = False

    def updates_weights(self) -> bool:
        return False

    def execute(self, run: PlannedRun, lm: LoadedModel, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        items = run.frame[run.frame["id"].isin(set(run.item_ids))]
        mdl.zero_shot_items(lm, items, run.dataset, store=store, progress=progress)

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        return scoring(ctx.counter.table(run.dataset, frame, None, False), run.item_ids)


@dataclass(frozen=True)
class SampleSet:
    """The generator's candidate solutions for one problem set (``EvaluatorRunner.samples``)."""

    candidates: Candidates
    problems: str
    kind: ClassVar[str] = "samples"
    shows_level: ClassVar[bool] = True

    def updates_weights(self) -> bool:
        return False

    def execute(self, run: PlannedRun, lm: LoadedModel, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        from e2h_utils.experiments.evaluation import EvaluatorRunner

        runner = EvaluatorRunner(lm, store=store, frames={run.dataset: run.frame}, progress=progress)
        runner.samples(self.candidates)  # every problem set of the candidates (the others are stored already)

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        """Prefill of every problem's prompt after the worked examples, then N generations of about
        the reference solution's length (capped at the generation length)."""
        sampling = self.candidates.sampling_for(self.problems)
        tokens = ctx.counter.table(self.candidates.dataset, frame, self.candidates.prompt_format, True)
        new = float(cast(int, sampling.max_new_tokens))  # resolved by the candidates
        ids = list(run.item_ids)
        examples = float(sampling.k * tokens["example"].mean())
        lengths = np.minimum(tokens.loc[ids, "target"].to_numpy(dtype=float), new)
        prompt = float(tokens.loc[ids, "prompt"].sum())
        rows = np.repeat(lengths, sampling.n)
        batch = ctx.settings.generation_batch
        steps = float(sum(rows[i:i + batch].max() for i in range(0, len(rows), batch)))
        return (Work(forward_tokens=prompt * sampling.n + examples, forward_context=examples + prompt / len(ids) / 2)
                + Work(generated_tokens=float(rows.sum()), generation_context=examples + prompt / len(ids) + new / 2,
                       decode_steps=steps))


@dataclass(frozen=True)
class Evaluator:
    """An evaluator trained on easy (or hard) samples, scoring the test problems' samples."""

    spec: EvaluatorSpec
    kind: ClassVar[str] = "evaluator"
    shows_level: ClassVar[bool] = True

    def updates_weights(self) -> bool:
        return isinstance(self.spec.evaluator, QLoRA)

    def execute(self, run: PlannedRun, lm: LoadedModel, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        from e2h_utils.experiments.evaluation import EvaluatorRunner

        EvaluatorRunner(lm, store=store, frames={run.dataset: run.frame}, progress=progress).run(self.spec)

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        """Hidden states of every sample once (a probe), or training on n samples and scoring every
        test sample (QLoRA), each sample about prompt + generated tokens long."""
        from e2h_utils.experiments.evaluation import problem_sets

        spec = self.spec
        candidates = spec.candidates
        tokens = ctx.counter.table(candidates.dataset, frame, candidates.prompt_format, True)
        new = float(cast(int, candidates.sampling.max_new_tokens))  # resolved by the candidates
        sets = problem_sets(frame, candidates)
        per_sample = {i: float(tokens.loc[i, "prompt"] + min(tokens.loc[i, "target"], new)) + 10.0
                      for part in sets.values() for i in part["id"]}
        test = [(i, j) for i in sets["test"]["id"] for j in range(candidates.sampling.n)]
        train_n = candidates.sampling_for("easy").n
        train = [(i, j) for level in spec.training_sets() for i in sets[level]["id"] for j in range(train_n)]
        if isinstance(spec.evaluator, Probe):  # every sample's hidden states once, whichever run extracts them first
            fresh = ctx.new_features(("solutions", run.model, run.quantization, run.dataset), test + train)
            total = sum(per_sample[i] for i, _ in fresh)
            return Work(forward_tokens=total, forward_context=total / max(len(fresh), 1) / 2)
        mean = float(np.mean([per_sample[i] for i, _ in train])) if train else 0.0
        scoring_tokens = sum(per_sample[i] for i, _ in test)
        return (_training(spec.evaluator.n, spec.evaluator.config, mean)
                + Work(forward_tokens=scoring_tokens,
                       forward_context=scoring_tokens / max(len(test), 1) / 2)).scaled(len(seeds))
