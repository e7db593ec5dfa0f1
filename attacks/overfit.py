"""The per-epoch catastrophic-overfitting guard of adversarial training, as locuslab/fast_adversarial's
``--early-stop`` runs it: after every epoch, PGD-5 with step eps/4 (2/255 at 8/255), one restart, a sample
stopping at its first misclassified iterate, on one batch of *training* images, with the model in the mode
the augmenter crafts in (train mode by default, as theirs); robust accuracy that fell by more than 0.2 since
the previous epoch is a collapse. ``mode="warn"`` warns and goes on; ``mode="stop"`` restores the previous
epoch's weights and ends the run (their recipe). The probe batch must be left out of training (the caller
holds it out) and never comes from the test set.

Example::

    guard = OverfitGuard(probe_images, probe_labels, eps=0.1, mode="stop", device=device)
    record.update(guard(model, record))   # {"probe_clean_acc", "probe_pgd_acc", "overfit", "stop"?}
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn as nn

from .linf import correct, pgd
from .mode import BN_MODES, attack_mode
from .robust import as_pixels

GUARD_MODES = ("warn", "stop")


@torch.no_grad()
def overfit_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 5,
                  alpha: float | None = None, bn: str = "eval", fast: bool = True, seed: int = 0) -> float:
    """PGD-``steps`` accuracy (CE, one restart, early stop per sample; step ``alpha``, default eps / 4) of
    ``model`` on one batch ``x`` ``[B, C, H, W]``, attacked and judged with batch norm in ``bn`` mode.

    Random starts come from a generator seeded with ``seed``, so the training RNG stream is not disturbed.
    In train mode the probe's forwards update BN running statistics, as the reference's probe does.
    """
    x = as_pixels(x)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    alpha = eps / 4 if alpha is None else alpha
    with attack_mode(model, fast=fast, bn=bn) as forward:
        x_adv = pgd(forward, x, y, eps=eps, steps=steps, alpha=alpha, generator=gen, early_stop=True)
        logits = forward(x_adv) if bn == "train" else None
        ok = (logits.argmax(1) == y) if logits is not None else correct(forward, x_adv, y)
        return ok.float().mean().item()


class ProbeResult(NamedTuple):
    clean_acc: float
    robust_acc: float
    collapsed: bool
    message: str            # empty unless collapsed


class OverfitGuard:
    """Per-epoch catastrophic-overfitting check for the training loop (an ``epoch_hooks`` entry).

    Args:
        images, labels: the probe batch (uint8 or [0, 1] ``[B, C, H, W]``; int64 ``[B]``), held out of training.
        eps: L-inf radius; steps, alpha: the probe's PGD (default PGD-5, step eps / 4).
        max_drop: a fall of robust accuracy by more than this since the previous epoch is a collapse.
        mode: ``"warn"`` (a ``CatastrophicOverfitWarning``, training goes on) or ``"stop"`` (the previous
            epoch's weights are restored and the record says ``"stop": True``: the loop ends the run).
        bn, fast: how the probe sees the model (the augmenter's crafting mode and precision).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, eps: float, steps: int = 5,
                 alpha: float | None = None, max_drop: float = 0.2, mode: str = "warn", bn: str = "eval",
                 fast: bool = True, device: torch.device | str | None = None, seed: int = 0):
        if mode not in GUARD_MODES:
            raise ValueError(f"overfit guard mode must be one of {', '.join(GUARD_MODES)} (got {mode!r})")
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {', '.join(BN_MODES)} (got {bn!r})")
        device = images.device if device is None else torch.device(device)
        self.x, self.y = as_pixels(images.to(device)), labels.to(device)      # [B, C, H, W], [B]
        self.eps, self.steps, self.alpha, self.seed = eps, steps, alpha, seed
        self.max_drop, self.mode, self.bn, self.fast = max_drop, mode, bn, fast
        self.history: list[tuple[float, float]] = []                          # (clean, robust) per epoch
        self.previous: dict | None = None            # mode "stop": the weights after the last good epoch

    def __call__(self, model: nn.Module, record: dict | None = None) -> dict:
        clean = correct(model, self.x, self.y).float().mean().item()         # eval mode, fp32 (for the record)
        robust = overfit_probe(model, self.x, self.y, eps=self.eps, steps=self.steps, alpha=self.alpha,
                               bn=self.bn, fast=self.fast, seed=self.seed)
        res = self.judge(clean, robust)
        out = {"probe_clean_acc": clean, "probe_pgd_acc": robust, "overfit": res.collapsed}
        if res.collapsed and self.mode == "stop" and self.previous is not None:
            model.load_state_dict(self.previous)
            warnings.warn(res.message + "; stopped, the previous epoch's weights restored", CatastrophicOverfitWarning,
                          stacklevel=2)
            return {**out, "stop": True, "restored_previous_epoch": True}
        if res.collapsed:
            warnings.warn(res.message, CatastrophicOverfitWarning, stacklevel=2)
        if self.mode == "stop":
            self.previous = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return out

    def judge(self, clean_acc: float, robust_acc: float) -> ProbeResult:
        """Append one epoch's probe accuracies to the history and say whether robustness collapsed: fell by
        more than ``max_drop`` since the previous epoch (fast_adversarial: ``robust_acc - prev < -0.2``)."""
        prev = self.history[-1][1] if self.history else 0.0
        self.history.append((clean_acc, robust_acc))
        if robust_acc - prev >= -self.max_drop:
            return ProbeResult(clean_acc, robust_acc, False, "")
        msg = (f"catastrophic overfitting? probe PGD-{self.steps} accuracy {prev:.3f} -> {robust_acc:.3f} "
               f"(clean {clean_acc:.3f}); consider a smaller FGSM step (alpha), PGD or free training, or "
               f"--overfit stop (keeps the previous epoch's weights)")
        return ProbeResult(clean_acc, robust_acc, True, msg)

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self.history], "previous": self.previous}

    def load_state_dict(self, state: dict) -> None:
        self.history = [tuple(h) for h in state["history"]]
        self.previous = state.get("previous")


class CatastrophicOverfitWarning(UserWarning):
    """Robust accuracy collapsed during (FGSM) adversarial training."""
