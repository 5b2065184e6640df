"""In-context learning: drawing the k examples of a seed and building the shared prefix.

One draw per seed: the same examples go in front of every test item of that seed. When the
prefix plus the longest test item would not fit the model's context, examples are dropped
(from the end), never the test question.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pandas as pd

from e2h_utils.data.prompts import CoTFormat, PromptFormat
from e2h_utils.engine.scoring import (
    ScoringItem,
    choice_logprobs,
    encode,
    encode_after,
    make_item,
)


def example_rng(seed: int, salt: str) -> np.random.Generator:
    """The generator of one seed's draw, independent across ``salt`` (e.g. the train level)."""
    return np.random.default_rng([int(seed), zlib.crc32(salt.encode())])


def draw_examples(pool: pd.DataFrame, k: int, seed: int, salt: str = "") -> pd.DataFrame:
    """``k`` rows of ``pool`` without replacement (all of it when it is smaller)."""
    if k <= 0 or pool.empty:
        return pool.iloc[:0]
    take = min(k, len(pool))
    index = example_rng(seed, salt).choice(len(pool), size=take, replace=False)
    return pool.iloc[index]  # in drawn order, which is random


def prefix_text(examples: pd.DataFrame, fmt: PromptFormat | CoTFormat) -> str:
    """The solved examples joined by the separator. The separator before the test question
    belongs to the question's side (see ``question_text``): splitting the prompt right after
    the last example keeps its tokens identical to those of the whole prompt tokenized at once."""
    return fmt.separator.join(fmt.example(row) for row in examples.to_dict("records"))


def question_text(prompt: str, fmt: PromptFormat | CoTFormat, has_examples: bool) -> str:
    return fmt.separator + prompt if has_examples else prompt


def question_ids(tokenizer, examples: pd.DataFrame, fmt: PromptFormat | CoTFormat,
                 prompts: list[str]) -> list[list[int]]:
    """Token ids of each test prompt as they follow the examples' prefix in the full prompt."""
    if examples.empty:
        return [encode(tokenizer, p) for p in prompts]
    context = prefix_text(examples, fmt)
    return [encode_after(tokenizer, context, question_text(p, fmt, True)) for p in prompts]


def fit_prefix(
    tokenizer, bos_ids: list[int], examples: pd.DataFrame, fmt: PromptFormat | CoTFormat,
    items: list[ScoringItem], max_length: int,
) -> tuple[list[int], int]:
    """(prefix ids, examples kept): drop examples until prefix + longest item fits. Dropping
    is never silent: a warning says how many of the examples the context held."""
    longest = max((item.max_length for item in items), default=0)
    if len(bos_ids) + longest > max_length:
        raise ValueError(f"a test item alone ({longest} tokens) exceeds the model's length {max_length}")
    for keep in range(len(examples), -1, -1):
        ids = list(bos_ids) + (encode(tokenizer, prefix_text(examples.iloc[:keep], fmt)) if keep else [])
        if len(ids) + longest <= max_length:
            if keep < len(examples):
                warnings.warn(f"only {keep} of the {len(examples)} in-context examples fit the model's context of "
                              f"{max_length} tokens with the longest test item; the prompt holds {keep} (the results "
                              "record it as n_shots). Ask for fewer examples to run exactly what you ask.",
                              stacklevel=3)
            return ids, keep
    raise AssertionError("unreachable: zero examples always fit")


def score_with_examples(
    lm, fmt: PromptFormat, examples: pd.DataFrame, rows: pd.DataFrame, *, max_length: int | None = None,
    progress: bool = False, desc: str = "scoring",
) -> tuple[list[np.ndarray], int]:
    """(choice log-probabilities of every row, examples kept): the examples' prefix is encoded
    once and every row's question and choices continue from it (``scoring.choice_logprobs``; the
    uncached reference is ``benchmarks/reference.py``)."""
    records = rows.to_dict("records")
    # token budget: each prompt with the separator that follows the examples, plus its choices
    budget = [make_item(lm.tokenizer, question_text(fmt.prompt(r), fmt, not examples.empty), fmt.continuations(r))
              for r in records]
    max_length = max_length or int(getattr(lm.model.config, "max_position_embeddings", 2048))
    prefix_ids, kept = fit_prefix(lm.tokenizer, lm.bos_ids(), examples, fmt, budget, max_length)
    ids = question_ids(lm.tokenizer, examples.iloc[:kept], fmt, [fmt.prompt(r) for r in records])
    items = [make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r), prompt_ids=q) for r, q in zip(records, ids)]
    scores = choice_logprobs(lm.model, prefix_ids, items, pad_id=lm.tokenizer.pad_token_id, progress=progress,
                             desc=desc, **lm.budget.kwargs())
    return scores, kept
