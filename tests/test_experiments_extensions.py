"""e2h_utils.experiments extensions: label noise (``Training(pool, label_noise)``) and training
examples from another pool (``Training(TrainSource(...))``), in the spec and through the
``Runner``, on the synthetic ARC-like frame of ``test_experiments`` and the tiny random Llama of
``conftest``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2h_utils.engine.scoring import SCORER_VERSION
from e2h_utils.data import hardness
from e2h_utils.experiments import plans, split
from e2h_utils.experiments import runner as runner_module
from e2h_utils.experiments import store as results
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, Training, TrainSource
from e2h_utils.experiments.spec import TestSelection as Selection  # renamed: pytest collects Test* / test_*
from e2h_utils.experiments.split import split_roles
from e2h_utils.experiments.split import test_items as select_test_items
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods import noise, runners
from e2h_utils.methods.base import CoT, ICL, Probe, ZeroShot, build
from e2h_utils.methods.probe import ProbeConfig
from test_experiments import make_frame

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# Keys of the specs of ``_old_specs`` since keys hash the canonical options (defaults merged,
# execution settings left out: ``Method.options``); ICL and zero-shot keys did not move.
# Changing what a key is made of must be deliberate: a key change recomputes stored results.
# (Before: probe hard 0992e9423b811912, icl_cot strategyqa b5e750098b6f17f1; with scorer version 1:
# 374860f54754f448, 505061a0438a62fa, c85752c58bdb017d, 65fd0f7f801b1813; icl_cot strategyqa with
# COT_VERSION 2: 7f7823d0829e7213 (the bump to 3 in the CPU-generation commit moved it on purpose);
# label_noise and train_source kept them, as they do these.)
OLD_KEYS = {
    "icl easy": "6994fcac2c0eef81",
    "probe hard": "d64eb480f9d073d7",
    "zero-shot": "b93cc1159b8dbc70",
    "icl_cot strategyqa": "3a52718afe235183",
}
OLD_FIELDS = {"dataset", "measure", "train_level", "method", "n_train", "model", "test", "prompt_format",
              "max_length", "options", "model_identity", "scorer_version", "levels_version"}


def payload(spec: ExperimentSpec, model_identity: str = "m") -> dict:
    """What the first layout called ``spec.payload(model_identity)``: the canonical spec and the
    model's identity (``key_payload`` adds the data digests)."""
    return {**spec.canonical(), "model_identity": model_identity}


def _old_specs(label_noise: float | None = None) -> dict[str, ExperimentSpec]:
    """The specs whose keys are pinned (``label_noise`` None: not given at all)."""
    def training(pool: str) -> Training:
        return Training(pool) if label_noise is None else Training(pool, label_noise=label_noise)

    return {
        "icl easy": ExperimentSpec("arc", "grade", ICL(10), training("easy"), seeds=(0, 1)),
        "probe hard": ExperimentSpec("arc", "grade", Probe(20, ProbeConfig(epochs=5)), training("hard")),
        "zero-shot": ExperimentSpec("arc", "grade", ZeroShot()),
        "icl_cot strategyqa": ExperimentSpec("strategyqa", "num_steps", CoT(ICL(4)), Training("easy")),
    }


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


def spec_for(lm, pool, method=None, label_noise: float = 0.0, **kwargs) -> ExperimentSpec:
    """An ARC grade spec: ICL(6) (or ``method``) trained on ``pool`` (a level or a TrainSource)."""
    method = method or ICL(6)
    kwargs.setdefault("seeds", (0, 1))
    kwargs.setdefault("test", Selection(test_fraction=0.5, max_per_level=3))
    return ExperimentSpec("arc", "grade", method, Training(pool, label_noise=label_noise), model=lm.spec.name,
                          **kwargs)


def runner_for(lm, frame, tmp_path, **frames) -> Runner:
    return Runner(lm, store=ResultStore(tmp_path), frames={"arc": frame, **frames}, progress=False)


# --- label_noise: the spec -----------------------------------------------------------------


