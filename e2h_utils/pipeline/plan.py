"""The preflight plan: every run a profile will execute, what it needs and what it costs.

``build(profile)`` reads each notebook's parameters (the notebook's own defaults overlaid by
``parameters/<profile>/<name>.yaml``, as ``reproduce`` passes them) and lists, without loading a
model, the runs the notebook asks for, in the order it asks: experiments (a spec and its
seeds), MDL confidences of the hardness models and zero-shot item scores. Each run carries its
storage key (the one ``experiments.runner.Runner`` / ``mdl.run_mdl`` use), so the plan says
which seeds are already in the result store, and a run two notebooks share is listed once.

Runs on a model-based (MDL) measure depend on the MDL results: until those are stored, their
levels are cut from stand-in values with the same percentile cut-offs (so their item counts
are right) and their key is unknown (``pending``). ``cluster`` runs MDL first for that reason.

``estimate`` turns a run into tokens and FLOPs (``resources``), ``check_memory`` a model into
bytes against the devices, and ``report`` prints the plan. ``plan_power`` adds each plan entry's
predicted 95% CI half-widths (``analysis.power``: measured on stored results where there are some,
else a stated binomial assumption), ``power_report`` prints them. Tokens are counted with the
embedded model's tokenizer (the Hub models' tokenizers are not on every machine that plans).
Llama-2's 32k-token vocabulary splits English into more tokens than SmolLM2's 49k one, so for
the paper's models the token counts, and the estimate, are on the low side; the ratio could not
be measured here (no Llama tokenizer offline).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence, cast

import numpy as np
import pandas as pd

from e2h_utils import paths
from e2h_utils.analysis import estimates, power
from e2h_utils.data import datasets
from e2h_utils.data import hardness
from e2h_utils.engine import models, resources, runtime
from e2h_utils.experiments import mdl, plans, settings, split
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, key_payload
from e2h_utils.experiments.store import ResultStore, spec_key
from e2h_utils.methods.qlora import QLoRAConfig
from e2h_utils.pipeline import dry_run as dry
from e2h_utils.pipeline import profiles, units
from e2h_utils.pipeline.cost import Context, TokenCounter, Work
from e2h_utils.pipeline.notebooks import notebook_defaults
from e2h_utils.pipeline.units import PlannedRun

# --- the notebooks' parameters ------------------------------------------------------------

def notebook_parameters(profile: str, name: str, dry_run: bool = False) -> dict[str, Any]:
    """What ``reproduce`` runs notebook ``name`` with under ``profile`` (capped for a dry run)."""
    notebook = paths.notebooks_dir() / f"{name}.ipynb"
    defaults = notebook_defaults(notebook)
    yaml_path = paths.parameters_dir() / profile / f"{name}.yaml"
    values = {**defaults, **profiles.load_parameters(yaml_path, declared=defaults)}
    return dry.cap_parameters(values) if dry_run else values


# --- building the plan ----------------------------------------------------------------------

class Planner:
    """Collects the runs of one profile; shared state (frames, identities, the store) is cached."""

    def __init__(self, store: ResultStore | None = None) -> None:
        self.store = store or ResultStore()
        self.runs: dict[str, PlannedRun] = {}  # by key (or a provisional key while pending)
        self.entries: dict[str, list[plans.Entry]] = {}  # per notebook: the entries its tables read
        self.experiments: dict[tuple[str, ExperimentSpec], PlannedRun] = {}  # (notebook, spec) -> its run
        self._frames: dict[str, pd.DataFrame] = {}
        self.digests = datasets.Digests()  # of the frames planned on (read, never changed)
        self._mdl: dict[tuple, pd.DataFrame | None] = {}

    # shared inputs
    def frame(self, dataset: str) -> pd.DataFrame:
        if dataset not in self._frames:
            self._frames[dataset] = datasets.load_dataset(dataset)
        return self._frames[dataset]

    @staticmethod
    def identity(model: str, dtype: str = "auto", quantization: str = "none") -> str:
        return models.model_identity(models.as_spec(model, dtype=dtype, quantization=quantization))

    def add(self, run: PlannedRun, key_payload: dict | None, provisional: str | None = None) -> PlannedRun:
        key = spec_key(key_payload) if key_payload is not None else None
        ident = key or provisional or f"{run.notebook}/{len(self.runs)}"
        if ident in self.runs:  # listed by an earlier notebook (or twice by this one)
            first = self.runs[ident]
            if run.notebook != first.notebook and run.notebook not in first.shared_with:
                self.runs[ident] = replace(first, shared_with=first.shared_with + (run.notebook,))
            return self.runs[ident]
        cached: tuple[int, ...] = ()
        if key_payload is not None:
            cached = tuple(s for s in run.seeds if self.store.path(key_payload, s).is_file())
        self.runs[ident] = replace(run, key=key, cached=cached, payload=key_payload)
        return self.runs[ident]

    # frames with model-based measures
    def mdl_frames(self, frames: dict[str, pd.DataFrame],
                   options: mdl.MDLSettings) -> tuple[dict[str, pd.DataFrame], bool]:
        """(frames with MDL columns, whether they are the real ones): the stored confidences when
        every part is stored, else stand-in values on the same items (levels of the right size)."""
        parts, complete = [], True
        for name in options.hardness_models:
            identity = self.identity(name, options.dtype, options.quantization)
            for spec in options.specs(name):
                memo = (identity, spec)
                if memo not in self._mdl:
                    self._mdl[memo] = mdl.stored_confidences(identity, frames[spec.dataset], spec, self.store)
                stored = self._mdl[memo]
                if stored is None:
                    complete = False
                    scored = mdl.scored_items(frames[spec.dataset], spec)
                    stored = pd.DataFrame({"item_id": scored["id"].to_numpy(), "seed": 0, "size": 0,
                                           "p_correct": _stand_in(scored["id"]), "learner": spec.name,
                                           "model": name})
                parts.append(stored.assign(dataset=spec.dataset))
        if not parts:
            return frames, True
        return mdl.frames_with_mdl(frames, pd.concat(parts, ignore_index=True)), complete


def _stand_in(ids: Iterable[str]) -> np.ndarray:
    """Deterministic values in [0, 1) per id: percentile levels of the same sizes as real MDL's."""
    return np.array([zlib.crc32(str(i).encode()) / 2**32 for i in ids])


