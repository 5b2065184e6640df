"""What a model needs: its architecture, memory at a precision, token budgets and FLOPs.

Read without the weights: the architecture is built on PyTorch's ``meta`` device from the
model's configuration (the embedded model's and a local folder's ``config.json``; for the paper's
Hub models, the values of their ``config.json`` written out in ``KNOWN_CONFIGS``, since the Hub is
not reachable from every machine that plans a run). From it:

- ``weight_bytes``: the weights at a precision. bitsandbytes quantizes the linear layers except
  the output head: 1 byte per weight in 8-bit (LLM.int8, plus a 4-byte scale per row), 4.127 bits
  in 4-bit NF4 with double quantization (the QLoRA paper's figure); everything else stays in the
  compute dtype.
- ``kv_bytes_per_token``: the key/value cache of one token (2 x layers x KV heads x head size).
- ``activation_bytes_per_token``: what one token's forward keeps for the backward pass, per
  layer (a Llama-style block: ~8 hidden-size and 4 MLP-width tensors at 16 bits); with gradient
  checkpointing only each layer's input is kept and one layer is recomputed.
- ``qlora_state_bytes``: the LoRA weights, their gradients and the optimizer's two moments.
- ``forward_flops``: 2 x the active (per-token) non-embedding parameters per token, the attention
  products (4 x layers x context x attention width per token) and the output head where logits
  are taken. A training step with frozen base weights costs a forward, a backward that computes
  activation gradients only (~ one more forward) and, with checkpointing, a recomputed forward.
- ``derive_budget``: token budgets for a loaded model from the memory left on its devices.

These are estimates, written down so a plan can be checked; ``plan`` compares them with the
embedded profile's measured time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# config.json values of the paper's Hub models (model_type, fields that fix the architecture).
# Qwen-72B's own code is not in transformers; Qwen2 with its sizes has the same parameter count.
KNOWN_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "meta-llama/Llama-2-7b-hf": ("llama", dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                                num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                                                max_position_embeddings=4096)),
    "meta-llama/Llama-2-13b-hf": ("llama", dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                                                 num_attention_heads=40, num_key_value_heads=40, vocab_size=32000,
                                                 max_position_embeddings=4096)),
    "meta-llama/Llama-2-70b-hf": ("llama", dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                                                 num_attention_heads=64, num_key_value_heads=8, vocab_size=32000,
                                                 max_position_embeddings=4096)),
    "huggyllama/llama-7b": ("llama", dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                          num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                                          max_position_embeddings=2048)),
    "mistralai/Mistral-7B-v0.1": ("mistral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                                  num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                                                  max_position_embeddings=32768, sliding_window=4096)),
    "mistralai/Mixtral-8x7B-v0.1": ("mixtral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                                    num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                                                    max_position_embeddings=32768, num_local_experts=8,
                                                    num_experts_per_tok=2)),
    "tiiuae/falcon-7b": ("falcon", dict(hidden_size=4544, num_attention_heads=71, num_hidden_layers=32,
                                        vocab_size=65024, multi_query=True, parallel_attn=True, bias=False,
                                        new_decoder_architecture=False, max_position_embeddings=2048)),
    "mosaicml/mpt-7b": ("mpt", dict(d_model=4096, n_heads=32, n_layers=32, expansion_ratio=4, max_seq_len=2048,
                                    vocab_size=50432)),
    "Qwen/Qwen-72B": ("qwen2", dict(hidden_size=8192, intermediate_size=24576, num_hidden_layers=80,
                                    num_attention_heads=64, num_key_value_heads=64, vocab_size=152064,
                                    max_position_embeddings=32768, tie_word_embeddings=False)),
}
KNOWN_CONFIGS["meta-llama/Llama-2-70b-chat-hf"] = KNOWN_CONFIGS["meta-llama/Llama-2-70b-hf"]
# Sun et al.'s generator (easy-to-hard evaluators): Code Llama 7b's architecture, its 32,016-token vocabulary
KNOWN_CONFIGS["EleutherAI/llemma_7b"] = ("llama", dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                                        num_attention_heads=32, num_key_value_heads=32,
                                                        vocab_size=32016, max_position_embeddings=4096))

# Hub models whose loaded architecture is not the one KNOWN_CONFIGS sizes them with: Qwen-72B runs its
# own code (trust_remote_code, model_type "qwen": fused c_attn), KNOWN_CONFIGS counts it as Qwen2.
LOADED_MODEL_TYPES: dict[str, str] = {"Qwen/Qwen-72B": "qwen"}

# LoRA's target modules (QLoRA, and the QLoRA MDL learner), as the authors choose them per architecture
# (``utils/utils.py:118-140``, ``PEFT_wrap_model``): Mistral and Mixtral ["q_proj", "v_proj"] (:129-130),
# MPT ["Wqkv"] (:133-134), Falcon ["query_key_value"] (:135-136), Qwen ["c_attn"] (:137-138), Persimmon
# ["query_key_value", "dense"] (:131-132); every other model (Llama) peft's default for its architecture,
# q_proj and v_proj for Llama. Their intent is the query and value projections (the assertion at :139
# asks for "the exact q_proj and v_proj layer paths"): where those are one fused projection, the fused one.
DEFAULT_LORA_TARGETS: tuple[str, ...] = ("q_proj", "v_proj")
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "falcon": ("query_key_value",),
    "mpt": ("Wqkv",),
    "qwen": ("c_attn",),
    "persimmon": ("query_key_value", "dense"),
}

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
QUANTIZED_BYTES = {"8bit": 1.0, "4bit": 4.127 / 8}  # per quantized weight
CUDA_CONTEXT_BYTES = 1 << 30  # per GPU: the CUDA context and allocator slack
GiB = 1 << 30


class UnknownArchitecture(ValueError):
    """The plan cannot tell a model's size without its configuration."""


