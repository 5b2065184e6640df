"""e2h_utils.data.answers: reading the final answer out of generated chain-of-thought text (pure)."""

from __future__ import annotations

import pytest

from e2h_utils.data import answers
from e2h_utils.data.answers import extract_number, extract_yes_no, normalize_number, numbers_match

# --- extract_number ------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("So the answer is $1,234.50.", "1234.5"),
    ("the answer is -3 dollars", "-3"),
    ("The answer is: 0.5", "0.5"),
    ("So the answer is .75", "0.75"),
    ("the answer is 18. Then 20", "18"),  # first number after the marker, not the last of the text
    ("THE ANSWER IS 42", "42"),  # case-insensitive marker
    ("the answer is 7.00", "7"),
    ("the answer is 1,000,000 ants", "1000000"),
    ("She pays $-4 in the end", "-4"),
    ("She pays -$4 in the end", "-4"),
    ("the answer is $-4.", "-4"),
    ("the answer is -$4.", "-4"),
    ("the answer is\n12", "12"),
    ("the answer is 0", "0"),
])
def test_extract_number_after_marker(text, expected):
    assert extract_number(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1,000,000 ants", "1000000"),
    ("He had 3 apples, then 5, and finally 12.", "12"),  # no marker: the last number
    ("It costs $2.50 each and 4 of them cost $10.00", "10"),
    ("12345 is a big number", "12345"),
    ("answer 4 and 9", "9"),
])
def test_extract_number_falls_back_to_last_number(text, expected):
    assert extract_number(text) == expected


@pytest.mark.parametrize("text", ["no numbers here", "", "the answer is unknown", "the answer is"])
def test_extract_number_none(text):
    assert extract_number(text) is None


def test_extract_number_answer_without_number_after_marker_is_none():
    # a number before the marker is not the answer when the marker has none after it
    assert extract_number("We have 5 apples, so the answer is unclear") is None


def test_extract_number_uses_last_marker():
    assert extract_number("The answer is 5. Wait, let me check: the answer is 6.") == "6"


def test_extract_number_uses_last_marker_three_times():
    text = "the answer is 1. no, the answer is 2. Finally, the answer is 3 apples and 4 pears"
    assert extract_number(text) == "3"


# --- normalize_number / numbers_match ---------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("1,234", "1234"), ("0.50", "0.5"), ("-0", "0"), ("-0.0", "0"), ("abc", None), ("", None),
    ("$1,234.50", "1234.5"), ("-3", "-3"), ("7.00", "7"), ("1000000", "1000000"), ("100", "100"),
    (".75", "0.75"), ("$ 5", "5"), ("-$4", "-4"), ("$-4", "-4"), ("0.125", "0.125"),
])
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


@pytest.mark.parametrize("text", ["nan", "inf"])
def test_normalize_number_non_finite_is_none(text):
    assert normalize_number(text) is None


@pytest.mark.parametrize("predicted, gold, expected", [
    ("18", "18", True),
    ("18.0", "18", True),
    ("18", "18.00", True),
    (None, "1", False),
    ("17", "18", False),
    ("1234", "1,234", True),
    ("1000000", "1,000,000", True),
    ("-4", "-4", True),
    ("-4", "4", False),
    ("0.5", ".5", True),
    ("5", "abc", False),  # a gold that is not a number never matches
])
def test_numbers_match(predicted, gold, expected):
    assert numbers_match(predicted, gold) is expected


def test_extract_then_match_round_trip():
    assert numbers_match(extract_number("Total is 2 + 3. So the answer is $1,200."), "1200")
    assert not numbers_match(extract_number("no idea"), "1200")


# --- extract_yes_no --------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("So the answer is Yes.", "yes"),
    ("So the answer is NO.", "no"),
    ("Paris is in France, so the answer is no, because yes is wrong", "no"),
    ("yes it is. Actually no", "no"),  # no marker: the last yes/no
    ("No. Yes!", "yes"),
    ("Yesterday it rained and nobody came, so no", "no"),
    ("the answer is: yes", "yes"),
])
def test_extract_yes_no(text, expected):
    assert extract_yes_no(text) == expected


@pytest.mark.parametrize("text", [
    "I do not know", "", "Yesterday nobody noticed", "Yesterday", "the answer is unclear", "eyes and nose",
])
def test_extract_yes_no_none(text):
    assert extract_yes_no(text) is None


def test_extract_yes_no_uses_last_marker():
    assert extract_yes_no("At first the answer is no. On reflection the answer is yes.") == "yes"


# --- the authors' strict rule (utils/metrics.py::generative_exact_match_accuracy_sum) ---------------


@pytest.mark.parametrize("text, kind, cut, expected", [
    ("So the answer is 18.", "number", True, "18"),
    ("So the answer is 18.\nQ: next question? A: the answer is 3", "number", True, "18"),  # first trigger, cut at \n
    ("THE ANSWER IS 42", "number", True, "42"),  # lower-cased first
    ("the answer is $1,234.", "number", True, "1234"),  # digits and periods of the last two words
    ("the answer is -3", "number", True, "3"),  # the sign is dropped: a negative gold never matches
    ("the answer is 12 apples", "number", True, "12"),
    ("the answer is twelve", "number", True, ""),  # no digit at all
    ("the answer is 7 and 8 more\nlater 9", "number", True, "8"),  # the last two words of the answer line
    ("the answer is 7\nand 9 more", "number", False, "9"),  # QLoRA: no line cut, so the tail counts
    ("Paris is in France. So the answer is Yes.", "yes_no", True, "yes"),
    ("So the answer is: yes", "yes_no", True, ": yes"),  # exact match fails on the colon
    ("So the answer is no\n\nQ: is it?", "yes_no", True, "no"),
    ("Yes, Paris is in France.", "yes_no", True, None),  # no trigger: wrong
    ("", "number", True, None),
])
def test_strict_extraction(text, kind, cut, expected):
    assert answers.extract(text, kind, "strict", cut_at_newline=cut) == expected


def test_strict_rule_on_the_5_dot_case():
    # "the answer is 5. wait, the answer is 6": the text between the two triggers is "5. wait,";
    # its last two words give "5." -- not "5", so exact match fails, as in the authors' code
    assert answers.extract("the answer is 5. wait, the answer is 6", "number") == "5."


@pytest.mark.parametrize("extracted, gold, kind, correct", [
    ("18", "18", "number", True),
    ("1234", "1,234", "number", False),  # a gold with a thousands separator can never match
    ("3", "-3", "number", False),
    ("yes", "Yes", "yes_no", True),  # both sides lower-cased and stripped
    ("yes", "yes.", "yes_no", True),
    (None, "yes", "yes_no", False),
    ("", "0", "number", False),
])
def test_strict_is_correct(extracted, gold, kind, correct):
    assert answers.is_correct(extracted, gold, kind, "strict") is correct


def test_lenient_rule_is_kept_as_an_option():
    text = "Step 1 gives 3. Step 2 gives 1,000"
    assert answers.extract(text, "number", "strict") is None
    assert answers.extract(text, "number", "lenient") == "1000"
    assert answers.is_correct("1000", "1,000", "number", "lenient")
    with pytest.raises(ValueError, match="lenient"):
        answers.extract(text, "number", "fancy")
