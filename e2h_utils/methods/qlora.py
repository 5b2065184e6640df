"""QLoRA: LoRA adapters on a quantized base model, trained as the authors train them.

The authors' recipe (``models/probes.py::Probe.finetune``, ``utils/utils.py::
standardize_optimization_config`` and ``PEFT_wrap_model``, ``main.py`` defaults, ``run_jobs.py``):

- LoRA r 16, alpha 32, dropout 0.1 on the q/v projections, named per architecture as theirs
  (``resources.lora_target_modules``: Falcon's ``query_key_value``, MPT's ``Wqkv``, Qwen's ``c_attn``);
- objective: for answer scoring, a softmax over the choices' summed answer log-likelihoods and
  the negative log-likelihood of the correct choice; for chain of thought, the summed
  log-likelihood of reasoning + answer + end-of-sequence, averaged over sequences (their
  ``LM_loss``: ``-probs.mean()`` of per-sequence sums);
- an effective batch of min(n, 50) items; at least 3 epochs, more if needed for ``min_updates``
  updates (10; 150 for chain of thought: ``run_jobs.py:438-440`` multiplies by 15); with
  ``authors_batch`` set, the updates their loop actually performs (``update_plan``);
- AdamW at 1e-4 (bitsandbytes' 8-bit Adam on an 8-bit base, as theirs), weight decay 1e-5, the
  learning rate decaying linearly to 10% of its start, gradient norm clipped at 1.0.

Where this differs from the authors' code (clipping once per update rather than after every
micro-batch; 4-bit NF4 as an option) the fidelity ledger (docs/fidelity.md) says so.

The base is ``models.training_base``: the loaded model itself at the same precision, else one
copy per process. Each run attaches fresh adapters (seeded), trains and scores, and removes them
again (``adapters``), so every run starts from the same base weights, as with a freshly loaded
base, and the model scores as before afterwards. Adapters are saved only when ``keep_adapter``
names a folder. Gradient checkpointing (a run setting, same results) applies to the
chain-of-thought loss over whole sequences, turned on when a micro-batch's activations would not
fit in the memory left on the GPUs; answer scoring trains through the prefix / question cache,
which checkpointed layers do not keep, so its memory is set by ``micro_batch`` alone.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from e2h_utils.engine import batching, models, resources, scoring
from e2h_utils.methods import bounds
from e2h_utils.methods.bounds import bounded

# transformers 5 deprecates a name peft still calls on every LoRA model: harmless, and once per model
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)

QLORA_VERSION = 2  # 2: the authors' schedule, clipping, decay to 10%, weight decay, summed LM loss
COT_MIN_UPDATES = 150  # run_jobs.py: model_size_to_min_grad_updates (10) x 15 for chain of thought
OPTIMIZERS = ("auto", "adamw", "adam8bit")


@dataclass(frozen=True)
class QLoRAConfig:
    # integer ceilings: a rank at most the widest paper model's hidden size (8,192), counts far above any
    # recipe's (the authors' chain of thought: 150 updates), so a typo of 10^9 is refused, not run for months
    r: int = bounded(16, 1, 8192, integer=True)
    alpha: int = bounded(32, 0, open_low=True)
    dropout: float = bounded(0.1, 0, 1, open_high=True)
    # the adapted projections; the default, the authors' q and v projections, is named per architecture
    # as they name it (resources.lora_target_modules: query_key_value on Falcon, Wqkv on MPT, c_attn on
    # Qwen), any other list is taken as given
    target_modules: tuple[str, ...] = resources.DEFAULT_LORA_TARGETS
    quantization: str = "8bit"  # 8bit (the authors', LLM.int8) | 4bit (NF4) | none (plain LoRA)
    lr: float = bounded(1e-4, 0, open_low=True)  # --probing_lr
    # effective batch: min(n, max_batch) items per update
    max_batch: int = bounded(50, 1, 65_536, integer=True)
    # --minimum_gradient_updates (150 for chain of thought)
    min_updates: int = bounded(10, 1, 100_000, integer=True)
    # standardize_optimization_config: 3 epochs unless more are needed
    min_epochs: int = bounded(3, 1, 10_000, integer=True)
    max_grad_norm: float = bounded(1.0, 0, open_low=True)  # clip_grad_norm_(..., 1.)
    lr_floor: float = bounded(0.1, 0, 1)  # --probing_lr_decay 10-percent
    weight_decay: float = bounded(1e-5, 0)  # --weight_decay
    optimizer: str = "auto"  # auto: bitsandbytes Adam8bit on an 8-bit base (theirs), else AdamW
    # 0: every update takes min(n, max_batch) distinct items, an epoch's last update the rest (``schedule``).
    # B > 0: the authors' update counter for their dataloader batch of B sequences per device (run_jobs.py:
    # 94-111; 4 for the 70b models on 4 GPUs): micro-batches of B // answers items (B for chain of
    # thought), gradients accumulated over min(n, max_batch) // that many micro-batches and counted across
    # epochs, a trailing partial accumulation never applied, the learning rate decaying over the updates
    # their schedule counts (``update_plan``; models/probes.py:339,354-356,437-443,456)
    authors_batch: int = bounded(0, 0, 65_536, integer=True)

    def __post_init__(self) -> None:
        bounds.check(self)
        if self.quantization not in models.QUANTIZATIONS:  # else refused only when its base loads, mid-notebook
            raise ValueError(f"unknown quantization {self.quantization!r}; valid: {', '.join(models.QUANTIZATIONS)}")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise ValueError(f"target_modules must list at least one module name (the default: the authors' q and v "
                             f"projections, named per architecture), not {self.target_modules!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")

    def key_options(self) -> dict[str, Any]:
        """The settings as results are keyed by them: an option added after results were stored is
        left out at the value that computes what those results computed (``KEY_NEUTRAL``)."""
        return {k: v for k, v in asdict(self).items() if not (k in KEY_NEUTRAL and v == KEY_NEUTRAL[k])}


KEY_NEUTRAL = {"authors_batch": 0}  # option -> the value at which stored results keep their keys


def schedule(n: int, config: QLoRAConfig) -> tuple[int, int, int]:
    """(effective batch, updates per epoch, epochs) for ``n`` training items: ``min_epochs``
    epochs, or as many as it takes to make ``min_updates`` updates."""
    batch = max(1, min(n, config.max_batch))
    per_epoch = math.ceil(n / batch)
    return batch, per_epoch, max(config.min_epochs, math.ceil(config.min_updates / per_epoch))


def lr_factor(step: int, total: int, floor: float) -> float:
    """transformers' linear schedule over ``total / (1 - floor)`` steps: 1 at the start, ``floor``
    after ``total`` updates."""
    return max(0.0, 1.0 - (1.0 - floor) * step / max(total, 1))


@dataclass(frozen=True)
class AuthorsCounter:
    """The authors' accumulation for ``n`` items (``utils/utils.py:211-229``, ``models/probes.py:337-339``,
    ``data_utils.py:163``): micro-batches of ``micro`` items, ``gaf`` of them per update, the summed
    loss of an update divided by ``divisor`` (each micro-batch's mean loss x its share of the batch / gaf,
    probes.py:429-432), ``performed`` updates (probes.py:437: the counter runs over all epochs, so a
    trailing partial accumulation is never applied) of the ``scheduled`` ones the learning rate decays over."""

    micro: int
    gaf: int
    divisor: float
    performed: int
    scheduled: int


def authors_counter(n: int, config: QLoRAConfig, answers: int) -> AuthorsCounter:
    """The authors' counter for ``n`` items with ``answers`` sequences each (1 for chain of thought,
    whose batches hold one sequence per item) and their per-device batch ``config.authors_batch``."""
    batch = config.authors_batch
    if batch < 1:
        raise ValueError("authors_batch is 0: our schedule, not the authors' counter")
    answers = max(1, int(answers))
    _, _, epochs = schedule(n, config)  # their epochs: the same rule (utils.py:224-229)
    if n * answers < batch:  # one micro-batch of everything (utils.py:212-216)
        micro, gaf = n, 1
    else:
        micro = batch // answers
        gaf = min(n, config.max_batch) // micro if micro else 0
        if gaf < 1:  # their code divides by zero here
            raise ValueError(f"authors_batch {batch} with {answers} answers per item gives micro-batches of {micro} "
                             f"items and {gaf} per update (min(n, {config.max_batch}) = {min(n, config.max_batch)})")
    per_epoch = math.ceil(n / micro)
    return AuthorsCounter(micro=micro, gaf=gaf, divisor=gaf * batch / answers, performed=epochs * per_epoch // gaf,
                          scheduled=epochs * math.ceil(per_epoch / gaf))


def update_plan(n: int, config: QLoRAConfig, rng: np.random.Generator,
                answers: int = 1) -> tuple[list[tuple[np.ndarray, float]], int]:
    """Every update in order, as (the indices of its training examples, what their summed loss is
    divided by), and the number of updates the learning rate decays over. Each epoch draws one
    permutation of the ``n`` examples from ``rng``.

    ``authors_batch`` 0 (``schedule``): each epoch cut into updates of ``min(n, max_batch)`` examples,
    the last one smaller, each the mean loss of its examples. Otherwise the authors' counter
    (``authors_counter``): micro-batches that may straddle two epochs in one update, the trailing
    ones that do not fill an update dropped."""
    if not config.authors_batch:
        batch, per_epoch, epochs = schedule(n, config)
        updates = [order[start:start + batch] for order in (rng.permutation(n) for _ in range(epochs))
                   for start in range(0, n, batch)]
        return [(update, float(len(update))) for update in updates], per_epoch * epochs
    counter = authors_counter(n, config, answers)
    _, _, epochs = schedule(n, config)
    micro_batches = [order[start:start + counter.micro] for order in (rng.permutation(n) for _ in range(epochs))
                     for start in range(0, n, counter.micro)]
    return [(np.concatenate(micro_batches[k:k + counter.gaf]), counter.divisor)
            for k in range(0, counter.performed * counter.gaf, counter.gaf)], counter.scheduled


def make_optimizer(params: list, config: QLoRAConfig) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit Adam (the authors' on an 8-bit base), with weight decay."""
    name = config.optimizer
    if name == "auto":
        name = "adam8bit" if config.quantization == "8bit" else "adamw"
    if name == "adam8bit":
        import bitsandbytes as bnb

        return bnb.optim.Adam8bit([{"params": params, "weight_decay": config.weight_decay}], lr=config.lr)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def attach_lora(model: Any, config: QLoRAConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = resources.lora_target_modules(getattr(model.config, "model_type", ""), config.target_modules)
    lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def needs_checkpointing(model: Any, tokens_per_micro_batch: int, setting: str) -> bool:
    """The run setting (on / off), or (auto) whether a micro-batch's activations without
    checkpointing would take more than half the memory left on the fullest GPU; never on a CPU."""
    import torch

    if setting != "auto":
        return setting == "on"
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    if not devices:
        return False
    _, hidden, width = resources._kv_bytes_of(model)
    layers = int(getattr(model.config, "num_hidden_layers", 1))
    needed = tokens_per_micro_batch * layers * (8 * hidden + 4 * width) * 2 / len(devices)
    return needed > 0.5 * min(torch.cuda.mem_get_info(d)[0] for d in devices)


@contextmanager
def adapters(base: models.LoadedModel, config: QLoRAConfig, seed: int, checkpointing: bool = False):
    """Fresh LoRA adapters on ``base`` for one run (initialised from ``seed``), removed on exit
    (also after an error), leaving the base as it was."""
    torch.manual_seed(int(seed))  # the LoRA initialisation draws from the global generator
    model = attach_lora(base.model, config)
    if checkpointing:
        base.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield model
    finally:
        if checkpointing:
            base.model.activation_checkpointing_disable()
        model.unload()  # the base's own layers back in place of the LoRA ones
        base.model.eval()


def _micro_batch_tokens(lengths: Sequence[int], micro_batch: int) -> int:
    return micro_batch * max(lengths, default=1)


def nll(logprobs: Sequence[torch.Tensor], labels: Sequence[int]) -> torch.Tensor:
    """Mean negative log-likelihood of the correct choice under a softmax over choices."""
    return torch.stack([-(lp.log_softmax(-1)[int(y)]) for lp, y in zip(logprobs, labels)]).mean()


def _train(model: Any, n: int, batch_loss, config: QLoRAConfig, seed: int, progress: bool, desc: str,
           micro_batch: int, answers: int = 1) -> list[float]:
    """The shared loop: the optimizer, linear decay to ``lr_floor``, the updates of ``update_plan``
    (``answers``: sequences per example, for the authors' counter), each accumulated over
    micro-batches of ``micro_batch`` items (memory only: the same updates), the accumulated gradient
    clipped to ``max_grad_norm`` before every update.

    ``batch_loss(indices)`` returns the mean loss of those training examples."""
    torch.manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, config)
    plan, total = update_plan(n, config, rng, answers)
    lr_decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, config.lr_floor))
    model.train()
    losses = []
    with tqdm(total=len(plan), desc=desc, disable=not progress, leave=False) as bar:
        for update, divisor in plan:
            optimizer.zero_grad()
            total_loss = 0.0
            for micro in range(0, len(update), micro_batch):
                chosen = update[micro:micro + micro_batch]
                loss = batch_loss(chosen) * (len(chosen) / divisor)
                loss.backward()
                total_loss += loss.item()
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            lr_decay.step()
            losses.append(total_loss)
            bar.update(1)
    model.eval()
    return losses


