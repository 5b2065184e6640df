"""RQ1 statistics: how the hardness measures relate to each other and to model accuracy.

- ``measure_columns``: the registered measures of a dataset that have values in a frame;
- ``spearman``: their rank correlations (pairwise-complete, with the number of pairs);
- ``correlations``: every dataset's matrix, its strongest pairs and the tables written of them;
- ``accuracy_by_level``: accuracy per measure and level with bootstrap 95% CIs (``point``,
  ``lo``, ``hi``, as in the result table); the zero-shot scores it reads come from
  ``experiments.mdl.zero_shot_items`` (``zero_shot_by_level`` does both, on the items MDL scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from e2h_utils.analysis import metrics
from e2h_utils.data import hardness
from e2h_utils.engine.models import LoadedModel
from e2h_utils.experiments import mdl


def measure_columns(frame: pd.DataFrame, dataset: str, extra: Sequence[str] = ()) -> dict[str, str]:
    """{measure name: column} for the dataset's measures with at least two distinct values,
    plus ``extra`` columns (e.g. per-learner MDL) under their own names."""
    out = {}
    for measure in hardness.measures(dataset):
        if measure.column in frame.columns and pd.to_numeric(frame[measure.column], errors="coerce").nunique() > 1:
            out[measure.name] = measure.column
    for column in extra:
        if column in frame.columns and column not in out.values():
            out[column] = column
    return out


def spearman(frame: pd.DataFrame, columns: dict[str, str], min_pairs: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Spearman correlation matrix, number of complete pairs) between the named columns.
    Each pair uses the rows where both have values; fewer than ``min_pairs`` gives NaN."""
    values = pd.DataFrame({name: pd.to_numeric(frame[col], errors="coerce") for name, col in columns.items()})
    names = list(columns)
    rho = pd.DataFrame(np.nan, index=names, columns=names)
    pairs = pd.DataFrame(0, index=names, columns=names)
    for a in names:
        for b in names:
            both = values[a].notna() & values[b].notna()
            pairs.loc[a, b] = int(both.sum())
            if both.sum() >= min_pairs:
                x, y = values.loc[both, a].rank(), values.loc[both, b].rank()  # average ranks of ties
                if x.std() > 0 and y.std() > 0:
                    rho.loc[a, b] = float(np.corrcoef(x, y)[0, 1])
    return rho, pairs


@dataclass(frozen=True)
class Correlations:
    """Each dataset's Spearman matrix between its measures, and the number of items behind each pair."""

    matrices: dict[str, pd.DataFrame]  # dataset -> rho
    pairs: dict[str, pd.DataFrame]  # dataset -> complete pairs

    def strongest(self, top: int = 3) -> pd.DataFrame:
        """The ``top`` pairs of each dataset by |rho|."""
        parts = [strongest_pairs(rho, self.pairs[dataset], top=top).assign(dataset=dataset)
                 for dataset, rho in self.matrices.items()]
        columns = ["dataset", "measure a", "measure b", "rho", "items"]
        return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)

    def tables(self) -> dict[str, pd.DataFrame]:
        """``spearman_<dataset>``: each matrix, rounded, with the measure as its first column."""
        return {f"spearman_{dataset}": rho.round(3).reset_index(names="measure")
                for dataset, rho in self.matrices.items()}


def correlations(frames: Mapping[str, pd.DataFrame], datasets: Sequence[str]) -> Correlations:
    """The Spearman correlations between the measures of each dataset (``measure_columns``)."""
    matrices, pairs = {}, {}
    for dataset in datasets:
        matrices[dataset], pairs[dataset] = spearman(frames[dataset], measure_columns(frames[dataset], dataset))
    return Correlations(matrices, pairs)


