"""Sampling N candidate solutions per problem from the generator (the easy-to-hard evaluators).

A ``Sampling`` says how the generator writes its candidates: ``n`` solutions per problem at
``temperature`` (the ``top_k`` most likely tokens, nucleus ``top_p``: Sun et al.'s 0.7 and 20 by default),
after ``k`` worked examples (the chain-of-thought format of the
dataset: ``data.prompts.COT_FORMATS``), at most ``max_new_tokens`` tokens each (None: the dataset's
chain-of-thought length), from sampling seed ``seed``. The examples are one fixed draw shared by
every problem (a few-shot prompt, as Sun et al.'s generator prompt), encoded once as the shared
prefix (``engine.generation.sample_generate``).

``sample_solutions`` returns one row per (problem, sample): the generation, the answer read from it
(``data.answers``, the strict rule; MATH: the last ``\\boxed{}``), its vote group among the
problem's samples (``answers.vote_keys``) and whether it is correct. A sample is seeded by the
sampling seed, its problem's id and its index: the same whatever the batch it was decoded in and
whatever other problems were sampled with it, and the first m of n samples are those of a run with
n = m.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from e2h_utils.data import answers, prompts
from e2h_utils.engine import generation, scoring
from e2h_utils.methods import icl

# the version of sampling and answer reading for candidates: in every sample set's key; bump it
# when this code (or what it calls to read answers) can change a sample
SAMPLING_VERSION = 1

BOXED_LINE = re.compile(r"\\boxed\{[^\n]*\n")  # MATH: the line that holds the boxed answer ends a solution


class SamplingError(ValueError):
    """Sampling settings no generator can follow."""


# the coldest temperature sampled: colder is greedy decoding in all but name (chain of thought), and a cold
# enough one overflows the 32-bit logits it divides (1e-300: every probability NaN). Sun et al. sample at 0.7
MIN_TEMPERATURE = 0.01


@dataclass(frozen=True)
class Sampling:
    n: int  # candidate solutions per problem
    temperature: float = 0.7  # Sun et al. (App. C.2): temperature 0.7, top-k 20
    top_k: int | None = 20
    top_p: float = 1.0
    k: int = 4  # worked examples in the generator's prompt
    max_new_tokens: int | None = None  # None: the dataset's chain-of-thought length
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n) < 1:
            raise SamplingError(f"sampling needs n >= 1 solutions per problem, not {self.n}")
        if not float(self.temperature) >= MIN_TEMPERATURE:  # NaN fails too
            raise SamplingError(f"sampling needs a temperature >= {MIN_TEMPERATURE}, not {self.temperature} (greedy "
                                "decoding is chain of thought: methods.base.CoT)")
        if self.top_k is not None and int(self.top_k) < 1:
            raise SamplingError(f"top_k must be >= 1 (or null for no cut), not {self.top_k}")
        if not 0 < float(self.top_p) <= 1:
            raise SamplingError(f"top_p must be in (0, 1], not {self.top_p}")
        if int(self.k) < 0:
            raise SamplingError(f"k (worked examples) must be >= 0, not {self.k}")
        if self.max_new_tokens is not None and int(self.max_new_tokens) < 1:
            raise SamplingError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}")

    def with_length(self, dataset: str) -> "Sampling":
        """The same sampling with the dataset's chain-of-thought length when none is set."""
        if self.max_new_tokens is not None:
            return self
        return replace(self, max_new_tokens=int(prompts.MAX_NEW_TOKENS[dataset]))

    def options(self) -> dict[str, Any]:
        """Canonical form (every field; resolve the length first)."""
        if self.max_new_tokens is None:
            raise SamplingError("resolve the generation length first (Sampling.with_length(dataset))")
        return {k: (float(v) if k in ("temperature", "top_p") else None if v is None else int(v))
                for k, v in asdict(self).items()}


def candidate_stops(fmt: prompts.CoTFormat) -> tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]:
    """Where a candidate ends: at the next question, or once its answer is written (GSM8K and
    StrategyQA: the line of the first "the answer is", as chain of thought's strict rule; MATH: the
    line of a ``\\boxed{}``)."""
    if fmt.kind == "math":
        return (f"\n{fmt.question_label}",), (BOXED_LINE,)
    return (f"\n{fmt.question_label}",), (generation.ANSWER_LINE,)


def sample_solutions(lm: Any, fmt: prompts.CoTFormat, problems: pd.DataFrame, examples: pd.DataFrame,
                     sampling: Sampling, *, max_length: int | None = None, batch_size: int = 8,
                     fit_to: pd.DataFrame | None = None, progress: bool = True,
                     desc: str = "sampling") -> pd.DataFrame:
    """``sampling.n`` candidates for every problem (rows with ``id``, ``level``, ``question``,
    ``answer``), after the worked ``examples``: one row per (problem, sample). ``fit_to``: the
    problems whose prompts the examples must fit with (default: ``problems``; every problem set of
    a candidate set, so that all of them get the same prompt)."""
    if sampling.max_new_tokens is None:
        raise SamplingError("resolve the generation length first (Sampling.with_length(dataset))")
    rows = problems.to_dict("records")
    texts = [fmt.prompt(r) for r in rows]
    fitting = texts if fit_to is None else [fmt.prompt(r) for r in fit_to.to_dict("records")]
    budget = [scoring.ScoringItem(tuple(scoring.encode(lm.tokenizer, icl.question_text(t, fmt, not examples.empty))),
                                  ((0,) * sampling.max_new_tokens,)) for t in fitting]
    limit = max_length or int(getattr(lm.model.config, "max_position_embeddings", 2048))
    prefix_ids, kept = icl.fit_prefix(lm.tokenizer, lm.bos_ids(), examples, fmt, budget, limit)
    prompt_ids = icl.question_ids(lm.tokenizer, examples.iloc[:kept], fmt, texts)
    stop, patterns = candidate_stops(fmt)
    generated = generation.sample_generate(
        lm.model, lm.tokenizer, prefix_ids, prompt_ids, n=sampling.n, temperature=sampling.temperature,
        top_p=sampling.top_p, top_k=sampling.top_k, seed=sampling.seed, max_new_tokens=sampling.max_new_tokens,
        stop=stop, stop_patterns=patterns, batch_size=batch_size,
        prompt_keys=[zlib.crc32(str(r["id"]).encode()) for r in rows], progress=progress, desc=desc)
    return candidate_frame(fmt, rows, generated, n_shots=kept)


def candidate_frame(fmt: prompts.CoTFormat, rows: list[dict[str, Any]], generated: list[list[str]],
                    n_shots: int) -> pd.DataFrame:
    """One row per (problem, sample): the generation, the answer read from it, its vote group and
    its correctness."""
    out = []
    for row, texts in zip(rows, generated):
        extracted = [answers.extract(t, fmt.kind, "strict") for t in texts]
        keys = answers.vote_keys(extracted, fmt.kind)
        for j, (text, answer, key) in enumerate(zip(texts, extracted, keys)):
            out.append({"item_id": row["id"], "level": row["level"], "sample": j, "generation": text,
                        "extracted": answer, "vote_key": -1 if key is None else int(key),
                        "correct": float(answers.is_correct(answer, str(row["answer"]), fmt.kind, "strict")),
                        "gold": str(row["answer"]), "n_shots": n_shots})
    return pd.DataFrame(out, columns=["item_id", "level", "sample", "generation", "extracted", "vote_key", "correct",
                                      "gold", "n_shots"])
