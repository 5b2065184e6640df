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

``outcomes`` applies a rule to every problem of a sample table (``methods.sampling``) and, for the
evaluator rules, every seed of an evaluator's scores: ``{n: correct[seed, problem]}``, the matrices
the paired bootstrap reads (``analysis.evaluator_table``). ``auroc_replicates``: the evaluator's
AUROC and its bootstrap over problems and seeds.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np
import pandas as pd

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


def by_n(rule: str, keys: Sequence[Hashable | None], correct: Sequence[bool],
         scores: Sequence[float] = ()) -> list[bool]:
    """The rule's outcome on the first n samples, for n = 1 .. N."""
    scores = list(scores) if len(scores) else [0.0] * len(keys)
    return [apply(rule, keys[:n], correct[:n], scores[:n]) for n in range(1, len(keys) + 1)]


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray,
          weights: Sequence[float] | None = None) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` (the probability that a random correct
    sample outscores a random incorrect one; ties count half), each sample counted ``weights`` times
    (a bootstrap's draw counts); nan without both classes."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=float)
    values, group = np.unique(scores, return_inverse=True)
    return _grouped_auroc(group, len(values), labels, w)


def _grouped_auroc(group: np.ndarray, n_groups: int, labels: np.ndarray, weights: np.ndarray) -> float:
    """AUROC from each sample's score rank group (ascending, ties shared), label and weight."""
    pos = np.bincount(group, weights=weights * labels, minlength=n_groups)
    neg = np.bincount(group, weights=weights * ~labels, minlength=n_groups)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])  # negatives scored strictly lower
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


# --- from sample and score tables to outcome matrices -------------------------------------------

def sample_ns(n_max: int) -> list[int]:
    """The numbers of samples a by-N curve reads: every n up to 16, then powers of two, and N."""
    if n_max <= 16:
        return list(range(1, n_max + 1))
    ns = list(range(1, 9)) + [2 ** p for p in range(4, 20) if 2 ** p < n_max]
    return sorted(set(ns + [n_max]))


def _problems(samples: pd.DataFrame) -> tuple[list[str], list[tuple[list[Hashable | None], list[bool], np.ndarray]]]:
    """Problems (sorted ids) and, per problem in sample order: vote keys (None: no answer),
    correctness, and the row positions of its samples in ``samples``."""
    ordered = samples.reset_index(drop=True)
    out, ids = [], []
    for item_id, part in ordered.sort_values(["item_id", "sample"]).groupby("item_id", sort=True):
        ids.append(str(item_id))
        keys: list[Hashable | None] = [None if int(k) < 0 else int(k) for k in part["vote_key"]]
        out.append((keys, [bool(c) for c in part["correct"]], part.index.to_numpy()))
    return ids, out


def outcomes(samples: pd.DataFrame, rule: str, ns: Sequence[int],
             scores: pd.DataFrame | None = None) -> dict[int, np.ndarray]:
    """``{n: correct[seed, problem]}``: whether ``rule`` picks a correct answer from the first n
    samples of each problem (problems sorted by id). Rules without an evaluator (majority,
    pass@N) have one row; evaluator rules one row per seed of ``scores`` (``item_id``, ``sample``,
    ``score``, ``seed``), which must score every sample."""
    if rule not in RULE_FUNCTIONS:
        raise ValueError(f"unknown selection rule {rule!r}; valid: {', '.join(RULES)}")
    ids, problems = _problems(samples)
    n_max = int(samples.groupby("item_id")["sample"].count().min())
    if max(ns) > n_max:
        raise ValueError(f"a problem has only {n_max} samples; cannot read n = {max(ns)}")
    if scores is None or rule in ("majority", "pass_at_n"):
        per_seed = [np.zeros(len(samples))]
    else:
        indexed = samples.reset_index(drop=True)[["item_id", "sample"]]
        per_seed = []
        for _, part in scores.groupby("seed", sort=True):
            merged = indexed.merge(part[["item_id", "sample", "score"]], on=["item_id", "sample"], how="left")
            if merged["score"].isna().any():
                raise ValueError("the evaluator's scores do not cover every sample")
            per_seed.append(merged["score"].to_numpy(dtype=float))
    function = RULE_FUNCTIONS[rule]
    out = {int(n): np.zeros((len(per_seed), len(ids))) for n in ns}
    for s, values in enumerate(per_seed):
        for p, (keys, correct, rows) in enumerate(problems):
            sample_scores = values[rows]
            for n in ns:
                out[int(n)][s, p] = float(function(keys[:n], correct[:n], sample_scores[:n]))
    return out


def auroc_replicates(samples: pd.DataFrame, scores: pd.DataFrame, n_boot: int,
                     seed: int = 0) -> tuple[float, np.ndarray]:
    """(the evaluator's AUROC, its bootstrap replicates): the AUROC of each seed's scores over every
    sample, averaged over seeds (seeds' scores are never ranked against each other); a replicate
    resamples problems with all their samples (the same draw for every seed) and seeds, as the
    accuracies' bootstrap. A replicate whose draw holds one class only is nan (dropped from the CI)."""
    merged = samples[["item_id", "sample", "correct"]].merge(scores[["item_id", "sample", "score", "seed"]],
                                                             on=["item_id", "sample"])
    problem_ids, problem = np.unique(merged["item_id"].astype(str), return_inverse=True)
    seed_ids = np.unique(merged["seed"])
    values: np.ndarray | list[float]  # a seed's distinct scores, then a replicate's AUROC per seed
    per_seed = []
    for s in seed_ids:
        rows = (merged["seed"] == s).to_numpy()
        values, group = np.unique(merged.loc[rows, "score"].to_numpy(dtype=float), return_inverse=True)
        per_seed.append((group, len(values), merged.loc[rows, "correct"].to_numpy(dtype=float) > 0.5, problem[rows]))
    point = float(np.mean([_grouped_auroc(g, n, lab, np.ones(len(lab))) for g, n, lab, _ in per_seed]))
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        problem_w = np.bincount(rng.integers(0, len(problem_ids), len(problem_ids)), minlength=len(problem_ids))
        seed_w = np.bincount(rng.integers(0, len(seed_ids), len(seed_ids)), minlength=len(seed_ids))
        values = [_grouped_auroc(g, n, lab, problem_w[p].astype(float)) for (g, n, lab, p), w in zip(per_seed, seed_w)
                  if w]
        weights = [w for w in seed_w if w]
        replicates[b] = float(np.average(values, weights=weights)) if not np.isnan(values).any() else np.nan
    return point, replicates
