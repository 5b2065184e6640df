"""Evaluators (outcome reward models): trained to say whether a sampled solution is correct.

An evaluator is one of the method types (``methods.base``), read as a reward model:

Both read the same text: the problem as the generator saw it, the sampled solution, then
``VERIFY_QUESTION`` ("Is this solution correct? Answer:").

- ``Probe(n, config, layers)``: a logistic probe (``probe.train_binary_probe``, the authors' probe
  recipe with a bias) on the hidden states at the last token of that text (an outcome reward
  model's read-out position: everything of the solution is seen), from the authors' middle and
  last layers; the hidden states are cached once per model and sample set
  (``features.cached_states``), so every seed and training level only refits the probe;
- ``QLoRA(n, config)``: LoRA adapters on the quantized base, trained as the paper's QLoRA
  (``qlora.train_and_score``: softmax over the choices' log-likelihoods) with the choices
  ``" No"`` / ``" Yes"`` after that text, the label the solution's correctness.

Both are trained on ``n`` sampled solutions (their correctness the label) and score every test
sample with P(correct). ``EVALUATORS`` maps each type to its scorer. Process reward models
(a score per reasoning step) need step labels (PRM800K), which are not available offline: a PRM
is one more entry here whose scorer returns a sample's aggregated step score (docs/fidelity.md S05).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from e2h_utils.data import prompts
from e2h_utils.engine import scoring
from e2h_utils.engine.runtime import RunSettings
from e2h_utils.methods import features
from e2h_utils.methods.base import Method, Probe, QLoRA
from e2h_utils.methods.probe import train_binary_probe
from e2h_utils.methods.qlora import train_and_score

# the version of the evaluators' inputs and training: in every evaluator result's key
EVALUATOR_VERSION = 1
VERIFY_QUESTION = "\nIs this solution correct? Answer:"
VERIFY_CHOICES = (" No", " Yes")


@dataclass
class EvaluatorJob:
    """What one seed of an evaluator needs: the model, the problems (by id), the training samples
    (their ``correct`` the label) and the test samples, the chain-of-thought format the samples were
    written in, where features are cached (and under which sample-set keys), the run settings."""

    lm: Any
    fmt: prompts.CoTFormat
    problems: dict[str, dict[str, Any]]
    train: pd.DataFrame
    test: pd.DataFrame
    seed: int
    features_root: Any
    feature_key: dict[str, Any]  # what the cached hidden states of these samples are keyed by (besides the model)
    settings: RunSettings
    progress: bool = True
    label: str = ""


def sample_id(row: dict[str, Any]) -> str:
    return f"{row['item_id']}#{int(row['sample'])}"


def solution(row: dict[str, Any]) -> str:
    """The generation as the evaluator reads it."""
    return str(row["generation"])


def _states(method: Probe, job: EvaluatorJob, samples: pd.DataFrame) -> np.ndarray:
    layers = tuple(int(x) for x in (method.layers or features.default_layers(job.lm.model)))
    payload = {"kind": "solution_states", **job.feature_key, "layers": list(layers),
               "model_identity": job.lm.identity, "version": EVALUATOR_VERSION}
    records = samples.to_dict("records")
    texts = {sample_id(r): (job.fmt.prompt(job.problems[r["item_id"]]) + solution(r), (VERIFY_QUESTION,))
             for r in records}
    have = features.cached_states(job.lm, payload, texts, layers, cache=features.FeatureCache(job.features_root),
                                  progress=job.progress, desc=f"{job.label} solution states")
    return np.stack([have[sample_id(r)][0] for r in records])


def probe_scores(method: Probe, job: EvaluatorJob) -> np.ndarray:
    both = pd.concat([job.train, job.test]).drop_duplicates(["item_id", "sample"])
    states = dict(zip((sample_id(r) for r in both.to_dict("records")), _states(method, job, both)))
    x_train = np.stack([states[sample_id(r)] for r in job.train.to_dict("records")])
    probe = train_binary_probe(x_train, list(job.train["correct"].astype(bool)), method.config, job.seed)
    return probe.scores(np.stack([states[sample_id(r)] for r in job.test.to_dict("records")]))


def verifier_items(job: EvaluatorJob, samples: pd.DataFrame) -> list[scoring.ScoringItem]:
    items = []
    for r in samples.to_dict("records"):
        prompt = job.fmt.prompt(job.problems[r["item_id"]]) + solution(r) + VERIFY_QUESTION
        items.append(scoring.make_item(job.lm.tokenizer, prompt, VERIFY_CHOICES))
    return items


def qlora_scores(method: QLoRA, job: EvaluatorJob) -> np.ndarray:
    logprobs, _ = train_and_score(job.lm, verifier_items(job, job.train), [int(c) for c in job.train["correct"]],
                                  verifier_items(job, job.test), method.config, job.seed, progress=job.progress,
                                  micro_batch=job.settings.micro_batch)
    stacked = np.stack([np.asarray(lp, dtype=float) for lp in logprobs])  # samples x (No, Yes)
    stacked = stacked - stacked.max(1, keepdims=True)
    probs = np.exp(stacked) / np.exp(stacked).sum(1, keepdims=True)
    return probs[:, 1]


# the one table: evaluator type -> its scorer (P(correct) of every test sample)
EVALUATORS: dict[type, Callable[[Any, EvaluatorJob], np.ndarray]] = {Probe: probe_scores, QLoRA: qlora_scores}
EVALUATOR_KINDS = ("probe", "qlora")


def scorer_for(method: Method) -> Callable[[Any, EvaluatorJob], np.ndarray]:
    try:
        return EVALUATORS[type(method)]
    except KeyError:
        raise TypeError(f"{type(method).__name__} is not an evaluator; evaluators: "
                        f"{', '.join(t.__name__ for t in EVALUATORS)}") from None


def score_frame(job: EvaluatorJob, scores: np.ndarray) -> pd.DataFrame:
    """Per test sample: its problem, level, sample index, the evaluator's score and the seed."""
    out = job.test[["item_id", "level", "sample"]].reset_index(drop=True).copy()
    out["score"] = np.asarray(scores, dtype=float)
    out["seed"] = job.seed
    out["n_train"] = len(job.train)
    out["train_correct"] = float(job.train["correct"].mean()) if len(job.train) else float("nan")
    return out