def finetune(model: Any, pad_id: int, items: Sequence[scoring.ScoringItem], labels: Sequence[int],
             config: QLoRAConfig, seed: int, bos_ids: Sequence[int] = (), progress: bool = False,
             micro_batch: int = 8) -> list[float]:
    """Train the LoRA parameters of ``model`` in place; returns the loss of every update."""
    def batch_loss(chosen):
        logprobs = scoring.choice_logprob_tensors(model, [items[i] for i in chosen], pad_id=pad_id, prefix_ids=bos_ids)
        return nll(logprobs, [labels[i] for i in chosen])

    answers = max((len(item.choice_ids) for item in items), default=1)  # their num_answers (main.py:630)
    return _train(model, len(items), batch_loss, config, seed, progress, "QLoRA updates", micro_batch, answers)


def train_and_score(lm: models.LoadedModel, train_items: Sequence[scoring.ScoringItem], train_labels: Sequence[int],
                    test_items: Sequence[scoring.ScoringItem], config: QLoRAConfig, seed: int,
                    keep_adapter: str | Path | None = None, progress: bool = False,
                    micro_batch: int = 8) -> tuple[list[np.ndarray], list[float]]:
    """Adapters on ``lm``'s quantized base: train, score the test items; (logprobs, losses)."""
    base = models.training_base(lm, config.quantization)
    pad_id = base.tokenizer.pad_token_id
    # no checkpointing here: the two-level cache the loss runs through needs each layer's cache,
    # which a checkpointed layer does not keep; memory is bounded by ``micro_batch`` (plan.py checks it)
    with adapters(base, config, seed) as model:
        losses = finetune(model, pad_id, train_items, train_labels, config, seed, base.bos_ids(), progress,
                          micro_batch)
        logprobs = scoring.choice_logprobs(model, base.bos_ids(), test_items, pad_id=pad_id, progress=progress,
                                           desc="QLoRA scoring", **base.budget.kwargs())
        if keep_adapter is not None:
            model.save_pretrained(keep_adapter)
    return logprobs, losses


