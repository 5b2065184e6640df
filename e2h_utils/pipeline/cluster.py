"""The plan's runs as jobs on a Slurm cluster (or local processes), through submitit.

``run_plan(profile, "slurm")`` (``make reproduce PROFILE=paper EXECUTOR=slurm``) computes every
run of the profile's plan (``e2h_utils.pipeline.plan``) before the notebooks execute:

1. the plan's runs that are not yet stored are grouped by model (and precision) and cut into
   shards of ``executor.runs_per_job`` runs (``shards``): a job loads its model once;
2. each shard is one submitit job (a Slurm array task), asking for the GPUs its model needs
   (``plan.check_memory`` on ``slurm.gpus_per_node`` GPUs of kind ``slurm.gpu``), with the
   Slurm parameters of ``parameters/<profile>/_run.yaml`` (``runtime.SlurmSettings``);
3. phase 1 (MDL confidences) runs first: the levels of MDL measures, and so the keys of the runs
   that use them, exist only once it is stored; then the plan is built again and phase 2 runs;
   phase 3 (the easy-to-hard evaluators, which read the candidates phase 2 sampled) runs last;
4. the notebooks then execute as usual and find every result in the store.

A job re-builds the plan itself (it is pure and deterministic) and runs the keys it was given,
so nothing but a profile name and keys travels to the cluster. Each run writes item results
per seed into the shared store, atomically and under the key it would have in the notebook
(``results.ResultStore``): two jobs finishing the same key both leave a whole file, a job killed
mid-write leaves a temporary folder that the next writer of that folder removes, and running
the plan again computes only the seeds that are missing. The features cache (one file per model
and dataset) is read-modify-write: two jobs adding to it at once keep the later one's file, and
the other's features are extracted again when next needed (never wrong, only slower).
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, cast

from e2h_utils import paths
from e2h_utils.engine import runtime
from e2h_utils.experiments.store import ResultStore
from e2h_utils.pipeline import plan, units

ENV_PREFIXES = ("E2H_", "HF_", "TRANSFORMERS_", "OMP_NUM_THREADS")  # passed to every job


@dataclass(frozen=True)
class Shard:
    """Runs of one model (at one precision) that one job computes."""

    phase: int
    model: str
    dtype: str
    quantization: str
    keys: tuple[str, ...]
    notebooks: tuple[str, ...] = ()  # the notebooks whose plan holds these keys (the job plans only them)

    @property
    def name(self) -> str:
        return f"e2h-p{self.phase}-{self.model.split('/')[-1]}"


def shards(runs: Iterable[plan.PlannedRun], runs_per_job: int, phase: int | None = None) -> list[Shard]:
    """The runs not yet stored (and not pending on MDL) by (phase, model, precision), in plan
    order, cut into shards of at most ``runs_per_job`` runs."""
    groups: dict[tuple, list[plan.PlannedRun]] = {}
    for run in runs:
        if run.done or run.pending or (phase is not None and run.phase != phase):
            continue
        groups.setdefault((run.phase, run.model, run.dtype, run.quantization), []).append(run)
    out = []
    for (ph, model, dtype, quant), members in groups.items():
        for start in range(0, len(members), runs_per_job):
            part = members[start:start + runs_per_job]
            notebooks = tuple(sorted({r.notebook for r in part} | {n for r in part for n in r.shared_with}))
            # pending runs (key None) were left out above
            out.append(Shard(ph, model, dtype, quant, tuple(cast(str, r.key) for r in part), notebooks))
    return out


def execute(run: plan.PlannedRun, lm: Any, planner: plan.Planner, store: ResultStore, progress: bool = False) -> None:
    """Compute (or reuse) one planned run with a loaded model, exactly as its notebook would."""
    run.unit.execute(run, lm, planner.frame, store, progress)


def run_shard(profile: str, shard: Shard, environment: dict[str, str] | None = None) -> dict[str, Any]:
    """The body of one job: plan again, load the shard's model once, run its keys."""
    from e2h_utils.engine import models

    os.environ.update(environment or {})
    started = time.monotonic()
    store = ResultStore()
    planner = plan.Planner(store)
    runs = {r.key: r for r in plan.build(profile, shard.notebooks or None, planner=planner) if r.key}
    missing = [k for k in shard.keys if k not in runs]
    if missing:
        raise RuntimeError(f"{len(missing)} key(s) of shard {shard.name} are not in the plan of {profile!r} any more "
                           f"(the parameters or the code changed since it was submitted): plan and submit again")
    todo = [runs[k] for k in shard.keys if not runs[k].done]
    if todo:
        # the job is an entry point: its run settings came with its environment (``job_environment``)
        lm = models.load_model(shard.model, runtime.current(), dtype=shard.dtype, quantization=shard.quantization)
        for run in todo:
            execute(run, lm, planner, store)
        del lm
        gc.collect()
    return {"shard": shard.name, "runs": len(shard.keys), "computed": len(todo),
            "seconds": round(time.monotonic() - started, 1)}


def job_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


