"""Free adversarial training (Shafahi et al. 2019, "Adversarial training for free!").

One perturbation ``delta`` (zeros at start) persists across minibatches **and** epochs. The training
loop replays every minibatch ``replays = m`` times; each replay trains on ``clamp(x + delta, 0, 1)``,
and the one backward pass that gives the weight gradient also gives ``delta.grad``, after which
``after_backward`` does ``delta <- clip(delta + eps * sign(delta.grad), -eps, eps)`` (step = eps).
The loop runs ``ceil(epochs / m)`` epochs, so the total work equals natural training.

``delta`` ``[B0, C, H, W]`` takes the shape of the first batch (grown with zeros if a later batch is
larger) and is sliced for a short last batch; it lives on the inputs' device and travels in
``state_dict`` for an exact resume. The forward is the loop's own (train mode): nothing here
touches the model.

Args:
    eps: L-inf radius in pixels (also the step); replays: m (default 4);
    ratio: fraction of each batch perturbed (default 1.0); weight: loss weight of those samples.

Example::

    aug = build_augmenter("free", eps=8 / 255, replays=8)
    batch = aug(model, x, y); loss.backward(); aug.after_backward()
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import register_augmenter
from .mixing import MixingAugmenter, check_eps


@register_augmenter("free")
class FreeAugmenter(MixingAugmenter):
    def __init__(self, *, eps: float, replays: int = 4, ratio: float | None = None, weight: float = 1.0):
        super().__init__(ratio=ratio, weight=weight)
        check_eps(eps)
        if replays < 1:
            raise ValueError(f"replays must be >= 1 (got {replays})")
        self.eps, self.replays = float(eps), int(replays)
        self.delta: torch.Tensor | None = None     # leaf [B0, C, H, W] in [-eps, eps], requires grad

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        delta = self._delta_like(x)
        return (x + delta[:len(x)]).clamp(0, 1)    # [n, C, H, W]; backward fills self.delta.grad

    def _delta_like(self, x: torch.Tensor) -> torch.Tensor:
        """The persistent leaf, created, moved or grown (with zeros) to cover ``x`` ``[n, C, H, W]``."""
        d = self.delta
        if d is None or d.shape[1:] != x.shape[1:]:
            d = torch.zeros_like(x)
        elif len(d) < len(x) or d.device != x.device or d.dtype != x.dtype:
            d = d.detach().to(x)
            d = torch.cat([d, d.new_zeros((len(x) - len(d), *d.shape[1:]))]) if len(d) < len(x) else d
        if d is not self.delta:
            self.delta = d.requires_grad_(True)
        return self.delta

    def after_backward(self) -> None:
        d = self.delta
        if d is None or d.grad is None:
            return
        with torch.no_grad():
            grad = torch.nan_to_num(d.grad, nan=0.0, posinf=0.0, neginf=0.0)
            d.add_(self.eps * grad.sign()).clamp_(-self.eps, self.eps)
        d.grad = None

    def state_dict(self) -> dict:
        return {"delta": None if self.delta is None else self.delta.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        d = state.get("delta")
        self.delta = None if d is None else d.detach().clone().requires_grad_(True)

    def describe(self) -> dict:
        return {**super().describe(), "eps": self.eps, "replays": self.replays}
