"""Linear probes on hidden states (the paper's second training method).

One weight vector scores every choice of a question from its (z-normalised) features; a
softmax across the choices gives probabilities; training minimises the negative
log-likelihood of the correct choice plus an L2 penalty, full batch, with a linearly
decaying learning rate, from a seeded initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class ProbeConfig:
    epochs: int = 100
    lr: float = 0.05
    l2: float = 1e-3


@dataclass
class LinearProbe:
    weight: np.ndarray  # (features,)
    mean: np.ndarray  # training-set statistics used to z-normalise
    std: np.ndarray
    losses: list[float]

    def scores(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [((np.asarray(f, dtype=np.float64) - self.mean) / self.std) @ self.weight for f in features]


def _padded(features: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(f) for f in features)
    x = torch.zeros((len(features), width, len(mean)), dtype=torch.float64)
    mask = torch.zeros((len(features), width), dtype=torch.bool)
    for i, f in enumerate(features):
        x[i, :len(f)] = torch.from_numpy((np.asarray(f, dtype=np.float64) - mean) / std)
        mask[i, :len(f)] = True
    return x, mask


def train_probe(features: Sequence[np.ndarray], labels: Sequence[int], config: ProbeConfig = ProbeConfig(),
                seed: int = 0) -> LinearProbe:
    """Fit a probe on items' choice features (each array: choices x features)."""
    if not features:
        raise ValueError("a probe needs at least one training item")
    stacked = np.concatenate([np.asarray(f, dtype=np.float64) for f in features])
    mean, std = stacked.mean(0), stacked.std(0) + 1e-6
    x, mask = _padded(features, mean, std)
    y = torch.tensor([int(v) for v in labels])
    generator = torch.Generator().manual_seed(int(seed))
    weight = (0.01 * torch.randn(x.shape[-1], generator=generator, dtype=torch.float64)).requires_grad_()
    optimizer = torch.optim.Adam([weight], lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / max(config.epochs, 1))
    losses = []
    for _ in range(config.epochs):
        logits = (x @ weight).masked_fill(~mask, float("-inf"))
        loss = torch.nn.functional.cross_entropy(logits, y) + config.l2 * weight.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return LinearProbe(weight.detach().numpy(), mean, std, losses)
