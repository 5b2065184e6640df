"""A dry run's stand-ins: a tiny random model of each paper model's own architecture."""

from __future__ import annotations

import pytest

from e2h_utils import paths
from e2h_utils.engine import models, resources, stand_ins
from e2h_utils.engine.models import ModelSpecError
from e2h_utils.methods import qlora
from e2h_utils.methods.qlora import QLoRAConfig

# every paper model and the transformers class its stand-in loads as (Qwen-72B: the Qwen2 it is sized as,
# its own remote code not being in transformers)
CLASSES = {
    "meta-llama/Llama-2-7b-hf": "LlamaForCausalLM", "meta-llama/Llama-2-13b-hf": "LlamaForCausalLM",
    "meta-llama/Llama-2-70b-hf": "LlamaForCausalLM", "meta-llama/Llama-2-70b-chat-hf": "LlamaForCausalLM",
    "huggyllama/llama-7b": "LlamaForCausalLM", "EleutherAI/llemma_7b": "LlamaForCausalLM",
    "mistralai/Mistral-7B-v0.1": "MistralForCausalLM", "mistralai/Mixtral-8x7B-v0.1": "MixtralForCausalLM",
    "tiiuae/falcon-7b": "FalconForCausalLM", "mosaicml/mpt-7b": "MptForCausalLM", "Qwen/Qwen-72B": "Qwen2ForCausalLM",
}


def test_every_known_model_has_a_stand_in_class():
    assert set(CLASSES) == set(resources.KNOWN_CONFIGS) | set(models.PINNED)


def test_a_stand_in_keeps_the_kind_of_attention_and_the_architecture_fields():
    assert stand_ins.shrunk_config("meta-llama/Llama-2-7b-hf")[1]["num_key_value_heads"] == stand_ins.HEADS  # MHA
    assert stand_ins.shrunk_config("meta-llama/Llama-2-70b-hf")[1]["num_key_value_heads"] == 2  # grouped (64/8)
    falcon_type, falcon = stand_ins.shrunk_config("tiiuae/falcon-7b")
    assert falcon_type == "falcon" and falcon["multi_query"] and falcon["parallel_attn"]
    assert (falcon["hidden_size"], falcon["num_hidden_layers"]) == (stand_ins.HIDDEN, stand_ins.LAYERS)
    mpt_type, mpt = stand_ins.shrunk_config("mosaicml/mpt-7b")
    assert mpt_type == "mpt" and (mpt["d_model"], mpt["n_heads"], mpt["n_layers"]) == (64, 4, 4)
    mixtral = stand_ins.shrunk_config("mistralai/Mixtral-8x7B-v0.1")[1]
    assert (mixtral["num_local_experts"], mixtral["num_experts_per_tok"]) == (8, 2)
    assert stand_ins.shrunk_config("mistralai/Mistral-7B-v0.1")[1]["sliding_window"] == 4096
    assert stand_ins.shrunk_config("someone/unknown") == stand_ins.DEFAULT
    assert all("vocab_size" not in stand_ins.shrunk_config(n)[1] for n in CLASSES)  # the tokenizer's


def test_a_substitute_folder_must_be_a_checkpoint_or_a_root_of_stand_ins(tmp_path, monkeypatch):
    monkeypatch.setenv(models.SUBSTITUTE_ENV, str(tmp_path))
    with pytest.raises(ModelSpecError, match="nor a folder of stand-ins"):
        models.resolve_source(models.ModelSpec("tiiuae/falcon-7b"))


@pytest.mark.slow
def test_each_paper_model_loads_its_own_architecture_and_takes_the_authors_lora_targets(monkeypatch):
    """The dry run's stand-ins load through the same path as the real models (precision, dtype) and
    LoRA attaches to each with the authors' targets; q_proj / v_proj, what QLoRA-MDL targeted on
    every model before, are not in Falcon or MPT (the dry run's MDL cell fails with them)."""
    from peft import LoraConfig, get_peft_model

    root = stand_ins.make_root(paths.models_cache_dir() / "dry-run-stand-ins")
    monkeypatch.setenv(models.SUBSTITUTE_ENV, str(root))
    for name, cls in CLASSES.items():
        lm = models.load_model(name, dtype="authors", quantization="auto")
        assert lm.identity.startswith(f"substitute-for:{name}|local:{root}/{stand_ins.shrunk_config(name)[0]}-")
        assert type(lm.model).__name__ == cls == lm.status.architecture, name
        if lm.spec.resolved_quantization == "8bit":
            assert any(type(m).__name__ == "Linear8bitLt" for m in lm.model.modules()), name
        if name in ("tiiuae/falcon-7b", "mosaicml/mpt-7b"):  # the authors' MDL base: unquantized float32
            assert str(next(lm.model.parameters()).dtype) == "torch.float32"
            with pytest.raises(ValueError, match="not found in the base model"):
                get_peft_model(lm.model, LoraConfig(target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        wrapped = qlora.attach_lora(lm.model, QLoRAConfig())
        targets = resources.lora_target_modules(models.model_type_of(name))
        adapted = {n.split(".")[-1] for n, m in wrapped.named_modules() if hasattr(m, "lora_A")}
        if name != "Qwen/Qwen-72B":  # its stand-in is Qwen2 (q_proj / v_proj); its own c_attn: test_resources
            assert adapted == set(targets), (name, adapted)
        wrapped.unload()
