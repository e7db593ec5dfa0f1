"""What the application layer's steps share: the user-facing config error, checks that a checkpoint
fits a data set, loading a compatible AC-GAN, and the one-line progress messages."""
from __future__ import annotations

import sys

import runs
import runtime
from data import ImageDataset
from gan import LoadedGAN, check_compatible as gan_compatible, load_gan


class ConfigError(ValueError):
    """Options that do not fit together (one line, for the user)."""


def load_compatible_gan(path, ds: ImageDataset, dev) -> LoadedGAN:
    """Load a GAN run/checkpoint and check it was trained on this data set's classes and image shape."""
    loaded = load_gan(path, dev)
    gan_compatible(loaded.info, num_classes=ds.num_classes, channels=ds.channels, image_size=ds.image_size,
                   dataset=ds.name, path=path)
    return loaded


def check_compatible(ds: ImageDataset, ckpt: dict, *, what: str) -> None:
    """A checkpoint trained on other classes or another image shape cannot be used with ``ds``."""
    if ckpt["num_classes"] != ds.num_classes:
        raise runs.CheckpointError(f"the {what} has {ckpt['num_classes']} classes but {ds.name} has "
                                   f"{ds.num_classes}")
    cfg = ckpt["config"].get("model", {})
    if cfg.get("in_channels", ds.channels) != ds.channels:
        raise runs.CheckpointError(f"the {what} takes {cfg['in_channels']}-channel images but {ds.name} "
                                   f"has {ds.channels}")


def say(msg: str) -> None:
    if runtime.dist_info().is_main:
        print(msg, file=sys.stderr, flush=True)

