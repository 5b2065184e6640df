"""Every notebook executed by papermill under the ``smoke`` profile, with checks on what it wrote.

The notebooks and parameter files are copied into a temporary project (``E2H_HOME``), so the
test writes nothing into the checkout; the converted embedded model is reused from the real
cache (``E2H_CACHE``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2h_utils.experiments import mdl
from e2h_utils import paths
from e2h_utils.pipeline import plan
from e2h_utils.pipeline import reproduce

ROOT = Path(__file__).resolve().parents[1]
SMOKE = sorted(p.stem for p in (ROOT / "parameters" / "smoke").glob("*.yaml") if not p.name.startswith("_"))

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def smoke_project(tmp_path_factory, mirror_module):
    """One temporary project for every notebook of the module (the report test reads them all)."""
    tmp_path = tmp_path_factory.mktemp("smoke-project")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("E2H_CACHE", str(paths.cache_dir()))  # before E2H_HOME moves the default
        monkeypatch.setenv("E2H_HOME", str(tmp_path))
        yield tmp_path


def test_every_notebook_has_a_smoke_profile():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and notebooks == SMOKE


def _rows(table: pd.DataFrame, quantity: str) -> pd.DataFrame:
    return table[table["quantity"] == quantity]


def test_easy_to_hard_smoke(smoke_project):
    before = stored_runs()
    status = reproduce.run("smoke", only=["easy_to_hard"])
    assert status == {"easy_to_hard": reproduce.RAN}
    assert_plan_matches_store("easy_to_hard", before)
    out = smoke_project / "outputs" / "smoke" / "easy_to_hard"
    assert (out / "easy_to_hard.ipynb").is_file()
    for stem in ("figures/hard_accuracy", "figures/sgr"):
        for ext in (".pdf", ".png"):
            assert (out / (stem + ext)).stat().st_size > 1000, stem + ext
    result = pd.read_csv(out / "tables" / "results.csv")  # the one result table
    comparisons = _rows(result, "sgr")
    pairs = {("arc", "grade"), ("arc", "mdl"), ("strategyqa", "num_steps")}  # the smoke YAML's measures
    assert set(zip(comparisons["dataset"], comparisons["measure"], comparisons["method"])) == {
        (d, m, method) for d, m in pairs for method in ("icl", "probe")} | {
        (d, m, "qlora") for d, m in pairs - {("arc", "mdl")}} | {  # method_measures: no QLoRA on ARC MDL
        (d, "num_steps", method) for d in ("gsm8k", "strategyqa") for method in ("icl_cot", "qlora_cot")}
    assert len(comparisons) == 12
    for quantity in ("unsupervised", "easy", "hard"):
        _assert_cis(_rows(result, quantity), "point", "lo", "hi")
    accuracies = result[result["quantity"].isin(["unsupervised", "easy", "hard"])]
    cot = accuracies["method"].str.endswith("_cot")
    assert (accuracies.loc[~cot, "n_items"] == 6).all()  # max_test_per_level in the smoke YAML
    assert (accuracies.loc[cot, "n_items"] == 2).all()  # cot_max_test_per_level
    sgr = pd.read_csv(out / "tables" / "sgr.csv")
    assert len(sgr) == 12 and "SGR" in sgr.columns and "SGR clipped to [0, 1]" in sgr.columns
    rules = pd.read_csv(out / "tables" / "cot_answer_rules.csv")  # both answer rules, per CoT row
    assert sorted(rules["rule"]) == sorted(["strict", "lenient"] * 4)
    assert (out / "tables" / "sgr.tex").read_text().lstrip().startswith("\\begin{tabular}")
    items = pd.read_parquet(out / "tables" / "items.parquet")
    assert set(items["condition"]) == {"unsupervised", "easy", "hard"}
    assert set(items["level"]) == {"hard"}
    assert set(items["method"]) == {"icl", "probe", "qlora", "icl_cot", "qlora_cot"}  # the comparison's method
    assert set(items["measure"]) == {"grade", "mdl", "num_steps"}  # the MDL measure ran like any other
    by_level = pd.read_csv(out / "tables" / "accuracy_by_level.csv")
    assert set(by_level["condition"]) == {"unsupervised", "easy", "hard"} and by_level["accuracy"].between(0, 1).all()
    sanity = pd.read_csv(out / "tables" / "sanity_zero_shot.csv")
    assert set(sanity["prompt_format"]) == {"mc_lettered", "mc_plain"} and (sanity["n_items"] == 4).all()
    assert set(sanity["test_level"]) == {"easy", "hard"}
    generations = pd.read_parquet(out / "tables" / "generations.parquet")
    assert set(generations["method"]) == {"icl_cot", "qlora_cot"}
    # StrategyQA's CoT baseline is the answer-scored zero-shot run: it generates nothing
    strategyqa = generations[generations["dataset"] == "strategyqa"]
    assert set(strategyqa["condition"]) == {"easy", "hard"}
    assert set(generations.loc[generations["dataset"] == "gsm8k", "condition"]) == {"unsupervised", "easy", "hard"}
    assert generations["generation"].map(len).gt(0).all()  # the model wrote something for every item
    all_to_all = pd.read_csv(out / "tables" / "all_to_all.csv")
    assert set(all_to_all["train_level"]) == {"none", "all"} and set(all_to_all["method"]) == {"icl", "probe", "qlora"}
    assert (all_to_all["test items"] == 6).all()  # 2 per level x 3 levels
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["runs"] and set(provenance["models"]) == {"embedded"}
    assert provenance["host"]["cores"] >= 1 and provenance["host"]["matmul_gflops"] > 0  # wall times need the machine
    assert {Path(f).name for f in provenance["files"]} >= {"sgr.csv", "results.csv", "items.parquet"}
    # nothing changed: the second run is skipped
    assert reproduce.run("smoke", only=["easy_to_hard"]) == {"easy_to_hard": reproduce.UP_TO_DATE}


# --- the RQ1 / RQ3 / RQ4 notebooks and the walkthrough -------------------------------------------

def _smoke_params(name: str) -> dict:
    return reproduce.check_parameters(ROOT / "notebooks" / f"{name}.ipynb",
                                      ROOT / "parameters" / "smoke" / f"{name}.yaml")


def _run_smoke(name: str) -> Path:
    """Execute one notebook under the smoke profile; its output folder."""
    before = stored_runs()
    status = reproduce.run("smoke", only=[name])
    assert status == {name: reproduce.RAN}
    out = paths.outputs_dir("smoke") / name
    assert (out / f"{name}.ipynb").is_file()
    assert_plan_matches_store(name, before)
    return out


def stored_runs() -> dict[str, set[int]]:
    """{key: stored seeds} of the result store (features aside)."""
    stored: dict[str, set[int]] = {}
    for p in paths.results_dir().rglob("seed-*.parquet"):
        stored.setdefault(p.parent.name, set()).add(int(p.stem.split("-")[1]))
    return stored


def assert_plan_matches_store(name: str, before: dict[str, set[int]]) -> None:
    """The preflight plan of the notebook lists exactly the runs it needs: every planned key has
    all its seeds stored, and every run the notebook stored (keys new since ``before``, the other
    notebooks' runs aside) is in the plan; none is left waiting for MDL results."""
    stored = stored_runs()
    runs = plan.build("smoke", [name])
    assert runs and not [r.label for r in runs if r.pending]
    planned = {r.key for r in runs}
    new = set(stored) - set(before)
    assert new <= planned, f"{name} stored runs its plan does not list: {sorted(new - planned)}"
    for run in runs:
        assert set(run.seeds) <= stored.get(run.key, set()) and run.done, run.label


def _assert_figures(out: Path, *stems: str) -> None:
    for stem in stems:
        for ext in (".pdf", ".png"):
            path = out / "figures" / (stem + ext)
            assert path.is_file() and path.stat().st_size > 1000, path


def _targets(mapping: dict) -> set[tuple[str, str, str]]:
    """{method: ["dataset/measure", ...]} of a YAML -> {(method, dataset, measure)}."""
    return {(method, *pair.split("/")) for method, pairs in mapping.items() for pair in pairs}


def _notebook_text(out: Path, name: str) -> str:
    """Every text output of the executed notebook, joined."""
    import nbformat

    nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def _assert_cis(table: pd.DataFrame, point: str, lo: str, hi: str) -> None:
    assert table[point].between(0, 1).all()
    assert (table[lo] <= table[point] + 1e-9).all() and (table[point] <= table[hi] + 1e-9).all()


def test_hardness_measures_smoke(smoke_project):
    params = _smoke_params("hardness_measures")
    out = _run_smoke("hardness_measures")
    _assert_figures(out, "mdl_learning_curves", "correlations", "zero_shot_by_level")
    scores = pd.read_parquet(out / "tables" / "mdl_scores.parquet")
    assert set(scores["dataset"]) == set(params["mdl_learners"])
    for dataset, learners in params["mdl_learners"].items():
        part = scores[scores["dataset"] == dataset]
        assert len(part) == params["mdl_max_items"][dataset] and part["id"].is_unique
        for column in [mdl.COLUMNS[learner] for learner in learners]:  # mdl (zero-shot), mdl_probe
            assert part[column].between(0, 1).all(), (dataset, column)
    assert "mdl_probe" in scores.columns and scores.loc[scores["dataset"] == "strategyqa", "mdl_probe"].isna().all()
    for dataset in params["datasets"]:  # a square Spearman table per dataset
        rho = pd.read_csv(out / "tables" / f"spearman_{dataset}.csv").set_index("measure")
        assert list(rho.index) == list(rho.columns) and len(rho) >= 2, dataset
        values = rho.to_numpy(dtype=float)
        assert (abs(values[np.isfinite(values)]) <= 1 + 1e-9).all()
        assert ("mdl" in rho.index) == (dataset in params["mdl_learners"])
    counts = pd.read_csv(out / "tables" / "level_counts.csv")
    assert set(counts["dataset"]) == set(params["datasets"])
    by_level = pd.read_csv(out / "tables" / "zero_shot_by_level.csv")
    assert set(by_level["dataset"]) == set(params["mdl_learners"])
    assert set(by_level["level"]) <= {"easy", "medium", "hard"} and "mdl" in set(by_level["measure"])
    _assert_cis(by_level, "point", "lo", "hi")


def test_sample_count_smoke(smoke_project):
    params = _smoke_params("sample_count")
    out = _run_smoke("sample_count")
    _assert_figures(out, "learning_curves", "learning_curves_cost")
    curve = pd.read_csv(out / "tables" / "learning_curves.csv")
    expected = set()
    for method, dataset, measure in _targets(params["curves"]):
        expected.add((method, dataset, measure, "none", 0))  # the zero-shot row
        expected |= {(method, dataset, measure, level, n) for level in ("easy", "hard")
                     for n in params["sizes"][method] if n > 0}
    rows = list(zip(curve["method"], curve["dataset"], curve["measure"], curve["train_level"], curve["n"]))
    assert len(rows) == len(expected) and set(rows) == expected
    _assert_cis(curve, "point", "lo", "hi")
    assert (curve["n_items"] == params["max_test_per_level"]).all()  # hard test items only
    costs = params["label_costs"]
    assert list(curve["cost"]) == [0 if level == "none" else n * costs[level]
                                   for level, n in zip(curve["train_level"], curve["n"])]
    few = pd.read_csv(out / "tables" / "few_easy_vs_hard.csv")
    assert set(zip(few["method"], few["dataset"], few["measure"])) == _targets(params["curves"])


def test_label_noise_smoke(smoke_project):
    params = _smoke_params("label_noise")
    out = _run_smoke("label_noise")
    _assert_figures(out, "label_noise")
    table = pd.read_csv(out / "tables" / "label_noise.csv")
    targets = _targets(params["sweeps_to_run"])
    sgr = _rows(table, "sgr")
    assert len(sgr) == len(targets) * len(params["rates"])
    assert set(zip(sgr["method"], sgr["dataset"], sgr["measure"], sgr["p"])) == {
        (*t, p) for t in targets for p in params["rates"]}
    assert list(sgr["noise_easy_rate"]) == list(sgr["p"])
    assert sgr["noise_hard_rate"].tolist() == pytest.approx(
        [min(1.0, params["hard_multiplier"] * p) for p in sgr["p"]])
    for cond in ("unsupervised", "easy", "hard"):
        _assert_cis(_rows(table, cond), "point", "lo", "hi")
    # zero-shot does not depend on the noise rate
    assert (_rows(table, "unsupervised").groupby(["method", "dataset"])["point"].nunique() == 1).all()


def test_model_scale_smoke(smoke_project):
    params = _smoke_params("model_scale")
    out = _run_smoke("model_scale")
    _assert_figures(out, "accuracy_by_model", "sgr_by_model")
    result = pd.read_csv(out / "tables" / "results.csv")
    assert params["models_to_compare"] == ["embedded"]
    assert set(result["model"]) == {"embedded"}
    summary = _rows(result, "sgr")
    assert set(zip(summary["method"], summary["dataset"], summary["measure"])) == _targets(params["runs"])
    assert len(summary) == len(_targets(params["runs"]))
    for cond in ("unsupervised", "easy", "hard"):
        _assert_cis(_rows(result, cond), "point", "lo", "hi")
    sgr = pd.read_csv(out / "tables" / "sgr_by_model.csv")
    assert len(sgr) == len(summary) and "SGR" in sgr.columns
    text = _notebook_text(out, "model_scale")
    assert "Only one model was given (embedded)" in text and "Only one model (embedded) was run" in text
    _assert_figures(out, "robustness")  # StrategyQA CoT on the robustness models
    robustness = pd.read_csv(out / "tables" / "robustness.csv")
    assert list(robustness["model"]) == params["robustness_models"] and set(robustness["method"]) == {"icl_cot"}


def test_train_test_gap_smoke(smoke_project):
    params = _smoke_params("train_test_gap")
    out = _run_smoke("train_test_gap")
    _assert_figures(out, "level_grid", "third_grade_to_college")
    grid = pd.read_csv(out / "tables" / "level_grid.csv")
    targets = _targets(params["grid"])
    levels = ("easy", "medium", "hard")
    assert len(grid) == len(targets) * len(params["grid_train_levels"]) * len(levels)
    assert set(zip(grid["method"], grid["dataset"], grid["measure"], grid["train_level"], grid["test_level"])) == {
        (*t, train, test) for t in targets for train in params["grid_train_levels"] for test in levels}
    assert (grid["n_items"] == params["grid_max_test_per_level"]).all()
    _assert_cis(grid, "point", "lo", "hi")
    assert ("icl_cot", "gsm8k", "num_steps") in targets  # chain of thought in the grid, as the paper's
    college = pd.read_csv(out / "tables" / "third_grade_to_college.csv")
    assert list(college["model"].unique()) == params["college_models"]
    assert list(college["source"]) == list(params["college_sources"])  # the 5 sources, in order
    assert (college["n_items"] == params["college_max_test"]).all()
    shots = dict(zip(college["source"], college["n_shots"]))
    assert all(shots[name] == (0 if source == "none" else params["college_k"])
               for name, source in params["college_sources"].items())
    _assert_cis(college, "point", "lo", "hi")


def test_walkthrough_smoke(smoke_project):
    params = _smoke_params("walkthrough")
    out = _run_smoke("walkthrough")
    _assert_figures(out, "live_experiment")
    live = pd.read_csv(out / "tables" / "live_experiment.csv")
    assert set(live["quantity"]) == {"unsupervised", "easy", "hard", "gap", "easy_gain", "hard_minus_easy", "sgr",
                                     "sgr_clipped"}
    assert set(zip(live["dataset"], live["measure"])) == {(params["dataset"], params["measure"])}
    assert (live["n_items"] == params["n_test"]).all()
    for cond in ("unsupervised", "easy", "hard"):
        _assert_cis(_rows(live, cond), "point", "lo", "hi")


def test_report_of_the_smoke_profile_in_a_browser(smoke_project):
    """`make report` on the smoke profile, opened in headless Chromium: the index loads with no
    console error, every image has loaded, every link of the site resolves; the index's screenshot
    is written to outputs/tests/report_index.png of the checkout."""
    import browser

    from e2h_utils.pipeline import report

    reason = browser.why_no_browser()
    statuses = reproduce.run("smoke")  # the notebooks the tests above did not run yet (the rest is up to date)
    assert set(statuses.values()) <= {reproduce.RAN, reproduce.UP_TO_DATE}, statuses
    site = report.build("smoke", smoke_project / "report")
    index = (site / "index.html").read_text()
    for name in SMOKE:  # a card and a rendered notebook per notebook; every claim with its verdict
        assert f'id="{name}"' in index and (site / "notebooks" / f"{name}.html").is_file()
        claims = pd.read_csv(paths.outputs_dir("smoke") / name / "tables" / "claims.csv")
        for verdict in claims["verdict"]:
            assert verdict.split(" ")[0] in ("consistent", "inconsistent", "inconclusive")
            assert verdict in index
    assert report.stale(site, "smoke") == []
    assert "<script src=" not in (site / "notebooks" / "easy_to_hard.html").read_text()  # nothing from a CDN
    if reason:
        pytest.skip(reason)
    screenshot = ROOT / "outputs" / "tests" / "report_index.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with browser.serve(site) as base:
        visit = browser.check_site(base, screenshot)
    assert visit.pages >= 1 + 2 * len(SMOKE), visit.pages  # the index, every notebook, their tables
    assert not visit.console_errors, visit.console_errors
    assert visit.images and all(width > 0 for _, width in visit.images), [i for i in visit.images if not i[1]]
    assert not visit.broken, visit.broken
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot of the report's index: {screenshot}")
