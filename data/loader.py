"""A batch loader that keeps the whole split on the device as one uint8 tensor.

Per epoch a seeded permutation plus every crop offset and flip is drawn at once, so batch ``k`` of
epoch ``e`` is a pure function of (seed, e, k): a run resumed mid-epoch sees the very same batches.
Crop (zero padding) and flip are batched tensor ops on the device. Sharding across ranks splits each
*global* batch (``batch_size * world_size`` samples) so N ranks see exactly what one process with the
global batch would see.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F


class DeviceLoader:
    """Iterate ``(x, y)`` batches: x float [B, C, H, W] in [0, 1] on ``device``, y int64 [B].

    Args:
        images: uint8 [N, C, H, W]; labels: int64 [N].
        batch_size: per-rank batch size.
        shuffle: new seeded permutation every epoch (else data order).
        crop_pad: random crop after zero padding by this many pixels (0: off).
        flip: random horizontal flip with probability 1/2.
        seed: base seed; epoch ``e`` uses ``seed`` and ``e``.
        rank, world_size: this process's shard of every global batch.
        drop_last: drop a short final global batch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 device: torch.device | str = "cpu", shuffle: bool = True, crop_pad: int = 0,
                 flip: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("images must be uint8 [N, C, H, W]")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.crop_pad, self.flip = batch_size, shuffle, crop_pad, flip
        self.seed, self.rank, self.world_size, self.drop_last = seed, rank, world_size, drop_last
        self.epoch = 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        n, g = len(self.labels), self.global_batch
        full, rest = divmod(n, g)
        return full + (1 if rest >= self.world_size and not self.drop_last else 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(start=0)

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the current epoch from batch index ``start`` on (for mid-epoch resume)."""
        order, shifts, flips = self._epoch_draws()
        g = self.global_batch
        for b in range(start, len(self)):
            idx = order[b * g:(b + 1) * g]
            idx = idx.tensor_split(self.world_size)[self.rank]      # this rank's share
            x = self.images[idx]                                      # [B, C, H, W] uint8
            if self.crop_pad:
                x = random_crop(x, shifts[idx], self.crop_pad)
            if self.flip:
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            yield x.float().div_(255), self.labels[idx]

    def _epoch_draws(self):
        n = len(self.labels)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        shifts = torch.randint(0, 2 * self.crop_pad + 1, (n, 2), generator=gen)   # per image (dy, dx)
        flips = torch.rand(n, generator=gen) < 0.5
        dev = self.device
        return order.to(dev), shifts.to(dev), flips.to(dev)


def random_crop(x: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """Crop each image of ``x`` [B, C, H, W] at its own offset ``shifts`` [B, 2] after zero padding."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))                                   # [B, C, H+2p, W+2p]
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = (shifts[:, 0:1] + ar_h).view(b, 1, h, 1)                         # [B, 1, H, 1]
    cols = (shifts[:, 1:2] + ar_w).view(b, 1, 1, w)                         # [B, 1, 1, W]
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[bi, ci, rows, cols]
