"""Easy-to-hard evaluators as experiments (Sun et al. 2024): which problems the generator samples,
which evaluator is trained on which samples, every result stored under the key of what it means.

    candidates = Candidates("math", "level", Sampling(n=8), test=TestSelection(fixed="math500"))
    spec = EvaluatorSpec(candidates, Probe(400), train_level="easy", seeds=(0, 1))
    runner = EvaluatorRunner(lm)
    samples = runner.samples(candidates)      # {"test" | "easy" | "hard": one row per (problem, sample)}
    scores = runner.run(spec)                 # one row per (test sample, seed): the evaluator's score

The problems of a ``Candidates`` (the measure's split: ``experiments.split``):

- the generator's worked examples: ``sampling.k`` problems drawn once (the sampling seed) from the
  training pool of every level; they are never training problems of an evaluator;
- ``test``: the split's test items (``test``: its levels, cap, or a fixed test set such as MATH-500);
- ``easy`` / ``hard``: at most ``train_problems`` problems of that level's training pool (a seeded
  draw, the examples left out), whose samples (their correctness the label) train evaluators.

An ``EvaluatorSpec`` trains its evaluator (``methods.evaluators``: a ``Probe`` or ``QLoRA``, its
size the training samples) on samples of the ``easy`` problems, the ``hard`` problems (the oracle)
or ``all`` (both), one draw of samples per seed, and scores every test sample. Samples are stored per
problem set under ``results/<dataset>/samples/<key>/seed-<sampling seed>.parquet``, scores under
``results/<dataset>/evaluator_<kind>/<key>/seed-<s>.parquet``; the keys hold the model's identity, a
digest of the data, the sampling settings and the code versions, never execution settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence, cast

import pandas as pd

from e2h_utils.data import datasets, hardness, prompts
from e2h_utils.engine import generation, runtime
from e2h_utils.engine.models import LoadedModel
from e2h_utils.experiments import split
from e2h_utils.experiments.runner import ModelRunner, Timing
from e2h_utils.experiments.spec import SpecError, TestSelection, test_form
from e2h_utils.experiments.store import ResultStore, spec_key
from e2h_utils.methods import evaluators, icl
from e2h_utils.methods.base import Method, Probe, QLoRA
from e2h_utils.methods.sampling import SAMPLING_VERSION, Sampling, sample_solutions

PROBLEM_SETS = ("test", "easy", "hard")
TRAIN_LEVELS = ("easy", "hard", "all")


@dataclass(frozen=True)
class Candidates:
    """The generator's candidate solutions: of which problems, and how they are sampled."""

    dataset: str
    measure: str
    sampling: Sampling
    test: TestSelection = TestSelection(levels=("hard",))
    train_problems: int = 100  # problems per training level whose samples train evaluators
    train_n: int | None = None  # samples per training problem (None: the sampling's N; Sun et al.: 32 vs 1024)
    model: str = "embedded"
    prompt_format: str | None = None  # chain-of-thought format (None: the dataset's)
    max_length: int | None = None

    def __post_init__(self) -> None:
        hardness.get_measure(self.dataset, self.measure)  # an unknown measure fails here, naming the valid ones
        prompts.get_cot_format(self.prompt_format, self.dataset)
        if int(self.train_problems) < 1:
            raise SpecError(f"train_problems must be at least 1, not {self.train_problems}")
        if self.train_n is not None and int(self.train_n) < 1:
            raise SpecError(f"train_n (samples per training problem) must be at least 1, not {self.train_n}")
        object.__setattr__(self, "sampling", self.sampling.with_length(self.dataset))

    def sampling_for(self, problems: str) -> Sampling:
        """The sampling of one problem set: N for the test problems, ``train_n`` for the training ones."""
        if problems == "test" or self.train_n is None:
            return self.sampling
        return replace(self.sampling, n=int(self.train_n))

    @property
    def fmt(self) -> prompts.CoTFormat:
        return prompts.get_cot_format(self.prompt_format, self.dataset)

    def canonical(self, problems: str) -> dict[str, Any]:
        """What the samples of one problem set mean (``problems``: ``PROBLEM_SETS``)."""
        if problems not in PROBLEM_SETS:
            raise SpecError(f"unknown problem set {problems!r}; valid: {', '.join(PROBLEM_SETS)}")
        test = test_form(self.test)
        if problems != "test":  # the training problems depend on the split, not on which test items are read
            test = {k: v for k, v in test.items() if k not in ("max_per_level", "levels")}
        return {"dataset": self.dataset, "method": "samples", "measure": self.measure, "model": self.model,
                "problems": problems, "test": test,
                "train_problems": None if problems == "test" else int(self.train_problems),
                "prompt_format": self.fmt.name, "max_length": self.max_length,
                "sampling": self.sampling_for(problems).options(),
                "version": [SAMPLING_VERSION, generation.COT_VERSION]}

    def describe(self) -> str:
        s = self.sampling
        return f"{self.dataset}/{self.measure} N={s.n} T={s.temperature} k={s.k} ({self.model})"


