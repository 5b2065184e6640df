"""One runner per method type: what one seed of a run computes, given its ``SeedJob``.

``RUNNERS`` is the one table that maps a method type (``methods.base``) to its runner. Every
runner returns one row per test item; answer-scoring methods return the columns of
``base.result_frame`` (log-probabilities, probabilities, prediction, ``correct``), chain of thought
returns the generation, the answer read from it and its correctness under both answer rules.

- ``ZeroShot``: every choice scored after the question, no examples;
- ``ICL``: the seed's examples are the shared prefix (``methods.icl``), encoded once;
- ``Probe``: hidden states of train + test items (cached once per model, dataset and prompt:
  ``methods.features``), a linear probe trained on the seed's examples;
- ``QLoRA``: fresh adapters on the quantized base, trained on the seed's examples, then scoring;
- ``CoT``: greedy generation after worked examples (ICL), after zero-shot instructions (the
  baseline), or after QLoRA trained on reasoning + answer; the answer read by both rules.
"""

from __future__ import annotations

from typing import Callable, cast

import pandas as pd

from e2h_utils.data import answers, prompts
from e2h_utils.engine import generation, scoring
from e2h_utils.methods import features, icl
from e2h_utils.methods.base import (
    ICL,
    CoT,
    Method,
    Probe,
    QLoRA,
    SeedJob,
    ZeroShot,
    result_frame,
)
from e2h_utils.methods.probe import train_probe
from e2h_utils.methods.qlora import train_and_generate, train_and_score

SeedRunner = Callable[[Method, SeedJob], pd.DataFrame]  # one seed of one method


