"""e2h_utils.experiments: typed specs, the split, the runner and its store, the result table.

A small synthetic ARC-like frame (in-vocabulary words of the tiny tokenizer, grades 3-8) goes
through ``data.tidy`` and is scored with the tiny random Llama of ``conftest``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from e2h_utils.analysis import estimates
from e2h_utils.data import datasets as data
from e2h_utils.data import hardness
from e2h_utils.engine.scoring import SCORER_VERSION
from e2h_utils.experiments import plans, store as results
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, Training, key_payload
from e2h_utils.experiments.spec import TestSelection as Selection  # renamed: pytest collects Test* / test_*
from e2h_utils.experiments.split import fold_rows, offered, split_roles, training_pool
from e2h_utils.experiments.split import test_items as select_test_items
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods import runners
from e2h_utils.methods.base import CoT, ICL, MethodError, Probe, ZeroShot, build, kinds
from e2h_utils.methods.probe import ProbeConfig

NOUNS = ["sun", "moon", "rock", "tree", "water", "fire", "ice", "sand", "seed", "leaf", "cloud", "rain",
         "snow", "wind", "plant", "animal", "cell", "soil", "star", "planet", "apple", "dog", "cat", "bird"]
ADJECTIVES = ["big", "small", "hot", "cold", "fast", "slow", "tall", "long", "short", "warm", "cool", "high"]
N_ROWS = 60
N_NAN = 4  # rows without a grade (no level, no role)


def make_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(N_ROWS + N_NAN):
        choices = [str(w) for w in rng.choice(NOUNS, size=4, replace=False)]
        label = int(rng.integers(4))
        n_words = int(rng.integers(0, 6))
        extra = " ".join(str(w) for w in rng.choice(ADJECTIVES, size=n_words))
        rows.append({
            "id": f"arc-{i:03d}",
            "split": "test",
            "question": f"which one is {extra} ?".replace("  ", " "),
            "choices": choices,
            "label": label,
            "answer": choices[label],
            "reasoning": None,
            "grade": float(3 + i % 6) if i < N_ROWS else np.nan,
        })
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # ids not in row order
    # every row with a grade counts as fully annotated; the last 12 of them are the MDL hold-out
    frame["arc_annotated"] = frame["grade"].notna()
    frame["mdl_holdout"] = frame["id"].isin([f"arc-{i:03d}" for i in range(N_ROWS - 12, N_ROWS)])
    return data.tidy(frame, "arc")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def measure() -> hardness.Measure:
    return hardness.get_measure("arc", "grade")


def spec_for(lm, train_level: str, method=None, **kwargs) -> ExperimentSpec:
    """An ARC grade spec: ICL(3) (or ``method``) trained on ``train_level`` ("none": zero-shot)."""
    method = method or ICL(3)
    kwargs.setdefault("seeds", (0, 1))
    kwargs.setdefault("test", Selection(test_fraction=0.5, max_per_level=4))
    if train_level == "none":
        return ExperimentSpec("arc", "grade", method.baseline(), None, model=lm.spec.name, **kwargs)
    return ExperimentSpec("arc", "grade", method, Training(train_level), model=lm.spec.name, **kwargs)


def run(lm, spec, frame, store):
    return Runner(lm, store=store, frames={"arc": frame}, progress=False).run(spec)


def test_frame_is_in_vocabulary(frame, tiny_lm):
    tokenizer = tiny_lm.tokenizer
    text = " ".join(frame["question"]) + " " + " ".join(w for c in frame["choices"] for w in c)
    assert tokenizer.unk_token_id not in tokenizer(text, add_special_tokens=False).input_ids
    assert frame["grade_level"].value_counts().to_dict() == {"easy": 30, "medium": 20, "hard": 10}
    assert frame["grade_level"].isna().sum() == N_NAN


# --- specs -------------------------------------------------------------------------------


def test_spec_unknown_dataset_lists_valid():
    with pytest.raises(SpecError) as info:
        ExperimentSpec("arcc", "grade", ICL(3), Training("easy"))
    for name in data.DATASETS:
        assert name in str(info.value)


def test_spec_unknown_measure_lists_valid():
    with pytest.raises(SpecError) as info:
        ExperimentSpec("arc", "grades", ICL(3), Training("easy"))
    message = str(info.value)
    assert "'grades'" in message
    for m in hardness.measures("arc"):
        assert m.name in message


def test_spec_unknown_pool_and_method_list_valid():
    with pytest.raises(SpecError) as info:
        Training("trivial")
    for level in ("easy", "medium", "hard", "all"):
        assert level in str(info.value)
    with pytest.raises(MethodError) as info:
        build("sft", 3)
    for kind in kinds():
        assert kind in str(info.value)
    with pytest.raises(SpecError, match="typed method"):
        ExperimentSpec("arc", "grade", "icl", Training("easy"))  # a string is not a method


def test_spec_other_errors():
    with pytest.raises(MethodError):
        ICL(0)
    with pytest.raises(MethodError):
        Probe(-1)
    with pytest.raises(SpecError):
        ExperimentSpec("arc", "grade", ICL(3), Training("easy"), seeds=())
    with pytest.raises(SpecError, match="chain of thought"):
        ExperimentSpec("gsm8k", "num_steps", ICL(3), Training("easy"))
    with pytest.raises(SpecError, match="valid formats"):
        ExperimentSpec("arc", "grade", ICL(3), Training("easy"), prompt_format="nope")
    with pytest.raises(SpecError, match="trains"):
        ExperimentSpec("arc", "grade", ICL(3), None)  # a training method without training data
    with pytest.raises(SpecError, match="does not train"):
        ExperimentSpec("arc", "grade", ZeroShot(), Training("easy"))
    with pytest.raises(SpecError, match="label noise"):
        ExperimentSpec("gsm8k", "num_steps", CoT(ICL(2)), Training("easy", label_noise=0.1))
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(SpecError):
            Selection(test_fraction=bad)
    with pytest.raises(SpecError):
        Selection(max_per_level=0)


def test_spec_seeds_normalised():
    spec = ExperimentSpec("arc", "grade", ICL(3), Training("easy"), seeds=[np.int64(2), 3])
    assert spec.seeds == (2, 3) and all(type(s) is int for s in spec.seeds)
    assert spec.run_seeds == (2, 3)


def test_run_seeds_zero_shot():
    assert ExperimentSpec("arc", "grade", ZeroShot(), seeds=(4, 5)).run_seeds == (0,)
    assert ExperimentSpec("gsm8k", "num_steps", CoT(ZeroShot()), seeds=(4, 5)).run_seeds == (0,)


def test_canonical_form():
    a = ExperimentSpec("arc", "grade", ICL(10), Training("easy"), seeds=(0, 1))
    b = ExperimentSpec("arc", "grade", ICL(10), Training("easy"), seeds=(7,))
    canonical = a.canonical()
    assert "seeds" not in canonical and canonical == b.canonical()
    assert canonical["scorer_version"] == SCORER_VERSION
    assert ExperimentSpec("arc", "grade", ICL(10), Training("hard")).canonical() != canonical
    assert (ExperimentSpec("arc", "grade", ICL(10), Training("easy"), test=Selection(split_seed=1)).canonical()
            != canonical)
    zero = ExperimentSpec("arc", "grade", ZeroShot(), seeds=(3,)).canonical()
    assert zero["train_level"] == "none" and zero["n_train"] == 0 and zero["method"] == "zero_shot"


def test_the_stored_form_of_the_first_layout_is_kept():
    """Field names and values of the stored form are those results were first keyed by: stored
    results keep their keys (the key of every run of the smoke, embedded and paper profiles was
    checked equal to the one the string-typed specs gave)."""
    spec = ExperimentSpec("arc", "grade", ICL(10), Training("easy"),
                          test=Selection(max_per_level=150, levels=("hard",)))
    assert spec.canonical() == {
        "dataset": "arc", "measure": "grade", "train_level": "easy", "method": "icl", "n_train": 10,
        "model": "embedded", "test": {"test_fraction": 0.5, "max_per_level": 150, "split_seed": 0, "levels": ("hard",)},
        "prompt_format": None, "max_length": None, "options": (), "prompt_tokenization": "joint",
        "scorer_version": SCORER_VERSION, "levels_version": hardness.LEVELS_VERSION}
    cot = ExperimentSpec("gsm8k", "num_steps", CoT(ZeroShot())).canonical()
    assert cot["method"] == "zero_shot_cot" and cot["options"] == (
        ("max_new_tokens", 300), ("baseline", "authors"), ("extraction", "strict"))
    noisy = ExperimentSpec("arc", "grade", Probe(160), Training("hard", 0.2)).canonical()
    assert noisy["label_noise"] == 0.2 and noisy["train_version"] == Probe(1).train_version()
    assert dict(noisy["options"])["l2"] == 1.0 and "layers" in dict(noisy["options"])


def test_one_experiment_written_two_ways_has_one_key():
    """The key is the run's meaning: defaults merged, execution settings left out."""
    def key(kind, **options):
        method = build(kind, 20, options)
        return results.spec_key(ExperimentSpec("arc", "grade", method, Training("easy")).canonical())

    assert key("probe") == key("probe", epochs=100) == key("probe", epochs=100, lr=0.05)  # the defaults, written out
    assert key("probe") == results.spec_key(ExperimentSpec("arc", "grade", Probe(20, ProbeConfig()),
                                                           Training("easy")).canonical())  # typed, in Python
    assert key("probe", epochs=5) != key("probe")  # a real change of recipe
    assert key("qlora", target_modules=["q_proj", "v_proj"]) == key("qlora")  # a YAML list is the default tuple
    assert key("qlora", lr=1e-3) != key("qlora")
    with pytest.raises(MethodError, match="run settings"):  # execution settings are not method options
        build("qlora", 20, {"micro_batch": 2})

    def cot(**options):
        return results.spec_key(ExperimentSpec("gsm8k", "num_steps", build("icl_cot", 4, options),
                                               Training("easy")).canonical())

    assert cot() == cot(max_new_tokens=300)  # 300: GSM8K's default length, resolved
    assert cot(max_new_tokens=50) != cot() and cot(extraction="lenient") != cot()