def test_default_payload_unchanged():
    for name, spec in _old_specs().items():
        stored = payload(spec, "model-x")
        assert "label_noise" not in stored and "train_source" not in stored
        kind = spec.method.kind
        expected = OLD_FIELDS | ({"prompt_tokenization"} if kind in ("icl", "icl_cot") else set()) | (
            {"train_version"} if kind == "probe" else set()) | ({"cot_version"} if kind == "icl_cot" else set())
        assert set(stored) == expected, name
        # pinned at scorer version 2: a scorer version bump moves every key, and nothing else may
        assert stored["scorer_version"] == SCORER_VERSION
        assert results.spec_key({**stored, "scorer_version": 2}) == OLD_KEYS[name], name


def test_zero_noise_is_the_default():
    for (name, plain), (_, zero) in zip(_old_specs().items(), _old_specs(label_noise=0.0).items()):
        assert payload(plain) == payload(zero), name
    spec = ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=0))
    assert spec.label_noise == 0.0 and type(spec.label_noise) is float


def test_noise_changes_payload():
    plain = ExperimentSpec("arc", "grade", ICL(10), Training("easy"))
    low = ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=0.1))
    high = ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=0.3))
    keys = {results.spec_key(payload(s)) for s in (plain, low, high)}
    assert len(keys) == 3
    assert payload(low)["label_noise"] == 0.1
    assert {k: v for k, v in payload(low).items() if k != "label_noise"} == payload(plain)
    # an int rate is normalised: 1 and 1.0 are the same run
    assert payload(ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=1))) == \
        payload(ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=1.0)))
    probe = ExperimentSpec("arc", "grade", Probe(10), Training("easy", label_noise=0.2))
    assert payload(probe)["label_noise"] == 0.2


def test_zero_shot_ignores_noise_and_source():
    """The unsupervised baseline of a noisy run, or of a run with a train source, is the plain
    zero-shot run; a zero-shot spec cannot carry noise or a source at all."""
    base = payload(ExperimentSpec("arc", "grade", ZeroShot()))
    noisy = payload(ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=0.5)).unsupervised())
    assert noisy == base
    source = TrainSource("arc", "grade", max_value=4)
    zero_k = payload(ExperimentSpec("arc", "grade", ICL(3), Training(source, label_noise=0.5)).unsupervised())
    assert zero_k == base
    assert "label_noise" not in zero_k and "train_source" not in zero_k
    # k = 0 is zero-shot: the plan's baseline run drops noise, and zero-shot refuses training data
    assert payload(plans.run("arc", "grade", ICL(3), None, seeds=(0,), model="embedded", test=Selection(),
                             label_noise=0.5)) == base
    assert build("icl", 0) == ZeroShot()
    with pytest.raises(SpecError, match="does not train"):
        ExperimentSpec("arc", "grade", build("icl", 0), Training(source, label_noise=0.5))


def test_noise_spec_errors():
    with pytest.raises(SpecError, match="label noise"):
        ExperimentSpec("strategyqa", "num_steps", CoT(ICL(10)), Training("easy", label_noise=0.2))
    with pytest.raises(SpecError, match="label noise"):
        ExperimentSpec("gsm8k", "num_steps", build("qlora_cot", 10), Training("easy", label_noise=0.2))
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(SpecError, match="label_noise"):
            ExperimentSpec("arc", "grade", ICL(10), Training("easy", label_noise=bad))
    # a CoT method without noise is still fine
    ExperimentSpec("strategyqa", "num_steps", CoT(ICL(10)), Training("easy"))


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
    # a source is the whole pool: it cannot be combined with a level of the split, nor with no training
    with pytest.raises(SpecError, match="does not train"):
        ExperimentSpec("arc", "grade", ZeroShot(), Training(source))
    for level in ("easy", "hard"):
        with pytest.raises(SpecError, match="training pool"):
            Training((level, source))
    with pytest.raises(SpecError, match="chain of thought"):
        ExperimentSpec("strategyqa", "num_steps", CoT(ICL(10)),
                       Training(TrainSource("strategyqa", "num_steps", max_value=2)))
    spec = ExperimentSpec("arc", "grade", ICL(10), Training(source))
    assert spec.train_level == "all" and spec.train_source == source


