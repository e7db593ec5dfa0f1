"""GAN samples as augmentation: part of each batch replaced by fresh class-conditional AC-GAN samples.

The first ``round(ratio * B)`` samples of each batch (a random subset: batches are shuffled) are
replaced by ``G(z, y)`` with fresh ``z ~ N(0, I)`` and **the replaced samples' own labels** ``y``, so
the batch keeps the data's class distribution. The generator is the checkpoint's EMA generator, in
eval mode, run under ``no_grad`` (it never gets gradients). ``z`` comes from the global RNG, which the
training loop checkpoints, so resumed runs draw the same samples.

Confidence filter (the strongest generated-data methods keep the most confident samples per class):
``candidates = k > 1`` draws k samples per replaced slot and keeps the one whose label the judge is
most confident about, judge ``"ac"`` (the AC-GAN's auxiliary classifier, default) or ``"classifier"``
(the model being trained, in attack mode). So the kept fraction is 1/k, chosen per label, and exactly
``n`` samples always come out.

Args:
    gan: a ``gan.LoadedGAN``, or a GAN run directory / checkpoint file (loaded with ``gan.load_gan``).
    ratio: fraction of each batch replaced (default 0.5); weight: loss weight of generated samples.
    candidates: k for the confidence filter (1: no filter); judge: ``"ac"`` or ``"classifier"``.
    truncation: optional truncation threshold for z.

Example::

    aug = build_augmenter("gan", gan="runs/gan-digits", ratio=0.5, candidates=4)
    batch = aug(model, x, y)       # AugBatch: x [B, C, H, W], first half generated with labels y[:B/2]
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn

from attacks import attack_mode, frozen
from gan import LoadedGAN, load_gan, sample, truncate

from .base import register_augmenter
from .mixing import MixingAugmenter

JUDGES = ("ac", "classifier")


def resolve_gan(gan: LoadedGAN | str | os.PathLike) -> LoadedGAN:
    """A ``LoadedGAN`` as given, or loaded (on the CPU) from a run directory / checkpoint path."""
    if isinstance(gan, LoadedGAN):
        return gan
    if isinstance(gan, (str, os.PathLike)):
        return load_gan(gan, "cpu")
    raise TypeError(f"gan must be a LoadedGAN or a path (got {type(gan).__name__})")


def gan_source(gan: LoadedGAN | str | os.PathLike) -> str:
    """Where the GAN came from, for metrics: its path, also when ``load_gan`` already loaded it."""
    return str(gan.info.get("source", "LoadedGAN")) if isinstance(gan, LoadedGAN) else str(gan)


def gan_on(loaded: LoadedGAN, device: torch.device) -> LoadedGAN:
    """``loaded`` with generator and critic on ``device`` (moved in place, only when needed)."""
    if next(loaded.generator.parameters()).device != device:
        loaded.generator.to(device)
        loaded.critic.to(device)
    return loaded


@register_augmenter("gan")
class GANSampleAugmenter(MixingAugmenter):
    default_ratio = 0.5

    def __init__(self, *, gan: LoadedGAN | str | os.PathLike, ratio: float | None = None, weight: float = 1.0,
                 candidates: int = 1, judge: str = "ac", truncation: float | None = None):
        super().__init__(ratio=ratio, weight=weight)
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1 (got {candidates})")
        if judge not in JUDGES:
            raise ValueError(f"judge must be one of {', '.join(JUDGES)} (got {judge!r})")
        if truncation is not None and truncation <= 0:
            raise ValueError(f"truncation must be > 0 (got {truncation})")
        self.source = gan_source(gan)
        self.gan = resolve_gan(gan)
        self.candidates, self.judge, self.truncation = int(candidates), judge, truncation

    def augment(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loaded = gan_on(self.gan, x.device)
        k, n = self.candidates, len(y)
        labels = y.repeat(k)                                                # [k*n]: candidate j of slot i at j*n+i
        z = torch.randn(k * n, loaded.generator.cfg.z_dim, device=x.device)
        if self.truncation is not None:
            z = truncate(z, self.truncation)
        x_gen = sample(loaded.generator, labels, z).to(x.dtype)             # [k*n, C, H, W] in [0, 1]
        if k == 1:
            return x_gen
        conf = self._confidence(model, x_gen, labels).view(k, n)            # [k, n]
        best = conf.argmax(0)                                               # [n]
        return x_gen.view(k, n, *x_gen.shape[1:])[best, torch.arange(n, device=x.device)]

    @torch.no_grad()
    def _confidence(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The judge's softmax probability of label ``y`` for each sample ``[N]``."""
        if self.judge == "ac":
            with frozen(self.gan.critic):
                logits = self.gan.critic(x).class_logits
        else:
            with attack_mode(model) as forward:
                logits = forward(x)
        return logits.float().softmax(1).gather(1, y[:, None]).squeeze(1)

    def describe(self) -> dict:
        return {**super().describe(), "gan": self.source, "gan_step": self.gan.info.get("step"),
                "candidates": self.candidates, "judge": self.judge, "truncation": self.truncation}
