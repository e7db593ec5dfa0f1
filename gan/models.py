"""ResNet AC-GAN for 32x32 images: a class-conditional generator and a norm-free critic.

The generator maps ``z`` [B, z_dim] and labels ``y`` [B] to images [B, C, 32, 32] in [0, 1] (its tanh is
mapped to [0, 1] inside, once). The critic maps [0, 1] images to ``CriticOutput(score [B],
class_logits [B, K])``. It has no batch norm, so the gradient penalty stays a per-sample quantity.
Channel schedules are per resolution, so a CPU preset can keep width where pixels are few.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from registry import Registry


@dataclass
class GANConfig:
    """Architecture of both networks; ``asdict(cfg)`` is stored in checkpoints.

    Args:
        num_classes: number of classes K.
        out_channels: image channels (1 grey, 3 colour).
        z_dim: latent size.
        g_channels: generator channels at 4, 8, 16 and 32 px (the linear layer gives the first).
        d_channels: critic block outputs; the first two blocks halve the resolution (32 -> 16 -> 8).
    """
    num_classes: int = 10
    out_channels: int = 3
    z_dim: int = 128
    image_size: int = 32
    g_channels: tuple[int, ...] = (128, 128, 128, 128)
    d_channels: tuple[int, ...] = (128, 128, 128, 128)

    def __post_init__(self):
        self.g_channels, self.d_channels = tuple(self.g_channels), tuple(self.d_channels)
        if self.image_size != 32 or len(self.g_channels) != 4:
            raise ValueError("the ResNet GAN is built for 32x32 images with 4 generator channel entries")
        if len(self.d_channels) < 2:
            raise ValueError("the critic needs at least two blocks (32 -> 16 -> 8 px)")

    @classmethod
    def from_dict(cls, d: dict) -> "GANConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Architecture presets (training presets live in gan/train.py beside TrainConfig).
MODEL_PRESETS = Registry("GAN preset", {
    "cifar": dict(g_channels=(128, 128, 128, 128), d_channels=(128, 256, 256, 256)),
    # uniform 32 wide (no 16-channel layers: bf16 oneDNN kernels were 3-5x slower there). A 64-wide
    # schedule at low resolution cost ~1.8x per step and gave fewer steps in the CPU budget, which on
    # digits lost more sample accuracy than its faster class head gained
    "small": dict(g_channels=(32, 32, 32, 32), d_channels=(32, 32, 32, 32)),
})


def model_config(preset: str, **overrides) -> GANConfig:
    return GANConfig(**{**MODEL_PRESETS.lookup(preset), **overrides})


class CriticOutput(NamedTuple):
    score: torch.Tensor          # [B] adversarial score (higher = more real)
    class_logits: torch.Tensor   # [B, K] auxiliary classifier


# ----------------------------------------------------------------------------- generator

class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine terms, then a per-class gain (init 1) and bias (init 0)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = self.gain(y)[:, :, None, None]                  # [B, C, 1, 1]
        b = self.bias(y)[:, :, None, None]
        return self.bn(x) * g + b


class GBlock(nn.Module):
    """cBN-ReLU-Up-Conv3x3-cBN-ReLU-Conv3x3 with an upsampled 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, num_classes)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn2 = ConditionalBatchNorm2d(c_out, num_classes)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))   # [B, c_out, 2H, 2W]


class Generator(nn.Module):
    """G(z, y): z [B, z_dim], y [B] int64 -> images [B, out_channels, 32, 32] in [0, 1]."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.g_channels
        self.linear = nn.Linear(cfg.z_dim, 4 * 4 * ch[0])
        self.blocks = nn.ModuleList(GBlock(ch[i], ch[i + 1], cfg.num_classes) for i in range(3))
        self.bn = nn.BatchNorm2d(ch[3])
        self.conv = nn.Conv2d(ch[3], cfg.out_channels, 3, padding=1)
        init_weights(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], -1, 4, 4)          # [B, C0, 4, 4]
        for block in self.blocks:
            h = block(h, y)                                     # 4 -> 8 -> 16 -> 32 px
        h = torch.tanh(self.conv(F.relu(self.bn(h))))           # [B, C, 32, 32] in [-1, 1]
        return h.float().add(1).mul(0.5)                        # [B, C, 32, 32] in [0, 1]


# ----------------------------------------------------------------------------- critic

class DBlock(nn.Module):
    """(ReLU)-Conv3x3-ReLU-Conv3x3-(AvgPool) with a 1x1 shortcut; ``first`` skips the leading ReLU."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, first: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or down) else nn.Identity()
        self.down, self.first = down, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        sc = x
        if self.first:   # pool before the 1x1 conv: same result, 4x cheaper
            sc = self.shortcut(F.avg_pool2d(x, 2))
            return F.avg_pool2d(h, 2) + sc
        if self.down:
            h, sc = F.avg_pool2d(h, 2), F.avg_pool2d(self.shortcut(sc), 2)
        else:
            sc = self.shortcut(sc)
        return h + sc


class Critic(nn.Module):
    """D(x): images [B, C, 32, 32] in [0, 1] -> CriticOutput(score [B], class_logits [B, K]). No batch norm."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        ch = (cfg.out_channels,) + cfg.d_channels
        self.blocks = nn.Sequential(*(DBlock(ch[i], ch[i + 1], down=i < 2, first=i == 0)
                                      for i in range(len(cfg.d_channels))))
        self.score = nn.Linear(ch[-1], 1)
        self.classify = nn.Linear(ch[-1], cfg.num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x * 2 - 1)                              # [B, C, 8, 8]; input mapped to [-1, 1]
        return F.relu(h).mean(dim=(2, 3))                       # [B, C]

    def forward(self, x: torch.Tensor) -> CriticOutput:
        f = self.features(x)
        return CriticOutput(self.score(f).squeeze(1).float(), self.classify(f).float())


def init_weights(module: nn.Module) -> None:
    """He init for convolutions, Xavier for linear layers, zero biases (the reference ResNet GAN's choice).

    PyTorch's default init shrinks activations layer by layer in this norm-free critic, which left its
    class head near chance for hundreds of steps.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)


def build_gan(cfg: GANConfig) -> tuple[Generator, Critic]:
    """A fresh generator and critic for ``cfg``."""
    return Generator(cfg), Critic(cfg)