def test_train_source_payload():
    plain = ExperimentSpec("arc", "grade", ICL(10), Training("all"))
    low = ExperimentSpec("arc", "grade", ICL(10), Training(TrainSource("arc", "grade", max_value=3)))
    high = ExperimentSpec("arc", "grade", ICL(10), Training(TrainSource("arc", "grade", max_value=5)))
    assert "train_source" not in payload(plain)
    assert payload(low)["train_source"] == {"dataset": "arc", "column": "grade", "min_value": None,
                                            "max_value": 3}
    assert payload(low)["train_level"] == "all"
    assert len({results.spec_key(payload(s)) for s in (plain, low, high)}) == 3


# --- running with label noise -----------------------------------------------------------------


def test_draw_same_examples_nested_noise(frame):
    roles = split_roles(frame, hardness.get_measure("arc", "grade"), Selection())
    pool = split.training_pool(frame, roles, "all")
    draws = {p: runner_module.draw(ExperimentSpec("arc", "grade", ICL(20), Training("all", label_noise=p)), pool,
                                   seed=3)
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
    runner = runner_for(tiny_lm, frame, tmp_path)
    clean = runner.run(spec_for(tiny_lm, "all"))
    noisy = runner.run(spec_for(tiny_lm, "all", label_noise=1.0))
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
    real = runners.train_probe

    def spy(features, labels, config, seed):
        seen.append([int(y) for y in labels])
        return real(features, labels, config, seed)

    monkeypatch.setattr(runners, "train_probe", spy)
    spec = spec_for(tiny_lm, "all", method=Probe(12, ProbeConfig(epochs=3)), seeds=(0,), label_noise=1.0)
    out = runner_for(tiny_lm, frame, tmp_path).run(spec)
    by_id = frame.set_index("id")
    ids = list(out["example_ids"].iloc[0])
    original = [int(by_id.loc[i, "label"]) for i in ids]
    assert len(seen) == 1 and len(seen[0]) == 12
    changed = sum(a != b for a, b in zip(seen[0], original))
    assert changed == out["n_noised"].iloc[0] > 0


# --- running with a train source --------------------------------------------------------------


def test_train_source_same_dataset_excludes_test(tiny_lm, frame, tmp_path, monkeypatch):
    source = TrainSource("arc", "grade", max_value=4)
    spec = spec_for(tiny_lm, source, method=ICL(5), seeds=(0, 1, 2))
    roles = split_roles(frame, hardness.get_measure("arc", "grade"), spec.test)
    test = select_test_items(frame, roles, spec.test)
    matching = set(source.select(frame)["id"])
    assert matching & set(test["id"])  # some test items match the filter: excluding them matters

    pools = []
    real = runner_module.draw

    def spy(spec, pool, seed):  # each computed seed draws its examples from the spec's pool
        pools.append(set(pool["id"]))
        return real(spec, pool, seed)

    monkeypatch.setattr(runner_module, "draw", spy)
    out = runner_for(tiny_lm, frame, tmp_path).run(spec)
    held_out = set(frame.loc[roles["role"] == "test", "id"])  # every held-out item, scored or not
    assert len(pools) == 3 and all(p == matching - held_out for p in pools)
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
    spec = spec_for(tiny_lm, source, method=ICL(4), seeds=(0,))
    out = runner_for(tiny_lm, frame, tmp_path, mmlu_stem5=other).run(spec)
    allowed = set(other.loc[other["school_level"] == 0, "id"])
    ids = list(out["example_ids"].iloc[0])
    assert len(ids) == 4 and set(ids) <= allowed


def test_train_source_empty_pool(tiny_lm, frame, tmp_path):
    spec = spec_for(tiny_lm, TrainSource("arc", "grade", min_value=100))
    with pytest.raises(SpecError, match="no training items in arc: grade >= 100"):
        runner_for(tiny_lm, frame, tmp_path).run(spec)
    assert not list(tmp_path.rglob("*.parquet"))
