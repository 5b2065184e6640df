"""Every notebook executed by papermill under the ``smoke`` profile, with checks on what it wrote.

The notebooks and parameter files are copied into a temporary project (``E2H_HOME``), so the
test writes nothing into the checkout; the converted embedded model is reused from the real
cache (``E2H_CACHE``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from e2h_utils import paths, reproduce

ROOT = Path(__file__).resolve().parents[1]
SMOKE = sorted(p.stem for p in (ROOT / "parameters" / "smoke").glob("*.yaml"))

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture()
def smoke_project(tmp_path, monkeypatch, mirror):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_CACHE", str(paths.cache_dir()))  # before E2H_HOME moves the default
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    return tmp_path


def test_every_notebook_has_a_smoke_profile():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and notebooks == SMOKE


def test_easy_to_hard_smoke(smoke_project):
    status = reproduce.run("smoke", only=["easy_to_hard"])
    assert status == {"easy_to_hard": reproduce.RAN}
    out = smoke_project / "outputs" / "smoke" / "easy_to_hard"
    assert (out / "easy_to_hard.ipynb").is_file()
    for stem in ("figures/hard_accuracy", "figures/sgr"):
        for ext in (".pdf", ".png"):
            assert (out / (stem + ext)).stat().st_size > 1000, stem + ext
    summary = pd.read_csv(out / "tables" / "summary.csv")
    pairs = {("arc", "grade"), ("strategyqa", "num_steps")}  # the smoke YAML's measures
    assert set(zip(summary["dataset"], summary["measure"], summary["method"])) == {
        (d, m, method) for d, m in pairs for method in ("icl", "probe", "qlora")} | {
        ("gsm8k", "num_steps", "icl_cot"), ("gsm8k", "num_steps", "qlora_cot")}
    for column in ("acc_unsupervised", "acc_easy", "acc_hard"):
        assert summary[column].between(0, 1).all()
        assert (summary[column + "_lo"] <= summary[column] + 1e-9).all()
        assert (summary[column] <= summary[column + "_hi"] + 1e-9).all()
    cot = summary["method"].str.endswith("_cot")
    assert (summary.loc[~cot, "n_items"] == 6).all()  # max_test_per_level in the smoke YAML
    assert (summary.loc[cot, "n_items"] == 2).all()  # cot_max_test_per_level
    sgr = pd.read_csv(out / "tables" / "sgr.csv")
    assert len(sgr) == 8 and "SGR" in sgr.columns
    assert (out / "tables" / "sgr.tex").read_text().lstrip().startswith("\\begin{tabular}")
    items = pd.read_parquet(out / "tables" / "items.parquet")
    assert set(items["train_level"]) == {"none", "easy", "hard"}
    assert set(items["level"]) == {"hard"}
    assert set(items["method"]) == {"icl", "probe", "qlora"}
    sanity = pd.read_csv(out / "tables" / "sanity_zero_shot.csv")
    assert set(sanity["prompt format"]) == {"mc_lettered", "mc_plain"} and (sanity["n"] == 4).all()
    generations = pd.read_parquet(out / "tables" / "generations.parquet")
    assert set(generations["method"]) == {"icl_cot", "qlora_cot"}
    assert generations["generation"].map(len).gt(0).all()  # the model wrote something for every item
    assert set(generations["train_level"]) == {"none", "easy", "hard"}
    all_to_all = pd.read_csv(out / "tables" / "all_to_all.csv")
    assert {"zero-shot", "icl", "probe", "qlora"} <= set(all_to_all["method"])
    assert (all_to_all["test items"] == 6).all()  # 2 per level x 3 levels
    # nothing changed: the second run is skipped
    assert reproduce.run("smoke", only=["easy_to_hard"]) == {"easy_to_hard": reproduce.UP_TO_DATE}