def executor_for(kind: str, profile: str, settings: runtime.RunSettings | None = None, gpus: int = 0) -> Any:
    """A submitit executor: ``slurm`` with the profile's Slurm settings, or ``local`` processes."""
    import submitit

    settings = settings or runtime.for_profile(profile)
    ex = settings.executor
    folder = paths.project_root() / ex.folder.format(profile=profile)
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster="local" if kind == "local" else "slurm")
    except RuntimeError as error:  # submitit looks for srun
        raise RuntimeError(f"EXECUTOR=slurm needs a Slurm login node (srun and sbatch on PATH): {error}. On one "
                           "machine, run in-process (no EXECUTOR) or use EXECUTOR=local.") from None
    params: dict[str, Any] = {"timeout_min": ex.slurm.timeout_min, "cpus_per_task": ex.slurm.cpus_per_task,
                              "gpus_per_node": gpus, "tasks_per_node": 1, "nodes": 1}
    if kind == "slurm":
        slurm = ex.slurm
        params.update(slurm_array_parallelism=ex.max_parallel,
                      slurm_additional_parameters=dict(slurm.additional))
        for name, value in (("slurm_partition", slurm.partition), ("slurm_account", slurm.account),
                            ("slurm_constraint", slurm.constraint), ("mem_gb", slurm.mem_gb)):
            if value is not None:
                params[name] = value
    executor.update_parameters(**params)
    return executor


def gpus_for(shard: Shard, settings: runtime.RunSettings) -> int:
    """GPUs the shard's model needs (0 for the embedded model or a dry run's stand-in on a CPU)."""
    from e2h_utils.engine import models

    if models.as_spec(shard.model).name == models.EMBEDDED or os.environ.get(models.SUBSTITUTE_ENV):
        return 0
    slurm = settings.executor.slurm
    devices = plan.Devices(plan.DEVICES[slurm.gpu.upper()], slurm.gpus_per_node)
    return plan.check_memory(shard.model, shard.quantization, True, devices, settings).devices_used


def submit(kind: str, profile: str, work: Sequence[Shard], settings: runtime.RunSettings | None = None) -> list[Any]:
    """One job per shard (jobs asking for the same number of GPUs go in one Slurm array)."""
    settings = settings or runtime.for_profile(profile)
    environment = job_environment()
    jobs = []
    by_gpus: dict[int, list[Shard]] = {}
    for shard in work:
        by_gpus.setdefault(gpus_for(shard, settings), []).append(shard)
    for gpus, part in by_gpus.items():
        executor = executor_for(kind, profile, settings, gpus)
        executor.update_parameters(name=f"e2h-{profile}")
        with executor.batch():
            for shard in part:
                jobs.append(executor.submit(run_shard, profile, shard, environment))
    return jobs


def _cause(error: BaseException) -> str:
    """The job's own exception line from submitit's failure report (which wraps the traceback)."""
    import re

    lines = [line.strip() for line in str(error).splitlines()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line)]
    return raised[-1] if raised else (lines[0] if lines else repr(error))


def wait(jobs: Sequence[Any]) -> list[dict[str, Any]]:
    """Results of every job; the failures (with their log files) raised together at the end."""
    results, failures = [], []
    for job in jobs:
        try:
            results.append(job.result())
        except Exception as error:  # noqa: BLE001 - collect every failure
            failures.append(f"job {job.job_id}: {_cause(error)} (log: {getattr(job.paths, 'stderr', '?')})")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} job(s) failed; every result they stored is kept, and "
                           "running the same command again computes only what is missing:\n  " + "\n  ".join(failures))
    return results


def run_plan(profile: str, kind: str, notebooks: Sequence[str] | None = None, dry_run: bool = False,
             settings: runtime.RunSettings | None = None) -> list[dict[str, Any]]:
    """Compute every run of the plan as jobs (phase 1, then 2 and 3 re-planned); returns each
    job's summary. ``kind``: ``local`` (processes on this machine) or ``slurm``."""
    if kind not in ("local", "slurm"):
        raise ValueError(f"executor {kind!r}: use local or slurm (inprocess runs inside the notebooks)")
    settings = settings or runtime.for_profile(profile)
    summaries: list[dict[str, Any]] = []
    for phase in units.PHASES:
        runs = plan.build(profile, notebooks)
        work = shards(runs, settings.executor.runs_per_job, phase)
        pending = [r for r in runs if r.pending and r.phase == phase]
        if pending:
            raise RuntimeError(f"{len(pending)} run(s) still wait for MDL results after phase 1 "
                               f"(e.g. {pending[0].label}); see the phase-1 job logs")
        print(f"{kind} executor, phase {phase}: {sum(len(s.keys) for s in work)} run(s) in {len(work)} job(s)",
              flush=True)
        if work:
            summaries += wait(submit(kind, profile, work, settings))
    return summaries


def run_inprocess(profile: str, notebooks: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The same shards, run one after another in this process (the reference the jobs match)."""
    environment = job_environment()
    summaries = []
    for phase in units.PHASES:
        settings = runtime.for_profile(profile)
        for shard in shards(plan.build(profile, notebooks), settings.executor.runs_per_job, phase):
            summaries.append(run_shard(profile, shard, environment))
    return summaries


def stored_files(root: Path | None = None) -> dict[str, tuple[int, float]]:
    """Every stored result file (relative path -> size, mtime), for checking what a rerun touched."""
    root = Path(root) if root is not None else paths.results_dir()
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("seed-*.parquet")}
