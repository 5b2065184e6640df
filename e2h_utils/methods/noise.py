"""Label noise for the RQ3 label-noise experiments.

A training example's label is noised with probability ``p``: it is then resampled uniformly
over the example's choices (so it may land on the correct one again, as in the paper). The
draw is seeded by the run's seed and salt, and made after the examples are drawn, so every
noise rate trains on the same examples and a higher rate noises a superset of the labels
noised at a lower one (one uniform number per example decides whether it is noised).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

FLIPPED = "label_noised"  # column added to the examples: True where the label changed


def corrupt_labels(examples: pd.DataFrame, p: float, seed: int, salt: str = "") -> pd.DataFrame:
    """A copy of ``examples`` whose ``label`` (and ``answer``) are noised at rate ``p``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], not {p}")
    rng = np.random.default_rng([int(seed), zlib.crc32(f"label-noise/{salt}".encode())])
    n = len(examples)
    decide = rng.random(n)  # noised where decide < p: nested across rates
    resample = rng.random(n)  # where a noised label lands, uniform over the choices
    out = examples.copy()
    labels = out["label"].astype(int).to_numpy().copy()
    choices = list(out["choices"])
    for i in range(n):
        if decide[i] < p:
            labels[i] = int(resample[i] * len(choices[i]))
    out[FLIPPED] = labels != out["label"].astype(int).to_numpy()
    out["label"] = labels
    if "answer" in out.columns:
        out["answer"] = [str(c[int(k)]) for c, k in zip(choices, labels)]
    return out


def noise_rates(p: float, hard_multiplier: float = 2.0) -> dict[str, float]:
    """The paper's pairing: easy data at rate ``p``, hard data at ``hard_multiplier * p``. A hard rate
    above 1 is an error (it was once capped silently, which made the pairing no longer ``multiplier x p``)."""
    hard = hard_multiplier * p
    if hard > 1.0 + 1e-12:
        raise ValueError(f"noise rate {p:g} x hard_multiplier {hard_multiplier:g} = {hard:g} > 1 for hard data: "
                         f"keep every rate <= {1 / hard_multiplier:g} (1 / hard_multiplier), or lower hard_multiplier")
    return {"easy": float(p), "hard": float(min(1.0, hard))}
