"""Multiple-choice scoring: the summed log-probability of each choice's answer tokens.

A scored item is a prompt and its choices, all as token ids; a shared ``prefix`` (BOS and
the in-context examples) goes in front of every item. ``choice_logprobs`` is the batched
scorer used everywhere: the prefix is encoded once (``batching.prefix_layers``) and its key/value
cache is reused by every row of every batch. Each item is then one packed row, its question
followed by every choice, under a tree-shaped attention mask (a choice sees the question and
itself, never another choice; position ids place each choice right after the question), so one
forward pass scores a batch of items with no per-choice copy of the cache. Architectures that
place tokens otherwise (MPT's ALiBi, Falcon) walk choice by choice instead: each question encoded
once after the prefix, each choice continuing from a copy of the question's cache (``_packs``
decides). ``choice_hidden_states`` walks that cache for the probes' features;
``choice_logprob_tensors`` keeps the autograd graph for QLoRA.

The plain reference paths (one unbatched forward per choice; every full sequence padded) live
beside the tests and benchmarks (``benchmarks/reference.py``); the tests check that this scorer
agrees with them. Softmax over a question's choice log-probabilities gives its predicted
probabilities; the prediction is the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from e2h_utils.engine import batching
from e2h_utils.engine.models import input_device

# the version of the code that scores answers (here, prompts, in-context prompts, splits, label
# noise, MDL): every stored result's key carries it; bump it when that code can change a result
SCORER_VERSION = 3  # 2: the authors' prompts; 3: a question and its choices in one tree-masked row


@dataclass(frozen=True)
class ScoringItem:
    prompt_ids: tuple[int, ...]
    choice_ids: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("a scored item needs a non-empty prompt")
        if not self.choice_ids or any(len(c) == 0 for c in self.choice_ids):
            raise ValueError("every choice needs at least one token")

    @property
    def max_length(self) -> int:
        return len(self.prompt_ids) + max(len(c) for c in self.choice_ids)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` alone (no special tokens: BOS is added once, in the prefix)."""
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def encode_after(tokenizer: Any, context: str, text: str) -> list[int]:
    """Token ids of ``text`` as it is tokenized following ``context`` (as lm-evaluation-harness
    does: encode both together, drop the context's tokens). Falls back to ``text`` alone when the
    context's tokens are not a prefix of the joint encoding."""
    context_ids = encode(tokenizer, context)
    joint = encode(tokenizer, context + text)
    if joint[:len(context_ids)] == context_ids and len(joint) > len(context_ids):
        return joint[len(context_ids):]
    return encode(tokenizer, text)


def make_item(tokenizer: Any, prompt: str, continuations: Sequence[str],
              prompt_ids: Sequence[int] | None = None) -> ScoringItem:
    """A scored item; each choice tokenized as it follows the prompt."""
    ids = encode(tokenizer, prompt) if prompt_ids is None else list(prompt_ids)
    return ScoringItem(tuple(ids), tuple(tuple(encode_after(tokenizer, prompt, c)) for c in continuations))


def default_batch_tokens(device: torch.device) -> int:
    """Tokens per forward pass when the caller gives none (a loaded model's ``budget`` is derived
    from its memory: ``resources.derive_budget``): modest on a CPU (24 GB), larger on a GPU."""
    return 32768 if device.type == "cuda" else 4096


def _decoder_and_head(model: Any) -> tuple[Any, Any]:
    return model.get_decoder(), model.get_output_embeddings()