def plan_experiment(planner: Planner, notebook: str, spec: ExperimentSpec, frame: pd.DataFrame, *,
                    dtype: str, quantization: str, real: bool = True) -> PlannedRun:
    """The run ``Runner.run(spec)`` makes: its test items, seeds and storage key."""
    measure = hardness.get_measure(spec.dataset, spec.measure)
    test = split.test_items(frame, split.split_roles(frame, measure, spec.test), spec.test)  # = held_out_ids
    test_ids = tuple(test["id"])
    identity = planner.identity(spec.model, dtype, quantization)
    source_frame = None
    if spec.train_source is not None:
        source = spec.train_source
        source_frame = frame if source.dataset == spec.dataset else planner.frame(source.dataset)
    payload = key_payload(spec, identity, frame, source_frame, planner.digests) if real else None
    run = PlannedRun(notebook=notebook, unit=units.Experiment(spec), model=spec.model, dtype=dtype,
                     quantization=quantization,
                     dataset=spec.dataset, method=spec.method.kind if spec.method.trains else "zero-shot",
                     measure=spec.measure, train_level=spec.train_level, n_train=spec.method.size,
                     seeds=spec.run_seeds, test_items=len(test_ids), item_ids=test_ids,
                     item_levels=tuple(test["level"]), frame=frame)
    provisional = None if real else f"pending:{spec_key({**spec.canonical(), 'model_identity': identity})}"
    planned = planner.add(run, payload, provisional)
    planner.experiments[(notebook, spec)] = planned  # a shared run (same key) has the same items
    return planned


def _plan_mdl(planner: Planner, notebook: str, frames: dict[str, pd.DataFrame], options: mdl.MDLSettings) -> None:
    for name in options.hardness_models:
        identity = planner.identity(name, options.dtype, options.quantization)
        for spec in options.specs(name):
            frame = frames[spec.dataset]
            scored = mdl.scored_items(frame, spec)
            if not spec.learner.trains:
                payload = mdl.zero_shot_payload(identity, scored, spec.dataset, spec.prompt_format)
                seeds: tuple[int, ...] = (0,)
            else:
                payload, seeds = mdl.trained_payload(identity, frame, spec), spec.seeds
            run = PlannedRun(notebook=notebook, unit=units.MDL(spec), model=name, dtype=options.dtype,
                             quantization=options.quantization, dataset=spec.dataset, method=f"mdl_{spec.name}",
                             measure="-", train_level="-",
                             n_train=spec.learner.size, seeds=seeds,
                             test_items=len(scored), item_ids=tuple(scored["id"]), frame=frame, phase=1)
            planner.add(run, payload)


def _zero_shot_items(planner: Planner, notebook: str, cfg: settings.HardnessMeasures,
                     frames: dict[str, pd.DataFrame], with_mdl: dict[str, pd.DataFrame], real: bool) -> None:
    """The hardness notebook's zero-shot scores of the MDL-scored items (accuracy by level)."""
    identity = planner.identity(cfg.model, cfg.model_dtype, cfg.model_quantization)
    options = cfg.mdl
    if not options.hardness_models:
        return
    for dataset, _ in options.learners:
        spec = mdl.specs_for(options.hardness_models[0], {dataset: ["zero_shot"]}, max_items=dict(options.max_items),
                             subset_sizes=options.subset_sizes, seeds=options.seeds)[0]
        ids = set(mdl.scored_items(frames[dataset], spec)["id"])
        items = with_mdl[dataset][with_mdl[dataset]["id"].isin(ids)]
        payload = mdl.zero_shot_payload(identity, items, dataset) if real else None
        run = PlannedRun(notebook=notebook, unit=units.ZeroShotItems(), model=cfg.model, dtype=cfg.model_dtype,
                         quantization=cfg.model_quantization, dataset=dataset, method="zero-shot", measure="-",
                         train_level="none", n_train=0, seeds=(0,), test_items=len(items),
                         item_ids=tuple(sorted(ids)), frame=with_mdl[dataset])
        planner.add(run, payload, None if real else f"pending:zero_shot_items/{dataset}/{identity}")


