"""e2h_utils.methods.probe: the authors' linear probe, checked against a hand computation of one step and
on synthetic, separable choice features."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from e2h_utils.methods import probe as probe_module
from e2h_utils.methods.probe import LinearProbe, ProbeConfig, lr_factor, normalization, train_probe

DIM = 16
MARGIN = 6.0  # the correct choice's feature 0 is raised this much over unit noise
OFFSET = 1.0  # scale of a per-item offset shared by the item's choices


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def synthetic(n_items: int, seed: int, n_choices=4, shift: float = 0.0, margin: float = MARGIN,
              offset: float = OFFSET):
    """Per item: Gaussian noise features, the correct choice +MARGIN on feature 0, plus a random
    per-item offset (so feature 0 alone, not its level, tells the answer)."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for i in range(n_items):
        k = n_choices if isinstance(n_choices, int) else n_choices[i % len(n_choices)]
        f = rng.normal(size=(k, DIM)) + rng.normal(scale=offset, size=(1, DIM)) + shift
        y = int(rng.integers(k))
        f[y, 0] += margin
        features.append(f)
        labels.append(y)
    return features, labels


def accuracy(probe: LinearProbe, features, labels) -> float:
    return float(np.mean([int(np.argmax(s)) == y for s, y in zip(probe.scores(features), labels)]))


def test_probe_learns_separable_task():
    features, labels = synthetic(200, seed=0)
    probe = train_probe(features[:150], labels[:150], ProbeConfig(), seed=0)
    assert probe.weight.shape == (DIM,)
    assert len(probe.losses) == ProbeConfig().epochs
    assert probe.losses[-1] < probe.losses[0]
    assert accuracy(probe, features[150:], labels[150:]) >= 0.9
    scores = probe.scores(features[150:])
    assert len(scores) == 50 and all(s.shape == (4,) for s in scores)
    # feature 0 carries the signal: its weight dominates
    assert np.argmax(np.abs(probe.weight)) == 0


def test_probe_is_seeded():
    features, labels = synthetic(120, seed=1)
    a = train_probe(features[:100], labels[:100], seed=3)
    b = train_probe(features[:100], labels[:100], seed=3)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert a.losses == b.losses
    c = train_probe(features[:100], labels[:100], seed=4)
    assert not np.array_equal(a.weight, c.weight)
    # the initialisation differs: the first loss (before any update) is not the same
    assert a.losses[0] != c.losses[0]
    for probe in (a, c):
        assert accuracy(probe, features[100:], labels[100:]) >= 0.85


def test_probe_mixed_choice_counts():
    features, labels = synthetic(200, seed=2, n_choices=(2, 4))
    probe = train_probe(features[:150], labels[:150], seed=0)
    assert probe.losses[-1] < probe.losses[0]
    scores = probe.scores(features[150:])
    assert [len(s) for s in scores] == [len(f) for f in features[150:]]
    assert accuracy(probe, features[150:], labels[150:]) >= 0.9
    assert all(np.isfinite(probe.losses))


def test_probe_padding_never_wins():
    """Two-choice items whose real choices all score very negatively: the padded slots (zeros
    after normalisation would score 0) must still never be chosen, so training is unaffected."""
    from e2h_utils.methods.probe import _padded

    features, labels = synthetic(40, seed=5, n_choices=(2, 4))
    probe = train_probe(features, labels, ProbeConfig(epochs=5), seed=0)
    x, mask = _padded(features, probe.mean, probe.std)
    assert x.shape == (40, 4, DIM)
    assert mask.sum().item() == sum(len(f) for f in features)
    assert not x[~mask].any()
    # a model whose loss depends on padded slots would not match a per-item computation
    w = torch.from_numpy(probe.weight).float()
    logits = (x @ w).masked_fill(~mask, float("-inf"))
    per_item = [torch.log_softmax(torch.from_numpy(((np.asarray(f) - probe.mean) / probe.std).astype(np.float32)) @ w,
                                  -1)[y]
                for f, y in zip(features, labels)]
    batched = logits.log_softmax(-1)[torch.arange(40), torch.tensor(labels)]
    torch.testing.assert_close(batched, torch.stack(per_item))
    assert (logits.argmax(-1) < torch.tensor([len(f) for f in features])).all()


def test_probe_uses_training_statistics():
    features, labels = synthetic(100, seed=6, shift=5.0)
    probe = train_probe(features, labels, ProbeConfig(epochs=10), seed=0)
    stacked = np.concatenate(features)
    np.testing.assert_allclose(probe.mean, stacked.mean(0), rtol=1e-5)
    np.testing.assert_allclose(probe.std, stacked.std(0, ddof=1), rtol=1e-5)  # torch.std: unbiased
    test, _ = synthetic(10, seed=7, shift=-4.0)
    for f, s in zip(test, probe.scores(test)):
        np.testing.assert_allclose(s, ((f - probe.mean) / probe.std) @ probe.weight, rtol=1e-5)
        # not the test items' own statistics
        own = ((f - f.mean(0)) / (f.std(0) + 1e-6)) @ probe.weight
        assert not np.allclose(s, own)


