"""Choosing one answer among N sampled solutions of a problem: the selection rules of the
easy-to-hard evaluators (Sun et al. 2024), and the evaluator's AUROC.

For one problem, a sample has an answer key (``None`` when no answer could be read; equal keys are
the same answer), whether it is correct, and an evaluator score (higher: more likely correct):

- ``majority``: the most frequent answer (self-consistency; the unsupervised baseline, no evaluator);
- ``best_of_n``: the answer of the highest-scoring sample;
- ``weighted``: the answer whose samples' scores sum highest (Sun et al.'s weighted voting);
- ``pass_at_n``: whether any sample is correct (the ceiling of every rule).

Ties go to the earliest sample (for votes: the answer that appeared first), so a rule is a pure
function of the samples in their order. Samples without an answer never win a vote; a problem
where no sample has an answer counts as wrong. ``by_n`` applies a rule to the first n samples for
every n (accuracy as N grows).
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np

RULES = ("majority", "best_of_n", "weighted", "pass_at_n")
Rule = Callable[[Sequence[Hashable | None], Sequence[bool], Sequence[float]], bool]


def _vote(keys: Sequence[Hashable | None], correct: Sequence[bool], weights: Sequence[float]) -> bool:
    totals: dict[Hashable, float] = {}
    first: dict[Hashable, int] = {}
    for i, (key, weight) in enumerate(zip(keys, weights)):
        if key is None:
            continue
        totals[key] = totals.get(key, 0.0) + float(weight)
        first.setdefault(key, i)
    if not totals:
        return False
    best = max(totals, key=lambda k: (totals[k], -first[k]))
    return bool(correct[first[best]])


def majority(keys: Sequence[Hashable | None], correct: Sequence[bool], scores: Sequence[float] = ()) -> bool:
    return _vote(keys, correct, [1.0] * len(keys))


def weighted(keys: Sequence[Hashable | None], correct: Sequence[bool], scores: Sequence[float]) -> bool:
    return _vote(keys, correct, scores)


def best_of_n(keys: Sequence[Hashable | None], correct: Sequence[bool], scores: Sequence[float]) -> bool:
    answered = [i for i, key in enumerate(keys) if key is not None]
    if not answered:
        return False
    best = max(answered, key=lambda i: (float(scores[i]), -i))
    return bool(correct[best])


def pass_at_n(keys: Sequence[Hashable | None], correct: Sequence[bool], scores: Sequence[float] = ()) -> bool:
    return bool(any(correct))


RULE_FUNCTIONS: dict[str, Rule] = {"majority": majority, "best_of_n": best_of_n, "weighted": weighted,
                                   "pass_at_n": pass_at_n}


def apply(rule: str, keys: Sequence[Hashable | None], correct: Sequence[bool], scores: Sequence[float] = ()) -> bool:
    if rule not in RULE_FUNCTIONS:
        raise ValueError(f"unknown selection rule {rule!r}; valid: {', '.join(RULES)}")
    scores = scores if len(scores) else [0.0] * len(keys)
    return RULE_FUNCTIONS[rule](keys, correct, scores)


def by_n(rule: str, keys: Sequence[Hashable | None], correct: Sequence[bool], scores: Sequence[float] = ()) -> list[bool]:
    """The rule's outcome on the first n samples, for n = 1 .. N."""
    scores = list(scores) if len(scores) else [0.0] * len(keys)
    return [apply(rule, keys[:n], correct[:n], scores[:n]) for n in range(1, len(keys) + 1)]


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` (the probability that a random correct
    sample outscores a random incorrect one; ties count half); nan without both classes."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks of ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
