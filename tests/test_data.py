"""e2h_utils.data.datasets: parsers on tiny hand-written records, and the real datasets on the mirror."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from e2h_utils.data import datasets as data
from e2h_utils.data import hardness

# --- ARC ---------------------------------------------------------------------------------


def _arc_raw() -> pd.DataFrame:
    return pd.DataFrame([
        {
            "id": "Mercury_1", "question": "Which is a planet?", "config": "ARC-Easy", "split": "train",
            "choices": {"text": ["Sun", "Moon", "the red planet Mars", "Comet"], "label": ["A", "B", "C", "D"]},
            "answerKey": "C",
        },
        {
            "id": "NYSEDREGENTS_2", "question": "Which of these is a liquid at room temperature?",
            "config": "ARC-Challenge", "split": "test",
            "choices": {"text": ["ice", "liquid water", "steam"], "label": ["1", "2", "3"]},
            "answerKey": "2",
        },
        {
            "id": "MCAS_3", "question": "Which is hot?", "config": "ARC-Challenge", "split": "validation",
            "choices": {"text": ["a camp fire", "snow", "ice", "rain"], "label": ["A", "B", "C", "D"]},
            "answerKey": "A",
        },
        {  # no annotation at all
            "id": "TIMSS_4", "question": "Which of these is a seed?", "config": "ARC-Easy", "split": "test",
            "choices": {"text": ["rock", "an acorn", "sand", "glass"], "label": ["A", "B", "C", "D"]},
            "answerKey": "B",
        },
    ])


_ARC_ANNOTATIONS = {
    "ARCEZ_Mercury_1": {"grade": "Grade 03", "difficulty": "Low", "bloom": "Remembering", "depth_of_knowledge": "I"},
    "ARCCH_NYSEDREGENTS_2": {"grade": "Grade 08", "difficulty": "High", "bloom": "Analyzing",
                             "depth_of_knowledge": "III"},
    "ARCCH_MCAS_3": {"grade": "Earth Science", "difficulty": "Medium", "bloom": "Evaluating",
                     "depth_of_knowledge": "II"},
}


def test_parse_arc_rows_and_labels():
    df = data.parse_arc(_arc_raw(), _ARC_ANNOTATIONS).set_index("id")
    assert list(df.index) == ["Mercury_1", "NYSEDREGENTS_2", "MCAS_3", "TIMSS_4"]
    # answerKey as a letter and as a digit
    assert df.loc["Mercury_1", "label"] == 2 and df.loc["Mercury_1", "answer"] == "the red planet Mars"
    assert df.loc["NYSEDREGENTS_2", "label"] == 1 and df.loc["NYSEDREGENTS_2", "answer"] == "liquid water"
    assert df.loc["NYSEDREGENTS_2", "choices"] == ["ice", "liquid water", "steam"]
    assert df.loc["Mercury_1", "split"] == "ARC-Easy/train"
    assert df.loc["Mercury_1", "arc_challenge"] == 0.0
    assert df.loc["NYSEDREGENTS_2", "arc_challenge"] == 1.0


def test_parse_arc_annotations():
    df = data.parse_arc(_arc_raw(), _ARC_ANNOTATIONS).set_index("id")
    assert df.loc["Mercury_1", "grade"] == 3.0
    assert df.loc["NYSEDREGENTS_2", "grade"] == 8.0
    assert math.isnan(df.loc["MCAS_3", "grade"])  # a subject name, not a grade
    assert df.loc["Mercury_1", "difficulty"] == 1.0
    assert df.loc["MCAS_3", "difficulty"] == 2.0
    assert df.loc["NYSEDREGENTS_2", "difficulty"] == 3.0
    assert df.loc["Mercury_1", "bloom"] == 1.0
    assert df.loc["NYSEDREGENTS_2", "bloom"] == 4.0
    assert df.loc["MCAS_3", "bloom"] == 5.0
    assert df.loc["Mercury_1", "depth_of_knowledge"] == 1.0
    assert df.loc["MCAS_3", "depth_of_knowledge"] == 2.0
    assert df.loc["NYSEDREGENTS_2", "depth_of_knowledge"] == 3.0
    for column in ("grade", "difficulty", "bloom", "depth_of_knowledge"):
        assert math.isnan(df.loc["TIMSS_4", column]), column  # no annotation -> NaN
    # fully annotated: all four present (a subject name instead of a grade does not count)
    assert list(df["arc_annotated"]) == [True, True, False, False]
    assert not df["mdl_holdout"].any()  # fewer than 1,000 annotated rows: no hold-out to draw


def test_mdl_holdout_is_the_authors_draw():
    """1,000 of the annotated rows, drawn as data_utils.py does: default_rng(0).choice(n, 1000)."""
    rows = pd.DataFrame({"grade": [3.0] * 1500 + [np.nan] * 10, "difficulty": 1.0, "bloom": 1.0,
                         "depth_of_knowledge": 1.0})
    out = data.mark_arc_population(rows)
    assert out["arc_annotated"].sum() == 1500 and out["mdl_holdout"].sum() == 1000
    want = np.zeros(1510, dtype=bool)
    want[np.random.default_rng(0).choice(np.arange(1500), size=1000, replace=False)] = True
    np.testing.assert_array_equal(out["mdl_holdout"].to_numpy(), want)


def test_arc_grade_parser():
    assert data.arc_grade("Grade 03") == 3.0
    assert data.arc_grade("Grade 8") == 8.0
    assert math.isnan(data.arc_grade("Life Science"))
    assert math.isnan(data.arc_grade(None))
    assert math.isnan(data.arc_grade(float("nan")))


def test_parse_arc_bad_answer_key():
    raw = _arc_raw().iloc[:1].copy()
    raw.at[0, "answerKey"] = "E"
    with pytest.raises(ValueError, match="answerKey"):
        data.parse_arc(raw, {})


def test_tidy_arc_levels_from_grade():
    df = data.tidy(data.parse_arc(_arc_raw(), _ARC_ANNOTATIONS), "arc").set_index("id")
    assert str(df["label"].dtype) == "Int64"
    assert df.loc["Mercury_1", "grade_level"] == "easy"
    assert df.loc["NYSEDREGENTS_2", "grade_level"] == "hard"
    assert pd.isna(df.loc["MCAS_3", "grade_level"])
    assert df.loc["Mercury_1", "question_words"] == 4.0
    assert df.loc["Mercury_1", "answer_chars"] == float(len("the red planet Mars"))  # characters, as the paper
    assert pd.isna(df.loc["MCAS_3", "question_words_level"])  # not fully annotated: no level


# --- MMLU --------------------------------------------------------------------------------


def test_parse_mmlu():
    raw = pd.DataFrame([
        {"question": "What is a force?", "subject": "high_school_physics",
         "choices": ["a", "a push or pull", "c", "d"], "answer": 1, "split": "test"},
        {"question": "What is mass?", "subject": "high_school_physics",
         "choices": ["e", "f", "g", "an amount of matter"], "answer": 3, "split": "test"},
        {"question": "What is the Lagrangian of a free particle?", "subject": "college_physics",
         "choices": ["kinetic energy", "j", "k", "l"], "answer": 0, "split": "validation"},
    ])
    df = data.parse_mmlu(raw)
    assert list(df["id"]) == ["high_school_physics/test/0", "high_school_physics/test/1",
                              "college_physics/validation/0"]
    assert list(df["school_level"]) == [0.0, 0.0, 1.0]
    assert list(df["label"]) == [1, 3, 0]
    assert list(df["answer"]) == ["a push or pull", "an amount of matter", "kinetic energy"]
    assert df["id"].is_unique
    levels = data.tidy(df, "mmlu_stem5")["school_level_level"]
    assert list(levels) == ["easy", "easy", "hard"]


# --- StrategyQA --------------------------------------------------------------------------


def test_parse_strategyqa():
    records = [
        {"qid": "q1", "question": "Is water wet?", "answer": True, "facts": ["Water is a liquid.", "Liquids wet."],
         "decomposition": ["What is water?", "Is it wet?", "So?"]},
        {"qid": "q2", "question": "Is fire cold?", "answer": False, "facts": ["Fire is hot."],
         "decomposition": ["What is fire?"]},
    ]
    df = data.parse_strategyqa(records, "train").set_index("id")
    assert df.loc["q1", "label"] == 0 and df.loc["q1", "answer"] == "yes"
    assert df.loc["q2", "label"] == 1 and df.loc["q2", "answer"] == "no"
    assert df.loc["q1", "choices"] == ["yes", "no"]
    assert df.loc["q1", "num_steps"] == 3.0
    assert df.loc["q2", "num_steps"] == 1.0
    assert df.loc["q1", "reasoning"] == "Water is a liquid. Liquids wet."
    assert df.loc["q1", "split"] == "train"


# --- GSM8K -------------------------------------------------------------------------------


def test_gsm8k_final_answer():
    # as written: the authors compare against the answer with its thousands separator
    assert data.gsm8k_final_answer("He pays 1000+234=<<1000+234=1234>>1,234.\n#### 1,234") == "1,234"
    assert data.gsm8k_final_answer("x\n#### 72") == "72"
    with pytest.raises(ValueError, match="####"):
        data.gsm8k_final_answer("no final answer here")


def test_parse_gsm8k():
    solution = "Half is 48/2 = <<48/2=24>>24.\n\nThen 2*3=<<2*3=6>>6.\nTotal 1,200\n#### 1,234"
    long = "\n".join(f"step {i}" for i in range(14)) + "\n#### 5"
    raw = pd.DataFrame([
        {"question": "q1", "answer": solution, "split": "train"},
        {"question": "q2", "answer": long, "split": "train"},
        {"question": "q3", "answer": "one line\n#### 7", "split": "test"},
    ])
    df = data.parse_gsm8k(raw)
    assert list(df["id"]) == ["gsm8k/train/0", "gsm8k/train/1", "gsm8k/test/0"]
    assert list(df["answer"]) == ["1,234", "5", "7"]
    # lines before '####', the blank line included; capped at 10
    assert list(df["num_steps"]) == [4.0, 10.0, 1.0]
    # the authors' reasoning: the solution before '####', outer line breaks stripped, the rest kept
    assert df.loc[0, "reasoning"] == "Half is 48/2 = <<48/2=24>>24.\n\nThen 2*3=<<2*3=6>>6.\nTotal 1,200"
    assert df.loc[0, "solution"] == solution
    assert df["choices"].map(len).eq(0).all()
    assert df["label"].isna().all()


def test_parse_gsm8k_without_final_answer_raises():
    raw = pd.DataFrame([{"question": "q", "answer": "no marker", "split": "train"}])
    with pytest.raises(ValueError, match="####"):
        data.parse_gsm8k(raw)


# --- errors and extra measures -----------------------------------------------------------


def test_load_dataset_unknown_name():
    with pytest.raises(data.UnknownDataset) as info:
        data.load_dataset("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in data.DATASETS:
        assert name in message


def test_tidy_with_extra_measures_adds_mdl_level():
    df = data.parse_strategyqa(
        [{"qid": f"q{i}", "question": "word " * (i + 1), "answer": i % 2 == 0, "facts": ["fact"] * (i + 1),
          "decomposition": ["x"] * (i % 5)}
         for i in range(10)],
        "train",
    )
    mdl = pd.DataFrame({"id": [f"q{i}" for i in range(10)], "mdl": [float(i + 1) for i in range(10)]})
    out = data.tidy(df, "strategyqa", extra_measures=mdl).set_index("id")
    assert "mdl_level" in out.columns
    # 30th / 70th percentiles of 1..10 are 3.7 / 7.3
    assert list(out["mdl_level"]) == ["easy"] * 3 + ["medium"] * 4 + ["hard"] * 3
    assert "num_steps_level" in out.columns


def test_tidy_extra_measures_errors():
    df = data.parse_strategyqa([{"qid": "q", "question": "?", "answer": True, "facts": [], "decomposition": []}], "t")
    with pytest.raises(ValueError, match="'id'"):
        data.tidy(df, "strategyqa", extra_measures=pd.DataFrame({"mdl": [1.0]}))
    with pytest.raises(ValueError, match="overwrite"):
        data.tidy(df, "strategyqa", extra_measures=pd.DataFrame({"id": ["q"], "num_steps": [1.0]}))


# --- the real datasets (mirror or network) -----------------------------------------------

_LOADED: dict[tuple[str, str], pd.DataFrame] = {}


@pytest.fixture
def load(mirror):
    """``load(name)``: ``data.load_dataset(name)`` once per dataset and source for the session."""

    def _load(name: str) -> pd.DataFrame:
        key = (name, str(mirror))
        if key not in _LOADED:
            _LOADED[key] = data.load_dataset(name)
        return _LOADED[key].copy()

    return _load


def _check_common(df: pd.DataFrame, name: str) -> None:
    for column in ("id", "question", "choices", "label", "answer"):
        assert column in df.columns, column
    assert df["id"].is_unique
    assert df["question"].map(lambda q: isinstance(q, str) and q.strip() != "").all()
    for measure in hardness.measures(name, include_model_based=False):
        assert measure.level_column in df.columns, measure.level_column
    if name != "gsm8k":
        n_choices = df["choices"].map(len)
        assert (n_choices >= 2).all()
        assert df["label"].notna().all()
        assert ((df["label"] >= 0) & (df["label"] < n_choices)).all()
        assert (df.apply(lambda r: r["choices"][r["label"]], axis=1) == df["answer"]).all()


@pytest.mark.integration
def test_arc_on_mirror(load):
    df = load("arc")
    _check_common(df, "arc")
    assert len(df) == 7787
    assert df["grade"].notna().sum() == 4521
    assert (df["grade"] <= 5).sum() == 1434
    assert (df["grade"] >= 8).sum() == 2032
    assert (df["grade_level"] == "easy").sum() == 1434
    assert (df["grade_level"] == "hard").sum() == 2032
    assert df["grade_level"].notna().sum() == 4521
    # every one of the 5120 annotation keys matched an ARC id
    assert df["difficulty"].notna().sum() == 5120
    assert df["split"].str.split("/").str[0].isin(data.ARC_CONFIGS).all()
    # the authors' ARC data: the 4,521 rows with all four annotations (dropna); every paper measure
    # has levels there only, percentiles included
    assert df["arc_annotated"].sum() == 4521
    assert (df["bloom_level"] == "hard").sum() == 850 and (df["difficulty_level"] == "hard").sum() == 587
    for measure in ("grade", "difficulty", "bloom", "question_words", "answer_chars"):
        assert df.loc[~df["arc_annotated"], f"{measure}_level"].isna().all(), measure
    assert df["arc_split_level"].notna().all()  # not a paper measure: every row
    # their 1,000-row MDL hold-out, drawn from the annotated rows in upstream order
    assert df["mdl_holdout"].sum() == 1000 and not (df["mdl_holdout"] & ~df["arc_annotated"]).any()
    order = [f"{c}/{s}" for c in data.ARC_CONFIGS for s in data.ARC_SPLITS]
    assert df["split"].map(order.index).is_monotonic_increasing


@pytest.mark.integration
def test_mmlu_stem5_on_mirror(load):
    df = load("mmlu_stem5")
    _check_common(df, "mmlu_stem5")
    assert len(df) == 1746
    assert set(df["subject"]) == set(data.MMLU_STEM5_SUBJECTS)
    assert (df["school_level_level"] == "easy").sum() == 1143
    assert (df["school_level_level"] == "hard").sum() == 603
    assert (df["choices"].map(len) == 4).all()


@pytest.mark.integration
def test_strategyqa_on_mirror(load):
    df = load("strategyqa")
    _check_common(df, "strategyqa")
    assert len(df) == 2290
    assert "reasoning" in df.columns and df["reasoning"].map(lambda r: isinstance(r, str)).all()
    assert set(df["answer"]) == {"yes", "no"}
    assert df["num_steps"].notna().all()


@pytest.mark.integration
def test_gsm8k_on_mirror(load):
    df = load("gsm8k")
    _check_common(df, "gsm8k")
    assert len(df) == 8792
    assert (df["num_steps"] >= 7).sum() == 394
    assert (df["num_steps_level"] == "hard").sum() == 394
    assert df["num_steps"].between(1, data.GSM8K_MAX_STEPS).all()
    assert "reasoning" in df.columns
    assert df["reasoning"].str.contains("<<").mean() > 0.9  # calculator annotations kept, as the authors'
    assert df["answer"].str.fullmatch(r"-?[\d.,]+").all()
    assert df["answer"].str.contains(",").sum() == 93  # written with a thousands separator
    assert df["label"].isna().all()


@pytest.mark.integration
def test_extra_measures_on_mirror(load):
    df = load("strategyqa")
    mdl = pd.DataFrame({"id": df["id"], "mdl": range(len(df))})
    out = data.load_dataset("strategyqa", extra_measures=mdl)
    counts = out["mdl_level"].value_counts()
    assert counts["easy"] > 0 and counts["hard"] > 0 and counts.sum() == len(df)


# --- the offline mirror, checked whole before anything runs ----------------------------------------

def test_the_mirror_check_covers_every_file_the_loaders_read(mirror):
    if mirror is None:
        pytest.skip("no offline mirror")
    assert data.check_mirror() == []  # the shared mirror is as pinned
    assert sorted(str(p.relative_to(mirror)) for p in data.mirror_files()) == sorted(data.expected_mirror_files())


def test_a_damaged_mirror_is_named_file_by_file_before_anything_reads_it(mirror, tmp_path, monkeypatch):
    """An emptied split, a renamed column, a missing or unreadable file: each named with its fix,
    all at once; an empty mirror folder is one line saying where to point it."""
    if mirror is None:
        pytest.skip("no offline mirror")
    import shutil

    copy = tmp_path / "mirror"
    expected = data.expected_mirror_files()
    for rel in expected:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).symlink_to(mirror / rel)
    arc = next(rel for rel in expected if "ARC-Challenge/test" in rel)
    gsm8k = next(rel for rel in expected if "gsm8k/main/test" in rel)
    math500 = next(rel for rel in expected if rel.endswith("test.jsonl"))
    mmlu = next(rel for rel in expected if "college_physics/test" in rel)
    (copy / arc).unlink()
    pd.read_parquet(mirror / arc).head(10).to_parquet(copy / arc)  # emptied to 10 rows
    (copy / gsm8k).unlink()
    pd.read_parquet(mirror / gsm8k).rename(columns={"answer": "solution"}).to_parquet(copy / gsm8k)
    (copy / math500).unlink()  # missing
    (copy / mmlu).unlink()
    (copy / mmlu).write_bytes(b"not parquet")
    monkeypatch.setenv("E2H_MIRROR", str(copy))
    problems = data.check_mirror()
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert f"{copy / arc}: 10 rows, the pinned upstream revision has 1172" in text
    assert f"{copy / gsm8k}: no column(s) answer" in text
    assert f"{copy / math500}: missing" in text and f"{copy / mmlu}: cannot be read" in text
    assert all("unset E2H_MIRROR" in p for p in problems)
    shutil.rmtree(copy)
    copy.mkdir()
    (only,) = data.check_mirror()
    assert "holds none of the" in only and "export E2H_MIRROR=../shared/offline-mirror" in only


def test_content_digest_is_order_free_and_digests_remember_it_per_frame(monkeypatch):
    """The digest keys stored results: row order does not change it, content and the columns read do.
    ``Digests`` (a runner's, a plan's) computes it once per frame and columns, and again for a frame
    of another shape or another frame."""
    frame = pd.DataFrame({"id": ["a", "b", "c"], "question": ["q1", "q2", "q3"], "label": [0, 1, 0],
                          "grade": [3.0, float("nan"), 8.0], "choices": [["x", "y"], ["z"], []]})
    digest = data.content_digest(frame, ["grade"])
    assert data.content_digest(frame.iloc[::-1], ["grade"]) == digest
    assert data.content_digest(frame, []) != digest
    assert data.content_digest(frame.assign(label=[1, 1, 0]), ["grade"]) != digest
    calls = []
    real = data.content_digest
    monkeypatch.setattr(data, "content_digest", lambda f, c=(): calls.append(1) or real(f, c))
    digests = data.Digests()
    assert digests(frame, ["grade"]) == digest and digests(frame, ("grade",)) == digest and len(calls) == 1
    assert digests(frame, []) == real(frame, []) and len(calls) == 2
    longer = pd.concat([frame, frame.assign(id=["d", "e", "f"])], ignore_index=True)
    assert digests(longer, ["grade"]) == real(longer, ["grade"]) and len(calls) == 3
    assert digests(frame.copy(), ["grade"]) == digest and len(calls) == 4  # another frame: its own digest
