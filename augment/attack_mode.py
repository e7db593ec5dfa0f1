"""Attack mode: the model as attacks see it, and the one function through which they call it.

Every attack (FGSM, PGD, the evaluation) calls the classifier through the ``forward`` that
``attack_mode`` yields: it takes pixels ``[B, C, H, W]`` in [0, 1] and returns logits ``[B, K]``,
whatever the model itself returns (a tensor, a dict with ``"logits"``, a tuple whose first item is
the logits). Inside the context the model is in eval mode with parameter gradients off; on exit the
exact previous per-module ``training`` flags and per-parameter ``requires_grad`` are restored, also
when the body raises.

Why eval mode (batch norm on running statistics) during attacks, training attacks included:
  * the attack then perturbs the function that is evaluated and deployed, per sample, independent of
    which other samples share the batch;
  * attack passes do not move BN running statistics (a K-step PGD in train mode would update them K
    times per batch with half-finished adversarial inputs);
  * it is cheaper (PERF_NOTES: 9-18%) and is what conv+BN fusion in the fast attack-time view needs.
  The training forward that follows still uses batch statistics (the loop's model is in train mode).

The forward yielded is, by default, the fast attack-time view of the model (``attack_view``:
conv+BN fused, channels-last, autocast, refreshed from the live weights on entry); ``fast=False``
yields the plain fp32 model. Verdicts (``attacks.predict``) use the view's fp32 ``exact`` forward.

Example::

    with attack_mode(model) as forward:
        logits = forward(x)          # [B, K], model in eval mode, no parameter grads
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn as nn

from .attack_view import AttackView, as_logits

Forward = Callable[[torch.Tensor], torch.Tensor]   # [B, C, H, W] in [0, 1] -> logits [B, K]


def exact(forward: Forward) -> Forward:
    """The forward that takes verdicts: an attack view's fp32 ``exact``, else ``forward`` itself."""
    return getattr(forward, "exact", forward)


def call_logits(model: Callable, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` reduced to its logits ``[B, K]``."""
    return as_logits(model(x))


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode with parameter gradients off for the body; the exact previous per-module ``training``
    flags and per-parameter ``requires_grad`` are restored on exit, also when the body raises.
    DistributedDataParallel and torch.compile wrappers are looked through (attacks need no gradient sync
    and are not compiled)."""
    while isinstance(module, nn.parallel.DistributedDataParallel) or hasattr(module, "_orig_mod"):
        module = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module._orig_mod
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        module.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield module
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)


@contextlib.contextmanager
def attack_mode(model: nn.Module | Callable, fast: bool = True) -> Iterator[Forward]:
    """Put ``model`` in attack mode for the body; yields ``forward(x) -> logits``.

    Args:
        model: an ``nn.Module`` (frozen for the body, see ``frozen``), an ``AttackView`` (its model is
            frozen, the view refreshed and yielded), or any other callable, used as it is (e.g. a
            ``forward`` yielded by an outer ``attack_mode``).
        fast: yield the attack-time view of a module rather than the plain fp32 module.
    """
    if isinstance(model, AttackView):
        with frozen(model.model):
            yield model.refresh()
        return
    if not isinstance(model, nn.Module):
        yield partial(call_logits, model)
        return
    with frozen(model) as module:
        yield AttackView.of(module).refresh() if fast else partial(call_logits, module)