@dataclass(frozen=True)
class Architecture:
    """The sizes a plan needs, counted from the model built on the meta device."""

    name: str
    params: int  # every parameter (tied embeddings once)
    quantizable: int  # weights bitsandbytes quantizes (linear layers but the output head)
    embedding: int  # input embeddings and the output head
    active: int  # non-embedding parameters one token passes through (MoE: the routed experts only)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    context: int
    tied: bool

    def weight_bytes(self, quantization: str, dtype: str = "bfloat16") -> float:
        compute = DTYPE_BYTES[dtype]
        if quantization in QUANTIZED_BYTES:
            return self.quantizable * QUANTIZED_BYTES[quantization] + (self.params - self.quantizable) * compute
        return self.params * compute

    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def activation_bytes_per_token(self, checkpointing: bool, dtype: str = "bfloat16") -> float:
        """Kept for the backward pass, all layers: a full layer's tensors each, or (checkpointing)
        each layer's input plus one layer's tensors."""
        layer = (8 * self.hidden + 4 * self.intermediate) * DTYPE_BYTES[dtype]
        if checkpointing:
            return self.layers * self.hidden * DTYPE_BYTES[dtype] + layer
        return self.layers * layer

    def lora_params(self, r: int, targets: tuple[str, ...]) -> int:
        """r x (in + out) per targeted projection and layer (q/v: hidden in, heads / KV heads out;
        a fused query-key-value projection: hidden in, heads + 2 KV heads out)."""
        qkv = (self.hidden, (self.heads + 2 * self.kv_heads) * self.head_dim)
        sizes = {"q_proj": (self.hidden, self.heads * self.head_dim),
                 "k_proj": (self.hidden, self.kv_heads * self.head_dim),
                 "v_proj": (self.hidden, self.kv_heads * self.head_dim),
                 "o_proj": (self.heads * self.head_dim, self.hidden),
                 "gate_proj": (self.hidden, self.intermediate), "up_proj": (self.hidden, self.intermediate),
                 "down_proj": (self.intermediate, self.hidden), "query_key_value": qkv, "Wqkv": qkv, "c_attn": qkv,
                 "dense": (self.heads * self.head_dim, self.hidden)}
        return self.layers * sum(r * sum(sizes.get(t, (self.hidden, self.hidden))) for t in targets)

    def forward_flops(self, tokens: float, context: float = 0.0, logits: float = 0.0) -> float:
        """FLOPs of ``tokens`` new tokens attending to ``context`` tokens on average, with the
        output head applied at ``logits`` positions."""
        attention = 4 * self.layers * context * self.heads * self.head_dim
        return tokens * (2 * self.active + attention) + logits * 2 * self.hidden * self.vocab


def qlora_state_bytes(arch: Architecture, r: int, targets: tuple[str, ...], adam8bit: bool) -> float:
    """LoRA weights and gradients in float32 and the optimizer's two moments (8-bit Adam: 1 byte each)."""
    return arch.lora_params(r, targets) * (4 + 4 + (2 if adam8bit else 8))


def lora_target_modules(model_type: str, requested: tuple[str, ...] = DEFAULT_LORA_TARGETS) -> tuple[str, ...]:
    """The modules LoRA adapts in a model of ``model_type`` (``config.model_type``; a name:
    ``models.model_type_of``). ``requested`` at the default (the authors' q and v projections) gives the
    authors' choice for that architecture (``LORA_TARGETS``; q_proj/v_proj where the architecture
    has them); any other list is taken as given."""
    if tuple(requested) != DEFAULT_LORA_TARGETS:
        return tuple(requested)
    return LORA_TARGETS.get(str(model_type), DEFAULT_LORA_TARGETS)


def known_config(name: str) -> Any | None:
    """A transformers configuration built from ``KNOWN_CONFIGS`` (a paper model, offline), else None."""
    if name not in KNOWN_CONFIGS:
        return None
    from transformers import AutoConfig

    model_type, values = KNOWN_CONFIGS[name]
    return AutoConfig.for_model(model_type, **values)


