"""GAN loss terms as pure functions, chosen by name.

Adversarial losses (``"wgan"``, ``"hinge"``) are pairs of functions on critic scores; penalties
(``"gp"``, ``"r1"``, ``"none"``) take a score function and the real/fake batches. Penalties run in fp32:
call them outside autocast.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from registry import Registry

ScoreFn = Callable[[torch.Tensor], torch.Tensor]   # images [B, C, H, W] -> scores [B]


class AdversarialLoss(NamedTuple):
    critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (real_score [B], fake_score [B]) -> scalar
    generator: Callable[[torch.Tensor], torch.Tensor]              # fake_score [B] -> scalar


ADVERSARIAL_LOSSES = Registry("GAN loss")
PENALTIES = Registry("penalty")


def register_adversarial_loss(name: str, *, generator: Callable[[torch.Tensor], torch.Tensor]):
    """Register the decorated critic loss together with its generator loss under ``name``."""
    def deco(critic_fn):
        ADVERSARIAL_LOSSES[name] = AdversarialLoss(critic_fn, generator)
        return critic_fn
    return deco


register_penalty = PENALTIES.register
adversarial_loss = ADVERSARIAL_LOSSES.lookup
penalty = PENALTIES.lookup
loss_names = ADVERSARIAL_LOSSES.names
penalty_names = PENALTIES.names


# ----------------------------------------------------------------------------- adversarial losses

def wgan_generator(fake_score: torch.Tensor) -> torch.Tensor:
    return -fake_score.mean()


@register_adversarial_loss("wgan", generator=wgan_generator)
def wgan_critic(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))] - E[D(x)] (negated Wasserstein estimate)."""
    return fake_score.mean() - real_score.mean()


@register_adversarial_loss("hinge", generator=wgan_generator)
def hinge_critic(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; the generator loss is -E[D(G(z))]."""
    return F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()


# ----------------------------------------------------------------------------- penalties

def _input_grad(score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
    """d sum(D(x)) / dx with ``create_graph=True`` (so the penalty trains the critic): [B, C, H, W]."""
    x = x.detach().float().requires_grad_(True)
    score = score_fn(x).float()
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return grad


@register_penalty("gp")
def gradient_penalty(score_fn: ScoreFn, real: torch.Tensor, fake: torch.Tensor, *,
                     alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP: E[(||grad D(xhat)||_2 - 1)^2], xhat = a*x + (1-a)*G(z), a ~ U(0, 1) per sample.

    Args:
        score_fn: images [B, C, H, W] -> scores [B].
        real, fake: [B, C, H, W] in [0, 1] (fake is detached here).
        alpha: [B] interpolation weights; drawn from the global RNG when None.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device)
    a = alpha.view(-1, 1, 1, 1).to(real.dtype)
    xhat = a * real.detach() + (1 - a) * fake.detach()                  # [B, C, H, W]
    grad = _input_grad(score_fn, xhat)
    norm = grad.flatten(1).norm(2, dim=1)                               # [B]
    return (norm - 1).pow(2).mean()


@register_penalty("r1")
def r1_penalty(score_fn: ScoreFn, real: torch.Tensor, fake: torch.Tensor | None = None) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): 0.5 * E[||grad D(x)||^2] on real data only."""
    grad = _input_grad(score_fn, real)
    return 0.5 * grad.flatten(1).pow(2).sum(1).mean()


@register_penalty("none")
def no_penalty(score_fn: ScoreFn, real: torch.Tensor, fake: torch.Tensor | None = None) -> torch.Tensor:
    return real.new_zeros(())


# ----------------------------------------------------------------------------- auxiliary classifier

def aux_class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the critic's auxiliary classifier: logits [B, K], labels [B]."""
    return F.cross_entropy(class_logits.float(), labels)
