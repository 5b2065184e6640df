"""e2h_utils.experiments.plans (grids of experiments, run by ``Runner.run_all`` and read by
``analysis.estimates.table``) and e2h_utils.analysis.rq_plots (their figures).

The plans run the tiny random Llama of ``conftest`` on the synthetic ARC-like frame of
``test_experiments`` (grades 3-8: easy 3-5, medium 6-7, hard 8), two test items per level,
with a fresh ``ResultStore`` per test. The figures are built from small synthetic frames.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from e2h_utils.analysis import estimates, rq_plots
from e2h_utils.analysis.plots import save_figure
from e2h_utils.data import hardness
from e2h_utils.experiments import plans, settings, split
from e2h_utils.experiments import runner as runner_module
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, Training, TrainSource
from e2h_utils.experiments.spec import TestSelection as Selection  # renamed: pytest collects Test* / test_*
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods.base import ICL, Probe, ZeroShot
from test_experiments import make_frame

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

HARD = Selection(test_fraction=0.5, max_per_level=2, levels=("hard",))
ALL_LEVELS = Selection(test_fraction=0.5, max_per_level=2)
ROW_COLUMNS = {"quantity", "point", "lo", "hi", "n_items", "n_seeds"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture()
def store(tmp_path) -> ResultStore:
    return ResultStore(tmp_path / "results")


@pytest.fixture()
def runner(tiny_lm, frame, store) -> Runner:
    return Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False)


@pytest.fixture()
def icl_calls(monkeypatch) -> list[tuple[str, int, int, float]]:
    """Every computed (not reused) seed: (train level, k, seed, label noise). A seed draws its
    examples (``runner.draw``; none for zero-shot) only when it is computed, not when it is read
    from the store."""
    calls: list[tuple[str, int, int, float]] = []
    original = runner_module.draw

    def counting(spec, pool, seed):
        calls.append((spec.train_level, spec.method.size, seed, spec.label_noise))
        return original(spec, pool, seed)

    monkeypatch.setattr(runner_module, "draw", counting)
    return calls


def result_table(runner: Runner, plan, n_boot: int = 50) -> pd.DataFrame:
    """Run a plan (``Runner.run_all``) and read it (``estimates.table``)."""
    return estimates.table(plan, runner.run_all(plans.specs(plan)), estimates.Bootstrap(n_boot))


def _in_unit_interval(table: pd.DataFrame, cols=("point", "lo", "hi")) -> bool:
    return bool(table[list(cols)].apply(lambda c: c.between(0, 1)).all().all())


def _quantity(table: pd.DataFrame, quantity: str) -> pd.DataFrame:
    return table[table["quantity"] == quantity].reset_index(drop=True)


# --- learning curves ------------------------------------------------------------------------

def test_learning_curve_rows_and_zero_shot(tiny_lm, runner):
    plan = plans.learning_curve("arc", "grade", ICL(1), [0, 1, 2], seeds=[0, 1], model=tiny_lm.spec.name, test=HARD)
    curve = result_table(runner, plan)
    assert ROW_COLUMNS | {"dataset", "measure", "method", "train_level", "n"} <= set(curve.columns)
    assert (curve["quantity"] == "accuracy").all()
    # one zero-shot row (n = 0), then every (level, n > 0)
    assert list(zip(curve["train_level"], curve["n"])) == [("none", 0), ("easy", 1), ("easy", 2),
                                                           ("hard", 1), ("hard", 2)]
    assert (curve["dataset"] == "arc").all() and (curve["method"] == "icl").all()
    assert (curve["n_items"] == 2).all()  # the hard test items only
    assert list(curve["n_seeds"]) == [1, 2, 2, 2, 2]  # zero-shot is deterministic: one seed
    assert _in_unit_interval(curve)
    assert ((curve["lo"] <= curve["point"] + 1e-9) & (curve["point"] <= curve["hi"] + 1e-9)).all()


def test_learning_curve_zero_shot_row_matches_plain_run(tiny_lm, runner):
    plan = plans.learning_curve("arc", "grade", ICL(1), [1], seeds=[0], model=tiny_lm.spec.name, test=HARD,
                                pools=("easy",))
    curve = result_table(runner, plan)
    zero = runner.run(ExperimentSpec("arc", "grade", ZeroShot(), model=tiny_lm.spec.name, test=HARD))
    assert curve.iloc[0]["point"] == pytest.approx(zero["correct"].mean())


def test_learning_curve_never_records_an_n_it_did_not_train_on(tiny_lm, frame, store, runner, icl_calls):
    """A size larger than a level's training pool stops the whole curve, before anything runs,
    naming every such point and the fix (the grade-8 pool of the synthetic frame is 5 items)."""
    hard_pool, where = split.pool_size(frame, ExperimentSpec("arc", "grade", ICL(1), Training("hard"),
                                                             model=tiny_lm.spec.name, test=HARD))
    assert (hard_pool, where) == (5, "level 'hard' of arc/grade")
    too_large = plans.learning_curve("arc", "grade", ICL(1), [1, hard_pool + 1], seeds=[0],
                                     model=tiny_lm.spec.name, test=HARD)
    with pytest.raises(SpecError) as info:
        runner.run_all(plans.specs(too_large))
    message = str(info.value)
    assert f"icl hard: icl needs {hard_pool + 1} training items" in message
    assert f"has only {hard_pool}" in message and "easy" not in message
    assert "test_fraction" in message and "nothing was run" in message
    assert icl_calls == []  # nothing was run
    assert not list(store.root.rglob("*.parquet"))  # nothing stored
    plan = plans.learning_curve("arc", "grade", ICL(1), [1, hard_pool], seeds=[0], model=tiny_lm.spec.name,
                                test=HARD)
    curve = result_table(runner, plan, n_boot=20)
    assert curve["n"].max() == hard_pool
    # the largest point trained on exactly n distinct examples (read back from the store)
    icl_calls.clear()
    largest = runner.run(ExperimentSpec("arc", "grade", ICL(hard_pool), Training("hard"), model=tiny_lm.spec.name,
                                        test=HARD))
    assert icl_calls == []
    assert (largest["n_shots"] == hard_pool).all() and len(set(largest["example_ids"].iloc[0])) == hard_pool


def test_run_refuses_n_larger_than_the_pool(tiny_lm, store, runner):
    spec = ExperimentSpec("arc", "grade", Probe(6), Training("hard"), model=tiny_lm.spec.name, test=HARD)
    with pytest.raises(SpecError, match=r"probe needs 6 training items but the pool of level 'hard' of arc/grade "
                                        r"has only 5"):
        runner.run(spec)
    assert not list(store.root.rglob("*.parquet"))  # nothing stored under a wrong n


def test_learning_curve_reuses_stored_points(tiny_lm, runner, icl_calls):
    kwargs = dict(seeds=[0], model=tiny_lm.spec.name, test=HARD)
    first = result_table(runner, plans.learning_curve("arc", "grade", ICL(1), [1], **kwargs))
    assert sorted(icl_calls) == [("easy", 1, 0, 0.0), ("hard", 1, 0, 0.0), ("none", 0, 0, 0.0)]
    icl_calls.clear()
    second = result_table(runner, plans.learning_curve("arc", "grade", ICL(1), [1, 2], **kwargs))
    # only the new size is computed; zero-shot and n = 1 come from the store
    assert sorted(icl_calls) == [("easy", 2, 0, 0.0), ("hard", 2, 0, 0.0)]
    shared = second[second["n"] <= 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(shared, first)


def test_with_cost():
    curve = pd.DataFrame({"train_level": ["none", "easy", "easy", "hard", "hard"], "n": [0, 2, 4, 2, 4],
                          "point": 0.5})
    costed = estimates.with_cost(curve, {"easy": 1, "hard": 2.5})
    assert list(costed["cost"]) == [0.0, 2.0, 4.0, 5.0, 10.0]
    assert "cost" not in curve.columns  # a copy
    with pytest.raises(ValueError, match=r"no labelling cost .*\['hard'\]"):
        estimates.with_cost(curve, {"easy": 1})


def test_few_vs_many():
    curve = pd.DataFrame({
        "dataset": "arc", "measure": "grade", "method": "icl",
        "train_level": ["none", "easy", "easy", "easy", "hard", "hard"],
        "n": [0, 5, 10, 20, 10, 20],
        "point": [0.3, 0.4, 0.5, 0.55, 0.7, 0.6],
        "lo": [0.2, 0.3, 0.4, 0.45, 0.6, 0.5], "hi": [0.4, 0.5, 0.6, 0.65, 0.8, 0.7],
    })
    few = estimates.few_vs_many(curve, few=8)
    assert len(few) == 1
    row = few.iloc[0]
    assert row["zero-shot"] == pytest.approx(0.3)
    assert row["easy n"] == 10 and row["easy accuracy"] == pytest.approx(0.5)  # nearest size at or above 8
    assert row["easy CI"] == "[40.0, 60.0]"  # percent
    assert row["best hard n"] == 10 and row["best hard accuracy"] == pytest.approx(0.7)  # the best, not the largest
    two = estimates.few_vs_many(pd.concat([curve, curve.assign(method="probe")]), few=8)
    assert list(two["method"]) == ["icl", "probe"]
    none_big_enough = estimates.few_vs_many(curve, few=100)
    assert none_big_enough.iloc[0]["easy n"] is None and np.isnan(none_big_enough.iloc[0]["easy accuracy"])


# --- parsing notebook parameters ---------------------------------------------------------------

def test_parse_targets():
    assert settings.parse_targets({"icl": ["arc/grade", "strategyqa/num_steps"],
                                   "probe": ["mmlu_stem5/school_level"]}) == [
        ("icl", "arc", "grade"), ("icl", "strategyqa", "num_steps"), ("probe", "mmlu_stem5", "school_level")]
    assert settings.parse_targets({"qlora": "arc/grade"}) == [("qlora", "arc", "grade")]  # one pair, no brackets
    assert settings.parse_targets({}) == []


@pytest.mark.parametrize("targets, message", [
    ({"icl": ["arc-grade"]}, r"expected 'dataset/measure' .*'arc-grade'.*'icl'"),
    ({"icl": ["/grade"]}, r"expected 'dataset/measure'"),
    ({"icl": ["arc/"]}, r"expected 'dataset/measure'"),
    ({"icl": ["arcc/grade"]}, r"unknown dataset 'arcc'.*valid: arc"),
    ({"icl": ["arc/grades"]}, r"unknown hardness measure 'grades'.*valid measures: grade"),
    ({"lora": ["arc/grade"]}, r"unknown method 'lora'.*valid: icl, probe, qlora"),
    (["arc/grade"], r"expected a mapping"),
])
def test_parse_targets_errors(targets, message):
    with pytest.raises(ValueError, match=message):
        settings.parse_targets(targets)


def test_parse_sources():
    parsed = settings.parse_sources({
        "zero": "none", "college": "hard",
        "ARC grade <= 3": {"dataset": "arc", "column": "grade", "max_value": 3},
        "ARC grade >= 8": {"dataset": "arc", "column": "grade", "min_value": 8},
    })
    assert list(parsed) == ["zero", "college", "ARC grade <= 3", "ARC grade >= 8"]
    assert parsed["zero"] == "none" and parsed["college"] == "hard"
    assert parsed["ARC grade <= 3"] == TrainSource("arc", "grade", max_value=3)
    assert parsed["ARC grade >= 8"] == TrainSource("arc", "grade", min_value=8)


@pytest.mark.parametrize("sources, message", [
    ({"x": "harder"}, r"source 'x': unknown training level 'harder'"),
    ({"x": {"dataset": "arc", "column": "grade", "max": 3}}, r"source 'x': unknown key\(s\) \['max'\]"),
    ({"x": {"column": "grade", "max_value": 3}}, r"source 'x': missing key\(s\) \['dataset'\]"),
    ({"x": {"dataset": "arc", "column": "grade"}}, r"source 'x': .*min_value and/or max_value"),
    ({"x": {"dataset": "arcc", "column": "grade", "max_value": 3}}, r"source 'x': unknown train-source dataset"),
    ({"x": 3}, r"source 'x' must be a training level or a mapping"),
])
def test_parse_sources_errors(sources, message):
    with pytest.raises(ValueError, match=message):
        settings.parse_sources(sources)


# --- label noise, level grid, prompt sources ---------------------------------------------------

def test_noise_sweep(tiny_lm, runner, icl_calls):
    kwargs = dict(seeds=[0, 1], model=tiny_lm.spec.name, test=HARD)
    plain = result_table(runner, [plans.comparison("arc", "grade", ICL(3), **kwargs)]).set_index("quantity")
    icl_calls.clear()
    sweep = result_table(runner, plans.label_noise("arc", "grade", ICL(3), [0.0, 0.3, 0.5], **kwargs))
    sgr = _quantity(sweep, "sgr")  # one row per comparison (per p)
    assert list(sgr["p"]) == [0.0, 0.3, 0.5]
    assert list(sgr["noise_easy_rate"]) == [0.0, 0.3, 0.5]
    assert list(sgr["noise_hard_rate"]) == pytest.approx([0.0, 0.6, 1.0])  # 2p, at most 1 (0.6 would be refused)
    with pytest.raises(ValueError, match="> 1 for hard data"):
        plans.label_noise("arc", "grade", ICL(3), [0.6], **kwargs)
    # p = 0 is the plain run: same accuracies, and nothing recomputed for it (nor zero-shot)
    at_zero = sweep[sweep["p"] == 0.0].set_index("quantity")
    for quantity in ("unsupervised", "easy", "hard", "gap"):
        assert at_zero.loc[quantity, "point"] == pytest.approx(plain.loc[quantity, "point"])
    assert {noise for *_, noise in icl_calls} == {0.3, 0.6, 0.5, 1.0}
    assert len(icl_calls) == 2 * 2 * 2  # two noisy rates x easy/hard x two seeds
    assert {"sgr", "hard_minus_easy"} <= set(sweep["quantity"])
    assert {"sgr_stable", "lo", "n_items"} <= set(sweep.columns)
    assert _quantity(sweep, "hard_minus_easy")["lo"].notna().all()
    assert (sweep["n_items"] == 2).all()


def test_level_grid_shape(tiny_lm, runner):
    plan = plans.level_grid("arc", "grade", ICL(2), seeds=[0], model=tiny_lm.spec.name, test=ALL_LEVELS)
    grid = result_table(runner, plan)
    assert len(grid) == 4 * 3 and (grid["quantity"] == "accuracy").all()
    table = grid.pivot_table(index="train_level", columns="test_level", values="point")
    assert table.shape == (4, 3)
    assert set(table.index) == {"none", "easy", "medium", "hard"}
    assert set(table.columns) == {"easy", "medium", "hard"}
    assert (grid["n_items"] == 2).all()
    assert _in_unit_interval(grid)


def test_level_grid_skips_levels_a_measure_lacks(tiny_lm, frame, store):
    # a two-valued measure (like MMLU high school / college): no medium level to train or test on
    binary = frame.assign(arc_challenge=np.where(frame["grade"].isna(), np.nan, (frame["grade"] >= 7).astype(float)))
    present = set(hardness.assign_levels(binary, hardness.get_measure("arc", "arc_split")).dropna())
    assert present == {"easy", "hard"}
    plan = plans.level_grid("arc", "arc_split", ICL(2), seeds=[0], model=tiny_lm.spec.name, test=ALL_LEVELS,
                            levels_present=present)
    runner = Runner(tiny_lm, store=store, frames={"arc": binary}, progress=False)
    grid = result_table(runner, plan)
    assert set(zip(grid["train_level"], grid["test_level"])) == {
        (train, test) for train in ("none", "easy", "hard") for test in ("easy", "hard")}
    assert len(grid) == 6


def test_source_comparison_with_train_source(tiny_lm, runner):
    low = TrainSource("arc", "grade", max_value=4)
    plan = plans.prompt_sources("arc", "grade", ICL(2),
                                sources={"zero": "none", "easy split": "easy", "grade <= 4": low},
                                seeds=[0], model=tiny_lm.spec.name, test=HARD)
    ran = runner.run_all(plans.specs(plan))
    table = estimates.table(plan, ran, estimates.Bootstrap(50))
    assert list(table["source"]) == ["zero", "easy split", "grade <= 4"]
    assert [int(ran[entry.spec]["n_shots"].iloc[0]) for entry in plan] == [0, 2, 2]
    assert list(table["pool"]) == ["no examples (zero-shot)", "arc: grade level easy", "arc: grade <= 4"]
    assert (table["n_items"] == 2).all()
    assert _in_unit_interval(table)
    # the source's examples were drawn from its rows, never from the test items
    spec = ExperimentSpec("arc", "grade", ICL(2), Training(low), model=tiny_lm.spec.name, test=HARD)
    assert spec == plan[2].spec
    result = runner.run(spec)
    examples = {i for ids in result["example_ids"] for i in ids}
    by_id = runner.frame("arc").set_index("id")
    assert len(examples) == 2 and (by_id.loc[sorted(examples), "grade"] <= 4).all()
    assert not examples & set(result["item_id"])


def test_e2h_summary(tiny_lm, runner):
    plan = [plans.comparison("arc", "grade", ICL(2), seeds=[0], model=tiny_lm.spec.name, test=HARD)]
    runs = runner.run_all(plans.specs(plan))
    assert {spec.train_level for spec in runs} == {"none", "easy", "hard"}
    table = estimates.table(plan, runs, estimates.Bootstrap(50))
    keys = set(zip(table["model"], table["dataset"], table["measure"], table["method"]))
    assert keys == {(tiny_lm.spec.name, "arc", "grade", "icl")}
    easy = _quantity(table, "easy").iloc[0]
    assert easy["n_items"] == 2 and 0 <= easy["point"] <= 1


# --- figures -----------------------------------------------------------------------------------

def _panels(fig: Figure) -> list:
    """Axes that hold data (not colorbars)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _saves(fig: Figure, tmp_path, name: str) -> None:
    written = save_figure(fig, tmp_path / name)
    assert [p.suffix for p in written] == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in written)


