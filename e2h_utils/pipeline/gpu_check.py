"""``make gpu-check``: the first thing to run on a GPU this project gets (issue 25, item 3).

Offline (the embedded SmolLM2-135M-Instruct and the data mirror only), in a few minutes on one GPU,
it checks what the paper profile takes on trust:

1. **precisions**: a fixed set of ARC items (the first ``--items`` by id, the ``mc_plain`` cloze
   prompt) scored zero-shot by the project's scorer (``methods.icl.score_with_examples`` with no
   examples, i.e. ``engine.scoring.choice_logprobs``) on the CPU in float32 (the reference), then on
   the device in bf16, fp16, 8-bit and 4-bit NF4 (bitsandbytes), each loaded through
   ``engine.models.load_model``. Each must stay within its tolerance (``PRECISIONS``) of the
   reference on every choice's log-probability, and predict the same choice wherever the
   reference's margin between its best two choices exceeds that tolerance (``compare``);
2. **qlora_step:8bit**, **qlora_step:4bit**: one QLoRA update (``methods.qlora.adapters`` + ``finetune``,
   the paper profile's path: 8-bit Adam on an 8-bit base, AdamW on 4-bit) on ``QLORA_ITEMS`` ARC items,
   on the quantized model just scored (as ``training_base`` reuses a base between runs): the loss is
   finite and the LoRA weights move. On the CPU, bitsandbytes 0.50.2's 4-bit backend fails this: once
   the model has run inference, backward goes through ``gemv_4bit``, which has no autograd kernel, and
   the LoRA weights get no gradient at all (torch warns "silently incorrect behavior");
3. **device_map_split**: the model split by accelerate between the device and the next tier (GPU +
   CPU; on ``--device cpu``: CPU + disk) through the project's ``runtime.RunSettings(max_memory=...)``
   scores as the model held whole on the device does, within that precision's tolerance;
4. **rates**: tokens/s of scoring (prompt + choice tokens) per precision, of greedy generation
   (``GEN_PROMPTS`` prompts, ``--gen-tokens`` new tokens) per precision, and of the QLoRA step.

Without CUDA (and no ``--device``) it refuses with exit code 2 and one line. ``--device cpu`` runs
everything on the CPU (the tests do): bf16 and fp16 run there; 8-bit and 4-bit run where
bitsandbytes' CPU backend can (``quantization_unsupported`` tries a tiny layer first) and are
skipped with the reason where it cannot. Exit code 0: every check that ran passed; 1: one failed.

The JSON (default ``outputs/gpu_check.json``), for people and for a later plan to read:

- ``schema`` (1), ``passed`` (bool: no check failed), ``device``, ``created`` (UTC ISO time), ``elapsed_s``;
- ``environment``: ``python``, ``torch``, ``transformers``, ``bitsandbytes``, ``accelerate``, ``peft``,
  ``cuda`` (torch's CUDA version or null), ``gpu_name``, ``gpu_memory_bytes``, ``gpu_peak_allocated_bytes``
  (null without a GPU);
- ``items``: ``dataset``, ``format``, ``n``, ``ids``;
- ``checks``: name -> ``{"status": "passed" | "failed" | "skipped", "reason": str, ...}``, names
  ``precision:bf16``, ``precision:fp16``, ``precision:8bit``, ``precision:4bit`` (with ``tolerance``,
  ``justification``, ``max_abs_delta``, ``n_items``, ``n_decisive``, ``n_near_ties``, ``mismatches``: item ids,
  ``accuracy``, ``reference_accuracy``), ``qlora_step:8bit`` and ``qlora_step:4bit`` (``quantization``,
  ``losses``, ``lora_max_change``, ``n_items``) and ``device_map_split`` (``precision``, ``layout``: device ->
  modules placed there, and the comparison's keys against the whole-device run);
- ``rates``: ``scoring_tokens_per_s`` and ``generation_tokens_per_s`` (precision -> tokens/s; ``reference``
  is the CPU float32 run), ``training_tokens_per_s`` (quantization -> the QLoRA step's prompt + choice
  tokens through forward and backward per second);
- ``quantized_speed``: ``{"none": 1.0, "8bit": r, "4bit": r}``, the scoring rate at 8-bit and 4-bit over
  the bf16 rate, the form of ``pipeline.plan.QUANTIZED_SPEED`` (assumed 0.5 and 0.6 there). A 135M model
  is launch-bound where a 70B model is bandwidth-bound, so these ratios are a first reading, not a
  measurement of the paper's models.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from e2h_utils import atomic, paths

DATASET = "arc"
FORMAT = "mc_plain"
DEFAULT_ITEMS = 40
QLORA_ITEMS = 4
GEN_PROMPTS = 8
DEFAULT_GEN_TOKENS = 32
SPLIT_PRECISION = "bf16"  # the precision the device_map split is checked at (the paper profile's default)
SPLIT_SHARE = 0.5  # the device may hold this share of the model's bytes; accelerate puts the rest on the next tier
REFUSAL = ("gpu-check: no CUDA device here (torch.cuda.is_available() is False); "
           "run it on a GPU machine: make gpu-check (or --device cpu to exercise it on the CPU)")


@dataclass(frozen=True)
class Precision:
    """One way of loading the model on the device, and how far its scores may drift from float32."""

    name: str
    dtype: str  # models.DTYPES
    quantization: str  # models.QUANTIZATIONS
    tolerance: float  # max |delta| of a choice's summed answer log-probability (nats) against CPU float32
    justification: str


# Tolerances are on summed answer log-probabilities (nats; ARC answers run to ~10 tokens, logits of size ~10-30).
# No GPU has run this yet: the "measured" values are bitsandbytes' and torch's CPU kernels on the 40 default items
# (torch 2.13, bitsandbytes 0.50.2); each tolerance leaves room for the GPU kernels' different rounding.
PRECISIONS: dict[str, Precision] = {
    "bf16": Precision("bf16", "bfloat16", "none", 1.0,
                      "8 bits of mantissa: rounding 2^-9 per value through 30 layers (0.46 measured on the CPU)"),
    "fp16": Precision("fp16", "float16", "none", 0.25,
                      "11 bits of mantissa, 8x finer than bf16 (0.054 measured on the CPU)"),
    "8bit": Precision("8bit", "float16", "8bit", 4.0,
                      "LLM.int8: per-row absmax int8 weights (~1/254), fp16 activations (2.5 measured on the CPU)"),
    "4bit": Precision("4bit", "bfloat16", "4bit", 16.0,
                      "NF4 re-quantizes weights already on the GGUF's 4-bit grid: a perturbed model (11.8 measured "
                      "on the CPU); catches a broken kernel (tens of nats), does not grade NF4"),
}


@dataclass(frozen=True)
class Comparison:
    """Scores of one load of the model against the reference (``compare``)."""

    tolerance: float
    max_abs_delta: float  # over every choice of every item (inf when a score is not finite)
    n_items: int
    n_decisive: int  # items whose reference margin (best - second best) exceeds the tolerance
    n_near_ties: int  # the others: their prediction may differ
    mismatches: tuple[int, ...]  # indices of decisive items whose predicted choice differs
    finite: bool

    @property
    def passed(self) -> bool:
        return self.finite and self.max_abs_delta <= self.tolerance and not self.mismatches

    @property
    def reason(self) -> str:
        if not self.finite:
            return "non-finite log-probabilities"
        problems = []
        if self.max_abs_delta > self.tolerance:
            problems.append(f"max |delta logprob| {self.max_abs_delta:.4g} > tolerance {self.tolerance:g}")
        if self.mismatches:
            problems.append(f"{len(self.mismatches)} of {self.n_decisive} decisive items predict another choice")
        if problems:
            return "; ".join(problems)
        return (f"max |delta logprob| {self.max_abs_delta:.4g} <= {self.tolerance:g}; same prediction on all "
                f"{self.n_decisive} decisive items ({self.n_near_ties} near-ties not compared)")


def margin(scores: np.ndarray) -> float:
    """Best minus second-best score of one item (inf with a single choice)."""
    top = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return float(top[0] - top[1]) if len(top) > 1 else math.inf


def compare(reference: Sequence[np.ndarray], other: Sequence[np.ndarray], tolerance: float) -> Comparison:
    """Compare per-item choice log-probabilities (one array per item, choices may vary in number)
    with the reference: the largest absolute difference, and the predictions on the items whose
    reference margin exceeds ``tolerance`` (closer calls may legitimately flip)."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference items, {len(other)} compared")
    ref = [np.asarray(r, dtype=np.float64) for r in reference]
    oth = [np.asarray(o, dtype=np.float64) for o in other]
    for i, (r, o) in enumerate(zip(ref, oth)):
        if r.shape != o.shape:
            raise ValueError(f"item {i}: {r.shape[0]} reference choices, {o.shape[0]} compared")
    finite = all(np.isfinite(o).all() for o in oth) and all(np.isfinite(r).all() for r in ref)
    deltas = [np.abs(r - o) for r, o in zip(ref, oth)]
    max_delta = float(max((d.max() for d in deltas if d.size), default=0.0)) if finite else math.inf
    decisive = [i for i, r in enumerate(ref) if margin(r) > tolerance]
    mismatches = tuple(i for i in decisive if int(np.argmax(ref[i])) != int(np.argmax(oth[i])))
    return Comparison(tolerance=float(tolerance), max_abs_delta=max_delta, n_items=len(ref), n_decisive=len(decisive),
                      n_near_ties=len(ref) - len(decisive), mismatches=mismatches, finite=bool(finite))


