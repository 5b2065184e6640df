"""e2h_utils.methods.qlora: the update schedule, the objective, and LoRA training on the tiny random Llama.

Every training test loads a fresh copy of the tiny model (LoRA mutates it); the shared
``tiny_lm`` is only read. 4-bit loading needs bitsandbytes' CPU kernels: that test is slow
and skips with the reason when this machine cannot run it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.reference import choice_logprobs_plain
from e2h_utils.engine import models
from e2h_utils.methods import qlora
from e2h_utils.engine import scoring
from e2h_utils.methods.qlora import QLoRAConfig, attach_lora, finetune, nll, schedule, train_and_score
from e2h_utils.engine.scoring import ScoringItem

N_SPECIAL = 4  # <unk> <pad> <s> </s> come first in the tiny vocabulary
TRAIN_CONFIG = QLoRAConfig(quantization="none", target_modules=("q_proj", "v_proj"), lr=1e-2, dropout=0.0,
                           min_updates=10, max_batch=8)
TRAIN_MICRO_BATCH = 4  # a run setting now (``micro_batch=`` of finetune / train_and_score), not in QLoRAConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def random_items(vocab: int, n: int, seed: int, n_choices: int = 4) -> tuple[list[ScoringItem], list[int]]:
    rng = np.random.default_rng(seed)

    def tokens(k: int) -> tuple[int, ...]:
        return tuple(int(t) for t in rng.integers(N_SPECIAL, vocab, size=k))

    items = [ScoringItem(tokens(int(rng.integers(2, 9))),
                         tuple(tokens(int(rng.integers(1, 4))) for _ in range(n_choices)))
             for _ in range(n)]
    return items, [int(rng.integers(n_choices)) for _ in range(n)]


def fresh_lora(tiny_model_dir, config: QLoRAConfig = TRAIN_CONFIG, init_seed: int = 0):
    lm = models.load_model(str(tiny_model_dir))
    torch.manual_seed(init_seed)
    return lm, attach_lora(lm.model, config)


def mean_nll(model, items, labels, pad_id) -> float:
    model.eval()
    with torch.no_grad():
        return float(nll(scoring.choice_logprob_tensors(model, items, pad_id=pad_id), labels))


# --- schedule and objective ----------------------------------------------------------------


def test_schedule_paper_values():
    config = QLoRAConfig()
    assert (config.max_batch, config.min_updates, config.min_epochs) == (50, 10, 3)
    assert schedule(160, config) == (50, 4, 3)
    batch, per_epoch, epochs = schedule(160, config)
    assert per_epoch * epochs >= 10
    assert schedule(10, config) == (10, 1, 10)
    assert schedule(60, QLoRAConfig(max_batch=50)) == (50, 2, 5)
    assert schedule(50, config) == (50, 1, 10)
    assert schedule(1, config) == (1, 1, 10)
    for n in (1, 7, 49, 51, 99, 101, 1000):
        batch, per_epoch, epochs = schedule(n, config)
        assert batch == min(n, 50)
        assert per_epoch == math.ceil(n / batch)
        assert per_epoch * epochs >= config.min_updates
        # standardize_optimization_config: 3 epochs, more only when needed for min_updates
        assert epochs == max(3, math.ceil(config.min_updates / per_epoch))
    assert schedule(1000, config) == (50, 20, 3)  # the 3-epoch floor, not 1 epoch of 20 updates
    assert schedule(160, QLoRAConfig(min_updates=150)) == (50, 4, 38)  # chain of thought: 10 x 15


def test_recipe_defaults_are_the_authors():
    config = QLoRAConfig()
    assert (config.r, config.alpha, config.dropout, config.target_modules) == (16, 32, 0.1, ("q_proj", "v_proj"))
    assert (config.lr, config.weight_decay, config.max_grad_norm, config.lr_floor) == (1e-4, 1e-5, 1.0, 0.1)
    assert config.quantization == "8bit" and config.optimizer == "auto"
    assert qlora.lr_factor(0, 12, 0.1) == 1.0 and qlora.lr_factor(12, 12, 0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="optimizer"):
        QLoRAConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="min_updates"):
        QLoRAConfig(min_updates=0)


def test_optimizer_follows_the_authors():
    """AdamW with weight decay 1e-5; bitsandbytes' 8-bit Adam on an 8-bit base, as theirs."""
    params = [torch.nn.Parameter(torch.zeros(4))]
    adamw = qlora.make_optimizer(params, QLoRAConfig(quantization="none"))
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 1e-5
    assert adamw.param_groups[0]["lr"] == 1e-4
    try:
        eight = qlora.make_optimizer(params, QLoRAConfig(quantization="8bit"))
    except Exception as error:  # bitsandbytes missing or without CPU support here
        pytest.skip(f"bitsandbytes' 8-bit Adam is not available: {type(error).__name__}: {error}")
    assert type(eight).__name__ == "Adam8bit" and eight.param_groups[0]["weight_decay"] == 1e-5
    assert type(qlora.make_optimizer(params, QLoRAConfig(quantization="8bit", optimizer="adamw"))) is torch.optim.AdamW


