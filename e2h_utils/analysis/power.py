"""Statistical power: how wide the result table's 95% CIs will be for n test items and S seeds.

The result table's intervals (``metrics.bootstrap_accuracies``) resample test items with replacement
once per replicate (shared by every condition: paired) and seeds with replacement independently per
condition. For ``correct[seed, item]`` matrices ``X_c`` (``S_c`` seeds, the same ``n`` items) and a
quantity ``D = sum_c l_c * mean(X_c)`` (an accuracy: one condition, ``l = 1``; a paired difference
such as the gap: ``l = (+1, -1)``), write each replicate's weights as ``1 + u`` (items, multinomial:
``Cov(u) = I - J/n``) and ``1 + v_c`` (seeds, ``I - J/S_c``). The replicate is then exactly

    D* = D + (1/n) sum_i u_i d_i + sum_c l_c [(1/S_c) sum_s v_cs a_cs + (1/(S_c n)) sum_si v_cs u_i r_csi]

with ``d_i = sum_c l_c m_ci`` the per-item difference of the seed-averaged conditions (``m_ci``), ``a_cs``
a seed's accuracy and ``r_csi`` the double-centred residual. The three terms are uncorrelated, so the
bootstrap variance on given data is (population variances, divisor = count, as the bootstrap uses)

    Var* = Var_i(d) / n + sum_c [Var_s(a_c) / S_c + mean(r_c^2) / (S_c n)]      (``bootstrap_variance``)

Over datasets drawn from a model with an item effect (variance ``item``, of ``d``'s true per-item
value), a seed effect (``seed_c``, of a seed's accuracy) and an item x seed interaction (``inter_c``,
Bernoulli noise included), the expectations ``E Var_i(d) = item + sum_c inter_c / S_c``,
``E Var_s(a_c) = (1 - 1/S_c)(seed_c + inter_c / n)`` and ``E mean(r_c^2) = (1 - 1/S_c) inter_c`` give,
to first order in 1/n (n >= ~50),

    Var(n, S) = [item + sum_c inter_c (3 - 2/S_c) / S_c] / n + sum_c seed_c (S_c - 1) / S_c^2   (``variance``)

Two consequences worth knowing: the bootstrap shows only (S - 1)/S of the seed-to-seed variation
(with one seed none of it, so a one-seed trained run's CI is too narrow by that much), and it counts
the item x seed term up to three times (McCullagh 2000: the two-way bootstrap over-counts the
interaction). The percentile interval of these near-normal replicates is about ``mean +- 1.96 sd``, so
the half-width is ``1.96 sqrt(Var)``; ``tests/test_power.py`` checks it against the actual bootstrap
within 10%.

An unpaired difference of two readings (``claims._unpaired``) has half-width ``hypot`` of the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

Z95 = 1.959963984540054  # the normal 97.5% quantile: percentile CIs of near-normal replicates
MAX_SEEDS = 100  # the most seeds ``seeds_needed`` looks at


@dataclass(frozen=True)
class SeedTerms:
    """One condition's seed components: ``seed``, the variance of a seed's accuracy beyond item noise
    (between-seed variance), and ``interaction``, the item x seed variance of a single 0/1 outcome
    (Bernoulli noise included). A deterministic (untrained) run has neither."""

    seed: float = 0.0
    interaction: float = 0.0


@dataclass(frozen=True)
class Components:
    """The variance components of one quantity: ``item``, the variance over items of its true
    per-item value (an item's accuracy, or a paired difference's), and one ``SeedTerms`` per
    condition in it; ``source`` says where they come from (``"assumed"`` or ``"measured: ..."``)."""

    item: float
    conditions: tuple[SeedTerms, ...]
    source: str = "assumed"


@dataclass(frozen=True)
class Assumption:
    """What is assumed when no item-level results are stored (every value may be overridden).

    - ``accuracy`` 0.5 per item: the worst case of the binomial variance p(1 - p) = 0.25;
    - ``correlation`` 0.5 between two conditions' outcomes on the same item (the same model on the
      same question): discordant pairs 2 p (1 - p)(1 - rho) = 25%, so a paired difference's item
      variance is also 0.25. Measured pairs are usually more correlated (a narrower gap CI);
    - ``seed_sd`` 2 points: the sd of a trained run's accuracy across seeds (example draws, probe
      initialisation) beyond item noise; untrained runs are deterministic (0);
    - no item x seed interaction: seeds repeat each item's outcome, the conservative choice (averaging
      seeds then does not shrink the item term).
    """

    accuracy: float = 0.5
    correlation: float = 0.5
    seed_sd: float = 0.02

    def seed_terms(self, trained: bool) -> SeedTerms:
        return SeedTerms(self.seed_sd**2 if trained else 0.0, 0.0)


ASSUMED = Assumption()


def assumed_reading(trained: bool, assumption: Assumption = ASSUMED) -> Components:
    """An accuracy's components under ``assumption`` (``trained``: the run has seeds that differ)."""
    p = assumption.accuracy
    return Components(p * (1 - p), (assumption.seed_terms(trained),), "assumed")


