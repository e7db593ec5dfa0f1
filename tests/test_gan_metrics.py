"""GAN metrics: the Frechet distance against a closed form, IS bounds, gan_metrics determinism."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from data import Split
from gan import GANConfig, build_gan
from gan.metrics import frechet_distance, gan_metrics, inception_score


def test_frechet_distance_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expect = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()   # 5 + (1 + 1 + 0.25) = 7.25
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect, rel=1e-9)
    assert frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0, abs=1e-9)


def test_inception_score_bounds():
    assert inception_score(torch.full((8, 4), 0.25)) == pytest.approx(1.0)
    assert inception_score(torch.eye(4).repeat(2, 1)) == pytest.approx(4.0, rel=1e-6)


class TinyClassifier(nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 6))
        self.head = nn.Linear(6, k)

    def forward(self, x):
        return self.head(self.features(x))


def test_gan_metrics_keys_ranges_and_determinism():
    torch.manual_seed(0)
    G, D = build_gan(GANConfig(num_classes=3, out_channels=1, g_channels=(8, 8, 8, 4), d_channels=(4, 8)))
    clf = TinyClassifier(3).train()
    split = Split(torch.randint(0, 256, (20, 1, 32, 32), dtype=torch.uint8), torch.arange(20) % 3)
    kw = dict(n_samples=30, batch_size=16, seed=3, device="cpu")
    m1, m2 = gan_metrics(G, D, clf, split, **kw), gan_metrics(G, D, clf, split, **kw)
    assert m1 == m2
    assert 0 <= m1["gan_sample_acc"] <= 1 and len(m1["gan_sample_acc_per_class"]) == 3
    assert 1 <= m1["gan_is_classifier"] <= 3 and m1["gan_fid_classifier"] >= 0
    assert 0 <= m1["gan_ac_real_acc"] <= 1 and m1["gan_feature_net"] == "TinyClassifier"
    assert clf.training                                   # mode restored
    assert gan_metrics(G, None, clf, split, **kw)["gan_ac_real_acc"] is None
