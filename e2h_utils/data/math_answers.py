"""Reading and checking MATH answers (free-form LaTeX), for the easy-to-hard evaluators.

- ``last_boxed(text)``: the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) of a
  solution, braces balanced (MATH's reference solutions and the few-shot prompts end that way);
- ``equivalent(pred, gold)``: whether two answers are the same mathematical object, decided by
  ``math-verify`` (Hugging Face's parser and sympy-based checker; the one the Open LLM
  Leaderboard's MATH uses): ``\\frac{1}{2}`` = ``0.5`` = ``1/2``, ``(0,1]`` = ``(0, 1]``, units and
  ``\\text{}`` dropped, sets unordered. Never hand-normalised here.

Both are pure; a checker that cannot parse an answer says "not equivalent" (never raises).
"""

from __future__ import annotations

import functools

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
