"""FGSM adversarial training ("fast" FGSM with a random start; Wong, Rice & Kolter 2020).

Each batch (its ``ratio`` share) is replaced by ``fgsm(model, x, y)``: a random start in the eps
ball, one signed-gradient step of ``alpha = 1.25 * eps``, projection to the ball and to [0, 1].
``random_start=False`` gives the classic zero-start FGSM of Goodfellow et al. (2015) (default
``alpha = eps``). Steps of 2 * eps and more tend to overfit catastrophically (PGD accuracy -> 0):
watch ``attacks.OverfitGuard``.

The example is crafted as locuslab/fast_adversarial's ``train_fgsm.py`` does it, in this order: delta drawn
U(-eps, eps) and clamped so that x + delta lies in [0, 1]; one forward of the model **in train mode** (batch
statistics; BN running statistics updated, as by any training forward) on x + delta and the CE gradient with
respect to delta; delta <- clamp(delta + alpha * sign(grad), -eps, eps), clamped again to [0, 1] - x. Only the
precision differs (``amp``: the training loop's autocast; parameter gradients are never computed).
``craft_bn="eval"`` crafts through the eval-mode attack-time view instead (running statistics), a setting
``reproduce --ablations`` measures against the reference's.

Args:
    eps: L-inf radius in pixels; alpha: step size; random_start: see above;
    craft_bn: ``"train"`` (the reference's) or ``"eval"``; amp: reduced precision for the crafting forward;
    ratio: fraction of each batch replaced (default 1.0); weight: loss weight of those samples.

Example::

    aug = build_augmenter("fgsm", eps=0.1)
    batch = aug(model, x, y)      # AugBatch(x_adv [B, C, H, W] in [0, 1], y)
"""
from __future__ import annotations

import torch
import torch.nn as nn

from attacks import fgsm

from .base import register_augmenter
from .mixing import MixingAugmenter, check_craft_bn, check_eps


@register_augmenter("fgsm")
class FGSMAugmenter(MixingAugmenter):
    def __init__(self, *, eps: float, alpha: float | None = None, random_start: bool = True,
                 craft_bn: str = "train", amp: bool = True, ratio: float | None = None, weight: float = 1.0):
        super().__init__(ratio=ratio, weight=weight)
        check_eps(eps)
        check_craft_bn(craft_bn)
        self.eps, self.random_start, self.craft_bn, self.amp = float(eps), bool(random_start), craft_bn, bool(amp)
        self.alpha = (1.25 * eps if random_start else eps) if alpha is None else float(alpha)

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fgsm(model, x, y, eps=self.eps, alpha=self.alpha, random_start=self.random_start, bn=self.craft_bn,
                    fast=self.amp)

    def describe(self) -> dict:
        return {**super().describe(), "eps": self.eps, "alpha": self.alpha, "random_start": self.random_start,
                "craft_bn": self.craft_bn, "amp": self.amp}
