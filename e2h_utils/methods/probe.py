"""Linear probes on hidden states (the paper's second training method), as the authors fit them.

The authors' estimator (``models/probes.py`` at ``ad8358e``: ``MultipleChoiceClassifier``,
``Probe.fit``, ``Probe.loss``, ``Probe.safe_fit``; defaults from ``main.py``):

- one weight vector, ``nn.Linear(d, 1, bias=False)`` with PyTorch's default initialisation
  (uniform in +-1/sqrt(d)), scores every choice of a question from its z-normalised features
  (mean and unbiased standard deviation over the training items' choices); a softmax across the
  choices gives probabilities;
- loss: negative log-likelihood of the correct choice plus ``l2 * ||w||_2`` (the norm itself,
  not its square; ``--l2_reg 1``);
- plain SGD at lr 0.05, full batch, 100 epochs, the learning rate decaying linearly to 10% of
  its start (``--probing_lr_decay 10-percent``), the gradient norm clipped at 1.0
  (``--max_grad_norm``);
- if the fit ends with NaN weights, refit with the clip divided by 4 and the penalty times 4
  (``safe_fit``, at most 6 more tries).

``ProbeConfig`` holds these settings; its defaults are the authors'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from e2h_utils.methods import bounds
from e2h_utils.methods.bounds import bounded

PROBE_VERSION = 2  # 2: the authors' estimator (SGD, unsquared L2, clipping, decay to 10%)


@dataclass(frozen=True)
class ProbeConfig:
    epochs: int = bounded(100, 1, 10_000, integer=True)  # --learned_probe_epochs (at most 100x theirs)
    lr: float = bounded(0.05, 0, open_low=True)  # Probe.fit: lr = 5e-2 for a linear probe
    l2: float = bounded(1.0, 0)  # --l2_reg: weight of ||w||_2 (unsquared)
    max_grad_norm: float = bounded(1.0, 0, open_low=True)  # --max_grad_norm
    # --probing_lr_decay 10-percent: the learning rate decays to 10%
    lr_floor: float = bounded(0.1, 0, 1, open_low=True)
    # safe_fit(patience=5): refits while counter <= 5 (ceilings: far above theirs, so a typo of 10^9 is refused)
    max_refits: int = bounded(6, 0, 100, integer=True)

    def __post_init__(self) -> None:
        bounds.check(self)


@dataclass
class LinearProbe:
    weight: np.ndarray  # (features,)
    mean: np.ndarray  # training-set statistics used to z-normalise
    std: np.ndarray
    losses: list[float]
    refits: int = 0

    def scores(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [((np.asarray(f, dtype=np.float32) - self.mean) / self.std) @ self.weight for f in features]


def normalization(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased standard deviation over every choice of every training item (the
    authors' ``set_normalization_params``: ``torch.std`` with Bessel's correction). A constant
    feature gets a standard deviation of 1 (the authors' would divide by zero)."""
    stacked = np.concatenate([np.asarray(f, dtype=np.float32) for f in features])
    mean = stacked.mean(0)
    std = stacked.std(0, ddof=1) if len(stacked) > 1 else np.ones_like(mean)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def _padded(features: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(f) for f in features)
    x = torch.zeros((len(features), width, len(mean)), dtype=torch.float32)
    mask = torch.zeros((len(features), width), dtype=torch.bool)
    for i, f in enumerate(features):
        x[i, :len(f)] = torch.from_numpy((np.asarray(f, dtype=np.float32) - mean) / std)
        mask[i, :len(f)] = True
    return x, mask


def probe_loss(weight: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """Mean NLL of the correct choice (softmax over the item's choices) + ``l2 * ||weight||_2``."""
    logits = (x @ weight).masked_fill(~mask, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, y) + l2 * torch.linalg.vector_norm(weight)


def lr_factor(step: int, total: int, floor: float) -> float:
    """transformers' linear schedule over ``total / (1 - floor)`` steps: 1 at the start, ``floor``
    after ``total`` steps (the authors' "10-percent" decay)."""
    return max(0.0, 1.0 - (1.0 - floor) * step / max(total, 1))


def _fit(x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, config: ProbeConfig, seed: int,
         l2: float, max_grad_norm: float) -> tuple[torch.Tensor, list[float]]:
    generator = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / np.sqrt(x.shape[-1])  # nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5))
    weight = ((torch.rand(x.shape[-1], generator=generator) * 2 - 1) * bound).requires_grad_()
    optimizer = torch.optim.SGD([weight], lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda step: lr_factor(step, config.epochs, config.lr_floor))
    losses = []
    for _ in range(config.epochs):
        loss = probe_loss(weight, x, mask, y, l2)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([weight], max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return weight.detach(), losses


def train_probe(features: Sequence[np.ndarray], labels: Sequence[int], config: ProbeConfig = ProbeConfig(),
                seed: int = 0) -> LinearProbe:
    """Fit a probe on items' choice features (each array: choices x features)."""
    if not features:
        raise ValueError("a probe needs at least one training item")
    mean, std = normalization(features)
    x, mask = _padded(features, mean, std)
    y = torch.tensor([int(v) for v in labels])
    l2, clip = config.l2, config.max_grad_norm
    for refit in range(config.max_refits + 1):
        weight, losses = _fit(x, mask, y, config, seed, l2, clip)
        if torch.isfinite(weight).all():
            break
        clip, l2 = clip / 4, l2 * 4  # safe_fit: cut the clip, raise the penalty
    return LinearProbe(weight.numpy(), mean, std, losses, refits=refit)


# --- a binary probe: is this (problem, solution) correct? (the easy-to-hard evaluators) -------------

@dataclass
class BinaryProbe:
    """A logistic probe: P(correct) = sigmoid(w . z + b) on z-normalised features."""

    weight: np.ndarray
    bias: float
    mean: np.ndarray
    std: np.ndarray
    losses: list[float]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """P(correct) of every row of ``features`` (samples x features)."""
        z = (np.asarray(features, dtype=np.float32) - self.mean) / self.std
        return 1.0 / (1.0 + np.exp(-(z @ self.weight + self.bias)))


def train_binary_probe(features: np.ndarray, labels: Sequence[bool], config: ProbeConfig = ProbeConfig(),
                       seed: int = 0) -> BinaryProbe:
    """The probe recipe above (SGD, ``lr`` decaying to ``lr_floor``, ``epochs`` full-batch steps,
    ``l2 * ||w||_2``, gradient clipped) for a yes/no target, with an unpenalised bias: an outcome
    reward model on hidden states. Labels of one class only still give a probe (its bias learns it)."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("a binary probe needs a (samples x features) array with at least one sample")
    mean = x.mean(0)
    std = x.std(0, ddof=1) if len(x) > 1 else np.ones_like(mean)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    z = torch.from_numpy((x - mean) / std)
    y = torch.tensor([float(bool(v)) for v in labels])
    generator = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / np.sqrt(z.shape[1])
    weight = ((torch.rand(z.shape[1], generator=generator) * 2 - 1) * bound).requires_grad_()
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight, bias], lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda step: lr_factor(step, config.epochs, config.lr_floor))
    losses = []
    for _ in range(config.epochs):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ weight + bias, y) \
            + config.l2 * torch.linalg.vector_norm(weight)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([weight, bias], config.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return BinaryProbe(weight.detach().numpy(), float(bias.item()), mean.astype(np.float32), std, losses)
