"""e2h_utils.data.prompts and e2h_utils.methods.icl: prompt formats, example draws, fitting the prefix."""

from __future__ import annotations

import pandas as pd
import pytest

from e2h_utils.methods import icl
from e2h_utils.data import prompts
from e2h_utils.engine.scoring import encode, make_item

# --- prompt formats ----------------------------------------------------------------------


def authors_prompt(question: str, choices: list[str], question_template: str, lettered: bool,
                   label_template: str, label: str | None = None) -> str:
    """The authors' ``Prompt.format_example`` + ``format_prompt`` for a Llama tokenizer, step by
    step (utils/prompt.py at ad8358e): the question template, the choices (" " + "\nA) {}..."),
    then " " + the label template for a solved example, or the label template without its label
    for the test question (no space before it, as it starts with a line break), and the
    trailing space removed."""
    text = question_template.format(question)
    if lettered:
        text += " " + "".join(f"\n{chr(65 + i)}) {{}}" for i in range(len(choices))).format(*choices)
    if label is not None:
        return text + " " + label_template.format(label)
    prompt = text + label_template.format("")
    return prompt[:-1] if prompt.endswith(" ") else prompt


def test_mc_lettered_is_the_authors_prompt_0040():
    fmt = prompts.get_format("mc_lettered")
    row = {"question": "Q?", "choices": ["x", "y"], "label": 1}
    assert fmt.prompt(row) == "Question: Q? \nA) x\nB) y\nAnswer:"
    assert fmt.prompt(row) == authors_prompt("Q?", ["x", "y"], "Question: {}", True, "\nAnswer: {}")
    assert fmt.continuations(row) == [" x", " y"]
    assert fmt.example(row) == "Question: Q? \nA) x\nB) y \nAnswer: y"
    assert fmt.example(row) == authors_prompt("Q?", ["x", "y"], "Question: {}", True, "\nAnswer: {}", label="y")
    assert fmt.separator == "\n\n"


def test_mc_lettered_four_choices_and_numpy_label():
    import numpy as np

    fmt = prompts.get_format("mc_lettered")
    row = {"question": "Which?", "choices": ["a", "b", "c", "d"], "label": np.int64(3)}
    assert fmt.prompt(row) == "Question: Which? \nA) a\nB) b\nC) c\nD) d\nAnswer:"
    assert fmt.example(row).endswith("D) d \nAnswer: d")


def test_example_uses_the_rows_label():
    """A noised label (noise.corrupt_labels) changes the example's answer."""
    fmt = prompts.get_format("mc_lettered")
    assert fmt.example({"question": "Q?", "choices": ["x", "y"], "label": 0}).endswith("Answer: x")


def test_mc_lettered_too_many_choices():
    fmt = prompts.get_format("mc_lettered")
    with pytest.raises(ValueError, match="too many choices"):
        fmt.prompt({"question": "Q?", "choices": [str(i) for i in range(27)], "label": 0})


def test_qa_yes_no_is_the_authors_prompt_0306():
    fmt = prompts.get_format("qa_yes_no")
    row = {"question": "Q?", "choices": ["yes", "no"], "label": 1}
    assert fmt.prompt(row) == "Q: Q?\nA:" == authors_prompt("Q?", ["yes", "no"], "Q: {}", False, "\nA: {}")
    assert fmt.continuations(row) == [" yes", " no"]
    assert fmt.example(row) == "Q: Q? \nA: no" == authors_prompt("Q?", ["yes", "no"], "Q: {}", False, "\nA: {}",
                                                                   label="no")


@pytest.mark.parametrize("dataset, name", [("arc", "mc_lettered"), ("mmlu_stem5", "mc_lettered"),
                                           ("strategyqa", "qa_yes_no")])
def test_default_formats(dataset, name):
    assert prompts.get_format(None, dataset).name == name


def test_explicit_name_wins_over_dataset_default():
    assert prompts.get_format("qa_yes_no", "arc").name == "qa_yes_no"


