"""The paper profile's dry run: every paper notebook, its YAML as written, on tiny random models of each
paper model's own architecture.

A change that breaks a code path, key or dataset of the paper profile fails here, on a CPU,
before anyone rents a GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from e2h_utils.analysis import provenance
from e2h_utils.pipeline import dry_run
from e2h_utils.engine import models, stand_ins
from e2h_utils import paths
from e2h_utils.pipeline import notebooks, plan
from e2h_utils.pipeline import reproduce
from e2h_utils.engine import runtime

ROOT = Path(__file__).resolve().parents[1]


def test_every_cap_names_a_parameter_of_some_notebook():
    """A renamed parameter must not silently escape its cap (and run at the paper's size)."""
    names = set()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        names |= set(notebooks.notebook_defaults(notebook))
    assert set(dry_run.CAPS) <= names, set(dry_run.CAPS) - names


def test_caps_keep_every_dataset_method_and_model():
    params = reproduce.check_parameters(ROOT / "notebooks" / "easy_to_hard.ipynb",
                                        ROOT / "parameters" / "paper" / "easy_to_hard.yaml")
    capped = dry_run.cap_parameters(params)
    for key in ("model", "measures", "methods", "cot_measures", "cot_methods", "mdl_hardness_models",
                "mdl_learners", "model_quantization"):
        assert capped[key] == params[key]
    for key in ("method_options", "cot_method_options"):  # every option as written, fewer updates and tokens
        for method, options in params[key].items():
            assert {k: capped[key][method][k] for k in options} == options or "min_updates" in options
    assert capped["cot_method_options"]["qlora_cot"]["min_updates"] == dry_run.COT_UPDATES
    assert capped["method_options"]["qlora"]["min_updates"] == dry_run.UPDATES
    assert capped["cot_n_train"]["qlora_cot"] == dry_run.COT_TRAIN
    assert all(len(v) == dry_run.SEEDS for v in capped["seeds"].values())
    assert capped["max_test_per_level"] == dry_run.TEST_PER_LEVEL  # null (every item) is capped too
    assert set(capped["mdl_max_items"]) == set(params["mdl_learners"])


def test_the_dry_run_splits_an_unquantized_model_between_cpu_and_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    monkeypatch.setenv("E2H_CACHE", str(paths.cache_dir()))
    for key, value in dry_run.environment("paper").items():
        monkeypatch.setenv(key, value)
    lm = models.load_model("Qwen/Qwen-72B", dtype="bfloat16", quantization="auto", settings=runtime.current())
    assert set(lm.model.hf_device_map.values()) == {"cpu", "disk"}, lm.model.hf_device_map
    assert lm.identity.startswith("substitute-for:Qwen/Qwen-72B|")
    eight = models.load_model("meta-llama/Llama-2-70b-hf", dtype="bfloat16", quantization="auto")
    assert "Linear8bitLt" in {type(m).__name__ for m in eight.model.modules()}  # the authors' precision


@pytest.mark.slow
@pytest.mark.integration
def test_the_paper_profile_runs_end_to_end_on_a_stand_in(tmp_path, monkeypatch, mirror):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_CACHE", str(paths.cache_dir()))
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    status = reproduce.run("paper", dry_run=True, progress=False)
    assert status == {name: reproduce.RAN for name in plan.NOTEBOOKS}, status
    out = tmp_path / "outputs" / "paper-dry-run"
    for name in plan.NOTEBOOKS:
        assert (out / name / f"{name}.ipynb").is_file()
    assert not (tmp_path / "outputs" / "paper").exists()  # a real run's outputs are never touched
    stored = list((tmp_path / "results" / "dry-run").rglob("seed-*.parquet"))
    assert stored and not [p for p in (tmp_path / "results").rglob("seed-*.parquet") if "dry-run" not in p.parts]
    # every model of the profile ran on a stand-in of its own architecture (Falcon and MPT: ARC's QLoRA MDL)
    ran: dict[str, set[str]] = {}
    for spec in (tmp_path / "results" / "dry-run").rglob("spec.json"):
        identity = json.loads(spec.read_text()).get("model_identity", "")
        if identity.startswith("substitute-for:"):
            name, where = identity[len("substitute-for:"):].split("|")[:2]
            ran.setdefault(name, set()).add(Path(where.split("@")[0]).name.rsplit("-", 1)[0])
    for name, types in ran.items():
        assert types == {stand_ins.shrunk_config(name)[0]}, (name, types)
    assert {"llama", "mistral", "mixtral", "falcon", "mpt", "qwen2"} <= {t for v in ran.values() for t in v}, ran
    mdl = {json.loads(p.read_text())["model_identity"].split("|")[0]
           for p in (tmp_path / "results" / "dry-run" / "arc" / "mdl_qlora").glob("*/spec.json")}
    assert {"substitute-for:tiiuae/falcon-7b", "substitute-for:mosaicml/mpt-7b"} <= mdl, mdl
    # the stand-in keeps the named model's identity: provenance.json records it for every model compared
    record = json.loads((out / "model_scale" / provenance.FILE).read_text())
    identity = record["models"]["meta-llama/Llama-2-70b-hf"]["identity"]
    assert identity.startswith("substitute-for:meta-llama/Llama-2-70b-hf|"), identity
    assert {m["architecture"] for m in record["models"].values()} >= {"LlamaForCausalLM", "MixtralForCausalLM"}
    # the preflight plan of the paper profile (capped as the dry run) lists exactly the runs stored
    for key, value in dry_run.environment("paper").items():
        monkeypatch.setenv(key, value)
    seeds: dict[str, set[int]] = {}
    for path in stored:
        seeds.setdefault(path.parent.name, set()).add(int(path.stem.split("-")[1]))
    runs = plan.build("paper", dry_run=True)
    assert {r.key for r in runs} == set(seeds) and all(set(r.seeds) == seeds[r.key] for r in runs)
    # a finished notebook re-executes from its stored results without loading any model (no GPU needed)
    monkeypatch.setenv(models.NO_LOAD_ENV, "1")
    again = reproduce.run("paper", only=["label_noise"], force=True, dry_run=True, progress=False)
    assert again == {"label_noise": reproduce.RAN}, again
    record = json.loads((out / "label_noise" / provenance.FILE).read_text())
    assert record["models"] and all(m["path"].startswith("not loaded") for m in record["models"].values())
    assert record["runs"] and record["runs computed"] == 0
