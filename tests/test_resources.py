"""e2h_utils.engine.resources: model sizes from their configuration, memory at a precision, budgets, FLOPs."""

from __future__ import annotations

import pytest

from e2h_utils.engine import models
from e2h_utils.engine import resources

GiB = 1 << 30


@pytest.mark.parametrize("name, params", [
    ("meta-llama/Llama-2-7b-hf", 6_738_415_616),  # the published counts of these checkpoints
    ("meta-llama/Llama-2-13b-hf", 13_015_864_320),
    ("meta-llama/Llama-2-70b-hf", 68_976_648_192),
    ("mistralai/Mistral-7B-v0.1", 7_241_732_096),
    ("mistralai/Mixtral-8x7B-v0.1", 46_702_792_704),
])
def test_parameter_counts_of_the_paper_models(name, params):
    assert models.architecture(name).params == params


def test_every_pinned_model_can_be_sized_offline():
    assert set(models.PINNED) <= set(resources.KNOWN_CONFIGS)
    for name in models.PINNED:
        arch = models.architecture(name)
        assert 6e9 < arch.params < 8e10 and 0.9 < arch.quantizable / arch.params < 1


def test_memory_of_llama2_70b():
    arch = models.architecture("meta-llama/Llama-2-70b-hf")
    assert arch.weight_bytes("none", "bfloat16") / GiB == pytest.approx(128.5, abs=0.05)  # the figure
    eight = arch.weight_bytes("8bit")
    assert 64 * GiB < eight < 66 * GiB  # int8 linear layers, bf16 embeddings and head
    assert arch.weight_bytes("4bit") < 0.55 * eight
    assert arch.kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2  # 320 KiB: GQA with 8 KV heads
    # 65,536 cached tokens: the 20 GiB the issue quotes
    assert 65536 * arch.kv_bytes_per_token() / GiB == pytest.approx(20.0)


def test_mixture_of_experts_counts_routed_experts_only():
    arch = models.architecture("mistralai/Mixtral-8x7B-v0.1")
    assert 12e9 < arch.active < 13e9 < arch.params  # 2 of 8 experts per token


def test_flops_scale_with_tokens_context_and_logits():
    arch = models.architecture("meta-llama/Llama-2-7b-hf")
    base = arch.forward_flops(100)
    assert base == pytest.approx(100 * 2 * arch.active)
    assert arch.forward_flops(100, context=1000) > base
    assert arch.forward_flops(100, logits=100) - base == pytest.approx(100 * 2 * 4096 * 32000)


def test_activation_memory_with_and_without_checkpointing():
    arch = models.architecture("meta-llama/Llama-2-70b-hf")
    full, saved = arch.activation_bytes_per_token(False), arch.activation_bytes_per_token(True)
    assert saved < full / 10
    state = resources.qlora_state_bytes(arch, 16, ("q_proj", "v_proj"), adam8bit=True)
    assert arch.lora_params(16, ("q_proj", "v_proj")) == 80 * 16 * ((8192 + 8192) + (8192 + 1024))
    assert state == arch.lora_params(16, ("q_proj", "v_proj")) * 10


def test_an_unknown_model_says_how_to_size_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(resources.UnknownArchitecture, match="KNOWN_CONFIGS"):
        models.architecture("someone/unknown-model-xyz")


def test_budget_on_a_cpu_and_from_settings(tiny_lm):
    assert resources.derive_budget(tiny_lm.model) == resources.CPU_BUDGET
    assert tiny_lm.budget == resources.CPU_BUDGET
    given = resources.derive_budget(tiny_lm.model, 1024, 4096)
    assert (given.batch_tokens, given.kv_tokens, given.source) == (1024, 4096, "settings")


def test_lora_targets_are_the_authors_per_architecture():
    """utils/utils.py:128-138: Falcon query_key_value, MPT Wqkv, Qwen c_attn, Mistral / Mixtral and
    Llama (peft's default) q_proj / v_proj; a list other than the default is taken as given."""
    names = {"tiiuae/falcon-7b": ("query_key_value",), "mosaicml/mpt-7b": ("Wqkv",), "Qwen/Qwen-72B": ("c_attn",),
             "huggyllama/llama-7b": ("q_proj", "v_proj"), "mistralai/Mistral-7B-v0.1": ("q_proj", "v_proj"),
             "mistralai/Mixtral-8x7B-v0.1": ("q_proj", "v_proj"), "meta-llama/Llama-2-70b-hf": ("q_proj", "v_proj")}
    for name, targets in names.items():
        assert resources.lora_target_modules(models.model_type_of(name)) == targets, name
    assert models.model_type_of("Qwen/Qwen-72B") == "qwen"  # its own code, not the Qwen2 it is sized as
    assert resources.lora_target_modules("qwen2") == ("q_proj", "v_proj")
    assert resources.lora_target_modules("falcon", ("query_key_value", "dense")) == ("query_key_value", "dense")


def test_lora_state_of_a_fused_projection():
    falcon = models.architecture("tiiuae/falcon-7b")  # 71 query heads, one KV head (multi-query), 64 wide
    assert falcon.lora_params(16, ("query_key_value",)) == 32 * 16 * (4544 + (71 + 2) * 64)
    mpt = models.architecture("mosaicml/mpt-7b")
    assert mpt.lora_params(16, ("Wqkv",)) == 32 * 16 * (4096 + 3 * 4096)