def test_unknown_format_lists_valid_ones():
    with pytest.raises(KeyError) as info:
        prompts.get_format("fancy")
    message = str(info.value)
    assert "'fancy'" in message
    for name in prompts.FORMATS:
        assert name in message


def test_gsm8k_has_no_default_format():
    with pytest.raises(KeyError) as info:
        prompts.get_format(None, "gsm8k")
    assert "chain of thought" in str(info.value)
    assert "gsm8k" in str(info.value)


def test_no_name_and_no_dataset_is_an_error():
    with pytest.raises(KeyError):
        prompts.get_format(None)


# --- drawing examples --------------------------------------------------------------------


@pytest.fixture
def pool() -> pd.DataFrame:
    n = 50
    return pd.DataFrame({
        "id": [f"q{i}" for i in range(n)],
        "question": [f"what is {i % 10}" for i in range(n)],
        "choices": [["yes", "no"]] * n,
        "label": [i % 2 for i in range(n)],
    }, index=range(100, 100 + n))


def test_draw_is_deterministic_per_seed_and_salt(pool):
    a = icl.draw_examples(pool, 5, seed=3, salt="arc/grade/easy")
    b = icl.draw_examples(pool, 5, seed=3, salt="arc/grade/easy")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 5
    assert a["id"].is_unique
    assert set(a.index) <= set(pool.index)


def test_draw_differs_across_seeds_and_salts(pool):
    base = list(icl.draw_examples(pool, 5, seed=0, salt="s")["id"])
    assert list(icl.draw_examples(pool, 5, seed=1, salt="s")["id"]) != base
    assert list(icl.draw_examples(pool, 5, seed=0, salt="t")["id"]) != base
    draws = {tuple(icl.draw_examples(pool, 5, seed=s, salt="s")["id"]) for s in range(10)}
    assert len(draws) == 10


def test_draw_more_than_pool_returns_whole_pool(pool):
    drawn = icl.draw_examples(pool, 500, seed=0)
    assert len(drawn) == len(pool)
    assert sorted(drawn["id"]) == sorted(pool["id"])


@pytest.mark.parametrize("k", [0, -1])
def test_draw_nothing(pool, k):
    drawn = icl.draw_examples(pool, k, seed=0)
    assert drawn.empty
    assert list(drawn.columns) == list(pool.columns)


def test_draw_from_empty_pool(pool):
    assert icl.draw_examples(pool.iloc[:0], 5, seed=0).empty


def test_prefix_text_joins_examples():
    fmt = prompts.get_format("qa_yes_no")
    examples = pd.DataFrame({"question": ["is ice cold?", "is fire cold?"], "choices": [["yes", "no"]] * 2,
                             "label": [0, 1]})
    # the separator before the test question belongs to the question (see question_text)
    assert icl.prefix_text(examples, fmt) == "Q: is ice cold? \nA: yes\n\nQ: is fire cold? \nA: no"
    assert icl.prefix_text(examples.iloc[:0], fmt) == ""
    assert icl.question_text("Q: x?\nA:", fmt, True) == "\n\nQ: x?\nA:"
    assert icl.question_text("Q: x?\nA:", fmt, False) == "Q: x?\nA:"


def test_question_ids_match_the_whole_prompt_tokenized_at_once(make_tiny_tokenizer):
    tokenizer = make_tiny_tokenizer()
    fmt = prompts.get_format("qa_yes_no")
    examples = pd.DataFrame({"question": ["is ice cold?", "is fire cold?"], "choices": [["yes", "no"]] * 2,
                             "label": [0, 1]})
    prompt = fmt.prompt({"question": "is snow cold?"})
    [question] = icl.question_ids(tokenizer, examples, fmt, [prompt])
    whole = tokenizer(icl.prefix_text(examples, fmt) + icl.question_text(prompt, fmt, True),
                      add_special_tokens=False).input_ids
    prefix = tokenizer(icl.prefix_text(examples, fmt), add_special_tokens=False).input_ids
    assert prefix + question == whole


# --- fitting the prefix ------------------------------------------------------------------


