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

``extract`` and ``is_correct`` take the rule by name; both are pure.
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
    """The answer in generated ``text`` under ``rule`` (``kind``: "number" or "yes_no")."""
    if rule == "strict":
        return extract_strict(text, kind, cut_at_newline)
    if rule == "lenient":
        return extract_number(text) if kind == "number" else extract_yes_no(text)
    raise ValueError(f"unknown extraction rule {rule!r}; valid: {', '.join(RULES)}")


def is_correct(extracted: str | None, gold: str, kind: str, rule: str = "strict") -> bool:
    """Whether an extracted answer counts as the gold one under ``rule``."""
    if extracted is None:
        return False
    if rule == "strict":
        return extracted == _standardize(gold)
    if rule == "lenient":
        return numbers_match(extracted, gold) if kind == "number" else extracted == str(gold).strip().lower()
    raise ValueError(f"unknown extraction rule {rule!r}; valid: {', '.join(RULES)}")
