"""DenseNet-BC for 32x32 images (Huang et al. 2017), with input normalisation as its first layer.

Inputs are [0, 1] pixels ``[B, C, 32, 32]``; ``features(x)`` gives the penultimate features
``[B, F]`` and ``head`` maps them to logits. Traceable by ``torch.fx`` (memory_efficient=False).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

import runs
import runtime
from registry import Registry


@dataclass
class DenseNetConfig:
    depth: int = 100
    growth_rate: int = 12
    compression: float = 0.5
    bottleneck: bool = True
    dropout: float = 0.0
    num_classes: int = 100
    in_channels: int = 3
    mean: list[float] = field(default_factory=lambda: [0.5])
    std: list[float] = field(default_factory=lambda: [0.25])
    memory_efficient: bool = False   # recompute the bottleneck's BN-ReLU-Conv1x1 in backward

    def layers_per_block(self) -> int:
        n = (self.depth - 4) // 3
        return n // 2 if self.bottleneck else n


PRESETS = Registry("arch", {
    "densenet-bc-100-12": dict(depth=100, growth_rate=12),   # ~0.80M params (100 classes)
    "densenet-bc-40-12": dict(depth=40, growth_rate=12),     # small, for CPU
    "densenet-bc-190-40": dict(depth=190, growth_rate=40),   # ~25.6M params
    "densenet-bc-22-8": dict(depth=22, growth_rate=8),       # tiny, for tests and the demo
})


class Normalize(nn.Module):
    """(x - mean) / std per channel; the stats are buffers, so they travel in the state dict."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k); returns the k new feature maps."""

    def __init__(self, c_in: int, growth: int, bottleneck: bool, dropout: float, memory_efficient: bool):
        super().__init__()
        c_mid = 4 * growth if bottleneck else c_in
        self.bottleneck = bottleneck
        if bottleneck:
            self.norm1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_mid, 1, bias=False)
        self.norm2, self.conv2 = nn.BatchNorm2d(c_mid), nn.Conv2d(c_mid, growth, 3, padding=1, bias=False)
        self.dropout = dropout
        self.memory_efficient = memory_efficient

    def _reduce(self, *features: torch.Tensor) -> torch.Tensor:
        x = features[0] if len(features) == 1 else torch.cat(features, 1)
        return self.conv1(F.relu(self.norm1(x)))

    def forward(self, features: list[torch.Tensor]):
        """``features``: the block input and every earlier layer's new maps; concatenated here, so that
        the memory-efficient mode keeps only these (linear in depth) and recomputes the concatenation,
        BN, ReLU and 1x1 conv in backward instead of storing them (quadratic)."""
        if self.bottleneck:
            if self.memory_efficient and self.training and any(f.requires_grad for f in features):
                x = cp.checkpoint(self._reduce, *features, use_reentrant=False)
            else:
                x = self._reduce(*features)
            if self.dropout:
                x = F.dropout(x, self.dropout, self.training)
        else:
            x = features[0] if len(features) == 1 else torch.cat(features, 1)
        x = self.conv2(F.relu(self.norm2(x)))
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        return x


class DenseBlock(nn.Module):
    def __init__(self, n_layers: int, c_in: int, growth: int, **kw):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth, **kw) for i in range(n_layers))
        self.memory_efficient = kw.get("memory_efficient", False)

    def forward(self, x):
        if self.memory_efficient:             # the maps stay apart; each layer concatenates (recomputed)
            features = [x]
            for layer in self.layers:
                features.append(layer(features))  # [B, k, H, W] each
            return torch.cat(features, 1)         # [B, C + n k, H, W]
        for layer in self.layers:             # growing concatenation: fewer, larger copies (faster)
            x = torch.cat([x, layer([x])], 1)     # [B, C + k, H, W]
        return x


class Transition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.AvgPool2d(2))


class DenseNet(nn.Module):
    def __init__(self, cfg: DenseNetConfig):
        super().__init__()
        if (cfg.depth - 4) % (6 if cfg.bottleneck else 3) != 0:
            raise ValueError(f"DenseNet depth {cfg.depth} must be 6n+4 (bottleneck) or 3n+4")
        self.cfg = cfg
        k, n = cfg.growth_rate, cfg.layers_per_block()
        kw = dict(bottleneck=cfg.bottleneck, dropout=cfg.dropout, memory_efficient=cfg.memory_efficient)
        c = 2 * k if cfg.bottleneck else 16
        stages: list[nn.Module] = [Normalize(cfg.mean, cfg.std), nn.Conv2d(cfg.in_channels, c, 3, padding=1, bias=False)]
        for i in range(3):
            stages.append(DenseBlock(n, c, k, **kw))
            c += n * k
            if i < 2:
                c_out = int(c * cfg.compression)
                stages.append(Transition(c, c_out))
                c = c_out
        stages += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*stages)   # [B, C, 32, 32] in [0,1] -> [B, F]
        self.head = nn.Linear(c, cfg.num_classes)
        self.num_features = c
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):  # x [B, C, 32, 32] in [0, 1] -> logits [B, num_classes]
        return self.head(self.features(x))


def build_classifier(arch: str | DenseNetConfig, **overrides) -> DenseNet:
    """Build a DenseNet-BC from a preset name (see PRESETS) or a config, with field overrides.

    Example::

        model = build_classifier("densenet-bc-40-12", num_classes=10, in_channels=1)
    """
    if isinstance(arch, DenseNetConfig):
        cfg = replace(arch, **overrides)
    else:
        cfg = DenseNetConfig(**{**PRESETS.lookup(arch), **overrides})
    return DenseNet(cfg)


def classifier_config(model: nn.Module) -> dict:
    """The model's config as a plain dict (stored in checkpoints; rebuild with ``DenseNetConfig(**d)``)."""
    return asdict(runtime.unwrap(model).cfg)


def load_classifier(path, device: torch.device | str = "cpu") -> tuple[DenseNet, dict]:
    """Rebuild a trained classifier from a checkpoint file or run directory (no other flags needed).

    Returns ``(model in eval mode on device, checkpoint dict)``. Raises ``runs.CheckpointError``.
    """
    ckpt = runs.load_checkpoint(path, kind="classifier", map_location="cpu")
    cfg = DenseNetConfig(**{**ckpt["config"]["model"], "memory_efficient": False})
    model = DenseNet(cfg)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