@dataclass
class CheckResult:
    """One entry of the report's ``checks``."""

    status: str  # passed | failed | skipped
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, **self.details}


@dataclass(frozen=True)
class Scored:
    """Choice log-probabilities of the check's items from one loaded model, and how fast."""

    logprobs: list[np.ndarray]
    seconds: float
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class CheckConfig:
    """What one run checks (the CLI's options)."""

    device: str = "cuda"
    n_items: int = DEFAULT_ITEMS
    precisions: tuple[str, ...] = tuple(PRECISIONS)
    gen_tokens: int = DEFAULT_GEN_TOKENS
    gen_prompts: int = GEN_PROMPTS
    qlora_items: int = QLORA_ITEMS
    split: bool = True


# --- the pieces, each with the device as a parameter ------------------------------------------

def quantization_unsupported(device: str, quantization: str) -> str | None:
    """Why bitsandbytes cannot run ``quantization`` on ``device`` (a tiny layer is tried), or None."""
    if quantization == "none":
        return None
    try:
        import bitsandbytes as bnb
        import torch

        if quantization == "8bit":
            layer: torch.nn.Module = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False)
            dtype = torch.float16
        else:
            layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
            dtype = torch.bfloat16
        layer = layer.to(device)
        out = layer(torch.randn(2, 64, dtype=dtype, device=device))
        if not torch.isfinite(out.float()).all():
            return f"bitsandbytes {quantization} on {device} gives non-finite outputs"
    except Exception as error:  # an unsupported backend raises many kinds of errors
        return f"bitsandbytes cannot run {quantization} on {device}: {type(error).__name__}: {str(error)[:200]}"
    return None