def _comparison_rows(rng: np.random.Generator, p_u: float, p_e: float, p_h: float, **keys) -> list[dict]:
    """The result-table rows of one comparison (``quantity``, ``point``, ``lo``, ``hi``, ...) of
    synthetic runs: unsupervised (one seed), easy and hard (two seeds) on the same 40 hard items."""
    def run(p: float, seeds: int) -> pd.DataFrame:
        return pd.DataFrame([{"item_id": f"i{j:02d}", "level": "hard", "seed": s, "correct": float(rng.random() < p)}
                             for s in range(seeds) for j in range(40)])

    return [{**keys, **row}
            for row in estimates.comparison_rows(run(p_u, 1), run(p_e, 2), run(p_h, 2), estimates.Bootstrap(50))]


def test_plot_correlations(tmp_path):
    a = pd.DataFrame([[1.0, 0.3, np.nan], [0.3, 1.0, -0.7], [np.nan, -0.7, 1.0]],
                     index=["grade", "bloom", "mdl"], columns=["grade", "bloom", "mdl"])
    b = pd.DataFrame([[1.0, 0.1], [0.1, 1.0]], index=["num_steps", "mdl"], columns=["num_steps", "mdl"])
    fig = rq_plots.plot_correlations({"arc": a, "strategyqa": b})
    assert isinstance(fig, Figure)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["arc", "strategyqa"]
    assert len(fig.axes) == 3  # and one shared colorbar
    assert len(panels[0].texts) == 7  # the NaN cells are left blank
    _saves(fig, tmp_path, "correlations")


