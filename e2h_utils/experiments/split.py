"""The project's paired split: under one hardness measure, every level is shuffled once and cut
into a training pool and held-out test items.

Every level (easy / medium / hard) of a measure is shuffled once with a fixed seed
(``TestSelection.split_seed``, salted by the measure) and cut into a training pool and held-out
test items (``test_fraction``, 0.5 by default). A run trains on the pool of its training level
(``"all"``: every pool) and is scored on the held-out test items of the test levels, each kept
with its level, so accuracy can be read per level and the hard test items are the same (paired)
across training conditions and seeds. The authors instead draw each seed's training items from
the whole level and test on everything else (``data_utils.py::stratified_test_sampling``), so
each condition has its own test set. What pairing costs: the test sets are about half the
authors' (the other half is the pool), so CIs are about sqrt(2) wider than theirs on the same
data; what it buys: the easy, hard and unsupervised accuracies are differences on identical items
(docs/fidelity.md). Small profiles cap the test items per level; the cap takes a prefix of the same
fixed order, so a larger cap tests a superset.

Cross-fitting (``TestSelection.cross_fit``) keeps the pairing and gives back the other half: each
level's shuffle is cut into K = 1 / test_fraction folds (an item's fold is its rank modulo K), every
item up to the cap is a test item, and each seed trains K times, once per fold, on the training
level without that fold, scoring that fold's test items. Every item is then scored once per
condition and seed by a run that never saw it, as in the authors' "test on everything else", and
the conditions still share their test items. Without cross-fitting the test items are fold 0 and
the pool is fold -1, so one code path serves both.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from e2h_utils.data import hardness
from e2h_utils.experiments.spec import ExperimentSpec, TestSelection


def split_roles(frame: pd.DataFrame, measure: hardness.Measure, test: TestSelection) -> pd.DataFrame:
    """Per row: ``level``, ``role`` (train / test / <NA>), ``order`` (rank in its level's shuffle)
    and ``fold`` (the training run that scores it: 0 ... K - 1; -1: a pool item, never scored)."""
    levels = hardness.assign_levels(frame, measure)
    out = pd.DataFrame({"level": levels, "role": pd.Series(pd.NA, index=frame.index, dtype=object),
                        "order": -1, "fold": -1}, index=frame.index)
    rng = np.random.default_rng([test.split_seed, zlib.crc32(measure.key.encode())])
    if test.fixed is not None and test.fixed not in frame.columns:
        raise KeyError(f"the fixed test set column {test.fixed!r} is not in the frame")
    for level in hardness.LEVELS:
        index = frame.index[levels == level]
        shuffled = index[rng.permutation(len(index))]
        out.loc[shuffled, "order"] = np.arange(len(index))
        if test.fixed is not None:  # a fixed test set: its rows (in the shuffled order), the rest the pool
            fixed = frame.loc[shuffled, test.fixed].astype(bool).to_numpy()
            test_rows, pool_rows = shuffled[fixed], shuffled[~fixed]
            out.loc[test_rows, "order"] = np.arange(len(test_rows))  # caps take a prefix of the test rows
            out.loc[pool_rows, "order"] = len(test_rows) + np.arange(len(pool_rows))
        elif test.cross_fit:  # every row is scored, by the run of its fold
            test_rows, pool_rows = shuffled, shuffled[:0]
            out.loc[shuffled, "fold"] = np.arange(len(index)) % test.folds
        else:
            n_test = int(round(test.test_fraction * len(index)))
            test_rows, pool_rows = shuffled[:n_test], shuffled[n_test:]
        if not test.cross_fit:
            out.loc[test_rows, "fold"] = 0
        out.loc[test_rows, "role"] = "test"
        out.loc[pool_rows, "role"] = "train"
    return out


def test_items(frame: pd.DataFrame, roles: pd.DataFrame, test: TestSelection) -> pd.DataFrame:
    chosen = roles[(roles["role"] == "test") & roles["level"].isin(test.levels)]
    if test.max_per_level is not None:
        chosen = chosen[chosen["order"] < test.max_per_level]
    chosen = chosen.sort_values(["level", "order"])
    return frame.loc[chosen.index].assign(level=chosen["level"].astype(str))


def offered(roles: pd.DataFrame) -> dict[str, int]:
    """Per level: the test items it offers, before any cap (under cross-fitting every item of the level,
    under the paired split its held-out part): the most test items a larger cap could buy."""
    counts = roles.loc[roles["role"] == "test", "level"].value_counts()
    return {str(level): int(n) for level, n in counts.items()}


def training_pool(frame: pd.DataFrame, roles: pd.DataFrame, train_level: str, fold: int = 0) -> pd.DataFrame:
    """The items the run of ``fold`` may train on: the training level's rows outside that fold (under
    the paired split, its pool)."""
    if train_level == "none":
        return frame.iloc[:0]
    train = roles[roles["level"].notna() & (roles["fold"] != fold)]
    if train_level != "all":
        train = train[train["level"] == train_level]
    return frame.loc[train.sort_values(["level", "order"]).index]


def fold_rows(test: pd.DataFrame, roles: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The test items (``test_items``) scored by the run of ``fold``."""
    return test[roles.loc[test.index, "fold"].to_numpy() == fold]


