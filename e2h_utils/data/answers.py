"""Answer extraction from generated chain-of-thought text, under two named rules.

- ``strict`` (the authors', the default): ``utils/metrics.py::generative_exact_match_accuracy_sum``
  at ``ad8358e``. Lower-case and strip the text; keep what follows the *first* "the answer is"
  (up to the next one); for in-context learning cut it at the first line break; strip spaces and
  periods; GSM8K: keep the digits and periods of the last two words (``extract_numeric``, so
  a sign or a thousands separator is lost); then exact string match with the gold answer
  (lower-cased, stripped). No "the answer is" means wrong.
- ``lenient`` (the project's earlier rule, kept as an option): the *last* "the answer is",
  numbers normalised (commas, $, decimals, signs), falling back to the last number (GSM8K) or
  the last yes/no (StrategyQA) anywhere in the text.

MATH (``kind`` "math", free-form LaTeX) has one rule under both names: the last ``\\boxed{}`` of
the text, checked by ``math-verify`` (``data.math_answers``).

``extract`` and ``is_correct`` take the rule by name; both are pure. ``vote_keys`` groups the
answers of one problem's samples for voting (``analysis.rerank``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_ANSWER_IS = re.compile(r"the answer is\s*:?\s*", re.IGNORECASE)
# a number: optional sign and currency, digits with optional thousands commas, optional decimals
_NUMBER = re.compile(r"-?\$?-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\$?-?\.\d+")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def _tail(text: str) -> tuple[str, bool]:
    """The text after the last 'the answer is' (and whether there was one)."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return text, False
    return text[matches[-1].end():], True


def normalize_number(text: str) -> str | None:
    """'$1,234.50' -> '1234.5'; '-3' -> '-3'; None when it is not a number."""
    cleaned = text.replace("$", "").replace(",", "").replace(" ", "")
    negative = cleaned.count("-") % 2 == 1
    cleaned = cleaned.replace("-", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if negative:
        value = -value
    value = value.normalize()
    if value == value.to_integral():
        value = value.quantize(Decimal(1))
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def extract_number(text: str) -> str | None:
    """The numeric answer of a generated GSM8K solution, normalised, or None."""
    tail, found = _tail(text)
    numbers = _NUMBER.findall(tail)
    if not numbers:
        return None
    pick = numbers[0] if found else numbers[-1]
    return normalize_number(pick)


def extract_yes_no(text: str) -> str | None:
    tail, found = _tail(text)
    words = _YES_NO.findall(tail)
    if not words:
        return None
    return (words[0] if found else words[-1]).lower()


def numbers_match(predicted: str | None, gold: str) -> bool:
    if predicted is None:
        return False
    gold_norm = normalize_number(gold)
    return gold_norm is not None and Decimal(predicted) == Decimal(gold_norm)


# --- the two rules -------------------------------------------------------------------------

RULES = ("strict", "lenient")
TRIGGER = "the answer is"


def _standardize(text: str) -> str:
    """The authors' ``standardize_preds_or_labels``: lower-case, strip spaces, strip periods."""
    return str(text).lower().strip().strip(".")


def extract_numeric(pred: str) -> str:
    """The authors' ``extract_numeric``: the digits and periods of the last two words; if none,
    those of the earliest word with a digit (their loop over the reversed words keeps the last
    one it sees)."""
    numeric = re.sub(r"[^0-9.]", "", " ".join(pred.split()[-2:]))
    if numeric in ("", "."):
        for word in reversed(pred.split(" ")):
            if re.search(r"\d", word):
                numeric = re.sub(r"[^0-9.]", "", word)
    return numeric


def extract_strict(text: str, kind: str, cut_at_newline: bool = True) -> str | None:
    """The authors' extraction (see the module docstring); None when the text has no trigger.
    ``cut_at_newline``: in-context learning (their decoding stop string); QLoRA has none."""
    pred = _standardize(text)
    if TRIGGER not in pred:
        return None
    pred = pred.split(TRIGGER)[1]
    if cut_at_newline and "\n" in pred:
        pred = pred[:pred.index("\n")]
    pred = pred.strip().strip("\n").strip().strip(".")
    return extract_numeric(pred) if kind == "number" else pred


def extract(text: str, kind: str, rule: str = "strict", cut_at_newline: bool = True) -> str | None:
    """The answer in generated ``text`` under ``rule`` (``kind``: "number", "yes_no" or "math")."""
    if rule not in RULES:
        raise ValueError(f"unknown extraction rule {rule!r}; valid: {', '.join(RULES)}")
    if kind == "math":
        from e2h_utils.data.math_answers import last_boxed

        return last_boxed(text)
    if rule == "strict":
        return extract_strict(text, kind, cut_at_newline)
    if rule == "lenient":
        return extract_number(text) if kind == "number" else extract_yes_no(text)
    raise ValueError(f"unknown extraction rule {rule!r}; valid: {', '.join(RULES)}")


def is_correct(extracted: str | None, gold: str, kind: str, rule: str = "strict") -> bool:
    """Whether an extracted answer counts as the gold one under ``rule``."""
    if extracted is None:
        return False
    if kind == "math":
        from e2h_utils.data.math_answers import equivalent

        return equivalent(extracted, str(gold))
    if rule == "strict":
        return extracted == _standardize(gold)
    if rule == "lenient":
        return numbers_match(extracted, gold) if kind == "number" else extracted == str(gold).strip().lower()
    raise ValueError(f"unknown extraction rule {rule!r}; valid: {', '.join(RULES)}")


def vote_keys(extracted: list[str | None], kind: str) -> list[int | None]:
    """One problem's sampled answers as vote groups: equal keys are the same answer (None: no
    answer). Numbers and yes/no group by the answer as the rule reads it (the string compared with
    the gold answer; the lenient rule's numbers are normalised already), so a group is all correct
    or all wrong; MATH answers by their canonical form and ``math-verify`` equivalence
    (``math_answers.groups``; a group takes its first answer's correctness)."""
    if kind == "math":
        from e2h_utils.data.math_answers import groups

        return groups(extracted)
    seen: dict[str, int] = {}
    keys: list[int | None] = []
    for answer in extracted:
        if answer is None:
            keys.append(None)
            continue
        keys.append(seen.setdefault(answer, len(seen)))
    return keys