def _plan_evaluators(planner: Planner, notebook: str, cfg: settings.EasyToHardEvaluators) -> None:
    """The easy-to-hard evaluators' runs: each dataset's sample sets (the generator's candidates for
    the test, easy and hard problems), then every evaluator (``experiments.evaluation``)."""
    from e2h_utils.experiments import evaluation

    dtype, quant = cfg.model_dtype, cfg.model_quantization
    identity = planner.identity(cfg.model, dtype, quant)
    for dataset in cfg.evaluator_datasets:
        candidates = cfg.candidates(dataset)
        frame = planner.frame(dataset)
        sets = evaluation.problem_sets(frame, candidates)
        for problems in evaluation.PROBLEM_SETS:
            ids = tuple(sets[problems]["id"])
            n = candidates.sampling_for(problems).n
            run = PlannedRun(notebook=notebook, unit=units.SampleSet(candidates, problems), model=cfg.model,
                             dtype=dtype, quantization=quant,
                             dataset=dataset, method="samples", measure=candidates.measure, train_level=problems,
                             n_train=n, seeds=(candidates.sampling.seed,), test_items=len(ids) * n,
                             item_ids=ids, frame=frame)
            planner.add(run, evaluation.samples_payload(candidates, problems, identity, frame))
    specs = cfg.evaluator_plan()
    refused = evaluation.check_sizes(specs, lambda c: evaluation.problem_sets(planner.frame(c.dataset), c))
    if refused:
        raise SpecError(f"{notebook}: these evaluators cannot run as specified:\n" + "\n".join(refused))
    for spec in specs:
        candidates = spec.candidates
        frame = planner.frame(candidates.dataset)
        test_ids = tuple(evaluation.problem_sets(frame, candidates)["test"]["id"])
        run = PlannedRun(notebook=notebook, unit=units.Evaluator(spec), model=cfg.model, dtype=dtype,
                         quantization=quant,
                         dataset=candidates.dataset, method=spec.kind, measure=candidates.measure,
                         train_level=spec.train_level, n_train=spec.evaluator.size, seeds=spec.seeds,
                         test_items=len(test_ids) * candidates.sampling.n, item_ids=test_ids, frame=frame,
                         phase=3)
        planner.add(run, evaluation.evaluator_payload(spec, identity, frame))


def _datasets(entries: Iterable[plans.Entry]) -> set[str]:
    return {spec.dataset for spec in plans.specs(entries)} | {
        spec.train_source.dataset for spec in plans.specs(entries) if spec.train_source is not None}


def plan_notebook(planner: Planner, name: str, values: Mapping[str, Any]) -> None:
    """Every run notebook ``name`` makes with parameter ``values``: its settings' plan
    (``experiments.settings``), the very list the notebook runs, plus MDL and zero-shot item scores."""
    cfg = settings.parse(name, values)
    dtype, quant = getattr(cfg, "model_dtype", "auto"), getattr(cfg, "model_quantization", "none")
    frames: dict[str, pd.DataFrame] = {}
    real = True
    if isinstance(cfg, settings.EasyToHardEvaluators):
        _plan_evaluators(planner, name, cfg)
        return
    if isinstance(cfg, settings.HardnessMeasures):
        frames = {d: planner.frame(d) for d in cfg.datasets}
        _plan_mdl(planner, name, frames, cfg.mdl)
        with_mdl, real = planner.mdl_frames(frames, cfg.mdl)
        _zero_shot_items(planner, name, cfg, frames, with_mdl, real)
        return
    entries = cfg.plan({d: planner.frame(d) for d in _needed_datasets(cfg)})
    frames = {d: planner.frame(d) for d in _datasets(entries)}
    if isinstance(cfg, settings.EasyToHard) and cfg.uses_mdl:
        _plan_mdl(planner, name, frames, cfg.mdl)
        frames, real = planner.mdl_frames(frames, cfg.mdl)
    for spec in plans.specs(entries):
        plan_experiment(planner, name, spec, frames[spec.dataset], dtype=dtype, quantization=quant,
                        real=real or not spec.measure.startswith("mdl"))
    needed = {d: planner.frame(d) for d in _needed_datasets(cfg)}
    planner.entries[name] = entries + (cfg.derived_plan(needed) if hasattr(cfg, "derived_plan") else [])


def _needed_datasets(cfg: Any) -> set[str]:
    """The datasets whose frames a notebook's plan reads for its levels (the level grid's)."""
    if isinstance(cfg, settings.TrainTestGap):
        return {dataset for _, dataset, _ in settings.parse_targets(cfg.grid)}
    return set()


NOTEBOOKS = tuple(settings.NOTEBOOKS)  # the order plans are built in: MDL first


def build(profile: str, notebooks: Sequence[str] | None = None, store: ResultStore | None = None,
          planner: Planner | None = None, dry_run: bool = False) -> list[PlannedRun]:
    """Every run of ``profile``'s notebooks (those with a YAML), MDL first, each listed once
    (``dry_run``: with the dry run's caps; its stand-in model comes from the environment)."""

    planner = planner or Planner(store)
    wanted = [job.name for job in profiles.scan(profile)[0] if job.name in NOTEBOOKS]
    for name in sorted(wanted, key=NOTEBOOKS.index):
        if notebooks and name not in notebooks:
            continue
        plan_notebook(planner, name, notebook_parameters(profile, name, dry_run))
    return sorted(planner.runs.values(), key=lambda r: r.phase)


# --- what a run costs -------------------------------------------------------------------------

def work_of(run: PlannedRun, planner: Planner, counter: TokenCounter, frames: Mapping[str, pd.DataFrame] | None = None,
            seeds: Sequence[int] | None = None, featurized: dict | None = None,
            settings: runtime.RunSettings | None = None) -> Work:
    """Tokens the run processes for ``seeds`` (default: those not yet stored). ``featurized``:
    the items already given features by earlier runs (updated), so shared features count once;
    ``settings``: the profile's run settings (default: the defaults)."""
    seeds = [s for s in run.seeds if s not in run.cached] if seeds is None else list(seeds)
    if not seeds:
        return Work()
    frame = (frames or {}).get(run.dataset)
    frame = frame if frame is not None else planner.frame(run.dataset)
    context = Context(counter, planner.frame, featurized, settings or runtime.RunSettings())
    return run.unit.work(run, context, frame, seeds)


# --- devices, throughput and memory ------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """One accelerator (or the CPU): memory, and the sustained rates a plan assumes."""

    name: str
    memory: float  # bytes
    flops: float  # sustained bf16 FLOP/s on large matrix products (forward, backward)
    bandwidth: float  # sustained bytes/s of weight reads (decoding is bound by it)
    note: str = ""


