"""e2h_utils.pipeline.validate: every parameter value of a profile is checked before any notebook starts.

The cases are the ones a new user hit (issue 12): each must name the file and key, say what is
valid, and stop the run before anything is computed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2h_utils.pipeline import profiles, reproduce
from e2h_utils.pipeline import validate
from e2h_utils.experiments import settings

ROOT = Path(__file__).resolve().parents[1]


def embedded(name: str) -> dict:
    return reproduce.check_parameters(ROOT / "notebooks" / f"{name}.ipynb",
                                      ROOT / "parameters" / "embedded" / f"{name}.yaml")


def problems(name: str, **changes) -> list[str]:
    values = {**embedded(name), **changes}
    return validate.check_values(values, f"{name}.yaml")


def test_the_committed_profiles_are_valid():
    for path in sorted((ROOT / "parameters").glob("*/*.yaml")):
        if path.name.startswith("_"):  # shared settings and run settings: checked through their notebooks
            continue
        values = reproduce.check_parameters(ROOT / "notebooks" / f"{path.stem}.ipynb", path)
        assert validate.check_values(values, path) == [], path


@pytest.mark.parametrize("name, changes, expected", [
    ("easy_to_hard", {"k_shot": {"arc": "two", "mmlu_stem5": 10, "strategyqa": 8}},
     "k_shot: arc: expected an integer, got 'two'"),
    ("walkthrough", {"n_test": "3"}, "n_test: expected an integer, got '3' (str)"),
    ("walkthrough", {"seeds": 0}, "seeds: expected a list, got 0"),
    ("easy_to_hard", {"seeds": {"icl": [], "probe": [0], "qlora": [0]}}, "seeds: icl: expected a non-empty list"),
    ("easy_to_hard", {"methods": ["icl", "lora"]},
     "methods: unknown answer-scoring method 'lora'; valid: icl, probe, qlora"),
    ("easy_to_hard", {"measures": {"arc": ["grade"], "mmlu_stem5": ["school_levle"]}},
     "measures: mmlu_stem5: unknown hardness measure 'school_levle' for 'mmlu_stem5'"),
    ("easy_to_hard", {"model_quantization": "3bit"},
     "model_quantization: unknown quantization '3bit'; valid: none, 8bit"),
    ("easy_to_hard", {"method_options": {"qlora": {"quantisation": "none"}}},
     "method_options: qlora: unknown option(s) ['quantisation']"),
    ("easy_to_hard", {"method_options": {"qlora": {"micro_batch": 8}}},
     "method_options: qlora: qlora: micro_batch only change how a run executes, not its results: they are run "
     "settings now (micro_batch -> micro_batch in parameters/<profile>/_run.yaml)"),
    ("easy_to_hard", {"cot_method_options": {"icl_cot": {"batch_size": 4}}},
     "batch_size -> generation_batch in parameters/<profile>/_run.yaml"),
    ("easy_to_hard", {"test_fraction": 1.5}, "test_fraction: expected a number < 1.0, got 1.5"),
    ("easy_to_hard", {"model": "no/such/model"}, "model: unknown model 'no/such/model'"),
    ("easy_to_hard", {"all_to_all": "yes"}, "all_to_all: expected true or false, got 'yes'"),
    ("sample_count", {"curves": {"icl": ["arc/grades"]}}, "curves: 'arc/grades' under 'icl'"),
    ("label_noise", {"rates": [0.0, 1.5]}, "rates: expected a number <= 1.0, got 1.5"),
    ("hardness_measures", {"mdl_learners": {"mmlu_stem5": ["probe"]}},
     "mdl_learners: mmlu_stem5: the 'probe' MDL learner"),
    ("train_test_gap", {"college_sources": {"x": {"dataset": "arc", "column": "grade"}}},
     "college_sources: source 'x'"),
    ("walkthrough", {"measure": "grades"}, "measure: unknown hardness measure 'grades' for 'arc'"),
    ("model_scale", {"robustness_k_shot": {"strategyqa": 0}},
     "robustness_k_shot: strategyqa: expected an integer >= 1"),
    ("model_scale", {"model_dtype": "half"}, "model_dtype: unknown dtype 'half'; valid: auto, float32, bfloat16, "
                                             "float16, authors"),
    ("easy_to_hard", {"method_options": {"qlora": {"authors_batch": -4}}},
     "method_options: qlora: qlora: authors_batch"),
    # values of the right type but out of range, NaN included, are refused where they are declared
    ("easy_to_hard", {"method_options": {"probe": {"l2": float("nan")}}},
     "method_options: probe: probe: l2 must be a finite number >= 0, not nan"),
    ("easy_to_hard", {"method_options": {"probe": {"epochs": 0}}},
     "probe: epochs must be an integer >= 1 and <= 10000, not 0"),
    ("easy_to_hard", {"method_options": {"qlora": {"lr": -1}}}, "qlora: lr must be a finite number > 0, not -1"),
    ("easy_to_hard", {"method_options": {"qlora": {"dropout": float("inf")}}},
     "qlora: dropout must be a finite number"),
    ("easy_to_hard", {"test_fraction": float("nan")}, "test_fraction: expected a finite number, got nan"),
    ("label_noise", {"rates": [0.0, float("nan")]}, "rates: expected a finite number, got nan"),
    ("easy_to_hard", {"seeds": {"icl": [2**64], "probe": [0], "qlora": [0]}},
     "seeds: icl: expected a seed between 0 and 4294967295 (2**32 - 1), got 18446744073709551616"),
    ("easy_to_hard", {"split_seed": 2**40}, "split_seed: expected a seed between 0"),
    ("label_noise", {"rates": [0.0, 0.3, 0.6]}, "rates: noise rate 0.6 x hard_multiplier 2 = 1.2 > 1 for hard data"),
    ("easy_to_hard", {"cross_fit": True, "test_fraction": 1e-88},
     "test_fraction: cross_fit trains once per fold, 1 / test_fraction = 1e+88 times per seed; at most 100"),
])
def test_bad_values_are_named_with_what_is_valid(name, changes, expected):
    found = problems(name, **changes)
    assert any(expected in p for p in found), found
    assert all(p.startswith(f"{name}.yaml: ") for p in found)


@pytest.mark.parametrize("name, changes, expected", [
    ("easy_to_hard", {"methods": ["icl", "probe", "qlora"], "seeds": {"icl": [0], "probe": [0]}},
     "seeds: no seeds for method 'qlora'"),
    ("easy_to_hard", {"k_shot": {"arc": 10, "mmlu_stem5": 10}}, "k_shot: no k for dataset 'strategyqa'"),
    ("easy_to_hard", {"measures": {"arc": ["grade", "mdl"]}, "mdl_hardness_models": []},
     "mdl_hardness_models: the MDL measures"),
    ("sample_count", {"sizes": {"icl": [0, 1]}}, "sizes: no sizes for method 'probe'"),
])
def test_settings_a_later_cell_needs(name, changes, expected):
    assert any(expected in p for p in problems(name, **changes)), problems(name, **changes)


def test_a_bad_value_in_any_notebook_stops_the_run_before_anything_starts(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    path = tmp_path / "parameters" / "smoke" / "walkthrough.yaml"  # the last notebook in run order
    path.write_text(path.read_text().replace("k_shot: 1", "k_shot: two"))
    with pytest.raises(ValueError) as info:
        reproduce.run("smoke")
    message = str(info.value)
    assert "nothing was run" in message and "walkthrough.yaml: k_shot: expected an integer, got 'two'" in message
    assert not (tmp_path / "outputs").exists()  # not even the first notebook started
    assert reproduce.main(["--profile", "smoke"]) == 2


def test_a_bad_value_from_the_shared_file_is_named_under_the_shared_file(tmp_path, monkeypatch):
    """A value a notebook takes from ``_shared.yaml`` is reported under that file (where it is fixed), a
    value its own YAML sets under its own YAML."""
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    folder = tmp_path / "parameters" / "smoke"
    shared = folder / "_shared.yaml"
    shared.write_text(shared.read_text().replace("n_boot: 100", "n_boot: -5"))
    with pytest.raises(ValueError) as info:
        reproduce.run("smoke")
    lines = [line.strip() for line in str(info.value).splitlines() if "n_boot" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{shared}: n_boot:"), lines  # once, not once per notebook
    own = folder / "walkthrough.yaml"  # sets n_boot itself
    own.write_text(re.sub(r"(?m)^n_boot: .*$", "n_boot: -6", own.read_text()))
    with pytest.raises(ValueError) as info:
        reproduce.run("smoke")
    assert f"{folder / 'walkthrough.yaml'}: n_boot:" in str(info.value)
    assert f"{shared}: n_boot:" in str(info.value)  # the other notebooks still take it from the shared file
    assert not (tmp_path / "outputs").exists()


def test_a_training_source_column_its_dataset_lacks_is_named_before_any_notebook(mirror):
    sources = {"none": "none", "ARC": {"dataset": "arc", "column": "grdae", "max_value": 3}, "college": "hard"}
    values = {**embedded("train_test_gap"), "college_sources": sources}
    found = validate.check_values(values, "x.yaml", "train_test_gap")
    assert any("train source column 'grdae' is not a column of arc; numeric columns: " in p and "grade" in p
               for p in found), found


def test_a_yaml_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "label_noise.yaml"
    path.write_bytes(b"include: _shared.yaml\nrates: [0.0, 0.3]  # caf\xe9\n")
    with pytest.raises(ValueError, match=r"label_noise.yaml, line 2: not UTF-8 text \(byte 0xe9\); save the file as"):
        profiles.load_yaml(path)


def test_a_training_size_larger_than_its_pool_stops_the_run_before_any_notebook(tmp_path, monkeypatch, mirror):
    """A learning-curve size that the level's pool cannot give is refused up front, from the data,
    naming the run and the pool (the runner would refuse it only when sample_count reaches it)."""
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "parameters", tmp_path / "parameters")
    monkeypatch.setenv("E2H_HOME", str(tmp_path))
    path = tmp_path / "parameters" / "smoke" / "sample_count.yaml"
    path.write_text(path.read_text().replace("probe: [2, 4]", "probe: [2, 4, 5000]"))
    with pytest.raises(ValueError) as info:
        reproduce.run("smoke")
    message = str(info.value)
    assert f"{path}: sizes: strategyqa/num_steps probe" in message  # named under the key that asked for it
    assert "needs 5000 training items but the pool of" in message
    assert "nothing was run" in message and not (tmp_path / "outputs").exists()
    # a size set in the shared file is named there, under its key (a third fresh probe: it named neither)
    path.write_text(path.read_text().replace("probe: [2, 4, 5000]", "probe: [2, 4]"))
    shared = tmp_path / "parameters" / "smoke" / "_shared.yaml"
    shared.write_text(shared.read_text().replace("k_shot: {arc: 2,", "k_shot: {arc: 100000,"))
    with pytest.raises(ValueError) as info:
        reproduce.run("smoke")
    assert f"{shared}: k_shot: arc/grade icl easy needs 100000 training items but the pool of" in str(info.value)


def test_the_evaluators_parameters_are_checked_before_anything_runs():
    from e2h_utils.pipeline.plan import notebook_parameters

    good = notebook_parameters("smoke", "easy_to_hard_evaluators")
    assert validate.check_values(good, "e.yaml") == []
    cases = {
        "evaluator_datasets": ({"arc": "grade"}, "unknown dataset with a chain-of-thought format 'arc'"),
        "n_samples": ({"strategyqa": 0, "math": 2}, "n_samples: strategyqa: expected an integer >= 1, got 0"),
        "temperature": (0, "temperature: expected a number > 0.0, got 0"),
        "evaluators": ({"prm": ["math"]}, "unknown evaluator 'prm'"),
        "train_levels": (["easy", "medium"], "unknown evaluator training level 'medium'"),
        "evaluator_seeds": ({"probe": [0]}, "evaluator_seeds has no value for evaluator 'qlora'"),
        "fixed_test": ({"math": 5}, "expected the name of a boolean column"),
    }
    for key, (value, message) in cases.items():
        problems = validate.check_values({**good, key: value}, "e.yaml")
        assert any(message in p for p in problems), (key, problems)


@pytest.mark.parametrize("name, changes, expected", [
    # found by a fresh probe of bad inputs: each used to run (exit 0) or fail late
    ("walkthrough", {"seeds": [0, 0]}, "seeds: 0 given more than once in [0, 0]: give each once"),
    ("label_noise", {"rates": [0.0, 0.0, 0.3]}, "rates: 0.0 given more than once"),
    ("easy_to_hard", {"methods": ["icl", "icl", "probe", "qlora"]}, "methods: 'icl' given more than once"),
    ("label_noise", {"sweeps_to_run": {"icl": ["strategyqa/num_steps", "strategyqa/num_steps"]}},
     "'strategyqa/num_steps' is given twice under 'icl'"),
    ("walkthrough", {"n_boot": 2 ** 70}, "n_boot: 1180591620717411303424 bootstrap draws (the paper: 10,000) is more"),
    ("label_noise", {"hard_multiplier": 0}, "hard_multiplier: expected a number >= 1.0"),
    # a second fresh probe (2026-12-06): each passed the check and would have run for weeks or failed late
    ("label_noise", {"method_options": {"probe": {"epochs": 10, "lr": 1e300}}},
     "lr must be a finite number > 0 that a 32-bit float holds (at most 3.4e+38), not 1e+300"),
    # a third fresh probe (2026-12-06): a temperature so cold that 32-bit logits / temperature is inf, NaN sampled
    ("easy_to_hard_evaluators", {"temperature": 1e-300},
     "temperature: 1e-300 is below 0.01: sampling that cold is greedy decoding"),
    # integer method options have a ceiling: their own, or 2**31 - 1 where they declare none
    ("easy_to_hard", {"method_options": {"probe": {"epochs": 10**9}}},
     "probe: epochs must be an integer >= 1 and <= 10000, not 1000000000"),
    ("easy_to_hard", {"method_options": {"qlora": {"min_updates": 10**9}}},
     "qlora: min_updates must be an integer >= 1 and <= 100000, not 1000000000"),
    ("easy_to_hard", {"method_options": {"qlora": {"r": 10**6}}}, "qlora: r must be an integer >= 1 and <= 8192"),
    ("easy_to_hard_evaluators", {"n_samples": {"strategyqa": 10**11, "math": 2}},
     "n_samples: strategyqa: 100000000000 samples per problem (Sun et al.: up to 1,024) is more than any run needs"),
    ("train_test_gap", {"college_sources": {"none": "none", "G": {"dataset": "gsm8k", "column": "num_steps",
                                                                 "max_value": 3}, "college": "hard"}},
     "train-source dataset 'gsm8k' has no answer choices to put in a prompt; give one of arc, mmlu_stem5, strategyqa"),
    ("train_test_gap", {"college_sources": {"none": "none", "A": {"dataset": "arc", "column": "grade", "min_value": 8,
                                                                 "max_value": 3}, "college": "hard"}},
     "college_sources: source 'A': min_value 8 is above max_value 3: no item lies between them"),
])
def test_repeated_entries_and_absurd_sizes_are_refused_naming_the_key(name, changes, expected):
    found = problems(name, **changes)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("changes, expected", [
    # a third fresh probe (2026-12-06): each passed the check and failed only when its QLoRA base loaded
    ({"method_options": {"qlora": {"quantization": "2bit"}}}, "qlora: unknown quantization '2bit'; valid: none, 8bit"),
    ({"method_options": {"qlora": {"target_modules": []}}}, "qlora: target_modules must list at least one module"),
])
def test_qlora_options_that_fail_only_at_training_are_refused_before_any_notebook(changes, expected):
    found = problems("easy_to_hard", **changes)
    assert any(expected in p for p in found), found


def test_an_offline_hub_model_not_in_the_cache_is_named_before_any_notebook(monkeypatch):
    """Offline, a Hub id that is not cached used to fail only when its notebook loaded it."""
    from dataclasses import fields

    from e2h_utils.experiments import schema

    model_checks = (schema.model, schema.models_list, settings._HARDNESS_MODELS, settings._OPTIONAL_MODELS)
    named = {f.name for cls in settings.NOTEBOOKS.values() for f in fields(cls)
             if f.metadata[schema.CHECK] in model_checks}
    assert named == set(validate.MODEL_KEYS)  # every key that names a model is looked at
    values = {"model": "embedded", "mdl_hardness_models": ["embedded", "no-such-org/no-such-model"]}
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert validate.unavailable_models(values, "h.yaml") == []  # online: the Hub may have it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = validate.unavailable_models(values, "h.yaml", {"mdl_hardness_models": "_shared.yaml"})
    assert len(found) == 1 and found[0].startswith("_shared.yaml: mdl_hardness_models: 'no-such-org/no-such-model' "
                                                   "is a Hub id, but the Hub is off"), found
    assert "hf download no-such-org/no-such-model" in found[0]
