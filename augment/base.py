"""The augmenter interface and its registry.

An augmenter maps a clean batch and the live model to the batch to train on. The classifier's
training loop knows only this interface:

    for each minibatch (x, y):
        for r in range(aug.replays):            # free adversarial training replays (m); 1 otherwise
            batch = aug(model, x, y)            # AugBatch, called outside autocast
            loss = mean(weight * CE(model(batch.x), batch.y))
            loss.backward()
            aug.after_backward()                # free: read delta.grad from that same backward
            optimizer.step()

The loop runs ``ceil(epochs / aug.replays)`` epochs, so replaying costs no extra work, and its lr
schedule is defined on optimizer steps, so milestones scale alike.
"""
from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from registry import Registry


class AugBatch(NamedTuple):
    x: torch.Tensor                      # [B, C, H, W] in [0, 1]
    y: torch.Tensor                      # [B] int64
    weight: torch.Tensor | None = None   # [B] per-sample loss weight; None means all ones


class Augmenter:
    """Base class: identity augmentation. Subclasses override ``__call__`` (and, if stateful, the rest).

    Contract: images stay in [0, 1]; the model is left as it was found (train/eval mode, parameter
    ``requires_grad`` and ``.grad`` untouched).
    """

    name = "none"
    replays: int = 1

    @classmethod
    def options(cls) -> list[str]:
        """The settings this augmenter takes: the keyword parameters of its ``__init__``."""
        if cls.__init__ is object.__init__:
            return []
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> AugBatch:
        return AugBatch(x, y)

    def after_backward(self) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()``."""

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of every epoch of the training loop."""

    def state_dict(self) -> dict:
        """Tensors/primitives to store in the checkpoint (for exact resume)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def describe(self) -> dict:
        """The augmenter's name and settings, recorded in metrics.json (``train.augment``) and TensorBoard."""
        return {"name": self.name}


AUGMENTERS = Registry("augment mode")


def register_augmenter(name: str) -> Callable[[type[Augmenter]], type[Augmenter]]:
    def deco(cls):
        cls.name = name
        return AUGMENTERS.register(name)(cls)
    return deco


def augmenter_names() -> list[str]:
    return AUGMENTERS.names()


def augmenter_class(name: str) -> type[Augmenter]:
    """The class registered under ``name`` (``options()`` lists the settings it takes)."""
    return AUGMENTERS.lookup(name)


def build_augmenter(name: str, **kw) -> Augmenter:
    """Build a registered augmenter by name, e.g. ``build_augmenter("fgsm", eps=0.1)``."""
    return augmenter_class(name)(**kw)


register_augmenter("none")(Augmenter)
