"""The preflight plan: what the paper profile runs, needs and costs, and when it refuses.

That the plan lists exactly the runs a notebook stores is checked on every smoke notebook in
``test_notebooks.py`` (``assert_plan_matches_store``)."""

from __future__ import annotations

import pytest

from e2h_utils.pipeline import plan
from e2h_utils.engine import resources
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
    assert fits.weights == pytest.approx(resources.architecture("meta-llama/Llama-2-70b-hf").weight_bytes("8bit"))
    bf16 = plan.check_memory("meta-llama/Llama-2-70b-hf", "none", False, plan.Devices(H100, 1))
    assert not bf16.fits and bf16.weights / resources.GiB == pytest.approx(128.5, abs=0.1)
    for fix in ("model_quantization: 8bit", "model_quantization: 4bit", "--devices 2xH100", "kv_tokens"):
        assert fix in bf16.fix
    assert plan.check_memory("meta-llama/Llama-2-70b-hf", "4bit", True, plan.Devices(H100, 1)).fits


def test_budgets_from_the_run_settings_win_over_the_derived_ones():
    settings = runtime.parse({"batch_tokens": 1024, "kv_tokens": 4096})
    check = plan.check_memory("meta-llama/Llama-2-7b-hf", "8bit", False, plan.Devices(H100, 1), settings)
    assert (check.budget.batch_tokens, check.budget.kv_tokens, check.budget.source) == (1024, 4096, "settings")
    assert check.kv == 4096 * resources.architecture("meta-llama/Llama-2-7b-hf").kv_bytes_per_token()
    derived = plan.check_memory("meta-llama/Llama-2-7b-hf", "8bit", False, plan.Devices(H100, 1))
    assert derived.budget.source == "derived" and derived.need <= derived.available


def test_work_adds_up_and_training_costs_two_forwards():
    arch = resources.architecture("meta-llama/Llama-2-7b-hf")
    a = plan.Work(forward_tokens=100, forward_context=50)
    b = plan.Work(forward_tokens=300, forward_context=10)
    assert (a + b).forward_tokens == 400 and (a + b).forward_context == pytest.approx(20)
    train = plan.Work(train_tokens=100, train_context=50)
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
    run = plan.PlannedRun(notebook="n", kind="experiment", model="m", dtype="auto", quantization="none",
                          dataset="arc", method="probe", measure="grade", train_level="easy", n_train=2, seeds=(0,),
                          test_items=2, spec=None)
    seen: dict = {}
    assert plan._new_features(run, ["a", "b", "a"], seen) == ["a", "b"]
    assert plan._new_features(run, ["b", "c"], seen) == ["c"]
    other = plan.PlannedRun(**{**run.__dict__, "model": "m2"})
    assert plan._new_features(other, ["a"], seen) == ["a"]
    assert plan._new_features(run, ["a"], None) == ["a"]  # no bookkeeping: everything counts
