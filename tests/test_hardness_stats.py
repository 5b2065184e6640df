"""e2h_utils.analysis.hardness_stats: correlations between hardness measures, accuracy by level
(hand-computed on tiny frames), and zero-shot results with the tiny random Llama (now
``experiments.mdl.zero_shot_items``, formerly ``hardness_stats.zero_shot_results``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from e2h_utils.methods import icl
from e2h_utils.analysis.hardness_stats import (
    accuracy_by_level,
    easy_vs_hard,
    level_counts,
    measure_columns,
    median_abs_correlation,
    spearman,
    strongest_pairs,
)
from e2h_utils.experiments.mdl import zero_shot_items
from e2h_utils.experiments.store import ResultStore
from test_experiments import make_frame

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# --- measure columns and correlations -------------------------------------------------------


def test_measure_columns():
    frame = make_frame()
    want = {"grade": "grade", "question_words": "question_words", "answer_chars": "answer_chars"}
    assert measure_columns(frame, "arc") == want
    frame = frame.assign(mdl=np.linspace(0, 1, len(frame)), mdl_probe=0.5, difficulty=np.nan,
                         extra=np.arange(len(frame)))
    found = measure_columns(frame, "arc", extra=("extra", "mdl", "not_there"))
    # registered measures with values (mdl_probe is constant: left out), in registry order, then extras
    assert found == {**want, "mdl": "mdl", "extra": "extra"}
    assert list(found) == ["grade", "question_words", "answer_chars", "mdl", "extra"]


def _correlation_frame(n: int = 20) -> pd.DataFrame:
    x = np.arange(n, dtype=float)
    holes = x.copy()
    holes[[0, 3, 7]] = np.nan
    other_holes = x ** 3
    other_holes[[3, 5]] = np.nan
    return pd.DataFrame({"x": x, "square": x ** 2, "reversed": -x, "constant": 1.0, "holes": holes,
                         "other": other_holes, "text": [str(v) for v in x]})


def test_spearman_monotone_and_reversed():
    frame = _correlation_frame()
    rho, pairs = spearman(frame, {"x": "x", "sq": "square", "rev": "reversed"})
    assert list(rho.index) == list(rho.columns) == ["x", "sq", "rev"]
    assert rho.loc["x", "sq"] == pytest.approx(1.0)
    assert rho.loc["sq", "x"] == pytest.approx(1.0)
    assert rho.loc["x", "rev"] == pytest.approx(-1.0)
    assert rho.loc["x", "x"] == pytest.approx(1.0)
    assert (pairs.to_numpy() == 20).all()


def test_spearman_value_matches_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    b[:3] = b[3]  # ties: average ranks
    rho, _ = spearman(pd.DataFrame({"a": a, "b": b}), {"a": "a", "b": "b"})
    ra, rb = pd.Series(a).rank(), pd.Series(b).rank()
    assert rho.loc["a", "b"] == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert abs(rho.loc["a", "b"]) < 0.9


def test_spearman_pairwise_complete():
    frame = _correlation_frame()
    rho, pairs = spearman(frame, {"x": "x", "holes": "holes", "other": "other", "text": "text"})
    assert pairs.loc["x", "holes"] == pairs.loc["holes", "x"] == 17
    assert pairs.loc["holes", "other"] == 16  # missing at 0, 3, 7 or 3, 5
    assert pairs.loc["other", "other"] == 18
    assert rho.loc["holes", "other"] == pytest.approx(1.0)
    assert rho.loc["x", "text"] == pytest.approx(1.0)  # numeric strings are coerced


def test_spearman_min_pairs_and_constant():
    frame = _correlation_frame()
    rho, pairs = spearman(frame, {"x": "x", "holes": "holes", "const": "constant"}, min_pairs=18)
    assert rho.loc["x", "x"] == pytest.approx(1.0)  # 20 pairs
    assert math.isnan(rho.loc["x", "holes"]) and pairs.loc["x", "holes"] == 17  # 17 < 18
    assert math.isnan(rho.loc["x", "const"]) and pairs.loc["x", "const"] == 20  # constant: no ranks
    assert math.isnan(rho.loc["const", "const"])
    rho, _ = spearman(frame.iloc[:5], {"x": "x", "sq": "square"})  # default min_pairs=10
    assert rho.isna().all().all()


def test_strongest_pairs():
    names = ["a", "b", "c", "d"]
    rho = pd.DataFrame(np.eye(4), index=names, columns=names)
    for (p, q), value in {("a", "b"): 0.2, ("a", "c"): -0.9, ("a", "d"): np.nan, ("b", "c"): 0.5,
                          ("b", "d"): 0.05, ("c", "d"): -0.3}.items():
        rho.loc[p, q] = rho.loc[q, p] = value
    pairs = pd.DataFrame(np.arange(16).reshape(4, 4), index=names, columns=names)
    top = strongest_pairs(rho, pairs, top=3)
    assert list(top.columns) == ["measure a", "measure b", "rho", "items"]
    assert list(zip(top["measure a"], top["measure b"])) == [("a", "c"), ("b", "c"), ("c", "d")]
    assert list(top["rho"]) == pytest.approx([-0.9, 0.5, -0.3])
    assert list(top["items"]) == [pairs.loc["a", "c"], pairs.loc["b", "c"], pairs.loc["c", "d"]]
    assert len(strongest_pairs(rho, pairs, top=10)) == 5  # each finite pair once
    nan = pd.DataFrame(np.nan, index=names[:2], columns=names[:2])
    assert strongest_pairs(nan, pairs.iloc[:2, :2]).empty


def test_median_abs_correlation():
    names = ["a", "b", "c"]
    rho = pd.DataFrame([[1.0, 0.2, -0.8], [0.2, 1.0, np.nan], [-0.8, np.nan, 1.0]], index=names, columns=names)
    assert median_abs_correlation(rho) == pytest.approx(0.5)  # |0.2|, |-0.8|; NaN left out, diagonal too
    rho.loc["b", "c"] = rho.loc["c", "b"] = 0.1
    assert median_abs_correlation(rho) == pytest.approx(0.2)
    assert math.isnan(median_abs_correlation(pd.DataFrame([[1.0]], index=["a"], columns=["a"])))


# --- accuracy by level ---------------------------------------------------------------------

# grade: easy <= 5, hard >= 8 (fixed cut-offs); difficulty: easy <= 1, hard >= 3
SMALL = pd.DataFrame({
    "id": [f"q{i}" for i in range(10)],
    "grade": [3, 3, 4, 5, 6, 7, 8, 8, np.nan, 8],
    "difficulty": [1, 1, 1, 1, 1, 1, 1, 1, 1, np.nan],
    "arc_annotated": True,
})
CORRECT = pd.DataFrame({"item_id": ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q8", "q9"],
                        "correct": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]})  # q7 not scored


def test_accuracy_by_level_hand_computed():
    table = accuracy_by_level(SMALL, CORRECT, "arc", ["grade", "difficulty"], n_boot=200)
    assert list(table.columns) == ["dataset", "measure", "level", "point", "lo", "hi", "n"]
    grade = table[table["measure"] == "grade"].set_index("level")
    assert list(grade.index) == ["easy", "medium", "hard"]
    assert grade.loc["easy", "point"] == pytest.approx(0.75) and grade.loc["easy", "n"] == 4
    assert grade.loc["medium", "point"] == 0.0 and grade.loc["medium", "n"] == 2
    assert grade.loc["hard", "point"] == pytest.approx(0.5) and grade.loc["hard", "n"] == 2  # q6, q9; q7 unscored
    # difficulty: every valued item is easy (q0..q8); no medium / hard rows at all
    difficulty = table[table["measure"] == "difficulty"].set_index("level")
    assert list(difficulty.index) == ["easy"]
    assert difficulty.loc["easy", "n"] == 8 and difficulty.loc["easy", "point"] == pytest.approx(5 / 8)
    assert (table["dataset"] == "arc").all()
    for row in table.to_dict("records"):
        assert row["lo"] <= row["point"] <= row["hi"]
        assert 0.0 <= row["lo"] and row["hi"] <= 1.0
    assert grade.loc["medium", "lo"] == grade.loc["medium", "hi"] == 0.0  # all wrong: no spread
    assert grade.loc["easy", "lo"] < grade.loc["easy", "hi"]


def test_accuracy_by_level_deterministic():
    a = accuracy_by_level(SMALL, CORRECT, "arc", ["grade"], n_boot=100, seed=1)
    b = accuracy_by_level(SMALL, CORRECT, "arc", ["grade"], n_boot=100, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert accuracy_by_level(SMALL, CORRECT.iloc[:0], "arc", ["grade"], n_boot=10).empty


def test_level_counts():
    table = level_counts(SMALL, "arc")
    assert list(table["measure"]) == ["grade", "difficulty"]  # only measures with a column
    grade = table.set_index("measure").loc["grade"]
    assert (grade["easy"], grade["medium"], grade["hard"], grade["no value"]) == (4, 2, 3, 1)
    assert grade["kind"] == "annotation" and grade["dataset"] == "arc"
    difficulty = table.set_index("measure").loc["difficulty"]
    assert (difficulty["easy"], difficulty["medium"], difficulty["hard"], difficulty["no value"]) == (9, 0, 0, 1)


def test_easy_vs_hard():
    by_level = pd.DataFrame([
        # clearly harder: hard CI [0.1, 0.3] below easy CI [0.6, 0.9]
        {"dataset": "arc", "measure": "grade", "level": "easy", "point": 0.8, "lo": 0.6, "hi": 0.9, "n": 40},
        {"dataset": "arc", "measure": "grade", "level": "medium", "point": 0.5, "lo": 0.4, "hi": 0.6, "n": 30},
        {"dataset": "arc", "measure": "grade", "level": "hard", "point": 0.2, "lo": 0.1, "hi": 0.3, "n": 20},
        # overlapping CIs
        {"dataset": "arc", "measure": "bloom", "level": "easy", "point": 0.6, "lo": 0.4, "hi": 0.8, "n": 10},
        {"dataset": "arc", "measure": "bloom", "level": "hard", "point": 0.5, "lo": 0.3, "hi": 0.7, "n": 12},
        # no hard level: left out
        {"dataset": "arc", "measure": "difficulty", "level": "easy", "point": 0.6, "lo": 0.4, "hi": 0.8, "n": 9},
        {"dataset": "mmlu_stem5", "measure": "school_level", "level": "easy", "point": 0.5, "lo": 0.45,
         "hi": 0.55, "n": 50},
        {"dataset": "mmlu_stem5", "measure": "school_level", "level": "hard", "point": 0.5, "lo": 0.45,
         "hi": 0.55, "n": 50},
    ])
    table = easy_vs_hard(by_level)
    assert list(table.columns) == ["dataset", "measure", "easy", "hard", "clearly harder", "n easy", "n hard"]
    assert list(zip(table["dataset"], table["measure"])) == [("arc", "grade"), ("arc", "bloom"),
                                                             ("mmlu_stem5", "school_level")]
    rows = table.set_index("measure")
    assert rows.loc["grade", "clearly harder"] and not rows.loc["bloom", "clearly harder"]
    assert not rows.loc["school_level", "clearly harder"]
    assert (rows.loc["grade", "easy"], rows.loc["grade", "hard"]) == (0.8, 0.2)
    assert (rows.loc["bloom", "n easy"], rows.loc["bloom", "n hard"]) == (10, 12)


def test_accuracy_then_easy_vs_hard():
    table = easy_vs_hard(accuracy_by_level(SMALL, CORRECT, "arc", ["grade", "difficulty"], n_boot=50))
    assert list(table["measure"]) == ["grade"]
    assert table["easy"].iloc[0] == pytest.approx(0.75) and table["hard"].iloc[0] == pytest.approx(0.5)


# --- zero-shot results ------------------------------------------------------------------------


def test_zero_shot_items_store_and_reuse(tiny_lm, tmp_path, monkeypatch):
    frame = make_frame()
    items = frame.iloc[:6]
    store = ResultStore(tmp_path)
    first = zero_shot_items(tiny_lm, items, "arc", store=store, progress=False)
    assert list(first["item_id"]) == sorted(items["id"])
    assert {"item_id", "probs", "pred", "correct", "p_correct", "label"} <= set(first.columns)
    labels = items.set_index("id").loc[list(first["item_id"]), "label"].to_numpy(dtype=int)
    np.testing.assert_array_equal(first["label"].to_numpy(), labels)
    assert first["correct"].isin([0.0, 1.0]).all() and first["p_correct"].between(0, 1).all()
    np.testing.assert_array_equal(first["correct"].to_numpy(), (first["pred"].to_numpy() == labels).astype(float))
    assert len(list(tmp_path.rglob("*.parquet"))) == 1

    calls = []
    real = icl.score_with_examples

    def spy(*args, **kwargs):
        calls.append(len(args[3]))
        return real(*args, **kwargs)

    monkeypatch.setattr(icl, "score_with_examples", spy)
    # the same items in another order: reused
    again = zero_shot_items(tiny_lm, items.iloc[::-1], "arc", store=store, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(first, again)
    # other items: scored and stored beside it
    other = zero_shot_items(tiny_lm, frame.iloc[:4], "arc", store=store, progress=False)
    assert calls == [4] and len(other) == 4
    assert len(list(tmp_path.rglob("*.parquet"))) == 2
    # the scores of an item do not depend on which other items were scored (zero-shot, no context)
    shared = other.merge(first, on="item_id", suffixes=("_a", "_b"))
    assert len(shared) == 4
    for a, b in zip(shared["probs_a"], shared["probs_b"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # a different prompt format is a different result
    zero_shot_items(tiny_lm, items, "arc", prompt_format="mc_plain", store=store, progress=False)
    assert calls == [4, 6]
