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


def test_top_k_one_is_greedy_and_keys_make_samples_independent_of_the_other_prompts(tiny_lm, sample):
    greedy = greedy_generate(tiny_lm.model, tiny_lm.tokenizer, [3, 4], PROMPTS, max_new_tokens=6, stop=())
    assert all(all(s == g for s in samples) for samples, g in zip(sample(top_k=1), greedy))
    keyed = sample(prompt_keys=[11, 22, 33])
    alone = sample_generate(tiny_lm.model, tiny_lm.tokenizer, [3, 4], [PROMPTS[2], PROMPTS[0]], n=3, temperature=1.0,
                            seed=0, max_new_tokens=6, stop=(), prompt_keys=[33, 11])
    assert alone == [keyed[2], keyed[0]]  # a prompt's samples do not depend on which prompts it is sampled with
    with pytest.raises(ValueError, match="top_k"):
        sample(top_k=0)


def test_candidates_are_read_and_grouped_per_problem():
    """``methods.sampling.candidate_frame``: the answer of each sample (strict rule; MATH: the last
    box), its vote group and correctness, per (problem, sample)."""
    from e2h_utils.data import prompts
    from e2h_utils.methods.sampling import candidate_frame

    fmt = prompts.get_cot_format(None, "strategyqa")
    rows = [{"id": "q1", "level": "hard", "answer": "yes"}, {"id": "q2", "level": "hard", "answer": "no"}]
    texts = [[" Facts. So the answer is yes.\n", " So the answer is no.", " no answer here"],
             [" So the answer is no.", " So the answer is no.", " So the answer is yes."]]
    frame = candidate_frame(fmt, rows, texts, n_shots=2)
    assert frame["correct"].tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert frame["vote_key"].tolist() == [0, 1, -1, 0, 0, 1]
    assert frame["extracted"].tolist()[:2] == ["yes", "no"] and frame["extracted"].isna().tolist()[2]
    math_fmt = prompts.get_cot_format(None, "math")
    math = candidate_frame(math_fmt, [{"id": "m", "level": "hard", "answer": "\\frac{1}{2}"}],
                           [["$\\boxed{0.5}$\n", "so \\boxed{1/2}", "\\boxed{2}"]], n_shots=0)
    assert math["correct"].tolist() == [1.0, 1.0, 0.0] and math["vote_key"].tolist() == [0, 0, 1]
    assert math_fmt.prompt({"question": "What is 1+1?"}) == "Problem: What is 1+1?\nSolution:"


def test_sampling_settings_are_checked():
    from e2h_utils.methods.sampling import Sampling, SamplingError

    assert Sampling(n=4).with_length("math").options()["max_new_tokens"] == 512
    for bad in ({"n": 0}, {"n": 2, "temperature": 0}, {"n": 2, "top_k": 0}, {"n": 2, "top_p": 1.5}, {"n": 2, "k": -1}):
        with pytest.raises(SamplingError):
            Sampling(**bad)
    with pytest.raises(SamplingError, match="resolve"):
        Sampling(n=2).options()
