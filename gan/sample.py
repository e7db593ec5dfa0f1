"""Sampling API: load a generator from a checkpoint with no other flags, and draw class-conditional images.

Example::

    G = load_generator("runs/gan-digits", device)
    x = sample(G, torch.arange(10))          # [10, C, 32, 32] in [0, 1]
"""
from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.nn as nn

from grids import save_labelled_grid
from runs import CheckpointError, load_checkpoint

from .models import Critic, GANConfig, Generator


class LoadedGAN(NamedTuple):
    generator: Generator   # EMA weights, eval mode
    critic: Critic         # eval mode
    info: dict             # dataset, num_classes, classes, image_size, channels, step, version


@torch.no_grad()
def sample(generator: Generator, labels: torch.Tensor, z: torch.Tensor | None = None,
           truncation: float | None = None, *, rng: torch.Generator | None = None) -> torch.Tensor:
    """Draw G(z, y) in eval mode without gradients.

    Args:
        generator: a Generator (its device is used).
        labels: [B] int64 classes.
        z: [B, z_dim] latents; drawn from N(0, I) (with ``rng`` if given) when None.
        truncation: if set, every entry with |z| > truncation is resampled until none is left.
        rng: a torch.Generator on the generator's device, for reproducible draws.
    Returns:
        images [B, C, 32, 32] in [0, 1].
    """
    device = next(generator.parameters()).device
    labels = labels.to(device)
    if z is None:
        z = torch.randn(labels.shape[0], generator.cfg.z_dim, device=device, generator=rng)
    if truncation is not None:
        z = truncate(z, truncation, rng=rng)
    was_training = generator.training
    generator.eval()
    try:
        return generator(z.to(device), labels).clamp_(0, 1)
    finally:
        generator.train(was_training)


def truncate(z: torch.Tensor, threshold: float, *, rng: torch.Generator | None = None) -> torch.Tensor:
    """The truncation trick: resample entries of ``z`` whose magnitude exceeds ``threshold`` (> 0)."""
    if threshold <= 0:
        raise ValueError("truncation must be > 0")
    z = z.clone()
    bad = z.abs() > threshold
    while bad.any():
        z[bad] = torch.randn(int(bad.sum()), device=z.device, generator=rng)
        bad = z.abs() > threshold
    return z


@torch.no_grad()
def recalibrate_bn(generator: nn.Module, *, batches: int = 16, batch_size: int = 64, seed: int = 0) -> None:
    """Re-estimate the generator's BN statistics ("standing statistics") for its current weights.

    The EMA generator's weights are an average, so running statistics copied from the live generator
    do not match them; this averages batch statistics over ``batches`` random (z, y) batches. Uses its
    own RNG, so the global RNG (and exact resume) is untouched. Leaves the generator in eval mode.
    """
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None            # cumulative average over the calibration batches
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch_size, generator.cfg.z_dim, device=device, generator=rng)
        y = torch.randint(generator.cfg.num_classes, (batch_size,), device=device, generator=rng)
        generator(z, y)
    for m, mom in zip(norms, saved):
        m.momentum = mom
    generator.eval()


def load_gan(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedGAN:
    """Rebuild the EMA generator and the critic from a GAN checkpoint file or run directory.

    Raises:
        CheckpointError: missing/corrupt file, or not a GAN checkpoint (one line).
    """
    ckpt = load_checkpoint(path, kind="gan", map_location="cpu")
    try:
        cfg = GANConfig.from_dict(ckpt["config"]["model"])
        generator, critic = Generator(cfg), Critic(cfg)
        generator.load_state_dict(ckpt["ema"])
        critic.load_state_dict(ckpt["critic"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"{path} is a damaged GAN checkpoint: {first}") from None
    info = {k: ckpt.get(k) for k in ("dataset", "num_classes", "classes", "image_size", "channels",
                                     "step", "version")}
    info["source"] = str(path)
    return LoadedGAN(generator.to(device).eval(), critic.to(device).eval(), info)


def load_generator(path: str | os.PathLike, device: torch.device | str = "cpu") -> Generator:
    """The EMA generator of a GAN checkpoint (file or run directory), in eval mode on ``device``."""
    return load_gan(path, device).generator


def check_compatible(info: dict, *, num_classes: int, channels: int, image_size: int, dataset: str = "",
                     path: str | os.PathLike = "the GAN checkpoint") -> None:
    """Raise CheckpointError (one line) when a data set does not match what the GAN was trained on."""
    want = (info.get("num_classes"), info.get("channels"), info.get("image_size"))
    if want != (num_classes, channels, image_size):
        raise CheckpointError(
            f"{path} was trained on {info.get('dataset')} ({want[0]} classes, {want[1]}x{want[2]}x{want[2]} images) "
            f"but data set {dataset or '?'} has {num_classes} classes, {channels}x{image_size}x{image_size} images")


@torch.no_grad()
def save_sample_grid(generator: Generator, path: str | os.PathLike, *, classes: list[str] | None = None,
                     columns: int = 10, seed: int = 1, truncation: float | None = None, scale: int = 1,
                     max_classes: int = 100) -> torch.Tensor:
    """PNG grid of class-conditional samples from fixed noise: one row per class, ``columns`` samples each.

    Returns the grid [3, H, W] in [0, 1] (for TensorBoard's ``add_image``).
    """
    device = next(generator.parameters()).device
    k = min(generator.cfg.num_classes, max_classes)
    rng = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn(k * columns, generator.cfg.z_dim, device=device, generator=rng)   # [K*cols, z_dim]
    y = torch.arange(k, device=device).repeat_interleave(columns)                      # row r = class r
    x = sample(generator, y, z, truncation, rng=rng)                                   # [K*cols, C, 32, 32]
    labels = list(classes)[:k] if classes else [str(i) for i in range(k)]
    return save_labelled_grid(x.cpu(), path, nrow=columns, row_labels=labels, scale=scale)
