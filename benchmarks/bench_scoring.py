"""Time e2h's multiple-choice scorer against EleutherAI's lm-evaluation-harness.

Same model, same questions (the first N of ARC-Easy test), same prompts (e2h's ``mc_lettered``,
the authors' prompt 0040: ``Question: … \\nA) …\\nAnswer: {choice}``, solved examples with a
space before ``\\nAnswer:``, the k examples = the first k of ARC-Easy train, joined by blank lines)
and the same rule (argmax of summed answer-token log-probabilities). lm-eval reads the data through
a local task YAML pointing at the same parquet files; its ``fewshot_config.doc_to_text`` renders
the examples' extra space. The script checks that both build the identical prompt string.

Reports, for each k: both accuracies, questions per second of each and their ratio, and how far
our scorer is from the arithmetic floor (forward FLOPs of the tokens it must process over the
FLOP rate this machine reaches on a large matrix product). Writes a CSV/markdown table and a plot.

    python benchmarks/bench_scoring.py --questions 100 --shots 0 10

Needs the ``bench`` extra: ``pip install -e '.[bench]'`` (lm_eval==0.4.13).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from e2h_utils import paths
from e2h_utils.analysis import plots, provenance
from e2h_utils.data import prompts, sources
from e2h_utils.engine import models, scoring
from e2h_utils.methods import icl

LETTERS = "ABCDEFGHIJ"
TASK_TEMPLATE = """task: {name}
{dataset}
test_split: test
fewshot_split: train
fewshot_config:
  sampler: first_n
  doc_to_text: "Question: {{{{question}}}} {{% for t in choices.text %}}\\n{{{{ '{letters}'[loop.index0] }}}}) \
{{{{t}}}}{{% endfor %}} \\nAnswer:"
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}} {{% for t in choices.text %}}\\n{{{{ '{letters}'[loop.index0] }}}}) \
{{{{t}}}}{{% endfor %}}\\nAnswer:"
doc_to_choice: "{{{{choices.text}}}}"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
metric_list:
  - metric: acc
