"""Sweeps as submitit jobs: shards by model, results identical to the in-process run, resuming
after a killed job, and a result store that is safe with many writers."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2h_utils.pipeline import cluster
from e2h_utils import paths
from e2h_utils.pipeline import plan, units
from e2h_utils.experiments import store as results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["hardness_measures", "walkthrough"]  # MDL (phase 1), runs keyed by it (phase 2), experiments


def _run(notebook: str, model: str, key: str, phase: int = 2, seeds=(0,), cached=()) -> plan.PlannedRun:
    return plan.PlannedRun(notebook=notebook, unit=units.ZeroShotItems(), model=model, dtype="auto",
                           quantization="none",
                           dataset="arc", method="icl", measure="grade", train_level="easy", n_train=1, seeds=seeds,
                           test_items=3, key=key, cached=cached, phase=phase)


def test_shards_group_runs_by_phase_and_model_and_skip_what_is_stored():
    runs = [_run("a", "m1", "k1", phase=1), _run("a", "m2", "k2"), _run("b", "m1", "k3"), _run("b", "m1", "k4"),
            _run("b", "m1", "k5"), _run("b", "m1", "done", cached=(0,)), _run("b", "m1", None)]
    got = cluster.shards(runs, runs_per_job=2)
    assert [(s.phase, s.model, s.keys) for s in got] == [
        (1, "m1", ("k1",)), (2, "m2", ("k2",)), (2, "m1", ("k3", "k4")), (2, "m1", ("k5",))]
    assert got[2].notebooks == ("b",)
    assert [s.keys for s in cluster.shards(runs, 10, phase=1)] == [("k1",)]


# --- many writers ------------------------------------------------------------------------------

def _write_many(root: str, value: int, times: int) -> None:
    store = results.ResultStore(Path(root))
    for _ in range(times):
        store.save({"dataset": "arc", "method": "icl", "x": 1}, 0, pd.DataFrame({"v": [value] * 1000}))


def _killed_mid_write(root: str) -> None:
    from e2h_utils import atomic

    target = results.ResultStore(Path(root)).path({"dataset": "arc", "method": "icl", "x": 1}, 1)
    with atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"half a parquet file")
        os._exit(9)  # as SIGKILL: no cleanup runs


def test_the_store_is_safe_with_many_writers_and_a_writer_killed_mid_write(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(tmp_path), value, 30)) for value in (1, 2, 3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
        assert w.exitcode == 0
    store = results.ResultStore(tmp_path)
    payload = {"dataset": "arc", "method": "icl", "x": 1}
    frame = store.load(payload, 0)
    assert len(frame) == 1000 and frame["v"].nunique() == 1  # one writer's whole file, never a mix
    killed = context.Process(target=_killed_mid_write, args=(str(tmp_path),))
    killed.start()
    killed.join()
    folder = store.folder(payload)
    assert killed.exitcode == 9 and [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert store.load(payload, 1) is None  # the half-written seed is not there
    store.save(payload, 2, pd.DataFrame({"v": [0]}))  # the next writer removes the dead one's leftovers
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert sorted(p.name for p in folder.glob("seed-*.parquet")) == ["seed-0.parquet", "seed-2.parquet"]


# --- submitit's local executor --------------------------------------------------------------------

def _project(tmp_path: Path, name: str, monkeypatch) -> Path:
    home = tmp_path / name
    home.mkdir()
    shutil.copytree(ROOT / "notebooks", home / "notebooks")
    shutil.copytree(ROOT / "parameters", home / "parameters")
    monkeypatch.setenv("E2H_HOME", str(home))
    monkeypatch.delenv("E2H_RESULTS", raising=False)
    return home


def _read_all(root: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(root)): pd.read_parquet(p) for p in sorted(root.rglob("seed-*.parquet"))}


# A resumed job may score its items in other batches than the in-process run: other padding, another
# order of float32 reductions. Each of SmolLM2's 30 layers then rounds differently by about sqrt(576)
# float32 epsilons (576: the hidden size), ~1.4e-6 relative per layer, ~5e-5 over the layers: well inside
# rtol 1e-4 (seen: 0.321529 vs 0.321527, 6e-6). Predictions, labels and correctness must match exactly.
FLOAT_RTOL, FLOAT_ATOL = 1e-4, 1e-7


def _is_float_array(value: object) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0 and all(
        isinstance(v, (float, np.floating)) for v in np.asarray(value).ravel())


def _same_results(frame: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Item results of two runs: every value equal, floats (and arrays of floats: log-probabilities)
    within the float32 tolerance above; predictions, labels and correctness exactly."""
    assert list(frame.columns) == list(reference.columns) and len(frame) == len(reference)
    for column in frame.columns:
        a, b = frame[column].reset_index(drop=True), reference[column].reset_index(drop=True)
        if column not in ("pred", "correct", "label") and pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(a, b, rtol=FLOAT_RTOL, atol=FLOAT_ATOL, err_msg=column)
        elif len(a) and _is_float_array(a.iloc[0]):
            for x, y in zip(a, b):
                np.testing.assert_allclose(np.asarray(x, float), np.asarray(y, float), rtol=FLOAT_RTOL,
                                           atol=FLOAT_ATOL, err_msg=column)
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True, obj=column)


