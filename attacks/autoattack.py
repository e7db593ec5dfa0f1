"""AutoAttack (Croce & Hein 2020), the field's standard robustness check, through torchattacks' implementation.

The standard version runs APGD-CE, then APGD-T (9 target classes), FAB-T and Square (5,000 queries), each on
the points the previous ones did not break, and keeps the worst case per sample (torchattacks runs the first
three with 10 steps; the original AutoAttack runs 100). This module only calls it: the model is frozen (no
parameter gradients) and seen either in fp32 (``fast=False``, as published) or through the reduced-precision
attack-time view (``fast=True``; ``bench/autoattack.py --view`` compares the two on the same model). Either way the final verdict on every image is the fp32 model's.

Example::

    r = autoattack_accuracy(model, images, labels, eps=0.1, device="cpu")
    r["autoattack_acc"], r["masks"]["autoattack"]        # fraction, and [N] bool per image
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torchattacks
from tqdm import tqdm

from .linf import correct
from .mode import Forward, attack_mode
from .robust import as_pixels

VERSIONS = ("standard", "plus", "rand")


class _Logits(nn.Module):
    """What torchattacks calls: ``x [B, C, H, W] in [0, 1] -> fp32 logits``, through ``forward``. The model is
    a submodule so that torchattacks finds its device and can switch its mode (it is already in eval mode)."""

    def __init__(self, model: nn.Module, forward: Forward):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)


def torchattacks_robust(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        build: Callable[[nn.Module, int], nn.Module], *, fast: bool = False, batch_size: int = 250,
                        device: torch.device | str, progress: bool = True, desc: str = "AutoAttack") -> torch.Tensor:
    """``[N]`` bool: clean-correct and not broken by the torchattacks attack that ``build(net, n_classes)``
    makes (one per batch; only clean-correct images are attacked), every verdict the fp32 model's.

    ``net`` is the model as torchattacks calls it: fp32 (``fast=False``) or the reduced-precision attack-time
    view (``fast=True``), frozen, in eval mode. AutoAttack and each of its attacks alone run through here."""
    device = torch.device(device)
    robust = []
    with attack_mode(model, fast=fast) as forward:
        net = _Logits(model, forward).eval()
        batches = list(zip(images.split(batch_size), labels.split(batch_size)))
        for xb, yb in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress, dynamic_ncols=True):
            x, y = as_pixels(xb.to(device)), yb.to(device)                   # [B, C, H, W], [B]
            ok = correct(forward, x, y)                                        # only clean-correct are attacked
            idx = ok.nonzero().squeeze(1)
            if len(idx):
                attack = build(net, forward(x[:1]).shape[1])
                ok[idx] = correct(forward, attack(x[idx], y[idx]), y[idx])
            robust.append(ok.cpu())
    return torch.cat(robust) if robust else torch.zeros(0, dtype=torch.bool)


def autoattack_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float,
                        version: str = "standard", fast: bool = False, batch_size: int = 250,
                        device: torch.device | str, seed: int = 0, progress: bool = True) -> dict:
    """Robust accuracy of ``model`` under AutoAttack (L-inf ``eps``), deterministic for ``seed``.

    Args:
        model: classifier on [0, 1] pixels (left as found).
        images: uint8 ``[N, C, H, W]`` or float in [0, 1]; labels: int64 ``[N]``.
        version: torchattacks' ``standard`` (APGD-CE, APGD-T, FAB-T, Square), ``plus`` or ``rand``.
        fast: attack the reduced-precision attack-time view instead of the fp32 model.
        batch_size; device; seed (torchattacks seeds the global RNG with it); progress: show a bar.
    Returns:
        ``autoattack_acc`` (clean-correct and not broken, judged by the fp32 model), ``autoattack_version``,
        ``autoattack_precision``, ``autoattack_samples``, ``autoattack_seconds``, and ``masks``:
        ``{"autoattack": [N] bool}``.
    """
    if version not in VERSIONS:
        raise ValueError(f"AutoAttack version must be one of {', '.join(VERSIONS)} (got {version!r})")
    t0 = time.perf_counter()
    mask = torchattacks_robust(
        model, images, labels,
        lambda net, n_classes: torchattacks.AutoAttack(net, norm="Linf", eps=eps, version=version,
                                                       n_classes=n_classes, seed=seed),
        fast=fast, batch_size=batch_size, device=device, progress=progress)
    return {"autoattack_acc": mask.double().mean().item() if len(mask) else 0.0, "autoattack_version": version,
            "autoattack_precision": "reduced (fp32 verdicts)" if fast else "fp32", "autoattack_samples": len(mask),
            "autoattack_seconds": round(time.perf_counter() - t0, 1), "masks": {"autoattack": mask}}