def test_plot_accuracy_by_level(tmp_path):
    rows = [{"dataset": d, "measure": m, "level": lv, "point": 0.5, "lo": 0.4, "hi": 0.6, "n": 10}
            for d, ms in (("arc", ("grade", "bloom", "mdl")), ("strategyqa", ("num_steps",)))
            for m in ms for lv in ("easy", "medium", "hard")]
    fig = rq_plots.plot_accuracy_by_level(pd.DataFrame(rows[:-1]))  # a missing cell is drawn empty
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in _panels(fig)] == ["arc", "strategyqa"]
    _saves(fig, tmp_path, "by_level")


def test_plot_learning_curves(tmp_path):
    rows = []
    for method in ("icl", "probe"):
        rows.append({"dataset": "arc", "measure": "grade", "method": method, "train_level": "none", "n": 0})
        rows += [{"dataset": "arc", "measure": "grade", "method": method, "train_level": level, "n": n}
                 for level in ("easy", "hard") for n in (1, 2, 5)]
    curve = pd.DataFrame(rows).assign(quantity="accuracy", point=0.5, lo=0.4, hi=0.6)
    curve = estimates.with_cost(curve, {"easy": 1, "hard": 2})
    for x in ("n", "cost"):
        fig = rq_plots.plot_learning_curves(curve, x=x)
        panels = _panels(fig)
        assert len(panels) == 2
        assert [ax.get_title() for ax in panels] == ["arc / grade / icl", "arc / grade / probe"]
        assert len(panels[0].get_lines()) == 3  # easy, hard, zero-shot
        _saves(fig, tmp_path, f"curves_{x}")


