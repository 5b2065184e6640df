"""The easy-to-hard evaluators end to end on the tiny random model: candidates sampled once per
problem set and stored, evaluators trained on easy / hard / all samples and stored per seed,
nothing recomputed on a rerun, and the result table (accuracy per rule, evaluator SGR, AUROC)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2h_utils.analysis import evaluator_table
from e2h_utils.analysis.estimates import Bootstrap
from e2h_utils.experiments.evaluation import Candidates, EvaluatorRunner, EvaluatorSpec
from e2h_utils.experiments.spec import SpecError
from e2h_utils.experiments.spec import TestSelection as Selection
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods.base import Probe, QLoRA
from e2h_utils.methods.probe import ProbeConfig
from e2h_utils.methods.qlora import QLoRAConfig
from e2h_utils.methods.sampling import Sampling

TINY_QLORA = QLoRAConfig(quantization="none", lr=1e-2, dropout=0.0, min_updates=1, min_epochs=1, max_batch=8)


def strategyqa_frame(n: int = 30) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append({"id": f"sqa/{i}", "split": "train", "question": f"Is {i} an even number?",
                     "choices": ["yes", "no"], "label": i % 2, "answer": "yes" if i % 2 == 0 else "no",
                     "reasoning": f"{i} divided by 2 leaves {i % 2}.", "num_steps": 1 + i % 5})
    return pd.DataFrame(rows)


@pytest.fixture
def runner(tiny_lm, tmp_path, one_thread):
    return EvaluatorRunner(tiny_lm, store=ResultStore(tmp_path), frames={"strategyqa": strategyqa_frame()},
                           progress=False)


def candidates(tiny_lm, n: int = 3) -> Candidates:
    return Candidates("strategyqa", "num_steps", Sampling(n=n, temperature=1.0, k=2, max_new_tokens=8),
                      test=Selection(max_per_level=3, levels=("hard",)), train_problems=3, model=tiny_lm.spec.name)


def test_candidates_and_evaluators_are_stored_and_reused(runner, tiny_lm):
    cands = candidates(tiny_lm)
    sets = runner.problem_sets(cands)
    assert len(sets["examples"]) == 2 and len(sets["test"]) == 3
    assert set(sets["test"]["level"]) == {"hard"} and set(sets["easy"]["level"]) == {"easy"}
    training = set(sets["easy"]["id"]) | set(sets["hard"]["id"])
    assert not training & set(sets["examples"]["id"]) and not training & set(sets["test"]["id"])
    samples = runner.samples(cands)
    assert {k: len(v) for k, v in samples.items()} == {"test": 9, "easy": 9, "hard": 9}
    assert all(list(part) == [0, 1, 2] for _, part in samples["test"].groupby("item_id")["sample"])

    specs = [EvaluatorSpec(cands, Probe(6, ProbeConfig(epochs=5)), level, (0, 1)) for level in ("easy", "hard", "all")]
    specs.append(EvaluatorSpec(cands, QLoRA(4, TINY_QLORA), "easy", (0,)))
    first = runner.run_all(specs)
    for spec, scores in first.items():
        assert len(scores) == 9 * len(spec.seeds) and scores["score"].between(0, 1).all()
    assert (first[specs[0]].groupby("seed")["score"].apply(np.array).map(len) == 9).all()

    again = EvaluatorRunner(tiny_lm, store=runner.store, frames=runner.frames, progress=False)
    second = again.run_all(specs)
    assert all(t.computed == 0 for t in again.timings)  # every sample set and seed came from the store
    for spec in specs:
        pd.testing.assert_frame_equal(first[spec], second[spec])
    # a different sampling temperature is another sample set, and other evaluator results
    other = EvaluatorSpec(Candidates("strategyqa", "num_steps", Sampling(n=3, temperature=0.5, k=2, max_new_tokens=8),
                                     test=cands.test, train_problems=3, model=cands.model), specs[0].evaluator)
    assert again.payload(other)["samples"] != again.payload(specs[0])["samples"]


def test_result_table_has_every_rule_the_evaluator_sgr_and_auroc(runner, tiny_lm):
    cands = candidates(tiny_lm)
    scores = {(spec.evaluator.kind, spec.train_level): frame for spec, frame in runner.run_all(
        [EvaluatorSpec(cands, Probe(6, ProbeConfig(epochs=5)), level, (0, 1)) for level in ("easy", "hard")]).items()}
    test = runner.samples(cands)["test"]
    result = evaluator_table.table(test, scores,
                                   labels={"model": "tiny", "dataset": "strategyqa", "measure": "num_steps"},
                                   bootstrap=Bootstrap(n_boot=50))
    readings = result[result["quantity"] == "accuracy"]
    assert set(readings["rule"]) == {"majority", "pass_at_n", "best_of_n", "weighted"}
    assert sorted(readings["n_samples"].unique()) == [1, 2, 3]
    # pass@N is the ceiling of every rule
    ceiling = readings[readings["rule"] == "pass_at_n"].set_index("n_samples")["point"]
    assert all(row.point <= ceiling[row.n_samples] + 1e-12 for row in readings.itertuples())
    sgr = evaluator_table.sgr_rows(result)
    assert set(sgr["rule"]) == {"best_of_n", "weighted"} and set(sgr["n_samples"]) == {3}
    assert {"unsupervised", "easy", "hard", "gap", "sgr"} <= set(sgr["quantity"])
    # the comparison's "unsupervised" is majority voting over the same samples
    majority = readings[(readings["rule"] == "majority") & (readings["n_samples"] == 3)]["point"].item()
    assert sgr[sgr["quantity"] == "unsupervised"]["point"].eq(majority).all()
    assert len(result[result["quantity"] == "auroc"]) == 2


def test_bad_evaluator_specs_are_named_before_anything_runs(runner, tiny_lm):
    cands = candidates(tiny_lm)
    with pytest.raises(SpecError, match="at most 9 exist"):
        runner.run_all([EvaluatorSpec(cands, Probe(50), "easy")])
    with pytest.raises(SpecError, match="unknown evaluator training level"):
        EvaluatorSpec(cands, Probe(5), "medium")
    with pytest.raises(SpecError, match="Probe or QLoRA"):
        EvaluatorSpec(cands, "probe", "easy")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="steps"):
        Candidates("strategyqa", "steps", Sampling(n=2))
    assert not list(runner.store.root.rglob("*.parquet"))  # nothing was computed


def test_settings_make_the_plan_and_name_bad_parameters():
    """``settings.EasyToHardEvaluators``: one Candidates per dataset, one EvaluatorSpec per
    (dataset, evaluator that runs on it, training level); unknown names fail before anything runs."""
    from e2h_utils.experiments import settings
    from e2h_utils.pipeline.plan import notebook_parameters

    values = notebook_parameters("smoke", "easy_to_hard_evaluators")
    cfg = settings.parse("easy_to_hard_evaluators", values)
    specs = cfg.evaluator_plan()
    assert len(specs) == (2 + 1) * 3  # probe on strategyqa and math, qlora on strategyqa; easy / hard / all
    math = cfg.candidates("math")
    assert math.test.fixed == "math500" and math.test.levels == ("hard",) and math.sampling.top_k == 20
    assert {s.train_level for s in specs} == {"easy", "hard", "all"}
    for bad, match in (({"evaluator_datasets": {"mathh": "level"}}, "unknown dataset .*'mathh'"),
                       ({"evaluators": {"probe": ["gsm8k"]}}, "does not sample"),
                       ({"evaluators": {"icl": ["math"]}}, "unknown evaluator 'icl'"),
                       ({"train_levels": ["easy", "medium"]}, "unknown .*training level 'medium'"),
                       ({"n_samples": {"strategyqa": 2}}, "n_samples has no value for dataset 'math'")):
        with pytest.raises(settings.SettingsError, match=match):
            settings.parse("easy_to_hard_evaluators", {**values, **bad})


def test_training_problems_can_have_fewer_samples_than_test_problems(runner, tiny_lm):
    cands = Candidates("strategyqa", "num_steps", Sampling(n=3, temperature=1.0, k=2, max_new_tokens=6),
                       test=Selection(max_per_level=2, levels=("hard",)), train_problems=2, train_n=1,
                       model=tiny_lm.spec.name)
    samples = runner.samples(cands)
    assert len(samples["test"]) == 2 * 3 and len(samples["easy"]) == 2 * 1
    # the one training sample of a problem is the first of the N a test problem would get
    assert set(samples["easy"]["sample"]) == {0}
    with pytest.raises(SpecError, match="at most 2 exist"):
        runner.check([EvaluatorSpec(cands, Probe(3), "easy")])


def test_two_rules_of_the_same_evaluator_are_compared_in_pairs():
    from e2h_utils.analysis.evaluator_table import _difference

    same = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    row = _difference(same, same.copy(), Bootstrap(n_boot=200))
    assert (row["point"], row["lo"], row["hi"]) == (0.0, 0.0, 0.0)