def load(device: str, precision: Precision | None, settings: Any = None) -> Any:
    """The embedded model through the project's loading path: float32 when ``precision`` is None,
    held whole on ``device`` unless ``settings`` place it (``runtime.RunSettings``)."""
    from e2h_utils.engine import models, runtime

    if precision is None:
        return models.load_model("embedded", runtime.RunSettings(), dtype="float32", device=device)
    if settings is not None:  # placed by settings: the spec's device stays auto
        return models.load_model("embedded", settings, dtype=precision.dtype, quantization=precision.quantization)
    return models.load_model("embedded", runtime.RunSettings(), dtype=precision.dtype,
                             quantization=precision.quantization, device=device)


def check_items(n: int) -> Any:
    """The fixed ARC items: the first ``n`` by id."""
    from e2h_utils.data.datasets import load_dataset

    frame = load_dataset(DATASET)
    return frame.sort_values("id", kind="stable").head(n).reset_index(drop=True)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def item_tokens(lm: Any, rows: Any) -> int:
    """Prompt + choice tokens of ``rows`` (what the scorer feeds through the model)."""
    from e2h_utils.data.prompts import get_format
    from e2h_utils.engine.scoring import make_item

    fmt = get_format(FORMAT)
    items = [make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in rows.to_dict("records")]
    return sum(len(i.prompt_ids) + sum(len(c) for c in i.choice_ids) for i in items)