def _token_logprobs(head: Any, hidden: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
    logprobs = head(hidden).float().log_softmax(-1)  # on the head's device (the last GPU of a split model)
    return logprobs[torch.arange(len(targets), device=logprobs.device),
                    torch.tensor(list(targets), device=logprobs.device)].double()


@dataclass
class _QuestionBatch:
    """Level 2 of the cache walk: a batch of questions encoded after the shared prefix."""

    items: list[int]  # indices into the item list
    hidden: torch.Tensor  # (rows, width, hidden) last-layer states of the question tokens
    mask: torch.Tensor  # (rows, width) question attention mask
    lengths: torch.Tensor  # (rows,) question lengths
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # key/value cache: prefix + questions

    def choice_calls(self, choices: list[tuple[int, int]], longest: int, prefix_len: int,
                     batch_tokens: int, kv_tokens: int, max_rows: int):
        """Chunks of (row, choice) pairs sized to the budgets: one forward pass each."""
        width = self.mask.shape[1]
        per_call = max(1, min(max_rows, kv_tokens // (prefix_len + width + longest), batch_tokens // max(longest, 1)))
        for start in range(0, len(choices), per_call):
            yield choices[start:start + per_call]


def _walk_questions(decoder: Any, prefix: list[int], items: Sequence[ScoringItem], pad_id: int,
                    batch_tokens: int, kv_tokens: int, max_rows: int, progress: bool, desc: str):
    """Encode the prefix once, then yield each batch of questions encoded after it."""
    device = _input_device(decoder)
    P = len(prefix)
    prefix_kv = batching.prefix_layers(decoder, prefix, device) if P else None
    lengths = [len(item.prompt_ids) for item in items]
    for batch in tqdm(batching.pack(lengths, batch_tokens, max_rows, kv_tokens, context=P), desc=desc,
                      disable=not progress, leave=False):
        q_ids, q_mask = batching.pad([items[i].prompt_ids for i in batch], pad_id)
        q_ids, q_mask = q_ids.to(device), q_mask.to(device)
        n, width = q_ids.shape
        past = batching.expand(prefix_kv, n)
        out = decoder(input_ids=q_ids, attention_mask=torch.cat([_ones(n, P, device), q_mask], 1),
                      position_ids=torch.arange(P, P + width, device=device).expand(n, -1),
                      past_key_values=past, use_cache=True)
        layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        yield _QuestionBatch(list(batch), out.last_hidden_state, q_mask, q_mask.sum(1), layers)


def _rows_at(states: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
    """Row r's state at ``positions[r]``, indexed on the states' own device (layers of a split
    model live on different GPUs)."""
    device = states.device
    return states[torch.arange(len(positions), device=device), torch.tensor(list(positions), device=device)]


def _input_device(decoder: Any) -> torch.device:
    """Where input ids go: the embeddings' device (the CPU for a model still on the meta device)."""
    device = decoder.get_input_embeddings().weight.device
    return torch.device("cpu") if device.type == "meta" else device


def _ones(rows: int, width: int, device: torch.device) -> torch.Tensor:
    return torch.ones((rows, width), dtype=torch.long, device=device)


def _continue_choices(decoder: Any, qb: _QuestionBatch, owner_rows: Sequence[int],
                      tokens: Sequence[Sequence[int]], prefix_len: int, pad_id: int,
                      output_hidden_states: bool = False) -> Any:
    """Feed ``tokens`` (one sequence per owner row) after that row's prefix + question."""
    from transformers import DynamicCache

    device = qb.mask.device
    ids, mask = batching.pad(tokens, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    owner = torch.tensor(list(owner_rows), device=device)
    cache = DynamicCache(ddp_cache_data=[(k.index_select(0, owner.to(k.device)), v.index_select(0, owner.to(v.device)))
                                         for k, v in qb.layers])  # each layer's cache on its own device
    positions = prefix_len + qb.lengths[owner].unsqueeze(1) + torch.arange(ids.shape[1], device=device)
    return decoder(input_ids=ids,
                   attention_mask=torch.cat([_ones(len(owner), prefix_len, device), qb.mask[owner], mask], 1),
                   position_ids=positions, past_key_values=cache, use_cache=True,
                   output_hidden_states=output_hidden_states)


@dataclass(frozen=True)
class _PackedRow:
    """One item laid out as one row: its question, then every choice's tokens but the last
    (the last token is only predicted, never fed). ``sources[c]`` are the row positions whose
    next-token distributions give choice c's tokens: the question's last token, then choice c's
    own fed tokens."""

    ids: list[int]
    positions: list[int]  # offsets after the prefix: a choice continues right after the question
    groups: list[int]  # 0: question; c + 1: choice c
    sources: list[list[int]]

    @classmethod
    def of(cls, item: ScoringItem) -> "_PackedRow":
        q = len(item.prompt_ids)
        ids, positions, groups = list(item.prompt_ids), list(range(q)), [0] * q
        sources = []
        for c, choice in enumerate(item.choice_ids):
            start = len(ids)
            ids += choice[:-1]
            positions += range(q, q + len(choice) - 1)
            groups += [c + 1] * (len(choice) - 1)
            sources.append([q - 1] + list(range(start, len(ids))))
        return cls(ids, positions, groups, sources)


def _tree_mask(rows: Sequence[_PackedRow], width: int) -> torch.Tensor:
    """(rows, width, width) boolean attention among a batch's packed rows: a question token sees
    the question up to itself; a choice token sees the whole question and its own choice up to
    itself, never another choice; padding sees itself only (so no query row is empty)."""
    group = np.full((len(rows), width), -1)
    position = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        group[r, :len(row.ids)] = row.groups
        position[r, :len(row.ids)] = row.positions
    qg, kg = group[:, :, None], group[:, None, :]
    earlier = position[:, None, :] <= position[:, :, None]
    allowed = (kg == 0) & (qg >= 0) & ((qg > 0) | earlier)  # the question, causally for its own tokens
    allowed |= (kg == qg) & (qg > 0) & earlier  # the query's own choice, causally
    allowed |= np.eye(width, dtype=bool)[None]
    return torch.from_numpy(allowed)


def _attention_mask(decoder: Any, allowed: torch.Tensor) -> torch.Tensor:
    """A 4D mask as the model's attention takes it (transformers passes a 4D mask through as it
    is): boolean for SDPA, additive (0 or the dtype's minimum) for eager attention (``_packs``
    admits no other)."""
    if getattr(decoder.config, "_attn_implementation", None) == "sdpa":
        return allowed
    dtype = decoder.get_input_embeddings().weight.dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def _packed_logprob_tensors(model: Any, prefix: list[int], items: Sequence[ScoringItem], rows: Sequence[_PackedRow],
                            pad_id: int, batch_tokens: int, kv_tokens: int, max_rows: int, progress: bool,
                            desc: str) -> list[torch.Tensor]:
    """The prefix once, then one forward pass per batch of packed rows: each item's question and
    all its choices in one row, under a tree mask (``_tree_mask``), so a question is encoded once
    and no key/value cache is copied per choice.

    Returns one tensor of choice log-probabilities per item; differentiable when grad is on
    (QLoRA trains through it)."""
    decoder, head = _decoder_and_head(model)
    device = _input_device(decoder)
    P = len(prefix)
    prefix_kv = batching.prefix_layers(decoder, prefix, device) if P else None
    results: list[torch.Tensor | None] = [None] * len(items)
    for batch in tqdm(batching.pack([len(r.ids) for r in rows], batch_tokens, max_rows, kv_tokens, context=P),
                      desc=desc, disable=not progress, leave=False):
        packed = [rows[i] for i in batch]
        ids, _ = batching.pad([r.ids for r in packed], pad_id)
        positions, _ = batching.pad([[P + p for p in r.positions] for r in packed], P)
        n, width = ids.shape
        allowed = torch.cat([torch.ones((n, width, P), dtype=torch.bool), _tree_mask(packed, width)], -1)
        out = decoder(input_ids=ids.to(device), attention_mask=_attention_mask(decoder, allowed[:, None]).to(device),
                      position_ids=positions.to(device), past_key_values=batching.expand(prefix_kv, n),
                      use_cache=True)
        hidden = out.last_hidden_state
        picks = [(b, c, source, target) for b, i in enumerate(batch)
                 for c, choice in enumerate(items[i].choice_ids)
                 for source, target in zip(rows[i].sources[c], choice)]
        lp = _token_logprobs(head, hidden[[p[0] for p in picks], [p[2] for p in picks]], [p[3] for p in picks])
        offsets = np.cumsum([0] + [len(items[i].choice_ids) for i in batch])
        owner = [int(offsets[b]) + c for b, c, _, _ in picks]
        sums = torch.zeros(int(offsets[-1]), dtype=lp.dtype, device=lp.device).index_add(
            0, torch.tensor(owner, device=lp.device), lp)
        for b, i in enumerate(batch):
            results[i] = sums[int(offsets[b]):int(offsets[b + 1])]
    return results  # type: ignore[return-value]


def _choice_by_choice_logprob_tensors(model: Any, prefix: list[int], items: Sequence[ScoringItem], pad_id: int,
                            batch_tokens: int, kv_tokens: int, max_rows: int, progress: bool,
                            desc: str) -> list[torch.Tensor]:
    """Two-level cache: the prefix once, each question once, then every choice from there (each
    choice row copies its question's cache). For models the tree mask does not fit (``_packs``)."""
    decoder, head = _decoder_and_head(model)
    P = len(prefix)
    parts: list[list[list[torch.Tensor]]] = [[[] for _ in item.choice_ids] for item in items]
    for qb in _walk_questions(decoder, prefix, items, pad_id, batch_tokens, kv_tokens, max_rows, progress, desc):
        device = qb.hidden.device  # the last layer's device
        # the first answer token is predicted from the question's last state
        last = qb.hidden[torch.arange(len(qb.items), device=device), (qb.lengths - 1).to(device)]
        firsts = [(b, c) for b, i in enumerate(qb.items) for c in range(len(items[i].choice_ids))]
        lp = _token_logprobs(head, last[[b for b, _ in firsts]],
                             [items[qb.items[b]].choice_ids[c][0] for b, c in firsts])
        for (b, c), value in zip(firsts, lp):
            parts[qb.items[b]][c].append(value)
        # the remaining answer tokens of every choice, from the question's cache
        rest = [(b, c) for b, c in firsts if len(items[qb.items[b]].choice_ids[c]) > 1]
        longest = max((len(items[qb.items[b]].choice_ids[c]) for b, c in rest), default=1)
        for chunk in qb.choice_calls(rest, longest, P, batch_tokens, kv_tokens, max_rows):
            choices = [items[qb.items[b]].choice_ids[c] for b, c in chunk]
            hidden = _continue_choices(decoder, qb, [b for b, _ in chunk], [ch[:-1] for ch in choices],
                                       P, pad_id).last_hidden_state
            picks = [(r, j) for r, ch in enumerate(choices) for j in range(len(ch) - 1)]
            lp = _token_logprobs(head, hidden[[r for r, _ in picks], [j for _, j in picks]],
                                 [choices[r][j + 1] for r, j in picks])
            sums = torch.zeros(len(chunk), dtype=lp.dtype, device=lp.device).index_add(
                0, torch.tensor([r for r, _ in picks], device=lp.device), lp)
            for (b, c), value in zip(chunk, sums):
                parts[qb.items[b]][c].append(value)
    return [torch.stack([torch.stack(p).sum() for p in item_parts]) for item_parts in parts]



# architectures whose attention takes a 4D mask as given and places tokens by ``position_ids``
# (rotary embeddings), so a choice packed after another one is still read right after its question;
# MPT's ALiBi places by index and Falcon builds its own mask, so they score choice by choice
PACKING_MODEL_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2"})


def _packs(model: Any, prefix: list[int], rows: Sequence[_PackedRow]) -> bool:
    """Whether ``_packed_logprob_tensors`` computes exactly what the choice-by-choice walk does for
    this model: an architecture that reads positions from ``position_ids``, an attention that takes
    the mask, and no sliding window the sequence could outgrow (the mask does not apply one)."""
    config = model.get_decoder().config
    window = getattr(config, "sliding_window", None)
    longest = len(prefix) + max((len(row.ids) for row in rows), default=0)
    return (config.model_type in PACKING_MODEL_TYPES
            and (getattr(config, "_attn_implementation", None) or "eager") in ("sdpa", "eager")
            and (not window or longest <= window))


def _cached_logprob_tensors(model: Any, prefix: list[int], items: Sequence[ScoringItem], pad_id: int,
                            batch_tokens: int, kv_tokens: int, max_rows: int, progress: bool,
                            desc: str) -> list[torch.Tensor]:
    """One tensor of choice log-probabilities per item (differentiable when grad is on: QLoRA
    trains through it): packed rows where the model allows it, else choice by choice."""
    rows = [_PackedRow.of(item) for item in items]
    if _packs(model, prefix, rows):
        return _packed_logprob_tensors(model, prefix, items, rows, pad_id, batch_tokens, kv_tokens, max_rows,
                                       progress, desc)
    return _choice_by_choice_logprob_tensors(model, prefix, items, pad_id, batch_tokens, kv_tokens, max_rows,
                                             progress, desc)


def choice_logprob_tensors(model: Any, items: Sequence[ScoringItem], *, pad_id: int, prefix_ids: Sequence[int] = (),
                           batch_tokens: int | None = None, kv_tokens: int | None = None,
                           max_rows: int = 256) -> list[torch.Tensor]:
    """Like ``choice_logprobs`` (fast path) but returns tensors and keeps the autograd graph."""
    device = input_device(model)
    budget = batch_tokens or default_batch_tokens(device)
    return _cached_logprob_tensors(model, list(prefix_ids), items, pad_id, budget, kv_tokens or 2 * budget,
                                   max_rows, False, "")


@torch.no_grad()
def choice_hidden_states(model: Any, items: Sequence[ScoringItem], layers: Sequence[int], *, pad_id: int,
                         prefix_ids: Sequence[int] = (), batch_tokens: int | None = None,
                         kv_tokens: int | None = None, max_rows: int = 256,
                         progress: bool = False, desc: str = "hidden states") -> list[np.ndarray]:
    """Per item, a (choices x len(layers)*hidden) array: the hidden states at the last token of
    question + choice, from each requested layer (indices into ``output_hidden_states``:
    0 = embeddings, num_hidden_layers = last, after the final norm), concatenated."""
    device = input_device(model)
    budget = batch_tokens or default_batch_tokens(device)
    kv_budget = kv_tokens or 2 * budget
    decoder = model.get_decoder()
    results: list[np.ndarray | None] = [None] * len(items)
    P = len(prefix_ids)
    for qb in _walk_questions(decoder, list(prefix_ids), items, pad_id, budget, kv_budget, max_rows, progress, desc):
        pairs = [(b, c) for b, i in enumerate(qb.items) for c in range(len(items[i].choice_ids))]
        longest = max(len(items[qb.items[b]].choice_ids[c]) for b, c in pairs)
        features: dict[tuple[int, int], np.ndarray] = {}
        for chunk in qb.choice_calls(pairs, longest, P, budget, kv_budget, max_rows):
            choices = [items[qb.items[b]].choice_ids[c] for b, c in chunk]
            states = _continue_choices(decoder, qb, [b for b, _ in chunk], choices, P, pad_id,
                                       output_hidden_states=True).hidden_states
            ends = [len(ch) - 1 for ch in choices]
            stacked = torch.cat([_rows_at(states[layer], ends).float().cpu() for layer in layers], dim=-1).numpy()
            for (b, c), vector in zip(chunk, stacked):
                features[(b, c)] = vector
        for b, i in enumerate(qb.items):
            results[i] = np.stack([features[(b, c)] for c in range(len(items[i].choice_ids))])
    return results  # type: ignore[return-value]


@torch.no_grad()
def choice_logprobs(
    model: Any,
    prefix_ids: Sequence[int],
    items: Sequence[ScoringItem],
    *,
    pad_id: int,
    batch_tokens: int | None = None,
    kv_tokens: int | None = None,
    max_rows: int = 256,
    progress: bool = False,
    desc: str = "scoring",
) -> list[np.ndarray]:
    """Summed answer-token log-probabilities, one array (over choices) per item: the prefix
    once, each question once, the choices from the cache. ``batch_tokens`` bounds the tokens of
    one forward pass, ``kv_tokens`` the cached tokens held for one batch (memory)."""
    device = input_device(model)
    budget = batch_tokens or default_batch_tokens(device)
    tensors = _cached_logprob_tensors(model, list(prefix_ids), items, pad_id, budget,
                                      kv_tokens or 2 * budget, max_rows, progress, desc)
    return [t.cpu().numpy().astype(np.float64) for t in tensors]


def softmax(scores: np.ndarray) -> np.ndarray:
    z = np.asarray(scores, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def predictions(logprobs: Sequence[np.ndarray], labels: Sequence[int]) -> pd.DataFrame:
    """Per item: choice log-probabilities, probabilities, prediction and correctness."""
    probs = [softmax(lp) for lp in logprobs]
    preds = [int(np.argmax(p)) for p in probs]
    return pd.DataFrame({
        "logprobs": [lp.tolist() for lp in logprobs],
        "probs": [p.tolist() for p in probs],
        "pred": preds,
        "label": [int(x) for x in labels],
        "correct": [float(p == int(y)) for p, y in zip(preds, labels)],
        "p_correct": [float(p[int(y)]) for p, y in zip(probs, labels)],
    })
