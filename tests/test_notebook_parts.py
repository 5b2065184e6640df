"""What the notebooks call instead of loops of their own: each output written and recorded
(``analysis.outputs``), the plan as a table before it runs (``plans.table``, ``MDLSettings.table``,
``evaluation.plan_table``), one plan per model (``analysis.per_model``), every dataset's correlations
and zero-shot accuracy by level (``analysis.hardness_stats``), one question per level (``prompts``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from e2h_utils import paths
from e2h_utils.analysis import estimates, hardness_stats, outputs, per_model, provenance
from e2h_utils.data import hardness, prompts
from e2h_utils.engine import runtime
from e2h_utils.experiments import evaluation, plans, settings
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import TestSelection as Selection  # pytest collects Test*
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods.base import ICL
from e2h_utils.pipeline import notebooks, reproduce
from test_experiments import make_frame

ROOT = Path(__file__).resolve().parents[1]


def _defaults(name: str) -> dict:
    values = notebooks.notebook_defaults(ROOT / "notebooks" / f"{name}.ipynb")
    return {k: v for k, v in values.items() if k not in reproduce.INJECTED}


def test_outputs_write_each_file_once_return_what_they_show_and_are_listed_in_the_provenance(tmp_path):
    out = outputs.Outputs(tmp_path / "nb")
    frame = pd.DataFrame({"a": [1, 2]})
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    assert out.table(frame, "t") is frame and out.parquet(frame, "items") is frame and out.figure(fig, "f") is fig
    out.tables({"spearman_arc": frame, "spearman_mmlu": frame})
    assert out.figures({"g": fig}) == [fig]
    names = sorted(p.name for p in out.files)
    assert names == ["f.pdf", "f.png", "g.pdf", "g.png", "items.parquet", "spearman_arc.csv", "spearman_arc.tex",
                     "spearman_mmlu.csv", "spearman_mmlu.tex", "t.csv", "t.tex"]
    assert all(p.is_file() for p in out.files)
    provenance.Log().write(out)
    record = json.loads((tmp_path / "nb" / provenance.FILE).read_text())
    assert sorted(Path(f).name for f in record["files"]) == names


def _comparison(model: str):
    test = Selection(test_fraction=0.5, max_per_level=4)
    return [plans.comparison("arc", "grade", ICL(3), seeds=(0, 1), model=model, test=test)]


def test_the_plan_table_has_one_row_per_run_before_anything_runs():
    table = plans.table(_comparison("embedded"))
    assert list(table["trained on"]) == ["none", "easy", "hard"]
    assert list(table["size"]) == [0, 3, 3] and set(table["seeds"]) == {1, 2}  # zero-shot runs one seed
    assert set(table["test items per level"]) == {4} and set(table["model"]) == {"embedded"}


def test_the_mdl_and_evaluator_plans_are_tables_too():
    mdl_settings = settings.parse("hardness_measures", _defaults("hardness_measures")).mdl
    rows = mdl_settings.table()
    assert len(rows) == sum(len(mdl_settings.specs(m)) for m in mdl_settings.hardness_models) > 0
    specs = settings.parse("easy_to_hard_evaluators", _defaults("easy_to_hard_evaluators")).evaluator_plan()
    table = evaluation.plan_table(specs)
    assert len(table) == len(specs) > 0 and set(table["trained on"]) <= {"easy", "hard", "all"}


def test_per_model_reuses_the_notebooks_runner_and_runs_other_models_one_at_a_time(tiny_lm, tmp_path, monkeypatch):
    frame, store = make_frame(), ResultStore(tmp_path)
    own = Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False)
    placed: list[runtime.RunSettings] = []  # the run settings each other model was loaded with

    def other_runner(lm):
        placed.append(lm.settings)
        return Runner(lm, store=store, frames={"arc": frame}, progress=False)

    monkeypatch.setattr(per_model, "Runner", other_runner)
    log, name = provenance.Log(), tiny_lm.spec.name
    given = runtime.RunSettings(batch_tokens=1234)
    common = {"dtype": "auto", "quantization": "none", "run_settings": given, "log": log}
    first = per_model.table([name], _comparison, estimates.Bootstrap(50), runner=own, **common)
    assert not log.runs and own.timings and not placed  # its own runner is the notebook's to log
    again = per_model.table([name], _comparison, estimates.Bootstrap(50), **common)
    assert len(log.runs) == 3 and not any(run["seeds computed"] for run in log.runs)  # read back, not recomputed
    assert placed == [given]  # placed by the settings passed, not by the environment
    pd.testing.assert_frame_equal(first, again)
    assert per_model.table([], _comparison, estimates.Bootstrap(50), **common).empty


def test_correlations_and_zero_shot_accuracy_by_level_of_every_dataset(tiny_lm, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.RESULTS_ENV, str(tmp_path))
    frames = {"arc": make_frame()}
    correlations = hardness_stats.correlations(frames, ["arc"])
    rho = correlations.matrices["arc"]
    assert list(rho.index) == ["grade", "question_words", "answer_chars"]
    assert list(correlations.tables()) == ["spearman_arc"] and len(correlations.strongest()) == 3
    scored = {"arc": pd.DataFrame({"id": frames["arc"].dropna(subset=["grade"])["id"].iloc[:30]})}  # annotated items
    by_level = hardness_stats.zero_shot_by_level(tiny_lm, frames, scored, n_boot=20)
    assert set(by_level["measure"]) == {"grade", "question_words", "answer_chars"}
    assert by_level.groupby("measure")["n"].sum().eq(30).all()  # each measure's levels hold the 30 scored items
    assert hardness_stats.zero_shot_by_level(tiny_lm, frames, {}).empty


def test_one_question_per_level_as_the_model_reads_it():
    frame = make_frame()
    text = prompts.one_per_level(frame, hardness.get_measure("arc", "grade"), prompts.get_format("mc_plain", "arc"))
    assert "--- an easy question (grade " in text and "--- a hard question (grade 8)" in text


@pytest.mark.parametrize("name", ["easy_to_hard", "train_test_gap"])
def test_the_datasets_a_notebook_reads_are_named_by_its_settings(name):
    cfg = settings.parse(name, _defaults(name))
    wanted = cfg.datasets if name == "easy_to_hard" else cfg.grid_datasets
    assert wanted and len(set(wanted)) == len(wanted)