@dataclass(frozen=True)
class EvaluatorSpec:
    """An evaluator trained on the samples of one training level, scoring every test sample."""

    candidates: Candidates
    evaluator: Probe | QLoRA
    train_level: str = "easy"
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not isinstance(self.evaluator, (Probe, QLoRA)):
            raise SpecError(f"an evaluator is a Probe or QLoRA, not {self.evaluator!r}")
        if self.train_level not in TRAIN_LEVELS:
            raise SpecError(f"unknown evaluator training level {self.train_level!r}; valid: {', '.join(TRAIN_LEVELS)}")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds:
            raise SpecError("an evaluator needs at least one seed")

    @property
    def kind(self) -> str:
        return f"evaluator_{self.evaluator.kind}"

    def training_sets(self) -> tuple[str, ...]:
        return ("easy", "hard") if self.train_level == "all" else (self.train_level,)

    def describe(self) -> str:
        return f"{self.candidates.describe()} {self.evaluator.kind} evaluator on {self.train_level} samples"


def draw_salt(spec: EvaluatorSpec) -> str:
    c = spec.candidates
    return f"{c.dataset}/{c.measure}/evaluator/{spec.train_level}/{spec.evaluator.kind}"


# --- which problems, and what their results are keyed by (pure: the preflight plan calls them too) ---

def problem_sets(frame: pd.DataFrame, candidates: Candidates) -> dict[str, pd.DataFrame]:
    """``examples`` (the generator's worked examples) and the problems of ``PROBLEM_SETS``, each
    with its ``level`` (easy / medium / hard under the measure)."""
    measure = hardness.get_measure(candidates.dataset, candidates.measure)
    roles = split.split_roles(frame, measure, candidates.test)
    test = split.test_items(frame, roles, candidates.test)
    if test.empty:
        raise SpecError(f"no test problems for {candidates.describe()} at levels {candidates.test.levels}")
    pool = split.training_pool(frame, roles, "all")
    pool = pool.assign(level=roles.loc[pool.index, "level"].astype(str))
    examples = icl.draw_examples(pool, candidates.sampling.k, candidates.sampling.seed,
                                 salt=f"{candidates.dataset}/{candidates.measure}/generator")
    out = {"examples": examples, "test": test}
    for level in ("easy", "hard"):
        level_pool = pool[(pool["level"] == level) & ~pool["id"].isin(examples["id"])]
        if level_pool.empty:
            raise SpecError(f"no {level} training problems in {candidates.dataset}/{candidates.measure} "
                            f"(the pool outside the test set and the generator's examples is empty)")
        drawn = icl.draw_examples(level_pool, int(candidates.train_problems), 0,
                                  salt=f"{candidates.dataset}/{candidates.measure}/evaluator-problems/{level}")
        out[level] = drawn.sort_values("id")
    return out


def check_sizes(specs: Iterable[EvaluatorSpec], sets_of) -> list[str]:
    """The evaluators that ask for more training samples than their problems give (the problems
    actually drawn x samples per training problem), one line each; ``sets_of(candidates)`` gives
    the problem sets (``problem_sets``)."""
    problems = []
    for spec in dict.fromkeys(specs):
        sets = sets_of(spec.candidates)
        per_problem = spec.candidates.sampling_for("easy").n
        counts = {level: len(sets[level]) for level in spec.training_sets()}
        available = sum(counts.values()) * per_problem
        if spec.evaluator.size > available:
            where = " + ".join(f"{n} {level}" for level, n in counts.items())
            problems.append(f"- {spec.describe()}: {spec.evaluator.size} training samples asked, at most {available} "
                            f"exist ({where} problems x {per_problem} samples each); lower n or raise train_problems "
                            "(or the samples per training problem)")
    return problems


