"""The generator-based augmenters: "gan" (fresh class-conditional samples, ratio/weight, confidence
filter, generator never trained, built from a path) and "unrestricted" (a latent pool that persists,
refreshes a slice per batch and round-trips through state_dict)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import runs
from augment import build_augmenter
from gan import GANConfig, GANTrainer, TrainConfig
from tests.test_gan_train import tiny_dataset
from tests.tiny_digits import held_out_batch, tiny_cnn, trained_tiny_model
from tests.tiny_gan import tiny_gan


def batch(n=16):
    return held_out_batch(n)


def grads_none(*modules):
    return all(p.grad is None for m in modules for p in m.parameters())


# ----------------------------------------------------------------------------- gan

@pytest.mark.parametrize("ratio,weight", [(0.5, 1.0), (0.25, 3.0), (1.0, 2.0), (0.0, 1.0)])
def test_gan_samples_shape_range_ratio_weight(ratio, weight):
    g, model = tiny_gan(), tiny_cnn()
    x, y = batch()
    b = build_augmenter("gan", gan=g, ratio=ratio, weight=weight)(model, x, y)
    n = round(ratio * len(x))
    assert b.x.shape == x.shape and b.x.dtype == x.dtype and 0 <= b.x.min() and b.x.max() <= 1
    assert torch.equal(b.y, y)                                   # generated with the replaced samples' labels
    assert torch.equal(b.x[n:], x[n:]) and not torch.equal(b.x[:n], x[:n]) or n == 0
    if weight != 1.0 and n:
        assert torch.equal(b.weight, torch.tensor([weight] * n + [1.0] * (len(x) - n)))
    else:
        assert b.weight is None


def test_gan_generator_gets_no_gradients_and_modes_are_kept():
    g, model = tiny_gan(), tiny_cnn()
    g.generator.train()
    try:
        x, y = batch()
        b = build_augmenter("gan", gan=g, candidates=2, judge="classifier")(model, x, y)
        F.cross_entropy(model(b.x), b.y).backward()
        assert not b.x.requires_grad
        assert grads_none(g.generator, g.critic) and g.generator.training and model.training
        assert all(p.requires_grad for p in g.generator.parameters())
    finally:
        g.generator.eval()


def test_gan_confidence_filter_keeps_the_more_confident_samples():
    g = tiny_gan()
    y = torch.arange(200) % 10
    x = torch.zeros(200, 1, 32, 32)

    def ac_confidence(candidates):
        torch.manual_seed(0)
        b = build_augmenter("gan", gan=g, ratio=1.0, candidates=candidates)(tiny_cnn(), x, y)
        with torch.no_grad():
            return g.critic(b.x).class_logits.softmax(1).gather(1, y[:, None]).mean()
    assert ac_confidence(4) > ac_confidence(1)


def test_gan_built_from_a_run_directory(tmp_path):
    cfg = GANConfig(num_classes=3, out_channels=1, g_channels=(16, 8, 8, 4), d_channels=(4, 8, 8))
    trainer = GANTrainer(cfg, TrainConfig(steps=1, amp=False, channels_last=False), torch.device("cpu"))
    runs.atomic_save(trainer.state_dict(tiny_dataset()), tmp_path / "checkpoint.pt")
    aug = build_augmenter("gan", gan=tmp_path, ratio=0.5)
    x, y = torch.rand(6, 1, 32, 32), torch.arange(6) % 3
    b = aug(tiny_cnn(num_classes=3), x, y)
    assert b.x.shape == x.shape and aug.describe()["gan"] == str(tmp_path)


@pytest.mark.parametrize("kw", [dict(ratio=1.5), dict(weight=-1.0), dict(candidates=0), dict(judge="x")])
def test_gan_bad_options_raise(kw):
    with pytest.raises(ValueError):
        build_augmenter("gan", gan=tiny_gan(), **kw)


# ----------------------------------------------------------------------------- unrestricted

def unrestricted(**kw):
    return build_augmenter("unrestricted", gan=tiny_gan(), **{"pool_size": 24, "latent_steps": 4, "refresh": 0.5, **kw})


def test_unrestricted_pool_persists_refreshes_and_serves_successes():
    torch.manual_seed(0)
    model, (x, y) = trained_tiny_model(), batch(16)
    aug = unrestricted()
    b = aug(model, x, y)
    pool = aug.pool
    assert pool["z0"].shape == (24, 16) and aug.cursor == 8 and aug.stats["searched"] == 8
    z0_before, z_before = pool["z0"].clone(), pool["z"].clone()
    for _ in range(3):
        b = aug(model, x, y)
    assert aug.pool is pool and aug.cursor == 32 % 24
    assert torch.equal(pool["z0"], z0_before)                     # anchors persist (nothing stale yet)
    assert not torch.equal(pool["z"], z_before)                   # warm-started searches moved z
    n = int(pool["success"].sum())
    assert n > 0
    k = min(n, 8)
    assert torch.equal(b.x[k:], x[k:]) and torch.equal(b.y[k:], y[k:])
    served = b.x[:k]
    match = (served[:, None] == pool["x"][None]).flatten(2).all(2)   # [k, P]: served images come from the pool
    assert match.any(1).all()
    assert 0 <= b.x.min() and b.x.max() <= 1
    d = aug.describe()
    assert d["name"] == "unrestricted" and d["eps_pix"] == 0.0 and d["searched"] == 32 and 0 < d["search_success_rate"] <= 1


def test_unrestricted_state_dict_round_trip_resumes_exactly():
    model, (x, y) = trained_tiny_model(), batch(16)
    torch.manual_seed(1)
    a = unrestricted()
    a(model, x, y)
    state = a.state_dict()
    rng = torch.get_rng_state()
    b = unrestricted()
    b.load_state_dict(state)
    out_a = a(model, x, y)
    torch.set_rng_state(rng)
    out_b = b(model, x, y)
    assert torch.equal(out_a.x, out_b.x) and torch.equal(out_a.y, out_b.y)
    assert all(torch.equal(a.pool[k], b.pool[k]) for k in a.pool if a.pool[k] is not None)
    assert a.stats == b.stats and a.cursor == b.cursor


def test_unrestricted_restarts_stale_entries_and_leaves_models_as_found():
    g, model, (x, y) = tiny_gan(), tiny_cnn(), batch(8)
    torch.manual_seed(2)
    aug = unrestricted(pool_size=4, latent_steps=1, refresh=0.5, restart_steps=1)
    aug(model, x, y)
    before = aug.stats["restarts"]
    for _ in range(4):
        aug(model, x, y)
    assert aug.stats["restarts"] > before or bool(aug.pool["success"].all())
    assert model.training and not g.generator.training and grads_none(model, g.generator, g.critic)
    assert all(p.requires_grad for p in model.parameters())
