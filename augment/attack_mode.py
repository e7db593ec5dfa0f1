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

This is the place for the fast attack-time view (fusion, channels-last, autocast; issue 5): it
will be yielded here instead of the plain ``forward`` and the attacks need not change.

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

Forward = Callable[[torch.Tensor], torch.Tensor]   # [B, C, H, W] in [0, 1] -> logits [B, K]


def as_logits(out) -> torch.Tensor:
    """The logits in a model's output: a tensor, ``out["logits"]``, ``out.logits`` or ``out[0]``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return out["logits"]
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    raise TypeError(f"cannot find logits in a model output of type {type(out).__name__}")


def call_logits(model: Callable, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` reduced to its logits ``[B, K]``."""
    return as_logits(model(x))


@contextlib.contextmanager
def attack_mode(model: nn.Module | Callable) -> Iterator[Forward]:
    """Put ``model`` in attack mode for the body; yields ``forward(x) -> logits``.

    Args:
        model: an ``nn.Module`` (a DistributedDataParallel wrapper is looked through: attacks need
            no gradient sync), or an already prepared callable (e.g. a ``forward`` yielded by an
            outer ``attack_mode``), which is used as it is.
    """
    if not isinstance(model, nn.Module):
        yield partial(call_logits, model)
        return
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield partial(call_logits, model)
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)
