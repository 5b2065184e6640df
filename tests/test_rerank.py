"""The selection rules on hand-made problems (every tie rule and edge case), and AUROC."""

from __future__ import annotations

import math

import pytest

from e2h_utils.analysis import rerank


def test_majority_takes_the_most_frequent_answer():
    keys = ["7", "5", "7", "5", "7"]
    correct = [False, True, False, True, False]
    assert rerank.majority(keys, correct) is False  # "7" three times: wrong
    assert rerank.majority(["5", "7", "5"], [True, False, True]) is True


def test_ties_go_to_the_answer_seen_first_and_unanswered_never_win():
    assert rerank.majority(["5", "7", "7", "5"], [True, False, False, True]) is True  # 2-2: "5" came first
    assert rerank.majority([None, None, "3"], [False, False, True]) is True
    assert rerank.majority([None, None], [False, False]) is False  # no answer at all: wrong


def test_best_of_n_takes_the_top_scored_sample():
    keys, correct = ["7", "5", "7"], [False, True, False]
    assert rerank.best_of_n(keys, correct, [0.2, 0.9, 0.4]) is True
    assert rerank.best_of_n(keys, correct, [0.95, 0.9, 0.4]) is False
    assert rerank.best_of_n(keys, correct, [0.5, 0.5, 0.1]) is False  # tie: the earliest sample
    assert rerank.best_of_n([None, "5"], [False, True], [0.99, 0.1]) is True  # an unanswered sample cannot win


def test_weighted_voting_sums_the_scores_of_each_answer():
    keys = ["7", "7", "7", "5"]
    correct = [False, False, False, True]
    assert rerank.weighted(keys, correct, [0.1, 0.1, 0.1, 0.9]) is True  # 0.9 > 0.3
    assert rerank.weighted(keys, correct, [0.4, 0.4, 0.4, 0.9]) is False  # 1.2 > 0.9
    assert rerank.majority(keys, correct) is False  # majority ignores the scores
    # weighted voting differs from best-of-N: many good-but-not-top samples outvote one top sample
    keys, correct, scores = ["5", "5", "7"], [True, True, False], [0.6, 0.6, 0.9]
    assert rerank.weighted(keys, correct, scores) is True and rerank.best_of_n(keys, correct, scores) is False


def test_pass_at_n_and_apply_and_by_n():
    keys, correct, scores = ["1", "2", "3"], [False, False, True], [0.3, 0.2, 0.1]
    assert rerank.pass_at_n(keys, correct) is True
    assert rerank.by_n("pass_at_n", keys, correct) == [False, False, True]
    assert rerank.by_n("best_of_n", keys, correct, scores) == [False, False, False]
    assert rerank.apply("majority", keys, correct) is False
    with pytest.raises(ValueError, match="valid: majority"):
        rerank.apply("borda", keys, correct)


def test_auroc():
    assert rerank.auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert rerank.auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert rerank.auroc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5  # ties count half
    assert rerank.auroc([0.3, 0.6, 0.6, 0.1], [False, True, False, True]) == pytest.approx(0.375)
    assert math.isnan(rerank.auroc([0.1, 0.2], [True, True]))


# --- frames: sample tables and evaluator scores -> outcome matrices -----------------------------

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _samples():
    """Two problems, three samples each. p1: answers 7, 5, 7 (5 right); p2: 3, 3, none (3 right)."""
    return pd.DataFrame({"item_id": ["p1"] * 3 + ["p2"] * 3, "sample": [0, 1, 2] * 2, "level": "hard",
                         "vote_key": [0, 1, 0, 0, 0, -1], "correct": [0, 1, 0, 1, 1, 0]})


def test_outcomes_apply_a_rule_to_every_problem_and_seed():
    samples = _samples()
    majority = rerank.outcomes(samples, "majority", [1, 2, 3])
    assert majority[3].tolist() == [[0.0, 1.0]] and majority[1].tolist() == [[0.0, 1.0]]
    assert majority[2].tolist() == [[0.0, 1.0]]  # p1: 7, 5 tie -> the first (7, wrong)
    assert rerank.outcomes(samples, "pass_at_n", [1, 2])[2].tolist() == [[1.0, 1.0]]
    scores = pd.DataFrame({"item_id": ["p1"] * 3 + ["p2"] * 3, "sample": [0, 1, 2] * 2, "score":
                           [0.1, 0.9, 0.2, 0.5, 0.5, 0.99]})
    scores = pd.concat([scores.assign(seed=0), scores.assign(seed=1, score=[0.9, 0.1, 0.9, 0.5, 0.5, 0.99])])
    best = rerank.outcomes(samples, "best_of_n", [3], scores)[3]
    assert best.tolist() == [[1.0, 1.0], [0.0, 1.0]]  # seed 0 picks the 5; seed 1 a 7; p2's unanswered never wins
    weighted = rerank.outcomes(samples, "weighted", [3], scores)[3]
    assert weighted.tolist() == [[1.0, 1.0], [0.0, 1.0]]  # seed 0: 5 (0.9) > 7 (0.3)
    with pytest.raises(ValueError, match="do not cover"):
        rerank.outcomes(samples, "best_of_n", [3], scores[scores["item_id"] == "p1"])
    with pytest.raises(ValueError, match="only 3 samples"):
        rerank.outcomes(samples, "majority", [4])


def test_weighted_auroc_counts_a_sample_as_often_as_its_weight():
    scores, labels = [0.3, 0.6, 0.6, 0.1, 0.8], [False, True, False, True, True]
    weights = [2, 1, 3, 1, 0]
    expanded = [(s, lab) for s, lab, w in zip(scores, labels, weights) for _ in range(w)]
    assert rerank.auroc(scores, labels, weights) == pytest.approx(rerank.auroc(*zip(*expanded)))


def test_auroc_bootstrap_over_problems_and_seeds():
    samples = _samples()
    scores = pd.DataFrame({"item_id": ["p1"] * 3 + ["p2"] * 3, "sample": [0, 1, 2] * 2, "seed": 0,
                           "score": [0.1, 0.9, 0.2, 0.7, 0.8, 0.05]})
    point, replicates = rerank.auroc_replicates(samples, scores, n_boot=200, seed=0)
    assert point == 1.0  # every correct sample outscores every wrong one
    finite = replicates[~np.isnan(replicates)]
    assert len(finite) > 100 and set(np.round(finite, 6)) == {1.0}
    # seeds are never ranked against each other: a second seed that ranks as well on another scale
    # leaves the AUROC at 1
    scaled = pd.concat([scores, scores.assign(seed=1, score=scores["score"] * 0.01 + 5)])
    assert rerank.auroc_replicates(samples, scaled, n_boot=20, seed=0)[0] == 1.0


def test_sample_ns():
    assert rerank.sample_ns(4) == [1, 2, 3, 4]
    assert rerank.sample_ns(64) == [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64]
    assert rerank.sample_ns(100)[-3:] == [32, 64, 100]
