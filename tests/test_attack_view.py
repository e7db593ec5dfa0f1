"""The attack-time view: same predictions as the live model, always fresh, never in the state dict."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks import AttackView, attack_mode, ce_loss
from attacks.linf import input_grad
from classifier import build_classifier
from classifier.sync_bn import AllReduceBatchNorm2d, convert_sync_batchnorm
from tiny_digits import digits, trained_tiny_model


def batch(n=256):
    ds = digits()
    return ds.test.images[:n].float() / 255, ds.test.labels[:n]


def test_view_matches_the_live_model_in_eval_mode():
    model = trained_tiny_model()
    x, _ = batch(360)                                                       # the whole test split
    with torch.no_grad():
        live = model.eval()(x)                                             # [B, K] fp32
    with attack_mode(model) as view:
        assert isinstance(view, AttackView)
        assert len(view.fused) == sum(1 for n, _ in model.named_modules() if n.endswith(".conv1"))
        with torch.no_grad():
            fast, exact = view(x), view.exact(x)
    assert fast.dtype == torch.float32 and fast.shape == live.shape
    assert torch.allclose(exact, live, atol=1e-4, rtol=1e-4)               # fusion is exact in fp32
    err = (fast - live).abs().max()
    assert err <= 0.05 * live.abs().max() + 0.05                           # within bf16 tolerance
    differ = fast.argmax(1) != live.argmax(1)
    assert differ.float().mean() <= 0.01                                   # same decisions on >= 99%
    top2 = live.topk(2, 1).values
    assert ((top2[:, 0] - top2[:, 1])[differ] <= 2 * err).all()            # ... and only at near-ties


def test_view_is_refreshed_from_the_live_weights_and_keeps_no_state():
    torch.manual_seed(0)
    model = build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1).eval()
    keys = list(model.state_dict())
    x = torch.rand(8, 1, 32, 32)
    with attack_mode(model) as view:
        first = view.exact(x)
    with torch.no_grad():                      # a training step's worth of change: weights and BN statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.1)
                m.running_var.mul_(1.5)
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(1.1)
    with attack_mode(model) as view2:
        assert view2 is view                                               # no re-trace, no copy
        assert torch.allclose(view2.exact(x), model(x), atol=1e-4)
        assert not torch.allclose(view2.exact(x), first, atol=1e-3)
    assert list(model.state_dict()) == keys                                # the view is not a submodule
    assert all(p.requires_grad for p in model.parameters()) and not model.training


def test_view_is_rebuilt_when_modules_are_replaced():
    model = build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1).eval()
    with attack_mode(model) as view:
        pass
    model = convert_sync_batchnorm(model, torch.device("cpu"))
    assert any(isinstance(m, AllReduceBatchNorm2d) for m in model.modules())
    with attack_mode(model) as view2:
        assert view2 is not view
        x = torch.rand(4, 1, 32, 32)
        assert torch.allclose(view2.exact(x), model(x), atol=1e-4)


def test_all_reduce_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn, sync = torch.nn.BatchNorm2d(5), AllReduceBatchNorm2d(5)
    x = torch.randn(6, 5, 4, 4, requires_grad=True)
    y1, y2 = bn(x), sync(x)
    assert torch.allclose(y1, y2, atol=1e-6)
    assert torch.allclose(bn.running_var, sync.running_var) and torch.allclose(bn.running_mean, sync.running_mean)


class _Saturated:
    """A forward whose reduced-precision gradient is zero, with an exact forward that has one."""

    def __call__(self, x):
        return (x.flatten(1)[:, :3] * 0.0)

    def exact(self, x):
        return x.flatten(1)[:, :3] * torch.tensor([1.0, -2.0, 3.0])


def test_zero_reduced_precision_gradients_fall_back_to_fp32():
    x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 0])
    g = input_grad(_Saturated(), x, y, ce_loss)
    expected = torch.func.grad(lambda t: ce_loss(_Saturated().exact(t), y).sum())(x)
    assert torch.allclose(g, expected) and g.abs().sum() > 0


def _fit_fixed_batch(amp: bool, steps: int = 20) -> list[float]:
    torch.manual_seed(0)
    model = build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1)
    fmt = torch.channels_last if amp else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x, y = batch(64)
    x = x.contiguous(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_autocast_training_still_learns():
    """bf16 autocast + channels-last training steps lower the loss on a fixed batch like fp32 does."""
    amp, fp32 = _fit_fixed_batch(True), _fit_fixed_batch(False)
    assert amp[-1] < 0.5 * amp[0], (amp, fp32)
    assert amp[-1] < 1.5 * fp32[-1] + 0.1, (amp, fp32)
