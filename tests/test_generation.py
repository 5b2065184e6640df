"""e2h_utils.engine.generation.greedy_generate against Hugging Face ``generate(do_sample=False)``.

The reference runs one prompt at a time, unpadded, with the prefix written in front of the
prompt; ``greedy_generate`` encodes the prefix once and left-pads batches after it. Both
continuations are decoded the same way (``tokenizer.decode`` of the generated ids; the tiny
word-level tokenizer joins words with spaces) and cut at the first stop string.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e2h_utils.engine.generation import greedy_generate

N_SPECIAL = 4  # <unk> <pad> <s> </s> come first in the tiny vocabulary
PROMPTS = [
    "the capital of france is",
    "how many apples",
    "a dog",
    "she bought three books and two pens for ten dollars , how much money",
    "water",
    "the sun is a star and the moon is",
    "he has five eggs . she has two more eggs than him . how many eggs",
    "what is the best answer ?",
    "rain",
]
MAX_NEW = 10


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def cut(text: str, stops) -> str:
    positions = [text.find(s) for s in stops if s and s in text]
    return text[:min(positions)] if positions else text


@torch.no_grad()
def reference_ids(model, tokenizer, prefix, prompt, max_new_tokens, eos_id=None) -> list[int]:
    """HF greedy continuation of prefix + prompt (ids), up to (excluding) the end-of-sequence token."""
    eos_id = tokenizer.eos_token_id if eos_id is None else eos_id
    ids = torch.tensor([list(prefix) + list(prompt)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_id)
    new = out[0, ids.shape[1]:].tolist()
    return new[:new.index(eos_id)] if eos_id in new else new


def reference(model, tokenizer, prefix, prompts, max_new_tokens, stop=(), eos_id=None) -> list[str]:
    return [cut(tokenizer.decode(reference_ids(model, tokenizer, prefix, p, max_new_tokens, eos_id)), stop)
            for p in prompts]


@pytest.fixture(scope="module")
def prompt_ids(tiny_lm) -> list[list[int]]:
    ids = [encode(tiny_lm.tokenizer, p) for p in PROMPTS]
    assert all(tiny_lm.tokenizer.unk_token_id not in p for p in ids)
    assert len({len(p) for p in ids}) >= 6  # prompts of many lengths: left padding is exercised
    return ids


@pytest.fixture(scope="module")
def random_prefix(tiny_lm) -> list[int]:
    rng = np.random.default_rng(0)
    return [int(t) for t in rng.integers(N_SPECIAL, len(tiny_lm.tokenizer), size=7)]


@pytest.fixture(scope="module")
def references(tiny_lm, prompt_ids, random_prefix) -> dict[str, list[str]]:
    model, tokenizer = tiny_lm
    return {name: reference(model, tokenizer, prefix, prompt_ids, MAX_NEW)
            for name, prefix in (("empty", []), ("random", random_prefix))}


# --- agreement with HF generate --------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 2, 8])
@pytest.mark.parametrize("prefix_kind", ["empty", "random"])
def test_matches_hf_generate(tiny_lm, prompt_ids, random_prefix, references, batch_size, prefix_kind):
    model, tokenizer = tiny_lm
    prefix = [] if prefix_kind == "empty" else random_prefix
    got = greedy_generate(model, tokenizer, prefix, prompt_ids, max_new_tokens=MAX_NEW, stop=(),
                          batch_size=batch_size)
    assert got == references[prefix_kind]


def test_references_are_non_trivial(references):
    """The comparison means something: continuations are long, differ by prompt and by prefix."""
    for texts in references.values():
        assert sum(len(t.split()) == MAX_NEW for t in texts) >= 5
        assert len(set(texts)) == len(texts)
    assert references["empty"] != references["random"]


def test_prefix_is_not_the_same_as_no_prefix(tiny_lm, prompt_ids, random_prefix):
    model, tokenizer = tiny_lm
    got = greedy_generate(model, tokenizer, random_prefix, prompt_ids[:3], max_new_tokens=MAX_NEW, stop=())
    assert got == reference(model, tokenizer, random_prefix, prompt_ids[:3], MAX_NEW)
    assert got != reference(model, tokenizer, [], prompt_ids[:3], MAX_NEW)


def test_deterministic_and_order_preserving(tiny_lm, prompt_ids, random_prefix, references):
    model, tokenizer = tiny_lm
    first = greedy_generate(model, tokenizer, random_prefix, prompt_ids, max_new_tokens=MAX_NEW, stop=(), batch_size=3)
    second = greedy_generate(model, tokenizer, random_prefix, prompt_ids, max_new_tokens=MAX_NEW, stop=(), batch_size=3)
    assert first == second == references["random"]
    reversed_out = greedy_generate(model, tokenizer, random_prefix, prompt_ids[::-1], max_new_tokens=MAX_NEW, stop=(),
                                   batch_size=3)
    assert reversed_out == references["random"][::-1]


def test_empty_prompt_list(tiny_lm):
    model, tokenizer = tiny_lm
    assert greedy_generate(model, tokenizer, [], [], max_new_tokens=5) == []


# --- stopping --------------------------------------------------------------------------------


class ForwardCounter:
    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.calls += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_stop_string_cuts_and_ends_generation(tiny_lm, prompt_ids, references):
    model, tokenizer = tiny_lm
    row = max(range(len(PROMPTS)), key=lambda i: len(set(references["empty"][i].split())))
    words = references["empty"][row].split()
    stop_word = words[3]
    assert stop_word not in " ".join(words[:3])  # the stop first appears at the fourth word
    expected = cut(references["empty"][row], (stop_word,))
    assert expected == " ".join(words[:3]) + " "
    with ForwardCounter(model) as counter:
        got = greedy_generate(model, tokenizer, [], [prompt_ids[row]], max_new_tokens=200, stop=(stop_word,))
    assert got == [expected]
    assert counter.calls <= 5  # stopped after four new tokens, far before max_new_tokens


def test_earliest_of_several_stops_wins(tiny_lm, prompt_ids, references):
    model, tokenizer = tiny_lm
    row = max(range(len(PROMPTS)), key=lambda i: len(set(references["empty"][i].split())))
    text = references["empty"][row]
    words = text.split()
    stops = (words[6], words[2], "never generated <>")
    got = greedy_generate(model, tokenizer, [], [prompt_ids[row]], max_new_tokens=MAX_NEW, stop=stops)
    assert got == [cut(text, stops)]
    assert len(got[0].split()) <= 2


def test_stops_in_a_batch_match_reference(tiny_lm, prompt_ids, random_prefix):
    """Rows stopping at different steps do not disturb the rows still generating."""
    model, tokenizer = tiny_lm
    full = reference(model, tokenizer, random_prefix, prompt_ids, MAX_NEW)
    stops = (full[0].split()[1], full[3].split()[4])
    expected = [cut(t, stops) for t in full]
    assert len(set(expected) - set(full)) >= 2  # some rows are really cut
    for batch_size in (1, 4, 9):
        got = greedy_generate(model, tokenizer, random_prefix, prompt_ids, max_new_tokens=MAX_NEW, stop=stops,
                              batch_size=batch_size)
        assert got == expected


def test_stop_substring_inside_a_word(tiny_lm, prompt_ids, references):
    """A stop string is a text match, not a token match: it may cut inside a word."""
    model, tokenizer = tiny_lm
    text = references["empty"][1]
    word = max(text.split(), key=len)
    stop = word[1:]
    got = greedy_generate(model, tokenizer, [], [prompt_ids[1]], max_new_tokens=MAX_NEW, stop=(stop,))
    assert got == [cut(text, (stop,))]


# --- max_new_tokens and end of sequence ----------------------------------------------------------


@pytest.mark.parametrize("max_new_tokens", [0, 1, 3, 7])
def test_max_new_tokens_bounds_length(tiny_lm, prompt_ids, random_prefix, max_new_tokens):
    model, tokenizer = tiny_lm
    got = greedy_generate(model, tokenizer, random_prefix, prompt_ids, max_new_tokens=max_new_tokens, stop=(),
                          batch_size=4)
    assert all(len(t.split()) <= max_new_tokens for t in got)  # one word per token
    if max_new_tokens == 0:
        assert got == [""] * len(prompt_ids)
    else:
        assert got == reference(model, tokenizer, random_prefix, prompt_ids, max_new_tokens)
        assert sum(len(t.split()) == max_new_tokens for t in got) >= 5


def test_max_new_tokens_is_a_prefix_of_longer_generation(tiny_lm, prompt_ids, references):
    model, tokenizer = tiny_lm
    short = greedy_generate(model, tokenizer, [], prompt_ids, max_new_tokens=4, stop=())
    for s, long in zip(short, references["empty"]):
        assert long.startswith(s)


def _eos_tokenizer(make_tiny_tokenizer, word: str):
    tokenizer = make_tiny_tokenizer()
    tokenizer.eos_token = word
    return tokenizer


def test_eos_ends_a_row(tiny_lm, make_tiny_tokenizer, prompt_ids, references):
    """Make a word the model generates the end-of-sequence token: generation stops before it."""
    model, tokenizer = tiny_lm
    row = max(range(len(PROMPTS)), key=lambda i: len(set(references["empty"][i].split())))
    generated = reference_ids(model, tokenizer, [], prompt_ids[row], MAX_NEW)
    eos_id = generated[2]
    assert eos_id not in generated[:2]
    eos_tokenizer = _eos_tokenizer(make_tiny_tokenizer, tokenizer.convert_ids_to_tokens(eos_id))
    assert eos_tokenizer.eos_token_id == eos_id and eos_tokenizer.pad_token_id == tokenizer.pad_token_id
    with ForwardCounter(model) as counter:
        got = greedy_generate(model, eos_tokenizer, [], [prompt_ids[row]], max_new_tokens=200, stop=())
    assert got == [tokenizer.decode(generated[:2])]
    assert counter.calls <= 3


def test_eos_in_a_batch_matches_reference(tiny_lm, make_tiny_tokenizer, prompt_ids, random_prefix):
    """Rows ending at different steps (forced end-of-sequence word) match HF generate with that eos."""
    model, tokenizer = tiny_lm
    full = [reference_ids(model, tokenizer, random_prefix, p, MAX_NEW) for p in prompt_ids]
    eos_id = full[3][3]
    expected = reference(model, tokenizer, random_prefix, prompt_ids, MAX_NEW, eos_id=eos_id)
    assert expected[3] == tokenizer.decode(full[3][:full[3].index(eos_id)])
    eos_tokenizer = _eos_tokenizer(make_tiny_tokenizer, tokenizer.convert_ids_to_tokens(eos_id))
    for batch_size in (1, 3, 8):
        got = greedy_generate(model, eos_tokenizer, random_prefix, prompt_ids, max_new_tokens=MAX_NEW, stop=(),
                              batch_size=batch_size)
        assert got == expected


def test_natural_eos_is_not_in_the_text(tiny_lm, prompt_ids):
    """The tokenizer's own ``</s>``: never part of the returned text (HF keeps it)."""
    model, tokenizer = tiny_lm
    got = greedy_generate(model, tokenizer, [], prompt_ids, max_new_tokens=MAX_NEW, stop=())
    assert all(tokenizer.eos_token not in t for t in got)
    assert got == reference(model, tokenizer, [], prompt_ids, MAX_NEW)