# --- splitting ---------------------------------------------------------------------------


def test_split_roles(frame, measure):
    selection = Selection(test_fraction=0.3)
    roles = split_roles(frame, measure, selection)
    assert list(roles.index) == list(frame.index)
    leveled = roles["level"].notna()
    assert leveled.sum() == N_ROWS
    assert roles.loc[leveled, "role"].isin(["train", "test"]).all()
    assert roles.loc[~leveled, "role"].isna().all()
    assert (roles.loc[~leveled, "order"] == -1).all()
    for level, n in {"easy": 30, "medium": 20, "hard": 10}.items():
        sub = roles[roles["level"] == level]
        assert len(sub) == n
        assert (sub["role"] == "test").sum() == round(0.3 * n)
        assert sorted(sub["order"]) == list(range(n))
        # the test rows are the first of the level's shuffled order
        assert set(sub.loc[sub["role"] == "test", "order"]) == set(range(round(0.3 * n)))
    pd.testing.assert_frame_equal(roles, split_roles(frame, measure, selection))
    other = split_roles(frame, measure, Selection(test_fraction=0.3, split_seed=1))
    assert set(other.index[other["role"] == "test"]) != set(roles.index[roles["role"] == "test"])


def test_train_and_test_disjoint(frame, measure):
    roles = split_roles(frame, measure, Selection())
    test = select_test_items(frame, roles, Selection())
    pool = training_pool(frame, roles, "all")
    assert not set(test["id"]) & set(pool["id"])
    assert len(test) + len(pool) == N_ROWS
    assert test["level"].value_counts().to_dict() == {"easy": 15, "medium": 10, "hard": 5}
    assert (test["level"] == test["grade_level"].astype(str)).all()


