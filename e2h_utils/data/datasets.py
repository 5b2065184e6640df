"""The paper's four datasets as tidy DataFrames, one row per question.

``load_dataset(name)`` returns, for ``name`` in ``DATASETS``:

- ``id``, ``split`` (upstream config/split), ``question``
- ``choices``: list of answer texts (``["yes", "no"]`` for StrategyQA, empty for GSM8K)
- ``label``: index of the correct choice (``<NA>`` for GSM8K)
- ``answer``: text of the correct answer (GSM8K: the final number, as written after ``####``,
  thousands separators included, as in the authors' data)
- ``reasoning``: StrategyQA facts joined by spaces / GSM8K worked solution before ``####``, as
  the authors keep it (line breaks and ``<<...>>`` calculator annotations included); else missing
- one column per hardness measure (see ``hardness.REGISTRY``) and a ``<measure>_level``
  column (easy / medium / hard / <NA>) for each.
- ARC also has ``arc_annotated`` (the 4,521 rows with all four annotations, the authors' ARC
  data: every paper measure of ARC is defined on them only) and ``mdl_holdout`` (the 1,000 of
  them the authors hold out to train MDL learners, drawn exactly as their code draws them).

The ``parse_*`` functions are pure: upstream records in, tidy rows out. They are what the
unit tests exercise on tiny fixtures.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterable, cast

import numpy as np
import pandas as pd

from e2h_utils.data import hardness, sources

DATASETS = ("arc", "mmlu_stem5", "strategyqa", "gsm8k", "math")

ARC_CONFIGS = ("ARC-Easy", "ARC-Challenge")
ARC_SPLITS = ("train", "validation", "test")
MMLU_STEM5_SUBJECTS = tuple(
    f"{level}_{subject}"
    for subject in ("computer_science", "physics", "mathematics", "chemistry", "biology")
    for level in ("high_school", "college")
)
MMLU_SPLITS = ("validation", "test")
GSM8K_SPLITS = ("train", "test")
GSM8K_MAX_STEPS = 10
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")

DIFFICULTY = {"Low": 1, "Medium": 2, "High": 3}
BLOOM = {"Remembering": 1, "Understanding": 2, "Applying": 3, "Analyzing": 4, "Evaluating": 5}
DEPTH_OF_KNOWLEDGE = {"I": 1, "II": 2, "III": 3}

COLUMNS = ("id", "split", "question", "choices", "label", "answer", "reasoning")

# The authors' MDL hold-out: ``data_utils.write_datasets_with_known_hardness`` draws 1,000 of the
# fully annotated ARC rows with ``np.random.default_rng(seed=0).choice(n, 1000, replace=False)``.
ARC_MDL_HOLDOUT = 1000
ARC_MDL_HOLDOUT_SEED = 0


class UnknownDataset(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


# --- small parsers -----------------------------------------------------------------------

def word_count(text: Any) -> float:
    """Words split on whitespace (line breaks included, as the authors' ``replace('\\n', ' ')``)."""
    return float(len(str(text).split())) if isinstance(text, str) else np.nan


def arc_grade(value: Any) -> float:
    """'Grade 03' -> 3.0; subject names and missing values -> NaN."""
    match = re.fullmatch(r"\s*Grade\s+0*(\d+)\s*", value) if isinstance(value, str) else None
    return float(match.group(1)) if match else np.nan


def _lookup(mapping: dict[str, int], value: Any) -> float:
    return float(mapping[value]) if isinstance(value, str) and value in mapping else np.nan


def gsm8k_final_answer(solution: str) -> str:
    """The answer after '####', as written (stripped; a thousands separator stays, as in the
    authors' data, where such an answer can never match their exact-match rule)."""
    if "####" not in solution:
        raise ValueError(f"GSM8K solution has no '####' final answer: {solution[-80:]!r}")
    return solution.rsplit("####", 1)[1].strip()


def gsm8k_reasoning(solution: str) -> str:
    """The worked solution before '####' as the authors keep it: outer line breaks stripped,
    inner line breaks and ``<<...>>`` calculator annotations kept."""
    return solution.rsplit("####", 1)[0].strip("\n")


def gsm8k_num_lines(solution: str) -> int:
    """Lines of the solution before '####' (blank lines inside count, as in the authors' code)."""
    return len(solution.rsplit("####", 1)[0].strip().split("\n"))


def _add_length_columns(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for column in columns:
        if column == "question_words":
            df[column] = df["question"].map(word_count)
        elif column == "answer_words":
            df[column] = df["answer"].map(word_count)
        elif column == "answer_chars":
            df[column] = df["answer"].map(lambda a: float(len(str(a))))
        elif column == "reasoning_words":
            df[column] = df["reasoning"].map(word_count)
    return df


# --- ARC ---------------------------------------------------------------------------------

def parse_arc(raw: pd.DataFrame, annotations: dict[str, dict[str, str]]) -> pd.DataFrame:
    """ARC rows (columns id, question, choices{text,label}, answerKey, split, config) + annotations.

    Annotation keys are ``ARCCH_<id>`` / ``ARCEZ_<id>``: the ARC id is the key minus its
    first 6 characters.
    """
    by_id = {key[6:]: value for key, value in annotations.items()}
    rows = []
    for rec in raw.drop_duplicates("id").to_dict("records"):
        labels = [str(x) for x in rec["choices"]["label"]]
        texts = [str(x) for x in rec["choices"]["text"]]
        key = str(rec["answerKey"])
        if key not in labels:
            raise ValueError(f"ARC {rec['id']}: answerKey {key!r} not among choice labels {labels}")
        label = labels.index(key)
        note = by_id.get(rec["id"], {})
        rows.append({
            "id": rec["id"],
            "split": f"{rec['config']}/{rec['split']}",
            "question": rec["question"],
            "choices": texts,
            "label": label,
            "answer": texts[label],
            "reasoning": None,
            "arc_challenge": 1.0 if rec["config"] == "ARC-Challenge" else 0.0,
            "grade": arc_grade(note.get("grade")),
            "difficulty": _lookup(DIFFICULTY, note.get("difficulty")),
            "bloom": _lookup(BLOOM, note.get("bloom")),
            "depth_of_knowledge": _lookup(DEPTH_OF_KNOWLEDGE, note.get("depth_of_knowledge")),
        })
    return mark_arc_population(pd.DataFrame(rows))


def mark_arc_population(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``arc_annotated`` (all four annotations present: the authors' ``dropna``) and
    ``mdl_holdout`` (their 1,000-row MDL hold-out, drawn from the annotated rows in upstream
    order: ARC-Easy then ARC-Challenge, train / validation / test)."""
    out = frame.copy()
    annotated = out[["grade", "difficulty", "bloom", "depth_of_knowledge"]].notna().all(axis=1)
    out["arc_annotated"] = annotated
    positions = np.flatnonzero(annotated.to_numpy())
    holdout = np.zeros(len(out), dtype=bool)
    if len(positions) > ARC_MDL_HOLDOUT:
        rng = np.random.default_rng(ARC_MDL_HOLDOUT_SEED)
        holdout[positions[rng.choice(np.arange(len(positions)), size=ARC_MDL_HOLDOUT, replace=False)]] = True
    out["mdl_holdout"] = holdout
    return out


def _load_arc() -> pd.DataFrame:
    parts = []
    for config in ARC_CONFIGS:
        for split in ARC_SPLITS:
            part = sources.load_hub_split(sources.ARC, config, split)
            parts.append(part.assign(config=config, split=split))
    annotations = sources.read_json(sources.ARC_ANNOTATIONS)
    return parse_arc(pd.concat(parts, ignore_index=True), annotations)


# --- MMLU-STEM-5 -------------------------------------------------------------------------

def parse_mmlu(raw: pd.DataFrame) -> pd.DataFrame:
    """MMLU rows (question, subject, choices[4], answer 0-3, split) of the STEM-5 subjects."""
    rows = []
    counters: dict[tuple[str, str], int] = {}
    for rec in raw.to_dict("records"):
        subject = rec["subject"]
        n = counters.get((subject, rec["split"]), 0)
        counters[(subject, rec["split"])] = n + 1
        choices = [str(c) for c in rec["choices"]]
        label = int(rec["answer"])
        rows.append({
            "id": f"{subject}/{rec['split']}/{n}",
            "split": f"{subject}/{rec['split']}",
            "question": rec["question"],
            "choices": choices,
            "label": label,
            "answer": choices[label],
            "reasoning": None,
            "subject": subject,
            "school_level": 1.0 if subject.startswith("college_") else 0.0,
        })
    return pd.DataFrame(rows)


def _load_mmlu_stem5() -> pd.DataFrame:
    parts = []
    for subject in MMLU_STEM5_SUBJECTS:
        for split in MMLU_SPLITS:
            part = sources.load_hub_split(sources.MMLU, subject, split)
            parts.append(part.assign(subject=subject, split=split))
    return parse_mmlu(pd.concat(parts, ignore_index=True))


# --- StrategyQA --------------------------------------------------------------------------

def parse_strategyqa(records: list[dict[str, Any]], split: str) -> pd.DataFrame:
    rows = []
    for rec in records:
        answer = bool(rec["answer"])
        rows.append({
            "id": rec["qid"],
            "split": split,
            "question": rec["question"],
            "choices": ["yes", "no"],
            "label": 0 if answer else 1,
            "answer": "yes" if answer else "no",
            "reasoning": " ".join(rec.get("facts") or []),
            "num_steps": float(len(rec.get("decomposition") or [])),
        })
    return pd.DataFrame(rows)


def _load_strategyqa() -> pd.DataFrame:
    parts = [
        parse_strategyqa(sources.read_json(file), split)
        for file, split in ((sources.STRATEGYQA_TRAIN, "train"), (sources.STRATEGYQA_DEV, "dev"))
    ]
    return pd.concat(parts, ignore_index=True).drop_duplicates("id")


# --- GSM8K -------------------------------------------------------------------------------

def parse_gsm8k(raw: pd.DataFrame) -> pd.DataFrame:
    """GSM8K rows (question, answer = worked solution ending in '#### N', split)."""
    rows = []
    counters: dict[str, int] = {}
    for rec in raw.to_dict("records"):
        n = counters.get(rec["split"], 0)
        counters[rec["split"]] = n + 1
        solution = rec["answer"]
        rows.append({
            "id": f"gsm8k/{rec['split']}/{n}",
            "split": rec["split"],
            "question": rec["question"],
            "choices": [],
            "label": pd.NA,
            "answer": gsm8k_final_answer(solution),
            "reasoning": gsm8k_reasoning(solution),
            "solution": solution,
            "num_steps": float(min(gsm8k_num_lines(solution), GSM8K_MAX_STEPS)),
        })
    return pd.DataFrame(rows)


def _load_gsm8k() -> pd.DataFrame:
    parts = [sources.load_hub_split(sources.GSM8K, "main", split).assign(split=split) for split in GSM8K_SPLITS]
    return parse_gsm8k(pd.concat(parts, ignore_index=True))


# --- MATH -----------------------------------------------------------------------------------

def _math_level(value: Any) -> float:
    match = re.fullmatch(r"Level (\d)", str(value).strip())
    return float(match.group(1)) if match else np.nan  # a few upstream rows say "Level ?"


def parse_math(raw: pd.DataFrame, math500: list[dict[str, Any]]) -> pd.DataFrame:
    """MATH test problems (``raw``: problem, level "Level N", type, solution, and ``subject``, the
    upstream config) with the MATH-500 subset marked (``math500``: Sun et al.'s test set, matched
    by problem text). ``answer``: MATH-500's answer where it has one, else the last ``\\boxed{}`` of
    the solution; ``reasoning``: the solution as written (it ends in its boxed answer)."""
    from e2h_utils.data.math_answers import last_boxed

    subset = {str(rec["problem"]).strip(): rec for rec in math500}
    rows = []
    counters: dict[str, int] = {}
    for rec in raw.to_dict("records"):
        n = counters.get(rec["subject"], 0)
        counters[rec["subject"]] = n + 1
        problem = str(rec["problem"]).strip()
        chosen = subset.get(problem)
        rows.append({
            "id": f"math/{rec['subject']}/{n}",
            "split": "test",
            "question": rec["problem"],
            "choices": [],
            "label": pd.NA,
            "answer": str(chosen["answer"]) if chosen is not None else last_boxed(rec["solution"]),
            "reasoning": rec["solution"],
            "solution": rec["solution"],
            "subject": rec["subject"],
            "level": _math_level(rec["level"]),
            "math500": chosen is not None,
        })
    frame = pd.DataFrame(rows)
    missing = set(subset) - set(frame["question"].str.strip())
    if missing:
        raise ValueError(f"{len(missing)} MATH-500 problems are not among the MATH test problems (e.g. "
                         f"{sorted(missing)[0][:60]!r}): the two sources do not match")
    return frame


def _load_math() -> pd.DataFrame:
    parts = [sources.load_hub_split(sources.MATH, subject, "test").assign(subject=subject) for subject in MATH_SUBJECTS]
    records = sources.read_jsonl(sources.hub_file(sources.MATH500, "test.jsonl"))
    return parse_math(pd.concat(parts, ignore_index=True), records)


# --- what decides reuse -------------------------------------------------------------------


def mirror_files() -> list:
    """Every mirror file the four datasets are read from (empty when ``E2H_MIRROR`` is unset)."""
    if sources.paths.mirror_root() is None:
        return []
    files = [sources.hub_split_path(sources.ARC, c, s) for c in ARC_CONFIGS for s in ARC_SPLITS]
    files += [sources.hub_split_path(sources.MMLU, c, s) for c in MMLU_STEM5_SUBJECTS for s in MMLU_SPLITS]
    files += [sources.hub_split_path(sources.GSM8K, "main", s) for s in GSM8K_SPLITS]
    mirror = cast("Path", sources.paths.mirror_root())  # set: checked above
    files += [mirror / "github" / f.repo / f.path
              for f in (sources.STRATEGYQA_TRAIN, sources.STRATEGYQA_DEV, sources.ARC_ANNOTATIONS)]
    files += [sources.hub_split_path(sources.MATH, subject, "test") for subject in MATH_SUBJECTS]
    files += [mirror / "hf" / sources.MATH500.repo / "test.jsonl"]
    return files


# Rows and columns of every mirror file at the pinned upstream revisions (sources.py): a file with
# other rows (an emptied or truncated split, another release) or without a column the loaders read is
# refused before any notebook starts (``check_mirror``), not read as fewer items or a raw TypeError.
_ARC_ROWS = {("ARC-Easy", "train"): 2251, ("ARC-Easy", "validation"): 570, ("ARC-Easy", "test"): 2376,
             ("ARC-Challenge", "train"): 1119, ("ARC-Challenge", "validation"): 299, ("ARC-Challenge", "test"): 1172}
_MMLU_ROWS = {"high_school_computer_science": (9, 100), "college_computer_science": (11, 100),
              "high_school_physics": (17, 151), "college_physics": (11, 102), "high_school_mathematics": (29, 270),
              "college_mathematics": (11, 100), "high_school_chemistry": (22, 203), "college_chemistry": (8, 100),
              "high_school_biology": (32, 310), "college_biology": (16, 144)}  # (validation, test)
_MATH_ROWS = {"algebra": 1187, "counting_and_probability": 474, "geometry": 479, "intermediate_algebra": 903,
              "number_theory": 540, "prealgebra": 871, "precalculus": 546}


def expected_mirror_files() -> dict[str, tuple[int, tuple[str, ...]]]:
    """Mirror-relative path -> (rows, columns the loaders read) of every file ``mirror_files`` lists."""
    out: dict[str, tuple[int, tuple[str, ...]]] = {}
    for (config, split), rows in _ARC_ROWS.items():
        out[f"hf/{sources.ARC.repo}/{config}/{split}-00000-of-00001.parquet"] = (
            rows, ("id", "question", "choices", "answerKey"))
    for subject, counts in _MMLU_ROWS.items():
        for split, rows in zip(MMLU_SPLITS, counts):
            out[f"hf/{sources.MMLU.repo}/{subject}/{split}-00000-of-00001.parquet"] = (
                rows, ("question", "subject", "choices", "answer"))
    for split, rows in zip(GSM8K_SPLITS, (7473, 1319)):
        out[f"hf/{sources.GSM8K.repo}/main/{split}-00000-of-00001.parquet"] = (rows, ("question", "answer"))
    strategyqa = ("qid", "question", "answer", "decomposition")
    out[f"github/{sources.STRATEGYQA_TRAIN.repo}/{sources.STRATEGYQA_TRAIN.path}"] = (2061, strategyqa)
    out[f"github/{sources.STRATEGYQA_DEV.repo}/{sources.STRATEGYQA_DEV.path}"] = (229, strategyqa)
    out[f"github/{sources.ARC_ANNOTATIONS.repo}/{sources.ARC_ANNOTATIONS.path}"] = (5120, ())
    for subject, rows in _MATH_ROWS.items():
        out[f"hf/{sources.MATH.repo}/{subject}/test-00000-of-00001.parquet"] = (
            rows, ("problem", "level", "type", "solution"))
    out[f"hf/{sources.MATH500.repo}/test.jsonl"] = (500, ("problem", "solution", "answer", "level", "subject"))
    return out


def _rows_and_columns(path: Path) -> tuple[int, set[str]]:
    """(rows, columns) of a mirror file, reading a parquet file's footer only."""
    import json

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows, set(pq.read_schema(path).names)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return len(rows), set(rows[0]) if rows else set()
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):  # the ARC annotations: question id -> annotations
        return len(data), set()
    return len(data), set(data[0]) if data and isinstance(data[0], dict) else set()


def check_mirror() -> list[str]:
    """Problems with the offline mirror (``E2H_MIRROR``), all at once: a file missing, unreadable,
    without a column the loaders read, or with other rows than the pinned upstream revision. Empty
    when every file is as pinned, or when the mirror is not used (online)."""
    mirror = sources.paths.mirror_root()
    if mirror is None:
        return []
    fix = (f"restore it from the mirror's source (the upstream layout; ../shared/offline-mirror/README.md), or "
           f"unset {sources.paths.MIRROR_ENV} to load the pinned revision online")
    expected = expected_mirror_files()
    missing = [rel for rel in expected if not (mirror / rel).is_file()]
    if len(missing) == len(expected):
        return [f"{sources.paths.MIRROR_ENV}={mirror} holds none of the {len(expected)} source files (e.g. "
                f"{mirror / missing[0]}): point it at the offline mirror (export {sources.paths.MIRROR_ENV}="
                f"../shared/offline-mirror from the project root), or unset it to load online"]
    problems = [f"{mirror / rel}: missing; {fix}" for rel in missing]
    for rel, (rows, columns) in expected.items():
        path = mirror / rel
        if rel in missing:
            continue
        try:
            found, names = _rows_and_columns(path)
        except Exception as error:  # noqa: BLE001 - pyarrow and json raise several types for a damaged file
            problems.append(f"{path}: cannot be read ({type(error).__name__}: {error}); {fix}")
            continue
        lacking = [c for c in columns if c not in names]
        if lacking:
            problems.append(f"{path}: no column(s) {', '.join(lacking)} (has {', '.join(sorted(names))}); {fix}")
        elif found != rows:
            problems.append(f"{path}: {found} rows, the pinned upstream revision has {rows} (emptied, truncated or "
                            f"another release); {fix}")
    return problems


CONTENT_COLUMNS = ("id", "question", "choices", "label", "answer", "reasoning")


def content_digest(frame: pd.DataFrame, columns: Iterable[str] = ()) -> str:
    """A short digest of the rows' content (``CONTENT_COLUMNS`` plus ``columns``, those present),
    independent of row order. Stored results are keyed by it, so a changed source file (a mirror
    replaced, a corrupt download) can never be answered with results computed on the old data."""
    names = [c for c in dict.fromkeys([*CONTENT_COLUMNS, *columns]) if c in frame.columns]
    rows = pd.Series("", index=frame.index, dtype=object)
    for name in names:
        rows = rows + "\x1f" + frame[name].map(str).astype(object)
    text = "\x1e".join(sorted(rows.tolist()))
    return hashlib.sha256(("|".join(names) + "\x1d" + text).encode()).hexdigest()[:16]


class Digests:
    """``content_digest`` remembered per frame and columns, for an owner that reads its frames and
    never changes them while it holds them (a runner's dataset frames, a plan's): the keys of many
    runs on one frame cost one digest, not one each (~40 ms for ARC). It keeps every frame it
    digested, so no other frame can take a remembered one's ``id`` while it lives."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, tuple[int, ...], tuple[str, ...]], tuple[pd.DataFrame, str]] = {}

    def __call__(self, frame: pd.DataFrame, columns: Iterable[str] = ()) -> str:
        key = (id(frame), frame.shape, tuple(columns))
        if key not in self._seen:
            self._seen[key] = (frame, content_digest(frame, key[2]))
        return self._seen[key][1]


# --- public entry point ------------------------------------------------------------------

_LOADERS = {
    "arc": _load_arc,
    "mmlu_stem5": _load_mmlu_stem5,
    "strategyqa": _load_strategyqa,
    "gsm8k": _load_gsm8k,
    "math": _load_math,
}


def tidy(df: pd.DataFrame, name: str, extra_measures: pd.DataFrame | None = None) -> pd.DataFrame:
    """Attach length measures, optional extra measure columns (by ``id``) and level columns."""
    df = df.reset_index(drop=True).copy()
    df["label"] = df["label"].astype("Int64")
    lengths = [m.column for m in hardness.measures(name) if m.kind == "length"]
    df = _add_length_columns(df, lengths)
    if extra_measures is not None:
        if "id" not in extra_measures.columns:
            raise ValueError("extra_measures needs an 'id' column to merge on")
        clash = set(extra_measures.columns) & set(df.columns) - {"id"}
        if clash:
            raise ValueError(f"extra_measures would overwrite columns {sorted(clash)}")
        df = df.merge(extra_measures, on="id", how="left", validate="one_to_one")
    return hardness.add_level_columns(df, name)


def load_datasets(names: Iterable[str]) -> dict[str, pd.DataFrame]:
    """name -> ``load_dataset(name)``, each name once, in the order given."""
    return {name: load_dataset(name) for name in dict.fromkeys(names)}


def load_dataset(name: str, extra_measures: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy frame of one dataset (see the module docstring for its columns).

    ``extra_measures``: a frame with ``id`` and further measure columns (e.g. ``mdl``) to
    merge in before levels are assigned.
    """
    if name not in _LOADERS:
        raise UnknownDataset(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return tidy(_LOADERS[name](), name, extra_measures)