# Memory as the driver reports it (H100 SXM 81,559 MiB, A100 81,920 MiB, H200 143,771 MiB). Sustained
# rates are assumptions, not measurements: 40% of the dense bf16 peak (989 TFLOP/s for an H100 or
# H200 SXM, 312 for an A100) and 60% of the memory bandwidth (3.35 / 4.8 / 2.04 TB/s).
DEVICES = {
    "H100": Device("H100-80GB", 81559 * 2**20, 0.40 * 989e12, 0.60 * 3.35e12,
                   "40% of bf16 peak, 60% of HBM bandwidth"),
    "H200": Device("H200-141GB", 143771 * 2**20, 0.40 * 989e12, 0.60 * 4.8e12,
                   "40% of bf16 peak, 60% of HBM bandwidth"),
    "A100": Device("A100-80GB", 81920 * 2**20, 0.40 * 312e12, 0.60 * 2.04e12,
                   "40% of bf16 peak, 60% of HBM bandwidth"),
}
# bitsandbytes' quantized matrix products are slower than bf16 ones (LLM.int8 decomposes outliers,
# NF4 dequantizes on the fly): a stated assumption, to be replaced by a measurement on a GPU
QUANTIZED_SPEED = {"none": 1.0, "8bit": 0.5, "4bit": 0.6}


@dataclass(frozen=True)
class Devices:
    kind: Device
    count: int

    @property
    def label(self) -> str:
        return f"{self.count} x {self.kind.name}"


def parse_devices(text: str) -> Devices:
    """``"8xH100"``, ``"4xA100"``, ``"1xH200"`` or ``"cpu"`` (this machine, rate measured)."""
    if text.strip().lower() == "cpu":
        import os

        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        return Devices(Device("cpu", memory, cpu_flops(), 0.0,
                              "sustained FLOP/s of a float32 matrix product measured here"), 1)
    count, sep, name = text.strip().partition("x")
    if not sep or not count.isdigit() or name.upper() not in DEVICES:
        raise ValueError(f"devices {text!r}: write <count>x<kind> with kind one of {', '.join(DEVICES)} "
                         "(e.g. 8xH100), or 'cpu'")
    return Devices(DEVICES[name.upper()], int(count))


