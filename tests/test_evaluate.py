"""Robust evaluation: PGD <= FGSM <= clean on any model, worst case over losses, determinism; the
catastrophic-overfitting guard."""
from __future__ import annotations

import pytest
import torch

from attacks import CatastrophicOverfitWarning, OverfitGuard, overfit_probe, robust_accuracy
from classifier import accuracy
from data import Split
from tests.tiny_digits import digits, held_out_batch, tiny_cnn, trained_tiny_model

EVAL = dict(eps=0.05, pgd_steps=4, restarts=2, batch_size=40, device="cpu", seed=0, progress=False)


@pytest.fixture(scope="module")
def trained_metrics():
    split = digits().test
    return robust_accuracy(trained_tiny_model(), split.images[:80], split.labels[:80], **EVAL)


def test_ordering_and_keys_on_a_trained_model(trained_metrics):
    m = trained_metrics
    assert 0.0 <= m["pgd_acc"] <= m["fgsm_acc"] <= m["clean_acc"] <= 1.0
    assert m["clean_acc"] > 0.7 and m["pgd_acc"] < m["clean_acc"]
    assert m["pgd_acc"] <= min(m["pgd_ce_acc"], m["pgd_cw_acc"])          # worst case over both losses
    assert (m["epsilon"], m["pgd_steps"], m["pgd_restarts"], m["eval_samples"]) == (0.05, 4, 2, 80)
    assert m["pgd_alpha"] == pytest.approx(2.5 * 0.05 / 4) and m["pgd_losses"] == ["ce", "cw"]


def test_clean_acc_matches_clean_accuracy(trained_metrics):
    split = digits().test
    acc = accuracy(trained_tiny_model(), Split(split.images[:80], split.labels[:80]), device="cpu", amp=False)
    assert trained_metrics["clean_acc"] == pytest.approx(acc)


@pytest.mark.parametrize("seed", [0, 1])
def test_ordering_holds_on_any_model_and_is_deterministic(seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (24, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (24,), generator=g)
    model = tiny_cnn(seed, in_channels=3, num_classes=3).train()
    kw = dict(EVAL, eps=0.2, batch_size=10, seed=seed)
    rng = torch.get_rng_state()
    a = robust_accuracy(model, images, labels, **kw)
    b = robust_accuracy(model, images.float() / 255, labels, **kw)       # float input, same result
    masks_a, masks_b = a.pop("masks"), b.pop("masks")
    assert a == b and all(torch.equal(masks_a[k], masks_b[k]) for k in masks_a)
    assert a["pgd_acc"] <= a["fgsm_acc"] <= a["clean_acc"]
    assert a["pgd_acc"] == pytest.approx(masks_a["pgd"].double().mean().item())   # the masks behind the figures
    assert torch.equal(torch.get_rng_state(), rng)                       # global RNG untouched
    assert all(m.training for m in model.modules())                      # mode left as found


def test_out_of_range_float_images_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robust_accuracy(tiny_cnn(), torch.full((2, 1, 8, 8), 2.0), torch.zeros(2, dtype=torch.long), **EVAL)


# ----------------------------------------------------------------------------- catastrophic overfitting

def guard(**kw) -> OverfitGuard:
    x, y = held_out_batch(4)
    return OverfitGuard(x, y, eps=0.1, **kw)


def test_guard_flags_a_drop_larger_than_max_drop():
    g = guard()
    assert not g.judge(0.60, 0.40).collapsed                 # first epoch: nothing to compare with
    assert not g.judge(0.70, 0.25).collapsed                 # a drop of 0.15 is tolerated
    res = g.judge(0.80, 0.02)
    assert res.collapsed and "0.250 -> 0.020" in res.message


def test_guard_rule_is_the_references():
    g = guard()
    assert not g.judge(0.30, 0.02).collapsed                 # low from the start: not a collapse
    assert not g.judge(0.50, 0.22).collapsed                 # rising
    assert not g.judge(0.55, 0.03).collapsed                 # a fall of 0.19: fast_adversarial stops below -0.2
    assert g.judge(0.60, 0.00).collapsed is False            # 0.03 -> 0.00
    assert guard().judge(0.5, 0.5).collapsed is False


def test_guard_stop_mode_restores_the_previous_epochs_weights():
    model = _bn_cnn()
    x, y = held_out_batch(16)
    g = OverfitGuard(x, y, eps=0.1, steps=2, mode="stop", bn="train", fast=False)
    first = g(model, {"epoch": 1})
    kept = {k: v.clone() for k, v in model.state_dict().items()}      # the probe moved BN stats: kept as they are
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)                                               # "the next epoch"
    g.history[-1] = (0.0, first["probe_pgd_acc"] + 0.5)              # pretend robustness was much higher
    with pytest.warns(CatastrophicOverfitWarning, match="previous epoch's weights restored"):
        out = g(model, {"epoch": 2})
    assert out["stop"] and out["overfit"]
    assert all(torch.equal(v, kept[k]) for k, v in model.state_dict().items())
    g2 = OverfitGuard(x, y, eps=0.1, mode="stop")
    g2.load_state_dict(g.state_dict())
    assert g2.history == g.history and all(torch.equal(g2.previous[k], v) for k, v in g.previous.items())


def _bn_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)).train()


def test_guard_is_an_epoch_hook_that_warns_and_resumes():
    model = trained_tiny_model()
    x, y = held_out_batch(48)
    g = OverfitGuard((x * 255).round().to(torch.uint8), y, eps=0.1, steps=3)
    out = g(model, {"epoch": 1})
    assert set(out) == {"probe_clean_acc", "probe_pgd_acc", "overfit"} and not out["overfit"]
    assert out["probe_pgd_acc"] <= out["probe_clean_acc"]
    g.history[-1] = (0.0, out["probe_pgd_acc"] + 0.5)         # pretend robust accuracy was much higher
    with pytest.warns(CatastrophicOverfitWarning):
        assert g(model)["overfit"]
    g2 = guard()
    g2.load_state_dict(g.state_dict())
    assert g2.history == g.history and g2.previous is None           # warn mode keeps no weights


def test_overfit_probe_is_seeded_and_leaves_the_global_rng_alone():
    model, (x, y) = trained_tiny_model(), held_out_batch(32)
    rng = torch.get_rng_state()
    a = overfit_probe(model, x, y, eps=0.1, steps=2)
    assert a == overfit_probe(model, x, y, eps=0.1, steps=2) and 0.0 <= a <= 1.0
    assert torch.equal(torch.get_rng_state(), rng)
