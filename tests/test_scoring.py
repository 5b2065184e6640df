"""e2h_utils.engine.scoring: the batched scorer against the plain reference, predictions, items.

Only the public behaviour of ``choice_logprobs`` is tested (its internals, e.g. how the key/value
cache is shared, are free to change): it must agree with ``choice_logprobs_plain`` whatever the
prefix and batch budget. The uncached path (``benchmarks.reference.choice_logprobs_uncached``,
every full sequence padded left or right) must agree with it too.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from benchmarks.reference import choice_logprobs_plain, choice_logprobs_uncached
from e2h_utils.engine import scoring
from e2h_utils.engine.scoring import ScoringItem, choice_logprobs, encode, make_item, predictions

N_SPECIAL = 4  # <unk> <pad> <s> </s> come first in the tiny vocabulary


def _random_items(vocab_size: int, seed: int, n_items: int = 10) -> list[ScoringItem]:
    """Prompts of 1-30 tokens, 2-5 choices of 1-6 tokens, some choices sharing a prefix."""
    rng = np.random.default_rng(seed)

    def tokens(n: int) -> tuple[int, ...]:
        return tuple(int(t) for t in rng.integers(N_SPECIAL, vocab_size, size=n))

    items = []
    lengths = [1, 30] + [int(x) for x in rng.integers(1, 31, size=n_items - 2)]  # extremes included
    for length in lengths:
        n_choices = int(rng.integers(2, 6))
        choices: list[tuple[int, ...]] = []
        for _ in range(n_choices):
            if choices and rng.random() < 0.4:  # share a prefix with an earlier choice
                base = choices[int(rng.integers(len(choices)))]
                keep = int(rng.integers(1, len(base) + 1))
                extra = int(rng.integers(0, 7 - keep)) if keep < 6 else 0
                choice = base[:keep] + tokens(extra)
            else:
                choice = tokens(int(rng.integers(1, 7)))
            choices.append(choice)
        items.append(ScoringItem(tokens(length), tuple(choices)))
    return items


@pytest.fixture(scope="module")
def random_items(tiny_lm) -> list[ScoringItem]:
    return _random_items(len(tiny_lm.tokenizer), seed=1234)


@pytest.fixture(scope="module")
def prefixes(tiny_lm) -> dict[str, list[int]]:
    rng = np.random.default_rng(99)
    vocab = len(tiny_lm.tokenizer)
    return {
        "empty": [],
        "bos": [tiny_lm.tokenizer.bos_token_id],
        "long": [tiny_lm.tokenizer.bos_token_id] + [int(t) for t in rng.integers(N_SPECIAL, vocab, size=25)],
    }


@pytest.fixture(scope="module")
def reference(tiny_lm, random_items, prefixes) -> dict[str, list[np.ndarray]]:
    return {name: choice_logprobs_plain(tiny_lm.model, ids, random_items) for name, ids in prefixes.items()}


def test_signature_is_public_contract():
    """The documented parameters keep their names, kinds and defaults (new optional ones may be added)."""
    params = inspect.signature(choice_logprobs).parameters
    assert list(params)[:3] == ["model", "prefix_ids", "items"]
    keyword_only = {name: p.default for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    contract = {
        "pad_id": inspect.Parameter.empty,
        "batch_tokens": None,
        "max_rows": 256,
        "progress": False,
        "desc": "scoring",
    }
    assert {name: keyword_only.get(name, "<missing>") for name in contract} == contract
    extra = {name: default for name, default in keyword_only.items() if name not in contract}
    assert inspect.Parameter.empty not in extra.values(), f"new parameters must be optional: {extra}"
    # the uncached reference path carries the padding side (moved out of choice_logprobs)
    params = inspect.signature(choice_logprobs_uncached).parameters
    assert list(params)[:3] == ["model", "prefix_ids", "items"]
    keyword_only = {name: p.default for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    contract = {**contract, "padding_side": "right"}
    assert {name: keyword_only.get(name, "<missing>") for name in contract} == contract


def test_random_items_cover_the_ranges(random_items):
    assert {len(it.prompt_ids) for it in random_items} >= {1, 30}
    assert all(1 <= len(it.prompt_ids) <= 30 for it in random_items)
    assert all(2 <= len(it.choice_ids) <= 5 for it in random_items)
    assert all(1 <= len(c) <= 6 for it in random_items for c in it.choice_ids)
    shared = sum(
        1 for it in random_items for a in it.choice_ids for b in it.choice_ids if a is not b and a[0] == b[0]
    )
    assert shared > 0  # some choices share a prefix


def _score(tiny_lm, prefix_ids, items, prefix_cache: bool, padding_side: str = "right", **kwargs):
    """The cached path (``choice_logprobs``: no padding side) or the uncached reference path
    (``choice_logprobs_uncached``, padded on ``padding_side``)."""
    if prefix_cache:
        return choice_logprobs(tiny_lm.model, prefix_ids, items, **kwargs)
    return choice_logprobs_uncached(tiny_lm.model, prefix_ids, items, padding_side=padding_side, **kwargs)


@pytest.mark.parametrize("batch_tokens", [1, 48, None], ids=["one-row-batches", "small-batches", "default"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("prefix_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("prefix", ["empty", "bos", "long"])
def test_batched_matches_plain(tiny_lm, random_items, prefixes, reference, prefix, prefix_cache, padding_side,
                               batch_tokens):
    """Both batched paths agree with the plain reference: the cached one (which has no padding
    side: it is run under both ids, as before) and the uncached one padded right and left."""
    got = _score(
        tiny_lm, prefixes[prefix], random_items, prefix_cache, padding_side,
        pad_id=tiny_lm.tokenizer.pad_token_id, batch_tokens=batch_tokens, progress=False,
    )
    want = reference[prefix]
    assert len(got) == len(want) == len(random_items)
    for item, g, w in zip(random_items, got, want):
        assert isinstance(g, np.ndarray)
        assert g.shape == (len(item.choice_ids),)
        assert np.all(np.isfinite(g)) and np.all(g < 0)
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


@pytest.mark.parametrize("max_rows", [1, 3])
def test_max_rows_does_not_change_scores(tiny_lm, random_items, prefixes, reference, max_rows):
    got = choice_logprobs(tiny_lm.model, prefixes["long"], random_items, pad_id=tiny_lm.tokenizer.pad_token_id,
                          max_rows=max_rows)
    for g, w in zip(got, reference["long"]):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_pad_id_does_not_matter(tiny_lm, random_items, prefixes, reference):
    """Padding is masked: any pad id (here an ordinary word) gives the same scores."""
    for side in ("left", "right"):
        got = choice_logprobs_uncached(tiny_lm.model, prefixes["long"], random_items, pad_id=10,
                                       padding_side=side, batch_tokens=200)
        for g, w in zip(got, reference["long"]):
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)
    got = choice_logprobs(tiny_lm.model, prefixes["long"], random_items, pad_id=10, batch_tokens=200)
    for g, w in zip(got, reference["long"]):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_item_order_and_subsets_do_not_matter(tiny_lm, random_items, prefixes, reference):
    order = list(reversed(range(len(random_items))))
    got = choice_logprobs(tiny_lm.model, prefixes["long"], [random_items[i] for i in order],
                          pad_id=tiny_lm.tokenizer.pad_token_id, batch_tokens=64)
    for g, i in zip(got, order):
        np.testing.assert_allclose(g, reference["long"][i], atol=1e-4, rtol=0)
    single = choice_logprobs(tiny_lm.model, prefixes["long"], random_items[3:4], pad_id=tiny_lm.tokenizer.pad_token_id)
    np.testing.assert_allclose(single[0], reference["long"][3], atol=1e-4, rtol=0)


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_deterministic(tiny_lm, random_items, prefixes, prefix_cache):
    kwargs = dict(pad_id=tiny_lm.tokenizer.pad_token_id, batch_tokens=64)
    first = _score(tiny_lm, prefixes["long"], random_items, prefix_cache, **kwargs)
    second = _score(tiny_lm, prefixes["long"], random_items, prefix_cache, **kwargs)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_no_items_gives_no_scores(tiny_lm, prefixes):
    assert choice_logprobs(tiny_lm.model, prefixes["long"], [], pad_id=tiny_lm.tokenizer.pad_token_id) == []
    assert choice_logprobs(tiny_lm.model, [], [], pad_id=tiny_lm.tokenizer.pad_token_id) == []


def test_plain_reference_by_hand(tiny_lm):
    """The reference itself: sum of next-token log-probabilities of the choice tokens."""
    import torch

    prefix, prompt, choice = [2, 10], (11, 12), (13, 14)
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=torch.tensor([prefix + list(prompt) + list(choice)])).logits[0]
    lp = logits.double().log_softmax(-1)
    want = lp[3, 13].item() + lp[4, 14].item()
    got = choice_logprobs_plain(tiny_lm.model, prefix, [ScoringItem(prompt, (choice, (15,)))])
    assert got[0][0] == pytest.approx(want, abs=1e-5)
    assert got[0][1] == pytest.approx(lp[3, 15].item(), abs=1e-5)


@pytest.mark.parametrize("side", ["middle", "", "LEFT", None])
def test_invalid_padding_side(tiny_lm, random_items, side):
    """The padding side lives on the uncached path now (the cached one has none)."""
    with pytest.raises(ValueError, match="padding_side"):
        choice_logprobs_uncached(tiny_lm.model, [], random_items, pad_id=1, padding_side=side)


# --- predictions -------------------------------------------------------------------------


def test_predictions_hand_case():
    frame = predictions([np.array([-1.0, -2.0, -3.0])], [0])
    row = frame.iloc[0]
    z = math.exp(-1) + math.exp(-2) + math.exp(-3)
    assert row["pred"] == 0
    assert row["label"] == 0
    assert row["correct"] == 1.0
    assert row["p_correct"] == pytest.approx(math.exp(-1) / z)
    np.testing.assert_allclose(row["probs"], [math.exp(-k) / z for k in (1, 2, 3)])
    assert row["logprobs"] == [-1.0, -2.0, -3.0]


def test_predictions_wrong_answer():
    frame = predictions([np.array([-1.0, -2.0, -3.0])], [2])
    row = frame.iloc[0]
    z = math.exp(-1) + math.exp(-2) + math.exp(-3)
    assert row["pred"] == 0
    assert row["correct"] == 0.0
    assert row["p_correct"] == pytest.approx(math.exp(-3) / z)


def test_predictions_random():
    rng = np.random.default_rng(0)
    logprobs = [rng.normal(-20, 8, size=int(rng.integers(2, 6))) for _ in range(40)]
    labels = [int(rng.integers(len(lp))) for lp in logprobs]
    frame = predictions(logprobs, labels)
    assert list(frame.columns) == ["logprobs", "probs", "pred", "label", "correct", "p_correct"]
    assert len(frame) == 40
    for lp, y, row in zip(logprobs, labels, frame.to_dict("records")):
        probs = np.asarray(row["probs"])
        assert probs.sum() == pytest.approx(1.0)
        assert np.all(probs >= 0)
        assert row["pred"] == int(np.argmax(lp)) == int(np.argmax(probs))
        assert row["correct"] == float(row["pred"] == y)
        assert row["p_correct"] == pytest.approx(probs[y])
        assert row["label"] == y


def test_predictions_extreme_logprobs_are_stable():
    frame = predictions([np.array([-1000.0, -1001.0]), np.array([-5e4, -10.0])], [1, 1])
    probs = np.array(frame["probs"].tolist())
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert list(frame["pred"]) == [0, 1]
    assert list(frame["correct"]) == [0.0, 1.0]


def test_softmax():
    p = scoring.softmax(np.array([0.0, 0.0]))
    np.testing.assert_allclose(p, [0.5, 0.5])


# --- items and encoding ------------------------------------------------------------------


def test_scoring_item_rejects_empty_parts():
    with pytest.raises(ValueError, match="prompt"):
        ScoringItem((), ((1,),))
    with pytest.raises(ValueError, match="choice"):
        ScoringItem((1,), ((1,), ()))
    with pytest.raises(ValueError, match="choice"):
        ScoringItem((1,), ())


def test_scoring_item_max_length():
    assert ScoringItem((1, 2, 3), ((4,), (5, 6, 7))).max_length == 6


@pytest.mark.parametrize("add_bos", [False, True])
def test_encode_and_make_item_add_no_special_tokens(make_tiny_tokenizer, add_bos):
    tokenizer = make_tiny_tokenizer(add_bos=add_bos)
    assert tokenizer("the sun").input_ids[: int(add_bos)] == ([tokenizer.bos_token_id] if add_bos else [])
    ids = encode(tokenizer, "the sun is hot")
    assert ids == tokenizer.convert_tokens_to_ids(["the", "sun", "is", "hot"])
    item = make_item(tokenizer, "Question: what is hot?\nAnswer:", [" the sun", " ice"])
    specials = set(tokenizer.all_special_ids)
    assert not specials & set(item.prompt_ids)
    assert not specials & {t for c in item.choice_ids for t in c}
    assert item.prompt_ids == tuple(tokenizer.convert_tokens_to_ids(
        ["question", ":", "what", "is", "hot", "?", "answer", ":"]))
    assert item.choice_ids == (tuple(tokenizer.convert_tokens_to_ids(["the", "sun"])),
                               (tokenizer.convert_tokens_to_ids("ice"),))


def test_make_item_rejects_empty_continuation(make_tiny_tokenizer):
    tokenizer = make_tiny_tokenizer()
    with pytest.raises(ValueError):
        make_item(tokenizer, "the sun", [" hot", " "])


@pytest.mark.parametrize("kv_tokens", [1, 40])
def test_small_kv_budget_does_not_change_scores(tiny_lm, random_items, prefixes, reference, kv_tokens):
    """Optional memory budget of the cached path (when the scorer has one): scores unchanged."""
    if "kv_tokens" not in inspect.signature(choice_logprobs).parameters:
        pytest.skip("choice_logprobs has no kv_tokens budget")
    got = choice_logprobs(tiny_lm.model, prefixes["long"], random_items, pad_id=tiny_lm.tokenizer.pad_token_id,
                          kv_tokens=kv_tokens)
    for g, w in zip(got, reference["long"]):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# --- the packed rows: a question and its choices in one row under a tree mask -----------------


def test_tree_mask_by_hand():
    """Question (2 tokens), choice 0 fed 2 tokens, choice 1 fed 1, one padding column: a choice
    sees the question and itself up to each token, never the other choice; padding sees itself."""
    row = scoring._PackedRow.of(ScoringItem((5, 6), ((7, 8, 9), (10, 11))))
    assert row.ids == [5, 6, 7, 8, 10] and row.positions == [0, 1, 2, 3, 2] and row.groups == [0, 0, 1, 1, 2]
    assert row.sources == [[1, 2, 3], [1, 4]]  # where each choice token is predicted from
    got = scoring._tree_mask([row], 6)[0].int().tolist()
    assert got == [[1, 0, 0, 0, 0, 0],
                   [1, 1, 0, 0, 0, 0],
                   [1, 1, 1, 0, 0, 0],
                   [1, 1, 1, 1, 0, 0],
                   [1, 1, 0, 0, 1, 0],
                   [0, 0, 0, 0, 0, 1]]


@pytest.mark.parametrize("path", ["choice-by-choice", "packed-eager"])
def test_every_scoring_path_matches_plain(tiny_lm, random_items, prefixes, reference, path, monkeypatch):
    """The walk kept for architectures that cannot pack, and the packed rows under eager attention
    (an additive mask), agree with the plain reference as the default path (SDPA) does."""
    if path == "choice-by-choice":
        monkeypatch.setattr(scoring, "_packs", lambda *args: False)
    else:
        monkeypatch.setattr(tiny_lm.model.config, "_attn_implementation", "eager")
        assert scoring._packs(tiny_lm.model, prefixes["long"], [scoring._PackedRow.of(i) for i in random_items])
    for prefix in ("empty", "long"):
        got = choice_logprobs(tiny_lm.model, prefixes[prefix], random_items, pad_id=tiny_lm.tokenizer.pad_token_id,
                              batch_tokens=48)
        for g, w in zip(got, reference[prefix]):
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_only_architectures_that_read_positions_pack(tiny_lm, random_items, prefixes, monkeypatch):
    """Llama packs; ALiBi (MPT) and Falcon's own masks score choice by choice, and so does a sliding
    window shorter than prefix + row (the tree mask does not apply one)."""
    config = tiny_lm.model.config
    rows = [scoring._PackedRow.of(item) for item in random_items]
    assert config.model_type == "llama" and scoring._packs(tiny_lm.model, prefixes["long"], rows)
    for model_type in ("mpt", "falcon"):
        monkeypatch.setattr(config, "model_type", model_type)
        assert not scoring._packs(tiny_lm.model, prefixes["long"], rows)
    monkeypatch.setattr(config, "model_type", "mistral")
    longest = len(prefixes["long"]) + max(len(row.ids) for row in rows)
    monkeypatch.setattr(config, "sliding_window", longest, raising=False)
    assert scoring._packs(tiny_lm.model, prefixes["long"], rows)
    monkeypatch.setattr(config, "sliding_window", longest - 1, raising=False)
    assert not scoring._packs(tiny_lm.model, prefixes["long"], rows)