def cpu_flops(size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a float32 matrix product on this machine (the best of ``repeats``)."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def resolved_quantization(model: str, quantization: str) -> str:
    return models.as_spec(model, quantization=quantization).resolved_quantization


@dataclass(frozen=True)
class MemoryCheck:
    model: str
    quantization: str
    weights: float
    kv: float
    activations: float
    training: float
    need: float
    devices_used: int
    available: float
    budget: resources.Budget
    fits: bool
    fix: str = ""


def check_memory(model: str, quantization: str, trains: bool, devices: Devices,
                 settings: runtime.RunSettings | None = None) -> MemoryCheck:
    """Bytes a model needs at its precision (weights, the KV budget, one pass's activations and,
    when it trains, LoRA state and a micro-batch's activations) against the devices."""
    settings = settings or runtime.RunSettings()
    arch = models.architecture(model)
    quant = resolved_quantization(model, quantization)
    weights = arch.weight_bytes(quant)
    per_device = devices.kind.memory - (resources.CUDA_CONTEXT_BYTES if devices.kind.name != "cpu" else 0)

    def derive(n: int) -> resources.Budget:
        if devices.kind.name == "cpu":
            return resources.CPU_BUDGET
        free = max(n * per_device - weights, 0.0)
        return resources.budget_from_free(arch.kv_bytes_per_token(), arch.hidden, arch.intermediate, free / n, n)

    # the fewest devices whose memory left over gives passes of at least half the largest budget
    # (a job asks for that many; on one node accelerate spreads a model over every visible GPU)
    used = next((n for n in range(1, devices.count + 1)
                 if weights < n * per_device and derive(n).batch_tokens >= resources.MAX_BATCH_TOKENS // 2),
                devices.count)
    derived = derive(used)
    budget = resources.Budget(settings.batch_tokens or derived.batch_tokens, settings.kv_tokens or derived.kv_tokens,
                              "settings" if (settings.batch_tokens or settings.kv_tokens) else derived.source)
    kv = budget.kv_tokens * arch.kv_bytes_per_token()
    activations = budget.batch_tokens * (8 * arch.hidden + 4 * arch.intermediate) * 2
    training = 0.0
    if trains:
        config = QLoRAConfig()  # LoRA on the authors' modules for this architecture (Falcon: query_key_value)
        targets = resources.lora_target_modules(models.model_type_of(model), config.target_modules)
        training = resources.qlora_state_bytes(arch, config.r, targets, quant == "8bit")
        training += settings.micro_batch * 512 * arch.activation_bytes_per_token(checkpointing=True)
    need = weights + kv + activations + training
    available = devices.count * per_device
    fits = need <= available
    fix = ""
    if not fits:
        smaller = {q: arch.weight_bytes(q) for q in ("8bit", "4bit") if arch.weight_bytes(q) < weights}
        options = [f"model_quantization: {q} ({resources.gib(b)} of weights)" for q, b in smaller.items()]
        more = math.ceil(need / per_device)
        options.append(f"--devices {more}x{devices.kind.name.split('-')[0]} ({more} devices)")
        options.append("lower kv_tokens / batch_tokens in parameters/<profile>/_run.yaml")
        fix = "; or ".join(options)
    return MemoryCheck(model, quant, weights, kv, activations, training, need,
                       used if fits else math.ceil(need / per_device), available, budget, fits, fix)


def seconds(work: Work, model: str, quantization: str, devices: Devices, checkpointing: bool = False) -> float:
    """Wall seconds of ``work`` on one model copy. With ``device_map="auto"`` the layers of a split
    model run one device after another, so one device's rate applies however many hold it."""
    arch = models.architecture(model)
    quant = resolved_quantization(model, quantization)
    speed = QUANTIZED_SPEED.get(quant, 1.0) if devices.kind.name != "cpu" else 1.0
    compute = work.flops(arch, checkpointing) / (devices.kind.flops * speed)
    if devices.kind.bandwidth:  # decoding reads every weight once per step
        compute = max(compute, work.decode_steps * arch.weight_bytes(quant) / devices.kind.bandwidth)
    return compute


# --- the report -------------------------------------------------------------------------------

@dataclass
class Summary:
    runs: list[PlannedRun]
    table: pd.DataFrame  # one row per run: notebook, model, kind, label, seeds, cached, tokens, flops, hours
    memory: list[MemoryCheck]
    devices: Devices

    @property
    def fits(self) -> bool:
        return all(m.fits for m in self.memory)


def summarize(profile: str, devices: Devices, runs: list[PlannedRun] | None = None,
              counter: TokenCounter | None = None, settings: runtime.RunSettings | None = None,
              notebooks: Sequence[str] | None = None, include_stored: bool = False,
              planner: Planner | None = None) -> Summary:
    """The plan's cost per run: the seeds still to compute (``include_stored``: every seed, the
    cost of a run from scratch, for comparing with a measured run; ``planner``: the one that built
    ``runs``, whose frames it reuses)."""
    planner = planner or Planner()
    runs = runs if runs is not None else build(profile, notebooks)
    counter = counter or TokenCounter()
    settings = settings or runtime.for_profile(profile)
    featurized: dict[tuple, set[str]]  # (model, quantization, dataset, prompt format) -> items with hidden states
    rows, featurized = [], {}
    for run in runs:
        work = work_of(run, planner, counter, seeds=run.seeds if include_stored else None, featurized=featurized,
                       settings=settings)
        s = seconds(work, run.model, run.quantization, devices)
        rows.append({"notebook": run.notebook, "model": run.model, "kind": run.kind, "run": run.label,
                     "seeds": len(run.seeds), "cached": len(run.cached), "pending": run.pending,
                     "test_items": run.test_items,
                     "tokens": work.forward_tokens + work.train_tokens + work.generated_tokens,
                     "flops": work.flops(models.architecture(run.model)), "seconds": s})
    table = pd.DataFrame(rows)
    trains: defaultdict[tuple[str, str], bool] = defaultdict(bool)
    for run in runs:
        key = (run.model, run.quantization)
        trains[key] |= run.unit.updates_weights()
    memory = [check_memory(model, quant, trained, devices, settings) for (model, quant), trained in trains.items()]
    gpus = {m.model: m.devices_used for m in memory}
    if len(table):
        table["gpu_hours"] = table["seconds"] / 3600 * table["model"].map(gpus).fillna(1)
    return Summary(runs, table, memory, devices)


def report(summary: Summary, profile: str) -> str:
    """The plan as text: per notebook, per model, memory against the devices, totals."""
    t, lines = summary.table, []
    d = summary.devices
    rate = f"{d.kind.flops / 1e12:,.1f} TFLOP/s" if d.kind.flops >= 1e12 else f"{d.kind.flops / 1e9:,.1f} GFLOP/s"
    lines.append(f"plan of profile {profile!r} on {d.label}"
                 f" ({'measured' if d.kind.name == 'cpu' else 'assumed'} sustained {rate}"
                 + (f", {d.kind.bandwidth / 1e12:.2f} TB/s" if d.kind.bandwidth else "") + f": {d.kind.note})")
    if t.empty:
        return "\n".join(lines + ["no runs"])
    todo = t.seeds - t.cached
    lines.append(f"{len(t)} runs ({int(t.seeds.sum())} run-seeds), {int(t.cached.sum())} seeds already stored, "
                 f"{int(todo.sum())} to compute; {int(t.pending.sum())} runs keyed by MDL results not yet stored")
    lines.append("")
    lines.append(f"{'notebook':<25}{'runs':>6}{'seeds':>7}{'stored':>8}{'Mtokens':>10}{'PFLOP':>10}{'hours':>9}"
                 f"{'GPU-h':>9}")
    for name, part in t.groupby("notebook", sort=False):
        lines.append(f"{name:<25}{len(part):>6}{int(part.seeds.sum()):>7}{int(part.cached.sum()):>8}"
                     f"{part.tokens.sum() / 1e6:>10,.1f}{part.flops.sum() / 1e15:>10,.1f}"
                     f"{part.seconds.sum() / 3600:>9,.2f}{part.gpu_hours.sum():>9,.1f}")
    lines.append(f"{'total':<25}{len(t):>6}{int(t.seeds.sum()):>7}{int(t.cached.sum()):>8}"
                 f"{t.tokens.sum() / 1e6:>10,.1f}{t.flops.sum() / 1e15:>10,.1f}{t.seconds.sum() / 3600:>9,.2f}"
                 f"{t.gpu_hours.sum():>9,.1f}")
    lines.append("")
    lines.append(f"{'model':<32}{'precision':>10}{'weights':>11}{'KV':>10}{'train':>10}{'need':>11}{'devices':>9}"
                 f"{'hours':>9}")
    for m in summary.memory:
        hours = t[t.model == m.model].seconds.sum() / 3600
        lines.append(f"{m.model:<32}{m.quantization:>10}{resources.gib(m.weights):>11}{resources.gib(m.kv):>10}"
                     f"{resources.gib(m.training):>10}{resources.gib(m.need):>11}{m.devices_used:>9}{hours:>9,.2f}")
        lines.append(f"{'':<32}budget: {m.budget.batch_tokens:,} tokens per pass, {m.budget.kv_tokens:,} cached "
                     f"({m.budget.source})")
    lines.append("")
    lines.append("hours: wall-clock on these devices, one model after another (a model split by device_map='auto' "
                 "runs its layers one device after another, so one device's rate applies); GPU-h: hours x the "
                 "devices the model needs (what a Slurm job of that model asks for). FLOPs: 2 x active parameters "
                 "per token plus attention, training = 2 forwards per token, decoding = max(FLOPs, one read of the "
                 "weights per step / bandwidth); bitsandbytes 8-bit at 0.5x and 4-bit at 0.6x the bf16 rate (assumed); "
                 "tokens counted with the embedded model's tokenizer.")
    refused = [m for m in summary.memory if not m.fits]
    for m in refused:
        lines.append(f"REFUSED: {m.model} at {m.quantization} needs {resources.gib(m.need)}, "
                     f"{d.label} have {resources.gib(m.available)}. Fix: {m.fix}")
    return "\n".join(lines)


def preflight(profile: str, devices: str | None = None, notebooks: Sequence[str] | None = None) -> Summary:
    """From a notebook: print the plan of ``profile`` on ``devices`` (e.g. ``"8xH100"``; default
    8 x H100 for the paper profile, this CPU otherwise) and return it (``.table`` has one row per run)."""
    summary = summarize(profile, parse_devices(devices or ("8xH100" if profile == "paper" else "cpu")),
                        notebooks=notebooks)
    print(report(summary, profile))
    return summary


def measured_seconds(profile: str) -> dict[str, float]:
    """Wall seconds of each notebook's last successful run (``outputs/<profile>/<name>/fingerprint.json``)."""
    import json

    out = {}
    for path in sorted(paths.outputs_dir(profile).glob("*/fingerprint.json")):
        out[path.parent.name] = float(json.loads(path.read_text())["seconds"])
    return out


def against_measured(summary: Summary, measured: Mapping[str, float]) -> pd.DataFrame:
    """Estimated (every seed, from scratch) against measured seconds per notebook. A run two
    notebooks share counts for the first; the second measured only reading it back."""
    estimated = summary.table.groupby("notebook", sort=False)["seconds"].sum()
    rows = [{"notebook": name, "estimated_s": float(estimated.get(name, 0.0)), "measured_s": seconds_}
            for name, seconds_ in measured.items()]
    table = pd.DataFrame(rows)
    if len(table):
        total = {"notebook": "total", "estimated_s": table.estimated_s.sum(), "measured_s": table.measured_s.sum()}
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
        table["measured / estimated"] = table.measured_s / table.estimated_s.where(table.estimated_s > 0)
    return table


# --- statistical power ------------------------------------------------------------------------
# How wide each entry's 95% CI will be (``analysis.power``): per plan entry, its test items at the level
# it reads, its seeds and the predicted half-widths of its headline quantities, from variance components
# measured on stored results of the same (dataset, method kind, prompt format) or else assumed.

Group = tuple[str, str, str | None]  # (dataset, method kind, prompt format): results measure their group
MATCH_COLUMNS = ("model", "dataset", "measure", "method", "train_level", "n", "p", "test_level", "source", "rule",
                 "prompt_format")  # the label columns an achieved interval is matched by, where a table has them
SHORT = {"accuracy": "acc", "gap": "gap", "hard_minus_easy": "hard−easy"}
UNSHOWN = ("pool", "noise_easy_rate", "noise_hard_rate")  # labels that restate another one (source, p)
LABEL_WIDTH = 80


@dataclass(frozen=True)
class Power:
    """One headline quantity of an entry (the result table's name): its predicted 95% CI half-width in
    points and, when the last run's tables have it, the achieved one."""

    quantity: str  # accuracy (a Reading) | gap, hard_minus_easy (a Comparison)
    predicted: float
    achieved: float | None = None


@dataclass(frozen=True)
class PowerRow:
    """A plan entry as the power table shows it."""

    notebook: str
    keys: plans.Keys
    n_items: int  # test items at the level the entry reads
    seeds: int  # seeds of its trained runs (1: deterministic runs only)
    source: str  # "measured: <dataset>/<method>" or "assumed"
    quantities: tuple[Power, ...]

    @property
    def label(self) -> str:
        labels = dict(self.keys)
        path = "/".join(str(labels.pop(k)) for k in ("dataset", "measure", "method") if k in labels)
        model = labels.pop("model", "")
        text = " ".join([str(model), path, *(f"{k}={v}" for k, v in labels.items() if k not in UNSHOWN)]).strip()
        return text if len(text) <= LABEL_WIDTH else text[:LABEL_WIDTH - 1] + "…"


@dataclass(frozen=True)
class Measured:
    """Variance components measured on the stored results of one group (``label``: dataset/method)."""

    label: str
    accuracy: power.Components | None = None
    gap: power.Components | None = None
    hard_minus_easy: power.Components | None = None


def group_of(spec: ExperimentSpec) -> Group:
    return (spec.dataset, spec.method.kind, spec.prompt_format)


def entry_group(entry: plans.Entry) -> Group:
    """A comparison belongs to the group of its trained method (its easy run), a reading to its run's."""
    return group_of(entry.easy if isinstance(entry, plans.Comparison) else entry.spec)


def entry_power(notebook: str, entry: plans.Entry, n_items: int, measured: Measured | None = None,
                assumption: power.Assumption = power.ASSUMED) -> PowerRow:
    """The power row of one entry (pure): measured components where ``measured`` has them, else assumed."""
    measured = measured or Measured("")
    if isinstance(entry, plans.Comparison):
        hard, easy, unsup = entry.hard, entry.easy, entry.unsupervised
        gap = measured.gap or power.assumed_difference((hard.method.trains, unsup.method.trains), assumption)
        hme = measured.hard_minus_easy or power.assumed_difference((hard.method.trains, easy.method.trains),
                                                                   assumption)
        quantities: tuple[Power, ...] = (
            Power("gap", power.predict(gap, n_items, (len(hard.run_seeds), len(unsup.run_seeds)))),
            Power("hard_minus_easy", power.predict(hme, n_items, (len(hard.run_seeds), len(easy.run_seeds)))))
        source = gap.source
    else:
        accuracy = measured.accuracy or power.assumed_reading(entry.spec.method.trains, assumption)
        quantities = (Power("accuracy", power.predict(accuracy, n_items, len(entry.spec.run_seeds))),)
        source = accuracy.source
    seeds = max(len(spec.run_seeds) for spec in entry.specs)
    return PowerRow(notebook, entry.keys, n_items, seeds, source, quantities)


def power_rows(notebook: str, entries: Sequence[plans.Entry], n_items: Sequence[int | None],
               measured: Mapping[Group, Measured] | None = None,
               assumption: power.Assumption = power.ASSUMED) -> list[PowerRow]:
    """The power rows of a notebook's entries with their item counts (None or 0: left out) (pure)."""
    measured = measured or {}
    return [entry_power(notebook, entry, n, measured.get(entry_group(entry)), assumption)
            for entry, n in zip(entries, n_items, strict=True) if n]


def entry_items(planner: Planner, notebook: str, entry: plans.Entry) -> int | None:
    """Test items an entry reads: its (hard) run's items at the entry's level (None: every level)."""
    run = planner.experiments.get((notebook, entry.specs[-1]))
    if run is None:
        return None
    return len(run.item_ids) if entry.level is None else sum(level == entry.level for level in run.item_levels)


def _stored_matrix(planner: Planner, notebook: str, spec: ExperimentSpec, level: str | None,
                   value: str) -> tuple[np.ndarray, list[str]] | None:
    """``correct[seed, item]`` of a run's stored seeds at ``level`` (None when none is stored or readable)."""
    run = planner.experiments.get((notebook, spec))
    if run is None or run.payload is None or not run.cached:
        return None
    try:
        frames = [(planner.store.load(run.payload, s), s) for s in run.cached]
        stored = [f if "seed" in f.columns else f.assign(seed=s) for f, s in frames if f is not None]
        return estimates.correct_matrix(pd.concat(stored, ignore_index=True), level, value) if stored else None
    except (ValueError, KeyError, RuntimeError):  # no items at that level, a damaged file (CorruptResult)
        return None


def measure_groups(planner: Planner, assumption: power.Assumption = power.ASSUMED) -> dict[Group, Measured]:
    """Per group with stored results: the components of an accuracy (the first stored run of the group)
    and of the gap and hard − easy (the first comparison whose three runs are stored)."""
    accuracy: dict[Group, power.Components] = {}
    pairs: dict[Group, tuple[power.Components, power.Components]] = {}
    loaded: dict[tuple[ExperimentSpec, str | None, str], tuple[np.ndarray, list[str]] | None] = {}
    for notebook, entries in planner.entries.items():
        for entry in entries:
            level, value = entry.level, getattr(entry, "value", "correct")
            comparison = isinstance(entry, plans.Comparison) and entry_group(entry) not in pairs
            if not comparison and all(group_of(spec) in accuracy for spec in entry.specs):
                continue
            for spec in entry.specs:  # each stored run read once, however many entries read it
                if (spec, level, value) not in loaded:
                    loaded[(spec, level, value)] = _stored_matrix(planner, notebook, spec, level, value)
            got = [loaded[(spec, level, value)] for spec in entry.specs]
            for spec, matrix in zip(entry.specs, got):
                if matrix is not None and group_of(spec) not in accuracy:
                    accuracy[group_of(spec)] = power.reading(matrix[0], _measured_label(spec),
                                                             assumption.seed_terms(spec.method.trains))
            # the ignores: mypy cannot narrow ``got`` through all(g is not None ...)
            if (comparison and all(g is not None for g in got)
                    and all(g[1] == got[-1][1] for g in got)):  # type: ignore[index]
                u, e, h = (matrix for matrix, _ in got)  # type: ignore[misc]
                tu, te, th = (assumption.seed_terms(spec.method.trains) for spec in entry.specs)  # one seed stored
                label = _measured_label(cast(plans.Comparison, entry).easy)  # (comparison above)
                pairs[entry_group(entry)] = (power.difference(h, u, label, (th, tu)),
                                             power.difference(h, e, label, (th, te)))
    return {group: Measured(f"{group[0]}/{group[1]}", accuracy.get(group), *pairs.get(group, (None, None)))
            for group in {*accuracy, *pairs}}


def _measured_label(spec: ExperimentSpec) -> str:
    return f"measured: {spec.dataset}/{spec.method.kind}"


def plan_power(planner: Planner, assumption: power.Assumption = power.ASSUMED) -> list[PowerRow]:
    """The power rows of every notebook a planner has planned (``build(..., planner=planner)`` first)."""
    measured = measure_groups(planner, assumption)
    rows: list[PowerRow] = []
    for notebook, entries in planner.entries.items():
        rows += power_rows(notebook, entries, [entry_items(planner, notebook, e) for e in entries], measured,
                           assumption)
    return rows


# the achieved intervals of the last run

def achieved_tables(profile: str) -> dict[str, list[pd.DataFrame]]:
    """Per notebook, the tables of its last run with columns quantity, lo, hi
    (``outputs/<profile>/<notebook>/tables/*.csv``; ``results.csv`` first)."""
    out: dict[str, list[pd.DataFrame]] = {}
    found = paths.outputs_dir(profile).glob("*/tables/*.csv")
    for path in sorted(found, key=lambda p: (p.parent.parent.name, p.name != "results.csv", p.name)):
        try:
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])  # "none" and "None" stay labels
        except (OSError, ValueError):
            continue
        if {"quantity", "lo", "hi"} <= set(frame.columns):
            out.setdefault(path.parent.parent.name, []).append(frame)
    return out


