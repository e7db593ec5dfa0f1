"""L-inf attacks in [0, 1] pixel space: FGSM and PGD (with restarts), as pure functions.

Both take gradients of the logits' loss with respect to the input only (``torch.autograd.grad``:
parameter ``.grad`` stays untouched), call the model through ``attack_mode`` (eval mode, parameter
gradients off, everything restored afterwards) and project to the eps ball and to [0, 1] after the
random start and after every step. Losses are small per-sample functions chosen by name
(``ATTACK_LOSSES``): ``"ce"`` (cross-entropy) and ``"cw"`` (Carlini-Wagner margin).

Randomness (random starts) comes from ``generator`` when given (a ``torch.Generator`` on the
inputs' device; evaluation passes a seeded one), else from the global RNG (training, whose RNG
state is checkpointed).

Example::

    x_adv = pgd(model, x, y, eps=8 / 255, steps=10)          # [B, C, H, W] in [0, 1]
    acc = (predict(model, x_adv) == y).float().mean()
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from registry import Registry

from .mode import Forward, attack_mode, exact

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (logits [B, K], y [B]) -> [B]


# ----------------------------------------------------------------------------- losses (to maximise)

def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``[B]`` (computed in fp32)."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def cw_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample CW margin ``max_{j != y} z_j - z_y`` ``[B]``: positive means misclassified."""
    z = logits.float()
    z_true = z.gather(1, y[:, None]).squeeze(1)                          # [B]
    z_other = z.scatter(1, y[:, None], float("-inf")).amax(1)            # [B]
    return z_other - z_true


ATTACK_LOSSES = Registry("attack loss", {"ce": ce_loss, "cw": cw_loss})
attack_loss = ATTACK_LOSSES.lookup


# ----------------------------------------------------------------------------- building blocks

def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x_adv`` onto the L-inf ball of radius ``eps`` around ``x``, then onto [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)


