"""Stand-ins for a dry run: a tiny random model of each named model's own architecture.

A dry run (``pipeline.dry_run``) loads, in place of every model a profile names, a model with random
weights built from that model's ``config.json`` values (``resources.KNOWN_CONFIGS``) shrunk to four
small layers (``SHRUNK``): Llama-2 stays a Llama (grouped key/value heads where the 70b has them),
Mistral keeps its sliding window, Mixtral its routed experts, Falcon-7b its fused multi-query
``query_key_value`` with parallel attention, MPT-7b its ``Wqkv`` and ALiBi. So every architecture's
own module names (LoRA targets), dtype, quantization and placement are exercised before a GPU is
paid for. Every stand-in uses the embedded model's tokenizer (the only one offline), so its
vocabulary is that tokenizer's, not the real model's.

Qwen-72B runs its own code (``trust_remote_code``), which is not in transformers and cannot be
fetched offline: its stand-in is the Qwen2 architecture ``KNOWN_CONFIGS`` sizes it with; its own
LoRA target (``c_attn``) is checked against the authors' table by a unit test instead
(``tests/test_resources.py``). A name without known values (a local folder, another Hub id) gets a
Llama-2-shaped stand-in.

Stand-ins are made once per shrunk configuration, atomically, in a folder named by its hash, under
the root a dry run passes in ``E2H_MODEL_SUBSTITUTE`` (``ROOT_MARKER`` marks such a root).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from e2h_utils import atomic
from e2h_utils.engine import resources

VERSION = 1  # bump when a stand-in's construction changes (its folder name, hence every dry-run identity)
ROOT_MARKER = "stand-ins.json"
# a name with no known config.json values: a Llama-2-shaped model (grouped key/value heads, its context)
DEFAULT: tuple[str, dict[str, Any]] = ("llama", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                                     num_attention_heads=4, num_key_value_heads=2,
                                                     max_position_embeddings=4096, rms_norm_eps=1e-5,
                                                     tie_word_embeddings=False))
LAYERS, HIDDEN, HEADS, WIDTH = 4, 64, 4, 128
# config.json keys that fix a model's size, by each architecture's own name for them, and their small value
SHRUNK: dict[str, int] = {"hidden_size": HIDDEN, "d_model": HIDDEN, "num_hidden_layers": LAYERS, "n_layers": LAYERS,
                          "num_attention_heads": HEADS, "n_heads": HEADS, "intermediate_size": WIDTH}


def _kv_heads(values: dict[str, Any]) -> int:
    """The small model's key/value heads, keeping the kind of attention: one per query head
    (multi-head), one in all (multi-query), else two (grouped)."""
    heads = values.get("num_attention_heads", values.get("n_heads"))
    kv = values["num_key_value_heads"]
    return HEADS if kv == heads else 1 if kv == 1 else 2


def shrunk_config(name: str) -> tuple[str, dict[str, Any]]:
    """(model_type, config values) of ``name``'s stand-in: its known values with the sizes shrunk
    (``SHRUNK``), key/value heads of the same kind, vocabulary left to the tokenizer."""
    model_type, values = resources.KNOWN_CONFIGS.get(name, DEFAULT)
    out = {key: SHRUNK.get(key, value) for key, value in values.items() if key != "vocab_size"}
    if "num_key_value_heads" in values:
        out["num_key_value_heads"] = _kv_heads(values)
    return model_type, out


def ensure(name: str, root: Path) -> Path:
    """The stand-in folder for ``name`` under ``root``, made on first use (random weights, seed 0;
    the embedded model's tokenizer)."""
    model_type, values = shrunk_config(name)
    key = json.dumps([VERSION, model_type, values], sort_keys=True)
    folder = root / f"{model_type}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def make(tmp: Path) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from e2h_utils.engine import embedded

        tokenizer = AutoTokenizer.from_pretrained(str(embedded.ensure_converted()))
        config = AutoConfig.for_model(model_type, **values, vocab_size=len(tokenizer),
                                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    # one maker at a time (the model is built inside the lock); the others use what it made
    return atomic.made_once(folder, lambda f: (f / "model.safetensors").is_file(), make)


def is_root(folder: Path) -> bool:
    """Whether ``folder`` is a root of stand-ins (one per architecture), not one checkpoint."""
    return (folder / ROOT_MARKER).is_file()


def make_root(root: Path) -> Path:
    """Marks ``root`` as a folder of stand-ins (the value a dry run gives ``E2H_MODEL_SUBSTITUTE``)."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / ROOT_MARKER
    if not marker.is_file():
        atomic.write_text(marker, json.dumps({"version": VERSION, "made by": __name__}, indent=1) + "\n")
    return root
