"""Unit tests of e2h_utils.analysis.power: the predicted CI half-widths against the actual bootstrap
(``metrics.bootstrap_accuracies`` / ``summarize_e2h``) on synthetic items of known variance, and the
items-needed arithmetic. No model, no data; a few seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from e2h_utils.analysis import metrics, power

# Synthetic comparisons: item ease p_i = 0.2 + 0.6 Beta(2, 2) shared by all conditions (paired), the
# zero-shot run deterministic (one seed, Bernoulli(p_i - 0.1)), trained runs with a per-seed shift of
# sd TAU (Bernoulli(p_i + offset + shift_s)).
TAU, OFF_UNSUP, OFF_EASY, OFF_HARD = 0.05, -0.1, 0.0, 0.03
VAR_P, MEAN_P = 0.36 * 0.05, 0.5  # variance and mean of p_i (Beta(2, 2) has variance 1/20)


def dataset(rng: np.random.Generator, n: int, seeds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = 0.2 + 0.6 * rng.beta(2, 2, n)
    unsup = (rng.random((1, n)) < p + OFF_UNSUP).astype(float)

    def trained(offset: float) -> np.ndarray:
        q = np.clip(p[None, :] + offset + rng.normal(0, TAU, (seeds, 1)), 0, 1)
        return (rng.random((seeds, n)) < q).astype(float)

    return unsup, trained(OFF_EASY), trained(OFF_HARD)


def interaction(offset: float) -> float:
    """E[q (1 - q)] for q = p_i + offset + shift: the Bernoulli (item x seed) variance of one outcome."""
    mean = MEAN_P + offset
    return mean * (1 - mean) - VAR_P - TAU**2


def trained_terms(offset: float) -> power.SeedTerms:
    return power.SeedTerms(TAU**2, interaction(offset))


# The generating model's components, worked out by hand (not estimated from data):
MEAN_U = MEAN_P + OFF_UNSUP
KNOWN = {
    # gap: d_i = p_i + OFF_HARD - x_u,i, Var = Var(x_u) + Var(p) - 2 Cov(p, x_u) = mu_u (1 - mu_u) - Var(p)
    "gap": power.Components(MEAN_U * (1 - MEAN_U) - VAR_P, (trained_terms(OFF_HARD), power.SeedTerms())),
    # hard - easy: the true per-item difference is the constant OFF_HARD: all of it is seeds and interaction
    "hard_minus_easy": power.Components(0.0, (trained_terms(OFF_HARD), trained_terms(OFF_EASY))),
    "acc_hard": power.Components(VAR_P, (trained_terms(OFF_HARD),)),
}


def seeds_of(quantity: str, seeds: int) -> tuple[int, ...]:
    return {"gap": (seeds, 1), "hard_minus_easy": (seeds, seeds), "acc_hard": (seeds,)}[quantity]


def measured_components(quantity: str, unsup: np.ndarray, easy: np.ndarray, hard: np.ndarray) -> power.Components:
    fallback = power.SeedTerms(TAU**2, 0.0)  # one seed shows no seed terms: what the planner assumes instead
    if quantity == "gap":
        return power.difference(hard, unsup, fallbacks=(fallback, power.SeedTerms()))
    if quantity == "hard_minus_easy":
        return power.difference(hard, easy, fallbacks=(fallback, fallback))
    return power.reading(hard, fallback=fallback)


def test_the_exact_bootstrap_variance_is_what_the_bootstrap_resamples():
    """The derivation on given data: the replicates' variance equals ``bootstrap_variance`` (up to the
    Monte Carlo noise of 4,000 replicates, ~2%)."""
    rng = np.random.default_rng(7)
    unsup, easy, hard = dataset(rng, 150, 4)
    reps = metrics.bootstrap_accuracies({"u": unsup, "e": easy, "h": hard}, n_boot=4000, seed=3)
    for matrices, weights, replicates in (([hard], [1.0], reps["h"]),
                                          ([hard, unsup], [1.0, -1.0], reps["h"] - reps["u"]),
                                          ([hard, easy], [1.0, -1.0], reps["h"] - reps["e"])):
        exact = power.bootstrap_variance(matrices, weights)
        assert np.var(replicates) == pytest.approx(exact, rel=0.08)
    # without the seed terms the formula would be far off (the test can fail)
    item_only = np.var(hard.mean(axis=0) - easy.mean(axis=0)) / hard.shape[1]
    assert abs(item_only / np.var(reps["h"] - reps["e"]) - 1) > 0.2


def test_predicted_half_widths_match_the_bootstrap_within_ten_percent():
    """Predicted half-width (from the known components, and from components measured on each
    dataset) against the actual bootstrap's 95% CI half-width, root-mean-square over 40 datasets."""
    errors, naive_errors = {}, []
    for n in (200, 600):
        for seeds in (1, 3, 5):
            rng = np.random.default_rng([n, seeds])
            simulated, from_data = {q: [] for q in KNOWN}, {q: [] for q in KNOWN}
            for k in range(40):
                unsup, easy, hard = dataset(rng, n, seeds)
                summary = metrics.summarize_e2h(unsup, easy, hard, n_boot=1000, seed=k)
                for q in KNOWN:
                    simulated[q].append(50 * (summary[f"{q}_hi"] - summary[f"{q}_lo"]))
                    from_data[q].append(power.predict(measured_components(q, unsup, easy, hard), n,
                                                      seeds_of(q, seeds)))
            for q, components in KNOWN.items():
                rms = math.sqrt(np.mean(np.square(simulated[q])))
                errors[(n, seeds, q, "known")] = power.predict(components, n, seeds_of(q, seeds)) / rms - 1
                errors[(n, seeds, q, "measured")] = float(np.mean(from_data[q])) / rms - 1
                # the textbook sampling variance (item/n + seed/S + interaction/(S n)) is not what the bootstrap gives
                naive = components.item / n + sum(t.seed / s + t.interaction / (s * n) for t, s in
                                                  zip(components.conditions, seeds_of(q, seeds)))
                naive_errors.append(100 * power.Z95 * math.sqrt(naive) / rms - 1)
    worst = max(errors, key=lambda key: abs(errors[key]))
    assert abs(errors[worst]) < 0.10, f"{worst}: {errors[worst]:+.3f}"
    assert max(abs(e) for e in naive_errors) > 0.25  # a wrong formula fails this test


