"""Augmenters: every registered one keeps images in [0, 1] (and the eps ball) and leaves the model as
found; mixing ratio/weight; free training's persistent perturbation and its replays."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from augment import augmenter_names, build_augmenter
from augment.mixing import MixingAugmenter
from tests.tiny_digits import tiny_cnn

EPS = 0.1
KWARGS = {                      # test settings per registered name that works on any image batch
    "none": {},
    "fgsm": {"eps": EPS},
    "pgd": {"eps": EPS, "steps": 2},
    "free": {"eps": EPS, "replays": 2},
}


def small_model() -> nn.Module:
    return tiny_cnn()


def batch(n: int = 8, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g)
    x[0] = 1.0
    return x, torch.randint(0, 10, (n,), generator=g)


# the generator-based modes need a GAN of the batch's image shape: tests/test_gan_augmenters.py covers
# their shape, range, modes and gradients
GENERATOR_BASED = {"gan", "unrestricted"}
PIXEL_MODES = [n for n in augmenter_names() if n not in GENERATOR_BASED]


def test_every_registered_augmenter_is_covered():
    assert set(augmenter_names()) == set(KWARGS) | GENERATOR_BASED


def make(name: str, **kw):
    return build_augmenter(name, **{**KWARGS[name], **kw})


def train_once(aug, model, x, y):
    """One replay of the training loop's contract (augment/base.py)."""
    b = aug(model, x, y)
    losses = F.cross_entropy(model(b.x), b.y, reduction="none")
    loss = (losses * b.weight).mean() if b.weight is not None else losses.mean()
    loss.backward()
    aug.after_backward()
    return b


# ----------------------------------------------------------------------------- every registered augmenter

@pytest.mark.parametrize("name", PIXEL_MODES)
def test_output_shape_range_and_eps_ball(name):
    aug, (x, y) = make(name), batch()
    for _ in range(2):                                    # free: the second call sees an updated delta
        b = train_once(aug, small_model(), x, y)
        assert b.x.shape == x.shape and b.x.dtype == x.dtype and torch.equal(b.y, y)
        assert b.x.min() >= 0 and b.x.max() <= 1
        if "eps" in KWARGS[name]:
            assert (b.x.detach() - x).abs().max() <= EPS + 1e-6
    assert aug.describe()["name"] == name


@pytest.mark.parametrize("name", PIXEL_MODES)
@pytest.mark.parametrize("start_training", [True, False])
def test_model_left_as_found(name, start_training):
    aug, model, (x, y) = make(name), small_model(), batch()
    model.train(start_training)
    model[-1].weight.requires_grad_(False)
    sentinel = torch.full_like(model[-1].bias, 7.0)
    model[-1].bias.grad = sentinel.clone()
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    aug(model, x, y)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert torch.equal(model[-1].bias.grad, sentinel)
    assert all(p.grad is None for n, p in model.named_parameters() if n != "9.bias")


@pytest.mark.parametrize("name", [n for n in augmenter_names() if n in KWARGS and "eps" in KWARGS[n]])
@pytest.mark.parametrize("bad", [{"eps": 0.0}, {"eps": -0.1}, {"ratio": 1.5}, {"ratio": -0.1}, {"weight": -1.0}])
def test_bad_settings_are_value_errors(name, bad):
    with pytest.raises(ValueError):
        make(name, **bad)


@pytest.mark.parametrize("bad", [{"name": "pgd", "steps": 0}, {"name": "pgd", "loss": "nope"},
                                 {"name": "free", "replays": 0}, {"name": "fgsm", "craft_bn": "batch"}])
def test_bad_method_settings_are_value_errors(bad):
    bad = dict(bad)
    with pytest.raises(ValueError):
        make(bad.pop("name"), **bad)


# ----------------------------------------------------------------------------- mixing

@pytest.mark.parametrize("name", ["fgsm", "pgd", "free"])
def test_ratio_replaces_the_head_of_the_batch_with_its_weight(name):
    aug, (x, y) = make(name, ratio=0.5, weight=2.0), batch(8)
    b = train_once(aug, small_model(), x, y)
    b = aug(small_model(), x, y)                          # free: delta is non-zero now
    assert torch.equal(b.x[4:], x[4:]) and not torch.equal(b.x[:4], x[:4])
    assert torch.equal(b.weight, torch.tensor([2.0] * 4 + [1.0] * 4))
    assert isinstance(aug, MixingAugmenter) and aug.describe()["ratio"] == 0.5


def test_ratio_zero_and_unit_weight_give_the_clean_batch_and_no_weights():
    x, y = batch()
    b = make("pgd", ratio=0.0, weight=3.0)(small_model(), x, y)
    assert torch.equal(b.x, x) and b.weight is None
    assert make("fgsm")(small_model(), x, y).weight is None


# ----------------------------------------------------------------------------- free adversarial training

