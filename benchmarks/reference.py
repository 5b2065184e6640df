"""The plain reference scorers, beside the tests and the benchmarks (not used by the notebooks).

- ``choice_logprobs_plain``: one unbatched forward per (item, choice), full logits, no cache:
  the definition the package's scorer (``e2h_utils.engine.scoring.choice_logprobs``) must agree with;
- ``choice_logprobs_uncached``: batched, but every row carries its whole sequence (what
  lm-evaluation-harness feeds a model), padded left or right;
- ``score_with_examples_uncached``: in-context scoring through the uncached path (the "before" of
  ``bench_reproduce_icl.py``), with the same prompts and kept examples as ``methods.icl``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from e2h_utils.engine import batching
from e2h_utils.engine.models import input_device
from e2h_utils.engine.scoring import (
    ScoringItem,
    _decoder_and_head,
    _token_logprobs,
    default_batch_tokens,
    make_item,
)


@torch.no_grad()
def choice_logprobs_plain(model: Any, prefix_ids: Sequence[int], items: Sequence[ScoringItem]) -> list[np.ndarray]:
    """Reference scorer: one unbatched forward per choice, full logits, no cache."""
    device = input_device(model)
    out = []
    for item in items:
        scores = []
        for choice in item.choice_ids:
            context = list(prefix_ids) + list(item.prompt_ids)
            ids = torch.tensor([context + list(choice)], device=device)
            logprobs = model(input_ids=ids).logits[0].float().log_softmax(-1)
            positions = torch.arange(len(context) - 1, len(context) - 1 + len(choice), device=logprobs.device)
            scores.append(logprobs[positions, torch.tensor(choice, device=logprobs.device)].sum().item())
        out.append(np.array(scores, dtype=np.float64))
    return out


@torch.no_grad()
def choice_logprobs_uncached(model: Any, prefix_ids: Sequence[int], items: Sequence[ScoringItem], *, pad_id: int,
                             padding_side: str = "right", batch_tokens: int | None = None, max_rows: int = 256,
                             progress: bool = False, desc: str = "scoring") -> list[np.ndarray]:
    """Every (item, choice) row carries its whole sequence (prefix + prompt + choice), padded on
    ``padding_side``, position ids from the attention mask: what lm-evaluation-harness feeds."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    device = input_device(model)
    budget = batch_tokens or default_batch_tokens(device)
    decoder, head = _decoder_and_head(model)
    prefix = list(prefix_ids)
    rows: list[tuple[int, int, list[int], int]] = []
    for i, item in enumerate(items):
        for c, choice in enumerate(item.choice_ids):
            context = prefix + list(item.prompt_ids)
            rows.append((i, c, context + list(choice), len(context)))
    results = [np.zeros(len(item.choice_ids), dtype=np.float64) for item in items]
    for batch in tqdm(batching.pack([len(r[2]) for r in rows], budget, max_rows), desc=desc,
                      disable=not progress, leave=False):
        width = max(len(rows[r][2]) for r in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        picks, targets, owners = [], [], []
        for b, r in enumerate(batch):
            _, _, toks, answer_start = rows[r]
            offset = 0 if padding_side == "right" else width - len(toks)
            ids[b, offset:offset + len(toks)] = torch.tensor(toks)
            mask[b, offset:offset + len(toks)] = 1
            for j in range(answer_start, len(toks)):
                picks.append((b, offset + j - 1))
                targets.append(toks[j])
                owners.append(b)
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        lp = _token_logprobs(head, hidden[[b for b, _ in picks], [p for _, p in picks]], targets)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=lp.device)
        sums.index_add_(0, torch.tensor(owners, device=lp.device), lp)
        for b, r in enumerate(batch):
            i, c, _, _ = rows[r]
            results[i][c] = sums[b].item()
    return results




def score_with_examples_uncached(lm: Any, fmt: Any, examples: Any, rows: Any, *, max_length: int | None = None,
                                 progress: bool = False, desc: str = "scoring") -> tuple[list[np.ndarray], int]:
    """``methods.icl.score_with_examples`` through the uncached path: the same prefix, the same
    question tokens, every full sequence fed."""
    from e2h_utils.methods import icl

    records = rows.to_dict("records")
    budget = [make_item(lm.tokenizer, icl.question_text(fmt.prompt(r), fmt, not examples.empty), fmt.continuations(r))
              for r in records]
    max_length = max_length or int(getattr(lm.model.config, "max_position_embeddings", 2048))
    prefix_ids, kept = icl.fit_prefix(lm.tokenizer, lm.bos_ids(), examples, fmt, budget, max_length)
    ids = icl.question_ids(lm.tokenizer, examples.iloc[:kept], fmt, [fmt.prompt(r) for r in records])
    items = [make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r), prompt_ids=q) for r, q in zip(records, ids)]
    scores = choice_logprobs_uncached(lm.model, prefix_ids, items, pad_id=lm.tokenizer.pad_token_id,
                                      progress=progress, desc=desc, batch_tokens=lm.budget.batch_tokens)
    return scores, kept