def test_probe_rejects_empty_training_set():
    with pytest.raises(ValueError):
        train_probe([], [])


# --- the authors' estimator -------------------------------------------------------------------


def test_config_defaults_are_the_authors():
    config = ProbeConfig()
    assert (config.epochs, config.lr, config.l2, config.max_grad_norm, config.lr_floor) == (100, 0.05, 1.0, 1.0, 0.1)


def test_lr_decays_linearly_to_ten_percent():
    assert lr_factor(0, 100, 0.1) == 1.0
    assert lr_factor(50, 100, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 100, 0.1) == pytest.approx(0.1)  # transformers' linear over 100 / 0.9 steps
    assert lr_factor(100, 100, 0.0) == 0.0


def test_one_step_matches_a_hand_computation():
    """SGD at lr 0.05 on NLL + 1.0 * ||w||_2 (unsquared), the gradient clipped to norm 1, from
    nn.Linear's uniform(+-1/sqrt(d)) initialisation."""
    features, labels = synthetic(30, seed=9)
    probe = train_probe(features, labels, ProbeConfig(epochs=1), seed=7)
    mean, std = normalization(features)
    generator = torch.Generator().manual_seed(7)
    w0 = ((torch.rand(DIM, generator=generator) * 2 - 1) / np.sqrt(DIM)).double().numpy()
    grad = np.zeros(DIM)
    loss = 0.0
    for f, y in zip(features, labels):
        x = ((np.asarray(f, dtype=np.float32) - mean) / std).astype(np.float64)
        z = x @ w0
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        loss -= np.log(p[y]) / len(features)
        grad += (p - np.eye(len(p))[y]) @ x / len(features)
    loss += np.linalg.norm(w0)
    grad += w0 / np.linalg.norm(w0)  # d||w||/dw: the unsquared norm
    norm = np.linalg.norm(grad)
    if norm > 1.0:
        grad = grad / (norm + 1e-6)  # clip_grad_norm_(max_norm=1)
    want = w0 - 0.05 * grad
    assert probe.losses[0] == pytest.approx(loss, rel=1e-4)
    np.testing.assert_allclose(probe.weight, want, rtol=1e-4, atol=1e-6)


def test_unsquared_penalty_zeroes_a_weak_signal():
    """With ||w|| (not ||w||^2) the optimum is exactly w = 0 when the likelihood's gradient at 0
    is shorter than the penalty's weight: the probe then predicts (nearly) uniformly."""
    features, labels = synthetic(150, seed=3)
    weak, weak_labels = synthetic(150, seed=3, margin=4.0, offset=3.0)  # ~1.2 z-units of signal
    strong = train_probe(features, labels, seed=0)
    faint = train_probe(weak, weak_labels, ProbeConfig(epochs=300), seed=0)
    assert np.linalg.norm(strong.weight) > 0.3
    assert np.linalg.norm(faint.weight) < 0.05
    assert faint.losses[-1] == pytest.approx(np.log(4), abs=0.01)


def test_safe_fit_refits_with_a_smaller_clip_and_a_larger_penalty(monkeypatch):
    calls = []
    real = probe_module._fit

    def flaky(x, mask, y, config, seed, l2, max_grad_norm):
        calls.append((l2, max_grad_norm))
        weight, losses = real(x, mask, y, config, seed, l2, max_grad_norm)
        return (weight * float("nan"), losses) if len(calls) < 3 else (weight, losses)

    monkeypatch.setattr(probe_module, "_fit", flaky)
    features, labels = synthetic(20, seed=4)
    fitted = train_probe(features, labels, ProbeConfig(epochs=2), seed=0)
    assert calls == [(1.0, 1.0), (4.0, 0.25), (16.0, 0.0625)] and fitted.refits == 2
    assert np.isfinite(fitted.weight).all()


def test_binary_probe_learns_a_separable_yes_no_target():
    import numpy as np

    from e2h_utils.methods.probe import train_binary_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = x[:, 0] + 0.5 * x[:, 1] > 0
    probe = train_binary_probe(x, y, ProbeConfig(epochs=200, l2=0.01), seed=0)
    scores = probe.scores(x)
    assert ((scores > 0.5) == y).mean() > 0.9 and probe.losses[-1] < probe.losses[0]
    assert np.allclose(train_binary_probe(x, y, ProbeConfig(epochs=20), seed=0).weight,
                       train_binary_probe(x, y, ProbeConfig(epochs=20), seed=0).weight)  # reproducible
    one_class = train_binary_probe(x, np.ones(200, dtype=bool), ProbeConfig(epochs=50), seed=0)
    assert (one_class.scores(x) > 0.5).all()  # the bias learns a single class