def test_updates_are_clipped_to_norm_one(tiny_model_dir, monkeypatch):
    """The accumulated gradient is clipped to max_grad_norm before every update."""
    norms = []

    class Recording(torch.optim.AdamW):
        def step(self, closure=None):
            norms.append(float(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(p.grad) for g in self.param_groups for p in g["params"]
                 if p.grad is not None]))))
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    lm, model = fresh_lora(tiny_model_dir, init_seed=5)
    items, labels = random_items(len(lm.tokenizer), 8, seed=3)
    config = QLoRAConfig(quantization="none", lr=1e-2, dropout=0.0, min_updates=3, max_batch=8, max_grad_norm=1e-4)
    finetune(model, lm.tokenizer.pad_token_id, items, labels, config, seed=0)
    assert len(norms) == 3 and all(n <= 1e-4 * 1.001 for n in norms)


def test_nll_matches_hand_computation():
    logprobs = [torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64), torch.tensor([-5.0, -0.5], dtype=torch.float64)]
    labels = [2, 1]

    def hand(lp, y):
        z = np.asarray(lp)
        return -(z[y] - np.log(np.exp(z).sum()))

    want = (hand([-1.0, -2.0, -3.0], 2) + hand([-5.0, -0.5], 1)) / 2
    assert float(nll(logprobs, labels)) == pytest.approx(want, rel=1e-12)
    # adding a constant to an item's choices changes nothing (a softmax over choices)
    shifted = [logprobs[0] + 7.0, logprobs[1] - 3.0]
    assert float(nll(shifted, labels)) == pytest.approx(want, rel=1e-12)
    # gradients flow
    x = logprobs[0].clone().requires_grad_()
    nll([x], [0]).backward()
    np.testing.assert_allclose(x.grad.numpy(), torch.softmax(logprobs[0], -1).numpy() - np.eye(3)[0])


# --- the scorer's differentiable path ------------------------------------------------------


def test_logprob_tensors_match_numpy_scorer(tiny_lm, tiny_model_dir):
    items, _ = random_items(len(tiny_lm.tokenizer), 6, seed=1)
    pad = tiny_lm.tokenizer.pad_token_id
    with torch.no_grad():
        tensors = scoring.choice_logprob_tensors(tiny_lm.model, items, pad_id=pad)
        with_bos = scoring.choice_logprob_tensors(tiny_lm.model, items, pad_id=pad,
                                                  prefix_ids=[tiny_lm.tokenizer.bos_token_id])
    arrays = scoring.choice_logprobs(tiny_lm.model, [], items, pad_id=pad)
    plain = choice_logprobs_plain(tiny_lm.model, [tiny_lm.tokenizer.bos_token_id], items)
    assert len(tensors) == len(items)
    for t, a, item in zip(tensors, arrays, items):
        assert t.shape == (len(item.choice_ids),)
        np.testing.assert_allclose(t.numpy(), a, rtol=1e-6, atol=1e-6)
    for t, a in zip(with_bos, plain):
        np.testing.assert_allclose(t.numpy(), a, rtol=1e-5, atol=1e-5)

    _, model = fresh_lora(tiny_model_dir)
    model.train()
    grads = scoring.choice_logprob_tensors(model, items[:2], pad_id=pad)
    assert all(t.requires_grad for t in grads)
    # before training the adapters are a no-op (B = 0): same values as the base model
    for t, a in zip(grads, arrays[:2]):
        np.testing.assert_allclose(t.detach().numpy(), a, rtol=1e-6, atol=1e-6)


