"""What a unit of work costs, in tokens: each item's tokens (``TokenCounter``), a run's ``Work``
(forward, trained and generated tokens with their attention context), and the ``Context`` a unit
is costed in (the counter, the frames, the items whose hidden states earlier runs extract).
``pipeline.plan`` turns work into seconds and memory on given devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from e2h_utils.data import prompts
from e2h_utils.engine import resources, runtime


class TokenCounter:
    """Tokens of each item's prompt, answer choices, solved example and chain-of-thought target,
    counted with one tokenizer (the embedded model's by default)."""

    def __init__(self, tokenizer: Any = None) -> None:
        if tokenizer is None:
            from transformers import AutoTokenizer

            from e2h_utils.engine import embedded

            tokenizer = AutoTokenizer.from_pretrained(str(embedded.ensure_converted()))
        self.tokenizer = tokenizer
        self._tables: dict[tuple[str, str | None, bool], pd.DataFrame] = {}

    def _count(self, texts: list[str]) -> np.ndarray:
        return np.array([len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]])

    def table(self, dataset: str, frame: pd.DataFrame, prompt_format: str | None, cot: bool) -> pd.DataFrame:
        """Per item id: prompt, choices (all continuations), example and target tokens."""
        memo = (dataset, prompt_format, cot)
        if memo not in self._tables:
            rows = frame.to_dict("records") if cot else frame[frame["label"].notna()].to_dict("records")
            if not rows:
                raise ValueError(f"no {dataset} items to count tokens of")
            fmt: prompts.PromptFormat | prompts.CoTFormat
            if cot:
                fmt = prompts.get_cot_format(prompt_format, dataset)
                out = pd.DataFrame({"prompt": self._count([fmt.prompt(r) for r in rows]),
                                    "choices": 0, "example": self._count([fmt.example(r) for r in rows]),
                                    "target": self._count([fmt.target(r) for r in rows])},
                                   index=[r["id"] for r in rows])
            else:
                fmt = prompts.get_format(prompt_format, dataset)
                conts = [fmt.continuations(r) for r in rows]
                flat = self._count([c for cs in conts for c in cs])
                sums: np.ndarray | list[int] = (np.add.reduceat(flat, np.cumsum([0] + [len(c) for c in conts[:-1]]))
                                                if len(flat) else [])
                out = pd.DataFrame({"prompt": self._count([fmt.prompt(r) for r in rows]), "choices": sums,
                                    "example": self._count([fmt.example(r) for r in rows]),
                                    "n_choices": [len(c) for c in conts]}, index=[r["id"] for r in rows])
                out["target"] = out["choices"] / out["n_choices"].clip(lower=1)
            self._tables[memo] = out
        return self._tables[memo]


@dataclass(frozen=True)
class Work:
    """A run's work in tokens: forward-only tokens (scoring, features, prefill) with their mean
    attention context, tokens trained on (forward + backward), and tokens generated one at a time."""

    forward_tokens: float = 0.0
    forward_context: float = 0.0
    logits: float = 0.0
    train_tokens: float = 0.0
    train_context: float = 0.0
    generated_tokens: float = 0.0
    generation_context: float = 0.0
    decode_steps: float = 0.0  # sequential decoding steps (batches x new tokens)

    def __add__(self, other: "Work") -> "Work":
        def mean(a, wa, b, wb):
            return (a * wa + b * wb) / (wa + wb) if wa + wb else 0.0
        return Work(self.forward_tokens + other.forward_tokens,
                    mean(self.forward_context, self.forward_tokens, other.forward_context, other.forward_tokens),
                    self.logits + other.logits, self.train_tokens + other.train_tokens,
                    mean(self.train_context, self.train_tokens, other.train_context, other.train_tokens),
                    self.generated_tokens + other.generated_tokens,
                    mean(self.generation_context, self.generated_tokens,
                         other.generation_context, other.generated_tokens),
                    self.decode_steps + other.decode_steps)

    def scaled(self, factor: float) -> "Work":
        return Work(self.forward_tokens * factor, self.forward_context, self.logits * factor,
                    self.train_tokens * factor, self.train_context, self.generated_tokens * factor,
                    self.generation_context, self.decode_steps * factor)

    def flops(self, arch: resources.Architecture, checkpointing: bool = False) -> float:
        """Forward FLOPs, training at 2 (3 with checkpointing) forwards per token, generation."""
        train = (3.0 if checkpointing else 2.0) * arch.forward_flops(self.train_tokens, self.train_context)
        return (arch.forward_flops(self.forward_tokens, self.forward_context, self.logits) + train
                + arch.forward_flops(self.generated_tokens, self.generation_context, self.generated_tokens))


def scoring(tokens: pd.DataFrame, ids: Sequence[str], prefix: float = 0.0) -> Work:
    part = tokens.loc[list(ids)]
    prompt, choices = float(part["prompt"].sum()), float(part["choices"].sum())
    per = len(part) or 1
    return Work(forward_tokens=prompt + choices + prefix, logits=choices,
                forward_context=prefix + 0.5 * (prompt + choices) / per)


@dataclass
class Context:
    """What costing a unit reads: the token counter, a dataset's frame (the plan's, shared), and
    the items already given hidden states by earlier units (``featurized``, updated; None: none
    shared, every unit counts its own)."""

    counter: TokenCounter
    frame: Callable[[str], pd.DataFrame]
    featurized: dict[tuple, set] | None = None
    settings: runtime.RunSettings = field(default_factory=runtime.RunSettings)  # the profile's (generation batch)

    def new_features(self, key: tuple, ids: Iterable[Any]) -> list[Any]:
        """The ids whose hidden states are not extracted yet under ``key`` (model, precision,
        dataset, prompt format: what the features cache is keyed by), marked as extracted now."""
        ids = list(dict.fromkeys(ids))
        if self.featurized is None:
            return ids
        seen = self.featurized.setdefault(key, set())
        new = [i for i in ids if i not in seen]
        seen.update(new)
        return new