def samples_payload(candidates: Candidates, problems: str, model_identity: str, frame: pd.DataFrame) -> dict[str, Any]:
    """What the samples of one problem set are stored under: their meaning, the model's identity and
    a digest of the data (the measure's columns and the fixed test set's)."""
    measure = hardness.get_measure(candidates.dataset, candidates.measure)
    columns = [c for c in (measure.column, measure.population, candidates.test.fixed) if c]
    return {**candidates.canonical(problems), "model_identity": model_identity,
            "data_digest": datasets.content_digest(frame, columns)}


def evaluator_payload(spec: EvaluatorSpec, model_identity: str, frame: pd.DataFrame) -> dict[str, Any]:
    """What an evaluator's scores are stored under: the evaluator, its training level, the keys of
    the sample sets it reads and the code versions."""
    c = spec.candidates
    sets = ("test", *spec.training_sets())
    return {"dataset": c.dataset, "method": spec.kind, "measure": c.measure, "model": c.model,
            "n_train": spec.evaluator.size, "options": [list(o) for o in spec.evaluator.options()],
            "train_level": spec.train_level, "model_identity": model_identity,
            "samples": {s: spec_key(samples_payload(c, s, model_identity, frame)) for s in sets},
            "version": [evaluators.EVALUATOR_VERSION, spec.evaluator.train_version()]}


def plan_table(specs: Sequence[EvaluatorSpec]) -> pd.DataFrame:
    """Every evaluator of a plan, one row each, before anything runs: its candidates (dataset, N per
    test problem, test and training problems), its kind and size, its training level and seeds."""
    rows = [{"model": spec.candidates.model, "dataset": spec.candidates.dataset, "measure": spec.candidates.measure,
             "N": spec.candidates.sampling.n, "test problems": spec.candidates.test.max_per_level or "all",
             "training problems": spec.candidates.train_problems, "evaluator": spec.evaluator.kind,
             "training samples": spec.evaluator.size, "trained on": spec.train_level, "seeds": len(spec.seeds)}
            for spec in specs]
    return pd.DataFrame(rows)


