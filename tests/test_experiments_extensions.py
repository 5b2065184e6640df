"""e2h_utils.experiments extensions: label noise (``ExperimentSpec.label_noise``) and training
examples from another pool (``TrainSource``), on the synthetic ARC-like frame of
``test_experiments`` and the tiny random Llama of ``conftest``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2h_utils import experiments, hardness, noise, results
from e2h_utils.experiments import ExperimentSpec, SpecError, TrainSource, run_experiment, split_roles
from e2h_utils.experiments import TestSelection as Selection  # renamed: pytest collects Test* / test_*
from e2h_utils.experiments import test_items as select_test_items
from e2h_utils.results import ResultStore
from test_experiments import make_frame

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# Keys of the specs of ``_old_specs`` since keys hash the canonical options (defaults merged,
# execution settings left out: ``ExperimentSpec.canonical_options``); ICL and zero-shot keys did
# not move. Changing what a key is made of must be deliberate: a key change recomputes stored results.
# (Before: probe hard 0992e9423b811912, icl_cot strategyqa b5e750098b6f17f1; with scorer version 1:
# 374860f54754f448, 505061a0438a62fa, c85752c58bdb017d, 65fd0f7f801b1813; label_noise and
# train_source kept them, as they do these.)
OLD_KEYS = {
    "icl easy": "6994fcac2c0eef81",
    "probe hard": "d64eb480f9d073d7",
    "zero-shot": "b93cc1159b8dbc70",
    "icl_cot strategyqa": "7f7823d0829e7213",
}
OLD_FIELDS = {"dataset", "measure", "train_level", "method", "n_train", "model", "test", "prompt_format",
              "max_length", "options", "model_identity", "scorer_version", "levels_version"}


def _old_specs(**extra) -> dict[str, ExperimentSpec]:
    return {
        "icl easy": ExperimentSpec(dataset="arc", measure="grade", train_level="easy", seeds=(0, 1), **extra),
        "probe hard": ExperimentSpec(dataset="arc", measure="grade", train_level="hard", method="probe",
                                     n_train=20, options=(("epochs", 5),), **extra),
        "zero-shot": ExperimentSpec(dataset="arc", measure="grade", train_level="none", **extra),
        "icl_cot strategyqa": ExperimentSpec(dataset="strategyqa", measure="num_steps", train_level="easy",
                                             method="icl_cot", n_train=4),
    }


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


def spec_for(lm, train_level: str, **kwargs) -> ExperimentSpec:
    kwargs.setdefault("n_train", 6)
    kwargs.setdefault("seeds", (0, 1))
    kwargs.setdefault("test", Selection(test_fraction=0.5, max_per_level=3))
    return ExperimentSpec(dataset="arc", measure="grade", train_level=train_level, model=lm.spec.name, **kwargs)


# --- label_noise: the spec -----------------------------------------------------------------


def test_default_payload_unchanged():
    for name, spec in _old_specs().items():
        payload = spec.payload("model-x")
        assert "label_noise" not in payload and "train_source" not in payload
        expected = OLD_FIELDS | ({"prompt_tokenization"} if spec.method in ("icl", "icl_cot") and not spec.zero_shot
                                 else set()) | ({"train_version"} if spec.method == "probe" else set()) | (
                                     {"cot_version"} if spec.method == "icl_cot" else set())
        assert set(payload) == expected, name
        assert results.spec_key(payload) == OLD_KEYS[name], name


def test_zero_noise_is_the_default():
    for (name, plain), (_, zero) in zip(_old_specs().items(), _old_specs(label_noise=0.0).items()):
        assert plain.payload("m") == zero.payload("m"), name
    assert ExperimentSpec(dataset="arc", measure="grade", train_level="easy", label_noise=0).label_noise == 0.0


def test_noise_changes_payload():
    plain = ExperimentSpec(dataset="arc", measure="grade", train_level="easy")
    low = ExperimentSpec(dataset="arc", measure="grade", train_level="easy", label_noise=0.1)
    high = ExperimentSpec(dataset="arc", measure="grade", train_level="easy", label_noise=0.3)
    keys = {results.spec_key(s.payload("m")) for s in (plain, low, high)}
    assert len(keys) == 3
    assert low.payload("m")["label_noise"] == 0.1
    assert {k: v for k, v in low.payload("m").items() if k != "label_noise"} == plain.payload("m")
    # an int rate is normalised: 1 and 1.0 are the same run
    assert ExperimentSpec(dataset="arc", measure="grade", train_level="easy", label_noise=1).payload("m") == \
        ExperimentSpec(dataset="arc", measure="grade", train_level="easy", label_noise=1.0).payload("m")
    probe = ExperimentSpec(dataset="arc", measure="grade", train_level="easy", method="probe", label_noise=0.2)
    assert probe.payload("m")["label_noise"] == 0.2


def test_zero_shot_ignores_noise_and_source():
    base = ExperimentSpec(dataset="arc", measure="grade", train_level="none").payload("m")
    noisy = ExperimentSpec(dataset="arc", measure="grade", train_level="none", label_noise=0.5).payload("m")
    assert noisy == base
    zero_k = ExperimentSpec(dataset="arc", measure="grade", train_level="all", n_train=0, label_noise=0.5,
                            train_source=TrainSource("arc", "grade", max_value=4)).payload("m")
    assert zero_k == base
    assert "label_noise" not in zero_k and "train_source" not in zero_k


def test_noise_spec_errors():
    with pytest.raises(SpecError, match="label noise"):
        ExperimentSpec(dataset="strategyqa", measure="num_steps", train_level="easy", method="icl_cot",
                       label_noise=0.2)
    with pytest.raises(SpecError, match="label noise"):
        ExperimentSpec(dataset="gsm8k", measure="num_steps", train_level="easy", method="qlora_cot",
                       label_noise=0.2)
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(SpecError, match="label_noise"):
            ExperimentSpec(dataset="arc", measure="grade", train_level="easy", label_noise=bad)
    # a CoT method without noise is still fine
    ExperimentSpec(dataset="strategyqa", measure="num_steps", train_level="easy", method="icl_cot")


# --- train_source: the spec ------------------------------------------------------------------


def test_train_source_select(frame):
    both = TrainSource("arc", "grade", min_value=4, max_value=6).select(frame)
    assert set(both["grade"]) == {4.0, 5.0, 6.0}
    assert len(both) == 30  # 10 rows per grade 3..8 among 60 graded rows
    assert list(both["id"]) == sorted(both["id"])  # id order, whatever the frame's order
    upper = TrainSource("arc", "grade", max_value=3).select(frame)
    assert set(upper["grade"]) == {3.0} and len(upper) == 10
    lower = TrainSource("arc", "grade", min_value=7.5).select(frame)
    assert set(lower["grade"]) == {8.0} and len(lower) == 10
    assert lower["grade"].notna().all()  # rows without a value never match
    assert TrainSource("arc", "grade", min_value=9).select(frame).empty
    assert TrainSource("arc", "grade", min_value=4, max_value=6).label == "arc: grade >= 4 and grade <= 6"
    assert TrainSource("arc", "grade", max_value=3).label == "arc: grade <= 3"


def test_train_source_errors(frame):
    with pytest.raises(SpecError, match="nope"):
        TrainSource("arc", "nope", max_value=3).select(frame)
    with pytest.raises(SpecError, match="min_value"):
        TrainSource("arc", "grade")
    with pytest.raises(SpecError, match="arcc"):
        TrainSource("arcc", "grade", max_value=3)
    source = TrainSource("arc", "grade", max_value=3)
    for level in ("none", "easy", "hard"):
        with pytest.raises(SpecError, match="train_level"):
            ExperimentSpec(dataset="arc", measure="grade", train_level=level, train_source=source)
    with pytest.raises(SpecError, match="chain of thought"):
        ExperimentSpec(dataset="strategyqa", measure="num_steps", train_level="all", method="icl_cot",
                       train_source=TrainSource("strategyqa", "num_steps", max_value=2))
    ExperimentSpec(dataset="arc", measure="grade", train_level="all", train_source=source)


def test_train_source_payload():
    plain = ExperimentSpec(dataset="arc", measure="grade", train_level="all")
    low = ExperimentSpec(dataset="arc", measure="grade", train_level="all",
                         train_source=TrainSource("arc", "grade", max_value=3))
    high = ExperimentSpec(dataset="arc", measure="grade", train_level="all",
                          train_source=TrainSource("arc", "grade", max_value=5))
    assert "train_source" not in plain.payload("m")
    assert low.payload("m")["train_source"] == {"dataset": "arc", "column": "grade", "min_value": None,
                                                "max_value": 3}
    assert len({results.spec_key(s.payload("m")) for s in (plain, low, high)}) == 3


# --- running with label noise -----------------------------------------------------------------


def test_draw_same_examples_nested_noise(frame):
    roles = split_roles(frame, hardness.get_measure("arc", "grade"), Selection())
    pool = experiments.training_pool(frame, roles, "all")
    draws = {p: experiments._draw(ExperimentSpec(dataset="arc", measure="grade", train_level="all", n_train=20,
                                                 label_noise=p), pool, seed=3)
             for p in (0.0, 0.3, 0.6, 1.0)}
    ids = list(draws[0.0]["id"])
    assert len(ids) == 20
    assert noise.FLIPPED not in draws[0.0].columns
    flipped = {}
    for p, drawn in draws.items():
        assert list(drawn["id"]) == ids
        if p:
            flipped[p] = set(drawn.loc[drawn[noise.FLIPPED], "id"])
            by_id = frame.set_index("id")
            changed = drawn["label"].to_numpy(dtype=int) != by_id.loc[ids, "label"].to_numpy(dtype=int)
            np.testing.assert_array_equal(drawn[noise.FLIPPED].to_numpy(), changed)
            assert (drawn["answer"] == [c[int(k)] for c, k in zip(drawn["choices"], drawn["label"])]).all()
    assert flipped[0.3] <= flipped[0.6] <= flipped[1.0]
    assert len(flipped[1.0]) > len(flipped[0.3])


def test_run_with_noise_same_examples(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    clean = run_experiment(spec_for(tiny_lm, "all"), tiny_lm, frame, store=store, progress=False)
    noisy = run_experiment(spec_for(tiny_lm, "all", label_noise=1.0), tiny_lm, frame, store=store,
                           progress=False)
    assert "n_noised" not in clean.columns
    assert "n_noised" in noisy.columns
    assert list(noisy["item_id"]) == list(clean["item_id"])
    for seed in (0, 1):
        a = clean.loc[clean["seed"] == seed, "example_ids"].iloc[0]
        b = noisy.loc[noisy["seed"] == seed, "example_ids"].iloc[0]
        assert list(a) == list(b) and len(a) == 6
        n_noised = noisy.loc[noisy["seed"] == seed, "n_noised"]
        assert n_noised.nunique() == 1 and 0 < n_noised.iloc[0] <= 6
    # the noised labels reach the prompt: some test item is scored differently
    assert any(not np.allclose(a, b) for a, b in zip(clean["probs"], noisy["probs"]))
    assert len(list(tmp_path.rglob("spec.json"))) == 2  # two specs, two folders


def test_probe_trains_on_noised_labels(tiny_lm, frame, tmp_path, monkeypatch):
    seen = []
    real = experiments.train_probe

    def spy(features, labels, config, seed):
        seen.append([int(y) for y in labels])
        return real(features, labels, config, seed)

    monkeypatch.setattr(experiments, "train_probe", spy)
    spec = spec_for(tiny_lm, "all", method="probe", n_train=12, seeds=(0,), label_noise=1.0,
                    options=(("epochs", 3),))
    out = run_experiment(spec, tiny_lm, frame, store=ResultStore(tmp_path), progress=False)
    by_id = frame.set_index("id")
    ids = list(out["example_ids"].iloc[0])
    original = [int(by_id.loc[i, "label"]) for i in ids]
    assert len(seen) == 1 and len(seen[0]) == 12
    changed = sum(a != b for a, b in zip(seen[0], original))
    assert changed == out["n_noised"].iloc[0] > 0


# --- running with a train source --------------------------------------------------------------


def test_train_source_same_dataset_excludes_test(tiny_lm, frame, tmp_path, monkeypatch):
    source = TrainSource("arc", "grade", max_value=4)
    spec = spec_for(tiny_lm, "all", train_source=source, n_train=5, seeds=(0, 1, 2))
    roles = split_roles(frame, hardness.get_measure("arc", "grade"), spec.test)
    test = select_test_items(frame, roles, spec.test)
    matching = set(source.select(frame)["id"])
    assert matching & set(test["id"])  # some test items match the filter: excluding them matters

    pools = []
    real = experiments._icl_seed

    def spy(spec, lm, test, pool, seed, store, progress):
        pools.append(set(pool["id"]))
        return real(spec, lm, test, pool, seed, store, progress)

    monkeypatch.setattr(experiments, "_icl_seed", spy)
    out = run_experiment(spec, tiny_lm, frame, store=ResultStore(tmp_path), progress=False)
    held_out = set(frame.loc[roles["role"] == "test", "id"])  # every held-out item, scored or not
    assert pools and all(p == matching - held_out for p in pools)
    assert set(out["item_id"]) == set(test["id"])
    used = set()
    for ids in out["example_ids"]:
        assert len(ids) == 5
        used |= set(ids)
    assert used <= matching
    assert not used & held_out
    assert (frame.set_index("id").loc[sorted(used), "grade"] <= 4).all()
    per_seed = {s: tuple(p["example_ids"].iloc[0]) for s, p in out.groupby("seed")}
    assert len(set(per_seed.values())) == 3  # a fresh draw per seed


def test_train_source_other_dataset(tiny_lm, frame, tmp_path):
    other = make_frame(seed=1)
    other["id"] = other["id"].str.replace("arc-", "mmlu-")
    other["school_level"] = [float(i % 2) for i in range(len(other))]
    source = TrainSource("mmlu_stem5", "school_level", max_value=0)
    spec = spec_for(tiny_lm, "all", train_source=source, n_train=4, seeds=(0,))
    out = run_experiment(spec, tiny_lm, frame, store=ResultStore(tmp_path), progress=False, source_frame=other)
    allowed = set(other.loc[other["school_level"] == 0, "id"])
    ids = list(out["example_ids"].iloc[0])
    assert len(ids) == 4 and set(ids) <= allowed


def test_train_source_empty_pool(tiny_lm, frame, tmp_path):
    spec = spec_for(tiny_lm, "all", train_source=TrainSource("arc", "grade", min_value=100))
    with pytest.raises(SpecError, match="no rows"):
        run_experiment(spec, tiny_lm, frame, store=ResultStore(tmp_path), progress=False)