# --- chain of thought: language-modelling loss on reasoning + answer + end of sequence -----

def lm_loss(model: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> torch.Tensor:
    """The authors' ``LM_loss``: the negative log-likelihood of each target given its prompt,
    summed over the target's tokens and averaged over the sequences (right-padded batch)."""
    device = models.input_device(model)
    ids, mask = batching.pad([list(p) + list(t) for p, t in pairs], pad_id)
    labels = torch.full(ids.shape, -100, dtype=torch.long)
    for row, (prompt, target) in enumerate(pairs):
        labels[row, len(prompt):len(prompt) + len(target)] = torch.tensor(list(target))
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
    targets = labels[:, 1:].to(logits.device)  # the head's device (the last GPU of a split model)
    token_nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                  ignore_index=-100, reduction="none").view(targets.shape)
    return token_nll.sum(1).mean()


def finetune_lm(model: Any, pad_id: int, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], config: QLoRAConfig,
                seed: int, progress: bool = False, micro_batch: int = 8) -> list[float]:
    """Train the LoRA parameters on (prompt, target) token pairs; returns the loss of every update."""
    return _train(model, len(pairs), lambda chosen: lm_loss(model, [pairs[i] for i in chosen], pad_id),
                  config, seed, progress, "QLoRA (CoT) updates", micro_batch)