def test_test_items_cap_is_nested(frame, measure):
    roles = split_roles(frame, measure, Selection())
    three = select_test_items(frame, roles, Selection(max_per_level=3))
    five = select_test_items(frame, roles, Selection(max_per_level=5))
    everything = select_test_items(frame, roles, Selection())
    assert three["level"].value_counts().to_dict() == {"easy": 3, "medium": 3, "hard": 3}
    assert five["level"].value_counts().to_dict() == {"easy": 5, "medium": 5, "hard": 5}
    assert set(three["id"]) < set(five["id"]) < set(everything["id"])
    # sorted by level (easy, medium, hard), then by the fixed order
    assert list(three["level"]) == ["easy"] * 3 + ["medium"] * 3 + ["hard"] * 3
    assert list(five["id"][five["level"] == "hard"])[:3] == list(three["id"][three["level"] == "hard"])


def test_training_pool(frame, measure):
    roles = split_roles(frame, measure, Selection())
    train = roles[roles["role"] == "train"]
    easy = training_pool(frame, roles, "easy")
    assert len(easy) == 15
    assert (easy["grade_level"] == "easy").all()
    assert set(easy.index) == set(train.index[train["level"] == "easy"])
    assert set(training_pool(frame, roles, "hard").index) == set(train.index[train["level"] == "hard"])
    assert set(training_pool(frame, roles, "all").index) == set(train.index)
    none = training_pool(frame, roles, "none")
    assert none.empty and list(none.columns) == list(frame.columns)


# --- running -----------------------------------------------------------------------------

RESULT_COLUMNS = {"item_id", "level", "seed", "probs", "pred", "correct", "n_shots"}


