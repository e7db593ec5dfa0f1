"""Robust evaluation: clean, FGSM and PGD accuracy, worst case per sample.

Example::

    metrics = robust_accuracy(model, split.images, split.labels, eps=0.1, device=device, seed=0)
    metrics["clean_acc"], metrics["fgsm_acc"], metrics["pgd_acc"]        # fractions in [0, 1]
"""
from __future__ import annotations

import torch
import torch.nn as nn
from tqdm import tqdm

from .linf import correct, fgsm, pgd
from .mode import attack_mode


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float in [0, 1]; float images are checked to lie in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("float images must lie in [0, 1] (pixel space; normalisation is the model's job)")
    return images.float()


# ----------------------------------------------------------------------------- robust accuracy

def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float,
                    pgd_steps: int = 20, restarts: int = 1, losses: tuple[str, ...] = ("ce", "cw"),
                    alpha: float | None = None, early_stop: bool = False, fast: bool = True,
                    batch_size: int = 256, device: torch.device | str, seed: int = 0,
                    progress: bool = True) -> dict:
    """Clean, FGSM and PGD accuracy of ``model``, worst case per sample, deterministic for ``seed``.

    A sample counts as correct under FGSM only if it is also clean-correct, and as robust under PGD
    only if it is clean-correct, survives FGSM, and survives PGD with **every** loss in ``losses`` and
    every restart: the worst case over all attacks, as in AutoAttack. Hence
    ``pgd_acc <= fgsm_acc <= clean_acc`` by construction. FGSM is the classic zero-start FGSM with step
    eps; PGD takes ``pgd_steps`` steps of ``alpha`` (default ``2.5 * eps / pgd_steps``) from random
    starts drawn from a generator seeded with ``seed`` (the global RNG is not touched). Every verdict is
    the fp32 model's, whatever precision the gradients were computed in.

    Args:
        model: classifier on [0, 1] pixels (its train/eval mode and gradients are left as found).
        images: uint8 ``[N, C, H, W]`` or float in [0, 1]; labels: int64 ``[N]``.
        eps: L-inf radius in pixels; pgd_steps: K; restarts: PGD restarts per loss;
        losses: PGD losses (``"ce"``, ``"cw"``); alpha: step size;
        early_stop: a sample stops at its first misclassified iterate within a restart (locuslab's
            ``attack_pgd``) instead of returning the last iterate;
        fast: gradients through the reduced-precision attack-time view (else the fp32 model);
        batch_size; device; seed; progress: show a bar.
    Returns:
        ``clean_acc``, ``fgsm_acc``, ``pgd_acc``, ``pgd_<loss>_acc`` per loss (clean-correct and
        surviving that loss's PGD), ``epsilon``, ``pgd_steps``, ``pgd_restarts``, ``pgd_alpha``,
        ``pgd_losses``, ``pgd_early_stop``, ``attack_precision``, ``eval_samples``, ``eval_seed``;
        and ``masks``: the per-sample bool tensors ``[N]`` behind them (``clean``, ``fgsm``, ``pgd``).
    """
    device = torch.device(device)
    alpha = 2.5 * eps / pgd_steps if alpha is None else alpha
    gen = torch.Generator(device=device).manual_seed(seed)
    parts: list[torch.Tensor] = []                         # per batch: [3 + len(losses), B] bool
    batches = zip(images.split(batch_size), labels.split(batch_size))
    with attack_mode(model, fast=fast) as forward:
        for xb, yb in tqdm(batches, total=-(-len(labels) // batch_size), desc="robust eval", unit="batch",
                           leave=False, disable=not progress, dynamic_ncols=True):
            x, y = as_pixels(xb.to(device)), yb.to(device)                   # [B, C, H, W], [B]
            parts.append(_robust_masks(forward, x, y, eps=eps, steps=pgd_steps, alpha=alpha, restarts=restarts,
                                       losses=losses, generator=gen, early_stop=early_stop).cpu())
    masks = torch.cat(parts, 1) if parts else torch.zeros(3 + len(losses), 0, dtype=torch.bool)
    acc = (masks.double().sum(1) / max(len(labels), 1)).tolist()
    return {"clean_acc": acc[0], "fgsm_acc": acc[1], "pgd_acc": acc[2],
            **{f"pgd_{name}_acc": a for name, a in zip(losses, acc[3:])},
            "epsilon": eps, "pgd_steps": pgd_steps, "pgd_restarts": restarts, "pgd_alpha": alpha,
            "pgd_losses": list(losses), "pgd_early_stop": early_stop,
            "attack_precision": "reduced (fp32 verdicts)" if fast else "fp32", "eval_samples": len(labels),
            "eval_seed": seed, "masks": {"clean": masks[0], "fgsm": masks[1], "pgd": masks[2]}}


def _robust_masks(forward, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, alpha: float,
                  restarts: int, losses: tuple[str, ...], generator: torch.Generator,
                  early_stop: bool) -> torch.Tensor:
    """``[3 + len(losses), B]`` bool: clean / FGSM / PGD(all) / PGD(each loss) correct."""
    out = torch.zeros(3 + len(losses), len(y), dtype=torch.bool, device=y.device)
    ok = correct(forward, x, y)                                             # [B] bool
    out[0] = ok
    idx = ok.nonzero().squeeze(1)                                           # only clean-correct are attacked
    if not len(idx):
        return out
    x, y = x[idx], y[idx]
    fgsm_ok = correct(forward, fgsm(forward, x, y, eps=eps, random_start=False), y)
    per_loss = [correct(forward, pgd(forward, x, y, eps=eps, steps=steps, alpha=alpha, restarts=restarts,
                                     loss=name, generator=generator, early_stop=early_stop), y)
                for name in losses]
    out[1, idx] = fgsm_ok
    out[2, idx] = torch.stack([fgsm_ok, *per_loss]).all(0)
    for i, p in enumerate(per_loss):
        out[3 + i, idx] = p
    return out
