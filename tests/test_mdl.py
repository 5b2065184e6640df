"""e2h_utils.mdl: the model-based (MDL) hardness measure on the synthetic ARC-like frame of
``test_experiments``, with the tiny random Llama of ``conftest``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from e2h_utils import icl, mdl, paths
from e2h_utils.experiments import SpecError
from e2h_utils.mdl import MDLSpec, folds, mdl_scores, nested_subsets, run_mdl, scored_items
from e2h_utils.results import ResultStore
from test_experiments import make_frame

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


# --- the spec ----------------------------------------------------------------------------


def test_spec_errors():
    with pytest.raises(SpecError, match="free-form"):
        MDLSpec(dataset="gsm8k")
    with pytest.raises(SpecError, match="svm"):
        MDLSpec(dataset="arc", learner="svm")
    for sizes in ((), (0, 5), (5, -1)):
        with pytest.raises(SpecError, match="subset_sizes"):
            MDLSpec(dataset="arc", subset_sizes=sizes)
    for n_folds in (1, 0):
        with pytest.raises(SpecError, match="n_folds"):
            MDLSpec(dataset="arc", n_folds=n_folds)
    with pytest.raises(SpecError, match="seeds"):
        MDLSpec(dataset="arc", seeds=())
    with pytest.raises(SpecError, match="max_items"):
        MDLSpec(dataset="arc", n_folds=3, max_items=5)
    MDLSpec(dataset="arc", n_folds=3, max_items=6)
    with pytest.raises(SpecError, match="valid formats"):
        MDLSpec(dataset="arc", prompt_format="nope")
    for dataset in mdl.MC_DATASETS:
        MDLSpec(dataset=dataset)


def test_spec_normalised():
    spec = MDLSpec(dataset="arc", subset_sizes=(20, 5, np.int64(5), 80), seeds=[np.int64(2), 1])
    assert spec.subset_sizes == (5, 20, 80)
    assert all(type(n) is int for n in spec.subset_sizes)
    assert spec.seeds == (2, 1) and all(type(s) is int for s in spec.seeds)
    assert MDLSpec(dataset="arc").subset_sizes == mdl.DEFAULT_SIZES


def test_payload():
    probe = MDLSpec(dataset="arc", learner="probe", seeds=(0, 1))
    payload = probe.payload("model-x")
    assert payload["method"] == "mdl_probe" and payload["model_identity"] == "model-x"
    assert "seeds" not in payload and "max_shots" not in payload and payload["probe_epochs"] == 100
    assert payload == MDLSpec(dataset="arc", learner="probe", seeds=(5,)).payload("model-x")
    icl_payload = MDLSpec(dataset="arc", learner="icl").payload("model-x")
    assert icl_payload["method"] == "mdl_icl" and "probe_epochs" not in icl_payload and icl_payload["max_shots"] == 10
    # options of the other learner do not change the key
    assert MDLSpec(dataset="arc", learner="probe", max_shots=3).payload("m") == MDLSpec(dataset="arc").payload("m")
    assert MDLSpec(dataset="arc", learner="icl", probe_epochs=3).payload("m") == \
        MDLSpec(dataset="arc", learner="icl").payload("m")
    assert MDLSpec(dataset="arc", subset_sizes=(5, 20)).payload("m") != MDLSpec(dataset="arc").payload("m")


# --- items, folds, subsets -----------------------------------------------------------------


def test_scored_items(frame):
    spec = MDLSpec(dataset="arc")
    every = scored_items(frame, spec)
    assert len(every) == len(frame) and list(every["id"]) == sorted(frame["id"])
    unlabeled = frame.copy()
    unlabeled.loc[unlabeled.index[:5], "label"] = pd.NA
    assert len(scored_items(unlabeled, spec)) == len(frame) - 5
    sample = scored_items(frame, MDLSpec(dataset="arc", max_items=12))
    assert len(sample) == 12 and sample["id"].is_unique
    assert list(sample["id"]) == sorted(sample["id"])
    assert set(sample["id"]) <= set(frame["id"])
    pd.testing.assert_frame_equal(sample, scored_items(frame, MDLSpec(dataset="arc", max_items=12)))
    # the sample does not depend on the frame's row order
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert list(scored_items(shuffled, MDLSpec(dataset="arc", max_items=12))["id"]) == list(sample["id"])
    other = scored_items(frame, MDLSpec(dataset="arc", max_items=12, sample_seed=1))
    assert set(other["id"]) != set(sample["id"])
    # max_items above the number of items: every item
    assert len(scored_items(frame, MDLSpec(dataset="arc", max_items=1000))) == len(frame)


@pytest.mark.parametrize("n_items, n_folds", [(12, 2), (13, 2), (20, 3), (64, 5)])
def test_folds_balanced(frame, n_items, n_folds):
    spec = MDLSpec(dataset="arc", n_folds=n_folds)
    items = frame.iloc[:n_items]
    fold_of = folds(items, spec)
    assert fold_of.shape == (n_items,)
    counts = np.bincount(fold_of, minlength=n_folds)
    assert len(counts) == n_folds and counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(fold_of, folds(items, spec))
    assert not np.array_equal(fold_of, folds(items, MDLSpec(dataset="arc", n_folds=n_folds, sample_seed=4)))


def test_nested_subsets(frame):
    population = frame.iloc[:30]
    subsets = nested_subsets(population, (5, 20, 80), seed=0, salt="x")
    assert list(subsets) == [5, 20, 30]  # capped at the population
    for n, subset in subsets.items():
        assert len(subset) == n and subset["id"].is_unique
        assert set(subset["id"]) <= set(population["id"])
    assert list(subsets[20]["id"][:5]) == list(subsets[5]["id"])  # nested: a prefix of one order
    assert set(subsets[30]["id"]) == set(population["id"])
    again = nested_subsets(population, (80, 5, 20), seed=0, salt="x")
    assert all(list(again[n]["id"]) == list(subsets[n]["id"]) for n in subsets)
    for other in (nested_subsets(population, (5, 20), seed=1, salt="x"),
                  nested_subsets(population, (5, 20), seed=0, salt="y")):
        assert list(other[20]["id"]) != list(subsets[20]["id"])
    assert list(nested_subsets(population, (30, 40), seed=0, salt="x")) == [30]
    assert nested_subsets(population.iloc[:0], (5,), seed=0, salt="x") == {}


# --- running -------------------------------------------------------------------------------


def _spec(lm, learner: str, **kwargs) -> MDLSpec:
    kwargs.setdefault("subset_sizes", (2, 4, 100))
    kwargs.setdefault("max_items", 12)
    kwargs.setdefault("seeds", (0,))
    return MDLSpec(dataset="arc", learner=learner, model=lm.spec.name, **kwargs)


def _check_rows(out: pd.DataFrame, frame: pd.DataFrame, spec: MDLSpec) -> None:
    items = scored_items(frame, spec)
    fold_of = dict(zip(items["id"], folds(items, spec)))
    assert set(out["item_id"]) == set(items["id"])
    assert (out["learner"] == spec.learner).all()
    assert out["p_correct"].between(0.0, 1.0).all() and out["p_correct"].notna().all()
    for fold in range(spec.n_folds):
        population = len(items) - sum(1 for f in fold_of.values() if f == fold)
        capped = sorted({min(n, population) for n in spec.subset_sizes})
        part = out[out["fold"] == fold]
        assert sorted(part["size"].unique()) == capped
    # one row per item, subset size and seed
    assert not out.duplicated(["item_id", "seed", "size"]).any()
    assert (out.groupby("item_id").size() == 3 * len(spec.seeds)).all()
    assert all(fold_of[i] == f for i, f in zip(out["item_id"], out["fold"]))


def test_run_mdl_probe(tiny_lm, frame, tmp_path, monkeypatch):
    def project_results():
        raise AssertionError("MDL features must be cached in the store's folder, not the project's")

    monkeypatch.setattr(paths, "results_dir", project_results)
    trained = []
    real = mdl._probe_confidences

    def spy(spec, subsets, scored, feats, seed):
        trained.append((set(scored["id"]), {n: set(s["id"]) for n, s in subsets.items()}))
        return real(spec, subsets, scored, feats, seed)

    monkeypatch.setattr(mdl, "_probe_confidences", spy)
    spec = _spec(tiny_lm, "probe", seeds=(0, 1), probe_epochs=5)
    store = ResultStore(tmp_path)
    out = run_mdl(tiny_lm, frame, spec, store=store, progress=False)
    assert len(out) == 12 * 3 * 2  # items x capped sizes (2, 4, 6) x seeds
    assert sorted(out["seed"].unique()) == [0, 1]
    _check_rows(out, frame, spec)
    # an item is never in a subset that scores it; subsets are nested
    assert len(trained) == 2 * 2  # seeds x folds
    for scored, subsets in trained:
        assert sorted(subsets) == [2, 4, 6]
        assert subsets[2] <= subsets[4] <= subsets[6]
        for ids in subsets.values():
            assert not ids & scored
    # the seeds draw different subsets, so confidences differ
    a = out[out["seed"] == 0].sort_values(["item_id", "size"])["p_correct"].to_numpy()
    b = out[out["seed"] == 1].sort_values(["item_id", "size"])["p_correct"].to_numpy()
    assert not np.allclose(a, b)
    assert list((tmp_path / "arc" / "features").glob("*.npz"))  # features cached beside the results
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == ["seed-0.parquet", "seed-1.parquet"]


def test_run_mdl_reuses_store(tiny_lm, frame, tmp_path, monkeypatch):
    spec = _spec(tiny_lm, "probe", probe_epochs=3)
    store = ResultStore(tmp_path)
    first = run_mdl(tiny_lm, frame, spec, store=store, progress=False)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a stored MDL seed")

    monkeypatch.setattr(mdl, "_run_seed", boom)
    second = run_mdl(tiny_lm, frame, spec, store=store, progress=False)
    pd.testing.assert_frame_equal(first, second)
    with pytest.raises(AssertionError, match="recomputed"):  # a new seed is computed
        run_mdl(tiny_lm, frame, _spec(tiny_lm, "probe", probe_epochs=3, seeds=(0, 1)), store=store,
                progress=False)


def test_run_mdl_icl(tiny_lm, frame, tmp_path, monkeypatch):
    calls = []
    real = icl.score_with_examples

    def spy(lm, fmt, examples, rows, **kwargs):
        calls.append((list(examples["id"]), set(rows["id"])))
        return real(lm, fmt, examples, rows, **kwargs)

    monkeypatch.setattr(icl, "score_with_examples", spy)
    spec = _spec(tiny_lm, "icl", subset_sizes=(1, 3, 100), max_items=8, max_shots=2)
    out = run_mdl(tiny_lm, frame, spec, store=ResultStore(tmp_path), progress=False)
    assert len(out) == 8 * 3  # 8 items x capped sizes (1, 3, 4) x 1 seed
    _check_rows(out, frame, spec)
    assert len(calls) == 2 * 3  # folds x sizes
    assert sorted(len(examples) for examples, _ in calls) == [1, 1, 2, 2, 2, 2]  # min(n, max_shots)
    for examples, scored in calls:
        assert len(set(examples)) == len(examples)
        assert not set(examples) & scored
    # an item's confidence is the softmax probability of its label: not all equal across sizes
    assert out.groupby("item_id")["p_correct"].nunique().max() > 1


def test_run_mdl_rejects_other_model(tiny_lm, frame, tmp_path):
    with pytest.raises(SpecError, match="model"):
        run_mdl(tiny_lm, frame, MDLSpec(dataset="arc"), store=ResultStore(tmp_path), progress=False)


# --- scores --------------------------------------------------------------------------------


def test_mdl_scores():
    rows = []
    for learner, values in {"probe": {"a": [0.2, 0.4], "b": [1.0, 0.8], "c": [0.5, 0.5]},
                            "icl": {"a": [0.6, 0.6], "b": [0.0, 0.2]}}.items():  # icl lacks c
        for item, ps in values.items():
            for size, p in zip((5, 20), ps):
                rows.append({"item_id": item, "seed": 0, "size": size, "p_correct": p, "learner": learner})
    scores = mdl_scores(pd.DataFrame(rows)).set_index("id")
    assert sorted(scores.index) == ["a", "b", "c"]
    assert {"mdl", "mdl_probe", "mdl_icl"} <= set(scores.columns)
    assert scores.loc["a", "mdl_probe"] == pytest.approx(0.7)
    assert scores.loc["a", "mdl_icl"] == pytest.approx(0.4)
    assert scores.loc["a", "mdl"] == pytest.approx(0.55)
    assert scores.loc["b", "mdl_probe"] == pytest.approx(0.1)
    assert scores.loc["b", "mdl_icl"] == pytest.approx(0.9)
    assert scores.loc["b", "mdl"] == pytest.approx(0.5)
    assert math.isnan(scores.loc["c", "mdl_icl"])
    assert scores.loc["c", "mdl"] == pytest.approx(0.5)  # the learners that have it


def test_mdl_scores_one_learner_over_seeds():
    confidences = pd.DataFrame({"item_id": ["x", "x", "y", "y"], "seed": [0, 1, 0, 1], "size": 5,
                                "p_correct": [0.1, 0.3, 0.9, 0.9], "learner": "probe"})
    scores = mdl_scores(confidences).set_index("id")
    assert list(scores.columns) == ["mdl_probe", "mdl"]
    np.testing.assert_allclose(scores["mdl_probe"], [0.8, 0.1])
    np.testing.assert_allclose(scores["mdl"], scores["mdl_probe"])