def test_run_experiment(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "easy")
    out = run(tiny_lm, spec, frame, store)
    assert RESULT_COLUMNS <= set(out.columns)
    assert len(out) == 2 * 12  # 2 seeds x (4 test items per level x 3 levels)
    assert sorted(out["seed"].unique()) == [0, 1]
    for seed, part in out.groupby("seed"):
        assert part["item_id"].is_unique and len(part) == 12
        assert part["level"].value_counts().to_dict() == {"easy": 4, "medium": 4, "hard": 4}
    assert (out["n_shots"] == 3).all()
    by_id = frame.set_index("id")
    for row in out.to_dict("records"):
        probs = np.asarray(row["probs"])
        assert probs.shape == (4,) and probs.sum() == pytest.approx(1.0)
        assert row["pred"] == int(np.argmax(probs))
        assert row["correct"] == float(row["pred"] == by_id.loc[row["item_id"], "label"])
        assert row["level"] == by_id.loc[row["item_id"], "grade_level"]
        examples = list(row["example_ids"])
        assert len(examples) == 3
        assert (by_id.loc[examples, "grade_level"] == "easy").all()
        assert row["item_id"] not in examples
    seed_examples = {s: tuple(p["example_ids"].iloc[0]) for s, p in out.groupby("seed")}
    assert seed_examples[0] != seed_examples[1]  # a fresh draw per seed
    assert (out["train_level"] == "easy").all() and (out["model"] == tiny_lm.spec.name).all()
    assert (tmp_path / "arc" / "icl").is_dir()
    files = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    assert files == ["seed-0.parquet", "seed-1.parquet"]
    assert len(list(tmp_path.rglob("spec.json"))) == 1


def test_run_experiment_zero_shot_single_seed(tiny_lm, frame, tmp_path):
    out = run(tiny_lm, spec_for(tiny_lm, "none", seeds=(3, 4, 5)), frame, ResultStore(tmp_path))
    assert list(out["seed"].unique()) == [0]
    assert (out["n_shots"] == 0).all()
    assert all(len(ids) == 0 for ids in out["example_ids"])


