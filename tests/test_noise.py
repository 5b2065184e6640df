"""e2h_utils.methods.noise: label noise for training examples (no model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2h_utils.methods.noise import FLIPPED, corrupt_labels, noise_rates


def examples(n: int = 400, seed: int = 0, n_choices=(4,)) -> pd.DataFrame:
    """Rows with ``choices`` (cycling through ``n_choices`` sizes), ``label`` and ``answer``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = n_choices[i % len(n_choices)]
        choices = [f"c{i}-{j}" for j in range(k)]
        label = int(rng.integers(k))
        rows.append({"id": f"ex-{i:04d}", "choices": choices, "label": label, "answer": choices[label]})
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("Int64")  # as data.tidy stores it
    return frame


def noised(out: pd.DataFrame, original: pd.DataFrame) -> np.ndarray:
    return out["label"].to_numpy(dtype=int) != original["label"].to_numpy(dtype=int)


def test_zero_rate_changes_nothing():
    frame = examples(50)
    out = corrupt_labels(frame, 0.0, seed=3, salt="x")
    assert FLIPPED in out.columns and not out[FLIPPED].any()
    np.testing.assert_array_equal(out["label"].to_numpy(dtype=int), frame["label"].to_numpy(dtype=int))
    assert list(out["answer"]) == list(frame["answer"])
    assert list(out["id"]) == list(frame["id"])
    assert FLIPPED not in frame.columns  # the input is not modified


def test_full_rate_resamples_uniformly():
    n = 800
    frame = examples(n, n_choices=(4,))
    # every label is 0: after resampling at p=1, labels are uniform over the 4 choices
    frame["label"] = 0
    frame["answer"] = [c[0] for c in frame["choices"]]
    out = corrupt_labels(frame, 1.0, seed=0, salt="uniform")
    counts = np.bincount(out["label"].to_numpy(dtype=int), minlength=4)
    assert counts.sum() == n and len(counts) == 4
    # each choice ~200 times; binomial sd ~12, so 150..250 is a generous but failing-capable band
    assert (counts > 150).all() and (counts < 250).all(), counts
    # a resampled label lands on the original one about a quarter of the time
    assert out[FLIPPED].mean() == pytest.approx(0.75, abs=0.06)
    np.testing.assert_array_equal(out[FLIPPED].to_numpy(), out["label"].to_numpy(dtype=int) != 0)


def test_full_rate_respects_each_rows_choice_count():
    frame = examples(600, n_choices=(2, 4))
    out = corrupt_labels(frame, 1.0, seed=1, salt="mixed")
    sizes = out["choices"].map(len).to_numpy()
    labels = out["label"].to_numpy(dtype=int)
    assert (labels >= 0).all() and (labels < sizes).all()
    two = labels[sizes == 2]
    four = labels[sizes == 4]
    assert set(two) == {0, 1} and set(four) == {0, 1, 2, 3}
    assert np.bincount(two, minlength=2).min() > 100  # ~150 each of 300
    assert np.bincount(four, minlength=4).min() > 45  # ~75 each of 300


def test_answer_follows_the_new_label():
    frame = examples(200)
    out = corrupt_labels(frame, 0.7, seed=2, salt="answer")
    assert out[FLIPPED].sum() > 50
    for row in out.to_dict("records"):
        assert row["answer"] == row["choices"][int(row["label"])]
    # without an answer column it still works and adds none
    bare = corrupt_labels(frame.drop(columns=["answer"]), 0.7, seed=2, salt="answer")
    assert "answer" not in bare.columns
    np.testing.assert_array_equal(bare["label"].to_numpy(dtype=int), out["label"].to_numpy(dtype=int))


def test_rates_are_nested():
    frame = examples(500)
    low = corrupt_labels(frame, 0.1, seed=5, salt="nest")
    mid = corrupt_labels(frame, 0.3, seed=5, salt="nest")
    high = corrupt_labels(frame, 0.6, seed=5, salt="nest")
    low_set, mid_set, high_set = (set(np.flatnonzero(x[FLIPPED].to_numpy())) for x in (low, mid, high))
    assert 0 < len(low_set) < len(mid_set) < len(high_set)
    assert low_set <= mid_set <= high_set
    # a label noised at the lower rate gets the same new label at the higher one
    rows = sorted(low_set)
    np.testing.assert_array_equal(low["label"].to_numpy(dtype=int)[rows], mid["label"].to_numpy(dtype=int)[rows])
    # rates are roughly respected (a resample hits the old label 1/4 of the time)
    assert len(mid_set) / len(frame) == pytest.approx(0.3 * 0.75, abs=0.06)


def test_deterministic_and_seeded():
    frame = examples(300)
    a = corrupt_labels(frame, 0.5, seed=7, salt="s")
    b = corrupt_labels(frame, 0.5, seed=7, salt="s")
    pd.testing.assert_frame_equal(a, b)
    other_seed = corrupt_labels(frame, 0.5, seed=8, salt="s")
    other_salt = corrupt_labels(frame, 0.5, seed=7, salt="t")
    for other in (other_seed, other_salt):
        assert not np.array_equal(other[FLIPPED].to_numpy(), a[FLIPPED].to_numpy())


def test_keeps_index_and_other_columns():
    frame = examples(40).set_index(pd.Index(range(100, 140)))
    frame["extra"] = range(40)
    out = corrupt_labels(frame, 0.5, seed=0)
    assert list(out.index) == list(frame.index)
    assert list(out["extra"]) == list(range(40))
    np.testing.assert_array_equal(out[FLIPPED].to_numpy(), noised(out, frame))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_invalid_rate_raises(p):
    with pytest.raises(ValueError):
        corrupt_labels(examples(5), p, seed=0)


def test_empty_frame():
    out = corrupt_labels(examples(3).iloc[:0], 0.5, seed=0)
    assert out.empty and FLIPPED in out.columns


def test_noise_rates():
    assert noise_rates(0.1) == {"easy": 0.1, "hard": 0.2}
    assert noise_rates(0.0) == {"easy": 0.0, "hard": 0.0}
    assert noise_rates(0.3) == {"easy": 0.3, "hard": pytest.approx(0.6)}
    assert noise_rates(0.5) == {"easy": 0.5, "hard": 1.0}
    with pytest.raises(ValueError, match=r"0.8 x hard_multiplier 2 = 1.6 > 1 .* keep every rate <= 0.5"):
        noise_rates(0.8)  # never capped silently
    assert noise_rates(0.2, hard_multiplier=3.0) == {"easy": 0.2, "hard": pytest.approx(0.6)}
    assert all(type(v) is float for v in noise_rates(0.25).values())
