"""e2h_utils.experiments.mdl: the authors' MDL measures on the synthetic ARC-like frame of ``test_experiments``
(60 graded rows, the last 12 of them the MDL hold-out), with the tiny random Llama of ``conftest``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2h_utils.data import hardness
from e2h_utils.engine.scoring import SCORER_VERSION
from e2h_utils.experiments import mdl
from e2h_utils import paths
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, SpecError
from e2h_utils.experiments.spec import TestSelection as Selection  # pytest collects Test*
from e2h_utils.experiments.mdl import MDLSpec, holdout_items, mdl_scores, nested_subsets, run_mdl, scored_items
from e2h_utils.methods.base import ICL, Probe, QLoRA, ZeroShot
from e2h_utils.methods.probe import ProbeConfig
from e2h_utils.methods.qlora import QLoRAConfig
from e2h_utils.experiments.store import ResultStore
from test_experiments import N_NAN, N_ROWS, make_frame

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
    for dataset in ("mmlu_stem5", "strategyqa"):  # trained learners need the ARC hold-out
        for learner in mdl.TRAINED:
            with pytest.raises(SpecError, match="hold-out"):
                MDLSpec(dataset=dataset, learner=learner)
        MDLSpec(dataset=dataset)  # the zero-shot MDL is defined everywhere
    for sizes in ((), (0, 5), (5, -1)):
        with pytest.raises(SpecError, match="subset_sizes"):
            MDLSpec(dataset="arc", learner="probe", subset_sizes=sizes)
    with pytest.raises(SpecError, match="seeds"):
        MDLSpec(dataset="arc", seeds=())
    with pytest.raises(SpecError, match="max_items"):
        MDLSpec(dataset="arc", max_items=1)
    with pytest.raises(SpecError, match="valid formats"):
        MDLSpec(dataset="arc", prompt_format="nope")


def test_spec_defaults_are_the_authors():
    spec = MDLSpec(dataset="arc", learner="probe")
    assert spec.subset_sizes == (5, 20, 80, 340, 900)  # main.py: supervision_n
    assert spec.seeds == (0, 1, 2, 3, 4)  # --num_bootstraps 5
    assert spec.learner == Probe(900, ProbeConfig()) and spec.column == "mdl_probe"  # a name becomes its typed learner
    assert MDLSpec(dataset="arc").column == "mdl" and MDLSpec(dataset="arc", learner="qlora").column == "mdl_qlora"
    assert len(mdl.PAPER_HARDNESS_MODELS) == 4
    normalised = MDLSpec(dataset="arc", learner="probe", subset_sizes=(20, 5, np.int64(5), 80), seeds=[np.int64(2), 1])
    assert normalised.subset_sizes == (5, 20, 80) and all(type(n) is int for n in normalised.subset_sizes)
    assert normalised.seeds == (2, 1) and all(type(s) is int for s in normalised.seeds)


def test_payload():
    probe = MDLSpec(dataset="arc", learner="probe", seeds=(0, 1))
    payload = probe.payload("model-x")
    assert payload["method"] == "mdl_probe" and payload["model_identity"] == "model-x"
    assert "seeds" not in payload and payload["config"]["l2"] == 1.0 and "train_version" in payload
    assert payload == MDLSpec(dataset="arc", learner="probe", seeds=(5,)).payload("model-x")
    assert MDLSpec(dataset="arc", learner="probe", subset_sizes=(5, 20)).payload("m") != probe.payload("m")
    assert MDLSpec(dataset="arc", learner=Probe(900, ProbeConfig(epochs=3))).payload("m") != probe.payload("m")
    zero = MDLSpec(dataset="arc").payload("m")
    assert zero["method"] == "mdl_zero_shot" and "subset_sizes" not in zero and "config" not in zero
    # the zero-shot MDL does not depend on the trained learners' settings
    assert MDLSpec(dataset="arc", subset_sizes=(5,)).payload("m") == zero


# --- items and subsets ---------------------------------------------------------------------


def test_scored_items_leave_out_the_holdout(frame):
    every = scored_items(frame, MDLSpec(dataset="arc"))
    holdout = set(frame.loc[frame["mdl_holdout"], "id"])
    assert len(holdout) == 12
    assert len(every) == N_ROWS - 12  # annotated rows outside the hold-out (ungraded rows are not annotated)
    assert not set(every["id"]) & holdout and list(every["id"]) == sorted(every["id"])
    assert set(holdout_items(frame)["id"]) == holdout
    sample = scored_items(frame, MDLSpec(dataset="arc", max_items=12))
    assert len(sample) == 12 and set(sample["id"]) <= set(every["id"])
    shuffled = frame.sample(frac=1.0, random_state=3)  # the sample does not depend on row order
    assert list(scored_items(shuffled, MDLSpec(dataset="arc", max_items=12))["id"]) == list(sample["id"])
    assert set(scored_items(frame, MDLSpec(dataset="arc", max_items=12, sample_seed=1))["id"]) != set(sample["id"])
    # other datasets: every labelled item
    other = frame.drop(columns=["arc_annotated", "mdl_holdout"])
    assert len(scored_items(other, MDLSpec(dataset="strategyqa"))) == N_ROWS + N_NAN


def test_nested_subsets(frame):
    population = frame.iloc[:30]
    subsets = nested_subsets(population, (5, 20, 30), seed=0, salt="x")
    assert list(subsets) == [5, 20, 30]
    for n, subset in subsets.items():
        assert len(subset) == n and subset["id"].is_unique and set(subset["id"]) <= set(population["id"])
    assert list(subsets[20]["id"][:5]) == list(subsets[5]["id"])  # nested: a prefix of one order
    for other in (nested_subsets(population, (5, 20), seed=1, salt="x"),
                  nested_subsets(population, (5, 20), seed=0, salt="y")):
        assert list(other[20]["id"]) != list(subsets[20]["id"])
    with pytest.raises(SpecError, match=r"\[40\].*30 items"):  # never silently fewer than asked
        nested_subsets(population, (30, 40), seed=0, salt="x")


# --- running -------------------------------------------------------------------------------


def test_zero_shot_mdl_is_one_minus_zero_shot_confidence(tiny_lm, frame, tmp_path):
    store = ResultStore(tmp_path)
    out = run_mdl(tiny_lm, frame, MDLSpec(dataset="arc", model=tiny_lm.spec.name), store=store, progress=False)
    items = scored_items(frame, MDLSpec(dataset="arc"))
    assert sorted(out["item_id"]) == sorted(items["id"]) and (out["size"] == 0).all()
    # the same probabilities as the experiments' zero-shot run on those items
    spec = ExperimentSpec(dataset="arc", measure="grade", method=ZeroShot(), training=None, model=tiny_lm.spec.name,
                          test=Selection(test_fraction=0.5))
    runner = Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False)
    zero = runner.run(spec).set_index("item_id")["p_correct"]
    shared = sorted(set(zero.index) & set(out["item_id"]))
    assert len(shared) > 5
    np.testing.assert_allclose(out.set_index("item_id").loc[shared, "p_correct"], zero.loc[shared], rtol=1e-5)
    scores = mdl_scores(out).set_index("id")
    np.testing.assert_allclose(scores.loc[shared, "mdl"], 1 - zero.loc[shared], rtol=1e-5)


def test_probe_mdl_trains_on_the_holdout_only(tiny_lm, frame, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "results_dir", lambda: (_ for _ in ()).throw(AssertionError("project results")))
    trained = []
    real = mdl._probe_confidences

    def spy(spec, subsets, scored, feats, seed):
        trained.append((set(scored["id"]), {n: set(s["id"]) for n, s in subsets.items()}))
        return real(spec, subsets, scored, feats, seed)

    monkeypatch.setattr(mdl, "_probe_confidences", spy)
    spec = MDLSpec(dataset="arc", learner=Probe(12, ProbeConfig(epochs=5)), model=tiny_lm.spec.name,
                   subset_sizes=(2, 6, 12), seeds=(0, 1))
    out = run_mdl(tiny_lm, frame, spec, store=ResultStore(tmp_path), progress=False)
    holdout = set(frame.loc[frame["mdl_holdout"], "id"])
    assert len(out) == (N_ROWS - 12) * 3 * 2  # scored items x sizes x seeds
    assert not set(out["item_id"]) & holdout and not out.duplicated(["item_id", "seed", "size"]).any()
    assert out["p_correct"].between(0, 1).all() and (out["learner"] == "probe").all()
    assert len(trained) == 2
    for scored, subsets in trained:
        assert subsets[2] <= subsets[6] <= subsets[12] == holdout  # nested draws from the hold-out
        assert not scored & holdout
    assert trained[0][1][2] != trained[1][1][2]  # each seed draws its own subsets
    assert list((tmp_path / "arc" / "features").glob("*.npz"))  # features cached beside the results
    with pytest.raises(SpecError, match="exceed"):  # 900 items do not fit a 12-item hold-out
        run_mdl(tiny_lm, frame, MDLSpec(dataset="arc", learner="probe", model=tiny_lm.spec.name),
                store=ResultStore(tmp_path), progress=False)


def test_trained_mdl_reuses_store(tiny_lm, frame, tmp_path, monkeypatch):
    spec = MDLSpec(dataset="arc", learner=Probe(4, ProbeConfig(epochs=3)), model=tiny_lm.spec.name,
                   subset_sizes=(2, 4), seeds=(0,))
    store = ResultStore(tmp_path)
    first = run_mdl(tiny_lm, frame, spec, store=store, progress=False)
    monkeypatch.setattr(mdl, "_trained_seed", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    pd.testing.assert_frame_equal(first, run_mdl(tiny_lm, frame, spec, store=store, progress=False))
    with pytest.raises(AssertionError, match="recomputed"):  # a new seed is computed
        run_mdl(tiny_lm, frame, MDLSpec(**{**spec.__dict__, "seeds": (0, 1)}), store=store, progress=False)


def test_qlora_mdl_runs_on_the_holdout(tiny_lm, frame, tmp_path):
    # micro_batch: a run setting now
    config = QLoRAConfig(quantization="none", min_updates=1, min_epochs=1, max_batch=4)
    spec = MDLSpec(dataset="arc", learner=QLoRA(4, config), model=tiny_lm.spec.name, subset_sizes=(2, 4), seeds=(0,),
                   max_items=6)
    out = run_mdl(tiny_lm, frame, spec, store=ResultStore(tmp_path), progress=False)
    assert len(out) == 6 * 2 and out["p_correct"].between(0, 1).all()
    assert not set(out["item_id"]) & set(frame.loc[frame["mdl_holdout"], "id"])


def test_run_mdl_rejects_other_model(tiny_lm, frame, tmp_path):
    with pytest.raises(SpecError, match="model"):
        run_mdl(tiny_lm, frame, MDLSpec(dataset="arc"), store=ResultStore(tmp_path), progress=False)


# --- scores --------------------------------------------------------------------------------


def test_mdl_scores_average_over_sizes_seeds_and_hardness_models():
    rows = []
    values = {("probe", "m1"): {"a": [0.2, 0.4], "b": [1.0, 0.8], "c": [0.5, 0.5]},
              ("probe", "m2"): {"a": [0.6, 0.6], "b": [0.0, 0.2], "c": [0.5, 0.5]},
              ("zero_shot", "m1"): {"a": [0.9], "b": [0.1]}}  # zero-shot lacks c
    for (learner, model), items in values.items():
        for item, ps in items.items():
            for size, p in zip((5, 20), ps):
                rows.append({"item_id": item, "seed": 0, "size": size, "p_correct": p, "learner": learner,
                             "model": model})
    scores = mdl_scores(pd.DataFrame(rows)).set_index("id")
    assert sorted(scores.index) == ["a", "b", "c"] and set(scores.columns) == {"mdl", "mdl_probe"}
    assert scores.loc["a", "mdl_probe"] == pytest.approx(1 - (0.3 + 0.6) / 2)  # per model, then averaged
    assert scores.loc["b", "mdl_probe"] == pytest.approx(1 - (0.9 + 0.1) / 2)
    assert scores.loc["a", "mdl"] == pytest.approx(0.1) and math.isnan(scores.loc["c", "mdl"])


def test_frames_with_mdl_adds_levels(frame):
    items = scored_items(frame, MDLSpec(dataset="arc"))
    confidences = pd.DataFrame({"item_id": items["id"], "seed": 0, "size": 0,
                                "p_correct": np.linspace(0.05, 0.95, len(items)), "learner": "zero_shot",
                                "model": "m", "dataset": "arc"})
    out = mdl.frames_with_mdl({"arc": frame}, confidences)["arc"].set_index("id")
    assert out.loc[items["id"], "mdl"].notna().all() and out.loc[out["mdl_holdout"], "mdl"].isna().all()
    counts = out["mdl_level"].value_counts()
    assert counts["easy"] == counts["hard"] and counts.sum() == len(items)
    assert set(hardness.get_measure("arc", "mdl").cutoffs(out["mdl"])) != set()
    again = mdl.frames_with_mdl({"arc": out.reset_index()}, confidences)["arc"]  # recomputed, not duplicated
    assert list(again.columns) == list(out.reset_index().columns)


def test_frames_with_mdl_keeps_a_value_column_named_like_a_level():
    """MMLU's school_level is data (0/1), not a level column: merging MDL must keep it (it was
    dropped, and the paper profile's easy_to_hard failed on mmlu_stem5/school_level)."""
    from e2h_utils.data import datasets as data

    mmlu = data.tidy(pd.DataFrame({"id": [f"m{i}" for i in range(20)], "question": ["q"] * 20,
                                   "choices": [["a", "b", "c", "d"]] * 20, "label": [0] * 20, "answer": ["a"] * 20,
                                   "school_level": [0.0] * 10 + [1.0] * 10}), "mmlu_stem5")
    confidences = pd.DataFrame({"item_id": mmlu["id"], "seed": 0, "size": 0, "p_correct": np.linspace(0, 1, 20),
                                "learner": "zero_shot", "model": "m", "dataset": "mmlu_stem5"})
    out = mdl.frames_with_mdl({"mmlu_stem5": mmlu}, confidences)["mmlu_stem5"]
    assert list(out["school_level"]) == list(mmlu["school_level"])
    assert hardness.assign_levels(out, hardness.get_measure("mmlu_stem5", "school_level")).notna().all()
    assert out["mdl_level"].notna().all()