def test_free_delta_persists_across_batches_and_stays_in_the_ball():
    aug, model = make("free"), small_model()
    assert aug.replays == 2 and aug.state_dict() == {"delta": None}
    x1, y1 = batch(8, seed=1)
    train_once(aug, model, x1, y1)
    delta = aug.state_dict()["delta"]                     # [8, 1, 16, 16]
    assert delta.shape == x1.shape and delta.abs().max() == pytest.approx(EPS)
    x2, y2 = 0.5 * torch.ones(8, 1, 16, 16), y1           # a new batch sees the same delta
    assert torch.allclose(aug(model, x2, y2).x, (x2 + delta).clamp(0, 1))
    for seed in range(5):
        train_once(aug, model, *batch(8, seed))
    assert aug.delta.abs().max() <= EPS + 1e-7
    assert not torch.equal(aug.state_dict()["delta"], delta)


def test_free_delta_is_sliced_for_a_short_batch_and_grown_for_a_longer_one():
    aug, model = make("free"), small_model()
    train_once(aug, model, *batch(8))
    delta = aug.state_dict()["delta"]
    x, y = batch(5, seed=2)
    b = train_once(aug, model, x, y)
    assert b.x.shape == x.shape and aug.delta.shape == (8, 1, 16, 16)
    assert torch.allclose(b.x, (x + delta[:5]).clamp(0, 1))
    assert torch.equal(aug.delta[5:], delta[5:])          # rows outside the short batch did not move
    aug(model, *batch(10, seed=3))
    assert aug.delta.shape == (10, 1, 16, 16) and torch.equal(aug.delta[8:], torch.zeros(2, 1, 16, 16))


def test_free_updates_delta_once_per_replay():
    """A toy loop: m replays per batch give m updates of delta (step eps, read from the same backward)."""
    eps, m = 0.1, 4
    aug = build_augmenter("free", eps=eps, replays=m)
    x, y = torch.full((3, 1, 2, 2), 0.5), torch.zeros(3, dtype=torch.long)
    target = x + eps / 2                                  # ascent on -(x' - target)^2 oscillates 0 <-> eps
    seen = []
    for _ in range(2):                                    # two minibatches
        for _ in range(aug.replays):
            b = aug(nn.Identity(), x, y)
            (-(b.x - target) ** 2).sum().backward()
            aug.after_backward()
            seen.append(aug.state_dict()["delta"])
    changes = sum(not torch.equal(a, b) for a, b in zip([torch.zeros_like(x)] + seen, seen))
    assert changes == 2 * m
    assert torch.allclose(seen[0], torch.full_like(x, eps)) and torch.allclose(seen[1], torch.zeros_like(x))


def test_free_state_dict_round_trip_resumes_exactly():
    aug, model, (x, y) = make("free"), small_model(), batch()
    train_once(aug, model, x, y)
    clone = make("free")
    clone.load_state_dict(aug.state_dict())
    assert torch.equal(clone(model, x, y).x, aug(model, x, y).x)
    assert clone.delta.requires_grad and clone.delta.is_leaf


# ----------------------------------------------------------------------------- crafting as the references do

def _bn_model(seed: int = 0) -> nn.Module:
    """A tiny CNN with batch norm (train and eval mode differ) on [0, 1] pixels."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).train()


def _locuslab_fgsm_step(model, x, y, eps, alpha):
    """locuslab/fast_adversarial train_fgsm.py, in its order: delta ~ U(-eps, eps) clamped to [0, 1] - x;
    a train-mode forward on x + delta; CE backward; delta <- clamp(delta + alpha * sign(grad), -eps, eps),
    clamped to [0, 1] - x again. (One channel: its per-channel draw is one draw.)"""
    delta = torch.zeros_like(x).uniform_(-eps, eps)
    delta = torch.max(torch.min(delta, 1 - x), -x).requires_grad_(True)
    F.cross_entropy(model(x + delta), y).backward()
    delta = torch.clamp(delta + alpha * torch.sign(delta.grad), -eps, eps)
    delta = torch.max(torch.min(delta, 1 - x), -x).detach()
    model.zero_grad(set_to_none=True)
    return x + delta


def test_fgsm_train_mode_step_equals_the_reference_step():
    x, y = batch(16)
    ours, theirs = _bn_model(), _bn_model()
    torch.manual_seed(5)
    b = build_augmenter("fgsm", eps=EPS, amp=False)(ours, x, y)          # craft_bn="train" is the default
    torch.manual_seed(5)
    ref = _locuslab_fgsm_step(theirs, x, y, EPS, 1.25 * EPS)
    assert torch.allclose(b.x, ref, atol=1e-6)
    for a, r in zip(ours.buffers(), theirs.buffers()):                   # BN statistics moved alike
        assert torch.allclose(a.float(), r.float(), atol=1e-6)
    assert all(p.grad is None for p in ours.parameters())                # no parameter gradients


def test_eval_mode_crafting_is_another_function_and_moves_no_statistics():
    x, y = batch(16)
    train, evalbn = _bn_model(), _bn_model()
    stats = [t.clone() for t in evalbn.buffers()]
    torch.manual_seed(5)
    a = build_augmenter("fgsm", eps=EPS, amp=False)(train, x, y).x
    torch.manual_seed(5)
    b = build_augmenter("fgsm", eps=EPS, amp=False, craft_bn="eval")(evalbn, x, y).x
    assert not torch.equal(a, b)
    assert all(torch.equal(s, t) for s, t in zip(stats, evalbn.buffers())) and evalbn.training