@pytest.fixture
def fit_case(make_tiny_tokenizer):
    tokenizer = make_tiny_tokenizer()
    fmt = prompts.get_format("mc_lettered")
    examples = pd.DataFrame({
        "question": ["what is the capital of france?", "which planet is hot?", "is ice cold?",
                     "what gives light?"],
        "choices": [["paris", "berlin"], ["sun", "moon"], ["yes", "no"], ["sun", "rock"]],
        "label": [0, 0, 0, 0],
    })
    rows = [{"question": "what is big?", "choices": ["the sun", "a seed"]},
            {"question": "which is a tree with many leaves and roots?", "choices": ["the big old tree", "a"]}]
    items = [make_item(tokenizer, fmt.prompt(r), fmt.continuations(r)) for r in rows]
    longest = max(item.max_length for item in items)
    lengths = [len(encode(tokenizer, icl.prefix_text(examples.iloc[:k], fmt))) if k else 0
               for k in range(len(examples) + 1)]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    return tokenizer, fmt, examples, items, longest, lengths


def test_fit_keeps_all_when_they_fit(fit_case):
    tokenizer, fmt, examples, items, longest, lengths = fit_case
    ids, kept = icl.fit_prefix(tokenizer, [], examples, fmt, items, max_length=512)
    assert kept == len(examples)
    assert ids == encode(tokenizer, icl.prefix_text(examples, fmt))
    # exactly at the limit still fits
    ids, kept = icl.fit_prefix(tokenizer, [], examples, fmt, items, max_length=lengths[-1] + longest)
    assert kept == len(examples)


@pytest.mark.parametrize("keep", [0, 1, 2, 3])
def test_fit_drops_examples_from_the_end(fit_case, keep):
    tokenizer, fmt, examples, items, longest, lengths = fit_case
    bos = [tokenizer.bos_token_id]
    for max_length in (len(bos) + lengths[keep] + longest, len(bos) + lengths[keep + 1] + longest - 1):
        ids, kept = icl.fit_prefix(tokenizer, bos, examples, fmt, items, max_length=max_length)
        assert kept == keep
        assert ids == bos + (encode(tokenizer, icl.prefix_text(examples.iloc[:keep], fmt)) if keep else [])
        assert len(ids) + longest <= max_length


def test_fit_raises_when_the_item_alone_does_not_fit(fit_case):
    tokenizer, fmt, examples, items, longest, lengths = fit_case
    with pytest.raises(ValueError, match="exceeds"):
        icl.fit_prefix(tokenizer, [], examples, fmt, items, max_length=longest - 1)
    with pytest.raises(ValueError, match="exceeds"):
        icl.fit_prefix(tokenizer, [tokenizer.bos_token_id], examples, fmt, items, max_length=longest)
    ids, kept = icl.fit_prefix(tokenizer, [tokenizer.bos_token_id], examples, fmt, items, max_length=longest + 1)
    assert (ids, kept) == ([tokenizer.bos_token_id], 0)


def test_fit_without_examples(fit_case):
    tokenizer, fmt, examples, items, longest, lengths = fit_case
    assert icl.fit_prefix(tokenizer, [], examples.iloc[:0], fmt, items, max_length=512) == ([], 0)


def test_mc_plain_format_does_not_list_choices():
    fmt = prompts.get_format("mc_plain")
    row = {"question": "Q?", "choices": ["x", "y"], "label": 1}
    assert fmt.prompt(row) == "Question: Q?\nAnswer:"
    assert fmt.example(row) == "Question: Q?\nAnswer: y"


def test_dropping_examples_is_never_silent(fit_case):
    tokenizer, fmt, examples, items, longest, lengths = fit_case
    with pytest.warns(UserWarning, match=r"only 1 of the 4 in-context examples fit"):
        _, kept = icl.fit_prefix(tokenizer, [], examples, fmt, items, max_length=lengths[1] + longest)
    assert kept == 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all fit: no warning
        icl.fit_prefix(tokenizer, [], examples, fmt, items, max_length=512)
