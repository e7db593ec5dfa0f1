"""The per-epoch catastrophic-overfitting guard of adversarial training (FGSM above all).

Example::

    guard = OverfitGuard(probe_images, probe_labels, eps=0.1, device=device)
    record.update(guard(model, record))   # {"probe_clean_acc", "probe_pgd_acc", "overfit"}
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn as nn

from .linf import correct, pgd
from .mode import attack_mode
from .robust import as_pixels


def overfit_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 5,
                  alpha: float | None = None, seed: int = 0) -> float:
    """PGD-``steps`` accuracy (CE, one restart) of ``model`` on one held-out batch ``x`` ``[B, C, H, W]``.

    Cheap guard of FGSM training (Wong et al. 2020 use PGD-5 on one batch per epoch). Random starts
    come from a generator seeded with ``seed``, so the training RNG stream is not disturbed.
    """
    x = as_pixels(x)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with attack_mode(model) as forward:
        x_adv = pgd(forward, x, y, eps=eps, steps=steps, alpha=alpha, generator=gen)
        return correct(forward, x_adv, y).float().mean().item()


class ProbeResult(NamedTuple):
    clean_acc: float
    robust_acc: float
    collapsed: bool
    message: str            # empty unless collapsed


class OverfitGuard:
    """Per-epoch catastrophic-overfitting check for the training loop (an ``epoch_hooks`` entry).

    Each call measures clean and PGD accuracy (``overfit_probe``) on the held-out batch given at
    construction and says the robust accuracy *collapsed* when it fell by more than ``max_drop``
    since the previous epoch, or fell below ``floor`` (from at or above it) while clean accuracy
    rose. On collapse it emits a ``CatastrophicOverfitWarning``; the fast_adversarial recipe then
    stops and keeps the previous epoch's weights (the loop's call).

    Example::

        guard = OverfitGuard(test.images[:256], test.labels[:256], eps=0.1, device=device)
        record.update(guard(model, record))   # {"probe_clean_acc", "probe_pgd_acc", "overfit"}
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, eps: float, steps: int = 5,
                 alpha: float | None = None, max_drop: float = 0.2, floor: float = 0.05,
                 device: torch.device | str | None = None, seed: int = 0):
        device = images.device if device is None else torch.device(device)
        self.x, self.y = as_pixels(images.to(device)), labels.to(device)      # [B, C, H, W], [B]
        self.eps, self.steps, self.alpha, self.seed = eps, steps, alpha, seed
        self.max_drop, self.floor = max_drop, floor
        self.history: list[tuple[float, float]] = []                          # (clean, robust) per epoch

    def __call__(self, model: nn.Module, record: dict | None = None) -> dict:
        with attack_mode(model) as forward:
            clean = correct(forward, self.x, self.y).float().mean().item()
        robust = overfit_probe(model, self.x, self.y, eps=self.eps, steps=self.steps, alpha=self.alpha,
                               seed=self.seed)
        res = self.judge(clean, robust)
        if res.collapsed:
            warnings.warn(res.message, CatastrophicOverfitWarning, stacklevel=2)
        return {"probe_clean_acc": clean, "probe_pgd_acc": robust, "overfit": res.collapsed}

    def judge(self, clean_acc: float, robust_acc: float) -> ProbeResult:
        """Append one epoch's probe accuracies to the history and say whether robustness collapsed."""
        prev = self.history[-1] if self.history else None
        self.history.append((clean_acc, robust_acc))
        if prev is None:
            return ProbeResult(clean_acc, robust_acc, False, "")
        drop = prev[1] - robust_acc
        below = prev[1] >= self.floor > robust_acc and clean_acc > prev[0]
        if drop <= self.max_drop and not below:
            return ProbeResult(clean_acc, robust_acc, False, "")
        msg = (f"catastrophic overfitting? probe PGD-{self.steps} accuracy {prev[1]:.3f} -> {robust_acc:.3f} "
               f"while clean accuracy {prev[0]:.3f} -> {clean_acc:.3f}; consider a smaller FGSM step "
               f"(alpha), PGD or free training, or the previous epoch's weights")
        return ProbeResult(clean_acc, robust_acc, True, msg)

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [tuple(h) for h in state["history"]]


class CatastrophicOverfitWarning(UserWarning):
    """Robust accuracy collapsed during (FGSM) adversarial training."""
