"""The paper's metric (Supervision Gap Recovered) and a paired bootstrap for its uncertainty.

All accuracies here are on the same HARD test items, for three models:

- ``unsupervised``: the zero-shot model (no training data, the floor),
- ``easy``: the model trained on easy data,
- ``hard``: the model trained on hard data (the oracle, the ceiling).

SGR = (easy - unsupervised) / (hard - unsupervised). It is only readable when the
oracle gap (hard - unsupervised) is clearly above zero; otherwise it is a ratio of
noise, which :func:`summarize_e2h` flags with ``sgr_stable``.

The bootstrap is paired over test items (every condition sees the same resampled items
in a replicate) and resamples seeds independently per condition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike

# Replicates are computed in chunks so that the (chunk, n_items) weight matrix stays small.
_CHUNK_CELLS = 4_000_000


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise with nan where ``den == 0``; never warns."""
    shape = np.broadcast_shapes(num.shape, den.shape)
    out = np.full(shape, np.nan, dtype=float)
    with np.errstate(all="ignore"):
        np.divide(num, den, out=out, where=np.broadcast_to(den != 0, shape))
    return out


def _scalar_or_array(out: np.ndarray) -> float | np.ndarray:
    return float(out) if out.ndim == 0 else out


def sgr(unsupervised: ArrayLike, easy: ArrayLike, hard: ArrayLike) -> float | np.ndarray:
    """Supervision Gap Recovered: ``(easy - unsupervised) / (hard - unsupervised)``.

    Scalars give a float, arrays an array (broadcast elementwise). The result is nan
    wherever ``hard == unsupervised`` exactly (zero denominator); no warning is printed.
    """
    u, e, h = (np.asarray(x, dtype=float) for x in (unsupervised, easy, hard))
    return _scalar_or_array(_ratio(e - u, h - u))


def sgr_clipped(unsupervised: ArrayLike, easy: ArrayLike, hard: ArrayLike) -> float | np.ndarray:
    """SGR clipped to [0, 1]: a reading aid, not a metric of either paper (Burns et al.'s PGR,
    the weak-to-strong analogue, is the same ratio unclipped).

    Easy at or above the ceiling (``hard``) counts as full recovery (1), easy below the
    floor (``unsupervised``) as none (0); nan stays nan. It equals SGR except in rows where
    easy >= hard or easy < unsupervised, so the notebooks report it only there
    (``clipped_differs`` in :func:`summarize_e2h`).
    """
    out = np.clip(np.asarray(sgr(unsupervised, easy, hard), dtype=float), 0.0, 1.0)
    return _scalar_or_array(out)