# --- training ------------------------------------------------------------------------------


def test_finetune_lowers_loss_and_trains_only_lora(tiny_model_dir):
    lm, model = fresh_lora(tiny_model_dir)
    pad = lm.tokenizer.pad_token_id
    items, labels = random_items(len(lm.tokenizer), 10, seed=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and any("v_proj" in n for n in trainable)
    assert not any(m in n for n in trainable for m in ("k_proj", "o_proj", "mlp"))
    before_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    before = mean_nll(model, items, labels, pad)

    losses = finetune(model, pad, items, labels, TRAIN_CONFIG, seed=0, micro_batch=TRAIN_MICRO_BATCH)
    batch, per_epoch, epochs = schedule(len(items), TRAIN_CONFIG)
    assert (batch, per_epoch, epochs) == (8, 2, 5)
    assert len(losses) == per_epoch * epochs == 10
    assert all(np.isfinite(losses))
    assert not model.training  # back in eval mode
    after = mean_nll(model, items, labels, pad)
    assert after < before - 0.1
    # the first update's loss is the loss of the untrained model on that batch: same scale
    assert losses[0] == pytest.approx(before, abs=0.5)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before_params[n])}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)
    for n, p in model.named_parameters():
        if n not in trainable:
            assert torch.equal(p, before_params[n]), n


def test_micro_batching_gives_the_same_update(tiny_model_dir, monkeypatch):
    """With dropout 0, gradient accumulation over micro-batches of 1 gives the gradient of one
    pass over the whole batch: compare the gradients seen at the first optimizer step."""
    seen: list[dict[str, torch.Tensor]] = []

    class Recording(torch.optim.AdamW):
        def step(self, closure=None):
            if not seen or len(seen[-1]) == 0:
                seen[-1].update({str(i): p.grad.detach().clone() for i, p in enumerate(self.param_groups[0]["params"])
                                 if p.grad is not None})
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    results = {}
    for micro in (1, 8):
        lm, model = fresh_lora(tiny_model_dir, init_seed=5)
        items, labels = random_items(len(lm.tokenizer), 8, seed=3)
        config = QLoRAConfig(quantization="none", lr=1e-3, dropout=0.0, min_updates=1, min_epochs=1, max_batch=8)
        seen.append({})
        results[micro] = finetune(model, lm.tokenizer.pad_token_id, items, labels, config, seed=0, micro_batch=micro)
    assert len(results[1]) == len(results[8]) == 1
    assert results[1][0] == pytest.approx(results[8][0], rel=1e-6)
    one, eight = seen
    assert one.keys() == eight.keys() and len(one) > 0
    assert any(g.abs().max() > 0 for g in one.values())
    for key in one:
        torch.testing.assert_close(one[key], eight[key], rtol=1e-4, atol=1e-7)


