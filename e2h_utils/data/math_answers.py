"""Reading and checking MATH answers (free-form LaTeX), for the easy-to-hard evaluators.

- ``last_boxed(text)``: the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) of a
  solution, braces balanced (MATH's reference solutions and the few-shot prompts end that way);
- ``equivalent(pred, gold)``: whether two answers are the same mathematical object, decided by
  ``math-verify`` (Hugging Face's parser and sympy-based checker; the one the Open LLM
  Leaderboard's MATH uses): ``\\frac{1}{2}`` = ``0.5`` = ``1/2``, ``(0,1]`` = ``(0, 1]``, units and
  ``\\text{}`` dropped, sets unordered. Never hand-normalised here.

- ``groups(answers)``: one problem's sampled answers as vote groups: first by the canonical form
  of their parse (``canonical``: ``\\frac12``, ``1/2`` and ``0.5`` are all ``1/2``), then, while a
  problem has at most ``MERGE_LIMIT`` distinct forms, forms that ``equivalent`` says are the same
  answer merge (into the group of the earliest). Pairwise checks are quadratic in the distinct
  answers, so with more distinct forms (N = 1024 at the paper's scale) groups are the forms alone.

All are pure; a checker that cannot parse an answer says "not equivalent" (never raises).
"""

from __future__ import annotations

import functools
from typing import cast

_BOXES = ("\\boxed{", "\\fbox{")


def last_boxed(text: str | None) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (None when there is none or it never
    closes)."""
    if not text:
        return None
    start = max(text.rfind(box) for box in _BOXES)
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


@functools.lru_cache(maxsize=65536)
def _parse(answer: str):
    from math_verify import parse

    return parse(f"${answer}$")


def equivalent(pred: str | None, gold: str | None) -> bool:
    """Whether ``pred`` is the same answer as ``gold`` (math-verify; False when either is missing
    or cannot be parsed)."""
    if not pred or not gold:
        return False
    if pred.strip() == gold.strip():
        return True
    from math_verify import verify

    try:
        return bool(verify(_parse(gold.strip()), _parse(pred.strip())))
    except Exception:  # noqa: BLE001 - an unparseable answer is simply not equivalent
        return False


MERGE_LIMIT = 64  # at most this many distinct forms of one problem are compared pairwise


def canonical(answer: str) -> str:
    """The answer's canonical form: the printed sympy object math-verify parses it into (the
    stripped text when it cannot parse it)."""
    _parse("1")  # math-verify must be installed: an ImportError here is a broken setup, not an answer
    try:
        parsed = _parse(answer.strip())
    except Exception:  # noqa: BLE001 - an unparseable answer stands for itself
        parsed = []
    return f"sympy:{parsed[0]}" if parsed else f"text:{answer.strip()}"


def groups(answers: list[str | None]) -> list[int | None]:
    """Vote groups of one problem's answers (None: no answer), numbered in order of first appearance."""
    forms = [canonical(a) if a else None for a in answers]
    first: dict[str, str] = {}
    for answer, form in zip(answers, forms):
        if form is not None:
            first.setdefault(form, cast(str, answer))  # a form comes from a non-empty answer
    unique = list(first)
    label: dict[str, int] = {}
    heads: list[str] = []
    for form in unique:
        match = None
        if len(unique) <= MERGE_LIMIT:
            match = next((h for h in heads if equivalent(first[form], first[h])), None)
        if match is None:
            heads.append(form)
            label[form] = len(heads) - 1
        else:
            label[form] = label[match]
    return [None if f is None else label[f] for f in forms]
