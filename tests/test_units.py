"""A new kind of stored work is one class: a toy unit, defined only here, goes through the plan
(listing, keys, what is stored), the cost and memory report, the cluster's shards and execution,
without a change to another module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import pandas as pd

from e2h_utils.engine import runtime
from e2h_utils.experiments.store import ResultStore
from e2h_utils.pipeline import cluster, plan
from e2h_utils.pipeline.cost import Context, Work
from e2h_utils.pipeline.units import PlannedRun


@dataclass(frozen=True)
class Echo:
    """A toy unit: scores each of its items as correct, ``tokens`` forward tokens per item, and
    (when ``trains``) claims to train weights."""

    tokens: int
    trains: bool = False
    kind: ClassVar[str] = "echo"
    shows_level: ClassVar[bool] = False

    def work(self, run: PlannedRun, ctx: Context, frame: pd.DataFrame, seeds: Sequence[int]) -> Work:
        return Work(forward_tokens=float(self.tokens * len(run.item_ids)), forward_context=10.0).scaled(len(seeds))

    def updates_weights(self) -> bool:
        return self.trains

    def execute(self, run: PlannedRun, lm: Any, frame_of: Callable[[str], pd.DataFrame], store: ResultStore,
                progress: bool = False) -> None:
        for seed in run.seeds:
            scored = pd.DataFrame({"item_id": list(run.item_ids), "seed": seed, "correct": 1.0})
            store.get_or_compute(run.payload or {}, seed, lambda: scored)


def _toy(planner: plan.Planner, key: str, trains: bool = False) -> PlannedRun:
    run = PlannedRun(notebook="toy", unit=Echo(tokens=100, trains=trains), model="embedded", dtype="auto",
                     quantization="none", dataset="arc", method="echo", measure="-", train_level="-", n_train=0,
                     seeds=(0, 1), test_items=3, item_ids=("a", "b", "c"), frame=pd.DataFrame({"id": ["a", "b", "c"]}))
    return planner.add(run, {"dataset": "arc", "method": "echo", "toy": key})


def test_a_toy_unit_is_planned_costed_sharded_and_run_through_the_protocol_only(tmp_path):
    store = ResultStore(tmp_path)
    planner = plan.Planner(store)
    run = _toy(planner, "one")
    assert run.key and run.cached == () and run.label == "arc/-/echo" and run.kind == "echo"

    summary = plan.summarize("embedded", plan.parse_devices("cpu"), runs=[run], counter=object(),  # type: ignore
                             settings=runtime.RunSettings(), planner=planner)
    row = summary.table.iloc[0]
    assert row["kind"] == "echo" and row["tokens"] == 2 * 3 * 100 and row["seconds"] > 0
    assert [m.model for m in summary.memory] == ["embedded"] and summary.fits
    trained = plan.summarize("embedded", plan.parse_devices("cpu"), runs=[_toy(planner, "two", trains=True)],
                             counter=object(), settings=runtime.RunSettings(), planner=planner)  # type: ignore
    assert trained.memory[0].training > summary.memory[0].training == 0  # a training unit is checked for it

    (shard,) = cluster.shards([run], runs_per_job=5)
    assert shard.keys == (run.key,) and shard.model == "embedded"
    cluster.execute(run, None, planner, store)  # no model: the toy needs none
    again = _toy(plan.Planner(store), "one")
    assert again.cached == (0, 1) and again.done  # what it stored is what the plan sees