def test_measured_components_are_unbiased_for_the_generating_ones():
    """Estimated from three seeds (where the small-sample corrections matter), averaged over 600
    datasets: the components the data were drawn with (standard errors ~1%, ~4% for the seed term)."""
    rng = np.random.default_rng(5)
    estimates = []
    for _ in range(600):
        unsup, _, hard = dataset(rng, 1000, 3)
        accuracy, gap = power.reading(hard), power.difference(hard, unsup)
        estimates.append([accuracy.item, accuracy.conditions[0].seed, accuracy.conditions[0].interaction, gap.item])
    item, seed, inter, gap_item = np.mean(estimates, axis=0)
    assert item == pytest.approx(VAR_P, rel=0.10)
    assert seed == pytest.approx(TAU**2, rel=0.15)
    assert inter == pytest.approx(interaction(OFF_HARD), rel=0.03)
    assert gap_item == pytest.approx(KNOWN["gap"].item, rel=0.05)


def test_items_needed_is_the_smallest_n_and_grows_as_the_target_shrinks():
    components = power.Components(0.2, (power.SeedTerms(0.03**2, 0.1), power.SeedTerms()))
    previous = 0
    for target in (12.0, 8.0, 5.0, 3.0):
        n = power.items_needed(target, components, (3, 1))
        assert n is not None and n > previous
        assert power.predict(components, n, (3, 1)) <= target < power.predict(components, n - 1, (3, 1))
        previous = n
    floor = power.seed_floor(components, (3, 1))  # 1.96 x sqrt(0.03^2 x 2/9) = 2.77 points
    assert floor == pytest.approx(100 * 1.96 * math.sqrt(0.03**2 * 2 / 9), rel=1e-3)
    assert power.items_needed(floor * 0.99, components, (3, 1)) is None
    assert power.items_needed(floor * 1.01, components, (3, 1)) is not None
    assert power.seeds_needed(floor * 0.99, components, start=4) == 4  # more seeds lower the floor
    assert power.items_needed(5.0, power.Components(0.25, (power.SeedTerms(),)), 1) == math.ceil(
        0.25 / (0.05 / power.Z95) ** 2)  # binomial: n = p (1 - p) (1.96 / 0.05)^2 = 385


