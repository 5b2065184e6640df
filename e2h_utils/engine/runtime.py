"""How a profile runs on its hardware, not what it computes: ``parameters/<profile>/_run.yaml``.

Nothing here changes a result, so none of it enters a result's key: where the model's layers go
(``device_map``, ``max_memory``, disk offload), the token budgets of a forward pass, gradient
checkpointing, QLoRA's micro-batches, how many rows chain of thought decodes together, where
QLoRA adapters are kept, and the executor of a sweep (in-process, or Slurm / a local process pool through
submitit). A profile without the file runs with the defaults; ``make reproduce`` hands the file to
every notebook's kernel through ``E2H_RUN_SETTINGS``, so a notebook opened in JupyterLab runs
with the defaults of the machine it is on. Only an entry point reads that variable (``current()``: a
notebook's setup cell, a cluster job, ``make plan``); below it the settings are passed, with the
model they placed (``LoadedModel.settings``) or as an argument, and a missing one means the defaults.

Defaults: every visible GPU through accelerate (``device_map: auto``, balanced, each GPU filled to
accelerate's default share of its free memory), else the CPU; budgets derived from the model's
key/value size per token and the memory left after loading it (``resources.derive_budget``);
gradient checkpointing when a QLoRA micro-batch would not fit without it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

SETTINGS_ENV = "E2H_RUN_SETTINGS"
FILE_NAME = "_run.yaml"
DEVICE_MAPS = ("auto", "single")
CHECKPOINTING = ("auto", "on", "off")
EXECUTORS = ("inprocess", "local", "slurm")
GPUS = ("H100", "H200", "A100")  # GPU kinds a plan knows (plan.DEVICES)


MEMORY_DEVICES = ("cpu", "disk")  # max_memory's devices besides GPU indices (as accelerate names them)
_MEMORY_SIZE = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*(GiB|MiB|KiB|GB|MB|KB)\s*$", re.IGNORECASE)  # accelerate's units


class SettingsError(ValueError):
    """Settings with an unknown key or a bad value: a run-settings file (here) or a notebook's
    parameters (``experiments.settings``, which raises this same class)."""


@dataclass(frozen=True)
class SlurmSettings:
    """One Slurm job per shard of the plan (``cluster``); passed to submitit's executor."""

    partition: str | None = None
    account: str | None = None
    gpus_per_node: int = 8  # the most GPUs one job asks for (a model that fits fewer asks for fewer)
    gpu: str = "H100"  # the GPU kind (plan.DEVICES): how many a model needs
    cpus_per_task: int = 16
    mem_gb: int | None = None  # None: the partition's default
    timeout_min: int = 24 * 60
    constraint: str | None = None
    additional: tuple[tuple[str, str], ...] = ()  # more #SBATCH options, e.g. {qos: high}

    def __post_init__(self) -> None:
        _check_sbatch(self)
        if str(self.gpu).upper() not in GPUS:
            raise SettingsError(f"executor.slurm.gpu must be one of {', '.join(GPUS)}, not {self.gpu!r}")
        if self.gpus_per_node < 1 or self.cpus_per_task < 1 or self.timeout_min < 1:
            raise SettingsError("executor.slurm.gpus_per_node, cpus_per_task and timeout_min must be at least 1")


@dataclass(frozen=True)
class ExecutorSettings:
    kind: str = "inprocess"  # inprocess: the notebooks compute; local / slurm: shards first (cluster)
    folder: str = "outputs/{profile}/.jobs"  # submitit's logs and pickles, relative to the project root
    runs_per_job: int = 50  # runs of one model per job (each job loads its model once)
    max_parallel: int = 16  # jobs running at once (slurm array parallelism; local: processes)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