"""


def arc_easy(split: str) -> pd.DataFrame:
    """ARC-Easy rows in upstream order, with our tidy columns (choices list, label index)."""
    raw = sources.load_hub_split(sources.ARC, "ARC-Easy", split)
    labels = [list(c["label"]) for c in raw["choices"]]
    return pd.DataFrame({
        "id": raw["id"],
        "question": raw["question"],
        "choices": [list(c["text"]) for c in raw["choices"]],
        "label": [lab.index(key) for lab, key in zip(labels, raw["answerKey"])],
    })


def task_yaml(folder: Path, name: str) -> None:
    mirror = paths.mirror_root()
    if mirror is not None:
        base = mirror / "hf" / sources.ARC.repo / "ARC-Easy"
        dataset = ("dataset_path: parquet\ndataset_kwargs:\n  data_files:\n"
                   f"    train: {base / 'train-00000-of-00001.parquet'}\n"
                   f"    test: {base / 'test-00000-of-00001.parquet'}")
    else:
        dataset = (f"dataset_path: {sources.ARC.repo}\ndataset_name: ARC-Easy\n"
                   f"dataset_kwargs:\n  revision: {sources.ARC.revision}")
    text = TASK_TEMPLATE.format(name=name, dataset=dataset, letters=LETTERS)
    (folder / f"{name}.yaml").write_text(text)


def run_ours(lm: models.LoadedModel, test: pd.DataFrame, shots: pd.DataFrame):
    fmt = prompts.get_format("mc_lettered")
    rows = test.to_dict("records")
    start = time.perf_counter()
    questions = icl.question_ids(lm.tokenizer, shots, fmt, [fmt.prompt(r) for r in rows])
    items = [scoring.make_item(lm.tokenizer, fmt.prompt(r), fmt.continuations(r), prompt_ids=q)
             for r, q in zip(rows, questions)]
    prefix = lm.bos_ids() + (scoring.encode(lm.tokenizer, icl.prefix_text(shots, fmt)) if len(shots) else [])
    logprobs = scoring.choice_logprobs(lm.model, prefix, items, pad_id=lm.tokenizer.pad_token_id, progress=True,
                                       desc=f"e2h {len(shots)}-shot")
    seconds = time.perf_counter() - start
    preds = scoring.predictions(logprobs, [r["label"] for r in rows])
    return preds, seconds, prefix, items


def run_lm_eval(hflm, folder: Path, name: str, n: int, k: int, batch_size: int):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    start = time.perf_counter()
    out = simple_evaluate(model=hflm, tasks=[name], num_fewshot=k, limit=n, batch_size=batch_size,
                          task_manager=TaskManager(include_path=str(folder)), log_samples=True,
                          bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                          fewshot_random_seed=0)
    seconds = time.perf_counter() - start
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    return float(out["results"][name]["acc,none"]), seconds, samples


def floor_flops(model, prefix_len: int, items: list[scoring.ScoringItem]) -> float:
    """Forward FLOPs of the tokens our scorer feeds: prefix once, each question once, each
    choice's tokens but the last; the output head only at answer positions; attention included."""
    config = model.config
    embed = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings().weight
    decoder_params = sum(p.numel() for p in model.get_decoder().parameters()) - embed
    width = config.num_attention_heads * getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
    layers = config.num_hidden_layers
    contexts = list(range(1, prefix_len + 1))
    answer_tokens = 0
    for item in items:
        q = len(item.prompt_ids)
        contexts += [prefix_len + j + 1 for j in range(q)]
        for choice in item.choice_ids:
            contexts += [prefix_len + q + j + 1 for j in range(len(choice) - 1)]
            answer_tokens += len(choice)
    linear = 2 * decoder_params * len(contexts) + 2 * head.numel() * answer_tokens
    attention = 4 * layers * width * float(np.sum(contexts))
    return linear + attention


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--questions", type=int, default=100, help="first N ARC-Easy test questions")
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--lm-eval-batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=paths.project_root() / "outputs" / "benchmarks")
    args = parser.parse_args(argv)

    from lm_eval.models.huggingface import HFLM

    lm = models.load_model(args.model, dtype="float32")
    hflm = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=args.lm_eval_batch_size,
                add_bos_token=lm.add_bos)
    test, train = arc_easy("test").head(args.questions), arc_easy("train")
    gflops = provenance.matmul_gflops()
    print(f"matmul rate: {gflops:.1f} GFLOP/s, torch threads: {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        name = "e2h_bench_arc_easy"
        task_yaml(Path(folder), name)
        for k in args.shots:
            shots = train.head(k)
            preds, ours_s, prefix, items = run_ours(lm, test, shots)
            acc_theirs, theirs_s, samples = run_lm_eval(hflm, Path(folder), name, args.questions, k,
                                                        args.lm_eval_batch_size)
            fmt = prompts.get_format("mc_lettered")
            ours_contexts = [icl.prefix_text(shots, fmt) + icl.question_text(fmt.prompt(row), fmt, k > 0)
                             for row in test.to_dict("records")]
            same_prompt = len(samples) == len(test) and all(
                s["arguments"][0][0] == ours for s, ours in zip(samples, ours_contexts))  # every question's prompt
            theirs_pred = [int(np.argmax([r[0] for r in s["filtered_resps"]])) for s in samples]
            agree = float(np.mean(np.array(theirs_pred) == preds["pred"].to_numpy()))
            floor_s = floor_flops(lm.model, len(prefix), items) / (gflops * 1e9)
            rows.append({
                "shots": k, "questions": len(test),
                "acc_e2h": preds["correct"].mean(), "acc_lm_eval": acc_theirs,
                "prediction_agreement": agree, "identical_prompts": same_prompt,
                "e2h_s": ours_s, "lm_eval_s": theirs_s,
                "e2h_q_per_s": len(test) / ours_s, "lm_eval_q_per_s": len(test) / theirs_s,
                "speedup": theirs_s / ours_s, "floor_s": floor_s, "e2h_over_floor": ours_s / floor_s,
            })
            print(json.dumps(rows[-1], default=str))
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "bench_scoring.csv", index=False)
    markdown = table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else table.to_string(index=False)
    (args.out / "bench_scoring.md").write_text(markdown + "\n")
    print(markdown)
    fig = _plot(table)
    plots.save_figure(fig, args.out / "bench_scoring")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _plot(table: pd.DataFrame):
    from matplotlib.figure import Figure

    with plots.style():
        fig = Figure(figsize=(7.0, 3.0))
        left, right = fig.subplots(1, 2)
        x = np.arange(len(table))
        bars = ((-0.2, "e2h", "e2h_q_per_s", "acc_e2h"), (0.2, "lm-eval", "lm_eval_q_per_s", "acc_lm_eval"))
        for offset, label, speed, accuracy in bars:
            left.bar(x + offset, table[speed], 0.4, label=label)
            right.bar(x + offset, 100 * table[accuracy], 0.4, label=label)
        for ax in (left, right):
            ax.set_xticks(x, [f"{k}-shot" for k in table["shots"]])
        left.set_ylabel("questions per second")
        right.set_ylabel("accuracy (%)")
        left.legend(frameon=False)
        for i, speedup in enumerate(table["speedup"]):
            left.annotate(f"{speedup:.1f}x", (i, table["e2h_q_per_s"].iloc[i]), ha="center", va="bottom")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
