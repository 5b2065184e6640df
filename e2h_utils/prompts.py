"""Prompt formats, in one place and named, so a notebook can pick one.

A format turns a dataset row into a prompt (ending where the answer starts) and the
candidate continuations (one per choice, each starting with a space), and renders a solved
example for in-context learning. Examples are joined by ``separator``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Callable, Mapping

Row = Mapping[str, Any]


@dataclass(frozen=True)
class PromptFormat:
    name: str
    description: str
    render: Callable[[Row], str]
    separator: str = "\n\n"

    def prompt(self, row: Row) -> str:
        return self.render(row)

    def continuations(self, row: Row) -> list[str]:
        return [f" {choice}" for choice in row["choices"]]

    def example(self, row: Row) -> str:
        """A solved example: the prompt followed by the correct continuation."""
        return self.prompt(row) + self.continuations(row)[int(row["label"])]


def _lettered(row: Row) -> str:
    choices = row["choices"]
    if len(choices) > len(string.ascii_uppercase):
        raise ValueError(f"too many choices ({len(choices)}) to letter")
    lines = [f"{letter}) {text}" for letter, text in zip(string.ascii_uppercase, choices)]
    return "Question: {q}\n{choices}\nAnswer:".format(q=row["question"], choices="\n".join(lines))


def _plain(row: Row) -> str:
    return f"Question: {row['question']}\nAnswer:"


def _yes_no(row: Row) -> str:
    return f"Q: {row['question']}\nA:"


FORMATS: dict[str, PromptFormat] = {
    "mc_lettered": PromptFormat(
        "mc_lettered",
        "Question: {question}\\nA) {choice 1}\\nB) {choice 2}...\\nAnswer: {answer text} (the paper's)",
        _lettered,
    ),
    "mc_plain": PromptFormat(
        "mc_plain",
        "Question: {question}\\nAnswer: {answer text}, choices not listed (lm-evaluation-harness's ARC prompt)",
        _plain,
    ),
    "qa_yes_no": PromptFormat("qa_yes_no", "Q: {question}\\nA: {yes|no} (StrategyQA, answer only)", _yes_no),
}

DEFAULT_FORMAT = {"arc": "mc_lettered", "mmlu_stem5": "mc_lettered", "strategyqa": "qa_yes_no"}


def get_format(name: str | None, dataset: str | None = None) -> PromptFormat:
    """A format by name, or the dataset's default when ``name`` is None."""
    if name is None:
        if dataset not in DEFAULT_FORMAT:
            raise KeyError(
                f"no answer-scoring prompt format for dataset {dataset!r} "
                f"(GSM8K needs chain of thought); datasets with one: {', '.join(DEFAULT_FORMAT)}"
            )
        name = DEFAULT_FORMAT[dataset]
    if name not in FORMATS:
        raise KeyError(f"unknown prompt format {name!r}; valid formats: {', '.join(FORMATS)}")
    return FORMATS[name]


# --- chain of thought ----------------------------------------------------------------------

@dataclass(frozen=True)
class CoTFormat:
    """A worked-reasoning format: ``Q: {question}\\nA: {reasoning} So the answer is {answer}.``"""

    name: str
    description: str
    kind: str  # "number" (GSM8K) or "yes_no" (StrategyQA)
    separator: str = "\n\n"
    zero_shot_cue: str = " Let's think step by step."

    def prompt(self, row: Row) -> str:
        return f"Q: {row['question']}\nA:"

    def zero_shot_prompt(self, row: Row) -> str:
        return self.prompt(row) + self.zero_shot_cue

    def target(self, row: Row) -> str:
        """The worked answer (reasoning on one line, then the final answer)."""
        reasoning = " ".join(str(row["reasoning"]).split())
        return f" {reasoning} So the answer is {row['answer']}."

    def example(self, row: Row) -> str:
        return self.prompt(row) + self.target(row)

    def extract(self, text: str) -> str | None:
        from . import answers

        return answers.extract_number(text) if self.kind == "number" else answers.extract_yes_no(text)

    def is_correct(self, extracted: str | None, row: Row) -> bool:
        from . import answers

        if self.kind == "number":
            return answers.numbers_match(extracted, str(row["answer"]))
        return extracted is not None and extracted == str(row["answer"]).lower()


COT_FORMATS: dict[str, CoTFormat] = {
    "gsm8k_cot": CoTFormat("gsm8k_cot", "GSM8K solution (calculator annotations removed) + final number", "number"),
    "strategyqa_cot": CoTFormat("strategyqa_cot", "StrategyQA facts + yes/no", "yes_no"),
}
DEFAULT_COT_FORMAT = {"gsm8k": "gsm8k_cot", "strategyqa": "strategyqa_cot"}
MAX_NEW_TOKENS = {"gsm8k": 300, "strategyqa": 100}  # the paper's generation lengths


def get_cot_format(name: str | None, dataset: str | None = None) -> CoTFormat:
    if name is None:
        if dataset not in DEFAULT_COT_FORMAT:
            raise KeyError(f"no chain-of-thought format for dataset {dataset!r}; datasets with one: "
                           f"{', '.join(DEFAULT_COT_FORMAT)}")
        name = DEFAULT_COT_FORMAT[dataset]
    if name not in COT_FORMATS:
        raise KeyError(f"unknown chain-of-thought format {name!r}; valid formats: {', '.join(COT_FORMATS)}")
    return COT_FORMATS[name]
