"""A tiny DenseNet trained for a few seconds on digits, shared (cached per process) by the attack,
augmenter and evaluation tests. Not a test module."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from classifier import build_classifier
from data import DeviceLoader, load_dataset


@functools.lru_cache(maxsize=1)
def digits():
    return load_dataset("digits")


@functools.lru_cache(maxsize=1)
def trained_tiny_model(epochs: int = 2):
    """DenseNet-BC-22-8 (1 channel, 10 classes) after ``epochs`` of Adam on digits; left in eval mode.

    BN running statistics are recomputed over the training set at the end (a 2-epoch run's running
    averages lag far behind its weights)."""
    torch.manual_seed(0)
    ds = digits()
    mean, std = ds.channel_stats()
    model = build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1, mean=mean, std=std)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DeviceLoader(ds.train.images, ds.train.labels, batch_size=64, seed=0)
    model.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    recalibrate_bn(model, ds.train.images.float() / 255)
    return model.eval()


@torch.no_grad()
def recalibrate_bn(model, x):
    """BN running statistics := the exact averages over ``x`` (one train-mode pass, cumulative momentum)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for xb in x.split(256):
        model(xb)
    for bn in bns:
        bn.momentum = 0.1


def held_out_batch(n: int = 128):
    """The first ``n`` test images as float [n, 1, 32, 32] in [0, 1] and their labels [n]."""
    split = digits().test
    return split.images[:n].float() / 255, split.labels[:n]


def tiny_cnn(seed: int = 0, in_channels: int = 1, num_classes: int = 10) -> torch.nn.Module:
    """A few-hundred-parameter CNN with batch norm and dropout (modes that attacks must restore), for
    tests of the mechanics that need no trained DenseNet."""
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Dropout(0.1), nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
