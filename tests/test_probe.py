"""e2h_utils.probe: the linear probe on synthetic, separable choice features."""

from __future__ import annotations

import numpy as np
import pytest

from e2h_utils.probe import LinearProbe, ProbeConfig, train_probe

DIM = 16
MARGIN = 4.0  # with +2 the Bayes accuracy over 4 unit-noise choices is only ~0.82


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def synthetic(n_items: int, seed: int, n_choices=4, shift: float = 0.0):
    """Per item: Gaussian noise features, the correct choice +MARGIN on feature 0, plus a random
    per-item offset (so feature 0 alone, not its level, tells the answer)."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for i in range(n_items):
        k = n_choices if isinstance(n_choices, int) else n_choices[i % len(n_choices)]
        f = rng.normal(size=(k, DIM)) + rng.normal(scale=3.0, size=(1, DIM)) + shift
        y = int(rng.integers(k))
        f[y, 0] += MARGIN
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
    from e2h_utils.probe import _padded

    features, labels = synthetic(40, seed=5, n_choices=(2, 4))
    probe = train_probe(features, labels, ProbeConfig(epochs=5), seed=0)
    x, mask = _padded(features, probe.mean, probe.std)
    assert x.shape == (40, 4, DIM)
    assert mask.sum().item() == sum(len(f) for f in features)
    assert not x[~mask].any()
    # a model whose loss depends on padded slots would not match a per-item computation
    import torch

    w = torch.from_numpy(probe.weight)
    logits = (x @ w).masked_fill(~mask, float("-inf"))
    per_item = [torch.log_softmax(torch.from_numpy((np.asarray(f) - probe.mean) / probe.std) @ w, -1)[y]
                for f, y in zip(features, labels)]
    batched = logits.log_softmax(-1)[torch.arange(40), torch.tensor(labels)]
    torch.testing.assert_close(batched, torch.stack(per_item))
    assert (logits.argmax(-1) < torch.tensor([len(f) for f in features])).all()


def test_probe_uses_training_statistics():
    features, labels = synthetic(100, seed=6, shift=5.0)
    probe = train_probe(features, labels, ProbeConfig(epochs=10), seed=0)
    stacked = np.concatenate(features)
    np.testing.assert_allclose(probe.mean, stacked.mean(0))
    np.testing.assert_allclose(probe.std, stacked.std(0) + 1e-6)
    test, _ = synthetic(10, seed=7, shift=-4.0)
    for f, s in zip(test, probe.scores(test)):
        np.testing.assert_allclose(s, ((f - probe.mean) / probe.std) @ probe.weight)
        # not the test items' own statistics
        own = ((f - f.mean(0)) / (f.std(0) + 1e-6)) @ probe.weight
        assert not np.allclose(s, own)


def test_probe_rejects_empty_training_set():
    with pytest.raises(ValueError):
        train_probe([], [])
