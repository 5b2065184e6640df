"""Property-based checks of the parameter boundary (hypothesis): for every key a notebook declares,
a generated value of the wrong type, out of range, NaN/inf, empty or huge is either refused by the
profile check (the one that runs before any notebook), naming the file and the key, or accepted
values build the notebook's typed settings and its plan without error. A value that passes the
check and then fails inside a notebook is exactly the late failure the check exists to prevent.

Runs on the smoke profile's values (each notebook's parameters cell under its smoke YAML)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from e2h_utils.experiments import settings
from e2h_utils.experiments.spec import SpecError
from e2h_utils.pipeline import notebooks, reproduce, validate

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "parameters/smoke/x.yaml"

# values of every kind a YAML can hold, bad ones weighted in
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**32, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.5, 1.5, 1e308]),
    st.text(max_size=6), st.sampled_from(["", "none", "hard", "arc", "icl", "../x", "a\nb"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=4), st.sampled_from(
        ["arc", "icl", "probe", "strategyqa", "easy", "hard"])), inner, max_size=3)), max_leaves=6)


def _values(name: str) -> dict:
    notebook = ROOT / "notebooks" / f"{name}.ipynb"
    defaults = notebooks.notebook_defaults(notebook)
    smoke = reproduce.check_parameters(notebook, ROOT / "parameters" / "smoke" / f"{name}.yaml")
    return {k: v for k, v in {**defaults, **smoke}.items() if k not in reproduce.INJECTED}


NOTEBOOKS = sorted(settings.NOTEBOOKS)
BASE = {name: _values(name) for name in NOTEBOOKS}
KEYS = [(name, key) for name in NOTEBOOKS for key in sorted(BASE[name])]


def test_every_smoke_profile_passes_its_own_check_and_builds():
    for name in NOTEBOOKS:
        assert validate.check_values(BASE[name], SOURCE, name) == [], name
        settings.parse(name, BASE[name]).plan()


def _named(problems: list[str], key: str) -> bool:
    return any(p.startswith(f"{SOURCE}: ") and key in p for p in problems)


@pytest.mark.parametrize(("notebook", "key"), KEYS, ids=[f"{n}.{k}" for n, k in KEYS])
@hsettings(max_examples=25, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(value=VALUES)
def test_a_bad_value_is_refused_naming_its_key_or_builds(notebook, key, value):
    values = {**BASE[notebook], key: value}
    problems = validate.check_values(values, SOURCE, notebook)
    if problems:
        assert _named(problems, key), problems
        return
    try:
        settings.parse(notebook, values).plan()
    except (settings.SettingsError, SpecError, ValueError, TypeError, KeyError, AttributeError) as error:
        pytest.fail(f"{notebook}: {key} = {value!r} passed the profile check but the notebook would fail: "
                    f"{type(error).__name__}: {error}")


def test_the_shape_of_a_value_comes_from_the_typed_settings():
    """The same name can mean different shapes in different notebooks: ``seeds`` is a list in the
    walkthrough and a mapping method -> seeds elsewhere; ``k_shot`` an integer or a mapping."""
    walk, e2h = dict(BASE["walkthrough"]), dict(BASE["easy_to_hard"])
    assert any("seeds: expected a list" in p
               for p in validate.check_values({**walk, "seeds": {}}, SOURCE, "walkthrough"))
    assert any("k_shot: expected an integer" in p
               for p in validate.check_values({**walk, "k_shot": {}}, SOURCE, "walkthrough"))
    assert any("seeds: expected a mapping" in p
               for p in validate.check_values({**e2h, "seeds": [0]}, SOURCE, "easy_to_hard"))
    assert any("sweeps_to_run" in p and "expected a list" in p for p in validate.check_values(
        {**BASE["label_noise"], "sweeps_to_run": {"icl": None}}, SOURCE, "label_noise"))


def test_values_that_pass_every_rule_but_do_not_build_are_refused_before_any_run(monkeypatch):
    def broken(notebook, values):
        raise TypeError("'int' object is not subscriptable")

    monkeypatch.setattr(settings, "parse", broken)
    problems = validate.check_values(BASE["easy_to_hard"], SOURCE, "easy_to_hard")
    assert problems == [f"{SOURCE}: the easy_to_hard settings do not build from these values (TypeError: 'int' object "
                        "is not subscriptable); fix the value it names"]
    assert validate.check_values(BASE["easy_to_hard"], SOURCE) == []  # without the notebook: the rules only