def test_paper_mdl_runs_each_hardness_model_at_the_authors_precision():
    """mdl_model_quantization auto: the authors' quantization and dtype per hardness model, and the
    QLoRA learner trains the model as loaded (run_jobs.py:302: Falcon and MPT unquantized)."""
    from types import SimpleNamespace

    from e2h_utils.experiments import settings

    values = dict(mdl_hardness_models=list(mdl.PAPER_HARDNESS_MODELS), mdl_learners={"arc": ["zero_shot", "qlora"]},
                  mdl_max_items={"arc": None}, mdl_subset_sizes=[5], mdl_seeds=[0], mdl_max_holdout=None,
                  mdl_model_quantization="auto", mdl_learner_options={})
    options = settings.mdl_settings(SimpleNamespace(**values))
    assert (options.quantization, options.dtype) == ("auto", "authors")
    qlora = {name: next(s.learner for s in options.specs(name) if isinstance(s.learner, QLoRA))
             for name in options.hardness_models}
    quantization = {name: learner.config.quantization for name, learner in qlora.items()}
    assert quantization == {"huggyllama/llama-7b": "8bit", "tiiuae/falcon-7b": "none",
                            "mistralai/Mistral-7B-v0.1": "8bit", "mosaicml/mpt-7b": "none"}
    # an 8-bit hardness model's QLoRA MDL keeps the key it had (QLoRAConfig() was its config)
    llama = next(s for s in options.specs("huggyllama/llama-7b") if isinstance(s.learner, QLoRA))
    assert llama.payload("m") == MDLSpec("arc", "qlora", model="huggyllama/llama-7b", subset_sizes=(5,),
                                         seeds=(0,)).payload("m")
    assert "authors_batch" not in llama.payload("m")["config"]
    other = settings.mdl_settings(SimpleNamespace(**{**values, "mdl_model_quantization": "none"}))
    assert other.dtype == "auto"  # the embedded profile's MDL keeps its identity


