"""One schema for the notebooks' parameters: each typed-settings field declares its check and what it
counts (``experiments.schema.param``); the profile check's rules and the dry run's caps are read from
those declarations, and the settings check themselves when built."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import pytest

from e2h_utils.experiments import schema, settings
from e2h_utils.experiments.schema import Size, param
from e2h_utils.pipeline import dry_run, notebooks, reproduce, validate

ROOT = Path(__file__).resolve().parents[1]


def _defaults(name: str) -> dict:
    values = notebooks.notebook_defaults(ROOT / "notebooks" / f"{name}.ipynb")
    return {k: v for k, v in values.items() if k not in reproduce.INJECTED}


def test_every_field_declares_a_check_and_the_profile_check_uses_exactly_those():
    fields = {f.name for cls in settings.NOTEBOOKS.values() for f in dataclasses.fields(cls)}
    assert set(validate.RULES) == fields
    for cls in settings.NOTEBOOKS.values():
        for f in dataclasses.fields(cls):
            assert callable(f.metadata[schema.CHECK]), (cls.__name__, f.name)
            assert validate.RULES[f.name] is f.metadata[schema.CHECK]


def test_the_dry_run_caps_exactly_the_fields_that_count_something():
    assert set(dry_run.CAP_OF) == set(Size), set(Size) - set(dry_run.CAP_OF)  # a new Size needs its cap
    counted = {f.name for cls in settings.NOTEBOOKS.values() for f in dataclasses.fields(cls)
               if f.metadata[schema.SIZE] is not None}
    assert set(dry_run.CAPS) == counted
    assert {"seeds", "max_test_per_level", "k_shot", "n_train", "n_boot", "evaluator_n"} <= counted
    assert dry_run.CAPS["college_max_test"](None) == dry_run.TEST_PER_LEVEL
    assert dry_run.CAPS["cot_seeds"]({"icl_cot": [0, 1, 2]}) == {"icl_cot": [0, 1]}


@pytest.mark.parametrize("name", sorted(settings.NOTEBOOKS))
def test_the_embedded_defaults_build(name):
    settings.parse(name, _defaults(name))


@pytest.mark.parametrize(("name", "key", "value", "says"), [
    ("label_noise", "rates", [0.1, math.nan], "finite"),
    ("label_noise", "hard_multiplier", 0.5, ">= 1.0"),
    ("easy_to_hard", "n_boot", 0, ">= 1"),
    ("easy_to_hard", "method_options", {"probe": {"l2": math.nan}}, "probe"),
    ("sample_count", "seeds", {"icl": [0, 0]}, "more than once"),
    ("train_test_gap", "college_seeds", [2**64], "seed"),
    ("walkthrough", "k_shot", 0, ">= 1"),
    ("easy_to_hard_evaluators", "top_p", 1.5, "<= 1.0"),
])
def test_built_settings_refuse_a_bad_value_naming_notebook_and_key(name, key, value, says):
    """A notebook that builds its settings from its own globals (run without the profile check, e.g.
    in JupyterLab) meets the same check as the profile."""
    with pytest.raises(settings.SettingsError, match=rf"^{name}: {key}: .*{says}"):
        settings.parse(name, {**_defaults(name), key: value})
    problems = validate.check_values({**_defaults(name), key: value}, "x.yaml", name)
    assert problems and problems[0].startswith(f"x.yaml: {key}: "), problems


def test_a_new_field_is_checked_and_capped_without_touching_the_checker_or_the_dry_run(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Toy(settings._Checked):
        toy_items: int | None = param(schema.test_cap, Size.TEST_ITEMS)
        toy_seeds: Sequence[int] = param(schema.seed_list, Size.SEEDS)

    monkeypatch.setitem(settings.NOTEBOOKS, "toy", Toy)
    assert settings.rules()["toy_items"] is schema.test_cap
    assert settings.sizes()["toy_seeds"] is Size.SEEDS
    assert Toy(toy_items=None, toy_seeds=(0, 1)).toy_items is None
    with pytest.raises(settings.SettingsError, match="^toy: toy_items: expected an integer >= 1"):
        Toy(toy_items=0, toy_seeds=(0,))


def test_a_field_without_a_check_or_with_a_second_check_for_a_shared_name_is_refused(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Unchecked:
        toy_value: int

    monkeypatch.setitem(settings.NOTEBOOKS, "toy", Unchecked)
    with pytest.raises(TypeError, match="toy_value.*declares no check"):
        settings.rules()

    @dataclasses.dataclass(frozen=True)
    class Other(settings._Checked):
        n_boot: int = param(schema.at_least(1))

    monkeypatch.setitem(settings.NOTEBOOKS, "toy", Other)
    with pytest.raises(TypeError, match="n_boot.*another check"):
        settings.rules()


def test_every_integer_method_option_has_a_ceiling_and_a_new_one_gets_the_32_bit_width():
    """epochs: 10**9 must be refused, not trained for months; a new integer option cannot skip its ceiling."""
    from e2h_utils.methods import bounds
    from e2h_utils.methods.probe import ProbeConfig
    from e2h_utils.methods.qlora import QLoRAConfig

    for config in (ProbeConfig, QLoRAConfig):
        for item in dataclasses.fields(config):
            limit = item.metadata.get("bounds")
            if limit is not None and limit.integer:
                assert limit.high is not None and limit.high <= bounds.INT32_MAX, (config.__name__, item.name)
                with pytest.raises(ValueError, match=f"^{item.name} must be an integer"):
                    config(**{item.name: int(limit.high) + 1})

    @dataclasses.dataclass(frozen=True)
    class Toy:
        steps: int = bounds.bounded(1, 1, integer=True)

    with pytest.raises(ValueError, match=r"steps must be an integer >= 1 and <= 2147483647, not 2147483648"):
        bounds.check(Toy(steps=2**31))
    bounds.check(Toy(steps=2**31 - 1))