def score(lm: Any, rows: Any) -> Scored:
    """Zero-shot choice log-probabilities of ``rows`` with the project's scorer (one warm-up call
    on two items first, so the timing leaves out kernel start-up)."""
    from e2h_utils.data.prompts import get_format
    from e2h_utils.methods.icl import score_with_examples

    fmt = get_format(FORMAT)
    no_examples = rows.iloc[:0]
    score_with_examples(lm, fmt, no_examples, rows.head(2))
    _sync()
    start = time.perf_counter()
    logprobs, _ = score_with_examples(lm, fmt, no_examples, rows)
    _sync()
    return Scored(list(logprobs), time.perf_counter() - start, item_tokens(lm, rows))


def generation_rate(lm: Any, rows: Any, n_prompts: int, new_tokens: int) -> float:
    """Greedy generation tokens/s (``engine.generation.greedy_generate``, no stop strings; new tokens
    counted by re-tokenizing the texts, so an early end-of-sequence counts only what was written)."""
    from e2h_utils.data.prompts import get_format
    from e2h_utils.engine.generation import greedy_generate
    from e2h_utils.engine.scoring import encode

    fmt = get_format(FORMAT)
    prompts = [encode(lm.tokenizer, fmt.prompt(r)) for r in rows.head(n_prompts).to_dict("records")]
    greedy_generate(lm.model, lm.tokenizer, lm.bos_ids(), prompts[:1], max_new_tokens=2, stop=())  # warm-up
    _sync()
    start = time.perf_counter()
    texts = greedy_generate(lm.model, lm.tokenizer, lm.bos_ids(), prompts, max_new_tokens=new_tokens, stop=(),
                            batch_size=len(prompts))
    _sync()
    seconds = time.perf_counter() - start
    return sum(len(encode(lm.tokenizer, t)) for t in texts) / seconds if seconds > 0 else math.inf


@dataclass(frozen=True)
class QLoRAStep:
    """One QLoRA update: its losses, how far the LoRA weights moved, and how fast."""

    losses: tuple[float, ...]
    lora_max_change: float
    seconds: float
    tokens: int

    @property
    def passed(self) -> bool:
        return bool(self.losses) and all(math.isfinite(x) for x in self.losses) and self.lora_max_change > 0


