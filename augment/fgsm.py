"""FGSM adversarial training ("fast" FGSM with a random start; Wong, Rice & Kolter 2020).

Each batch (its ``ratio`` share) is replaced by ``fgsm(model, x, y)``: a random start in the eps
ball, one signed-gradient step of ``alpha = 1.25 * eps``, projection to the ball and to [0, 1].
``random_start=False`` gives the classic zero-start FGSM of Goodfellow et al. (2015) (default
``alpha = eps``). Steps of 2 * eps and more tend to overfit catastrophically (PGD accuracy -> 0):
watch ``attacks.OverfitGuard``. The attack runs on the model in eval mode (see ``attack_mode``).

Args:
    eps: L-inf radius in pixels; alpha: step size; random_start: see above;
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
from .mixing import MixingAugmenter, check_eps


@register_augmenter("fgsm")
class FGSMAugmenter(MixingAugmenter):
    def __init__(self, *, eps: float, alpha: float | None = None, random_start: bool = True,
                 ratio: float | None = None, weight: float = 1.0):
        super().__init__(ratio=ratio, weight=weight)
        check_eps(eps)
        self.eps, self.random_start = float(eps), bool(random_start)
        self.alpha = (1.25 * eps if random_start else eps) if alpha is None else float(alpha)

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fgsm(model, x, y, eps=self.eps, alpha=self.alpha, random_start=self.random_start)

    def describe(self) -> dict:
        return {**super().describe(), "eps": self.eps, "alpha": self.alpha, "random_start": self.random_start}
