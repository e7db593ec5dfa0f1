"""Attack mode: the model as attacks see it, and the one function through which they call it.

Every attack (FGSM, PGD, the evaluation) calls the classifier through the ``forward`` that
``attack_mode`` yields: it takes pixels ``[B, C, H, W]`` in [0, 1] and returns logits ``[B, K]``,
whatever the model itself returns (a tensor, a dict with ``"logits"``, a tuple whose first item is
the logits). Inside the context parameter gradients are off; on exit the exact previous per-module
``training`` flags and per-parameter ``requires_grad`` are restored, also when the body raises.

Batch norm during an attack is a choice (``bn``), because the two modes are different functions while
a model trains (their input-gradient signs agreed on 52-59% of pixels during FGSM training on digits):

* ``"eval"`` (running statistics): the function that is evaluated and deployed, per sample, independent
  of the rest of the batch; BN statistics do not move; conv+BN can be fused. Evaluation, verdicts and
  the latent search use it.
* ``"train"`` (batch statistics, running statistics updated by every forward, exactly like the training
  step's forward): how the reference implementations craft adversarial *training* examples
  (locuslab/fast_adversarial ``train_fgsm.py`` / ``train_pgd.py``, Madry et al.'s code). The training
  augmenters default to it; their ``craft_bn="eval"`` setting crafts through the eval-mode view instead
  (``reproduce --ablations`` measures the two against each other).

``fast`` picks the reduced-precision forward: in eval mode the attack-time view (``view``: conv+BN fused,
channels-last, autocast, refreshed from the live weights on entry, fp32 ``exact`` for verdicts); in train
mode the live model itself under autocast with channels-last inputs (no fusion: batch statistics change
every call). ``fast=False`` is the plain fp32 model in either mode.

Example::

    with attack_mode(model) as forward:
        logits = forward(x)          # [B, K], model in eval mode, no parameter grads
    with attack_mode(model, bn="train") as forward:
        logits = forward(x)          # [B, K], batch statistics, as in the training forward
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn as nn

import runtime

from .view import AttackView, as_logits

Forward = Callable[[torch.Tensor], torch.Tensor]   # [B, C, H, W] in [0, 1] -> logits [B, K]


def exact(forward: Forward) -> Forward:
    """The forward that takes verdicts: an attack view's fp32 ``exact``, else ``forward`` itself."""
    return getattr(forward, "exact", forward)


def call_logits(model: Callable, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` reduced to its logits ``[B, K]``."""
    return as_logits(model(x))


BN_MODES = ("train", "eval")


@contextlib.contextmanager
def frozen(module: nn.Module, *, train: bool = False) -> Iterator[nn.Module]:
    """Eval mode (``train``: train mode) with parameter gradients off for the body; the exact previous
    per-module ``training`` flags and per-parameter ``requires_grad`` are restored on exit, also when the
    body raises. DistributedDataParallel and torch.compile wrappers are looked through (attacks need no
    gradient sync and are not compiled)."""
    module = runtime.unwrap(module)
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        module.train(train)
        for p, _ in flags:
            p.requires_grad_(False)
        yield module
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


class TrainModeForward:
    """The live model in train mode as attacks call it: inputs in the model's memory format (channels-last when
    the training loop made it so), autocast when ``amp``, fp32 logits. No ``exact``: a verdict or an fp32 recompute of a subset would see other batch statistics."""

    per_sample = False            # batch statistics: a sample's logits depend on the rest of the batch

    def __init__(self, module: nn.Module, amp: bool):
        self.module, self.amp = module, amp
        device = next(module.parameters(), torch.empty(0)).device
        self.grad_scale = 1024.0 if amp and runtime.autocast_dtype(device) == torch.float16 else 1.0
        conv = next((p for p in module.parameters() if p.dim() == 4), None)   # inputs in the model's own format
        self.channels_last = conv is not None and not conv.is_contiguous() and \
            conv.is_contiguous(memory_format=torch.channels_last)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(x.device, self.amp):
            return as_logits(self.module(x)).float()


@contextlib.contextmanager
def attack_mode(model: nn.Module | Callable, fast: bool = True, bn: str = "eval") -> Iterator[Forward]:
    """Put ``model`` in attack mode for the body; yields ``forward(x) -> logits``.

    Args:
        model: an ``nn.Module`` (frozen for the body, see ``frozen``), an ``AttackView`` (its model is
            frozen, the view refreshed and yielded), or any other callable, used as it is (e.g. a
            ``forward`` yielded by an outer ``attack_mode``).
        fast: reduced precision (eval: the attack-time view; train: autocast) rather than plain fp32.
        bn: ``"eval"`` (running statistics) or ``"train"`` (batch statistics; see the module docstring).
    """
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)} (got {bn!r})")
    if isinstance(model, AttackView):
        with frozen(model.model):
            yield model.refresh()
        return
    if not isinstance(model, nn.Module):
        yield partial(call_logits, model)
        return
    with frozen(model, train=bn == "train") as module:
        if bn == "train":
            yield TrainModeForward(module, amp=fast)
        else:
            yield AttackView.of(module).refresh() if fast else partial(call_logits, module)
