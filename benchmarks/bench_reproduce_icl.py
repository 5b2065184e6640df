"""Before / after the fast path: the in-context-learning scoring of a ``make reproduce`` profile.

For the ICL runs of ``easy_to_hard`` under a profile (each dataset x measure x training level,
plus the shared zero-shot run), this rebuilds exactly the prompts the notebook scores (same
split, same examples of the first seed, same test items) and times, on the first ``--sample``
test items of each run,

- the fast path (``prefix_cache=True``, what the notebooks use), and
- the plain path (``prefix_cache=False``: every question + choice fed as one full sequence, the
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
import yaml

from e2h_utils import data, experiments, hardness, icl, models, paths, prompts


def icl_runs(params: dict) -> list[tuple[str, str, str, int, int]]:
    """(dataset, measure, train level, k, seeds run) of the ICL cells of the easy_to_hard profile."""
    runs = []
    if "icl" not in params["methods"]:
        return runs
    n_seeds = len(params["seeds"]["icl"])
    for dataset, measures in params["measures"].items():
        for measure in measures:
            runs.append((dataset, measure, "none", 0, 1))
            for level in ("easy", "hard"):
                runs.append((dataset, measure, level, int(params["k_shot"][dataset]), n_seeds))
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--sample", type=int, default=12, help="test items per run timed on the plain path (0: all)")
    parser.add_argument("--datasets", nargs="*", help="only these datasets of the profile (default: all)")
    parser.add_argument("--out", type=Path, default=paths.project_root() / "outputs" / "benchmarks")
    args = parser.parse_args(argv)

    params = yaml.safe_load((paths.parameters_dir() / args.profile / "easy_to_hard.yaml").read_text())
    lm = models.load_model(params.get("model", "embedded"), dtype=params.get("model_dtype", "auto"))
    test = experiments.TestSelection(test_fraction=params["test_fraction"], max_per_level=params["max_test_per_level"],
                                     split_seed=params["split_seed"], levels=tuple(params["test_levels"]))
    frames: dict[str, pd.DataFrame] = {}
    rows = []
    for dataset, measure, level, k, n_seeds in icl_runs(params):
        if args.datasets and dataset not in args.datasets:
            continue
        frame = frames.setdefault(dataset, data.load_dataset(dataset))
        seed = int(params["seeds"]["icl"][0])
        spec = experiments.ExperimentSpec(dataset, measure, level, n_train=k, seeds=(seed,), model=lm.spec.name,
                                          test=test)
        roles = experiments.split_roles(frame, hardness.get_measure(dataset, measure), test)
        items = experiments.test_items(frame, roles, test)
        pool = experiments.training_pool(frame, roles, level)
        examples = experiments._draw(spec, pool, seed)
        fmt = prompts.get_format(None, dataset)
        sample = items if args.sample <= 0 else items.head(args.sample)
        timed = {}
        for name, cached in (("fast", True), ("plain", False)):
            started = time.perf_counter()
            timed[name], _ = icl.score_with_examples(lm, fmt, examples, sample, prefix_cache=cached)
            timed[name + "_s"] = time.perf_counter() - started
        agree = float(np.mean([int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(timed["fast"], timed["plain"])]))
        scored = len(items) * n_seeds
        rows.append({"dataset": dataset, "measure": measure, "train_level": level, "k": k, "seeds": n_seeds,
                     "items_scored": scored, "items_timed": len(sample),
                     "fast_s_per_item": timed["fast_s"] / len(sample), "plain_s_per_item": timed["plain_s"] / len(sample),
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
