"""A tiny class-conditional generator and AC critic for the latent-search and GAN-augmenter tests,
fitted in seconds on digits. Not a test module.

Training even a tiny AC-GAN to recognisable samples takes minutes on 2 CPU cores, so the tests use
a cheaper honest pair: the generator is a per-class probabilistic PCA fitted in closed form
(``G(z, y) = clamp(mean_y + z @ (scaled top-k components of class y))``, z ~ N(0, I)): a real,
differentiable generative model whose samples the tiny DenseNet and the AC head recognise; the
critic is the project's ``gan.Critic`` whose auxiliary head is trained (cross-entropy only) on the
real training digits. The latent search and the augmenters only need G(z, y) and D(x).class_logits.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan import Critic, GANConfig, LoadedGAN
from tests.tiny_digits import digits


class PPCAGenerator(nn.Module):
    """G(z [B, z_dim], y [B]) -> [B, C, H, W] in [0, 1]: class mean + z times the class's top components."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10, z_dim: int = 16):
        super().__init__()
        x = images.float().flatten(1) / 255                                  # [N, D]
        means, bases = [], []
        for c in range(num_classes):
            xc = x[labels == c]
            mean = xc.mean(0)
            _, s, vh = torch.linalg.svd(xc - mean, full_matrices=False)
            bases.append(vh[:z_dim] * (s[:z_dim, None] / len(xc) ** 0.5))   # [z_dim, D]: std-scaled
            means.append(mean)
        self.mean = nn.Parameter(torch.stack(means))                        # [K, D]
        self.basis = nn.Parameter(torch.stack(bases))                       # [K, z_dim, D]
        self.image_shape = tuple(images.shape[1:])
        self.cfg = SimpleNamespace(z_dim=z_dim, num_classes=num_classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.mean[y] + torch.einsum("bk,bkd->bd", z, self.basis[y])     # [B, D]
        return x.clamp(0, 1).view(-1, *self.image_shape)


def ac_critic(steps: int = 150, seed: int = 0) -> Critic:
    """A small ``gan.Critic`` whose auxiliary-class head is trained on real digits (score head untrained)."""
    torch.manual_seed(seed)
    ds = digits()
    critic = Critic(GANConfig(num_classes=10, out_channels=1, d_channels=(8, 16, 32)))
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    x, y = ds.train.images.float() / 255, ds.train.labels
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = F.cross_entropy(critic(x[idx]).class_logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    critic.zero_grad(set_to_none=True)
    return critic.eval()


@functools.lru_cache(maxsize=1)
def tiny_gan() -> LoadedGAN:
    """The fitted generator and critic (cached per process); callers must leave them as found."""
    ds = digits()
    generator = PPCAGenerator(ds.train.images, ds.train.labels).eval()
    info = {"dataset": "digits", "num_classes": 10, "channels": 1, "image_size": 32, "step": 0}
    return LoadedGAN(generator, ac_critic(), info)
