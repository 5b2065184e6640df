"""The registry of hardness measures and the easy / medium / hard assignment.

Each measure names its dataset, the DataFrame column holding its value, its direction and
the paper's cut-offs: either fixed (``easy_max`` / ``hard_min``) or percentiles of the
measure over the dataset (``percentiles=(30, 70)``: easy at or below the 30th percentile,
hard at or above the 70th). Rows whose value is missing get no level (``<NA>``) and never
count as easy or hard for that measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVELS = ("easy", "medium", "hard")
LEVEL_DTYPE = pd.CategoricalDtype(list(LEVELS), ordered=True)


@dataclass(frozen=True)
class Measure:
    dataset: str
    name: str
    column: str
    description: str
    easy_max: float | None = None
    hard_min: float | None = None
    percentiles: tuple[float, float] | None = None
    higher_is_harder: bool = True
    kind: str = "annotation"  # annotation | structure | length | model
    in_paper: bool = True

    def __post_init__(self) -> None:
        fixed = self.easy_max is not None and self.hard_min is not None
        if fixed == (self.percentiles is not None):
            raise ValueError(f"measure {self.key}: give either easy_max/hard_min or percentiles")

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.name}"

    @property
    def level_column(self) -> str:
        return f"{self.name}_level"

    def cutoffs(self, values: pd.Series) -> tuple[float, float]:
        """(easy bound, hard bound) in the measure's own units, for these values."""
        if self.percentiles is None:
            return float(self.easy_max), float(self.hard_min)
        finite = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
        if finite.size == 0:
            raise ValueError(f"measure {self.key}: no values to take percentiles of")
        low, high = self.percentiles
        if not self.higher_is_harder:
            low, high = 100 - low, 100 - high
        return float(np.percentile(finite, low)), float(np.percentile(finite, high))


class UnknownMeasure(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class MissingHardnessColumn(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


_PCT = (30.0, 70.0)


def _length_measures(dataset: str, columns: tuple[str, ...]) -> list[Measure]:
    text = {
        "question_words": "words in the question",
        "answer_words": "words in the correct answer",
        "answer_chars": "characters in the final answer",
        "reasoning_words": "words in the reasoning (StrategyQA facts, GSM8K solution)",
    }
    return [
        Measure(dataset, col, col, text[col], percentiles=_PCT, kind="length") for col in columns
    ]


def _mdl(dataset: str) -> Measure:
    return Measure(
        dataset,
        "mdl",
        "mdl",
        "model-based minimum description length (1 - mean confidence of learners on growing subsets)",
        percentiles=_PCT,
        kind="model",
    )


REGISTRY: tuple[Measure, ...] = (
    # ARC: the authors' annotations
    Measure("arc", "grade", "grade", "school grade 3-8", easy_max=5, hard_min=8),
    Measure("arc", "difficulty", "difficulty", "Low/Medium/High -> 1/2/3", easy_max=1, hard_min=3),
    Measure("arc", "bloom", "bloom", "Bloom's taxonomy level 1-5", easy_max=2, hard_min=4),
    Measure("arc", "depth_of_knowledge", "depth_of_knowledge", "Webb's depth of knowledge I-III",
            easy_max=1, hard_min=3),
    Measure("arc", "arc_split", "arc_challenge", "ARC-Easy (0) vs ARC-Challenge (1)",
            easy_max=0, hard_min=1, kind="structure", in_paper=False),
    *_length_measures("arc", ("question_words", "answer_words")),
    _mdl("arc"),
    # MMLU-STEM-5
    Measure("mmlu_stem5", "school_level", "school_level", "high school (0) vs college (1)",
            easy_max=0, hard_min=1, kind="structure"),
    *_length_measures("mmlu_stem5", ("question_words", "answer_words")),
    _mdl("mmlu_stem5"),
    # StrategyQA
    Measure("strategyqa", "num_steps", "num_steps", "steps in the question decomposition",
            easy_max=2, hard_min=4, kind="structure"),
    *_length_measures("strategyqa", ("question_words", "reasoning_words")),
    _mdl("strategyqa"),
    # GSM8K
    Measure("gsm8k", "num_steps", "num_steps", "solution lines before '####', capped at 10",
            easy_max=4, hard_min=7, kind="structure"),
    *_length_measures("gsm8k", ("question_words", "answer_chars", "reasoning_words")),
    _mdl("gsm8k"),
)


def measures(dataset: str | None = None, *, include_model_based: bool = True) -> list[Measure]:
    """Registered measures, optionally of one dataset."""
    found = [m for m in REGISTRY if dataset is None or m.dataset == dataset]
    if dataset is not None and not found:
        datasets = sorted({m.dataset for m in REGISTRY})
        raise UnknownMeasure(f"unknown dataset {dataset!r}; valid datasets: {', '.join(datasets)}")
    return [m for m in found if include_model_based or m.kind != "model"]


def get_measure(dataset: str, name: str) -> Measure:
    for measure in measures(dataset):
        if measure.name == name:
            return measure
    valid = ", ".join(m.name for m in measures(dataset))
    raise UnknownMeasure(f"unknown hardness measure {name!r} for {dataset!r}; valid measures: {valid}")


def levels_from_values(values: pd.Series, measure: Measure) -> pd.Series:
    """easy / medium / hard for each value (``<NA>`` where the value is missing)."""
    numeric = pd.to_numeric(values, errors="coerce").astype(float)
    easy_bound, hard_bound = measure.cutoffs(numeric)
    if measure.higher_is_harder:
        easy, hard = numeric <= easy_bound, numeric >= hard_bound
    else:
        easy, hard = numeric >= easy_bound, numeric <= hard_bound
    both = easy & hard  # only with heavily tied percentile values: such rows are neither
    easy, hard = easy & ~both, hard & ~both
    out = pd.Series(pd.NA, index=values.index, dtype=object)
    present = numeric.notna()
    out[present] = "medium"
    out[present & easy] = "easy"
    out[present & hard] = "hard"
    return out.astype(LEVEL_DTYPE)


def assign_levels(df: pd.DataFrame, measure: Measure) -> pd.Series:
    """Levels of every row of a dataset frame under one measure."""
    if measure.column not in df.columns:
        hint = (
            "model-based (MDL) scores are computed by the hardness-measures notebook and merged "
            "in with e2h_utils.data.load_dataset(..., extra_measures=...)"
            if measure.kind == "model"
            else "load the frame with e2h_utils.data.load_dataset"
        )
        raise MissingHardnessColumn(f"column {measure.column!r} of measure {measure.key} is not in the frame; {hint}")
    return levels_from_values(df[measure.column], measure)


def add_level_columns(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """A copy of ``df`` with a ``<measure>_level`` column for every measure whose values it has."""
    out = df.copy()
    for measure in measures(dataset):
        if measure.column in out.columns:
            out[measure.level_column] = assign_levels(out, measure)
    return out