def test_train_and_score_end_to_end(tiny_model_dir, tmp_path):
    spec = models.ModelSpec(name=str(tiny_model_dir))
    tokenizer_size = len(models.load_model(spec).tokenizer)
    train, labels = random_items(tokenizer_size, 6, seed=4)
    test, _ = random_items(tokenizer_size, 5, seed=5, n_choices=3)
    config = QLoRAConfig(quantization="none", min_updates=2, min_epochs=1, max_batch=4)
    logprobs, losses = train_and_score(models.load_model(spec), train, labels, test, config, seed=0,
                                       keep_adapter=tmp_path / "adapter")
    assert len(logprobs) == len(test)
    assert all(isinstance(lp, np.ndarray) and lp.shape == (3,) and np.isfinite(lp).all() for lp in logprobs)
    batch, per_epoch, epochs = schedule(len(train), config)
    assert len(losses) == per_epoch * epochs == 2
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_train_and_score_is_seeded(tiny_model_dir):
    spec = models.ModelSpec(name=str(tiny_model_dir))
    tokenizer_size = len(models.load_model(spec).tokenizer)
    train, labels = random_items(tokenizer_size, 6, seed=4)
    test, _ = random_items(tokenizer_size, 3, seed=5)
    config = QLoRAConfig(quantization="none", min_updates=2, max_batch=4, lr=1e-2)
    torch.manual_seed(1)
    a = train_and_score(models.load_model(spec), train, labels, test, config, seed=0)
    torch.manual_seed(2)  # whatever the global RNG state, the same seed gives the same run
    b = train_and_score(models.load_model(spec), train, labels, test, config, seed=0)
    assert a[1] == b[1]
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)


def test_one_base_serves_every_run_and_is_left_as_it_was(tiny_model_dir, monkeypatch):
    """QLoRA on the loaded model itself (same precision): each run equals a run on a freshly
    loaded base, the base scores exactly as before afterwards, and nothing is loaded again."""
    spec = models.ModelSpec(name=str(tiny_model_dir))
    lm = models.load_model(spec)
    train, labels = random_items(len(lm.tokenizer), 6, seed=4)
    test, _ = random_items(len(lm.tokenizer), 4, seed=5)
    config = QLoRAConfig(quantization="none", min_updates=3, max_batch=4, lr=5e-2)
    pad = lm.tokenizer.pad_token_id
    before = scoring.choice_logprobs(lm.model, [], test, pad_id=pad)
    weights = {k: v.clone() for k, v in lm.model.state_dict().items()}
    fresh = [train_and_score(models.load_model(spec), train, labels, test, config, seed=s) for s in (0, 1)]
    loads = []
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or pytest.fail("base reloaded"))
    shared = [train_and_score(lm, train, labels, test, config, seed=s) for s in (0, 1)]
    assert not loads and models.training_base(lm, "none") is lm
    for (f_scores, f_losses), (s_scores, s_losses) in zip(fresh, shared):
        assert f_losses == s_losses
        for x, y in zip(f_scores, s_scores):
            np.testing.assert_array_equal(x, y)
    assert not np.allclose(shared[0][0][0], before[0])  # the adapters did change the scores ...
    after = scoring.choice_logprobs(lm.model, [], test, pad_id=pad)  # ... and are gone again
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
    assert lm.model.state_dict().keys() == weights.keys()
    for key, value in lm.model.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
    assert not any("lora" in name for name, _ in lm.model.named_modules())


def test_adapters_are_removed_after_an_error(tiny_model_dir):
    lm = models.load_model(str(tiny_model_dir))
    with pytest.raises(RuntimeError, match="mid-run"):
        with qlora.adapters(lm, TRAIN_CONFIG, seed=0):
            raise RuntimeError("mid-run")
    assert not any("lora" in name for name, _ in lm.model.named_modules())


