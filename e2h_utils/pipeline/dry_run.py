"""A dry run of a profile: its notebooks as written, on tiny random models of each model's architecture.

``make dry-run PROFILE=paper`` (and the test suite) executes every notebook of the paper profile
with papermill and the paper YAML, except that:

- every model the YAML names loads a stand-in (``models.SUBSTITUTE_ENV``, ``engine.stand_ins``): a
  4-layer model of its own architecture (Llama, Mistral, Mixtral, Falcon, MPT, Qwen2 for Qwen-72B)
  with random weights and the embedded model's tokenizer, made once in the model cache. Each name
  keeps its own identity (``substitute-for:<name>|...``), its precision (8-bit and 4-bit load
  through bitsandbytes on the CPU) and its code path (MDL hardness models, model-scale lists);
- unquantized models are split by accelerate's ``device_map="auto"`` between "cpu" and "disk"
  (``DRY_RUN_SETTINGS``: a small ``max_memory`` for the CPU, the rest offloaded), the CPU
  stand-in for a model spread over several GPUs; bitsandbytes cannot offload quantized weights,
  so quantized loads stay on one device;
- sizes are capped (``CAPS``, by what each parameter counts: its settings field's ``schema.Size``):
  test items per level, seeds, in-context examples and training items, QLoRA updates (the MDL
  learner's too), generated tokens, MDL items and hold-out, bootstrap draws, the evaluators'
  candidates per problem and problems. Every dataset, measure, method, option and
  model the YAML names is still run.

Results go to ``results/dry-run/`` and outputs to ``outputs/<profile>-dry-run/``: nothing of a
real run is touched or reused. Numbers from a random model mean nothing; the run proves that every
code path, key and dataset the profile names executes before anyone pays for a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from e2h_utils import atomic, paths
from e2h_utils.engine import stand_ins
from e2h_utils.experiments import settings
from e2h_utils.experiments.schema import Size
from e2h_utils.methods.base import kinds

SUFFIX = "-dry-run"
SEEDS = 2  # first seeds of every seed list
TEST_PER_LEVEL = 4
COT_TEST_PER_LEVEL = 2
MDL_ITEMS = 80  # enough that an MDL level's training pool holds TRAIN items
MDL_HOLDOUT = 40
SHOTS = 3  # in-context examples
TRAIN = 8  # probe / QLoRA training items
MDL_SIZES = (5, 20)
N_BOOT = 50
UPDATES = 1  # QLoRA: gradient updates (the paper: at least 10, 150 for chain of thought); the MDL learner too
COT_TRAIN = 2  # chain-of-thought QLoRA: worked solutions trained on (whole sequences: the dry run's costliest step)
COT_UPDATES = 1  # chain-of-thought QLoRA: gradient updates
NEW_TOKENS = 12  # chain of thought: tokens generated (a random model never writes "the answer is")
SAMPLES = 2  # easy-to-hard evaluators: candidates per problem
PROBLEMS = 3  # easy-to-hard evaluators: test problems, and problems per training level
def _split_memory(vocab: int = 49152, element: int = 2) -> str:
    """A CPU cap that makes accelerate keep the embeddings and two of the four layers of a
    Llama-shaped stand-in (``stand_ins.DEFAULT``, in 16 bits, the paper's dtypes) on "cpu" and offload
    the rest to "disk": it reserves room for the largest module (the output head) besides what it
    places. Other architectures split at other layers under the same cap."""
    c = stand_ins.DEFAULT[1]
    hidden, width, heads, kv = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
                                c["num_key_value_heads"])
    head_dim = hidden // heads
    layer = (2 * hidden * hidden + 2 * hidden * kv * head_dim + 3 * hidden * width + 2 * hidden) * element
    embedding = vocab * hidden * element
    return f"{(2 * embedding + 2.5 * layer) // 1000:.0f}KB"


DRY_RUN_SETTINGS: dict[str, Any] = {"max_memory": {"cpu": _split_memory()}, "offload_folder": ".cache/dry-run-offload",
                                    "batch_tokens": 2048, "kv_tokens": 8192}


def _first(values: Any, n: int = SEEDS) -> Any:
    return list(values)[:n]


def _seeds(value: Any) -> Any:
    """A seed list, or a {method: seeds} mapping: the first ``SEEDS`` of each."""
    if isinstance(value, Mapping):
        return {k: _first(v) for k, v in value.items()}
    return _first(value)


def _cap(limit: int) -> Callable[[Any], Any]:
    return lambda value: limit if value is None else min(int(value), limit)


def _per_dataset(limit: int) -> Callable[[Any], Any]:
    """Caps every value of a {dataset or method: number} mapping (or a plain number)."""
    def cap(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: _cap(limit)(v) for k, v in value.items()}
        return _cap(limit)(value)
    return cap


def _nested(limit: int) -> Callable[[Any], Any]:
    """Caps a {method: number or {dataset: number}} mapping."""
    def cap(value: Any) -> Any:
        return ({k: _per_dataset(limit)(v) for k, v in value.items()} if isinstance(value, Mapping)
                else _cap(limit)(value))
    return cap


def _options(value: Any) -> Any:
    """{method: options}: QLoRA runs UPDATES updates in one epoch (COT_UPDATES for chain of thought),
    chain of thought generates NEW_TOKENS tokens; every other option (precision, optimizer, answer
    rule) as written."""
    out = {}
    for method, options in (value or {}).items():
        options = dict(options or {})
        chain_of_thought = method in kinds(chain_of_thought=True)
        if method in kinds(trains_weights=True):
            options.update(min_updates=COT_UPDATES if chain_of_thought else UPDATES, min_epochs=1)
        if chain_of_thought:
            options["max_new_tokens"] = NEW_TOKENS
        out[method] = options
    return out


def _learner_options(value: Any) -> Any:
    """``mdl_learner_options``: as ``_options``, with the QLoRA learner present even where the YAML
    leaves it to its defaults (10 updates at least: F51), so it too runs UPDATES updates."""
    return _options({"qlora": {}, **dict(value or {})})


def _sizes(value: Any) -> Any:
    """{method: [n, ...]} learning-curve sizes: those up to TRAIN (the smallest, if none is)."""
    return {k: sorted({min(int(n), TRAIN) for n in v}) for k, v in value.items()}


# what a parameter counts (``schema.Size``, declared by its settings field) -> how the dry run caps it
CAP_OF: dict[Size, Callable[[Any], Any]] = {
    Size.SEEDS: _seeds, Size.TEST_ITEMS: _cap(TEST_PER_LEVEL), Size.COT_TEST_ITEMS: _cap(COT_TEST_PER_LEVEL),
    Size.SANITY_ITEMS: lambda v: min(int(v), TEST_PER_LEVEL) if v else v,
    Size.SHOTS: _per_dataset(SHOTS), Size.TRAIN: _per_dataset(TRAIN), Size.COT_TRAIN: _per_dataset(COT_TRAIN),
    Size.CURVE: _sizes, Size.OPTIONS: _options,
    Size.MDL_ITEMS: _per_dataset(MDL_ITEMS), Size.MDL_HOLDOUT: _cap(MDL_HOLDOUT),
    Size.MDL_SIZES: lambda v: [n for n in v if n <= max(MDL_SIZES)] or list(MDL_SIZES), Size.BOOT: _cap(N_BOOT),
    # the easy-to-hard evaluators
    Size.SAMPLES: _per_dataset(SAMPLES), Size.PROBLEMS: _per_dataset(PROBLEMS),
    Size.NEW_TOKENS: _per_dataset(NEW_TOKENS),
    Size.EVALUATOR_N: _nested(PROBLEMS * SAMPLES),
}
# parameter -> its cap (parameters that count nothing run as the YAML writes them)
CAPS: dict[str, Callable[[Any], Any]] = {name: CAP_OF[size] for name, size in settings.sizes().items()}
CAPS["mdl_learner_options"] = _learner_options


def cap_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A notebook's parameters with the dry run's caps applied."""
    out = dict(parameters)
    for name, cap in CAPS.items():
        if name in out:
            out[name] = cap(out[name])
    if "mdl_max_items" in out and out.get("mdl_learners"):  # every dataset with MDL gets a cap
        out["mdl_max_items"] = {d: _cap(MDL_ITEMS)(out["mdl_max_items"].get(d)) for d in out["mdl_learners"]}
    return out


def outputs_name(profile: str) -> str:
    return profile + SUFFIX


def results_dir() -> Path:
    return paths.project_root() / "results" / "dry-run"


def stand_in() -> Path:
    """The folder of stand-ins (``engine.stand_ins``): each named model loads a tiny random model of
    its own architecture, made there on first use."""
    return stand_ins.make_root(paths.models_cache_dir() / "dry-run-stand-ins")


def settings_file(profile: str) -> Path:
    """The run settings of the dry run (written beside its outputs)."""
    path = paths.outputs_dir(outputs_name(profile)) / "_run.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    values = dict(DRY_RUN_SETTINGS, offload_folder=str(paths.project_root() / DRY_RUN_SETTINGS["offload_folder"]))
    atomic.write_text(path, json.dumps(values, indent=1) + "\n")  # JSON is YAML
    return path


def environment(profile: str) -> dict[str, str]:
    """Environment variables that make a process (and its kernels) run the dry run."""
    from e2h_utils.engine import models, runtime

    return {models.SUBSTITUTE_ENV: str(stand_in()), runtime.SETTINGS_ENV: str(settings_file(profile)),
            paths.RESULTS_ENV: str(results_dir())}