def test_mdl_learner_options_reach_the_trained_learners_and_leave_the_precision_to_the_model():
    """``mdl_learner_options`` (what the dry run caps: one QLoRA update) changes the learner's config,
    so its key; the QLoRA learner still trains each hardness model at the precision it loads with."""
    from types import SimpleNamespace

    from e2h_utils.experiments import schema, settings

    values = dict(mdl_hardness_models=["huggyllama/llama-7b", "tiiuae/falcon-7b"],
                  mdl_learners={"arc": ["zero_shot", "probe", "qlora"]}, mdl_max_items={"arc": None},
                  mdl_subset_sizes=[5], mdl_seeds=[0], mdl_max_holdout=None, mdl_model_quantization="auto",
                  mdl_learner_options={"qlora": {"min_updates": 1, "min_epochs": 1}, "probe": {"epochs": 7}})
    options = settings.mdl_settings(SimpleNamespace(**values))
    for name, precision in (("huggyllama/llama-7b", "8bit"), ("tiiuae/falcon-7b", "none")):
        learners = {s.name: s.learner for s in options.specs(name)}
        assert (learners["qlora"].config.min_updates, learners["qlora"].config.min_epochs) == (1, 1)
        assert learners["qlora"].config.quantization == precision
        assert learners["probe"].config.epochs == 7
    default = settings.mdl_settings(SimpleNamespace(**{**values, "mdl_learner_options": {}}))
    spec = next(s for s in default.specs("huggyllama/llama-7b") if s.name == "qlora")
    assert spec.payload("m") == MDLSpec("arc", "qlora", model="huggyllama/llama-7b", subset_sizes=(5,),
                                        seeds=(0,)).payload("m")  # no options: the key it always had
    with pytest.raises(schema.Invalid, match="mdl_model_quantization"):
        schema.mdl_learner_options({"qlora": {"quantization": "4bit"}})
    with pytest.raises(schema.Invalid, match="unknown MDL learner that trains 'zero_shot'"):
        schema.mdl_learner_options({"zero_shot": {}})
    with pytest.raises(schema.Invalid, match="unknown option"):
        schema.mdl_learner_options({"qlora": {"no_such_option": 1}})


