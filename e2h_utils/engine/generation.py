"""Batched greedy generation that reuses the shared in-context prefix.

The prefix (BOS and the k worked examples) is encoded once and its key/value cache expanded
for every batch (``batching``); prompts are left-padded after it (padding masked out, positions
counted from the prefix), and every row decodes greedily until it writes a stop string, the end-
of-sequence token or ``max_new_tokens`` tokens; a row that finishes leaves the batch. Each step
writes its keys and values in place (``batching.buffered``). Deterministic (argmax) and
padding-safe.

Stops are strings (the text is cut before the first one) or regular expressions (the text is
cut at the end of the first match; a trailing line break of the match is dropped). The
authors' strict answer rule reads only up to the first line break after the first "the answer
is", so ``ANSWER_LINE`` ends a generation exactly where nothing after it can change the answer.
"""

from __future__ import annotations

import re
from typing import Any, Pattern, Sequence

import torch
from tqdm.auto import tqdm

from e2h_utils.engine import batching
from e2h_utils.engine.models import input_device

# the version of chain-of-thought generation and answer reading (here, data/answers.py): in every
# chain-of-thought result's key; bump it when that code can change a result
COT_VERSION = 3  # 2: the authors' CoT prompts, answer rule and stops; 3: finished rows leave the generation batch

ANSWER_LINE = re.compile(r"the answer is[^\n]*\n", re.IGNORECASE)


def _cut(text: str, stops: Sequence[str], patterns: Sequence[Pattern[str]] = ()) -> tuple[str, bool]:
    positions = [text.find(s) for s in stops if s and s in text]
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            positions.append(match.end() - (1 if match.group(0).endswith("\n") else 0))
    if not positions:
        return text, False
    return text[:min(positions)], True


@torch.no_grad()
def greedy_generate(model: Any, tokenizer: Any, prefix_ids: Sequence[int], prompts: Sequence[Sequence[int]], *,
                    max_new_tokens: int, stop: Sequence[str] = ("\n\n",), batch_size: int = 8,
                    stop_patterns: Sequence[Pattern[str]] = (), progress: bool = False,
                    desc: str = "generating") -> list[str]:
    """The greedy continuation of every prompt (after the shared prefix), cut at the first stop
    string or stop pattern. Rows that finish leave the batch, so the others decode alone."""
    return _decode(model, tokenizer, prefix_ids, prompts, lambda logits, rows: logits.argmax(-1),
                   max_new_tokens=max_new_tokens, stop=stop, stop_patterns=stop_patterns, batch_size=batch_size,
                   progress=progress, desc=desc)


@torch.no_grad()
def sample_generate(model: Any, tokenizer: Any, prefix_ids: Sequence[int], prompts: Sequence[Sequence[int]], *,
                    n: int, temperature: float, seed: int, max_new_tokens: int, stop: Sequence[str] = ("\n\n",),
                    stop_patterns: Sequence[Pattern[str]] = (), batch_size: int = 8, top_p: float = 1.0,
                    top_k: int | None = None, prompt_keys: Sequence[int] | None = None, progress: bool = False,
                    desc: str = "sampling") -> list[list[str]]:
    """``n`` sampled continuations of every prompt (temperature ``temperature``, the ``top_k`` most
    likely tokens when set, then nucleus ``top_p``), as ``[prompt][sample]``. Each (prompt, sample)
    row draws from its own generator, seeded by ``seed``, the prompt's key (``prompt_keys``, e.g. a
    digest of the problem's id; default: its index) and the sample's index, so a sample is the same
    whatever the batch it is decoded in and whatever other prompts it is sampled with (and the first
    k of n samples are the samples of a run with n = k)."""
    if n < 1 or temperature <= 0 or not 0 < top_p <= 1 or (top_k is not None and top_k < 1):
        raise ValueError(f"sampling needs n >= 1, temperature > 0, top_p in (0, 1] and top_k >= 1 (or None), not "
                         f"{n}, {temperature}, {top_p}, {top_k}")
    keys = list(range(len(prompts))) if prompt_keys is None else [int(k) for k in prompt_keys]
    if len(keys) != len(prompts):
        raise ValueError(f"{len(keys)} prompt keys for {len(prompts)} prompts")
    rows = [(i, j) for i in range(len(prompts)) for j in range(n)]
    generators = [torch.Generator().manual_seed((int(seed) * 1_000_003 + keys[i] * 10_007 + j) % 2**63)
                  for i, j in rows]
    device = input_device(model)

    def pick(logits: torch.Tensor, row_ids: Sequence[int]) -> torch.Tensor:
        logits = logits.float().cpu() / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
        picked = [torch.multinomial(probs[k], 1, generator=generators[r]) for k, r in enumerate(row_ids)]
        return torch.cat(picked).to(device)

    texts = _decode(model, tokenizer, prefix_ids, [prompts[i] for i, _ in rows], pick, max_new_tokens=max_new_tokens,
                    stop=stop, stop_patterns=stop_patterns, batch_size=batch_size, progress=progress, desc=desc)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