def _same(value: Any, label: Any) -> bool:
    try:
        return math.isclose(float(value), float(label), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return str(value) == str(label)


def achieved(keys: plans.Keys, quantity: str, tables: Sequence[pd.DataFrame]) -> float | None:
    """The achieved half-width (points) of ``quantity`` of the entry labelled ``keys``: the first table row
    whose label columns (``MATCH_COLUMNS`` present in the table) equal the entry's, empty where it has none."""
    labels = {k: v for k, v in dict(keys).items() if v is not None}
    for table in tables:
        rows = table[table["quantity"] == quantity]
        for column in (c for c in MATCH_COLUMNS if c in table.columns):
            keep = (rows[column].map(lambda v, want=labels[column]: _same(v, want)) if column in labels
                    else rows[column].isna())
            rows = rows[keep.astype(bool)]
        if len(rows):
            lo, hi = float(rows["lo"].iloc[0]), float(rows["hi"].iloc[0])
            return 50 * (hi - lo) if math.isfinite(hi - lo) else None
    return None


def with_achieved(rows: Sequence[PowerRow], tables: Mapping[str, Sequence[pd.DataFrame]]) -> list[PowerRow]:
    """``rows`` with the achieved half-widths of the notebooks' last tables (``achieved_tables``)."""
    return [replace(row, quantities=tuple(replace(q, achieved=achieved(row.keys, q.quantity,
                                                                       tables.get(row.notebook, ())))
                                          for q in row.quantities)) for row in rows]


def power_table(rows: Sequence[PowerRow]) -> pd.DataFrame:
    """One row per (entry, headline quantity): notebook, the entry's labels, n_items, seeds, quantity,
    predicted and achieved half-widths (points), source."""
    records = [{"notebook": row.notebook, **dict(row.keys), "n_items": row.n_items, "seeds": row.seeds,
                "quantity": q.quantity, "predicted": q.predicted, "achieved": q.achieved, "source": row.source}
               for row in rows for q in row.quantities]
    return pd.DataFrame(records)


def power_report(rows: Sequence[PowerRow], achieved: bool = False,
                 assumption: power.Assumption = power.ASSUMED) -> str:
    """The power table as text: one line per entry, grouped by notebook."""
    def cell(q: Power) -> str:
        text = f"{SHORT.get(q.quantity, q.quantity)} ±{q.predicted:.1f}"
        if achieved:
            text += f" (run {'-' if q.achieved is None else f'±{q.achieved:.1f}'})"
        return text

    cells = {id(row): "   ".join(cell(q) for q in row.quantities) for row in rows}
    label_width = max([len(row.label) for row in rows] + [5]) + 2
    cell_width = max([len(text) for text in cells.values()] + [11]) + 3
    lines = ["statistical power: predicted 95% CI half-widths (± points) of each entry's headline quantities"
             + (", the last run's achieved ones in brackets (outputs/<profile>/<notebook>/tables)" if achieved else "")]
    for notebook in dict.fromkeys(row.notebook for row in rows):
        lines += ["", notebook,
                  f"  {'entry':<{label_width}}{'items':>6}{'seeds':>6}  {'half-widths':<{cell_width}}variance from"]
        lines += [f"  {row.label:<{label_width}}{row.n_items:>6}{row.seeds:>6}  {cells[id(row)]:<{cell_width}}"
                  f"{row.source}" for row in rows if row.notebook == notebook]
    p, rho = assumption.accuracy, assumption.correlation
    lines += ["", f"assumed (analysis.power.ASSUMED): accuracy {p:g} per item, paired outcomes correlated {rho:g} "
                  f"({200 * p * (1 - p) * (1 - rho):.0f}% discordant), a trained run's accuracy varying by "
                  f"{100 * assumption.seed_sd:g} points (sd) across seeds; measured: from the stored seeds of the "
                  "same dataset, method and prompt format. With one seed the bootstrap cannot see seed variation."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m e2h_utils.pipeline.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--devices", default=None, help="e.g. 8xH100, 4xA100, cpu (default: paper 8xH100, else cpu)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="plan only these notebooks")
    parser.add_argument("--runs", action="store_true", help="also list every run")
    parser.add_argument("--measured", action="store_true",
                        help="estimate every run from scratch and compare with the last measured run per notebook; "
                             "show the last run's achieved CI half-widths beside the predicted ones")
    args = parser.parse_args(argv)
    try:
        devices = parse_devices(args.devices or ("cpu" if args.profile != "paper" else "8xH100"))
        planner = Planner()
        runs = build(args.profile, args.only, planner=planner)
        summary = summarize(args.profile, devices, runs=runs, notebooks=args.only, include_stored=args.measured,
                            planner=planner)
    except (ValueError, OSError) as error:  # a bad YAML or _run.yaml, an unknown model or profile
        print(f"error: {error}")
        return 2
    print(report(summary, args.profile))
    rows = plan_power(planner)
    if args.measured:
        rows = with_achieved(rows, achieved_tables(args.profile))
    print("\n" + power_report(rows, achieved=args.measured))
    if args.measured:
        print("\nestimated from scratch against the last measured run (outputs/<profile>/*/fingerprint.json):")
        print(against_measured(summary, measured_seconds(args.profile)).round(2).to_string(index=False))
    if args.runs:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(summary.table.drop(columns=["flops"]).round(2).to_string(index=False))
    return 0 if summary.fits else 2


if __name__ == "__main__":
    raise SystemExit(main())