def assumed_difference(trained: tuple[bool, bool], assumption: Assumption = ASSUMED) -> Components:
    """A paired difference's components (two conditions on the same items) under ``assumption``."""
    p = assumption.accuracy
    item = 2 * p * (1 - p) * (1 - assumption.correlation)
    return Components(item, tuple(assumption.seed_terms(t) for t in trained), "assumed")


# --- measured components -----------------------------------------------------------------------

def _matrix(correct: ArrayLike) -> np.ndarray:
    arr = np.asarray(correct, dtype=float)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ValueError(f"expected correct[seed, item] with at least two items, got shape {arr.shape}")
    return arr


def seed_terms(correct: ArrayLike, fallback: SeedTerms = SeedTerms()) -> SeedTerms:
    """Unbiased (two-way ANOVA) estimates of one condition's seed terms from ``correct[seed, item]``;
    one seed cannot show them, so ``fallback`` is used (e.g. ``ASSUMED.seed_terms(True)`` for a
    trained run stored with one seed)."""
    x = _matrix(correct)
    s, n = x.shape
    if s < 2:
        return fallback
    per_seed = x.mean(axis=1)
    residual = x - per_seed[:, None] - x.mean(axis=0)[None, :] + x.mean()
    interaction = float(np.mean(residual**2)) / ((1 - 1 / s) * (1 - 1 / n))
    seed = max(0.0, float(per_seed.var()) * s / (s - 1) - interaction / n)
    return SeedTerms(seed, interaction)


def measured(matrices: Sequence[ArrayLike], weights: Sequence[float], source: str = "measured",
             fallbacks: Sequence[SeedTerms] | None = None) -> Components:
    """The components of ``sum_c weights[c] * accuracy_c`` from matrices on the same items (columns)."""
    arrays = [_matrix(m) for m in matrices]
    if len({a.shape[1] for a in arrays}) != 1 or len(weights) != len(arrays):
        raise ValueError("one weight per matrix, and every matrix on the same items")
    fallbacks = fallbacks or [SeedTerms()] * len(arrays)
    terms = tuple(seed_terms(a, f) for a, f in zip(arrays, fallbacks))
    d = sum(w * a.mean(axis=0) for w, a in zip(weights, arrays))
    n = arrays[0].shape[1]
    noise = sum(w**2 * t.interaction / a.shape[0] for w, t, a in zip(weights, terms, arrays))
    return Components(max(0.0, float(np.var(d)) * n / (n - 1) - noise), terms, source)


def reading(correct: ArrayLike, source: str = "measured", fallback: SeedTerms = SeedTerms()) -> Components:
    """An accuracy's components from its ``correct[seed, item]``."""
    return measured([correct], [1.0], source, [fallback])


def difference(a: ArrayLike, b: ArrayLike, source: str = "measured",
               fallbacks: tuple[SeedTerms, SeedTerms] = (SeedTerms(), SeedTerms())) -> Components:
    """The components of the paired difference ``a - b`` (e.g. hard - unsupervised: the gap)."""
    return measured([a, b], [1.0, -1.0], source, fallbacks)


def from_half_width(half_width: float, n_items: int, conditions: int = 1, source: str = "from a CI") -> Components:
    """Components that reproduce a reported half-width (points) on ``n_items``, all of it item
    variance: what is left when only a result table's interval is at hand (seed terms unknown)."""
    return Components((half_width / 100 / Z95) ** 2 * n_items, (SeedTerms(),) * conditions, source)