def _decode(model: Any, tokenizer: Any, prefix_ids: Sequence[int], prompts: Sequence[Sequence[int]], pick, *,
            max_new_tokens: int, stop: Sequence[str], stop_patterns: Sequence[Pattern[str]], batch_size: int,
            progress: bool, desc: str) -> list[str]:
    """The decoding loop: ``pick(last logits, prompt indices of the rows) -> next tokens``."""
    device = input_device(model)
    prefix = list(prefix_ids)
    P = len(prefix)
    decoder = model.get_decoder()
    prefix_kv = batching.prefix_layers(decoder, prefix, device) if P else None
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        rows = order[start:start + batch_size]
        n, width = len(rows), max(len(prompts[i]) for i in rows)
        ids, mask = batching.pad([prompts[i] for i in rows], pad, side="left")
        lengths = torch.tensor([len(prompts[i]) for i in rows])
        positions = (P + torch.arange(width) - (width - lengths).unsqueeze(1)).clamp(min=P)
        full_mask = torch.cat([torch.ones((n, P), dtype=torch.long), mask], 1).to(device)
        out = model(input_ids=ids.to(device), attention_mask=full_mask, position_ids=positions.to(device),
                    past_key_values=batching.expand(prefix_kv, n), use_cache=True, logits_to_keep=1)
        cache = batching.buffered([(layer.keys, layer.values) for layer in out.past_key_values.layers], max_new_tokens)
        next_pos = (P + lengths).to(device)
        generated: list[list[int]] = [[] for _ in rows]
        active = list(range(n))  # batch rows still generating, in the order of the model's rows
        for step in range(max_new_tokens):
            tokens = pick(out.logits[:, -1], [rows[r] for r in active])
            still = []
            for j, r in enumerate(active):
                token = int(tokens[j])
                if token == eos:
                    continue
                generated[r].append(token)
                if not (_cut(tokenizer.decode(generated[r][-8:]), stop)[1]
                        or _cut(tokenizer.decode(generated[r]), stop, stop_patterns)[1]):
                    still.append(j)
            if not still or step == max_new_tokens - 1:
                break
            if len(still) < len(active):  # drop finished rows from the batch
                keep = torch.tensor(still, device=device)
                cache.batch_select_indices(keep)
                full_mask, next_pos, tokens = full_mask[keep], next_pos[keep], tokens[keep.to(tokens.device)]
                active = [active[j] for j in still]
            full_mask = torch.cat([full_mask, torch.ones((len(active), 1), dtype=torch.long, device=device)], 1)
            out = model(input_ids=tokens.unsqueeze(1), attention_mask=full_mask, position_ids=next_pos.unsqueeze(1),
                        past_key_values=cache, use_cache=True, logits_to_keep=1)
            next_pos = next_pos + 1
        for r, i in enumerate(rows):
            outputs[i] = _cut(tokenizer.decode(generated[r]), stop, stop_patterns)[0]
    return outputs