def test_plot_noise(tmp_path):
    rng = np.random.default_rng(0)
    rows = [row for method in ("icl", "probe") for p in (0.0, 0.1, 0.2)
            for row in _comparison_rows(rng, 0.3, 0.6 - p, 0.7 - 2 * p, dataset="arc", measure="grade",
                                        method=method, p=p, noise_easy_rate=p, noise_hard_rate=2 * p)]
    fig = rq_plots.plot_noise(pd.DataFrame(rows))
    assert len(_panels(fig)) == 2
    _saves(fig, tmp_path, "noise")


def test_plot_level_grid(tmp_path):
    rows = [{"dataset": "arc", "measure": "grade", "method": method, "train_level": train, "test_level": test,
             "quantity": "accuracy", "point": 0.25 + 0.1 * i, "lo": 0.1, "hi": 0.9}
            for method in ("icl", "probe") for i, train in enumerate(("none", "easy", "medium", "hard"))
            for test in ("easy", "medium", "hard")]
    fig = rq_plots.plot_level_grid(pd.DataFrame(rows))
    panels = _panels(fig)
    assert len(panels) == 2
    assert len(panels[0].texts) == 4 * 3
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["none (zero-shot)", "easy", "medium", "hard"]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["easy", "medium", "hard"]
    _saves(fig, tmp_path, "grid")


