"""Sampled generation (the evaluators' candidate solutions): reproducible, independent of batching,
the first k of n samples are those of n = k, close to greedy at a low temperature."""

from __future__ import annotations

import pytest

from e2h_utils.engine.generation import greedy_generate, sample_generate

PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]


@pytest.fixture(scope="module")
def sample(tiny_lm, one_thread):
    def run(**kwargs):
        kwargs = {"n": 3, "temperature": 1.0, "seed": 0, "max_new_tokens": 6, "stop": (), "batch_size": 4, **kwargs}
        return sample_generate(tiny_lm.model, tiny_lm.tokenizer, [3, 4], PROMPTS, **kwargs)
    return run


def test_shape_and_reproducible(sample):
    first = sample()
    assert len(first) == len(PROMPTS) and all(len(s) == 3 for s in first)
    assert sample() == first
    assert len({s for samples in first for s in samples}) > 1  # samples differ from one another


def test_independent_of_batch_size_and_n(sample):
    base = sample(batch_size=9)
    assert sample(batch_size=1) == base == sample(batch_size=2)
    assert [s[:2] for s in base] == sample(n=2)  # the first k of n samples are the samples of n = k


def test_seed_changes_samples(sample):
    assert sample(seed=1) != sample(seed=0)


def test_low_temperature_is_greedy(tiny_lm, sample):
    greedy = greedy_generate(tiny_lm.model, tiny_lm.tokenizer, [3, 4], PROMPTS, max_new_tokens=6, stop=())
    cold = sample(temperature=1e-4)
    assert all(all(s == g for s in samples) for samples, g in zip(cold, greedy))


def test_bad_arguments(sample):
    for bad in ({"n": 0}, {"temperature": 0.0}, {"top_p": 0.0}):
        with pytest.raises(ValueError):
            sample(**bad)