def architecture_of(name: str, config: Any) -> Architecture:
    """The architecture of the model ``name`` with the transformers configuration ``config``, counted
    on the meta device (no weights). ``models.architecture(name)`` finds the configuration of a name."""
    import torch
    from transformers import AutoModelForCausalLM

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    seen: set[int] = set()
    params = quantizable = embedding = experts = 0
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            n = param.numel()
            params += n
            if module is head or module is embed:
                embedding += n
            elif (isinstance(module, torch.nn.Linear) and param_name == "weight") or param.ndim == 3:
                quantizable += n  # linear weights; fused expert weights (experts x out x in)
            if "experts" in f"{module_name}.{param_name}":
                experts += n
    n_experts = int(getattr(text, "num_local_experts", 0) or 0)
    routed = int(getattr(text, "num_experts_per_tok", 0) or 0)
    active = params - embedding - (experts - experts * routed // n_experts if n_experts else 0)
    hidden = int(getattr(text, "hidden_size", getattr(text, "d_model", 0)))
    heads = int(getattr(text, "num_attention_heads", getattr(text, "n_heads", 0)))
    layers = int(getattr(text, "num_hidden_layers", getattr(text, "n_layers", 0)))
    kv_heads = getattr(text, "num_key_value_heads", None)
    if kv_heads is None:
        kv_heads = 1 if getattr(text, "multi_query", False) else (getattr(text, "num_kv_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    intermediate = int(getattr(text, "intermediate_size", None) or getattr(text, "ffn_hidden_size", None)
                       or hidden * int(getattr(text, "expansion_ratio", 4)))
    # mypy types the right operand in the context of the left (Any | None); its default 2048 is an int
    context = int(getattr(text, "max_position_embeddings", None)  # type: ignore[arg-type]
                  or getattr(text, "max_seq_len", 2048))
    vocab = int(getattr(text, "vocab_size"))
    return Architecture(name=name, params=params, quantizable=quantizable, embedding=embedding, active=active,
                        layers=layers, hidden=hidden, heads=heads, kv_heads=int(kv_heads), head_dim=head_dim,
                        intermediate=intermediate, vocab=vocab, context=context,
                        tied=bool(getattr(config, "tie_word_embeddings", False)))


# --- token budgets of a loaded model ----------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """Tokens per forward pass (``batch_tokens``) and cached tokens held at once (``kv_tokens``)."""

    batch_tokens: int
    kv_tokens: int
    source: str = "default"  # default | derived | settings

    def kwargs(self) -> dict[str, int]:
        return {"batch_tokens": self.batch_tokens, "kv_tokens": self.kv_tokens}


CPU_BUDGET = Budget(4096, 8192)  # what the embedded profile was measured with (24 GB, 2 cores)
MAX_BATCH_TOKENS = 32768
MAX_KV_TOKENS = 262144


def _kv_bytes_of(model: Any) -> tuple[int, int, int]:
    """(KV bytes per token, hidden size, MLP width) read from a loaded model's configuration."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    hidden = int(getattr(config, "hidden_size", getattr(config, "d_model", 0)))
    heads = int(getattr(config, "num_attention_heads", getattr(config, "n_heads", 1)))
    layers = int(getattr(config, "num_hidden_layers", getattr(config, "n_layers", 1)))
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    width = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    element = next(p for p in model.parameters() if p.is_floating_point()).element_size()
    return 2 * layers * kv_heads * head_dim * max(element, 2), hidden, width


def derive_budget(model: Any, batch_tokens: int | None = None, kv_tokens: int | None = None) -> Budget:
    """Budgets for a loaded model: the given values, else (GPU) what the memory left on the
    fullest device holds — half of it for the key/value cache, a quarter for one layer's
    activations — capped at 32,768 tokens per pass; on a CPU the embedded profile's 4,096 / 8,192."""
    import torch

    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    if batch_tokens and kv_tokens:
        return Budget(int(batch_tokens), int(kv_tokens), "settings")
    if not devices:
        derived = CPU_BUDGET
    else:
        kv_per_token, hidden, width = _kv_bytes_of(model)
        free = min(torch.cuda.mem_get_info(d)[0] for d in devices)
        derived = budget_from_free(kv_per_token, hidden, width, free, len(devices))
    return Budget(int(batch_tokens or derived.batch_tokens), int(kv_tokens or derived.kv_tokens),
                  "settings" if (batch_tokens or kv_tokens) else derived.source)


def budget_from_free(kv_per_token: int, hidden: int, width: int, free: float, devices: int) -> Budget:
    """Budgets from ``free`` bytes on the fullest of ``devices``: half of it (on every device
    holding layers: a token's cache is spread over them) for the key/value cache, a quarter for
    one layer's activations; at most 32,768 tokens per pass and half the cached tokens."""
    kv = int(min(MAX_KV_TOKENS, 0.5 * free * devices / kv_per_token)) // 1024 * 1024
    per_pass = int(min(MAX_BATCH_TOKENS, kv // 2, 0.25 * free / ((8 * hidden + 4 * width) * 2))) // 256 * 256
    return Budget(max(per_pass, 256), max(kv, 1024), "derived")


def gib(value: float) -> str:
    return f"{value / GiB:,.1f} GiB"


def round_up(value: float, step: float) -> float:
    return math.ceil(value / step) * step
