"""e2h_utils.data.hardness: the registry and the easy / medium / hard assignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2h_utils.data import datasets as data
from e2h_utils.data import hardness


def _levels(values, measure) -> list:
    out = hardness.levels_from_values(pd.Series(values), measure)
    return [None if pd.isna(v) else v for v in out]


def test_fixed_cutoffs_arc_grade():
    grade = hardness.get_measure("arc", "grade")
    assert _levels([3, 4, 5, 6, 7, 8, np.nan], grade) == ["easy", "easy", "easy", "medium", "medium", "hard", None]


def test_levels_dtype_is_ordered_categorical():
    out = hardness.levels_from_values(pd.Series([5.0, np.nan]), hardness.get_measure("arc", "grade"))
    assert out.dtype == hardness.LEVEL_DTYPE
    assert list(out.cat.categories) == ["easy", "medium", "hard"]
    assert out.isna().tolist() == [False, True]


def test_percentile_cutoffs_known_vector():
    measure = hardness.Measure("toy", "m", "m", "toy", percentiles=(30, 70))
    values = pd.Series([float(v) for v in range(1, 11)])
    easy, hard = measure.cutoffs(values)
    assert easy == pytest.approx(3.7)
    assert hard == pytest.approx(7.3)
    assert _levels(values, measure) == ["easy"] * 3 + ["medium"] * 4 + ["hard"] * 3


def test_percentile_cutoffs_ignore_missing():
    measure = hardness.Measure("toy", "m", "m", "toy", percentiles=(30, 70))
    values = [np.nan] + [float(v) for v in range(1, 11)] + [None]
    assert _levels(values, measure) == [None] + ["easy"] * 3 + ["medium"] * 4 + ["hard"] * 3 + [None]


def test_lower_is_harder_flips():
    measure = hardness.Measure("toy", "m", "m", "toy", percentiles=(30, 70), higher_is_harder=False)
    values = pd.Series([float(v) for v in range(1, 11)])
    easy, hard = measure.cutoffs(values)
    assert easy == pytest.approx(7.3) and hard == pytest.approx(3.7)
    assert _levels(values, measure) == ["hard"] * 3 + ["medium"] * 4 + ["easy"] * 3

    fixed = hardness.Measure("toy", "f", "f", "toy", easy_max=8, hard_min=5, higher_is_harder=False)
    assert _levels([9, 8, 7, 5, 4], fixed) == ["easy", "easy", "medium", "hard", "hard"]


def test_measure_needs_one_kind_of_cutoff():
    with pytest.raises(ValueError, match="either"):
        hardness.Measure("toy", "m", "m", "toy")
    with pytest.raises(ValueError, match="either"):
        hardness.Measure("toy", "m", "m", "toy", easy_max=1, hard_min=2, percentiles=(30, 70))


def test_percentiles_of_nothing_raise():
    measure = hardness.Measure("toy", "m", "m", "toy", percentiles=(30, 70))
    with pytest.raises(ValueError, match="no values"):
        measure.cutoffs(pd.Series([np.nan, np.nan]))


def test_get_measure_unknown_name_lists_valid():
    with pytest.raises(hardness.UnknownMeasure) as info:
        hardness.get_measure("arc", "shoe_size")
    message = str(info.value)
    assert "'shoe_size'" in message
    for measure in hardness.measures("arc"):
        assert measure.name in message


def test_unknown_dataset_lists_datasets():
    with pytest.raises(hardness.UnknownMeasure) as info:
        hardness.measures("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in data.DATASETS:
        assert name in message
    with pytest.raises(hardness.UnknownMeasure, match="valid datasets"):
        hardness.get_measure("nope", "grade")


def test_registry_covers_every_dataset():
    assert {m.dataset for m in hardness.REGISTRY} == set(data.DATASETS)
    keys = [m.key for m in hardness.REGISTRY]
    assert len(keys) == len(set(keys))
    for name in data.DATASETS:
        assert all(m.kind != "model" for m in hardness.measures(name, include_model_based=False))
    for name in ("arc", "mmlu_stem5", "strategyqa"):  # the authors' MDL (ZS prompt) on every MC dataset
        assert hardness.get_measure(name, "mdl").kind == "model"
    assert [m.name for m in hardness.measures("arc") if m.kind == "model"] == ["mdl", "mdl_probe", "mdl_qlora"]
    with pytest.raises(hardness.UnknownMeasure):  # no GSM8K MDL (docs/fidelity.md)
        hardness.get_measure("gsm8k", "mdl")


def test_answer_length_is_in_characters_as_in_the_paper():
    for name in ("arc", "mmlu_stem5", "gsm8k"):
        names = [m.name for m in hardness.measures(name)]
        assert "answer_chars" in names and "answer_words" not in names


def test_arc_measures_apply_to_fully_annotated_rows_only():
    """The authors' ARC data is the rows with all four annotations (data_utils.py:415, dropna);
    the ARC-Easy / Challenge measure (not in the paper) keeps every row."""
    for measure in hardness.measures("arc"):
        want = None if measure.name == "arc_split" else hardness.ARC_POPULATION
        assert measure.population == want, measure.name
    assert not hardness.get_measure("arc", "depth_of_knowledge").in_paper
    df = pd.DataFrame({"id": list("abcdef"), "question_words": [1.0, 2, 3, 4, 5, 100],
                       "arc_annotated": [True, True, True, True, True, False]})
    levels = hardness.assign_levels(df, hardness.get_measure("arc", "question_words"))
    # percentiles over the five annotated rows (1..5), and no level for the other
    assert list(levels[:5]) == ["easy", "easy", "medium", "hard", "hard"] and pd.isna(levels.iloc[5])
    with pytest.raises(hardness.MissingHardnessColumn, match="arc_annotated"):
        hardness.assign_levels(df.drop(columns="arc_annotated"), hardness.get_measure("arc", "question_words"))


def test_missing_column_for_mdl_hints_at_mdl():
    df = pd.DataFrame({"id": ["a", "b"], "grade": [3.0, 8.0]})
    with pytest.raises(hardness.MissingHardnessColumn) as info:
        hardness.assign_levels(df, hardness.get_measure("arc", "mdl"))
    message = str(info.value)
    assert "'mdl'" in message and "MDL" in message and "extra_measures" in message
    assert isinstance(info.value, KeyError)


def test_missing_column_for_annotation():
    with pytest.raises(hardness.MissingHardnessColumn, match="load_dataset"):
        hardness.assign_levels(pd.DataFrame({"id": ["a"]}), hardness.get_measure("arc", "grade"))


def test_add_level_columns_only_for_present_columns():
    df = pd.DataFrame({"id": ["a", "b", "c"], "grade": [5.0, 6.0, 8.0], "arc_annotated": True})
    out = hardness.add_level_columns(df, "arc")
    assert list(out["grade_level"]) == ["easy", "medium", "hard"]
    assert "mdl_level" not in out.columns and "bloom_level" not in out.columns
    assert "grade_level" not in df.columns  # the input is left alone
