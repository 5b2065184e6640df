"""Unit tests of e2h_utils.analysis.metrics: SGR (and clipped SGR), the paired bootstrap and the summary."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

from e2h_utils.analysis.metrics import (
    Estimate,
    bootstrap_accuracies,
    estimate_from_replicates,
    sgr_clipped,
    sgr,
    summarize_e2h,
)

SUMMARY_KEYS = {
    *(
        f"{base}{suffix}"
        for base in (
            "acc_unsupervised",
            "acc_easy",
            "acc_hard",
            "gap",
            "easy_gain",
            "hard_minus_easy",
            "sgr",
            "sgr_clipped",
        )
        for suffix in ("", "_lo", "_hi")
    ),
    "sgr_stable",
    "clipped_differs",
    "n_items",
    "n_seeds_unsupervised",
    "n_seeds_easy",
    "n_seeds_hard",
}


def _bernoulli(rng: np.random.Generator, p: float, n_seeds: int, n_items: int) -> np.ndarray:
    return (rng.random((n_seeds, n_items)) < p).astype(float)


# --- SGR / clipped SGR ---------------------------------------------------------------------------


def test_sgr_hand_computed() -> None:
    assert sgr(0.25, 0.5, 0.75) == pytest.approx(0.5)
    assert sgr(0.25, 0.75, 0.75) == pytest.approx(1.0)
    assert sgr(0.25, 0.25, 0.75) == pytest.approx(0.0)
    assert sgr(0.2, 0.9, 0.6) == pytest.approx(1.75)
    assert isinstance(sgr(0.25, 0.5, 0.75), float)


def test_sgr_zero_gap_is_nan() -> None:
    assert math.isnan(sgr(0.5, 0.7, 0.5))


def test_sgr_elementwise_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sgr(np.array([0.25, 0.5, 0.1]), np.array([0.5, 0.6, 0.1]), np.array([0.75, 0.5, 0.1]))
    assert isinstance(out, np.ndarray)
    assert out[0] == pytest.approx(0.5)
    assert np.isnan(out[1]) and np.isnan(out[2])


def test_sgr_clipped() -> None:
    assert sgr_clipped(0.25, 0.5, 0.75) == pytest.approx(0.5)  # same as SGR inside [0, 1]
    assert sgr_clipped(0.2, 0.9, 0.6) == 1.0  # easy above the ceiling
    assert sgr_clipped(0.25, 0.75, 0.75) == 1.0
    assert sgr_clipped(0.4, 0.3, 0.8) == 0.0  # easy below unsupervised
    assert math.isnan(sgr_clipped(0.5, 0.6, 0.5))
    np.testing.assert_allclose(sgr_clipped(np.array([0.2, 0.4]), np.array([0.9, 0.3]), np.array([0.6, 0.8])),
                               [1.0, 0.0])


# --- bootstrap -----------------------------------------------------------------------------


def test_bootstrap_all_ones_is_exactly_one() -> None:
    reps = bootstrap_accuracies({"a": np.ones((3, 50)), "b": np.ones((1, 50))}, n_boot=200)
    for r in reps.values():
        assert r.shape == (200,)
        assert np.all(r == 1.0)
    est = estimate_from_replicates(1.0, reps["a"])
    assert (est.lo, est.hi) == (1.0, 1.0)


def test_bootstrap_items_are_paired() -> None:
    rng = np.random.default_rng(1)
    arr = _bernoulli(rng, 0.6, 1, 300)
    unsup = _bernoulli(rng, 0.3, 1, 300)
    summary = summarize_e2h(unsup, arr.copy(), arr.copy(), n_boot=300)
    assert summary["hard_minus_easy"] == 0.0
    assert summary["hard_minus_easy_lo"] == 0.0 and summary["hard_minus_easy_hi"] == 0.0
    reps = bootstrap_accuracies({"easy": arr, "hard": arr.copy()}, n_boot=300)
    assert np.all(reps["hard"] - reps["easy"] == 0.0)
    assert reps["easy"].std() > 0  # the items really are resampled


def test_bootstrap_seed_determinism() -> None:
    rng = np.random.default_rng(2)
    correct = {"a": _bernoulli(rng, 0.5, 3, 100), "b": _bernoulli(rng, 0.7, 1, 100)}
    first = bootstrap_accuracies(correct, n_boot=100, seed=7)
    again = bootstrap_accuracies(correct, n_boot=100, seed=7)
    other = bootstrap_accuracies(correct, n_boot=100, seed=8)
    for name in correct:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])


def test_bootstrap_resamples_seeds_per_condition() -> None:
    """Seed 0 all wrong, seed 1 all right: only seed draws vary, giving 0, 0.5 or 1."""
    arr = np.vstack([np.zeros(20), np.ones(20)])
    reps = bootstrap_accuracies({"a": arr, "b": arr.copy()}, n_boot=4000, seed=0)
    assert set(np.unique(reps["a"])) == {0.0, 0.5, 1.0}
    assert np.mean(reps["a"] == 0.5) == pytest.approx(0.5, abs=0.05)
    assert not np.array_equal(reps["a"], reps["b"])  # independent seed draws per condition


def test_bootstrap_mean_is_unbiased() -> None:
    rng = np.random.default_rng(3)
    arr = rng.random((4, 30))
    reps = bootstrap_accuracies({"a": arr}, n_boot=2000, seed=0)["a"]
    assert reps.mean() == pytest.approx(arr.mean(), abs=0.01)


def test_ci_contains_point() -> None:
    rng = np.random.default_rng(4)
    s = summarize_e2h(_bernoulli(rng, 0.3, 1, 400), _bernoulli(rng, 0.5, 5, 400), _bernoulli(rng, 0.6, 5, 400))
    for key in ("acc_unsupervised", "acc_easy", "acc_hard", "gap", "easy_gain", "hard_minus_easy", "sgr"):
        assert s[f"{key}_lo"] <= s[key] <= s[f"{key}_hi"], key


def test_ci_shrinks_with_more_items() -> None:
    rng = np.random.default_rng(5)
    widths = []
    for n_items in (100, 2000):
        s = summarize_e2h(
            _bernoulli(rng, 0.3, 1, n_items), _bernoulli(rng, 0.5, 3, n_items), _bernoulli(rng, 0.6, 3, n_items)
        )
        widths.append(s["acc_easy_hi"] - s["acc_easy_lo"])
    assert widths[1] < widths[0] / 2


def test_shape_validation() -> None:
    with pytest.raises(ValueError, match="same test items"):
        bootstrap_accuracies({"a": np.ones((2, 10)), "b": np.ones((2, 11))})
    with pytest.raises(ValueError, match="2-D"):
        bootstrap_accuracies({"a": np.ones(10)})
    with pytest.raises(ValueError, match="seed"):
        bootstrap_accuracies({"a": np.ones((0, 10))})
    with pytest.raises(ValueError, match="item"):
        bootstrap_accuracies({"a": np.ones((2, 0))})
    with pytest.raises(ValueError, match="empty"):
        bootstrap_accuracies({})
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_accuracies({"a": np.ones((1, 3))}, n_boot=0)


def test_bootstrap_is_fast() -> None:
    rng = np.random.default_rng(6)
    correct = {name: _bernoulli(rng, 0.5, 5, 1000) for name in ("u", "e", "h")}
    start = time.perf_counter()
    bootstrap_accuracies(correct, n_boot=1000)
    assert time.perf_counter() - start < 1.0


# --- Estimate ------------------------------------------------------------------------------


def test_estimate_str_and_nan_replicates() -> None:
    assert str(Estimate(0.512, 0.48, 0.544)) == "0.512 [0.480, 0.544]"
    est = estimate_from_replicates(0.5, np.array([np.nan, np.nan]))
    assert est.point == 0.5 and math.isnan(est.lo) and math.isnan(est.hi)
    est = estimate_from_replicates(0.5, np.array([np.nan, 0.4, 0.6]), alpha=0.5)
    assert 0.4 <= est.lo <= est.hi <= 0.6
    with pytest.raises(AttributeError):
        est.point = 1.0  # type: ignore[misc]


# --- summary -------------------------------------------------------------------------------


def test_summary_keys_and_counts() -> None:
    rng = np.random.default_rng(7)
    s = summarize_e2h(_bernoulli(rng, 0.3, 1, 80), _bernoulli(rng, 0.5, 5, 80), _bernoulli(rng, 0.6, 3, 80), n_boot=50)
    assert set(s) == SUMMARY_KEYS
    assert (s["n_items"], s["n_seeds_unsupervised"], s["n_seeds_easy"], s["n_seeds_hard"]) == (80, 1, 5, 3)
    assert isinstance(s["sgr_stable"], bool) and isinstance(s["clipped_differs"], bool)


def test_summary_points_hand_computed() -> None:
    unsup = np.array([[1, 0, 0, 0]], dtype=float)  # 0.25
    easy = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], dtype=float)  # 0.5
    hard = np.array([[1, 1, 1, 0]], dtype=float)  # 0.75
    s = summarize_e2h(unsup, easy, hard, n_boot=100)
    assert s["acc_unsupervised"] == 0.25 and s["acc_easy"] == 0.5 and s["acc_hard"] == 0.75
    assert s["gap"] == pytest.approx(0.5)
    assert s["easy_gain"] == pytest.approx(0.25)
    assert s["hard_minus_easy"] == pytest.approx(0.25)
    assert s["sgr"] == pytest.approx(0.5) and s["sgr_clipped"] == pytest.approx(0.5)
    assert s["clipped_differs"] is False


def test_sgr_stable_false_without_gap() -> None:
    rng = np.random.default_rng(8)
    same = _bernoulli(rng, 0.5, 1, 300)
    s = summarize_e2h(same, _bernoulli(rng, 0.5, 3, 300), same.copy())
    assert s["gap"] == 0.0
    assert math.isnan(s["sgr"])
    assert s["sgr_stable"] is False


def test_sgr_stable_true_on_clear_gap() -> None:
    rng = np.random.default_rng(9)
    s = summarize_e2h(_bernoulli(rng, 0.25, 1, 500), _bernoulli(rng, 0.6, 3, 500), _bernoulli(rng, 0.8, 3, 500))
    assert s["sgr_stable"] is True
    assert 0.4 < s["sgr"] < 0.8
    assert s["sgr_lo"] < s["sgr"] < s["sgr_hi"]
    # A min_gap above the whole gap makes it unstable again.
    s = summarize_e2h(_bernoulli(rng, 0.25, 1, 500), _bernoulli(rng, 0.6, 3, 500), _bernoulli(rng, 0.8, 3, 500),
                      min_gap=0.9)
    assert s["sgr_stable"] is False


def test_clipped_differs_when_easy_beats_hard() -> None:
    unsup = np.array([[1, 0, 0, 0, 0]], dtype=float)  # 0.2
    easy = np.array([[1, 1, 1, 1, 0]], dtype=float)  # 0.8
    hard = np.array([[1, 1, 1, 0, 0]], dtype=float)  # 0.6
    s = summarize_e2h(unsup, easy, hard, n_boot=100)
    assert s["clipped_differs"] is True
    assert s["sgr"] == pytest.approx(1.5) and s["sgr_clipped"] == 1.0
    assert s["sgr_clipped_hi"] <= 1.0
