"""FGSM / PGD: eps ball and [0, 1], model left as found, strength ordering, restarts keep the worst case."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from attacks import ATTACK_LOSSES, attack_mode, cw_loss, fgsm, pgd, predict
from attacks.linf import keep_worst
from classifier import build_classifier
from tests.tiny_digits import held_out_batch, tiny_cnn, trained_tiny_model

EPS = 0.1


def small_model(seed: int = 0) -> nn.Module:
    return tiny_cnn(seed)


def densenet() -> nn.Module:
    torch.manual_seed(0)
    return build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1)


def toy_batch(n: int = 6):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 16, 16, generator=g)
    x[0] = 0.0                                    # corners of the pixel box: projection must clamp
    x[1] = 1.0
    return x, torch.randint(0, 10, (n,), generator=g)


ATTACKS = {
    "fgsm-random": lambda m, x, y: fgsm(m, x, y, eps=EPS),
    "fgsm-classic": lambda m, x, y: fgsm(m, x, y, eps=EPS, random_start=False),
    "fgsm-big-step": lambda m, x, y: fgsm(m, x, y, eps=EPS, alpha=3 * EPS),
    "pgd-ce": lambda m, x, y: pgd(m, x, y, eps=EPS, steps=3),
    "pgd-cw-restarts": lambda m, x, y: pgd(m, x, y, eps=EPS, steps=2, restarts=2, loss="cw"),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_stays_in_eps_ball_and_pixel_range(name):
    x, y = toy_batch()
    x_adv = ATTACKS[name](small_model(), x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv != x).any()


@pytest.mark.parametrize("name, arch", [(n, "tiny-cnn") for n in ATTACKS]
                         + [("fgsm-random", "densenet"), ("pgd-cw-restarts", "densenet")])
@pytest.mark.parametrize("start_training", [True, False])
def test_attack_leaves_model_as_found(name, arch, start_training):
    model = small_model() if arch == "tiny-cnn" else densenet()
    x, y = toy_batch()
    if arch == "densenet":
        x = torch.nn.functional.interpolate(x, size=32)
    first = next(iter(model.parameters()))
    model.train(start_training)
    next(iter(model.children())).train(not start_training)   # a mixed state must come back exactly
    model.get_submodule("head" if arch == "densenet" else "9").weight.requires_grad_(False)  # frozen too
    sentinel = torch.full_like(first, 3.0)
    first.grad = sentinel.clone()
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    bn_stats = [b.clone() for b in model.buffers()]
    ATTACKS[name](model, x, y)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert torch.equal(first.grad, sentinel)
    assert all(p.grad is None for p in model.parameters() if p is not first)
    assert all(torch.equal(a, b) for a, b in zip(bn_stats, model.buffers()))   # eval BN: stats untouched


def test_attack_mode_restores_on_exception():
    model = small_model().train()
    with pytest.raises(RuntimeError):
        with attack_mode(model) as forward:
            assert not model.training and not any(p.requires_grad for p in model.parameters())
            forward(torch.rand(2, 1, 16, 16))
            raise RuntimeError("boom")
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_attacks_accept_models_returning_dicts_or_tuples():
    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_model()

        def forward(self, x):
            return {"logits": self.net(x), "features": None}

    model, (x, y) = DictOut(), toy_batch()
    x_adv = pgd(model, x, y, eps=EPS, steps=2)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert predict(lambda t: (model.net(t), None), x).shape == y.shape


def test_attacks_work_under_no_grad_and_raise_on_bad_arguments():
    model, (x, y) = small_model(), toy_batch()
    with torch.no_grad():
        assert not torch.equal(fgsm(model, x, y, eps=EPS), x)
    with pytest.raises(ValueError):
        pgd(model, x, y, eps=EPS, steps=0)
    with pytest.raises(ValueError):
        pgd(model, x, y, eps=EPS, steps=2, loss="hinge")


def test_cw_loss_is_the_margin():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    y = torch.tensor([0, 2])
    assert torch.allclose(cw_loss(logits, y), torch.tensor([2.0 - 3.0, 5.0 - 1.0]))
    assert set(ATTACK_LOSSES) == {"ce", "cw"}


def test_keep_worst_never_gives_back_a_broken_sample():
    x0, x1 = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    inf = float("inf")
    best_x, best = keep_worst(x0, torch.tensor([inf, 0.5, 0.5]), x1, torch.tensor([2.0, inf, 0.1]))
    assert torch.equal(best_x[:, 0, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(best, torch.tensor([inf, inf, 0.5]))


# ----------------------------------------------------------------------------- on a trained model

def test_pgd_breaks_at_least_what_fgsm_breaks_on_a_trained_model():
    model, (x, y) = trained_tiny_model(), held_out_batch(96)
    clean = predict(model, x) == y
    assert clean.float().mean() > 0.7, "the tiny model should have learnt digits"
    eps = 0.05
    fgsm_ok = clean & (predict(model, fgsm(model, x, y, eps=eps, random_start=False)) == y)
    pgd_ok = clean & (predict(model, pgd(model, x, y, eps=eps, steps=7)) == y)
    assert pgd_ok.sum() <= fgsm_ok.sum() < clean.sum()
    assert pgd_ok.sum() < clean.sum() // 2


def test_restarts_keep_any_restart_that_breaks_a_sample():
    model, (x, y) = trained_tiny_model(), held_out_batch(96)
    eps, steps, r = 0.02, 2, 3
    gen = torch.Generator().manual_seed(5)
    singles = [predict(model, pgd(model, x, y, eps=eps, steps=steps, generator=gen)) != y for _ in range(r)]
    gen.manual_seed(5)                                     # same random starts, drawn in the same order
    broken = predict(model, pgd(model, x, y, eps=eps, steps=steps, restarts=r, generator=gen)) != y
    broken_by_any = torch.stack(singles).any(0)
    assert torch.equal(broken, broken_by_any)
    assert (singles[0] & ~singles[-1]).any() or (singles[-1] & ~singles[0]).any(), \
        "eps chosen so that restarts disagree on some sample (else this test proves nothing)"


def test_pgd_is_deterministic_for_a_seeded_generator():
    model, (x, y) = small_model(), toy_batch()
    a = pgd(model, x, y, eps=EPS, steps=2, generator=torch.Generator().manual_seed(3))
    b = pgd(model, x, y, eps=EPS, steps=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
