"""e2h_utils.engine.runtime: a profile's run settings (placement, budgets, executor), parsed once, typed."""

from __future__ import annotations

import pytest

from e2h_utils.engine import runtime


def test_defaults_when_there_is_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    monkeypatch.delenv(runtime.SETTINGS_ENV, raising=False)
    settings = runtime.for_profile("embedded")
    assert settings == runtime.RunSettings() == runtime.current()
    assert settings.device_map == "auto" and settings.batch_tokens is None and settings.executor.kind == "inprocess"


def test_a_file_is_parsed_into_typed_settings(tmp_path, monkeypatch):
    path = tmp_path / "_run.yaml"
    path.write_text("max_memory: {0: 70GiB, cpu: 200GiB}\nbatch_tokens: 16384\n"
                    "executor:\n  kind: slurm\n  runs_per_job: 20\n  slurm: {partition: gpu, gpus_per_node: 4,"
                    " additional: {qos: high}}\n")
    settings = runtime.load(path)
    assert settings.memory_map() == {0: "70GiB", "cpu": "200GiB"}
    assert settings.batch_tokens == 16384 and settings.kv_tokens is None
    assert settings.executor.kind == "slurm" and settings.executor.runs_per_job == 20
    assert settings.executor.slurm.partition == "gpu" and settings.executor.slurm.gpus_per_node == 4
    assert settings.executor.slurm.additional == (("qos", "high"),)
    monkeypatch.setenv(runtime.SETTINGS_ENV, str(path))
    assert runtime.current() == settings


@pytest.mark.parametrize("text, message", [
    ("device_map: everywhere\n", "device_map must be one of auto, single"),
    ("batch_tokens: 10\n", "batch_tokens must be a whole number of tokens >= 64"),
    ("bach_tokens: 4096\n", "unknown setting(s) bach_tokens; valid: device_map"),
    ("executor: {kind: pbs}\n", "executor.kind must be one of inprocess, local, slurm"),
    ("executor: {slurm: {gpus: 8}}\n", "slurm: unknown setting(s) gpus; valid: partition"),
    ("max_memory: 70GiB\n", "max_memory must be a mapping"),
    ("max_memory: {gpu0: 70GiB}\n", "max_memory: 'gpu0' is not a device: give a GPU index"),
    ("max_memory: {0: lots}\n", "max_memory.0: 'lots' is not a size"),
    ("max_memory: {cpu: 70 gigabytes}\n", "max_memory.cpu: '70 gigabytes' is not a size"),
    ("gradient_checkpointing: yes\n", "gradient_checkpointing must be one of auto, on, off"),
    ("[1, 2]\n", "expected a mapping of settings"),
])
def test_bad_settings_name_the_file_and_the_fix(tmp_path, text, message):
    path = tmp_path / "_run.yaml"
    path.write_text(text)
    with pytest.raises(runtime.SettingsError) as info:
        runtime.load(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_the_slurm_gpu_kind_must_be_one_the_plan_knows():
    from e2h_utils.pipeline import plan

    assert set(runtime.GPUS) == set(plan.DEVICES)
    with pytest.raises(runtime.SettingsError, match="executor.slurm.gpu must be one of H100, H200, A100"):
        runtime.parse({"executor": {"slurm": {"gpu": "V100"}}})


def test_the_paper_run_settings_parse():
    settings = runtime.for_profile("paper")
    assert settings.executor.kind == "inprocess" and settings.executor.slurm.gpus_per_node == 8


@pytest.mark.parametrize("slurm, message", [
    ({"additional": {"qos": "high\nrm -rf ~"}}, "newline or a shell metacharacter"),
    ({"additional": {"comment": "a;b"}}, "shell metacharacter"),
    ({"additional": {"comment": "$(id)"}}, "shell metacharacter"),
    ({"additional": {"wrap": "echo hi"}}, "unknown option 'wrap'"),
    ({"partition": "gpu --qos=x"}, "executor.slurm.partition"),
    ({"account": "a`id`"}, "executor.slurm.account"),
])
def test_slurm_options_are_plain_tokens_or_refused(slurm, message):
    """Slurm options go into the batch script the cluster runs: a newline in a value would start a shell
    command there, so every value is a plain token and ``additional`` takes known #SBATCH options only."""
    with pytest.raises(runtime.SettingsError, match=message):
        runtime.parse({"executor": {"kind": "slurm", "slurm": slurm}})
    ok = runtime.parse({"executor": {"kind": "slurm", "slurm": {"partition": "gpu-a100", "additional": {
        "qos": "high", "gres": "gpu:a100:4", "exclude": "node[01-04]", "mail_user": "me@lab.org"}}}})
    assert dict(ok.executor.slurm.additional)["gres"] == "gpu:a100:4"


def test_torch_threads_follow_the_cpus_the_process_is_given(monkeypatch):
    """On a shared machine torch would start one thread per core of the machine; a process given
    one CPU (an affinity mask, a Slurm allocation) runs one, and a lower explicit setting stays."""
    import os

    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
        assert runtime.allowed_cpus() == 1 and runtime.fit_threads() == 1 == torch.get_num_threads()
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
        assert runtime.fit_threads() == 1  # never raised: 1 was set (as OMP_NUM_THREADS=1 would)
    finally:
        torch.set_num_threads(before)


def test_max_memory_takes_accelerate_sizes_and_byte_counts():
    settings = runtime.parse({"max_memory": {0: "70GiB", 1: 80_000_000_000, "cpu": "200GB", "disk": "1500.5GB"}})
    assert settings.memory_map() == {0: "70GiB", 1: 80_000_000_000, "cpu": "200GB", "disk": "1500.5GB"}
    from accelerate.utils.modeling import convert_file_size_to_int

    assert all(convert_file_size_to_int(v) > 0 for v in settings.memory_map().values())  # accelerate reads each


def test_run_settings_are_read_at_the_entry_points_and_passed_below(tiny_model_dir, tmp_path, monkeypatch):
    """Only a notebook's setup cell and a cluster job (entry points) read E2H_RUN_SETTINGS; a model
    loaded without settings gets the defaults, and its runner follows the settings it was placed with."""
    import json
    import re
    from pathlib import Path

    from e2h_utils.engine import models
    from e2h_utils.experiments.runner import Runner

    root = Path(__file__).resolve().parents[1]
    readers = {str(p.relative_to(root)) for p in (root / "e2h_utils").rglob("*.py")
               if re.search(r"runtime\.current\(\)\s*[,)]", p.read_text()) and p.name != "runtime.py"}
    assert readers == {"e2h_utils/pipeline/cluster.py"}, readers  # the job's entry point, and no other
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                         if c["cell_type"] == "code")
        loads = re.findall(r"load_model\(model[^)]*\)|run_for_models\([^)]*\)|precision = \{[^}]*\}", code)
        assert "run_settings = runtime.current()" in code and loads, notebook.name
        assert all("run_settings" in call for call in loads), (notebook.name, loads)

    path = tmp_path / "_run.yaml"
    path.write_text("batch_tokens: 1234\n")
    monkeypatch.setenv(runtime.SETTINGS_ENV, str(path))
    assert models.load_model(str(tiny_model_dir)).settings == runtime.RunSettings()  # not the environment's
    given = runtime.current()
    lm = models.load_model(str(tiny_model_dir), given)
    assert lm.settings == given and Runner(lm).settings == given
