"""PGD adversarial training (Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks").

Each batch (its ``ratio`` share) is replaced by ``pgd(model, x, y)``: a random start in the eps
ball, ``steps`` signed-gradient steps of ``alpha`` (default ``2.5 * eps / steps``), projection to
the ball and to [0, 1] after every step. The attack runs on the model in eval mode (see
``attack_mode``); the training forward afterwards is the loop's.

Args:
    eps: L-inf radius in pixels; steps: K (default 7); alpha: step size; random_start;
    loss: ``"ce"`` or ``"cw"``; ratio: fraction of each batch replaced (default 1.0);
    weight: loss weight of those samples.

Example::

    aug = build_augmenter("pgd", eps=8 / 255, steps=7)
    batch = aug(model, x, y)      # AugBatch(x_adv [B, C, H, W] in [0, 1], y)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from attacks import attack_loss, pgd

from .base import register_augmenter
from .mixing import MixingAugmenter, check_eps


@register_augmenter("pgd")
class PGDAugmenter(MixingAugmenter):
    def __init__(self, *, eps: float, steps: int = 7, alpha: float | None = None, random_start: bool = True,
                 loss: str = "ce", ratio: float | None = None, weight: float = 1.0):
        super().__init__(ratio=ratio, weight=weight)
        check_eps(eps)
        if steps < 1:
            raise ValueError(f"PGD steps must be >= 1 (got {steps})")
        attack_loss(loss)                                   # validate the name now, not mid-training
        self.eps, self.steps, self.random_start, self.loss = float(eps), int(steps), bool(random_start), loss
        self.alpha = 2.5 * eps / steps if alpha is None else float(alpha)

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, eps=self.eps, steps=self.steps, alpha=self.alpha,
                   random_start=self.random_start, loss=self.loss)

    def describe(self) -> dict:
        return {**super().describe(), "eps": self.eps, "pgd_steps": self.steps, "alpha": self.alpha,
                "random_start": self.random_start, "loss": self.loss}