def test_plot_sources(tmp_path):
    table = pd.DataFrame({"source": ["none", "ARC grade <= 3", "MMLU college"], "point": [0.3, 0.4, 0.45],
                          "lo": [0.2, 0.3, 0.35], "hi": [0.4, 0.5, 0.55]})
    fig = rq_plots.plot_sources(table, "MMLU college")
    assert len(_panels(fig)) == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(table["source"])
    _saves(fig, tmp_path, "sources")


def test_plot_by_model(tmp_path):
    rng = np.random.default_rng(1)
    models = ["org/small", "org/large"]
    rows = [row for m in models for method in ("icl", "probe")
            for row in _comparison_rows(rng, 0.3, 0.5, 0.6, model=m, dataset="arc", measure="grade", method=method)]
    fig = rq_plots.plot_by_model(pd.DataFrame(rows), models)
    panels = _panels(fig)
    assert len(panels) == 2
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["small", "large"]
    _saves(fig, tmp_path, "by_model")
    table = pd.DataFrame(rows)
    one = rq_plots.plot_by_model(table[table["model"] == models[0]], models[:1])  # a single model
    assert len(_panels(one)) == 2


def test_plot_mdl_curves(tmp_path):
    rng = np.random.default_rng(2)
    conf = pd.DataFrame([{"dataset": d, "learner": learner, "item_id": f"{d}-{i}", "seed": 0, "size": n,
                          "p_correct": rng.random()}
                         for d in ("arc", "strategyqa") for learner in ("icl", "probe")
                         for i in range(4) for n in (2, 5, 20)])
    fig = rq_plots.plot_mdl_curves(conf)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["arc", "strategyqa"]
    assert len(panels[0].get_lines()) == 2  # one per learner
    _saves(fig, tmp_path, "mdl")