# Payloads of the string-learner MDLSpec (before learners were typed methods), recorded from that code:
# the typed learners keep every stored MDL result's key.
KEYS_BEFORE_TYPED_LEARNERS = json.loads((Path(__file__).parent / "mdl_keys.json").read_text())


def test_typed_learners_keep_every_key_the_named_learners_had():
    specs = {"arc_zero": MDLSpec("arc"), "arc_probe": MDLSpec("arc", "probe"), "arc_qlora": MDLSpec("arc", "qlora"),
             "sqa_zero": MDLSpec("strategyqa", max_items=600),
             "arc_probe_small": MDLSpec("arc", Probe(20), subset_sizes=(5, 20), seeds=(0, 1), max_holdout=40),
             "arc_qlora_8bit": MDLSpec("arc", QLoRA(900, QLoRAConfig(quantization="8bit")))}
    payloads = {name: spec.payload("model-x", "digest") for name, spec in specs.items()}
    # recorded at scorer version 2; a scorer version bump is meant to move every key, and nothing else may
    recorded = {name: {**key, "scorer_version": SCORER_VERSION} for name, key in KEYS_BEFORE_TYPED_LEARNERS.items()}
    assert json.loads(json.dumps(payloads)) == recorded  # as keys hash them: tuples are lists
    assert mdl.specs_for("m", {"arc": ["zero_shot", "probe"]}, subset_sizes=(5, 20))[1].learner == Probe(20)
    with pytest.raises(SpecError, match="MDL learner"):
        MDLSpec("arc", learner=ICL(3))
