"""QLoRA: LoRA adapters on a (4-bit NF4 by default) quantized base model.

The objective is the scorer's: a softmax over the choices' summed answer log-likelihoods,
negative log-likelihood of the correct choice. AdamW with a linearly decaying learning rate,
an effective batch of min(n, max_batch) items through gradient accumulation, and as many
epochs as it takes to make at least ``min_updates`` updates (the paper's values by default).
A fresh base model is loaded for every run; adapters are dropped unless ``keep_adapter`` is
given a folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import models, scoring


@dataclass(frozen=True)
class QLoRAConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    quantization: str = "4bit"  # 4bit (NF4) | 8bit | none (plain LoRA, where bitsandbytes cannot serve)
    lr: float = 1e-4
    max_batch: int = 50  # effective batch: min(n, max_batch) items per update
    micro_batch: int = 8  # items per forward/backward pass (memory only; same updates)
    min_updates: int = 10


def schedule(n: int, config: QLoRAConfig) -> tuple[int, int, int]:
    """(effective batch, updates per epoch, epochs) for ``n`` training items."""
    batch = max(1, min(n, config.max_batch))
    per_epoch = math.ceil(n / batch)
    return batch, per_epoch, math.ceil(config.min_updates / per_epoch)


def attach_lora(model: Any, config: QLoRAConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def nll(logprobs: Sequence[torch.Tensor], labels: Sequence[int]) -> torch.Tensor:
    """Mean negative log-likelihood of the correct choice under a softmax over choices."""
    return torch.stack([-(lp.log_softmax(-1)[int(y)]) for lp, y in zip(logprobs, labels)]).mean()


def _train(model: Any, n: int, batch_loss, config: QLoRAConfig, seed: int, progress: bool, desc: str) -> list[float]:
    """The shared loop: AdamW, linear decay, effective batch via gradient accumulation.

    ``batch_loss(indices)`` returns the mean loss of those training examples."""
    torch.manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    batch, per_epoch, epochs = schedule(n, config)
    total = per_epoch * epochs
    lr_decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)
    model.train()
    losses = []
    with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                update = order[start:start + batch]
                optimizer.zero_grad()
                total_loss = 0.0
                for micro in range(0, len(update), config.micro_batch):
                    chosen = update[micro:micro + config.micro_batch]
                    loss = batch_loss(chosen) * (len(chosen) / len(update))
                    loss.backward()
                    total_loss += loss.item()
                optimizer.step()
                lr_decay.step()
                losses.append(total_loss)
                bar.update(1)
    model.eval()
    return losses


def finetune(model: Any, pad_id: int, items: Sequence[scoring.ScoringItem], labels: Sequence[int],
             config: QLoRAConfig, seed: int, bos_ids: Sequence[int] = (), progress: bool = False) -> list[float]:
    """Train the LoRA parameters of ``model`` in place; returns the loss of every update."""
    def batch_loss(chosen):
        logprobs = scoring.choice_logprob_tensors(model, [items[i] for i in chosen], pad_id=pad_id, prefix_ids=bos_ids)
        return nll(logprobs, [labels[i] for i in chosen])

    return _train(model, len(items), batch_loss, config, seed, progress, "QLoRA updates")


def train_and_score(spec: models.ModelSpec, train_items: Sequence[scoring.ScoringItem], train_labels: Sequence[int],
                    test_items: Sequence[scoring.ScoringItem], config: QLoRAConfig, seed: int,
                    keep_adapter: Path | None = None, progress: bool = False) -> tuple[list[np.ndarray], list[float]]:
    """Load a fresh quantized base, train adapters, score the test items; (logprobs, losses)."""
    base = models.load_model(spec, quantization=config.quantization)
    torch.manual_seed(int(seed))  # the LoRA initialisation draws from the global generator
    model = attach_lora(base.model, config)
    pad_id = base.tokenizer.pad_token_id
    losses = finetune(model, pad_id, train_items, train_labels, config, seed, base.bos_ids(), progress)
    logprobs = scoring.choice_logprobs(model, base.bos_ids(), test_items, pad_id=pad_id, progress=progress,
                                       desc="QLoRA scoring")
    if keep_adapter is not None:
        model.save_pretrained(keep_adapter)
    return logprobs, losses


# --- chain of thought: language-modelling loss on reasoning + answer + end of sequence -----

def lm_loss(model: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> torch.Tensor:
    """Mean token cross-entropy of each target given its prompt (right-padded batch)."""
    device = next(model.parameters()).device
    width = max(len(p) + len(t) for p, t in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (prompt, target) in enumerate(pairs):
        sequence = list(prompt) + list(target)
        ids[row, :len(sequence)] = torch.tensor(sequence)
        labels[row, len(prompt):len(sequence)] = torch.tensor(list(target))
        mask[row, :len(sequence)] = 1
    return model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss


def finetune_lm(model: Any, pad_id: int, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], config: QLoRAConfig,
                seed: int, progress: bool = False) -> list[float]:
    """Train the LoRA parameters on (prompt, target) token pairs; returns the loss of every update."""
    return _train(model, len(pairs), lambda chosen: lm_loss(model, [pairs[i] for i in chosen], pad_id),
                  config, seed, progress, "QLoRA (CoT) updates")


def train_and_generate(spec: models.ModelSpec, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                       prompts: Sequence[Sequence[int]], config: QLoRAConfig, seed: int, *, max_new_tokens: int,
                       stop: Sequence[str], keep_adapter: Path | None = None,
                       progress: bool = False) -> tuple[list[str], list[float]]:
    """Fresh quantized base + LoRA trained with the LM loss, then greedy generation for ``prompts``."""
    from .generation import greedy_generate

    base = models.load_model(spec, quantization=config.quantization)
    torch.manual_seed(int(seed))
    model = attach_lora(base.model, config)
    losses = finetune_lm(model, base.tokenizer.pad_token_id, pairs, config, seed, progress)
    texts = greedy_generate(model, base.tokenizer, base.bos_ids(), prompts, max_new_tokens=max_new_tokens,
                            stop=stop, progress=progress, desc="QLoRA (CoT) generation")
    if keep_adapter is not None:
        model.save_pretrained(keep_adapter)
    return texts, losses