def test_would_need_says_how_many_items_or_how_many_seeds():
    assumed = power.assumed_difference((True, False))
    text = power.would_need(5, assumed, 3)
    n = power.items_needed(5, assumed, 3)
    assert text.startswith("would need ≈ ") and "hard test items (3 seeds) for ±5 points" in text
    assert int(text.split("≈ ")[1].split()[0].replace(",", "")) >= n  # rounded up, never down
    noisy = power.Components(0.25, (power.SeedTerms(0.06**2, 0.0),))
    text = power.would_need(5, noisy, 3)
    floor = power.seed_floor(noisy, 3)
    assert text.startswith(f"no number of items: the seed term alone is ±{floor:.1f} points")
    more = power.seeds_needed(5, noisy, 4)
    assert more is not None and more > 3 and f"would need ≥ {more} seeds" in text
    assert power.items_needed(5, noisy, more) is not None and power.items_needed(5, noisy, more - 1) is None
    assert "test problems" in power.would_need(5, assumed, 1, what="test problems")


def test_the_stated_assumption_and_its_overrides():
    assert power.assumed_reading(False).item == pytest.approx(0.25)
    assert power.assumed_difference((True, False)).item == pytest.approx(0.25)  # 25% discordant pairs
    assert power.assumed_difference((True, True)).conditions == (power.SeedTerms(0.02**2), power.SeedTerms(0.02**2))
    tight = power.Assumption(accuracy=0.8, correlation=0.9, seed_sd=0.0)
    assert power.assumed_difference((True, True), tight).item == pytest.approx(2 * 0.16 * 0.1)
    # 100 items, one seed, p = 0.5: the binomial +-9.8 points
    assert power.predict(power.assumed_reading(False), 100, 1) == pytest.approx(100 * 1.96 * 0.05, rel=1e-3)
    # a half-width scales as 1 / sqrt(n) when only items vary
    from_ci = power.from_half_width(7.0, 300)
    assert power.predict(from_ci, 300, 1) == pytest.approx(7.0)
    assert power.predict(from_ci, 1200, 1) == pytest.approx(3.5)


def test_an_unpaired_difference_adds_the_half_widths_in_quadrature():
    """Two readings on different items, bootstrapped independently: the difference's percentile
    interval is about hypot of the two half-widths (what ``claims``' unpaired comparisons use)."""
    rng = np.random.default_rng(11)
    a = (rng.random((3, 300)) < 0.6).astype(float)
    b = (rng.random((1, 500)) < 0.3).astype(float)
    ra = metrics.bootstrap_accuracies({"a": a}, n_boot=4000, seed=1)["a"]
    rb = metrics.bootstrap_accuracies({"b": b}, n_boot=4000, seed=2)["b"]

    def half(reps: np.ndarray) -> float:
        lo, hi = np.percentile(reps, [2.5, 97.5])
        return 50 * (hi - lo)

    assert power.unpaired(3.0, 4.0) == pytest.approx(5.0)
    assert half(ra - rb) == pytest.approx(power.unpaired(half(ra), half(rb)), rel=0.05)
    assert half(ra - rb) > 1.2 * max(half(ra), half(rb))  # not just the wider of the two
    predicted = power.unpaired(power.predict(power.reading(a), 300, 3), power.predict(power.reading(b), 500, 1))
    assert half(ra - rb) == pytest.approx(predicted, rel=0.10)


def test_bad_inputs_are_refused():
    components = power.assumed_difference((True, False))
    with pytest.raises(ValueError, match="one seed count"):
        power.predict(components, 100, (3,))
    with pytest.raises(ValueError, match="positive"):
        power.items_needed(0, components, 3)
    with pytest.raises(ValueError, match="same items"):
        power.difference(np.ones((2, 10)), np.ones((1, 11)))
