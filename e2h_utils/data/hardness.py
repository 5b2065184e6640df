"""The registry of hardness measures and the easy / medium / hard assignment.

Each measure names its dataset, the DataFrame column holding its value, its direction and
the paper's cut-offs: either fixed (``easy_max`` / ``hard_min``) or percentiles of the
measure over the dataset (``percentiles=(30, 70)``: easy at or below the 30th percentile,
hard at or above the 70th). Rows whose value is missing get no level (``<NA>``) and never
count as easy or hard for that measure.

A measure may also name a ``population``: a boolean column of the frame that says which rows
the measure applies to. Only those rows get a level, and percentiles are taken over them. ARC
uses it to follow the authors: their ARC data is the 4,521 rows with all four annotations
(``data_utils.py:415``, ``dropna``), so every paper measure of ARC, the length measures
included, is defined on those rows only; the rest of ARC stays in the frame (the ARC-Easy /
Challenge measure uses it).

``LEVELS_VERSION`` is part of every stored result's key: bump it whenever a change here or in
``data`` moves an item from one level to another, so that no result computed on the old split
is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

LEVELS = ("easy", "medium", "hard")
LEVELS_VERSION = 2  # 2: ARC measures on the fully annotated rows; answer length in characters
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
    population: str | None = None  # boolean column: the rows the measure applies to (None: all)

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
        if self.percentiles is None:  # then both bounds are set (__post_init__)
            return float(cast(float, self.easy_max)), float(cast(float, self.hard_min))
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


def _length_measures(dataset: str, columns: tuple[str, ...], population: str | None = None) -> list[Measure]:
    text = {
        "question_words": "words in the question",
        "answer_words": "words in the correct answer",
        "answer_chars": "characters in the final answer",
        "reasoning_words": "words in the reasoning (StrategyQA facts, GSM8K / MATH solution)",
    }
    return [
        Measure(dataset, col, col, text[col], percentiles=_PCT, kind="length", population=population)
        for col in columns
    ]


ARC_POPULATION = "arc_annotated"  # ARC rows with all four annotations (the authors' 4,521)


def _mdl(dataset: str, name: str = "mdl", learner: str = "zero_shot", population: str | None = None) -> Measure:
    """A model-based (MDL) measure; its column is filled by ``e2h_utils.experiments.mdl`` (merged in with
    ``data.load_dataset(..., extra_measures=...)``)."""
    text = {
        "zero_shot": "MDL (ZS prompt): 1 - zero-shot confidence in the correct answer, averaged over hardness models",
        "probe": "MDL (linear probe): 1 - confidence of probes trained on nested subsets (5..900) of the MDL hold-out",
        "qlora": "MDL (QLoRA): 1 - confidence of QLoRA models trained on nested subsets (5..900) of the MDL hold-out",
    }
    return Measure(dataset, name, name, text[learner], percentiles=_PCT, kind="model", population=population)


REGISTRY: tuple[Measure, ...] = (
    # ARC: the authors' annotations, on the rows that have all four of them
    Measure("arc", "grade", "grade", "school grade 3-8", easy_max=5, hard_min=8, population=ARC_POPULATION),
    Measure("arc", "difficulty", "difficulty", "Low/Medium/High -> 1/2/3", easy_max=1, hard_min=3,
            population=ARC_POPULATION),
    Measure("arc", "bloom", "bloom", "Bloom's taxonomy level 1-5", easy_max=2, hard_min=4,
            population=ARC_POPULATION),
    Measure("arc", "depth_of_knowledge", "depth_of_knowledge", "Webb's depth of knowledge I-III",
            easy_max=1, hard_min=3, in_paper=False, population=ARC_POPULATION),
    Measure("arc", "arc_split", "arc_challenge", "ARC-Easy (0) vs ARC-Challenge (1)",
            easy_max=0, hard_min=1, kind="structure", in_paper=False),
    *_length_measures("arc", ("question_words", "answer_chars"), population=ARC_POPULATION),
    _mdl("arc", population=ARC_POPULATION),
    _mdl("arc", "mdl_probe", "probe", population=ARC_POPULATION),
    _mdl("arc", "mdl_qlora", "qlora", population=ARC_POPULATION),
    # MMLU-STEM-5
    Measure("mmlu_stem5", "school_level", "school_level", "high school (0) vs college (1)",
            easy_max=0, hard_min=1, kind="structure"),
    *_length_measures("mmlu_stem5", ("question_words", "answer_chars")),
    _mdl("mmlu_stem5"),
    # StrategyQA
    Measure("strategyqa", "num_steps", "num_steps", "steps in the question decomposition",
            easy_max=2, hard_min=4, kind="structure"),
    *_length_measures("strategyqa", ("question_words", "reasoning_words")),
    _mdl("strategyqa"),
    # GSM8K (no MDL: see the fidelity ledger)
    Measure("gsm8k", "num_steps", "num_steps", "solution lines before '####', capped at 10",
            easy_max=4, hard_min=7, kind="structure"),
    *_length_measures("gsm8k", ("question_words", "answer_chars", "reasoning_words")),
    # MATH (Sun et al. 2024's easy-to-hard evaluators): levels 1-3 easy, 4-5 hard, as theirs
    Measure("math", "level", "level", "MATH difficulty level 1-5 (Hendrycks et al.)", easy_max=3, hard_min=4,
            in_paper=False),
    *_length_measures("math", ("question_words", "reasoning_words")),
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
    """Levels of every row of a dataset frame under one measure (``<NA>`` outside its population)."""
    if measure.column not in df.columns:
        hint = (
            "model-based (MDL) scores are computed by the hardness-measures notebook and merged "
            "in with e2h_utils.data.datasets.load_dataset(..., extra_measures=...)"
            if measure.kind == "model"
            else "load the frame with e2h_utils.data.datasets.load_dataset"
        )
        raise MissingHardnessColumn(f"column {measure.column!r} of measure {measure.key} is not in the frame; {hint}")
    values = df[measure.column]
    if measure.population is not None:
        if measure.population not in df.columns:
            raise MissingHardnessColumn(f"column {measure.population!r} (the rows measure {measure.key} applies to) "
                                        "is not in the frame; load the frame with e2h_utils.data.datasets.load_dataset")
        values = values.where(df[measure.population].fillna(False).astype(bool))
    return levels_from_values(values, measure)


def add_level_columns(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """A copy of ``df`` with a ``<measure>_level`` column for every measure whose values it has."""
    out = df.copy()
    for measure in measures(dataset):
        if measure.column in out.columns:
            out[measure.level_column] = assign_levels(out, measure)
    return out
