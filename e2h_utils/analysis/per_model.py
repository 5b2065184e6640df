"""One plan per model, run and tabled with one model in memory at a time (model scale, robustness,
third grade to college).

``table(names, plan_of, bootstrap, ...)`` loads each named model, placed by ``run_settings`` (lazily:
a model whose results are all stored is never loaded), runs ``plan_of(name)`` on it, tables the
results (``estimates.table``), records its runs in the notebook's provenance log and frees it before
the next. A notebook's own runner is reused for its own model (``runner``), and left for the
notebook to log.
"""

from __future__ import annotations

import gc
from typing import Callable, Sequence

import pandas as pd

from e2h_utils.analysis import estimates
from e2h_utils.analysis.provenance import Log
from e2h_utils.engine import models, runtime
from e2h_utils.experiments import plans
from e2h_utils.experiments.runner import Runner


def table(names: Sequence[str], plan_of: Callable[[str], Sequence[plans.Entry]], bootstrap: estimates.Bootstrap, *,
          dtype: str, quantization: str, run_settings: runtime.RunSettings, log: Log,
          runner: Runner | None = None) -> pd.DataFrame:
    """The result tables of ``plan_of(name)`` on each model in ``names``, one after another (empty: no rows)."""
    parts = []
    for name in names:
        own = runner is not None and runner.lm.spec.name == name
        model_runner = runner if own and runner is not None else Runner(
            models.load_model(name, run_settings, dtype=dtype, quantization=quantization))
        plan = list(plan_of(name))
        parts.append(estimates.table(plan, model_runner.run_all(plans.specs(plan), desc=name), bootstrap))
        if not own:
            log.add(model_runner)
            del model_runner
            gc.collect()
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