def bootstrap_variance(matrices: Sequence[ArrayLike], weights: Sequence[float]) -> float:
    """The exact variance of the bootstrap's replicates of ``sum_c weights[c] * accuracy_c`` on these
    data (the module docstring's ``Var*``); the bootstrap estimates it with Monte Carlo noise."""
    arrays = [_matrix(m) for m in matrices]
    d = sum(w * a.mean(axis=0) for w, a in zip(weights, arrays))
    total = float(np.var(d)) / arrays[0].shape[1]
    for w, a in zip(weights, arrays):
        s, n = a.shape
        residual = a - a.mean(axis=1)[:, None] - a.mean(axis=0)[None, :] + a.mean()
        total += w**2 * (float(a.mean(axis=1).var()) / s + float(np.mean(residual**2)) / (s * n))
    return total


# --- prediction --------------------------------------------------------------------------------

def _seeds(components: Components, seeds: int | Sequence[int]) -> tuple[int, ...]:
    out = (int(seeds),) * len(components.conditions) if isinstance(seeds, (int, np.integer)) else tuple(seeds)
    if len(out) != len(components.conditions) or min(out, default=1) < 1:
        raise ValueError(f"need one seed count >= 1 per condition ({len(components.conditions)}), got {seeds}")
    return out


def _terms(components: Components, seeds: int | Sequence[int]) -> tuple[float, float]:
    """(A, B) with Var(n) = A / n + B: the item part and the seed part that no item count removes."""
    counts = _seeds(components, seeds)
    a = components.item + sum(t.interaction * (3 - 2 / s) / s for t, s in zip(components.conditions, counts))
    b = sum(t.seed * (s - 1) / s**2 for t, s in zip(components.conditions, counts))
    return a, b


def variance(components: Components, n_items: int, seeds: int | Sequence[int]) -> float:
    """The expected variance of the bootstrap's replicates for ``n_items`` test items and ``seeds``
    per condition (an int: every condition; untrained conditions have no seed terms, so 1 or more
    seeds give the same)."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    a, b = _terms(components, seeds)
    return a / n_items + b


def predict(components: Components, n_items: int, seeds: int | Sequence[int]) -> float:
    """The predicted 95% CI half-width in points (x100) of the result table's interval."""
    return 100 * Z95 * math.sqrt(variance(components, n_items, seeds))


def seed_floor(components: Components, seeds: int | Sequence[int]) -> float:
    """The half-width (points) that remains with infinitely many items: the seed term alone."""
    return 100 * Z95 * math.sqrt(_terms(components, seeds)[1])


def items_needed(target: float, components: Components, seeds: int | Sequence[int]) -> int | None:
    """The fewest test items whose predicted half-width is at most ``target`` points, or None when
    the seed term alone reaches it (more seeds are needed, ``seeds_needed``)."""
    if target <= 0:
        raise ValueError(f"target half-width must be positive, got {target}")
    a, b = _terms(components, seeds)
    room = (target / 100 / Z95) ** 2 - b
    if room <= 0:
        return None
    return max(1, math.ceil(a / room * (1 - 1e-12)))


def seeds_needed(target: float, components: Components, start: int = 1) -> int | None:
    """The fewest seeds (at least ``start``, the same for every trained condition) with which some
    number of items reaches ``target`` points; None when none up to ``MAX_SEEDS`` does."""
    return next((s for s in range(max(1, start), MAX_SEEDS + 1)
                 if items_needed(target, components, s) is not None), None)


def about(n: int) -> int:
    """``n`` rounded up to two significant digits (640, not 637: a plan, not a measurement)."""
    step = 10 ** max(0, len(str(n)) - 2)
    return -(-n // step) * step


def would_need(target: float, components: Components, seeds: int, what: str = "hard test items") -> str:
    """One sentence for an inconclusive verdict: how many ``what`` reach ±``target`` points with
    ``seeds`` seeds, or, when no number does, the seed term and the seeds that would."""
    n = items_needed(target, components, seeds)
    if n is not None:
        return f"would need ≈ {about(n):,} {what} ({seeds} seed{'s' if seeds != 1 else ''}) for ±{target:g} points"
    more = seeds_needed(target, components, seeds + 1)
    floor = seed_floor(components, seeds)
    text = f"no number of items: the seed term alone is ±{floor:.1f} points"
    if more is None:
        return text + f"; not even {MAX_SEEDS} seeds reach ±{target:g} points"
    items = items_needed(target, components, more)
    return text + f"; would need ≥ {more} seeds (and ≈ {about(items or 1):,} {what}) for ±{target:g} points"


def unpaired(*half_widths: float) -> float:
    """Half-width of an unpaired difference of independent estimates: their half-widths in quadrature."""
    return float(math.hypot(*half_widths))
