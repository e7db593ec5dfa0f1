"""Mixing clean and augmented samples in one batch: the shared base of the adversarial (and GAN) augmenters.

A fraction ``ratio`` of each batch (its first ``round(ratio * B)`` samples; batches are shuffled,
so that is a random subset) is replaced by augmented samples, which get loss weight ``weight``.
Only the replaced samples are attacked, so ``ratio < 1`` also saves attack work.

Example::

    aug = build_augmenter("pgd", eps=0.1, ratio=0.5, weight=2.0)
    batch = aug(model, x, y)     # AugBatch: x [B, C, H, W], half adversarial; weight [B] (2 or 1)
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from attacks.mode import BN_MODES

from .base import AugBatch, Augmenter


def check_eps(eps: float) -> None:
    """An L-inf budget in [0, 1] pixel space: 0 < eps <= 1."""
    if not 0.0 < eps <= 1.0:
        raise ValueError(f"eps must be in (0, 1] for images in [0, 1] (got {eps})")


def check_craft_bn(craft_bn: str) -> None:
    if craft_bn not in BN_MODES:
        raise ValueError(f"craft_bn must be one of {', '.join(BN_MODES)} (got {craft_bn!r})")


class MixingAugmenter(Augmenter):
    """Base class holding ``ratio`` / ``weight`` (validated) and the mixing of a batch.

    Subclasses set ``default_ratio`` and implement ``augment`` (the replaced head of the batch), or
    override ``__call__`` and use ``n_aug`` / ``mix`` (e.g. to replace the labels too).
    """

    default_ratio: float = 1.0

    def __init__(self, *, ratio: float | None = None, weight: float = 1.0):
        ratio = self.default_ratio if ratio is None else float(ratio)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"aug ratio must be in [0, 1] (got {ratio})")
        if not weight >= 0.0:
            raise ValueError(f"aug weight must be >= 0 (got {weight})")
        self.ratio, self.weight = ratio, float(weight)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> AugBatch:
        n = self.n_aug(len(x))
        x_aug = self.augment(model, x[:n], y[:n]) if n else x[:0]           # [n, C, H, W]
        return self.mix(x, y, x_aug)

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The augmented version ``[n, C, H, W]`` in [0, 1] of ``x`` ``[n, C, H, W]``."""
        raise NotImplementedError

    def n_aug(self, batch_size: int) -> int:
        """How many leading samples of a batch of ``batch_size`` are replaced."""
        return min(batch_size, math.floor(self.ratio * batch_size + 0.5))

    def mix(self, x: torch.Tensor, y: torch.Tensor, x_aug: torch.Tensor,
            y_aug: torch.Tensor | None = None) -> AugBatch:
        """Batch with ``x[:n]`` replaced by ``x_aug`` ``[n, C, H, W]`` (and ``y[:n]`` by ``y_aug`` if
        given); per-sample weights ``[B]`` when ``weight != 1``."""
        n = len(x_aug)
        x_out = x_aug if n == len(x) else torch.cat([x_aug, x[n:]])      # [B, C, H, W]
        if y_aug is not None:
            y = y_aug if n == len(y) else torch.cat([y_aug, y[n:]])       # [B]
        if self.weight == 1.0 or n == 0:
            return AugBatch(x_out, y)
        w = torch.ones(len(x), device=x.device, dtype=torch.float32)     # [B]
        w[:n] = self.weight
        return AugBatch(x_out, y, w)

    def describe(self) -> dict:
        return {"name": self.name, "ratio": self.ratio, "weight": self.weight}
