"""The preflight plan: what the paper profile runs, needs and costs, and when it refuses.

That the plan lists exactly the runs a notebook stores is checked on every smoke notebook in
``test_notebooks.py`` (``assert_plan_matches_store``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2h_utils.pipeline import cost, plan, units
from e2h_utils.engine import models, resources
from e2h_utils.engine import runtime

H100 = plan.DEVICES["H100"]


def test_devices_are_parsed_or_refused_with_the_form():
    assert plan.parse_devices("8xH100") == plan.Devices(H100, 8)
    assert plan.parse_devices("4xa100").kind.name == "A100-80GB"
    for bad in ("8H100", "xH100", "8xV100", ""):
        with pytest.raises(ValueError, match="<count>x<kind>"):
            plan.parse_devices(bad)


def test_70b_needs_two_h100s_in_8bit_and_is_refused_on_one_with_the_fixes():
    fits = plan.check_memory("meta-llama/Llama-2-70b-hf", "8bit", True, plan.Devices(H100, 8))
    assert fits.fits and fits.devices_used == 2
    assert fits.weights == pytest.approx(models.architecture("meta-llama/Llama-2-70b-hf").weight_bytes("8bit"))
    bf16 = plan.check_memory("meta-llama/Llama-2-70b-hf", "none", False, plan.Devices(H100, 1))
    assert not bf16.fits and bf16.weights / resources.GiB == pytest.approx(128.5, abs=0.1)
    for fix in ("model_quantization: 8bit", "model_quantization: 4bit", "--devices 2xH100", "kv_tokens"):
        assert fix in bf16.fix
    assert plan.check_memory("meta-llama/Llama-2-70b-hf", "4bit", True, plan.Devices(H100, 1)).fits


def test_budgets_from_the_run_settings_win_over_the_derived_ones():
    settings = runtime.parse({"batch_tokens": 1024, "kv_tokens": 4096})
    check = plan.check_memory("meta-llama/Llama-2-7b-hf", "8bit", False, plan.Devices(H100, 1), settings)
    assert (check.budget.batch_tokens, check.budget.kv_tokens, check.budget.source) == (1024, 4096, "settings")
    assert check.kv == 4096 * models.architecture("meta-llama/Llama-2-7b-hf").kv_bytes_per_token()
    derived = plan.check_memory("meta-llama/Llama-2-7b-hf", "8bit", False, plan.Devices(H100, 1))
    assert derived.budget.source == "derived" and derived.need <= derived.available


def test_work_adds_up_and_training_costs_two_forwards():
    arch = models.architecture("meta-llama/Llama-2-7b-hf")
    a = cost.Work(forward_tokens=100, forward_context=50)
    b = cost.Work(forward_tokens=300, forward_context=10)
    assert (a + b).forward_tokens == 400 and (a + b).forward_context == pytest.approx(20)
    train = cost.Work(train_tokens=100, train_context=50)
    assert train.flops(arch) == pytest.approx(2 * a.flops(arch))
    assert train.flops(arch, checkpointing=True) == pytest.approx(3 * a.flops(arch))


@pytest.mark.slow
@pytest.mark.integration
def test_the_paper_plan_covers_every_notebook_and_fits_one_8_gpu_node(mirror):
    summary = plan.summarize("paper", plan.parse_devices("8xH100"))
    notebooks = {r.notebook for r in summary.runs} | {n for r in summary.runs for n in r.shared_with}
    assert notebooks == set(plan.NOTEBOOKS)
    assert summary.fits
    table = summary.table
    # every run costs tokens, except probe runs (and probe evaluators) whose features an earlier run extracted
    probe = table["run"].str.contains("/probe ") | table["run"].str.contains("/evaluator_probe ")
    kinds = set(table["kind"])
    assert {"samples", "evaluator"} <= kinds  # the easy-to-hard evaluators: candidates, then evaluators
    sampled = table[(table["kind"] == "samples") & table["run"].str.startswith("math/level")]
    assert len(sampled) == 3 and sampled["tokens"].min() > 0
    assert (table.loc[~probe, "tokens"] > 0).all() and (table.loc[~probe, "seconds"] > 0).all()
    assert (table["tokens"] >= 0).all() and table.loc[probe, "tokens"].sum() > 0
    # every model the paper names, at the authors' precision
    models = {m.model: m for m in summary.memory}
    assert models["meta-llama/Llama-2-70b-hf"].quantization == "8bit"
    assert {"huggyllama/llama-7b", "tiiuae/falcon-7b", "mistralai/Mistral-7B-v0.1", "mosaicml/mpt-7b",
            "Qwen/Qwen-72B", "mistralai/Mixtral-8x7B-v0.1"} <= set(models)
    # MDL runs first; runs on MDL measures wait for them (no MDL is stored in a fresh checkout)
    phases = [r.phase for r in summary.runs]
    assert phases == sorted(phases) and phases[0] == 1
    report = plan.report(summary, "paper")
    assert "GPU-h" in report and "REFUSED" not in report
    one = plan.summarize("paper", plan.parse_devices("1xH100"), notebooks=["model_scale"])
    text = plan.report(one, "paper")  # 70b fits one H100 in 8-bit; bf16 Mixtral and Qwen-72B do not
    assert not one.fits and "REFUSED: meta-llama/Llama-2-70b-hf" not in text
    for refused in ("REFUSED: mistralai/Mixtral-8x7B-v0.1 at none", "REFUSED: Qwen/Qwen-72B at none"):
        assert refused in text and "--devices 2xH100" in text


def test_features_are_counted_once_per_model_dataset_and_format():
    """Probe runs share the features cache: an item's hidden states cost once, whichever run
    extracts them first (label-noise and learning-curve runs reuse them)."""
    ctx = cost.Context(counter=None, frame=lambda dataset: None, featurized={})  # type: ignore[arg-type]
    key = ("m", "none", "arc", None)
    assert ctx.new_features(key, ["a", "b", "a"]) == ["a", "b"]
    assert ctx.new_features(key, ["b", "c"]) == ["c"]
    assert ctx.new_features(("m2", "none", "arc", None), ["a"]) == ["a"]  # another model extracts its own
    alone = cost.Context(counter=None, frame=lambda dataset: None)  # type: ignore[arg-type]
    assert alone.new_features(key, ["a"]) == ["a"]  # no bookkeeping: everything counts


# --- statistical power: the pure table on a tiny fake plan (no data, no model) ----------------------

def _fake_plan():
    from e2h_utils.experiments import plans
    from e2h_utils.experiments.spec import TestSelection
    from e2h_utils.methods import ICL, Probe

    test = TestSelection(max_per_level=100, levels=("hard",))
    comparison = plans.comparison("arc", "grade", Probe(160), seeds=(0, 1, 2), model="embedded", test=test)
    curve = plans.learning_curve("arc", "grade", ICL(4), [4], seeds=(0, 1), model="embedded", test=test,
                                 pools=("easy",))
    return comparison, curve  # curve: zero-shot (n=0) and easy n=4


def test_the_power_table_predicts_from_the_stated_assumption():
    comparison, curve = _fake_plan()
    rows = plan.power_rows("easy_to_hard", [comparison, *curve, curve[1]], [400, 100, 100, None])
    assert len(rows) == 3  # no item count: left out
    gap, hme = rows[0].quantities
    assert (gap.quantity, hme.quantity, rows[0].seeds, rows[0].source) == ("gap", "hard_minus_easy", 3, "assumed")
    # p = 0.5, rho = 0.5 (item variance 0.25), a seed sd of 2 points that 3 seeds show as 2/9 of its variance
    assert gap.predicted == pytest.approx(196 * (0.25 / 400 + 0.02**2 * 2 / 9) ** 0.5, rel=1e-3)
    assert hme.predicted == pytest.approx(196 * (0.25 / 400 + 2 * 0.02**2 * 2 / 9) ** 0.5, rel=1e-3)
    zero, trained = rows[1], rows[2]
    assert zero.quantities[0].quantity == "accuracy" and zero.seeds == 1
    assert zero.quantities[0].predicted == pytest.approx(9.8, rel=1e-3)  # the binomial +-9.8 points at n = 100
    assert trained.quantities[0].predicted == pytest.approx(196 * (0.25 / 100 + 0.02**2 / 4) ** 0.5, rel=1e-3)
    text = plan.power_report(rows)
    assert "easy_to_hard" in text and "embedded arc/grade/probe" in text and "gap ±5.2" in text
    assert "acc ±9.8" in text and "n=4" in text and "(run" not in text


def test_the_power_table_uses_measured_components_and_finds_the_achieved_intervals():
    from e2h_utils.analysis import power

    comparison, curve = _fake_plan()
    group = plan.entry_group(comparison)
    assert group == ("arc", "probe", None) and plan.entry_group(curve[0]) == ("arc", "zero_shot", None)
    tight = power.Components(0.05, (power.SeedTerms(), power.SeedTerms()), "measured: arc/probe")
    measured = {group: plan.Measured("arc/probe", gap=tight, hard_minus_easy=tight)}
    rows = plan.power_rows("easy_to_hard", [comparison, curve[0]], [400, 100], measured)
    assert rows[0].source == "measured: arc/probe" and rows[1].source == "assumed"
    assert rows[0].quantities[0].predicted == pytest.approx(196 * (0.05 / 400) ** 0.5, rel=1e-3)
    table = pd.DataFrame({"model": ["embedded"] * 4, "dataset": "arc", "measure": "grade",
                          "method": ["probe", "probe", "icl", "icl"], "rule": [None, None, None, "strict"],
                          "quantity": ["gap", "sgr", "accuracy", "accuracy"], "point": 0.0,
                          "lo": [0.10, 0.0, 0.20, 0.0], "hi": [0.16, 1.0, 0.30, 1.0]})
    table["train_level"] = [None, None, "none", "none"]
    table["n"] = [None, None, 0.0, 0.0]
    done = plan.with_achieved(rows, {"easy_to_hard": [table]})
    assert done[0].quantities[0].achieved == pytest.approx(3.0)  # (0.16 - 0.10) / 2 x 100
    assert done[0].quantities[1].achieved is None  # no hard_minus_easy row: "-"
    assert done[1].quantities[0].achieved == pytest.approx(5.0)  # rule empty where the entry has none
    assert plan.with_achieved(rows, {})[0].quantities[0].achieved is None
    text = plan.power_report(done, achieved=True)
    assert "(run ±3.0)" in text and "(run -)" in text
    frame = plan.power_table(done)
    assert list(frame["quantity"]) == ["gap", "hard_minus_easy", "accuracy"] and "predicted" in frame


def test_power_is_measured_on_stored_seeds_of_the_same_group(tmp_path):
    """A planner whose comparison has its three runs stored: the gap is measured on them (the
    paired outcomes agree on most items, so the gap's CI is far narrower than assumed), and its
    prediction at the stored items and seeds is the stored data's own bootstrap width."""
    from e2h_utils.analysis import power
    from e2h_utils.experiments.store import ResultStore, spec_key

    comparison, _ = _fake_plan()
    planner = plan.Planner(ResultStore(tmp_path))
    rng = np.random.default_rng(0)
    base = (rng.random(300) < 0.5).astype(float)
    ids = [f"arc-{i:03d}" for i in range(300)]
    matrices = []
    for spec, flip in zip(comparison.specs, (0.0, 0.1, 0.1)):
        payload = {"dataset": spec.dataset, "method": spec.method.kind, "train_level": spec.train_level}
        seeds = spec.run_seeds
        for seed in seeds:  # trained runs: 10% of items flipped per seed, and a seed effect (0, 2, 4 points up)
            correct = np.where(rng.random(300) < flip, 1 - base, base)
            correct = np.where(rng.random(300) < 0.04 * seed * flip * 10, 1.0, correct)
            planner.store.save(payload, seed, pd.DataFrame({"item_id": ids, "level": "hard", "seed": seed,
                                                            "correct": correct}))
        matrices.append(np.stack([planner.store.load(payload, s)["correct"].to_numpy() for s in seeds]))
        run = plan.PlannedRun(notebook="nb", unit=units.Experiment(spec), model="embedded", dtype="auto",
                              quantization="none",
                              dataset="arc", method=spec.method.kind, measure="grade", train_level=spec.train_level,
                              n_train=0, seeds=seeds, test_items=300, item_ids=tuple(ids),
                              item_levels=("hard",) * 300, key=spec_key(payload), cached=seeds, payload=payload)
        planner.experiments[("nb", spec)] = run
    planner.entries["nb"] = [comparison]
    rows = plan.plan_power(planner)
    assert len(rows) == 1 and rows[0].n_items == 300 and rows[0].source == "measured: arc/probe"
    gap = rows[0].quantities[0].predicted
    exact = 100 * power.Z95 * power.bootstrap_variance([matrices[2], matrices[0]], [1.0, -1.0]) ** 0.5
    assert gap == pytest.approx(exact, rel=0.05)  # the stored data's own bootstrap width
    assumed = plan.power_rows("nb", [comparison], [300])[0].quantities[0].predicted
    assert gap < 0.8 * assumed


def test_the_plan_reads_parameters_cells_without_running_them(tmp_path):
    """``make plan`` runs nothing: a parameters cell is read as literal assignments, and code there is an
    error naming the notebook and the line, never executed."""
    import nbformat

    from e2h_utils.pipeline.notebooks import notebook_defaults

    def notebook(source):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})]
        path = tmp_path / "nb.ipynb"
        nbformat.write(nb, str(path))
        return path

    values = notebook_defaults(notebook('a = 1  # comment\nb = {"x": [1, 2.5], "y": None}\nc = -3\n'))
    assert values == {"a": 1, "b": {"x": [1, 2.5], "y": None}, "c": -3}
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="line 2: only 'name = <literal>'"):
        notebook_defaults(notebook(f"a = 1\nopen({str(marker)!r}, 'w')\n"))
    with pytest.raises(ValueError, match="line 1: a is not a literal"):
        notebook_defaults(notebook(f"a = open({str(marker)!r}, 'w')\n"))
    assert not marker.exists()
