"""The device-resident loader: determinism, mid-epoch resume, crop/flip, short batch, sharding."""
from __future__ import annotations

import torch

from data import DeviceLoader, random_crop


def _loader(n=50, **kw):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous()
    return DeviceLoader(images, torch.arange(n), **{"batch_size": 16, "seed": 3, **kw})


def test_epochs_are_seeded_permutations_with_a_short_last_batch():
    loader = _loader()
    seen = [y for _, y in loader]
    assert [len(y) for y in seen] == [16, 16, 16, 2] and len(loader) == 4
    assert sorted(torch.cat(seen).tolist()) == list(range(50))
    again = [y for _, y in _loader()]
    assert all(torch.equal(a, b) for a, b in zip(seen, again))
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in loader]), torch.cat(seen))


def test_mid_epoch_start_gives_the_same_batches():
    loader = _loader(crop_pad=2, flip=True)
    loader.set_epoch(5)
    full = list(loader)
    tail = list(loader.batches(start=2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[2:], tail))


def test_images_come_out_as_floats_in_unit_range_matching_labels():
    for x, y in _loader():
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
        assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), y)


def test_random_crop_shifts_with_zero_fill():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4) + 1
    same = random_crop(x, torch.tensor([[1, 1]]), pad=1)
    assert torch.equal(same, x)
    down_right = random_crop(x, torch.tensor([[0, 0]]), pad=1)   # content moves down and right by 1
    assert torch.equal(down_right[0, 0, 1:, 1:], x[0, 0, :3, :3]) and down_right[0, 0, 0].sum() == 0


def test_flip_and_crop_are_applied_per_image():
    images = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).repeat(200, 1, 1, 1)
    loader = DeviceLoader(images, torch.zeros(200, dtype=torch.long), batch_size=200, flip=True, seed=0)
    x, _ = next(iter(loader))
    flipped = (x == images[:1].flip(3).float() / 255).flatten(1).all(1)
    assert 60 < flipped.sum() < 140     # about half of them


def test_shards_of_a_global_batch_cover_what_one_process_sees():
    one = _loader(batch_size=16)
    shards = [_loader(batch_size=8, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(one)
    for (_, y), (_, y0), (_, y1) in zip(one, *shards):
        assert torch.equal(y, torch.cat([y0, y1]))
