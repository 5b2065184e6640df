"""MATH answer reading and checking on tricky answers (fractions, intervals, units, text)."""

from __future__ import annotations

import pytest

import math_verify  # noqa: E402,F401 - a dependency (pyproject): the MATH answer check must never silently skip

from e2h_utils.data.math_answers import equivalent, last_boxed  # noqa: E402


@pytest.mark.parametrize("text, expected", [
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("first \\boxed{3}, then corrected: \\boxed{4}", "4"),  # the last box
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped set braces balance too
    ("nested \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
    ("\\fbox{7}", "7"),
    ("no box here: 12", None),
    ("\\boxed{never closed", None),
    ("", None),
    (None, None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("pred, gold", [
    ("0.5", "\\frac{1}{2}"),
    ("1/2", "\\frac12"),
    ("\\dfrac{3}{4}", "\\frac{3}{4}"),
    ("(0,1]", "(0, 1]"),
    ("10", "10\\text{ cm}"),
    ("B", "\\text{(B)}"),
    ("\\sqrt{18}", "3\\sqrt{2}"),
    ("5", "x=5"),
    ("1000", "1,000"),
    ("\\{2,1\\}", "\\{1,2\\}"),
])
def test_equivalent_answers(pred, gold):
    assert equivalent(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("3", "2"),
    ("(0,1)", "(0, 1]"),  # an open and a half-open interval differ
    ("\\frac{1}{3}", "0.3"),
    (None, "1"),
    ("1", None),
    ("\\frac{", "1"),  # unparseable: not equivalent, no exception
])
def test_different_answers(pred, gold):
    assert not equivalent(pred, gold)


def test_math_answers_through_the_shared_answer_rules():
    """``data.answers`` reads MATH (kind "math") by its last box under both rule names, and groups
    equivalent answers into one vote."""
    from e2h_utils.data import answers

    text = "So $x = \\frac{1}{2}$, and the answer is $\\boxed{\\frac12}$.\n"
    for rule in answers.RULES:
        assert answers.extract(text, "math", rule) == "\\frac12"
    assert answers.is_correct("\\frac12", "0.5", "math")
    assert not answers.is_correct(None, "0.5", "math")
    assert answers.vote_keys(["\\frac12", "1/2", None, "3", "0.5", "\\text{3}"], "math") == [0, 0, None, 1, 0, 1]
    assert answers.vote_keys(["yes", "no", None, "yes"], "yes_no") == [0, 1, None, 0]


def test_groups_merge_forms_and_stay_fast_with_many_distinct_answers():
    import time

    from e2h_utils.data import math_answers

    assert math_answers.groups(["0.5", "\\frac12", None, "1/2", "(0,1]", "(0, 1]", "\\dfrac{1}{2}"]) == \
        [0, 0, None, 0, 1, 1, 0]
    many = [str(i) for i in range(200)] * 3  # 200 distinct answers, above MERGE_LIMIT: forms only
    started = time.perf_counter()
    keys = math_answers.groups(many)
    assert keys[:3] == [0, 1, 2] and keys[200:203] == [0, 1, 2] and max(keys) == 199
    assert time.perf_counter() - started < 30