def test_buffered_cache_grows_and_drops_rows_like_concatenation():
    """The in-place key/value buffer gives the same keys as concatenation, also past its room,
    and dropping rows keeps the others' keys."""
    import torch

    from e2h_utils.engine.batching import buffered

    torch.manual_seed(0)
    keys, values = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    cache = buffered([(keys, values)], room=2)
    layer = cache.layers[0]
    expected_k, expected_v = keys, values
    for step in range(4):  # two steps fit the room, two more grow the buffer
        new_k, new_v = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
        got_k, got_v = layer.update(new_k, new_v)
        expected_k, expected_v = torch.cat([expected_k, new_k], -2), torch.cat([expected_v, new_v], -2)
        assert torch.equal(got_k, expected_k) and torch.equal(got_v, expected_v)
    assert cache.get_seq_length() == 9
    cache.batch_select_indices(torch.tensor([0, 2]))
    assert torch.equal(layer.keys, expected_k[[0, 2]]) and torch.equal(layer.values, expected_v[[0, 2]])


def test_grouped_query_attention_in_sdpa_gives_the_same_scores(tiny_lm, monkeypatch):
    """load_model turns on sdpa's grouped-query attention on a CPU; the scores are the same
    numbers as with every key/value head copied first (the tiny model has 4 query, 2 kv heads)."""
    import os

    from e2h_utils.engine import models
    from e2h_utils.engine import scoring

    assert os.environ.get(models.SDPA_GQA_ENV) == "1"
    items = [scoring.ScoringItem((5, 6, 7, 8), ((9, 10), (11,), (12, 13, 14)))] * 3
    fast = scoring.choice_logprobs(tiny_lm.model, [3, 4, 5, 6], items, pad_id=tiny_lm.tokenizer.pad_token_id)
    monkeypatch.setenv(models.SDPA_GQA_ENV, "0")
    copied = scoring.choice_logprobs(tiny_lm.model, [3, 4, 5, 6], items, pad_id=tiny_lm.tokenizer.pad_token_id)
    assert all((a == b).all() for a, b in zip(fast, copied))
