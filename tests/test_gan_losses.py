"""Loss terms against hand computations."""
import pytest
import torch
import torch.nn.functional as F

from gan import adversarial_loss, aux_class_loss, gradient_penalty, loss_names, penalty, penalty_names, r1_penalty


def test_registries():
    assert {"wgan", "hinge"} <= set(loss_names())
    assert {"gp", "r1", "none"} <= set(penalty_names())
    with pytest.raises(ValueError):
        adversarial_loss("nope")
    with pytest.raises(ValueError):
        penalty("nope")


def test_wgan_and_hinge_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-0.5, 1.5])
    wgan, hinge = adversarial_loss("wgan"), adversarial_loss("hinge")
    assert wgan.critic(real, fake).item() == pytest.approx(0.5 - 1.0)
    assert wgan.generator(fake).item() == pytest.approx(-0.5)
    # relu(1 - [2, 0]) = [0, 1] -> 0.5 ; relu(1 + [-0.5, 1.5]) = [0.5, 2.5] -> 1.5
    assert hinge.critic(real, fake).item() == pytest.approx(2.0)


def test_gp_linear_critic_matches_hand_computation():
    """D(x) = <w, x>: the input gradient is w everywhere, so GP = (||w|| - 1)^2 and dGP/dw is known."""
    torch.manual_seed(0)
    w = torch.randn(1, 2, 4, 4, requires_grad=True)
    real, fake = torch.rand(5, 2, 4, 4), torch.rand(5, 2, 4, 4)
    gp = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake)
    norm = w.detach().norm()
    assert gp.item() == pytest.approx((norm - 1).pow(2).item(), rel=1e-5)
    (grad_w,) = torch.autograd.grad(gp, w)            # needs create_graph=True inside
    assert torch.allclose(grad_w, 2 * (norm - 1) * w.detach() / norm, rtol=1e-4, atol=1e-6)


def test_gp_quadratic_critic_per_sample_interpolation():
    """D(x) = 0.5 ||x||^2: the gradient at xhat is xhat itself, per sample with its own alpha."""
    torch.manual_seed(1)
    real, fake = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    alpha = torch.tensor([0.0, 0.25, 0.5, 1.0])
    gp = gradient_penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real, fake, alpha=alpha)
    xhat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    expect = (xhat.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert gp.item() == pytest.approx(expect.item(), rel=1e-5)


def test_r1_quadratic_critic():
    real = torch.rand(3, 1, 4, 4)
    r1 = r1_penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real)
    assert r1.item() == pytest.approx(0.5 * real.flatten(1).pow(2).sum(1).mean().item(), rel=1e-5)


def test_none_penalty_is_zero():
    assert penalty("none")(lambda x: x.sum(), torch.rand(2, 1, 2, 2), None).item() == 0


def test_aux_class_loss_is_cross_entropy():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(aux_class_loss(logits, y), F.cross_entropy(logits, y))