class EvaluatorRunner(ModelRunner[EvaluatorSpec]):
    """Samples candidates and trains evaluators on one loaded model (the generator, whose hidden
    states and adapters the evaluators use too), reusing every stored result."""

    def __init__(self, lm: LoadedModel, *, store: ResultStore | None = None,
                 settings: runtime.RunSettings | None = None, frames: Mapping[str, pd.DataFrame] | None = None,
                 progress: bool = True) -> None:
        super().__init__(lm, store=store, settings=settings, frames=frames, progress=progress)
        self.runs_name = "evaluators"
        self._samples: dict[Candidates, dict[str, pd.DataFrame]] = {}
        self._sets: dict[Candidates, dict[str, pd.DataFrame]] = {}

    def problem_sets(self, candidates: Candidates) -> dict[str, pd.DataFrame]:
        if candidates not in self._sets:
            self._sets[candidates] = problem_sets(self.frame(candidates.dataset), candidates)
        return self._sets[candidates]

    def samples_payload(self, candidates: Candidates, problems: str) -> dict[str, Any]:
        return samples_payload(candidates, problems, self.lm.identity, self.frame(candidates.dataset))

    # --- sampling ------------------------------------------------------------------------------

    def samples_of(self, candidate_sets: Mapping[str, Candidates]) -> dict[str, dict[str, pd.DataFrame]]:
        """``samples`` of each candidate set, by its name (a notebook's: by dataset)."""
        return {name: self.samples(candidates) for name, candidates in candidate_sets.items()}

    def samples(self, candidates: Candidates) -> dict[str, pd.DataFrame]:
        """One row per (problem, sample) of every problem set (``PROBLEM_SETS``), stored per set."""
        if candidates in self._samples:
            return self._samples[candidates]
        if self.lm.spec.name != candidates.model:
            raise SpecError(f"candidates are for model {candidates.model!r} but the loaded model is "
                            f"{self.lm.spec.name!r}")
        sets = self.problem_sets(candidates)
        # one prompt for every problem set: the worked examples that fit with the longest problem of any
        every_problem = pd.concat([sets[p] for p in PROBLEM_SETS], ignore_index=True)
        out = {}
        for problems in PROBLEM_SETS:
            started = time.perf_counter()

            def compute(problems: str = problems) -> pd.DataFrame:
                return sample_solutions(self.lm, candidates.fmt, sets[problems], sets["examples"],
                                        candidates.sampling_for(problems), max_length=candidates.max_length,
                                        fit_to=every_problem,
                                        batch_size=self.settings.generation_batch, progress=self.progress,
                                        desc=f"{candidates.dataset} {problems} samples")

            frame, new = self.store.get_or_compute(self.samples_payload(candidates, problems),
                                                   candidates.sampling.seed, compute)
            out[problems] = frame
            self.timings.append(Timing(f"{candidates.describe()}: {problems} samples", time.perf_counter() - started,
                                       int(new)))
        self._samples[candidates] = out
        return out

    # --- evaluators ----------------------------------------------------------------------------

    def payload(self, spec: EvaluatorSpec) -> dict[str, Any]:
        return evaluator_payload(spec, self.lm.identity, self.frame(spec.candidates.dataset))

    def training_pool(self, spec: EvaluatorSpec) -> pd.DataFrame:
        samples = self.samples(spec.candidates)
        return pd.concat([samples[s] for s in spec.training_sets()], ignore_index=True)

    def check(self, specs: Iterable[EvaluatorSpec]) -> None:
        """Stop before sampling when an evaluator asks for more training samples than its problems
        give (``train_problems`` x N), naming every such spec."""
        problems = [f"- {spec.describe()}: for model {spec.candidates.model!r}, loaded {self.lm.spec.name!r}"
                    for spec in dict.fromkeys(specs) if self.lm.spec.name != spec.candidates.model]
        problems += check_sizes(specs, lambda c: self.problem_sets(c))
        if problems:
            raise SpecError("these evaluators cannot run as specified (nothing was run):\n" + "\n".join(problems))

    def run(self, spec: EvaluatorSpec) -> pd.DataFrame:
        """The evaluator's score of every test sample, for every seed (``item_id``, ``level``,
        ``sample``, ``score``, ``seed``), reusing stored seeds and storing new ones."""
        self.check([spec])
        samples = self.samples(spec.candidates)
        pool = self.training_pool(spec)
        if spec.evaluator.size > len(pool):
            raise SpecError(f"{spec.describe()}: {spec.evaluator.size} training samples asked, the problems gave "
                            f"{len(pool)}; a run never trains on fewer samples than its spec says")
        frame = self.frame(spec.candidates.dataset)
        problems = {r["id"]: r for r in frame.to_dict("records")}
        payload = self.payload(spec)
        score = evaluators.scorer_for(spec.evaluator)
        started, parts, computed = time.perf_counter(), [], 0
        for seed in spec.seeds:
            def compute(seed: int = seed) -> pd.DataFrame:
                train = icl.draw_examples(pool, spec.evaluator.size, seed, salt=draw_salt(spec))
                job = evaluators.EvaluatorJob(
                    lm=self.lm, fmt=spec.candidates.fmt, problems=problems, train=train, test=samples["test"],
                    seed=seed, features_root=self.store.root,
                    feature_key={"dataset": spec.candidates.dataset, "sampling": self.samples_payload(
                        spec.candidates, "test")["sampling"], "prompt_format": spec.candidates.fmt.name},
                    settings=self.settings, progress=self.progress, label=spec.candidates.dataset)
                return evaluators.score_frame(job, score(spec.evaluator, job))

            result, new = self.store.get_or_compute(payload, seed, compute)
            computed += int(new)
            parts.append(result)
        self.timings.append(Timing(spec.describe(), time.perf_counter() - started, computed))
        return pd.concat(parts, ignore_index=True).assign(evaluator=spec.evaluator.kind, train_level=spec.train_level)


@dataclass(frozen=True)
class EvaluatorPlan:
    """A notebook's evaluator runs: candidate sets and the evaluators trained on them."""

    candidates: tuple[Candidates, ...]
    specs: tuple[EvaluatorSpec, ...] = field(default_factory=tuple)


def evaluator_specs(candidates: Candidates, evaluators_: Mapping[str, Method], train_levels: Iterable[str],
                    seeds: Mapping[str, Iterable[int]]) -> list[EvaluatorSpec]:
    """Every (evaluator, training level) of one candidate set."""
    # EvaluatorSpec checks that each method is a Probe or QLoRA
    return [EvaluatorSpec(candidates, cast("Probe | QLoRA", method), level, tuple(seeds[kind]))
            for kind, method in evaluators_.items() for level in train_levels]