def test_gradient_checkpointing_gives_the_same_run(tiny_model_dir):
    """Checkpointing is a run setting (chain-of-thought training): it must not change a result."""
    spec = models.ModelSpec(name=str(tiny_model_dir))
    lm = models.load_model(spec)
    rng = np.random.default_rng(3)
    pairs = [([int(t) for t in rng.integers(N_SPECIAL, len(lm.tokenizer), 6)],
              [int(t) for t in rng.integers(N_SPECIAL, len(lm.tokenizer), 5)]) for _ in range(6)]
    config = QLoRAConfig(quantization="none", min_updates=3, max_batch=4, lr=5e-2, dropout=0.1)
    runs = {}
    for setting in ("off", "on"):
        base = models.load_model(spec)
        with qlora.adapters(base, config, seed=0, checkpointing=setting == "on") as model:
            assert base.model.is_activation_checkpointing == (setting == "on")
            runs[setting] = qlora.finetune_lm(model, lm.tokenizer.pad_token_id, pairs, config, seed=0)
        assert not base.model.is_activation_checkpointing
    assert runs["off"] == runs["on"]
    assert qlora.needs_checkpointing(lm.model, 10_000, "auto") is False  # never on a CPU
    assert qlora.needs_checkpointing(lm.model, 1, "on") is True


