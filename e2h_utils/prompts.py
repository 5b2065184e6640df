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


def _yes_no(row: Row) -> str:
    return f"Q: {row['question']}\nA:"


FORMATS: dict[str, PromptFormat] = {
    "mc_lettered": PromptFormat(
        "mc_lettered",
        "Question: {question}\\nA) {choice 1}\\nB) {choice 2}...\\nAnswer: {answer text} (the paper's)",
        _lettered,
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