def train_and_generate(lm: models.LoadedModel, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                       prompts: Sequence[Sequence[int]], config: QLoRAConfig, seed: int, *, max_new_tokens: int,
                       stop: Sequence[str], stop_patterns: Sequence[Any] = (), keep_adapter: str | Path | None = None,
                       progress: bool = False, micro_batch: int = 8, generation_batch: int = 8,
                       gradient_checkpointing: str = "auto") -> tuple[list[str], list[float]]:
    """Adapters on ``lm``'s quantized base trained with the LM loss, then greedy generation for ``prompts``."""
    from e2h_utils.engine.generation import greedy_generate

    base = models.training_base(lm, config.quantization)
    tokens = _micro_batch_tokens([len(p) + len(t) for p, t in pairs], micro_batch)
    with adapters(base, config, seed, needs_checkpointing(base.model, tokens, gradient_checkpointing)) as model:
        losses = finetune_lm(model, base.tokenizer.pad_token_id, pairs, config, seed, progress, micro_batch)
        texts = greedy_generate(model, base.tokenizer, base.bos_ids(), prompts, max_new_tokens=max_new_tokens,
                                stop=stop, stop_patterns=stop_patterns, progress=progress,
                                batch_size=generation_batch, desc="QLoRA (CoT) generation")
        if keep_adapter is not None:
            model.save_pretrained(keep_adapter)
    return texts, losses