def test_same_test_items_across_conditions(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    outs = {level: run(tiny_lm, spec_for(tiny_lm, level), frame, store) for level in ("none", "easy", "hard")}
    hard_ids = {level: set(out.loc[out["level"] == "hard", "item_id"]) for level, out in outs.items()}
    assert hard_ids["none"] == hard_ids["easy"] == hard_ids["hard"]
    assert len(hard_ids["none"]) == 4
    by_id = frame.set_index("id")
    examples = {i for ids in outs["hard"]["example_ids"] for i in ids}
    assert (by_id.loc[sorted(examples), "grade_level"] == "hard").all()


def test_second_call_reuses_stored_files(tiny_lm, frame, tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "easy")
    first = run(tiny_lm, spec, frame, store)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a stored seed")

    monkeypatch.setitem(runners.RUNNERS, ICL, boom)
    second = run(tiny_lm, spec, frame, store)
    assert list(second.columns) == list(first.columns)
    pd.testing.assert_frame_equal(second.drop(columns=["probs", "logprobs", "example_ids"]),
                                  first.drop(columns=["probs", "logprobs", "example_ids"]))
    for column in ("probs", "logprobs", "example_ids"):
        for a, b in zip(first[column], second[column]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_second_call_returns_identical_frame(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "easy", seeds=(0,))
    first = run(tiny_lm, spec, frame, store)
    second = run(tiny_lm, spec, frame, store)
    assert type(first["probs"].iloc[0]) is type(second["probs"].iloc[0])
    pd.testing.assert_frame_equal(first, second)


def test_corrupt_stored_file(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "easy", seeds=(0,))
    run(tiny_lm, spec, frame, store)
    path = store.path(key_payload(spec, tiny_lm.identity, frame), 0)
    assert path.is_file()
    path.write_bytes(b"this is not a parquet file")
    with pytest.raises(results.CorruptResult) as info:
        run(tiny_lm, spec, frame, store)
    assert str(path) in str(info.value)


def test_a_stored_result_edited_into_a_valid_file_is_an_error_not_a_result(tiny_lm, frame, tmp_path):
    """Each seed file has its SHA-256 beside it: flipping one ``correct`` value and writing the parquet
    again (it still reads) is refused on the next load, naming the file; a file stored before digests
    existed is taken as it is and given one; a result stored again is readable again."""
    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "easy", seeds=(0,))
    first = run(tiny_lm, spec, frame, store)
    path = store.path(key_payload(spec, tiny_lm.identity, frame), 0)
    digest = path.with_suffix(".sha256")
    assert digest.is_file()
    stored = pd.read_parquet(path)
    flipped = stored["correct"].astype(bool)
    flipped.iloc[0] = not flipped.iloc[0]
    stored["correct"] = flipped.astype(stored["correct"].dtype)
    stored.to_parquet(path, index=False)
    with pytest.raises(results.CorruptResult) as info:
        run(tiny_lm, spec, frame, store)
    assert str(path) in str(info.value) and "changed after it was stored" in str(info.value)
    digest.unlink()  # as stored before digests were written: taken as it is, and given a digest
    again = run(tiny_lm, spec, frame, store)
    assert bool(again["correct"].iloc[0]) != bool(first["correct"].iloc[0]) and digest.is_file()
    path.unlink()
    digest.unlink()
    pd.testing.assert_frame_equal(run(tiny_lm, spec, frame, store), first)  # recomputed and stored again


def test_adding_a_seed_computes_only_it(tiny_lm, frame, tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    first = run(tiny_lm, spec_for(tiny_lm, "easy", seeds=(0,)), frame, store)
    computed = []
    real = runners.RUNNERS[ICL]

    def spy(method, job):
        computed.append(job.seed)
        return real(method, job)

    monkeypatch.setitem(runners.RUNNERS, ICL, spy)
    both = run(tiny_lm, spec_for(tiny_lm, "easy", seeds=(0, 2)), frame, store)
    assert computed == [2]
    assert sorted(both["seed"].unique()) == [0, 2]
    np.testing.assert_array_equal(both.loc[both["seed"] == 0, "correct"].to_numpy(), first["correct"].to_numpy())
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == ["seed-0.parquet", "seed-2.parquet"]


def test_run_is_reproducible_across_stores(tiny_lm, frame, tmp_path):
    spec = spec_for(tiny_lm, "hard", seeds=(1,))
    a = run(tiny_lm, spec, frame, ResultStore(tmp_path / "a"))
    b = run(tiny_lm, spec, frame, ResultStore(tmp_path / "b"))
    pd.testing.assert_frame_equal(a, b)


def test_max_length_drops_examples(tiny_lm, frame, tmp_path):
    out = run(tiny_lm, spec_for(tiny_lm, "all", max_length=48, seeds=(0,)), frame, ResultStore(tmp_path))
    assert out["n_shots"].nunique() == 1
    assert out["n_shots"].iloc[0] < 3
    assert all(len(ids) == out["n_shots"].iloc[0] for ids in out["example_ids"])


def test_run_rejects_other_model_and_empty_pool(tiny_lm, frame, tmp_path):
    spec = ExperimentSpec("arc", "grade", ICL(3), Training("easy"), model="embedded")
    with pytest.raises(SpecError, match="model"):
        run(tiny_lm, spec, frame, ResultStore(tmp_path))
    # 10 hard rows, 0.99 held out: round(9.9) = 10 test rows and no hard training pool
    empty = spec_for(tiny_lm, "hard", test=Selection(test_fraction=0.99))
    with pytest.raises(SpecError, match="hard"):
        run(tiny_lm, empty, frame, ResultStore(tmp_path))
    # too small a pool: run_all names every such run before running any
    runner = Runner(tiny_lm, store=ResultStore(tmp_path), frames={"arc": frame}, progress=False)
    big = spec_for(tiny_lm, "hard", method=ICL(6))  # 5 hard training items
    with pytest.raises(SpecError, match="nothing was run") as info:
        runner.run_all([spec_for(tiny_lm, "easy", seeds=(9,)), big])
    assert "only 5" in str(info.value) and not list(tmp_path.rglob("seed-9.parquet"))


# --- reading results ---------------------------------------------------------------------


def _synthetic_results(ids, seeds, rng, level="hard"):
    return pd.DataFrame([
        {"item_id": i, "level": level, "seed": s, "correct": float(rng.random() < 0.5)} for s in seeds for i in ids
    ])


def test_correct_matrix_synthetic():
    rng = np.random.default_rng(0)
    ids = ["c", "a", "b"]
    frame = pd.concat([_synthetic_results(ids, [0, 1], rng), _synthetic_results(["z"], [0, 1], rng, "easy")])
    matrix, item_ids = estimates.correct_matrix(frame)
    assert item_ids == ["a", "b", "c"]
    assert matrix.shape == (2, 3)
    for s in (0, 1):
        for j, i in enumerate(item_ids):
            want = frame.loc[(frame["seed"] == s) & (frame["item_id"] == i) & (frame["level"] == "hard"), "correct"]
            assert matrix[s, j] == want.item()
    with pytest.raises(ValueError, match="medium"):
        estimates.correct_matrix(frame, "medium")
    assert estimates.correct_matrix(frame, None)[0].shape == (2, 4)
    with pytest.raises(ValueError, match="different items"):
        estimates.correct_matrix(frame.iloc[1:])


def test_correct_matrix_from_run(tiny_lm, frame, tmp_path):
    out = run(tiny_lm, spec_for(tiny_lm, "easy", seeds=(0, 1, 2)), frame, ResultStore(tmp_path))
    matrix, ids = estimates.correct_matrix(out)
    assert matrix.shape == (3, 4)
    assert ids == sorted(out.loc[out["level"] == "hard", "item_id"].unique())
    assert set(np.unique(matrix)) <= {0.0, 1.0}


def test_comparison_in_the_result_table(tiny_lm, frame, tmp_path):
    plan = [plans.comparison("arc", "grade", ICL(2), seeds=(0, 1), model=tiny_lm.spec.name,
                             test=Selection(max_per_level=4))]
    runner = Runner(tiny_lm, store=ResultStore(tmp_path), frames={"arc": frame}, progress=False)
    ran = runner.run_all(plans.specs(plan))
    conditions = dict(zip(("none", "easy", "hard"), (ran[s] for s in plan[0].specs)))
    for level, out in conditions.items():
        assert (out["train_level"] == level).all()
        assert RESULT_COLUMNS <= set(out.columns)
    assert list(conditions["none"]["seed"].unique()) == [0]
    assert sorted(conditions["easy"]["seed"].unique()) == [0, 1]
    table = estimates.table(plan, ran, estimates.Bootstrap(50))
    assert list(table["quantity"]) == ["unsupervised", "easy", "hard", "gap", "easy_gain", "hard_minus_easy", "sgr",
                                       "sgr_clipped"]
    assert {"point", "lo", "hi", "n_items", "n_seeds", "sgr_stable", "clipped_differs"} <= set(table.columns)
    values = table.set_index("quantity")
    assert (values["n_items"] == 4).all()
    assert values.loc["unsupervised", "n_seeds"] == 1 and values.loc["easy", "n_seeds"] == 2
    assert values.loc["hard", "point"] == pytest.approx(estimates.correct_matrix(conditions["hard"])[0].mean())
    assert values.loc["gap", "point"] == pytest.approx(values.loc["hard", "point"]
                                                       - values.loc["unsupervised", "point"])
    assert (table["method"] == "icl").all() and (table["dataset"] == "arc").all()
    wide = estimates.wide(table, ["dataset", "measure", "method"])
    assert len(wide) == 1 and wide[("sgr", "point")].iloc[0] == pytest.approx(values.loc["sgr", "point"], nan_ok=True)
    # the easy-test level works too
    assert estimates.comparison_rows(*conditions.values(), estimates.Bootstrap(20), level="easy")[0]["n_items"] == 4
    # a run scored on other hard items is refused
    hard = conditions["hard"]
    dropped = hard[hard["item_id"] != hard.loc[hard["level"] == "hard", "item_id"].iloc[0]]
    with pytest.raises(ValueError, match="same test items"):
        estimates.comparison_rows(conditions["none"], conditions["easy"], dropped, estimates.Bootstrap(20))


def test_runner_reuses_the_store(tiny_lm, frame, tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    specs = [spec_for(tiny_lm, level, seeds=(0,), test=Selection(max_per_level=2))
             for level in ("none", "easy", "hard", "all")]
    first = Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False).run_all(specs)
    monkeypatch.setitem(runners.RUNNERS, ICL, lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setitem(runners.RUNNERS, ZeroShot, lambda *a, **k: pytest.fail("recomputed"))
    again = Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False)
    second = again.run_all(specs[:3])
    for spec in second:
        np.testing.assert_array_equal(second[spec]["correct"], first[spec]["correct"])
    assert all(t.computed == 0 for t in again.timings) and len(again.timing_table()) == 3


def test_changed_data_is_never_answered_from_the_store(tiny_lm, frame, tmp_path):
    """Results are keyed by the content of the data they read: a changed question (a replaced or
    damaged source file) gets new results, not the stored ones."""
    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "none", seeds=(0,))
    run(tiny_lm, spec, frame, store)
    changed = frame.copy()
    changed.loc[changed.index[0], "question"] = changed.loc[changed.index[0], "question"] + " now"
    assert key_payload(spec, tiny_lm.identity, changed) != key_payload(spec, tiny_lm.identity, frame)
    run(tiny_lm, spec, changed, store)
    assert len(list(tmp_path.rglob("seed-0.parquet"))) == 2
    # the same content in another row order is the same data
    shuffled = frame.sample(frac=1.0, random_state=5)
    assert key_payload(spec, tiny_lm.identity, shuffled) == key_payload(spec, tiny_lm.identity, frame)


def test_runs_stored_under_the_earlier_keys_are_moved_not_recomputed(tiny_lm, frame, tmp_path, monkeypatch):
    """Results stored before keys were canonical (options as written, execution settings in the key)
    are moved once to their canonical key and reused; results of other code are left alone."""
    import json

    store = ResultStore(tmp_path)
    spec = spec_for(tiny_lm, "easy", method=Probe(3, ProbeConfig(epochs=3)), seeds=(0,))
    canonical = key_payload(spec, tiny_lm.identity, frame)
    run(tiny_lm, spec, frame, store)
    good = store.load(canonical, 0)

    def as_stored_before(payload, options):  # what the earlier code wrote
        old = {**payload, "options": options}
        folder = tmp_path / old["dataset"] / old["method"] / results.spec_key(old)
        shutil.move(store.folder(payload), folder)
        (folder / "spec.json").write_text(json.dumps(old, sort_keys=True, indent=1, default=str))
        return folder

    (tmp_path / results.KEYS_MARKER).unlink()
    old_a = as_stored_before(canonical, [["epochs", 3]])
    stale = {**canonical, "train_version": -1}  # computed by other probe code: never reused
    (tmp_path / "arc" / "probe" / results.spec_key(stale)).mkdir(parents=True)
    (tmp_path / "arc" / "probe" / results.spec_key(stale) / "spec.json").write_text(json.dumps(stale, default=str))
    assert store.load(canonical, 0) is None

    def no_training(*args, **kwargs):
        raise AssertionError("a stored seed was recomputed")

    monkeypatch.setitem(runners.RUNNERS, Probe, no_training)
    again = run(tiny_lm, replace(spec, method=build("probe", 3, {"epochs": 3, "lr": 0.05})), frame, store)
    assert not old_a.exists() and (tmp_path / results.KEYS_MARKER).is_file()
    pd.testing.assert_frame_equal(store.load(canonical, 0), good)
    assert len(again) == len(good)
    assert json.loads((store.folder(canonical) / "spec.json").read_text())["options"] == \
        [list(pair) for pair in spec.method.options()]
    assert (tmp_path / "arc" / "probe" / results.spec_key(stale)).is_dir()  # left alone
    assert store.rekey() == 0  # once per results folder


def test_a_fixed_test_set(frame, measure):
    """``TestSelection(fixed=column)``: the rows marked by the column are the test items (a cap takes
    a seeded prefix of them), every other row of a level is its pool; the keys of the paired split
    do not change."""
    marked = frame.assign(fixed_test=frame["id"].isin(frame["id"].iloc[::3]))
    selection = Selection(fixed="fixed_test", levels=("easy", "hard"))
    roles = split_roles(marked, measure, selection)
    test = select_test_items(marked, roles, selection)
    assert set(test["id"]) == set(marked.loc[marked["fixed_test"] & marked["grade_level"].isin(["easy", "hard"]), "id"])
    assert not set(training_pool(marked, roles, "all")["id"]) & set(marked.loc[marked["fixed_test"], "id"])
    capped = select_test_items(marked, roles, Selection(fixed="fixed_test", max_per_level=2, levels=("hard",)))
    assert len(capped) == 2 and set(capped["id"]) <= set(test["id"])
    assert "fixed" not in ExperimentSpec("arc", "grade", ICL(3), Training("easy")).canonical()["test"]
    assert (ExperimentSpec("arc", "grade", ICL(3), Training("easy"), test=selection).canonical()["test"]["fixed"]
            == "fixed_test")
    with pytest.raises(KeyError, match="nope"):
        split_roles(marked, measure, Selection(fixed="nope"))


def test_a_result_with_non_finite_probabilities_is_never_stored(tmp_path):
    import numpy as np
    import pandas as pd
    import pytest

    from e2h_utils.experiments.store import ResultStore

    store = ResultStore(tmp_path)
    payload = {"dataset": "arc", "method": "probe", "x": 1}
    good = pd.DataFrame({"item_id": ["a", "b"], "probs": [[0.2, 0.8], [0.5, 0.5]], "p_correct": [0.8, 0.5]})
    assert store.save(payload, 0, good).is_file()
    bad = good.assign(probs=[[np.nan, np.nan], [0.5, 0.5]], p_correct=[np.nan, 0.5])
    with pytest.raises(ValueError, match="arc/probe: 1 of 2 items have non-finite probabilities"):
        store.save(payload, 1, bad)
    assert not store.path(payload, 1).exists()


# --- cross-fitting -------------------------------------------------------------------------

def test_cross_fit_tests_every_item_of_a_level_once_by_a_fold_that_never_trained_on_it(frame, measure):
    cross = Selection(test_fraction=0.25, cross_fit=True)
    assert cross.folds == 4 and Selection(test_fraction=0.25).folds == 1
    roles = split_roles(frame, measure, cross)
    test = select_test_items(frame, roles, cross)
    assert len(test) == N_ROWS and test["id"].is_unique  # every leveled item, not a quarter of them
    for level, n in {"easy": 30, "medium": 20, "hard": 10}.items():
        folds = roles.loc[roles["level"] == level, "fold"]
        assert sorted(folds.value_counts()) == sorted(np.bincount(np.arange(n) % 4))  # balanced
    for fold in range(4):
        scored = fold_rows(test, roles, fold)
        assert len(scored) > 0
        pool = training_pool(frame, roles, "all", fold)
        assert not set(scored["id"]) & set(pool["id"])  # never trained on what it scores
        assert len(scored) + len(pool) == N_ROWS  # and trained on everything else
    # the cap takes a prefix of each level's order: a larger cap tests a superset, folds unchanged
    three = select_test_items(frame, roles, Selection(test_fraction=0.25, cross_fit=True, max_per_level=3))
    assert three["level"].value_counts().to_dict() == {"easy": 3, "medium": 3, "hard": 3}
    assert set(three["id"]) < set(test["id"])
    # the paired split is fold 0 against the pool, as before
    paired = split_roles(frame, measure, Selection())
    assert set(training_pool(frame, paired, "all")["id"]) == set(frame.loc[paired["role"] == "train", "id"])


def test_a_runs_results_say_how_many_test_items_its_level_offers(frame, measure, tiny_lm, tmp_path):
    """``level_offers``: the test items a level offers before the cap (cross-fitting: all of them; the
    paired split: its held-out part), carried into the result table as ``n_offered``."""
    assert offered(split_roles(frame, measure, Selection(test_fraction=0.25, cross_fit=True))) == \
        {"easy": 30, "medium": 20, "hard": 10}
    assert offered(split_roles(frame, measure, Selection())) == {"easy": 15, "medium": 10, "hard": 5}
    runner = Runner(tiny_lm, store=ResultStore(tmp_path), frames={"arc": frame}, progress=False)
    specs = [spec_for(tiny_lm, level, seeds=(0,)) for level in ("none", "easy", "hard")]
    out = runner.run_all(specs)
    assert out[specs[2]].groupby("level")["level_offers"].max().to_dict() == {"easy": 15, "medium": 10, "hard": 5}
    stored = runner.store.load(runner.payload(specs[2]), 0)
    assert stored is not None and "level_offers" not in stored.columns  # derived on reading, never stored
    table = estimates.table([plans.Comparison(*specs, keys=plans.keys(dataset="arc"))], out)
    assert set(table["n_items"]) == {4} and set(table["n_offered"]) == {5}


def test_cross_fit_is_keyed_only_when_on_and_needs_one_over_k(tiny_lm):
    from e2h_utils.experiments.spec import test_form
    assert "cross_fit" not in test_form(Selection())  # the paired split keeps its keys
    assert test_form(Selection(cross_fit=True))["cross_fit"] is True
    with pytest.raises(SpecError, match=r"test_fraction = 1/K"):
        Selection(test_fraction=0.3, cross_fit=True)
    with pytest.raises(SpecError, match="fixed test set"):
        Selection(cross_fit=True, fixed="math500")
    assert spec_for(tiny_lm, "easy").canonical() != spec_for(
        tiny_lm, "easy", test=Selection(test_fraction=0.5, max_per_level=4, cross_fit=True)).canonical()


def test_a_cross_fitted_run_scores_every_item_once_per_seed_without_training_on_it(tiny_lm, frame, tmp_path):
    cross = Selection(test_fraction=0.5, max_per_level=8, cross_fit=True, levels=("hard",))
    store = ResultStore(tmp_path)
    outs = {level: run(tiny_lm, spec_for(tiny_lm, level, test=cross), frame, store)
            for level in ("none", "easy", "hard")}
    roles = split_roles(frame, hardness.get_measure("arc", "grade"), cross)
    hard = select_test_items(frame, roles, cross)
    assert len(hard) == 8  # the hard level has 10: a paired split would test 5 (then capped)
    for level, out in outs.items():
        for _, part in out.groupby("seed"):
            assert list(part["item_id"]) == list(hard["id"])  # every item, once, in the test order
    fold_of = roles["fold"].set_axis(frame["id"].to_numpy())
    for row in outs["hard"].to_dict("records"):
        examples = list(row["example_ids"])
        assert len(examples) == 3 and row["item_id"] not in examples
        assert (fold_of.loc[examples] != fold_of.loc[row["item_id"]]).all()  # drawn outside its fold
    # each seed trained twice (one draw per fold), and two folds' draws differ
    draws = outs["hard"].groupby("seed")["example_ids"].apply(lambda s: {tuple(x) for x in s})
    assert all(len(d) == 2 for d in draws)
    again = run(tiny_lm, spec_for(tiny_lm, "hard", test=cross), frame, store)  # reused from the store
    pd.testing.assert_frame_equal(again, outs["hard"])