def zero_shot_by_level(lm: LoadedModel, frames: Mapping[str, pd.DataFrame], scored: Mapping[str, pd.DataFrame], *,
                       n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Zero-shot accuracy by level of every measure (``accuracy_by_level``), on the items of each
    dataset that MDL scored (``scored``: dataset -> ``experiments.mdl.mdl_scores``; the zero-shot
    scores are stored and reused, ``mdl.zero_shot_items``). Empty when MDL scored nothing."""
    parts = []
    for dataset, scores in scored.items():
        frame = frames[dataset]
        zero = mdl.zero_shot_items(lm, frame[frame["id"].isin(scores["id"])], dataset)
        parts.append(accuracy_by_level(frame, zero, dataset, list(measure_columns(frame, dataset)),
                                       n_boot=n_boot, seed=seed))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def accuracy_by_level(frame: pd.DataFrame, correct: pd.DataFrame, dataset: str, measures: Sequence[str], *,
                      n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Accuracy (with a bootstrap 95% CI over items) per measure and easy / medium / hard level.

    ``correct``: ``item_id`` and ``correct`` (e.g. from ``experiments.mdl.zero_shot_items``); ``frame`` holds
    the measures' columns (levels are assigned over the whole frame, as in the experiments).
    """
    by_id = correct.set_index("item_id")["correct"]
    rows = []
    for name in measures:
        measure = hardness.get_measure(dataset, name)
        levels = hardness.assign_levels(frame, measure)
        for level in hardness.LEVELS:
            ids = frame.loc[levels == level, "id"]
            values = by_id.reindex(ids).dropna().to_numpy(dtype=float)
            if values.size == 0:
                continue
            replicates = metrics.bootstrap_accuracies({"run": values[None, :]}, n_boot=n_boot, seed=seed)["run"]
            estimate = metrics.estimate_from_replicates(float(values.mean()), replicates)
            rows.append({"dataset": dataset, "measure": name, "level": level, "point": estimate.point,
                         "lo": estimate.lo, "hi": estimate.hi, "n": int(values.size)})
    return pd.DataFrame(rows, columns=["dataset", "measure", "level", "point", "lo", "hi", "n"])


def level_counts_of(frames: Mapping[str, pd.DataFrame], datasets: Sequence[str]) -> pd.DataFrame:
    """``level_counts`` of each dataset, in one table."""
    return pd.concat([level_counts(frames[dataset], dataset) for dataset in datasets], ignore_index=True)


def level_counts(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Items per easy / medium / hard level under every measure of ``dataset`` present in ``frame``."""
    rows = []
    for measure in hardness.measures(dataset):
        if measure.column not in frame.columns:
            continue
        counts = hardness.assign_levels(frame, measure).value_counts()
        rows.append({"dataset": dataset, "measure": measure.name, "kind": measure.kind,
                     **{level: int(counts.get(level, 0)) for level in hardness.LEVELS},
                     "no value": int(frame[measure.column].isna().sum())})
    return pd.DataFrame(rows)


def strongest_pairs(rho: pd.DataFrame, pairs: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """The ``top`` measure pairs by |Spearman rho| (each pair once), with their number of items."""
    rows = []
    names = list(rho.index)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if np.isfinite(rho.loc[a, b]):
                rows.append({"measure a": a, "measure b": b, "rho": float(rho.loc[a, b]),
                             "items": int(pairs.loc[a, b])})
    table = pd.DataFrame(rows, columns=["measure a", "measure b", "rho", "items"])
    return table.reindex(table["rho"].abs().sort_values(ascending=False).index).head(top).reset_index(drop=True)


def abs_correlations(rho: pd.DataFrame) -> np.ndarray:
    """|rho| of each distinct measure pair of a correlation matrix (NaN pairs left out)."""
    values = rho.to_numpy(dtype=float)
    upper = values[np.triu_indices(len(values), k=1)]
    return np.abs(upper[np.isfinite(upper)])


def median_abs_correlation(rho: pd.DataFrame) -> float:
    """Median |rho| over the distinct measure pairs (NaN pairs left out; NaN when none)."""
    upper = abs_correlations(rho)
    return float(np.median(upper)) if upper.size else float("nan")


def easy_vs_hard(by_level: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and measure: accuracy on easy and on hard items, and whether hard items are
    clearly harder (the hard CI lies entirely below the easy CI)."""
    rows = []
    for (dataset, measure), part in by_level.groupby(["dataset", "measure"], sort=False):
        levels = part.set_index("level")
        if not {"easy", "hard"} <= set(levels.index):
            continue
        easy, hard = levels.loc["easy"], levels.loc["hard"]
        rows.append({"dataset": dataset, "measure": measure, "easy": easy["point"], "hard": hard["point"],
                     "clearly harder": bool(hard["hi"] < easy["lo"]), "n easy": int(easy["n"]),
                     "n hard": int(hard["n"])})
    return pd.DataFrame(rows, columns=["dataset", "measure", "easy", "hard", "clearly harder", "n easy", "n hard"])
