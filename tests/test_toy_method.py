"""A new method is one class, one recipe and one runner, and nothing else: a toy method defined in
this file only is named in a profile's values, checked by the profile check, built, run by the
``Runner`` for every seed, stored under its own kind and read back."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from test_experiments import make_frame

from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, Training
from e2h_utils.experiments.spec import TestSelection as Selection
from e2h_utils.experiments.store import ResultStore
from e2h_utils.methods import base, runners
from e2h_utils.methods.base import Method, Recipe, SeedJob, ZeroShot, result_frame
from e2h_utils.pipeline import validate


@dataclass(frozen=True)
class Majority(Method):
    """Answers every test item with the answer position most of its ``n`` training examples have."""

    n: int
    kind: ClassVar[str] = "majority"

    @property
    def size(self) -> int:
        return self.n

    def resized(self, size: int) -> Majority:
        return replace(self, n=int(size))


def run_majority(method: Majority, job: SeedJob) -> pd.DataFrame:
    favourite = Counter(job.train["label"]).most_common(1)[0][0]
    scores = [np.array([0.0 if i == favourite else -5.0 for i in range(len(choices))])
              for choices in job.test["choices"]]
    return result_frame(job.test, scores, job.seed, job.train)


@pytest.fixture
def majority(monkeypatch):
    """The method registered for one test (``register`` does the same for good)."""
    monkeypatch.setitem(base.RECIPES, "majority",
                        Recipe("majority", (), lambda n, options: ZeroShot() if n == 0 else Majority(n)))
    monkeypatch.setitem(runners.RUNNERS, Majority, run_majority)


def test_a_new_method_is_one_class_one_recipe_and_one_runner(majority, tiny_lm, tmp_path):
    assert "majority" in base.kinds(chain_of_thought=False) and base.build("majority", 4) == Majority(4)
    assert base.build("majority", 0) == ZeroShot()
    with pytest.raises(base.MethodError, match="unknown option"):
        base.build("majority", 4, {"lr": 1})
    # the profile check reads it from the recipe: a method sized by n needs an n_train entry
    values = {"methods": ["icl", "majority"], "measures": {"arc": ["grade"]}, "k_shot": {"arc": 2},
              "n_train": {}, "seeds": {"icl": [0], "majority": [0]}}
    assert any("n_train: no n for method 'majority'" in p for p in validate.check_values(values, "e.yaml"))
    assert not validate.check_values({**values, "n_train": {"majority": 4}}, "e.yaml")
    assert any("unknown answer-scoring method 'vote'" in p
               for p in validate.check_values({**values, "methods": ["vote"]}, "e.yaml"))

    store, frame = ResultStore(tmp_path), make_frame()
    spec = ExperimentSpec("arc", "grade", Majority(4), Training("easy"), model=tiny_lm.spec.name, seeds=(0, 1),
                          test=Selection(test_fraction=0.5, max_per_level=4))
    first = Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False).run(spec)
    assert set(first["seed"]) == {0, 1} and set(first["method"]) == {"majority"} and (first["n_shots"] == 4).all()
    assert len(list((tmp_path / "arc" / "majority").glob("*/seed-*.parquet"))) == 2
    again = Runner(tiny_lm, store=store, frames={"arc": frame}, progress=False)
    pd.testing.assert_frame_equal(again.run(spec), first)
    assert [t.computed for t in again.timings] == [0]  # read back, not recomputed