@dataclass(frozen=True)
class RunSettings:
    device_map: str = "auto"  # auto: all visible GPUs (accelerate); single: one device (``device``)
    device: str = "auto"  # single: cuda, cuda:1, cpu; auto: cuda when present
    max_memory: tuple[tuple[str, str], ...] = ()  # per device, e.g. {0: 70GiB, cpu: 200GiB}
    offload_folder: str | None = None  # layers beyond max_memory go to disk here (slow; CPU tests)
    batch_tokens: int | None = None  # tokens of one forward pass (None: derived)
    kv_tokens: int | None = None  # cached tokens held at once (None: derived)
    gradient_checkpointing: str = "auto"  # auto | on | off (QLoRA)
    micro_batch: int = 8  # QLoRA: items per forward/backward pass (memory only: the same updates)
    generation_batch: int = 8  # chain of thought: rows decoded together
    keep_adapters: str | None = None  # QLoRA: save every run's adapters under this folder (None: discard)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)

    def __post_init__(self) -> None:
        if self.device_map not in DEVICE_MAPS:
            raise SettingsError(f"device_map must be one of {', '.join(DEVICE_MAPS)}, not {self.device_map!r}")
        if self.gradient_checkpointing not in CHECKPOINTING:
            raise SettingsError(f"gradient_checkpointing must be one of {', '.join(CHECKPOINTING)}, "
                                f"not {self.gradient_checkpointing!r}")
        for name in ("batch_tokens", "kv_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 64):
                raise SettingsError(f"{name} must be a whole number of tokens >= 64 (or null: derived), not {value!r}")
        for name in ("micro_batch", "generation_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(f"{name} must be a whole number >= 1, not {value!r}")
        if self.executor.kind not in EXECUTORS:
            raise SettingsError(f"executor.kind must be one of {', '.join(EXECUTORS)}, not {self.executor.kind!r}")
        if self.executor.runs_per_job < 1 or self.executor.max_parallel < 1:
            raise SettingsError("executor.runs_per_job and executor.max_parallel must be at least 1")
        for device, size in self.max_memory:
            if not (str(device).isdigit() or device in MEMORY_DEVICES):
                raise SettingsError(f"max_memory: {device!r} is not a device: give a GPU index (0, 1, ...) or "
                                    f"{' or '.join(MEMORY_DEVICES)}, e.g. {{0: 70GiB, cpu: 200GiB}}")
            if not (str(size).isdigit() and int(size) > 0 or _MEMORY_SIZE.match(str(size))):
                raise SettingsError(f"max_memory.{device}: {size!r} is not a size: give bytes (a whole number) or a "
                                    "number with a unit, e.g. 70GiB, 500MB")

    def memory_map(self) -> dict[Any, Any] | None:
        """``max_memory`` as accelerate takes it (GPU indices and byte counts as ints)."""
        if not self.max_memory:
            return None
        return {int(k) if str(k).isdigit() else str(k): int(v) if str(v).isdigit() else str(v)
                for k, v in self.max_memory}


# ``additional`` #SBATCH options the batch script may carry (submitit writes each as ``#SBATCH --key=value``);
# anything else, and any value with whitespace or a shell metacharacter, is refused: a newline in a value
# would start a shell command in the script the cluster runs.
SBATCH_KEYS = frozenset({
    "qos", "reservation", "exclude", "nodelist", "nodes", "ntasks", "ntasks_per_node", "gres", "gpus", "gpus_per_task",
    "cpus_per_gpu", "mem_per_cpu", "mem_per_gpu", "time", "time_min", "mail_type", "mail_user", "comment", "licenses",
    "exclusive", "requeue", "no_requeue", "signal", "dependency", "begin", "deadline", "priority", "nice", "wckey",
    "cluster", "clusters", "distribution", "hint", "switches", "tmp",
})
_SBATCH_VALUE = re.compile(r"[A-Za-z0-9_.,:=@%+/\[\]-]*")


def _check_sbatch(slurm: Any) -> None:
    """Every Slurm option that goes into the batch script is a plain token (``SBATCH_KEYS``, ``_SBATCH_VALUE``)."""
    named = [(name, getattr(slurm, name)) for name in ("partition", "account", "constraint")
             if getattr(slurm, name) is not None]
    for name, value in named:
        if not _SBATCH_VALUE.fullmatch(str(value)):
            raise SettingsError(f"executor.slurm.{name}: {value!r} holds whitespace or a shell metacharacter; "
                                "give a plain Slurm value (letters, digits, _ . , : = @ % + / - [ ])")
    for key, value in slurm.additional:
        if str(key).replace("-", "_") not in SBATCH_KEYS:
            raise SettingsError(f"executor.slurm.additional: unknown option {key!r}; "
                                f"valid: {', '.join(sorted(SBATCH_KEYS))} "
                                "(partition, account, constraint, cpus, memory and time have their own settings)")
        if not _SBATCH_VALUE.fullmatch(str(value)):
            raise SettingsError(f"executor.slurm.additional.{key}: {value!r} holds whitespace, a newline or a shell "
                                "metacharacter; give a plain Slurm value (letters, digits, _ . , : = @ % + / - [ ])")


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise SettingsError(f"{where}: expected a mapping of settings, not {values!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(map(str, unknown))}; valid: {', '.join(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name == "executor":
            value = _build(ExecutorSettings, value or {}, f"{where} executor")
        elif name == "slurm":
            value = _build(SlurmSettings, value or {}, f"{where} slurm")
        elif name in ("max_memory", "additional"):
            if not isinstance(value, Mapping):
                raise SettingsError(f"{where}: {name} must be a mapping, e.g. {{0: 70GiB, cpu: 200GiB}}, not {value!r}")
            value = tuple((str(k), str(v)) for k, v in value.items())
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, SettingsError) as error:
        text = str(error)
        raise SettingsError(text if text.startswith(where) else f"{where}: {text}") from None


def parse(values: Mapping[str, Any] | None, where: str = FILE_NAME) -> RunSettings:
    """Typed settings from a parsed YAML mapping (``None``/empty: the defaults)."""
    return _build(RunSettings, values or {}, where)


def load(path: Path) -> RunSettings:
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML ({error})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    return parse(values, str(path))


def profile_file(profile: str) -> Path:
    from e2h_utils import paths

    return paths.parameters_dir() / profile / FILE_NAME


def for_profile(profile: str) -> RunSettings:
    path = profile_file(profile)
    return load(path) if path.is_file() else RunSettings()


@lru_cache(maxsize=4)
def _from_env(value: str) -> RunSettings:
    return load(Path(value)) if value else RunSettings()


def current() -> RunSettings:
    """The settings of this process: the file named by ``E2H_RUN_SETTINGS``, else the defaults."""
    return _from_env(os.environ.get(SETTINGS_ENV, ""))


def allowed_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (what a Slurm allocation, ``taskset`` or
    a container's cpuset gives it), not every core of the machine."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux: every core
        return os.cpu_count() or 1


def fit_threads() -> int:
    """Cap torch's threads at the CPUs this process may use (torch starts one per core of the
    machine: on a shared node, threads beyond the allocation only wait on each other); an explicit
    lower setting (``OMP_NUM_THREADS``, ``torch.set_num_threads``) is kept. Returns the threads."""
    import torch

    cpus = allowed_cpus()
    if torch.get_num_threads() > cpus:
        torch.set_num_threads(cpus)
    return torch.get_num_threads()
