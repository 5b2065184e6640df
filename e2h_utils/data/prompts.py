"""Prompt formats, in one place and named, so a notebook can pick one.

A format turns a dataset row into a prompt (ending where the answer starts) and the
candidate continuations (one per choice, each starting with a space), and renders a solved
example for in-context learning. Examples are joined by ``separator``, and the separator also
goes between the last example and the test question.

The defaults are the authors' prompts, character for character (``utils/prompt.py`` at
``ad8358e``; prompt ids as ``run_jobs.py`` selects them):

- ``mc_lettered`` (ARC, MMLU; prompt 0040): ``Question: {q} \\nA) ..\\nB) ..\\nAnswer:``. The
  authors' solved examples put a space before the line break that precedes the answer
  (``format_example`` appends ``" " + "\\nAnswer: {label}"``); the test question has none.
- ``qa_yes_no`` (StrategyQA; prompt 0306): ``Q: {q}\\nA:``, examples ``Q: {q} \\nA: {yes|no}``.
- ``gsm8k_cot`` / ``strategyqa_cot`` (prompt 0305): ``Q: {q}\\nA: {reasoning} So the answer is
  {answer}``, no final period; GSM8K reasoning keeps its line breaks and ``<<..>>`` calculator
  annotations. GSM8K's zero-shot prompt is the worksheet instruction of prompt 5305.

The answer is scored as the continuation ``" {answer}"`` after a prompt that ends in ``Answer:``
(``A:``): what the authors' code does for Llama tokenizers, which strip the prompt's trailing
space and put a word-start marker before the separately encoded answer.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from e2h_utils.data import hardness

Row = Mapping[str, Any]


@dataclass(frozen=True)
class PromptFormat:
    name: str
    description: str
    render: Callable[[Row], str]  # the test prompt, ending where the answer starts
    separator: str = "\n\n"
    render_example: Callable[[Row, str], str] | None = None  # (row, answer) -> solved example

    def prompt(self, row: Row) -> str:
        return self.render(row)

    def continuations(self, row: Row) -> list[str]:
        return [f" {choice}" for choice in row["choices"]]

    def example(self, row: Row) -> str:
        """A solved example (with the row's, possibly noised, label)."""
        answer = str(row["choices"][int(row["label"])])
        if self.render_example is not None:
            return self.render_example(row, answer)
        return self.prompt(row) + f" {answer}"


def _lettered_body(row: Row) -> str:
    choices = row["choices"]
    if len(choices) > len(string.ascii_uppercase):
        raise ValueError(f"too many choices ({len(choices)}) to letter")
    lines = "".join(f"\n{letter}) {text}" for letter, text in zip(string.ascii_uppercase, choices))
    return f"Question: {row['question']} {lines}"


def _plain(row: Row) -> str:
    return f"Question: {row['question']}\nAnswer:"


FORMATS: dict[str, PromptFormat] = {
    "mc_lettered": PromptFormat(
        "mc_lettered",
        "Question: {question} \\nA) {choice 1}\\nB) {choice 2}...\\nAnswer: {answer text} (the authors' prompt 0040)",
        lambda row: _lettered_body(row) + "\nAnswer:",
        render_example=lambda row, answer: _lettered_body(row) + f" \nAnswer: {answer}",
    ),
    "mc_plain": PromptFormat(
        "mc_plain",
        "Question: {question}\\nAnswer: {answer text}, choices not listed (lm-evaluation-harness's ARC prompt)",
        _plain,
    ),
    "qa_yes_no": PromptFormat(
        "qa_yes_no",
        "Q: {question}\\nA: {yes|no} (StrategyQA, answer only; the authors' prompt 0306)",
        lambda row: f"Q: {row['question']}\nA:",
        render_example=lambda row, answer: f"Q: {row['question']} \nA: {answer}",
    ),
}

DEFAULT_FORMAT = {"arc": "mc_lettered", "mmlu_stem5": "mc_lettered", "strategyqa": "qa_yes_no"}


def one_per_level(frame: Any, measure: hardness.Measure, fmt: PromptFormat,
                  levels: tuple[str, ...] = ("easy", "hard")) -> str:
    """The first item of each of ``levels`` (``hardness.assign_levels`` of ``measure``) as ``fmt``
    writes it for the model, under a line naming its level and its value of the measure."""
    assigned = hardness.assign_levels(frame, measure)
    shown = []
    for level in levels:
        row = frame[assigned == level].iloc[0]
        article = "an" if level[0] in "aeiou" else "a"
        value = f"{measure.name} {row[measure.column]:g}"
        shown.append(f"--- {article} {level} question ({value}) as the model sees it ---\n"
                     f"{fmt.example(row.to_dict())}\n")
    return "\n".join(shown)


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


def strip_calculator_annotations(text: str) -> str:
    """Remove GSM8K's '<<48/2=24>>' calculator annotations (for the ``*_oneline`` formats)."""
    return re.sub(r"<<[^>]*>>", "", text)


# The authors' prompt 5305: the instruction their GSM8K zero-shot chain of thought starts with
# (``utils/prompt.py:39``, selected in ``run_jobs.py:447-449``), followed by "\n" and the question.
GSM8K_WORKSHEET = (
    "This worksheet contain math word problems. Here's an example:\nQ: [question text here].\n"
    "A: Let's think step by step.\n1. [step one]\n2. [step two]\n...\nN. [last step]\n"
    "Therefore, the answer is [answer here]\n\nNow you try!\n"
)
STEP_BY_STEP = " Let's think step by step."


@dataclass(frozen=True)
class CoTFormat:
    """A worked-reasoning format: ``Q: {question}\\nA: {reasoning} So the answer is {answer}``.

    ``oneline``: the project's earlier rendering (reasoning on one line, GSM8K calculator
    annotations removed, a final period), kept as a named option.
    """

    name: str
    description: str
    kind: str  # "number" (GSM8K), "yes_no" (StrategyQA) or "math" (MATH: a boxed LaTeX answer)
    oneline: bool = False
    instruction: str = ""  # the zero-shot prompt's instruction (authors' recipe)
    separator: str = "\n\n"

    question_label: str = "Q:"
    answer_label: str = "A:"

    def prompt(self, row: Row) -> str:
        return f"{self.question_label} {row['question']}\n{self.answer_label}"

    def zero_shot_prompt(self, row: Row, cue: str = "authors") -> str:
        """The zero-shot prompt: the authors' (GSM8K: the worksheet instruction, then the
        question) or the project's earlier ``step_by_step`` cue after the question."""
        if cue == "step_by_step":
            return self.prompt(row) + STEP_BY_STEP
        if cue != "authors":
            raise ValueError(f"unknown zero-shot cue {cue!r}; valid: authors, step_by_step")
        return (self.instruction + "\n" if self.instruction else "") + self.prompt(row)

    def reasoning(self, row: Row) -> str:
        text = str(row["reasoning"])
        if not self.oneline:
            return text
        return " ".join(strip_calculator_annotations(text).split())

    def target(self, row: Row) -> str:
        """The worked answer that follows the prompt (MATH: the solution, which ends in its boxed
        answer)."""
        if self.kind == "math":
            return f" {self.reasoning(row)}"
        return f" {self.reasoning(row)} So the answer is {row['answer']}" + ("." if self.oneline else "")

    def example(self, row: Row) -> str:
        return self.prompt(row) + self.target(row)


COT_FORMATS: dict[str, CoTFormat] = {
    "gsm8k_cot": CoTFormat("gsm8k_cot", "GSM8K solution as written (line breaks, <<..>> annotations) + final "
                           "answer (the authors' prompt 0305; zero-shot: prompt 5305)", "number",
                           instruction=GSM8K_WORKSHEET),
    "strategyqa_cot": CoTFormat("strategyqa_cot", "StrategyQA facts + yes/no (the authors' prompt 0305)", "yes_no"),
    "gsm8k_cot_oneline": CoTFormat("gsm8k_cot_oneline", "GSM8K solution on one line without calculator annotations, "
                                   "final period (the project's earlier format)", "number", oneline=True,
                                   instruction=GSM8K_WORKSHEET),
    "strategyqa_cot_oneline": CoTFormat("strategyqa_cot_oneline", "StrategyQA facts + yes/no, final period (the "
                                        "project's earlier format)", "yes_no", oneline=True),
}
COT_FORMATS["math_cot"] = CoTFormat(
    "math_cot", "MATH problem + its reference solution, which ends in \\boxed{answer} (the easy-to-hard "
    "evaluators' generator prompt; ledger S03)", "math", question_label="Problem:", answer_label="Solution:")
DEFAULT_COT_FORMAT = {"gsm8k": "gsm8k_cot", "strategyqa": "strategyqa_cot", "math": "math_cot"}
# the paper's generation lengths (run_jobs.py -mgl); MATH (not in the paper): ledger S03
MAX_NEW_TOKENS = {"gsm8k": 300, "strategyqa": 100, "math": 512}


def get_cot_format(name: str | None, dataset: str | None = None) -> CoTFormat:
    if name is None:
        if dataset not in DEFAULT_COT_FORMAT:
            raise KeyError(f"no chain-of-thought format for dataset {dataset!r}; datasets with one: "
                           f"{', '.join(DEFAULT_COT_FORMAT)}")
        name = DEFAULT_COT_FORMAT[dataset]
    if name not in COT_FORMATS:
        raise KeyError(f"unknown chain-of-thought format {name!r}; valid formats: {', '.join(COT_FORMATS)}")
    return COT_FORMATS[name]
