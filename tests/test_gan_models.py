"""Generator/critic shapes and ranges, class conditioning, config round trip, the sampling API."""
from dataclasses import asdict

import pytest
import torch
import torch.nn as nn

from gan import MODEL_PRESETS, CriticOutput, GANConfig, build_gan, model_config, sample, truncate

TINY = dict(g_channels=(16, 8, 8, 4), d_channels=(4, 8, 8))


@pytest.mark.parametrize("preset", list(MODEL_PRESETS))
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(preset, channels):
    torch.manual_seed(0)
    G, D = build_gan(model_config(preset, num_classes=5, out_channels=channels))
    z, y = torch.randn(4, 128), torch.tensor([0, 1, 2, 4])
    x = G(z, y)
    assert x.shape == (4, channels, 32, 32)
    assert x.min() >= 0 and x.max() <= 1
    out = D(x)
    assert isinstance(out, CriticOutput)
    assert out.score.shape == (4,) and out.class_logits.shape == (4, 5)


def test_critic_has_no_batch_norm():
    _, D = build_gan(model_config("cifar"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())


def test_generator_is_class_conditional():
    torch.manual_seed(0)
    G, _ = build_gan(GANConfig(num_classes=3, out_channels=1, **TINY))
    with torch.no_grad():                      # give classes distinct gains/biases
        for m in G.modules():
            if hasattr(m, "gain") and isinstance(m.gain, nn.Embedding):
                m.gain.weight.normal_(1, 0.5)
                m.bias.weight.normal_(0, 0.5)
    z = torch.randn(1, 128).repeat(2, 1)
    x = sample(G, torch.tensor([0, 2]), z)
    assert not torch.allclose(x[0], x[1])


def test_config_round_trip():
    cfg = GANConfig(num_classes=7, out_channels=1, **TINY)
    d = asdict(cfg)
    d["g_channels"] = list(d["g_channels"])     # as JSON would give it back
    assert GANConfig.from_dict(d) == cfg


def test_bad_config():
    with pytest.raises(ValueError):
        GANConfig(g_channels=(8, 8))
    with pytest.raises(ValueError):
        model_config("nope")


def test_sample_api_deterministic_and_mode_restored():
    G, _ = build_gan(GANConfig(num_classes=3, out_channels=3, **TINY))
    G.train()
    y = torch.tensor([0, 1, 2, 0])
    a = sample(G, y, rng=torch.Generator().manual_seed(1))
    b = sample(G, y, rng=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    assert G.training and not a.requires_grad


def test_truncation():
    z = truncate(torch.randn(64, 128) * 3, 0.5, rng=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    G, _ = build_gan(GANConfig(num_classes=3, out_channels=1, **TINY))
    x = sample(G, torch.tensor([0, 1]), truncation=0.7)
    assert x.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError):
        truncate(z, 0.0)