def _items(job: SeedJob, fmt: prompts.PromptFormat, rows: pd.DataFrame) -> list[scoring.ScoringItem]:
    return [scoring.make_item(job.lm.tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in rows.to_dict("records")]


def _keep_adapter(job: SeedJob, method: Method) -> str | None:
    """Where a run's adapters are saved when the run settings ask for it: laid out like the result
    store (``<keep_adapters>/<dataset>/<kind>/<key>/seed-<s>``), so no two runs share a folder."""
    folder = job.settings.keep_adapters
    return None if folder is None else f"{folder}/{job.dataset}/{method.kind}/{job.key}/seed-{job.seed}"


def run_scored(method: ZeroShot | ICL, job: SeedJob) -> pd.DataFrame:
    """Zero-shot and in-context learning: the seed's examples (none for zero-shot) as the prefix."""
    fmt = prompts.get_format(job.prompt_format, job.dataset)
    scores, kept = icl.score_with_examples(job.lm, fmt, job.train, job.test, max_length=job.max_length,
                                           progress=job.progress, desc=f"{job.label} seed {job.seed}")
    return result_frame(job.test, scores, job.seed, job.train.iloc[:kept])


def run_probe(method: Probe, job: SeedJob) -> pd.DataFrame:
    feats = features.features_for(job.lm, pd.concat([job.train, job.test]), job.dataset,
                                  prompt_format=job.prompt_format, layers=method.layers,
                                  cache=features.FeatureCache(job.features_root), progress=job.progress)
    probe = train_probe([feats[i] for i in job.train["id"]], list(job.train["label"]), method.config, job.seed)
    return result_frame(job.test, probe.scores([feats[i] for i in job.test["id"]]), job.seed, job.train)


def run_qlora(method: QLoRA, job: SeedJob) -> pd.DataFrame:
    fmt = prompts.get_format(job.prompt_format, job.dataset)
    scores, losses = train_and_score(job.lm, _items(job, fmt, job.train), list(job.train["label"]),
                                     _items(job, fmt, job.test), method.config, job.seed,
                                     keep_adapter=_keep_adapter(job, method), progress=job.progress,
                                     micro_batch=job.settings.micro_batch)
    result = result_frame(job.test, scores, job.seed, job.train)
    result["train_losses"] = [losses] * len(result)
    return result


# --- chain of thought -------------------------------------------------------------------------

def generation_frame(fmt: prompts.CoTFormat, test: pd.DataFrame, texts: list[str], seed: int,
                     train_ids: list[str], rule: str, cut_at_newline: bool) -> pd.DataFrame:
    """Per test item: the generation, the answer read from it and its correctness under the
    method's rule (``extracted``, ``correct``) and under both named rules (``*_strict``,
    ``*_lenient``), so a notebook can report either."""
    rows = test.to_dict("records")
    gold = [str(r["answer"]) for r in rows]
    out = pd.DataFrame({"item_id": [r["id"] for r in rows], "level": [r["level"] for r in rows], "seed": seed,
                        "generation": texts, "gold": gold})
    for name in answers.RULES:
        extracted = [answers.extract(t, fmt.kind, name, cut_at_newline) for t in texts]
        out[f"extracted_{name}"] = extracted
        out[f"correct_{name}"] = [float(answers.is_correct(e, g, fmt.kind, name)) for e, g in zip(extracted, gold)]
    out.insert(4, "extracted", out[f"extracted_{rule}"])
    out.insert(6, "correct", out[f"correct_{rule}"])
    out["extraction"] = rule
    out["n_shots"] = len(train_ids)
    out["example_ids"] = [list(train_ids)] * len(rows)
    return out


def cot_stops(fmt: prompts.CoTFormat, rule: str, trained: bool) -> tuple[tuple[str, ...], tuple]:
    """(stop strings, stop patterns) of a generation. Strict (the authors'): in-context learning
    stops once the first "the answer is" has a line break after it (nothing later can change
    the answer) or at the next question; QLoRA generates to end-of-sequence, as theirs (their
    rule reads everything after the trigger there). Lenient: at the example separator."""
    if rule == "strict":
        return ((), ()) if trained else (("\nQ:",), (generation.ANSWER_LINE,))
    return (fmt.separator, "\nQ:"), ()


def run_cot(method: CoT, job: SeedJob) -> pd.DataFrame:
    fmt = prompts.get_cot_format(job.prompt_format, job.dataset)
    if isinstance(method.inner, QLoRA):
        return _cot_qlora(method, job, fmt)
    lm, rows = job.lm, job.test.to_dict("records")
    zero_shot = isinstance(method.inner, ZeroShot)
    texts = [fmt.zero_shot_prompt(r, method.baseline_recipe) if zero_shot else fmt.prompt(r) for r in rows]
    examples = job.train
    # room for the longest prompt (with the separator after the examples) plus the generated tokens
    # a run's method has its generation length resolved (ExperimentSpec: CoT.with_length)
    budget = [scoring.ScoringItem(tuple(scoring.encode(lm.tokenizer, icl.question_text(t, fmt, not examples.empty))),
                                  ((0,) * cast(int, method.max_new_tokens),)) for t in texts]
    max_length = job.max_length or int(getattr(lm.model.config, "max_position_embeddings", 2048))
    prefix_ids, kept = icl.fit_prefix(lm.tokenizer, lm.bos_ids(), examples, fmt, budget, max_length)
    prompt_ids = icl.question_ids(lm.tokenizer, examples.iloc[:kept], fmt, texts)
    stop, patterns = cot_stops(fmt, method.extraction, trained=False)
    generated = generation.greedy_generate(
        lm.model, lm.tokenizer, prefix_ids, prompt_ids, max_new_tokens=cast(int, method.max_new_tokens), stop=stop,
        stop_patterns=patterns, batch_size=job.settings.generation_batch, progress=job.progress,
        desc=f"{job.label} CoT seed {job.seed}")
    return generation_frame(fmt, job.test, generated, job.seed, list(examples["id"].iloc[:kept]), method.extraction,
                            cut_at_newline=True)


def _cot_qlora(method: CoT, job: SeedJob, fmt: prompts.CoTFormat) -> pd.DataFrame:
    lm, train = job.lm, job.train
    bos, eos = lm.bos_ids(), lm.tokenizer.eos_token_id
    pairs = [(bos + scoring.encode(lm.tokenizer, fmt.prompt(r)), scoring.encode(lm.tokenizer, fmt.target(r)) + [eos])
             for r in train.to_dict("records")]
    prompt_ids = [scoring.encode(lm.tokenizer, fmt.prompt(r)) for r in job.test.to_dict("records")]
    stop, patterns = cot_stops(fmt, method.extraction, trained=True)
    assert isinstance(method.inner, QLoRA)
    texts, losses = train_and_generate(lm, pairs, prompt_ids, method.inner.config, job.seed,
                                       max_new_tokens=cast(int, method.max_new_tokens), stop=stop,
                                       stop_patterns=patterns, keep_adapter=_keep_adapter(job, method),
                                       progress=job.progress,
                                       micro_batch=job.settings.micro_batch,
                                       gradient_checkpointing=job.settings.gradient_checkpointing,
                                       generation_batch=job.settings.generation_batch)
    result = generation_frame(fmt, job.test, texts, job.seed, list(train["id"]), method.extraction,
                              cut_at_newline=False)
    result["train_losses"] = [losses] * len(result)
    return result


# the one table: method type -> its runner (each takes its own method type)
RUNNERS: dict[type, Callable[..., pd.DataFrame]] = {
    ZeroShot: run_scored,
    ICL: run_scored,
    Probe: run_probe,
    QLoRA: run_qlora,
    CoT: run_cot,
}


def runner_for(method: Method) -> SeedRunner:
    try:
        return RUNNERS[type(method)]
    except KeyError:
        raise TypeError(f"no runner for {type(method).__name__}: add one to methods.runners.RUNNERS") from None
