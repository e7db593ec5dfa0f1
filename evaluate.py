"""Robust evaluation: clean, FGSM and PGD accuracy (worst case per sample), and the per-epoch
catastrophic-overfitting guard of FGSM training.

Example::

    metrics = robust_accuracy(model, split.images, split.labels, eps=0.1, device=device, seed=0)
    metrics["clean_acc"], metrics["fgsm_acc"], metrics["pgd_acc"]        # fractions in [0, 1]
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn as nn
from tqdm import tqdm

from augment.attack_mode import attack_mode
from augment.attacks import fgsm, pgd, predict
from classifier import accuracy
from data import Split


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float in [0, 1]; float images are checked to lie in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("float images must lie in [0, 1] (pixel space; normalisation is the model's job)")
    return images.float()


# ----------------------------------------------------------------------------- clean and robust accuracy

def clean_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500,
                   device: torch.device, amp: bool = False) -> float:
    """Top-1 accuracy on uint8 ``images`` ``[N, C, H, W]`` (``classifier.accuracy`` on a Split: sharded
    across ranks under torchrun; ``amp`` as in training, off by default to match ``robust_accuracy``)."""
    return accuracy(model, Split(images, labels), device=device, batch_size=batch_size, amp=amp)


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float,
                    pgd_steps: int = 20, restarts: int = 1, losses: tuple[str, ...] = ("ce", "cw"),
                    alpha: float | None = None, batch_size: int = 256, device: torch.device | str,
                    seed: int = 0, progress: bool = True) -> dict:
    """Clean, FGSM and PGD accuracy of ``model``, worst case per sample, deterministic for ``seed``.

    A sample counts as correct under FGSM only if it is also clean-correct, and as robust under PGD
    only if it is clean-correct, survives FGSM, and survives PGD with **every** loss in ``losses`` and
    every restart: the worst case over all attacks, as in AutoAttack. Hence
    ``pgd_acc <= fgsm_acc <= clean_acc`` by construction. FGSM is the classic zero-start FGSM with step
    eps; PGD takes ``pgd_steps`` steps of ``alpha`` (default ``2.5 * eps / pgd_steps``) from random
    starts drawn from a generator seeded with ``seed`` (the global RNG is not touched).

    Args:
        model: classifier on [0, 1] pixels (its train/eval mode and gradients are left as found).
        images: uint8 ``[N, C, H, W]`` or float in [0, 1]; labels: int64 ``[N]``.
        eps: L-inf radius in pixels; pgd_steps: K; restarts: PGD restarts per loss;
        losses: PGD losses (``"ce"``, ``"cw"``); batch_size; device; seed; progress: show a bar.
    Returns:
        ``clean_acc``, ``fgsm_acc``, ``pgd_acc``, ``pgd_<loss>_acc`` per loss (clean-correct and
        surviving that loss's PGD), ``epsilon``, ``pgd_steps``, ``pgd_restarts``, ``pgd_alpha``,
        ``pgd_losses``, ``eval_samples``, ``eval_seed``.
    """
    device = torch.device(device)
    alpha = 2.5 * eps / pgd_steps if alpha is None else alpha
    gen = torch.Generator(device=device).manual_seed(seed)
    counts = torch.zeros(3 + len(losses), dtype=torch.long)                 # clean, fgsm, pgd, per loss
    batches = zip(images.split(batch_size), labels.split(batch_size))
    with attack_mode(model) as forward:
        for xb, yb in tqdm(batches, total=-(-len(labels) // batch_size), desc="robust eval", unit="batch",
                           leave=False, disable=not progress, dynamic_ncols=True):
            x, y = as_pixels(xb.to(device)), yb.to(device)                   # [B, C, H, W], [B]
            counts += _robust_counts(forward, x, y, eps=eps, steps=pgd_steps, alpha=alpha,
                                     restarts=restarts, losses=losses, generator=gen)
    acc = (counts.double() / max(len(labels), 1)).tolist()
    return {"clean_acc": acc[0], "fgsm_acc": acc[1], "pgd_acc": acc[2],
            **{f"pgd_{name}_acc": a for name, a in zip(losses, acc[3:])},
            "epsilon": eps, "pgd_steps": pgd_steps, "pgd_restarts": restarts, "pgd_alpha": alpha,
            "pgd_losses": list(losses), "eval_samples": len(labels), "eval_seed": seed}


def _robust_counts(forward, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, alpha: float,
                   restarts: int, losses: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Counts ``[3 + len(losses)]`` of clean / FGSM / PGD(all) / PGD(each loss) correct samples."""
    ok = _correct(forward, x, y)                                             # [B] bool
    x, y = x[ok], y[ok]                                                      # only clean-correct are attacked
    if not len(y):
        return torch.zeros(3 + len(losses), dtype=torch.long)
    fgsm_ok = _correct(forward, fgsm(forward, x, y, eps=eps, random_start=False), y)
    per_loss = [_correct(forward, pgd(forward, x, y, eps=eps, steps=steps, alpha=alpha, restarts=restarts,
                                      loss=name, generator=generator), y) for name in losses]
    pgd_ok = torch.stack([fgsm_ok, *per_loss]).all(0)
    return torch.tensor([int(ok.sum()), int(fgsm_ok.sum()), int(pgd_ok.sum()),
                         *(int(p.sum()) for p in per_loss)])


def _correct(forward, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return predict(forward, x) == y                                          # [B] bool


# ----------------------------------------------------------------------------- catastrophic overfitting

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
        return _correct(forward, x_adv, y).float().mean().item()


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
            clean = _correct(forward, self.x, self.y).float().mean().item()
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
