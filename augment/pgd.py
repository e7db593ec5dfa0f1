"""PGD adversarial training (Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks").

Each batch (its ``ratio`` share) is replaced by ``pgd(model, x, y)``: a random start in the eps
ball, ``steps`` signed-gradient steps of ``alpha`` (default ``2.5 * eps / steps``), projection to
the ball and to [0, 1] after every step, every step taken (no early stop), as locuslab/fast_adversarial's
``train_pgd.py`` and Madry et al.'s code do. The model crafts **in train mode** by default (batch statistics,
running statistics updated by each of the K forwards, as in those references); ``craft_bn="eval"`` uses the
eval-mode attack-time view instead (``reproduce --ablations`` measures the two). The training forward
afterwards is the loop's.

Args:
    eps: L-inf radius in pixels; steps: K (default 7); alpha: step size; random_start;
    loss: ``"ce"`` or ``"cw"``; craft_bn: ``"train"`` or ``"eval"``; amp: reduced-precision crafting;
    ratio: fraction of each batch replaced (default 1.0); weight: loss weight of those samples.

Example::

    aug = build_augmenter("pgd", eps=8 / 255, steps=7)
    batch = aug(model, x, y)      # AugBatch(x_adv [B, C, H, W] in [0, 1], y)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from attacks import attack_loss, pgd

from .base import register_augmenter
from .mixing import MixingAugmenter, check_craft_bn, check_eps


@register_augmenter("pgd")
class PGDAugmenter(MixingAugmenter):
    def __init__(self, *, eps: float, steps: int = 7, alpha: float | None = None, random_start: bool = True,
                 loss: str = "ce", craft_bn: str = "train", amp: bool = True, ratio: float | None = None,
                 weight: float = 1.0):
        super().__init__(ratio=ratio, weight=weight)
        check_eps(eps)
        check_craft_bn(craft_bn)
        if steps < 1:
            raise ValueError(f"PGD steps must be >= 1 (got {steps})")
        attack_loss(loss)                                   # validate the name now, not mid-training
        self.eps, self.steps, self.random_start, self.loss = float(eps), int(steps), bool(random_start), loss
        self.craft_bn, self.amp = craft_bn, bool(amp)
        self.alpha = 2.5 * eps / steps if alpha is None else float(alpha)

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, eps=self.eps, steps=self.steps, alpha=self.alpha, random_start=self.random_start,
                   loss=self.loss, bn=self.craft_bn, fast=self.amp)

    def describe(self) -> dict:
        return {**super().describe(), "eps": self.eps, "steps": self.steps, "alpha": self.alpha,
                "random_start": self.random_start, "loss": self.loss, "craft_bn": self.craft_bn, "amp": self.amp}
