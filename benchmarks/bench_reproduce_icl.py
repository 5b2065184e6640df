"""Before / after the fast path: the in-context-learning scoring of a ``make reproduce`` profile.

For the ICL runs of ``easy_to_hard`` under a profile (each dataset x measure x training level,
plus the shared zero-shot run), this rebuilds exactly the prompts the notebook scores (same
split, same examples of the first seed, same test items) and times, on the first ``--sample``
test items of each run,

- the fast path (``methods.icl.score_with_examples``, what the notebooks use), and
- the plain path (``benchmarks/reference.py``: every question + choice fed as one full sequence, the
  way lm-evaluation-harness does it),

checks that both predict the same choices, and extrapolates the plain path's time per item to
every test item and seed of the profile: the ICL scoring time ``make reproduce`` would take without
the fast path. (The fast path's real time over the full profile is in the notebook's timing
table; small samples understate its batching.) Nothing is written under results/.

    python benchmarks/bench_reproduce_icl.py --profile embedded --sample 6
    python benchmarks/bench_reproduce_icl.py --profile embedded --sample 0 --datasets strategyqa  # all items
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from e2h_utils import paths
from e2h_utils.data import datasets, hardness, prompts
from e2h_utils.engine import models
from e2h_utils.experiments import plans, settings, split
from e2h_utils.experiments.runner import draw
from e2h_utils.methods import icl
from e2h_utils.methods.base import ICL
from e2h_utils.pipeline.plan import notebook_parameters

try:
    from benchmarks.reference import score_with_examples_uncached
except ImportError:  # run as a script from the benchmarks folder
    from reference import score_with_examples_uncached


def icl_specs(cfg: settings.EasyToHard) -> list:
    """(spec, seeds run) of every ICL run of the profile's easy_to_hard notebook (its baselines included)."""
    out = []
    for comparison in cfg.e2h_plan():
        if isinstance(comparison.easy.method, ICL):
            out += [(spec, len(spec.run_seeds)) for spec in comparison.specs]
    return list(dict.fromkeys(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--sample", type=int, default=12, help="test items per run timed on the plain path (0: all)")
    parser.add_argument("--datasets", nargs="*", help="only these datasets of the profile (default: all)")
    parser.add_argument("--out", type=Path, default=paths.project_root() / "outputs" / "benchmarks")
    args = parser.parse_args(argv)

    cfg = settings.parse("easy_to_hard", notebook_parameters(args.profile, "easy_to_hard"))
    lm = models.load_model(cfg.model, dtype=cfg.model_dtype)
    frames: dict[str, pd.DataFrame] = {}
    rows = []
    for spec, n_seeds in icl_specs(cfg):
        dataset, measure = spec.dataset, spec.measure
        if args.datasets and dataset not in args.datasets:
            continue
        frame = frames.setdefault(dataset, datasets.load_dataset(dataset))
        spec = plans.run(dataset, measure, spec.method, None if spec.train_level == "none" else spec.train_level,
                         seeds=spec.run_seeds[:1], model=lm.spec.name, test=spec.test)
        seed = spec.run_seeds[0]
        roles = split.split_roles(frame, hardness.get_measure(dataset, measure), spec.test)
        items = split.test_items(frame, roles, spec.test)
        examples = draw(spec, split.training_pool(frame, roles, spec.train_level), seed)
        level, k = spec.train_level, spec.method.size
        fmt = prompts.get_format(None, dataset)
        sample = items if args.sample <= 0 else items.head(args.sample)
        timed = {}
        for name, score in (("fast", icl.score_with_examples), ("plain", score_with_examples_uncached)):
            started = time.perf_counter()
            timed[name], _ = score(lm, fmt, examples, sample)
            timed[name + "_s"] = time.perf_counter() - started
        agree = float(np.mean([int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(timed["fast"], timed["plain"])]))
        scored = len(items) * n_seeds
        rows.append({"dataset": dataset, "measure": measure, "train_level": level, "k": k, "seeds": n_seeds,
                     "items_scored": scored, "items_timed": len(sample),
                     "fast_s_per_item": timed["fast_s"] / len(sample),
                     "plain_s_per_item": timed["plain_s"] / len(sample),
                     "plain_s_est": timed["plain_s"] / len(sample) * scored, "same_prediction": agree})
        print(json.dumps(rows[-1]))
    table = pd.DataFrame(rows)
    totals = {"profile": args.profile, "items_scored": int(table["items_scored"].sum()),
              "plain_s_est": float(table["plain_s_est"].sum()),
              "fast_s_est_from_sample": float((table["fast_s_per_item"] * table["items_scored"]).sum()),
              "same_prediction": float(np.average(table["same_prediction"], weights=table["items_timed"]))}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_reproduce_icl_{args.profile}" + (f"_{'_'.join(args.datasets)}" if args.datasets else "")
    table.to_csv(args.out / f"{stem}.csv", index=False)
    by_measure = table.groupby(["dataset", "measure"], sort=False)[["items_scored", "plain_s_est"]].sum()
    print(by_measure.round(1).to_string())
    print(json.dumps(totals))
    (args.out / f"{stem}.json").write_text(json.dumps(totals, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