def random_init(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``clamp(x + U(-eps, eps), 0, 1)``, drawn from ``generator`` (or the global RNG)."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)   # [B, C, H, W]
    return (x + (2 * u - 1) * eps).clamp_(0, 1)


def _grad(forward: Forward, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
          scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = forward(x)                                                  # [B, K]
        (grad,) = torch.autograd.grad(loss_fn(logits, y).sum() * scale, x)
    return (grad / scale if scale != 1 else grad), logits.detach()


def input_grad(forward: Forward, x_adv: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
               with_logits: bool = False):
    """Gradient of ``sum(loss_fn(forward(x_adv), y))`` w.r.t. ``x_adv`` only; non-finite entries -> 0.

    With a reduced-precision attack view the loss is scaled for fp16 (``forward.grad_scale``), and the
    samples whose gradient came out all zero or non-finite are recomputed with ``forward.exact`` (fp32).
    ``with_logits``: also return the forward's logits ``[B, K]`` (detached).
    """
    grad, logits = _grad(forward, x_adv, y, loss_fn, getattr(forward, "grad_scale", 1.0))
    fp32 = exact(forward)
    if fp32 is not forward:
        flat = grad.flatten(1)
        bad = ~torch.isfinite(flat).all(1) | (flat.abs().amax(1) == 0)                   # [B]
        if bad.any():
            grad[bad] = _grad(fp32, x_adv[bad], y[bad], loss_fn, 1.0)[0]
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    return (grad, logits) if with_logits else grad


@torch.no_grad()
def predict(model, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``[B]`` of ``x`` in attack mode: verdicts use the exact fp32 forward of an
    attack view (the model as evaluated and deployed), whatever precision the attack ran in."""
    with attack_mode(model) as forward:
        return exact(forward)(x).argmax(1)


def correct(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: is ``x`` still classified as ``y`` (the fp32 verdict of ``predict``)."""
    return predict(model, x) == y


def misclassified(forward: Forward, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: ``logits`` (of ``forward(x)``) say wrong, confirmed by the fp32 verdict where the forward
    has one (a reduced-precision flip that fp32 does not see is not a success)."""
    wrong = logits.argmax(1) != y
    fp32 = exact(forward)
    if fp32 is not forward and bool(wrong.any()):
        with torch.no_grad():
            wrong[wrong.clone()] = fp32(x[wrong]).argmax(1) != y[wrong]
    return wrong


def signed_ascent(forward: Forward, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float,
                  steps: int, start: bool, loss_fn: LossFn, generator: torch.Generator | None = None,
                  early_stop: bool = False) -> torch.Tensor:
    """``steps`` signed-gradient steps of size ``alpha`` from ``x`` (or a random start), projected.

    ``early_stop``: a sample stops moving once it is misclassified, checked on each iterate before its
    step as locuslab's ``attack_pgd`` does, so the iterate returned is the first misclassified one rather
    than the last. Forwards that see samples independently (eval mode) then only forward the samples still
    moving; a train-mode forward (``per_sample = False``: batch statistics) always takes the whole batch.
    """
    x = x.detach()
    x_adv = random_init(x, eps, generator) if start else x.clone()
    moving = torch.ones(len(x), dtype=torch.bool, device=x.device)                      # [B]
    subset = early_stop and getattr(forward, "per_sample", True)
    every = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        sel = moving.nonzero().squeeze(1) if subset else every                          # [n]
        if not len(sel) or not bool(moving.any()):
            break
        grad, logits = input_grad(forward, x_adv[sel], y[sel], loss_fn, with_logits=True)
        step = moving[sel]
        if early_stop:
            step &= ~misclassified(forward, x_adv[sel], y[sel], logits)
            moving[sel] = step
        upd = sel[step]
        x_adv[upd] = project(x_adv[upd] + alpha * grad[step].sign(), x[upd], eps)
    return x_adv


def keep_worst(best_x: torch.Tensor, best_score: torch.Tensor, x_new: torch.Tensor,
               score_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample keep the candidate with the higher score (ties keep the earlier one)."""
    take = score_new > best_score                                         # [B]
    return torch.where(take.view(-1, *[1] * (x_new.dim() - 1)), x_new, best_x), torch.maximum(best_score, score_new)


def _check(eps: float, alpha: float | None, steps: int = 1, restarts: int = 1) -> None:
    if eps < 0 or (alpha is not None and alpha < 0):
        raise ValueError(f"eps and alpha must be >= 0 (got eps={eps}, alpha={alpha})")
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be >= 1 (got steps={steps}, restarts={restarts})")


# ----------------------------------------------------------------------------- attacks

def fgsm(model, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float | None = None,
         random_start: bool = True, loss: str = "ce", generator: torch.Generator | None = None,
         bn: str = "eval", fast: bool = True) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015; random start: Wong et al. 2020, "Fast is
    better than free").

    Args:
        model: classifier (``nn.Module`` or a ``forward`` from ``attack_mode``) on [0, 1] pixels.
        x: clean images ``[B, C, H, W]`` in [0, 1]; y: labels ``[B]`` int64.
        eps: L-inf radius in pixel units.
        alpha: step size; default ``1.25 * eps`` with a random start, ``eps`` without (classic FGSM).
        random_start: start from ``clamp(x + U(-eps, eps), 0, 1)`` instead of ``x``.
        loss: ``"ce"`` or ``"cw"``; generator: RNG for the random start.
        bn, fast: how a module is called (``attack_mode``): batch norm ``"eval"`` or ``"train"`` (batch
            statistics, as the references craft training examples), reduced precision or fp32.
    Returns:
        ``x_adv`` ``[B, C, H, W]`` in [0, 1] with ``|x_adv - x| <= eps``, detached.

    Example::

        x_adv = fgsm(model, x, y, eps=0.1)
        x_classic = fgsm(model, x, y, eps=0.1, random_start=False)
    """
    _check(eps, alpha)
    alpha = (1.25 * eps if random_start else eps) if alpha is None else alpha
    with attack_mode(model, fast=fast, bn=bn) as forward:
        return signed_ascent(forward, x, y, eps=eps, alpha=alpha, steps=1, start=random_start,
                             loss_fn=attack_loss(loss), generator=generator)


def pgd(model, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, alpha: float | None = None,
        random_start: bool = True, restarts: int = 1, loss: str = "ce", generator: torch.Generator | None = None,
        early_stop: bool = False, bn: str = "eval", fast: bool = True) -> torch.Tensor:
    """Projected gradient descent, L-inf (Madry et al. 2018), with restarts keeping the worst case.

    Each restart runs ``steps`` signed steps of size ``alpha`` from its own random start. Per sample
    the result is the first restart that misclassifies it (a broken sample stays broken whatever
    later restarts do), else the restart with the highest loss. ``early_stop`` (evaluation): within a
    restart a sample stops at its first misclassified iterate (locuslab's ``attack_pgd``); training
    attacks run every step, as the references' training loops do.

    Args:
        model: classifier (``nn.Module`` or a ``forward`` from ``attack_mode``) on [0, 1] pixels.
        x: clean images ``[B, C, H, W]`` in [0, 1]; y: labels ``[B]`` int64.
        eps: L-inf radius in pixel units; steps: K; alpha: step size, default ``2.5 * eps / steps``.
        random_start: start in the eps ball (else at ``x``); restarts: number of runs (>= 1).
        loss: ``"ce"`` or ``"cw"`` (margin); generator: RNG for the random starts.
        early_stop: see above; bn, fast: how a module is called (see ``fgsm``).
    Returns:
        ``x_adv`` ``[B, C, H, W]`` in [0, 1] with ``|x_adv - x| <= eps``, detached.

    Example::

        x_adv = pgd(model, x, y, eps=8 / 255, steps=20, restarts=5, loss="cw")
        robust = (predict(model, x_adv) == y).float().mean()
    """
    _check(eps, alpha, steps, restarts)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    loss_fn = attack_loss(loss)
    with attack_mode(model, fast=fast, bn=bn) as forward:
        best_x = best_score = None
        for _ in range(restarts):
            x_adv = signed_ascent(forward, x, y, eps=eps, alpha=alpha, steps=steps, start=random_start,
                                  loss_fn=loss_fn, generator=generator, early_stop=early_stop)
            if restarts == 1:
                return x_adv
            with torch.no_grad():                  # judged like ``predict``: in fp32
                logits = exact(forward)(x_adv)                            # [B, K]
                score = loss_fn(logits, y).masked_fill(logits.argmax(1) != y, float("inf"))
            best_x, best_score = (x_adv, score) if best_x is None else keep_worst(best_x, best_score, x_adv, score)
        return best_x