@dataclass(frozen=True)
class Fold:
    """One training run of a seed: its number (0 ... K - 1, kept when other folds hold no test
    items, so a fold's adapter key never moves), the test items it scores, its training pool."""
    index: int
    test: pd.DataFrame
    pool: pd.DataFrame


def spec_pool(spec: ExperimentSpec, frame: pd.DataFrame, roles: pd.DataFrame, fold: int = 0,
              source_frame: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """(the items ``fold``'s run of ``spec`` may train on, where they come from): its training level
    outside the fold, or the items of its ``train_source`` (read from ``source_frame``) less those the
    fold scores when the source is the run's own dataset."""
    source = spec.train_source
    if source is None:
        return (training_pool(frame, roles, spec.train_level, fold),
                f"level {spec.train_level!r} of {spec.dataset}/{spec.measure}")
    if source_frame is None:
        raise ValueError(f"{spec.describe()} trains on {source.label}: give that dataset's frame")
    pool = source.select(source_frame)
    if source.dataset == spec.dataset:  # every item the run scores leaves the pool
        pool = pool[~pool["id"].isin(frame.loc[roles["fold"] == fold, "id"])]
    return pool, source.label


def folds(spec: ExperimentSpec, frame: pd.DataFrame, roles: pd.DataFrame, test: pd.DataFrame,
          source_frame: pd.DataFrame | None = None) -> list[Fold]:
    """The training runs of a seed of ``spec``, each with the test items it scores and its pool: one
    per fold that holds test items when the method trains (cross-fitting: K folds), else one."""
    if not spec.method.trains:  # nothing to keep apart: one scoring pass, no pool
        return [Fold(0, test, test.iloc[:0])]
    every = [Fold(k, fold_rows(test, roles, k), spec_pool(spec, frame, roles, k, source_frame)[0])
             for k in range(spec.test.folds)]
    return [fold for fold in every if not fold.test.empty] or [Fold(0, test, every[0].pool)]


def pool_size(frame: pd.DataFrame, spec: ExperimentSpec, source_frame: pd.DataFrame | None = None,
              roles: pd.DataFrame | None = None) -> tuple[int, str]:
    """(how many training items the spec's pool offers under its split, where they come from): pure;
    the smallest fold's pool under cross-fitting (``spec_pool``; ``roles``: ``split_roles``, if known)."""
    if roles is None:
        roles = split_roles(frame, hardness.get_measure(spec.dataset, spec.measure), spec.test)
    return min((len(pool), where) for pool, where in
               (spec_pool(spec, frame, roles, k, source_frame) for k in range(spec.test.folds)))


def held_out_ids(frame: pd.DataFrame, spec: ExperimentSpec) -> list[str]:
    """The ids of the spec's test items, in the order they are scored (pure)."""
    measure = hardness.get_measure(spec.dataset, spec.measure)
    return list(test_items(frame, split_roles(frame, measure, spec.test), spec.test)["id"])