def _validate(correct: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check shapes of ``correct[seed, item]`` arrays and return them as float arrays."""
    if len(correct) == 0:
        raise ValueError("bootstrap needs at least one condition, got an empty mapping")
    arrays: dict[str, np.ndarray] = {}
    n_items: int | None = None
    first = ""
    for name, values in correct.items():
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 2:
            raise ValueError(
                f"condition {name!r}: expected a 2-D array correct[seed, item], got shape "
                f"{arr.shape} (wrap a single seed as arr[None, :])"
            )
        if arr.shape[0] < 1:
            raise ValueError(f"condition {name!r}: needs at least one seed, got shape {arr.shape}")
        if arr.shape[1] < 1:
            raise ValueError(f"condition {name!r}: needs at least one item, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"condition {name!r}: contains nan or inf")
        if n_items is None:
            n_items, first = arr.shape[1], name
        elif arr.shape[1] != n_items:
            raise ValueError(
                f"conditions must share the same test items: {first!r} has {n_items} items, "
                f"{name!r} has {arr.shape[1]}"
            )
        arrays[name] = arr
    return arrays


def _counts(rng: np.random.Generator, n_rows: int, n: int) -> np.ndarray:
    """How often each of ``n`` indices is drawn, for ``n_rows`` draws of ``n`` with replacement."""
    idx = rng.integers(0, n, size=(n_rows, n))
    flat = idx + (np.arange(n_rows)[:, None] * n)
    return np.bincount(flat.ravel(), minlength=n_rows * n).reshape(n_rows, n).astype(float)


def bootstrap_accuracies(
    correct: Mapping[str, np.ndarray], n_boot: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Paired bootstrap replicates of each condition's accuracy.

    ``correct`` maps a condition name to ``correct[seed, item]`` (0/1 or probabilities),
    with the same test items in the same column order for every condition; the number of
    seeds may differ (zero-shot has one). Each replicate draws item indices with
    replacement once and uses them for every condition (paired), and draws seed indices
    with replacement independently per condition; its accuracy for a condition is the mean
    over drawn seeds x drawn items. Returns ``{name: array of shape (n_boot,)}``.
    Deterministic given ``seed``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    arrays = _validate(correct)
    n_items = next(iter(arrays.values())).shape[1]
    rng = np.random.default_rng(seed)
    out = {name: np.empty(n_boot, dtype=float) for name in arrays}
    chunk = max(1, min(n_boot, _CHUNK_CELLS // n_items))
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        item_w = _counts(rng, rows, n_items)  # (rows, n_items), shared by all conditions
        for name, arr in arrays.items():
            n_seeds = arr.shape[0]
            seed_w = _counts(rng, rows, n_seeds)  # (rows, n_seeds), per condition
            per_seed = item_w @ arr.T  # (rows, n_seeds): sum over drawn items, per seed
            total = np.einsum("rs,rs->r", seed_w, per_seed)
            out[name][start : start + rows] = total / (n_seeds * n_items)
    return out


@dataclass(frozen=True)
class Estimate:
    """A point estimate (on the full data) with a percentile confidence interval."""

    point: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.point:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def estimate_from_replicates(point: float, replicates: ArrayLike, alpha: float = 0.05) -> Estimate:
    """Percentile ``1 - alpha`` interval of ``replicates`` around ``point``.

    nan replicates are ignored; if all are nan (or there are none), lo and hi are nan.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    reps = np.asarray(replicates, dtype=float).ravel()
    reps = reps[~np.isnan(reps)]
    if reps.size == 0:
        return Estimate(float(point), math.nan, math.nan)
    lo, hi = np.nanpercentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Estimate(float(point), float(lo), float(hi))


def _add(summary: dict[str, object], key: str, est: Estimate) -> None:
    summary[key] = est.point
    summary[f"{key}_lo"] = est.lo
    summary[f"{key}_hi"] = est.hi


def summarize_e2h(
    unsupervised: np.ndarray,
    easy: np.ndarray,
    hard: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_gap: float = 0.0,
) -> dict[str, object]:
    """Accuracies, oracle gap, SGR and clipped SGR with paired-bootstrap CIs, as one flat dict.

    Each argument is ``correct[seed, item]`` on the same hard test items. Point estimates
    use the full data; ``*_lo``/``*_hi`` are percentile ``1 - alpha`` intervals from
    :func:`bootstrap_accuracies` (SGR replicates are computed per replicate from that
    replicate's three accuracies, nan where its denominator is 0).

    ``sgr_stable`` is True only when the gap's CI lower bound exceeds ``min_gap`` (the
    oracle gap is clearly above zero); otherwise SGR is a ratio of noise.
    ``clipped_differs`` is True when the point easy >= hard or easy < unsupervised.
    """
    arrays = _validate({"unsupervised": unsupervised, "easy": easy, "hard": hard})
    reps = bootstrap_accuracies(arrays, n_boot=n_boot, seed=seed)
    point = {name: float(arr.mean()) for name, arr in arrays.items()}
    u, e, h = point["unsupervised"], point["easy"], point["hard"]
    ru, re, rh = reps["unsupervised"], reps["easy"], reps["hard"]

    def est(p: float, r: np.ndarray) -> Estimate:
        return estimate_from_replicates(p, r, alpha=alpha)

    summary: dict[str, object] = {}
    _add(summary, "acc_unsupervised", est(u, ru))
    _add(summary, "acc_easy", est(e, re))
    _add(summary, "acc_hard", est(h, rh))
    gap = est(h - u, rh - ru)
    _add(summary, "gap", gap)
    _add(summary, "easy_gain", est(e - u, re - ru))
    _add(summary, "hard_minus_easy", est(h - e, rh - re))
    _add(summary, "sgr", est(float(sgr(u, e, h)), np.asarray(sgr(ru, re, rh))))
    _add(summary, "sgr_clipped", est(float(sgr_clipped(u, e, h)), np.asarray(sgr_clipped(ru, re, rh))))
    summary["sgr_stable"] = bool(not math.isnan(gap.lo) and gap.lo > min_gap)
    summary["clipped_differs"] = bool(e >= h or e < u)
    summary["n_items"] = int(arrays["hard"].shape[1])
    summary["n_seeds_unsupervised"] = int(arrays["unsupervised"].shape[0])
    summary["n_seeds_easy"] = int(arrays["easy"].shape[0])
    summary["n_seeds_hard"] = int(arrays["hard"].shape[0])
    return summary