def test_method_measures_narrow_one_method_and_leave_the_others():
    """The embedded profile runs QLoRA on StrategyQA only (ledger E03) and ICL and probes on every
    measure: ``method_measures`` narrows the method it names and no other."""
    from e2h_utils.pipeline.plan import notebook_parameters

    values = notebook_parameters("embedded", "easy_to_hard")
    cfg = settings.parse("easy_to_hard", values)
    ran = {(c.easy.method.kind, c.easy.dataset, c.easy.measure) for c in cfg.e2h_plan()}
    assert {(d, m) for kind, d, m in ran if kind == "qlora"} == {("strategyqa", "num_steps")}
    for kind in ("icl", "probe"):
        assert {(d, m) for k, d, m in ran if k == kind} == {
            ("arc", "grade"), ("mmlu_stem5", "school_level"), ("strategyqa", "num_steps")}
    wider = settings.parse("easy_to_hard", {**values, "method_measures": {}})
    assert ({(c.easy.method.kind, c.easy.dataset) for c in wider.e2h_plan()}
            >= {("qlora", "arc"), ("qlora", "mmlu_stem5")})


def test_prompt_formats_reach_every_answer_scored_run_and_the_paper_keeps_the_authors():
    """The embedded profile reads ARC and MMLU with the cloze prompt (ledger E13) in every notebook that
    scores answers; StrategyQA, chain of thought and the paper profile keep the authors' prompts."""
    from e2h_utils.pipeline.plan import notebook_parameters

    for name in ("easy_to_hard", "label_noise", "sample_count", "model_scale", "train_test_gap", "walkthrough"):
        cfg = settings.parse(name, notebook_parameters("embedded", name))
        specs = plans.specs(cfg.plan())
        assert specs, name
        for spec in specs:
            if spec.method.kind.endswith("_cot") or spec.measure == "arc_split":
                continue  # chain of thought has its own prompts; the sanity check names its formats
            expected = "mc_plain" if spec.dataset in ("arc", "mmlu_stem5") else None
            assert spec.prompt_format == expected, (name, spec.describe())
        paper = settings.parse(name, notebook_parameters("paper", name))
        assert all(s.prompt_format is None for s in plans.specs(paper.plan()) if s.measure != "arc_split"), name


