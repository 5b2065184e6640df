"""Answer extraction from generated chain-of-thought text.

The CoT prompts end every worked example with "So the answer is {answer}." and the model is
expected to do the same; the answer is read after the last "the answer is" (case-insensitive),
falling back to the last number (GSM8K) or the last yes/no (StrategyQA) of the text.
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