def qlora_step(lm: Any, rows: Any, seed: int = 0) -> QLoRAStep:
    """One update of the paper profile's QLoRA (``qlora.adapters`` + ``qlora.finetune``, 8-bit Adam on an
    8-bit base) on ``rows``, a quantized ``lm`` as the base; the adapters are removed afterwards."""
    from e2h_utils.data.prompts import get_format
    from e2h_utils.engine import models
    from e2h_utils.engine.scoring import make_item
    from e2h_utils.methods import qlora

    config = qlora.QLoRAConfig(quantization=lm.spec.quantization, min_updates=1, min_epochs=1)
    fmt = get_format(FORMAT)
    records = rows.to_dict("records")
    items = [make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in records]
    labels = [int(r["label"]) for r in records]
    base = models.training_base(lm, config.quantization)  # lm itself: same precision, held whole
    with qlora.adapters(base, config, seed) as model:
        trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
        before = {name: p.detach().float().clone() for name, p in trainable.items()}
        _sync()
        start = time.perf_counter()
        losses = qlora.finetune(model, base.tokenizer.pad_token_id, items, labels, config, seed, base.bos_ids(),
                                micro_batch=len(items))
        _sync()
        seconds = time.perf_counter() - start
        change = max((float((p.detach().float() - before[name]).abs().max()) for name, p in trainable.items()),
                     default=0.0)
    return QLoRAStep(tuple(float(x) for x in losses), change, seconds, item_tokens(lm, rows))


def split_settings(device: str, model_bytes: int, offload_folder: str) -> Any:
    """Run settings that let ``device`` hold ``SPLIT_SHARE`` of the model: on a GPU the rest goes to
    the CPU, on the CPU to disk (``offload_folder``)."""
    import torch

    from e2h_utils.engine import runtime

    cap = f"{max(1, int(model_bytes * SPLIT_SHARE) // 2**20)}MiB"
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        memory: tuple[tuple[str, str], ...] = ((str(index), cap), ("cpu", "64GiB"))
    else:
        memory = (("cpu", cap),)
    return runtime.RunSettings(device_map="auto", max_memory=memory, offload_folder=offload_folder)


def layout(model: Any) -> dict[str, int]:
    """Device -> number of modules accelerate placed there (``hf_device_map``)."""
    counts: dict[str, int] = {}
    for where in (getattr(model, "hf_device_map", None) or {}).values():
        key = f"cuda:{where}" if isinstance(where, int) else str(where)
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- the run ---------------------------------------------------------------------------------