def test_peft_deprecation_noise_is_silenced(tiny_model_dir):
    """peft calls a name transformers deprecates (`is_gradient_checkpointing`) on every LoRA model;
    the package filters that FutureWarning. Run as a notebook runs it (a fresh process: pytest keeps
    its own warning filters per test); the control drops the package's filter and shows the warning."""
    import subprocess
    import sys

    script = (
        "import warnings, sys\n"
        "from e2h_utils.engine import models\n"
        "from e2h_utils.methods import qlora\n"
        "if sys.argv[1] == 'control': warnings.resetwarnings()\n"
        f"lm = models.load_model({str(tiny_model_dir)!r})\n"
        "with qlora.adapters(lm, qlora.QLoRAConfig(quantization='none'), seed=0, checkpointing=True):\n"
        "    pass\n"
    )

    def stderr(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=300,
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr
        return done.stderr

    if "is_gradient_checkpointing" not in stderr("control"):
        pytest.skip("this peft/transformers pair emits no is_gradient_checkpointing warning")
    assert "is_gradient_checkpointing" not in stderr("package")


@pytest.mark.slow
def test_train_and_score_4bit(make_tiny_tokenizer, tmp_path):
    """bitsandbytes' CPU 4-bit path needs in_features divisible by its block size (64): the
    session's tiny model (hidden 32) fails with "shape '[32, 0]' is invalid", so this test saves
    its own random Llama with hidden 128."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as error:
        pytest.skip(f"bitsandbytes cannot be imported here: {type(error).__name__}: {error}")
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=256, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    spec = models.ModelSpec(name=str(tmp_path))
    train, labels = random_items(len(tokenizer), 4, seed=6)
    test, _ = random_items(len(tokenizer), 2, seed=7)
    try:
        loaded = models.load_model(spec, quantization="4bit")
        scoring.choice_logprobs(loaded.model, [], test[:1], pad_id=tokenizer.pad_token_id)
    except Exception as error:  # no CPU 4-bit support on this machine
        pytest.skip(f"4-bit loading/inference does not work on this machine: {type(error).__name__}: {error}")
    assert any(type(m).__name__ == "Linear4bit" for m in loaded.model.modules())
    config = QLoRAConfig(quantization="4bit", min_updates=2, min_epochs=1, max_batch=4, lr=1e-2)
    logprobs, losses = train_and_score(models.load_model(spec), train, labels, test, config, seed=0)
    assert len(logprobs) == 2 and all(lp.shape == (4,) and np.isfinite(lp).all() for lp in logprobs)
    assert len(losses) == 2 and all(np.isfinite(losses))


# --- the authors' LoRA targets per architecture (utils/utils.py:128-138) -----------------------


def _tiny(config):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("arch, target", [("falcon", "query_key_value"), ("mpt", "Wqkv")])
def test_lora_attaches_to_falcon_and_mpt(arch, target):
    """The default (the authors' q/v) lands on Falcon's and MPT's fused projections: with q_proj /
    v_proj, peft found no module to adapt in the MDL hardness models Falcon-7b and MPT-7b."""
    from transformers import FalconConfig, MptConfig

    config = (FalconConfig(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, vocab_size=64, multi_query=True,
                           parallel_attn=True, bias=False, new_decoder_architecture=False) if arch == "falcon"
              else MptConfig(d_model=32, n_heads=4, n_layers=2, vocab_size=64, max_seq_len=64))
    model = attach_lora(_tiny(config), QLoRAConfig(quantization="none"))
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == {target}
    assert sum(1 for name, _ in model.named_parameters() if "lora_A" in name) == 2  # one per layer
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3]]))
    unwrapped = model.unload()
    assert not any("lora" in name for name, _ in unwrapped.named_parameters())


def test_lora_targets_on_llama_and_explicit_lists(tiny_model_dir):
    lm = models.load_model(str(tiny_model_dir))
    model = attach_lora(lm.model, QLoRAConfig(quantization="none"))
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == {"q_proj", "v_proj"}
    model.unload()
    explicit = attach_lora(lm.model, QLoRAConfig(quantization="none", target_modules=("k_proj",)))  # taken as given
    assert ({n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in explicit.named_parameters() if "lora_A" in n}
            == {"k_proj"})
    explicit.unload()


# --- the updates the authors' loop performs (models/probes.py:339,354-356,437,456) --------------


def test_authors_counter_hand_counts():
    """Llama-2-70b on 4 GPUs: a dataloader batch of 4 sequences per device (run_jobs.py:108).

    Answer scoring at n = 160, four choices (ARC, MMLU): micro-batches of 4 // 4 = 1 item, gaf =
    50 // 1 = 50, 3 epochs of 160 micro-batches = 480, and 480 // 50 = 9 updates performed of the
    3 x ceil(160 / 50) = 12 the learning rate decays over; yes/no (StrategyQA): 2 items, gaf 25,
    3 x 80 = 240 -> 9 of 12. Chain of thought (one sequence per item): 4 items, gaf 12, 38 epochs
    (ceil(150 / 4)) of 40 micro-batches = 1520 -> 126 of 38 x ceil(40 / 12) = 152. Ours: 12 and 152."""
    mc = qlora.authors_counter(160, QLoRAConfig(authors_batch=4), answers=4)
    assert (mc.micro, mc.gaf, mc.performed, mc.scheduled, mc.divisor) == (1, 50, 9, 12, 50)
    yes_no = qlora.authors_counter(160, QLoRAConfig(authors_batch=4), answers=2)
    assert (yes_no.micro, yes_no.gaf, yes_no.performed, yes_no.scheduled, yes_no.divisor) == (2, 25, 9, 12, 50)
    cot = qlora.authors_counter(160, QLoRAConfig(authors_batch=4, min_updates=150), answers=1)
    assert (cot.micro, cot.gaf, cot.performed, cot.scheduled, cot.divisor) == (4, 12, 126, 152, 48)
    _, per_epoch, epochs = schedule(160, QLoRAConfig())
    assert per_epoch * epochs == 12
    _, per_epoch, epochs = schedule(160, QLoRAConfig(min_updates=150))
    assert per_epoch * epochs == 152
    # a 7b model in 8-bit on 4 GPUs (36 per device): 9 items, gaf 5 (45 items), 3 x 18 = 54 -> 10 of 12
    seven = qlora.authors_counter(160, QLoRAConfig(authors_batch=36), answers=4)
    assert (seven.micro, seven.gaf, seven.performed, seven.scheduled) == (9, 5, 10, 12)
    # fewer sequences than one batch: one micro-batch of everything, one update per epoch, 10 epochs
    small = qlora.authors_counter(10, QLoRAConfig(authors_batch=36), answers=2)
    assert (small.micro, small.gaf, small.performed, small.scheduled, small.divisor) == (10, 1, 10, 10, 18)
    with pytest.raises(ValueError, match="micro-batches of 0"):
        qlora.authors_counter(160, QLoRAConfig(authors_batch=4), answers=5)
    with pytest.raises(ValueError, match="authors_batch"):
        QLoRAConfig(authors_batch=-1)


def test_update_plan_ours_is_the_epoch_loop_and_theirs_straddles_epochs():
    ours, total = qlora.update_plan(120, QLoRAConfig(), np.random.default_rng(3))
    rng = np.random.default_rng(3)  # the loop before update_plan: one permutation per epoch, cut in 50s
    expected = [order[s:s + 50] for order in (rng.permutation(120) for _ in range(4)) for s in range(0, 120, 50)]
    assert total == 12 and len(ours) == 12  # 3 updates per epoch, 4 epochs for 10 updates
    assert all(np.array_equal(u, e) and d == len(e) for (u, d), e in zip(ours, expected))

    theirs, scheduled = qlora.update_plan(160, QLoRAConfig(authors_batch=4), np.random.default_rng(3), answers=4)
    assert (len(theirs), scheduled) == (9, 12)
    rng = np.random.default_rng(3)
    stream = np.concatenate([rng.permutation(160) for _ in range(3)])
    assert np.array_equal(np.concatenate([u for u, _ in theirs]), stream[:450])  # the last 30 never applied
    assert all(len(u) == 50 and d == 50 for u, d in theirs)  # update 4 (stream[150:200]) spans epochs 1 and 2


def test_authors_counter_trains_the_updates_it_counts(tiny_model_dir, monkeypatch):
    """finetune with authors_batch: as many optimizer steps as the counter performs, the learning
    rate decayed over the updates it schedules; authors_batch 0 leaves a run's key as before."""
    from e2h_utils.methods.base import QLoRA, build

    steps = []

    class Counting(torch.optim.AdamW):
        def step(self, closure=None):
            steps.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Counting)
    lm, model = fresh_lora(tiny_model_dir, init_seed=2)
    items, labels = random_items(len(lm.tokenizer), 10, seed=4, n_choices=2)
    config = QLoRAConfig(quantization="none", lr=1e-2, dropout=0.0, min_updates=8, min_epochs=1, max_batch=4,
                         authors_batch=4)  # 3 epochs of ceil(10 / 4) = 3 scheduled updates
    counter = qlora.authors_counter(10, config, answers=2)  # 2 items per micro-batch, 2 micro-batches per update
    assert (counter.micro, counter.gaf, counter.performed, counter.scheduled) == (2, 2, 7, 9)
    losses = finetune(model, lm.tokenizer.pad_token_id, items, labels, config, seed=0, micro_batch=3)
    assert len(losses) == len(steps) == 7
    assert steps[-1] == pytest.approx(1e-2 * qlora.lr_factor(6, 9, 0.1))
    assert "authors_batch" not in dict(QLoRA(160).options())
    assert dict(build("qlora", 160, {"authors_batch": 4}).options())["authors_batch"] == 4
    assert QLoRA(160).options() == build("qlora", 160, {"authors_batch": 0}).options()


def test_an_offloaded_unquantized_base_trains_on_a_copy_in_memory(tiny_model_dir, tmp_path):
    """The MDL learner trains Falcon / MPT as loaded, unquantized; a CPU dry run holds its stand-in
    partly on disk, where LoRA's gradients cannot flow, so training gets a copy held whole."""
    from e2h_utils.engine import runtime

    settings = runtime.RunSettings(max_memory=(("cpu", "1KB"),), offload_folder=str(tmp_path / "offload"))
    lm = models.load_model(str(tiny_model_dir), settings)
    assert models.offloaded(lm.model)
    try:
        base = models.training_base(lm, "none")
        assert base is not lm and base.identity == lm.identity and not models.offloaded(base.model)
        items, labels = random_items(len(lm.tokenizer), 6, seed=1)
        config = QLoRAConfig(quantization="none", min_updates=2, min_epochs=1, max_batch=3)
        scores, losses = train_and_score(lm, items[:4], labels[:4], items[4:], config, seed=0, micro_batch=2)
        assert len(losses) == 2 and len(scores) == 2
    finally:
        models.release_training_base()