def test_equal_cost_and_grid_pairs_are_paired_comparisons_on_the_curves_own_runs():
    test = Selection(max_per_level=5)
    curve = plans.learning_curve("arc", "grade", Probe(10), [10, 20, 40], seeds=(0,), model="m", test=test)
    (pair,) = plans.at_equal_cost(curve, {"easy": 1, "hard": 2})
    labels = pair.labels
    assert (labels["cost"], labels["n_easy"], labels["n_hard"]) == (40.0, 40, 20)  # the largest cost both reach
    assert pair.easy.method.size == 40 and pair.hard.method.size == 20 and not pair.unsupervised.method.trains
    assert {pair.easy, pair.hard} <= set(plans.specs(curve))  # the curve's own runs: nothing new to compute
    grid = plans.level_grid("arc", "grade", Probe(10), seeds=(0,), model="m", test=Selection(max_per_level=5))
    pairs = plans.grid_pairs(grid)
    assert [p.labels["lower"] for p in pairs] == ["easy", "medium"] and all(p.level == "hard" for p in pairs)
    assert all(set(p.specs) <= set(plans.specs(grid)) for p in pairs)
    assert pairs[0].easy.train_level == "easy" and pairs[0].hard.train_level == "hard"


def test_robustness_runs_take_their_own_k():
    """model_scale's robustness runs use robustness_k_shot (the paper's figure: k = 4, analysis.Rmd:964),
    the scale runs k_shot; a dataset robustness_k_shot does not name falls back to k_shot."""
    from e2h_utils.experiments import settings
    from e2h_utils.pipeline.plan import notebook_parameters

    values = notebook_parameters("smoke", "model_scale")
    cfg = settings.parse("model_scale", {**values,
                                         "robustness_runs": {"icl_cot": ["strategyqa/num_steps", "gsm8k/num_steps"]},
                                         "robustness_k_shot": {"strategyqa": 4}})
    ks = {e.easy.dataset: e.easy.method.inner.k for e in cfg.robustness_plan("embedded")}
    assert ks == {"strategyqa": 4, "gsm8k": cfg.k_shot["gsm8k"]}
    assert {e.easy.method.k for e in cfg.scale_plan("embedded") if e.easy.method.kind == "icl"} == {cfg.k_shot["arc"]}
