"""Chain of thought: the CoT prompt formats, CoT specs and payloads, the LM loss of QLoRA (CoT),
and the ``icl_cot`` / ``qlora_cot`` runners end to end on a synthetic GSM8K-like frame scored
with the tiny random Llama of ``conftest``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from e2h_utils.data import answers
from e2h_utils.data import datasets as data
from e2h_utils.engine import generation
from e2h_utils.methods import icl
from e2h_utils.engine import models
from e2h_utils.data import prompts
from e2h_utils.methods import qlora
from e2h_utils.engine import scoring
from e2h_utils.engine import runtime
from e2h_utils.experiments.runner import Runner
from e2h_utils.experiments.spec import ExperimentSpec, SpecError, Training
from e2h_utils.experiments.spec import TestSelection as Selection  # renamed: pytest collects Test* / test_*
from e2h_utils.methods import base
from e2h_utils.methods.base import CoT, MethodError, ZeroShot, build
from e2h_utils.data.prompts import COT_FORMATS, MAX_NEW_TOKENS, CoTFormat, get_cot_format
from e2h_utils.methods.qlora import QLoRAConfig, attach_lora, finetune_lm, lm_loss
from e2h_utils.experiments.store import ResultStore

COT_METHODS = base.kinds(chain_of_thought=True)  # ("icl_cot", "qlora_cot"): the YAML names of chain of thought
N_SPECIAL = 4  # <unk> <pad> <s> </s> come first in the tiny vocabulary
NAMES = ["she", "he", "they", "the man", "the woman", "the boy", "the girl", "my friend"]
THINGS = ["apples", "eggs", "books", "pens", "boxes", "bags", "cars", "dogs"]
N_ROWS = 30


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def make_gsm8k_frame(seed: int = 0) -> pd.DataFrame:
    """GSM8K-like rows in the tiny vocabulary; num_steps 1..10 (easy <= 4, hard >= 7)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(N_ROWS):
        a, b = (int(x) for x in rng.integers(1, 10, size=2))
        who, what = NAMES[i % len(NAMES)], THINGS[(i // 3) % len(THINGS)]
        steps = 1 + i % 10
        reasoning = "\n".join([f"{who} has {a} {what} ."] + [f"then {b} more ."] * (steps - 1))
        answer = str(a + b * (steps - 1))
        rows.append({
            "id": f"gsm8k/test/{i}",
            "split": "test",
            "question": f"{who} has {a} {what} and gets {b} more {what} each day . how many {what} ?",
            "choices": [],
            "label": pd.NA,
            "answer": answer,
            "reasoning": reasoning,
            "solution": reasoning + f"\n#### {answer}",
            "num_steps": float(steps),
        })
    return data.tidy(pd.DataFrame(rows), "gsm8k")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_gsm8k_frame()


@pytest.fixture
def spy(monkeypatch):
    """Records the arguments of every ``generation.greedy_generate`` call (and runs it)."""
    calls: list[dict] = []
    real = generation.greedy_generate

    def recording(model, tokenizer, prefix_ids, prompts_, **kwargs):
        calls.append({"prefix_ids": list(prefix_ids), "prompts": [list(p) for p in prompts_], **kwargs})
        return real(model, tokenizer, prefix_ids, prompts_, **kwargs)

    monkeypatch.setattr(generation, "greedy_generate", recording)
    return calls


def cot_spec(lm, train_level: str, method: str = "icl_cot", n_train: int = 1, options=None,
             **kwargs) -> ExperimentSpec:
    """A GSM8K spec of the YAML method ``method``; ``train_level="none"``: its zero-shot baseline
    (size 0, no training)."""
    kwargs.setdefault("test", Selection(max_per_level=2, levels=("hard",)))
    options = {"max_new_tokens": 5} if options is None else options
    zero_shot = train_level == "none"
    return ExperimentSpec(dataset="gsm8k", measure="num_steps",
                          method=build(method, 0 if zero_shot else n_train, options),
                          training=None if zero_shot else Training(train_level), model=lm.spec.name, **kwargs)


def run_spec(spec: ExperimentSpec, lm, frame: pd.DataFrame, store: ResultStore, **settings) -> pd.DataFrame:
    """The spec's item-level results on ``frame`` (old ``run_experiment(spec, lm, frame, store=...)``);
    ``settings``: run settings (e.g. ``micro_batch``) over this process's."""
    from dataclasses import replace

    run_settings = replace(runtime.current(), **settings) if settings else None
    return Runner(lm, store=store, settings=run_settings, frames={spec.dataset: frame}, progress=False).run(spec)


# --- the formats -----------------------------------------------------------------------------

ROW = {"question": "she has 3 apples and buys 4 more . how many ?", "reasoning": "she has 3 .\n  then 4 more\n\nso 7 .",
       "answer": "7"}


def test_cot_format_strings_are_the_authors():
    fmt = get_cot_format(None, "gsm8k")
    assert fmt is COT_FORMATS["gsm8k_cot"] and isinstance(fmt, CoTFormat)
    assert fmt.prompt(ROW) == "Q: she has 3 apples and buys 4 more . how many ?\nA:"
    # prompt 0305: the reasoning as written (line breaks kept), no final period
    assert fmt.target(ROW) == " she has 3 .\n  then 4 more\n\nso 7 . So the answer is 7"
    assert fmt.example(ROW) == fmt.prompt(ROW) + fmt.target(ROW)
    assert fmt.separator == "\n\n"
    # GSM8K zero-shot: the worksheet instruction of prompt 5305, a line break, then the question
    assert fmt.zero_shot_prompt(ROW) == prompts.GSM8K_WORKSHEET + "\n" + fmt.prompt(ROW)
    assert fmt.zero_shot_prompt(ROW).startswith("This worksheet contain math word problems.")
    assert fmt.zero_shot_prompt(ROW, "step_by_step") == fmt.prompt(ROW) + " Let's think step by step."
    with pytest.raises(ValueError, match="step_by_step"):
        fmt.zero_shot_prompt(ROW, "fancy")
    strategy = get_cot_format(None, "strategyqa")
    assert strategy.zero_shot_prompt(ROW) == strategy.prompt(ROW)  # no instruction for StrategyQA


def test_oneline_formats_keep_the_earlier_rendering():
    row = {**ROW, "reasoning": "she pays 2*3=<<2*3=6>>6 .\nso 6 ."}
    fmt = get_cot_format("gsm8k_cot_oneline")
    assert fmt.target(row) == " she pays 2*3=6 . so 6 . So the answer is 7."
    assert "\n" not in fmt.target(row)
    assert get_cot_format(None, "gsm8k").target(row) == " she pays 2*3=<<2*3=6>>6 .\nso 6 . So the answer is 7"


def test_cot_prefix_text_joins_examples():
    fmt = get_cot_format(None, "strategyqa")
    examples = pd.DataFrame([{**ROW, "answer": "yes"}, {**ROW, "question": "is it cold ?", "answer": "no"}])
    text = icl.prefix_text(examples, fmt)
    assert text == fmt.example(examples.iloc[0]) + "\n\n" + fmt.example(examples.iloc[1])
    assert text.count("So the answer is") == 2


@pytest.mark.parametrize("rule", answers.RULES)
def test_the_formats_own_targets_read_back(rule):
    for name, fmt in COT_FORMATS.items():
        row = {**ROW, "answer": "7" if fmt.kind == "number" else "no"}
        if fmt.kind == "math":  # the reference solution carries its answer in \boxed{}
            row = {**ROW, "reasoning": "she has 3 .\nthen 4 more, so $\\boxed{\\frac{14}{2}}$.", "answer": "7"}
        text = fmt.target(row) + "\n\nQ: next question"
        assert answers.is_correct(answers.extract(text, fmt.kind, rule), row["answer"], fmt.kind, rule), (name, rule)


def test_get_cot_format_errors_list_valid_names():
    with pytest.raises(KeyError) as info:
        get_cot_format("gsm8k_cott")
    for name in COT_FORMATS:
        assert name in str(info.value)
    with pytest.raises(KeyError) as info:
        get_cot_format(None, "arc")
    assert "'arc'" in str(info.value)
    for dataset in ("gsm8k", "strategyqa"):
        assert dataset in str(info.value)
    assert get_cot_format("strategyqa_cot", "gsm8k") is COT_FORMATS["strategyqa_cot"]  # a name wins


# --- specs and payloads ----------------------------------------------------------------------


def easy_spec(dataset: str, method: str, n_train: int = 10, options=None, **kwargs) -> ExperimentSpec:
    """A spec training YAML method ``method`` (``n_train`` examples, the old default) on the easy pool."""
    return ExperimentSpec(dataset=dataset, measure="num_steps", method=build(method, n_train, options),
                          training=Training("easy"), **kwargs)


@pytest.mark.parametrize("method", ["icl", "probe", "qlora"])
def test_gsm8k_needs_chain_of_thought(method):
    with pytest.raises(SpecError) as info:
        easy_spec("gsm8k", method)
    assert "chain of thought" in str(info.value)


@pytest.mark.parametrize("method", COT_METHODS)
@pytest.mark.parametrize("dataset", ["gsm8k", "strategyqa"])
def test_cot_methods_accepted(method, dataset):
    spec = easy_spec(dataset, method)
    assert isinstance(spec.method, CoT) and spec.method.kind == method
    assert spec.method.kind in base.kinds()


def test_cot_method_on_dataset_without_cot_format():
    with pytest.raises(SpecError) as info:
        ExperimentSpec(dataset="arc", measure="grade", method=build("icl_cot", 10), training=Training("easy"))
    assert "gsm8k" in str(info.value) and "strategyqa" in str(info.value)
    with pytest.raises(SpecError) as info:
        easy_spec("gsm8k", "icl_cot", prompt_format="mc_lettered")
    for name in COT_FORMATS:
        assert name in str(info.value)


@pytest.mark.parametrize("dataset", ["gsm8k", "strategyqa"])
def test_zero_shot_cot_payload_is_shared(dataset):
    def payload(method, train_level="none", n_train=10, options=None, **kwargs):
        """The canonical spec (old ``payload``); ``train_level="none"`` or ``n_train=0``: zero-shot,
        which takes no training (old: k = 0 on a pool was zero-shot too)."""
        zero_shot = train_level == "none" or n_train == 0
        return ExperimentSpec(dataset=dataset, measure="num_steps",
                              method=build(method, 0 if zero_shot else n_train, options),
                              training=None if zero_shot else Training(train_level), **kwargs).canonical()

    shared = payload("icl_cot")
    assert shared == payload("qlora_cot")
    assert shared == payload("qlora_cot", options={"lr": 1e-3, "min_updates": 3})
    # the generation batch is a run setting now, never part of a method (nor of its key)
    with pytest.raises(MethodError, match="run settings"):
        build("qlora_cot", 0, {"lr": 1e-3, "min_updates": 3, "batch_size": 2})
    assert shared == payload("icl_cot", train_level="easy", n_train=0)  # k = 0 is zero-shot too
    assert build("icl_cot", 0) == build("qlora_cot", 0) == CoT(ZeroShot())
    with pytest.raises(SpecError):  # zero-shot takes no training pool
        ExperimentSpec(dataset=dataset, measure="num_steps", method=build("icl_cot", 0), training=Training("easy"))
    assert shared == payload("icl_cot", seeds=(3, 4))
    assert shared["method"] == "zero_shot_cot" and shared["train_level"] == "none" and shared["n_train"] == 0
    assert shared != payload("icl_cot", options={"max_new_tokens": 7})  # the generation length matters
    assert payload("icl_cot", train_level="easy") != payload("qlora_cot", train_level="easy")
    assert shared != payload("icl_cot", options={"baseline": "step_by_step"})  # another baseline
    if dataset == "strategyqa":  # answer-scoring zero-shot is a different run
        plain = payload("icl")
        assert plain["method"] == "zero_shot"
        assert plain != shared
        assert plain == payload("qlora")


@pytest.mark.parametrize("method", COT_METHODS)
def test_unsupervised_baseline_is_the_authors(method):
    def spec(dataset, options=None, **kwargs):
        return easy_spec(dataset, method, options=options, **kwargs)

    # StrategyQA: the answer-scored zero-shot prompt (analysis.Rmd ~856), the other methods' baseline
    strategy = spec("strategyqa").unsupervised()
    assert strategy.method == ZeroShot() and strategy.train_level == "none" and strategy.prompt_format is None
    assert strategy.training is None
    assert strategy.canonical() == ExperimentSpec(dataset="strategyqa", measure="num_steps",
                                                  method=build("probe", 0)).canonical()
    # GSM8K: zero-shot chain of thought (after the worksheet instruction)
    original = spec("gsm8k")
    gsm8k = original.unsupervised()
    assert isinstance(gsm8k.method, CoT) and isinstance(gsm8k.method.inner, ZeroShot)
    assert gsm8k.method == original.method.baseline() and gsm8k.method.baseline_recipe == "authors"
    assert gsm8k.method.kind == "zero_shot_cot" and gsm8k.train_level == "none" and gsm8k.training is None
    assert gsm8k.method.max_new_tokens == original.method.max_new_tokens
    # the earlier cue, as an option
    earlier_spec = spec("strategyqa", options={"baseline": "step_by_step"})
    earlier = earlier_spec.unsupervised()
    assert isinstance(earlier.method, CoT) and isinstance(earlier.method.inner, ZeroShot)
    assert earlier.method == earlier_spec.method.baseline() and earlier.method.baseline_recipe == "step_by_step"
    assert earlier.train_level == "none" and earlier.training is None
    with pytest.raises(MethodError, match="step_by_step"):
        spec("gsm8k", options={"baseline": "nope"})
    with pytest.raises(MethodError, match="strict"):
        spec("gsm8k", options={"extraction": "nope"})


def test_qlora_cot_trains_150_updates_by_default():
    spec = easy_spec("gsm8k", "qlora_cot", n_train=160)
    assert isinstance(spec.method, CoT) and isinstance(spec.method.inner, base.QLoRA)
    config = spec.method.inner.config
    assert config.min_updates == 150 and config.min_epochs == 3
    assert config.min_updates == qlora.COT_MIN_UPDATES
    assert dict(spec.method.options())["min_updates"] == 150
    batch, per_epoch, epochs = qlora.schedule(160, config)
    assert (batch, per_epoch, epochs) == (50, 4, 38)  # ~38 epochs at n = 160, as run_jobs.py:438-440
    assert per_epoch * epochs == 152
    plain = easy_spec("strategyqa", "qlora", n_train=160)
    assert isinstance(plain.method, base.QLoRA)
    assert qlora.schedule(160, plain.method.config) == (50, 4, 3)


def test_max_new_tokens_defaults_and_override():
    assert MAX_NEW_TOKENS == {"gsm8k": 300, "strategyqa": 100, "math": 512}  # math: Sun et al.'s sampling only
    for method in COT_METHODS:
        assert easy_spec("gsm8k", method).method.max_new_tokens == 300
        assert easy_spec("strategyqa", method).method.max_new_tokens == 100
        assert easy_spec("gsm8k", method, options={"max_new_tokens": 17}).method.max_new_tokens == 17
        # the resolved length is part of the spec's canonical form
        assert dict(easy_spec("gsm8k", method).canonical()["options"])["max_new_tokens"] == 300


def test_unknown_option_for_cot_methods():
    with pytest.raises(MethodError) as info:
        easy_spec("gsm8k", "icl_cot", options={"lr": 1e-3})
    assert "max_new_tokens" in str(info.value) and "'lr'" in str(info.value)
    easy_spec("gsm8k", "qlora_cot", options={"lr": 1e-3, "max_new_tokens": 4, "quantization": "none"})
    with pytest.raises(MethodError):
        easy_spec("gsm8k", "qlora_cot", options={"layers": [1]})


# --- the language-modelling loss ------------------------------------------------------------------


def random_pairs(vocab: int, n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    rng = np.random.default_rng(seed)

    def tokens(k: int) -> list[int]:
        return [int(t) for t in rng.integers(N_SPECIAL, vocab, size=k)]

    return [(tokens(int(rng.integers(1, 8))), tokens(int(rng.integers(1, 6)))) for _ in range(n)]


@torch.no_grad()
def hand_lm_loss(model, pairs) -> float:
    """The authors' LM loss: each target's summed negative log-likelihood, averaged over the
    pairs (one unpadded forward per pair)."""
    sums = []
    for prompt, target in pairs:
        sequence = list(prompt) + list(target)
        logprobs = model(input_ids=torch.tensor([sequence])).logits[0].double().log_softmax(-1)
        sums.append(-sum(float(logprobs[t - 1, sequence[t]]) for t in range(len(prompt), len(sequence))))
    return sum(sums) / len(sums)


def test_lm_loss_matches_hand_computation(tiny_lm):
    model, tokenizer = tiny_lm
    pairs = random_pairs(len(tokenizer), 5, seed=1)
    assert len({len(p) + len(t) for p, t in pairs}) > 1  # right padding is exercised
    with torch.no_grad():
        loss = lm_loss(model, pairs, tokenizer.pad_token_id)
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(hand_lm_loss(model, pairs), abs=1e-4)
    # one pair alone: its own summed loss; the batch is a mean of per-sequence sums, not a token mean
    with torch.no_grad():
        assert float(lm_loss(model, pairs[:1], tokenizer.pad_token_id)) == pytest.approx(
            hand_lm_loss(model, pairs[:1]), abs=1e-4)


def test_lm_loss_ignores_padding_value(tiny_lm):
    model, tokenizer = tiny_lm
    pairs = random_pairs(len(tokenizer), 4, seed=2)
    with torch.no_grad():
        a = float(lm_loss(model, pairs, tokenizer.pad_token_id))
        b = float(lm_loss(model, pairs, tokenizer.unk_token_id))
    assert a == pytest.approx(b, abs=1e-6)


def cot_pairs(tokenizer, frame: pd.DataFrame, n: int) -> list[tuple[list[int], list[int]]]:
    fmt = get_cot_format(None, "gsm8k")
    return [(scoring.encode(tokenizer, fmt.prompt(r)),
             scoring.encode(tokenizer, fmt.target(r)) + [tokenizer.eos_token_id])
            for r in frame.head(n).to_dict("records")]


def test_finetune_lm_lowers_the_loss(tiny_model_dir, tiny_lm, frame):
    config = QLoRAConfig(quantization="none", dropout=0.0, lr=1e-2, min_updates=8, max_batch=4)
    lm = models.load_model(str(tiny_model_dir))
    torch.manual_seed(0)
    model = attach_lora(lm.model, config)
    pad = lm.tokenizer.pad_token_id
    pairs = cot_pairs(lm.tokenizer, frame, 4)
    model.eval()
    with torch.no_grad():
        before = float(lm_loss(model, pairs, pad))
    losses = finetune_lm(model, pad, pairs, config, seed=0, micro_batch=2)
    assert len(losses) == 8  # batch 4 of 4 pairs: one update per epoch, 8 epochs
    assert all(np.isfinite(losses))
    assert not model.training
    with torch.no_grad():
        after = float(lm_loss(model, pairs, pad))
    # q/v adapters of a random 2-layer model learn slowly (5.93 -> 5.81 here), but steadily
    assert after < before - 0.05
    assert all(later <= earlier + 1e-6 for earlier, later in zip(losses, losses[1:]))
    # the base weights are untouched: only the adapters learn
    base = dict(tiny_lm.model.named_parameters())
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            continue
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(parameter.detach(), base[key].detach()), name


def test_finetune_lm_is_deterministic(tiny_model_dir, frame):
    config = QLoRAConfig(quantization="none", dropout=0.0, lr=1e-2, min_updates=3, min_epochs=1, max_batch=2)
    runs = []
    for _ in range(2):
        lm = models.load_model(str(tiny_model_dir))
        torch.manual_seed(0)
        model = attach_lora(lm.model, config)
        runs.append(finetune_lm(model, lm.tokenizer.pad_token_id, cot_pairs(lm.tokenizer, frame, 3), config, seed=5,
                                micro_batch=1))
    assert len(runs[0]) == 4  # 3 pairs in batches of 2: 2 updates per epoch, 2 epochs
    assert runs[0] == runs[1]


# --- end to end ----------------------------------------------------------------------------------

COLUMNS = ["item_id", "level", "seed", "generation", "extracted", "gold", "correct"]


def test_frame_is_gsm8k_like(frame, tiny_lm):
    assert frame["num_steps_level"].value_counts().to_dict() == {"easy": 12, "medium": 6, "hard": 12}
    for column in ("question_words", "answer_chars", "reasoning_words"):
        assert column in frame.columns
    text = " ".join(frame["question"]) + " " + " ".join(frame["reasoning"])  # answers may be multi-digit (unk)
    assert tiny_lm.tokenizer.unk_token_id not in scoring.encode(tiny_lm.tokenizer, text)


def test_icl_cot_end_to_end(tiny_lm, frame, tmp_path, spy):
    spec = cot_spec(tiny_lm, "easy")
    out = run_spec(spec, tiny_lm, frame, ResultStore(tmp_path))
    assert list(out.columns[:len(COLUMNS)]) == COLUMNS
    assert len(out) == 2 and set(out["level"]) == {"hard"} and set(out["seed"]) == {0}
    assert set(out["method"]) == {"icl_cot"} and set(out["train_level"]) == {"easy"}
    rows = frame.set_index("id")
    fmt = get_cot_format(None, "gsm8k")
    assert list(out["gold"]) == [rows.loc[i, "answer"] for i in out["item_id"]]
    assert all(rows.loc[i, "num_steps_level"] == "hard" for i in out["item_id"])
    assert set(out["extraction"]) == {"strict"}  # the authors' rule by default
    for text, extracted, gold, correct in zip(out["generation"], out["extracted"], out["gold"], out["correct"]):
        assert isinstance(text, str) and len(text.split()) <= 5
        assert extracted == answers.extract(text, "number", "strict")
        assert correct == float(answers.is_correct(extracted, gold, "number", "strict"))
    for rule in answers.RULES:  # both rules are kept, read from the same generations
        assert list(out[f"extracted_{rule}"]) == [answers.extract(t, "number", rule) for t in out["generation"]]
    assert (out["n_shots"] == 1).all()
    examples = out["example_ids"].iloc[0]
    assert len(examples) == 1 and rows.loc[examples[0], "num_steps_level"] == "easy"
    # one generation call: the shared prefix holds the example, the prompts are the plain CoT prompts
    assert len(spy) == 1
    call = spy[0]
    assert call["max_new_tokens"] == 5
    assert call["prefix_ids"] == tiny_lm.bos_ids() + scoring.encode(
        tiny_lm.tokenizer, icl.prefix_text(frame[frame["id"].isin(examples)], fmt))
    assert call["prompts"] == [scoring.encode(tiny_lm.tokenizer, fmt.prompt(rows.loc[i])) for i in out["item_id"]]
    # the authors' rule: stop at the next question or once the answer line is complete
    assert call["stop"] == ("\nQ:",) and call["stop_patterns"] == (generation.ANSWER_LINE,)
    # stored: a second run reads the store and does not generate again
    again = run_spec(spec, tiny_lm, frame, ResultStore(tmp_path))
    assert len(spy) == 1
    pd.testing.assert_frame_equal(again[COLUMNS], out[COLUMNS])


def test_icl_cot_generation_matches_direct_greedy(tiny_lm, frame, tmp_path):
    spec = cot_spec(tiny_lm, "easy")
    out = run_spec(spec, tiny_lm, frame, ResultStore(tmp_path))
    fmt = get_cot_format(None, "gsm8k")
    rows = frame.set_index("id")
    examples = frame[frame["id"].isin(out["example_ids"].iloc[0])]
    prefix = tiny_lm.bos_ids() + scoring.encode(tiny_lm.tokenizer, icl.prefix_text(examples, fmt))
    prompt_ids = [scoring.encode(tiny_lm.tokenizer, fmt.prompt(rows.loc[i])) for i in out["item_id"]]
    direct = generation.greedy_generate(tiny_lm.model, tiny_lm.tokenizer, prefix, prompt_ids, max_new_tokens=5,
                                        stop=("\nQ:",), stop_patterns=(generation.ANSWER_LINE,))
    assert list(out["generation"]) == direct


def test_zero_shot_cot_uses_zero_shot_prompt_and_is_shared(tiny_lm, frame, tmp_path, spy):
    store = ResultStore(tmp_path)
    zero_shot = cot_spec(tiny_lm, "none")
    assert zero_shot.method == CoT(ZeroShot(), max_new_tokens=5) and zero_shot.training is None
    out = run_spec(zero_shot, tiny_lm, frame, store)
    assert list(out.columns[:len(COLUMNS)]) == COLUMNS
    assert len(out) == 2 and (out["n_shots"] == 0).all() and all(len(e) == 0 for e in out["example_ids"])
    fmt = get_cot_format(None, "gsm8k")
    rows = frame.set_index("id")
    assert len(spy) == 1
    assert spy[0]["prefix_ids"] == tiny_lm.bos_ids()
    assert spy[0]["prompts"] == [scoring.encode(tiny_lm.tokenizer, fmt.zero_shot_prompt(rows.loc[i]))
                                 for i in out["item_id"]]
    assert spy[0]["prompts"] != [scoring.encode(tiny_lm.tokenizer, fmt.prompt(rows.loc[i])) for i in out["item_id"]]
    assert list(store.root.glob("gsm8k/zero_shot_cot/*/seed-0.parquet"))
    # qlora_cot's zero-shot condition is the same baseline: read from the store, no training, no generation
    shared_spec = cot_spec(tiny_lm, "none", method="qlora_cot", options={"max_new_tokens": 5, "quantization": "none"})
    assert shared_spec == zero_shot  # one method, one spec: zero-shot chain of thought
    shared = run_spec(shared_spec, tiny_lm, frame, store)
    assert len(spy) == 1
    pd.testing.assert_frame_equal(shared[COLUMNS], out[COLUMNS])
    # the method column is the stored method name (method.kind), the same for both
    assert set(shared["method"]) == set(out["method"]) == {"zero_shot_cot"}


def test_qlora_cot_end_to_end(tiny_lm, frame, tmp_path, spy):
    options = {"max_new_tokens": 5, "quantization": "none", "min_updates": 1, "max_batch": 2}
    spec = cot_spec(tiny_lm, "easy", method="qlora_cot", n_train=2, options=options)
    store = ResultStore(tmp_path)
    out = run_spec(spec, tiny_lm, frame, store, micro_batch=2)  # micro_batch: a run setting now
    assert list(out.columns[:len(COLUMNS)]) == COLUMNS
    assert len(out) == 2 and set(out["level"]) == {"hard"}
    assert "train_losses" in out.columns
    losses = out["train_losses"].iloc[0]
    assert len(losses) == 3 and np.isfinite(losses).all()  # 2 pairs, batch 2: the 3-epoch floor
    assert (out["n_shots"] == 2).all()
    rows = frame.set_index("id")
    assert all(rows.loc[i, "num_steps_level"] == "easy" for i in out["example_ids"].iloc[0])
    fmt = get_cot_format(None, "gsm8k")
    assert len(spy) == 1 and spy[0]["max_new_tokens"] == 5
    assert spy[0]["prompts"] == [scoring.encode(tiny_lm.tokenizer, fmt.prompt(rows.loc[i])) for i in out["item_id"]]
    assert spy[0]["stop"] == () and spy[0]["stop_patterns"] == ()  # QLoRA: to end-of-sequence, as theirs
    for text, extracted in zip(out["generation"], out["extracted"]):
        assert len(text.split()) <= 5 and extracted == answers.extract(text, "number", "strict", cut_at_newline=False)
    assert list(store.root.glob("gsm8k/qlora_cot/*/seed-0.parquet"))
    again = run_spec(spec, tiny_lm, frame, store, micro_batch=2)
    assert len(spy) == 1
    assert list(again["train_losses"].iloc[0]) == pytest.approx(list(losses))
    pd.testing.assert_frame_equal(again[COLUMNS], out[COLUMNS])