@pytest.mark.slow
@pytest.mark.integration
def test_local_executor_matches_the_inprocess_run_and_recomputes_only_what_a_killed_job_lost(
        tmp_path, monkeypatch, mirror):
    monkeypatch.setenv("E2H_CACHE", str(paths.cache_dir()))  # the converted model, before E2H_HOME moves it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same arithmetic in this process and in the jobs

    # reference: the shards run one after another in this process
    reference_home = _project(tmp_path, "inprocess", monkeypatch)
    summaries = cluster.run_inprocess("smoke", NOTEBOOKS)
    assert sum(s["computed"] for s in summaries) > 0
    reference = _read_all(reference_home / "results")
    phases = {r.phase for r in plan.build("smoke", NOTEBOOKS)}
    assert phases == {1, 2}

    # the same plan as local submitit jobs, killed once, then resumed
    home = _project(tmp_path, "local", monkeypatch)
    runs = plan.build("smoke", NOTEBOOKS)
    first = cluster.shards(runs, runs_per_job=50, phase=1)
    jobs = cluster.submit("local", "smoke", first)
    deadline = time.monotonic() + 600
    while not list((home / "results").rglob("seed-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    for job in jobs:
        job.cancel()  # as scancel / a node lost mid-run
    for job in jobs:
        while not job.done() and time.monotonic() < deadline:
            time.sleep(0.2)
    kept = cluster.stored_files(home / "results")
    assert kept and len(kept) < len(reference), "the kill came after everything was stored"
    summaries = cluster.run_plan("smoke", "local", NOTEBOOKS)
    after = cluster.stored_files(home / "results")
    assert {k: v for k, v in after.items() if k in kept} == kept  # nothing stored before the kill was rewritten
    assert sorted(after) == sorted(reference)
    for name, frame in _read_all(home / "results").items():
        _same_results(frame, reference[name])
    assert not [p for p in (home / "results").rglob("*") if p.name.endswith(".tmp")]
    # and the notebooks then compute nothing: every run they ask for is stored under its key
    from e2h_utils.pipeline import reproduce

    assert reproduce.run("smoke", only=NOTEBOOKS) == {n: reproduce.RAN for n in NOTEBOOKS}
    assert cluster.stored_files(home / "results") == after
    assert all(r.done for r in plan.build("smoke", NOTEBOOKS))
    assert sum(s["computed"] for s in cluster.run_plan("smoke", "local", NOTEBOOKS)) == 0


def test_slurm_jobs_get_the_profiles_slurm_settings(tmp_path, monkeypatch):
    """The sbatch script submitit would submit carries _run.yaml's Slurm settings (checked with a
    stand-in srun on PATH: there is no Slurm here)."""
    from e2h_utils.engine import runtime

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    settings = runtime.parse({"executor": {"kind": "slurm", "max_parallel": 4, "slurm": {
        "partition": "gpu", "account": "lab", "constraint": "h100", "mem_gb": 500, "timeout_min": 600,
        "additional": {"qos": "high"}}}})
    executor = cluster.executor_for("slurm", "paper", settings, gpus=2)
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --constraint=h100",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --mem=500GB", "#SBATCH --time=600", "#SBATCH --qos=high",
                 "#SBATCH --cpus-per-task=16"):
        assert line in script, line
    assert executor._executor.parameters["array_parallelism"] == 4


def test_slurm_outside_a_cluster_says_what_to_do_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="needs a Slurm login node.*EXECUTOR=local"):
        cluster.executor_for("slurm", "paper")


@pytest.mark.slow
@pytest.mark.integration
def test_a_failed_job_is_reported_with_its_own_error_and_log(tmp_path, monkeypatch, mirror):
    monkeypatch.setenv("E2H_CACHE", str(paths.cache_dir()))
    _project(tmp_path, "failing", monkeypatch)
    stale = cluster.Shard(2, "embedded", "auto", "none", ("nosuchkey",), ("walkthrough",))
    with pytest.raises(RuntimeError) as raised:
        cluster.wait(cluster.submit("local", "smoke", [stale]))
    message = str(raised.value)
    assert message.startswith("1 of 1 job(s) failed; every result they stored is kept")
    assert "RuntimeError: 1 key(s) of shard e2h-p2-embedded are not in the plan of 'smoke' any more" in message
    assert "_log.err)" in message