def environment(device: str) -> dict[str, Any]:
    import torch

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            **{name: version(name) for name in ("transformers", "bitsandbytes", "accelerate", "peft")},
                            "cuda": torch.version.cuda, "gpu_name": None, "gpu_memory_bytes": None,
                            "gpu_peak_allocated_bytes": None}
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        info["gpu_name"] = torch.cuda.get_device_name(index)
        info["gpu_memory_bytes"] = int(torch.cuda.get_device_properties(index).total_memory)
        info["gpu_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated(index))
    return info


def _release(*objects: Any) -> None:
    import gc

    import torch

    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _finite(value: float) -> float | None:
    """A rate for JSON (which has no infinity): None when not finite."""
    return float(value) if math.isfinite(value) else None


def _accuracy(logprobs: Sequence[np.ndarray], labels: Sequence[int]) -> float:
    return float(np.mean([int(np.argmax(lp)) == int(y) for lp, y in zip(logprobs, labels)]))


def _comparison_details(comparison: Comparison, ids: Sequence[str]) -> dict[str, Any]:
    details = asdict(comparison)
    details["mismatches"] = [ids[i] for i in comparison.mismatches]
    if not math.isfinite(details["max_abs_delta"]):
        details["max_abs_delta"] = None  # JSON has no infinity
    return details


def run_check(config: CheckConfig, log: Any = None) -> dict[str, Any]:
    """Every check on ``config.device``; the report as a JSON-ready dict (keys: the module docstring)."""
    import torch
    from tqdm.auto import tqdm

    def say(text: str) -> None:
        if log is not None:
            print(f"gpu-check: {text}", file=log, flush=True)

    started = time.perf_counter()
    device = config.device
    rows = check_items(config.n_items)
    ids = [str(i) for i in rows["id"]]
    labels = [int(y) for y in rows["label"]]
    checks: dict[str, CheckResult] = {}
    scoring_rates: dict[str, float] = {}
    generation_rates: dict[str, float] = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    reference_lm = load("cpu", None)
    n_params = sum(p.numel() for p in reference_lm.model.parameters())
    reference = score(reference_lm, rows)
    scoring_rates["reference"] = reference.tokens_per_s
    reference_accuracy = _accuracy(reference.logprobs, labels)
    say(f"CPU float32 reference: {len(ids)} items, accuracy {reference_accuracy:.3f}, "
        f"{reference.tokens_per_s:,.0f} scored tokens/s")
    _release(reference_lm)
    del reference_lm

    whole: dict[str, Scored] = {}  # precision -> scores of the model held whole on the device
    training: dict[str, float] = {}
    for name in tqdm(PRECISIONS, desc="gpu-check precisions", disable=log is None, leave=False):
        precision = PRECISIONS[name]
        key = f"precision:{name}"
        base = {"tolerance": precision.tolerance, "justification": precision.justification,
                "dtype": precision.dtype, "quantization": precision.quantization}
        if name not in config.precisions:
            checks[key] = CheckResult("skipped", "not selected (--precisions)", base)
            continue
        unsupported = None if device.startswith("cuda") else quantization_unsupported(device, precision.quantization)
        if unsupported:
            checks[key] = CheckResult("skipped", unsupported, base)
            say(f"{key} skipped: {unsupported}")
            continue
        lm = load(device, precision)
        scored = score(lm, rows)
        whole[name] = scored
        scoring_rates[name] = scored.tokens_per_s
        comparison = compare(reference.logprobs, scored.logprobs, precision.tolerance)
        details = {**base, **_comparison_details(comparison, ids), "accuracy": _accuracy(scored.logprobs, labels),
                   "reference_accuracy": reference_accuracy}
        checks[key] = CheckResult("passed" if comparison.passed else "failed", comparison.reason, details)
        say(f"{key} {checks[key].status}: {comparison.reason}")
        if config.gen_tokens > 0 and config.gen_prompts > 0:
            generation_rates[name] = generation_rate(lm, rows, config.gen_prompts, config.gen_tokens)
        if precision.quantization != "none" and config.qlora_items > 0:
            step_key = f"qlora_step:{precision.quantization}"
            checks[step_key], rate = _qlora_check(lm, rows.head(config.qlora_items))
            if rate is not None:
                training[precision.quantization] = rate
            say(f"{step_key} {checks[step_key].status}: {checks[step_key].reason}")
        _release(lm)
        del lm
    for quantization in ("8bit", "4bit"):
        skipped = CheckResult("skipped", f"precision:{quantization} did not run", {"quantization": quantization})
        checks.setdefault(f"qlora_step:{quantization}", skipped)
    checks["device_map_split"] = _split_check(config, rows, ids, whole, n_params)
    say(f"device_map_split {checks['device_map_split'].status}: {checks['device_map_split'].reason}")

    bf16 = scoring_rates.get("bf16")
    report = {
        "schema": 1,
        "passed": not any(c.status == "failed" for c in checks.values()),
        "device": device,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "environment": environment(device),
        "items": {"dataset": DATASET, "format": FORMAT, "n": len(ids), "ids": ids},
        "checks": {name: check.as_json() for name, check in checks.items()},
        "rates": {"scoring_tokens_per_s": {k: _finite(v) for k, v in scoring_rates.items()},
                  "generation_tokens_per_s": {k: _finite(v) for k, v in generation_rates.items()},
                  "training_tokens_per_s": {k: _finite(v) for k, v in training.items()}},
        "quantized_speed": {"none": 1.0, **{q: _finite(scoring_rates[q] / bf16) if bf16 and q in scoring_rates else None
                                            for q in ("8bit", "4bit")}},
    }
    return report


def _qlora_check(lm: Any, rows: Any) -> tuple[CheckResult, float | None]:
    """The QLoRA step on ``lm`` as a check, and its training rate (tokens/s; None when it raised)."""
    quantization = lm.spec.quantization
    try:
        step = qlora_step(lm, rows)
    except Exception as error:  # a failing backward or optimizer on this device is the finding
        reason = f"{type(error).__name__}: {str(error)[:300]}"
        return CheckResult("failed", reason, {"quantization": quantization}), None
    details = {"quantization": quantization, "losses": list(step.losses), "lora_max_change": step.lora_max_change,
               "n_items": len(rows)}
    if step.passed:
        reason = f"loss {step.losses[0]:.4f} finite, LoRA weights moved by up to {step.lora_max_change:.3g}"
    elif not all(math.isfinite(x) for x in step.losses):
        reason = f"non-finite loss {list(step.losses)}"
    else:
        reason = "the LoRA weights did not change"
    rate = step.tokens / max(step.seconds, 1e-9)
    return CheckResult("passed" if step.passed else "failed", reason, details), rate


def _split_check(config: CheckConfig, rows: Any, ids: Sequence[str], whole: dict[str, Scored],
                 n_params: int) -> CheckResult:
    """The model split by accelerate (device + next tier) against the model held whole on the device."""
    import torch

    precision = PRECISIONS[SPLIT_PRECISION]
    if not config.split:
        return CheckResult("skipped", "not selected (--no-split)")
    if SPLIT_PRECISION not in whole:
        return CheckResult("skipped", f"{SPLIT_PRECISION} did not run on the device: nothing to compare the split with")
    if not config.device.startswith("cuda") and torch.cuda.is_available():
        return CheckResult("skipped", "--device cpu on a machine with CUDA: the project's placement would split "
                                      "over the GPU, not the CPU")
    size = n_params * 2  # bytes at bf16
    with tempfile.TemporaryDirectory(prefix="gpu-check-offload-") as folder:
        lm = load(config.device, precision, split_settings(config.device, size, folder))
        placed = layout(lm.model)
        scored = score(lm, rows)
        _release(lm)
        del lm
    tiers = {key.split(":")[0] for key in placed}
    details = {"precision": SPLIT_PRECISION, "layout": placed, "share_on_device": SPLIT_SHARE}
    if len(tiers) < 2:
        return CheckResult("failed", f"max_memory did not split the model (placement {placed})", details)
    comparison = compare(whole[SPLIT_PRECISION].logprobs, scored.logprobs, precision.tolerance)
    details.update(_comparison_details(comparison, ids))
    return CheckResult("passed" if comparison.passed else "failed", f"split {placed}: {comparison.reason}", details)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2h_utils.pipeline.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cuda (default; refused without CUDA), cuda:N or cpu (tests)")
    parser.add_argument("--out", default=None, help="the JSON report (default outputs/gpu_check.json)")
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS, help="ARC items scored per precision")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help=f"comma-separated subset of {', '.join(PRECISIONS)} (the others are reported skipped)")
    parser.add_argument("--gen-tokens", type=int, default=DEFAULT_GEN_TOKENS, help="new tokens per generation prompt")
    parser.add_argument("--gen-prompts", type=int, default=GEN_PROMPTS, help="prompts generated together (0: none)")
    parser.add_argument("--no-split", action="store_true", help="skip the device_map split check")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 every check that ran passed, 1 one failed, 2 no CUDA device (nothing run)."""
    args = parse_args(argv)
    import torch

    device = args.device or "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(REFUSAL, file=sys.stderr)
        return 2
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        print(f"gpu-check: unknown precision(s) {', '.join(unknown)}; valid: {', '.join(PRECISIONS)}", file=sys.stderr)
        return 2
    config = CheckConfig(device=device, n_items=args.items, precisions=precisions, gen_tokens=args.gen_tokens,
                         gen_prompts=args.gen_prompts, split=not args.no_split)
    report = run_check(config, log=sys.stderr)
    out = Path(args.out) if args.out else paths.project_root() / "outputs" / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(report, indent=1, allow_nan=False) + "\n")
    failed = [name for name, check in report["checks"].items() if check["status"] == "failed"]
    print(f"gpu-check: {'FAILED ' + ', '.join(failed) if failed else 'passed'}; report in {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
