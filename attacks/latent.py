"""Unrestricted adversarial examples by latent search (Song, Shu, Kushman & Ermon 2018,
"Constructing Unrestricted Adversarial Examples with Generative Models").

Per sample, search a latent ``z`` (from ``z0 ~ N(0, I)``) and a small pixel noise ``tau`` so that
``x = clamp(G(z, y_s) + eps_pix * tanh(tau), 0, 1)`` fools the classifier ``f`` while the AC-GAN's
auxiliary classifier ``C_aux`` still sees the source class ``y_s``. Loss per sample::

    L0 + lambda1 * mean_d(relu((z - z0)^2 - z_eps^2)) + lambda2 * CE(C_aux(x), y_s)
    L0 = z_y - max_{j != y} z_j  (CW margin on f's logits, the default; targeted: max_{j != t} z_j - z_t)
    L0 = -CE(f(x), y_s)  or  CE(f(x), y_t)  (Song et al.'s, ``l0="ce"``)

optimised by SGD on ``z`` and ``tau`` (losses summed over samples, so each sample's step is its own),
with optional Gaussian noise on the z gradient decaying as ``noise / (1 + t) ** 0.55``. A sample
**succeeds** when ``f(x) != y_s`` (targeted: ``== y_t``) **and** ``argmax C_aux(x) == y_s``; the check
runs on every iterate (the z0 sample included) and a succeeded sample is frozen: its x is kept and it
gets no further updates or forward passes. ``steps_taken`` is the number of updates before success.

Defaults (measured on digits against DenseNet-BC-40-12, both with the small-preset AC-GAN and with
the fitted test generator of tests/tiny_gan.py): SGD lr 0.5, lambda1 = 1, lambda2 = 10, z_eps 0.1,
eps_pix 0.1, at most 200 steps. The reference's lr 1 and lambda1 = lambda2 = 100 reached only 70%
(small GAN, 100 steps) and 64% (fitted generator): its steps overshoot, flipping the AC head together
with the classifier; the lower weights reached 97% and 98% within a mean of 4-20 steps. Against a
confident classifier (the demo's clean DenseNet-BC-22-8, 99.2% accurate) -CE saturates: 66% success in
100 steps; the margin term reached 96% in 3.2 steps on average.

Generator and critic run in eval mode with parameter gradients off, the classifier through
``attack_mode``; all three are restored afterwards. Gradients come from ``torch.autograd.grad`` w.r.t.
``z`` and ``tau`` only. With ``generator_rng`` (a seeded ``torch.Generator`` on the device) the result
is deterministic.

Example::

    r = unrestricted_search(G, D, model, y, generator_rng=torch.Generator().manual_seed(0))
    print(r.success.float().mean(), r.steps_taken[r.success].float().mean())   # x: r.x [B, C, H, W]
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import runtime

from .linf import cw_loss
from .mode import attack_mode, exact, frozen


class SearchResult(NamedTuple):
    x: torch.Tensor            # [B, C, H, W] in [0, 1]: the successful iterate, else the last one
    z: torch.Tensor            # [B, z_dim] latent of x
    success: torch.Tensor      # [B] bool
    steps_taken: torch.Tensor  # [B] int64: updates before success (``steps`` for failures)
    pred: torch.Tensor         # [B] classifier's prediction on x
    ac_pred: torch.Tensor      # [B] critic's auxiliary-class prediction on x
    x0: torch.Tensor           # [B, C, H, W] in [0, 1]: G(z0, y_s), the starting sample
    tau: torch.Tensor | None = None   # [B, C, H, W] pixel-noise parameter (None when eps_pix == 0)


def search_loss(logits: torch.Tensor, ac_logits: torch.Tensor, z: torch.Tensor, z0: torch.Tensor,
                y: torch.Tensor, targets: torch.Tensor | None, *, lambda1: float, lambda2: float,
                z_eps: float, l0: str = "margin") -> torch.Tensor:
    """Per-sample search loss ``[B]`` (to minimise); logits ``[B, K]``, z ``[B, z_dim]``.

    ``l0``: ``"ce"`` is Song et al.'s -CE(f(x), y_s) (CE(f(x), y_t) targeted); ``"margin"`` is the CW
    margin ``z_y - max_{j != y} z_j`` (``max_{j != t} z_j - z_t`` targeted), whose gradient does not
    vanish on a confident classifier the way -CE's does (its softmax saturates at p_y ~ 1).
    """
    if l0 == "margin":
        l0_term = -cw_loss(logits, y) if targets is None else cw_loss(logits, targets)
    elif targets is None:
        l0_term = -F.cross_entropy(logits.float(), y, reduction="none")
    else:
        l0_term = F.cross_entropy(logits.float(), targets, reduction="none")
    l1 = F.relu((z - z0).square() - z_eps ** 2).mean(1)
    l2 = F.cross_entropy(ac_logits.float(), y, reduction="none")
    return l0_term + lambda1 * l1 + lambda2 * l2


def _succeeded(pred: torch.Tensor, ac_pred: torch.Tensor, y: torch.Tensor,
               targets: torch.Tensor | None) -> torch.Tensor:
    fooled = pred != y if targets is None else pred == targets
    return fooled & (ac_pred == y)                                       # [n] bool


def _render(generator: nn.Module, z: torch.Tensor, y: torch.Tensor, tau: torch.Tensor | None,
            eps_pix: float) -> torch.Tensor:
    x = generator(z, y)                                                  # [n, C, H, W] in [0, 1]
    return x if tau is None else (x + eps_pix * torch.tanh(tau)).clamp(0, 1)


def _check(steps: int, lr: float, eps_pix: float, noise: float) -> None:
    if steps < 0 or lr <= 0 or eps_pix < 0 or noise < 0:
        raise ValueError(f"need steps >= 0, lr > 0, eps_pix >= 0, noise >= 0 "
                         f"(got {steps}, {lr}, {eps_pix}, {noise})")


def unrestricted_search(generator: nn.Module, critic: nn.Module, classifier, labels: torch.Tensor, *,
                        z0: torch.Tensor | None = None, steps: int = 200, lr: float = 0.5,
                        lambda1: float = 1.0, lambda2: float = 10.0, z_eps: float = 0.1,
                        eps_pix: float = 0.1, noise: float = 0.0, targets: torch.Tensor | None = None,
                        z_init: torch.Tensor | None = None, tau_init: torch.Tensor | None = None,
                        generator_rng: torch.Generator | None = None, amp: bool = True,
                        l0: str = "margin") -> SearchResult:
    """Search unrestricted adversarial examples of class ``labels`` against ``classifier``.

    Args:
        generator: G(z [B, z_dim], y [B]) -> [B, C, H, W] in [0, 1]; critic: D(x) -> (score, class_logits).
        classifier: ``nn.Module`` (or a ``forward`` from ``attack_mode``) on [0, 1] pixels -> logits.
        labels: source classes y_s ``[B]`` int64 (moved to the generator's device).
        z0: start latents ``[B, z_dim]``; drawn N(0, I) from ``generator_rng`` when None.
        steps: most SGD updates per sample; lr: SGD step size.
        lambda1, lambda2, z_eps: weights of the latent soft constraint and the AC term; the z radius.
        eps_pix: scale of the pixel noise ``eps_pix * tanh(tau)``; 0 disables tau.
        noise: std of the Gaussian noise on the z gradient at step 0, decaying as (1 + t) ** -0.55.
        targets: target classes ``[B]`` for the targeted variant (success: ``f(x) == y_t``).
        z_init, tau_init: where z and tau start (default z0 and zeros): warm starts pass the previous
            search's z and tau while z0 stays the anchor of the latent constraint.
        generator_rng: RNG for z0 and the gradient noise (reproducible runs).
        l0: the misclassification term: ``"margin"`` (CW margin, default: its gradient survives a
            confident classifier) or ``"ce"`` (Song et al.'s cross-entropy); see ``search_loss``.
        amp: the search runs G, the critic and the classifier's attack view under autocast (bf16);
            a success counts only when fp32 confirms it. False: everything in fp32.
    Returns:
        ``SearchResult`` (all detached, on the generator's device).
    """
    _check(steps, lr, eps_pix, noise)
    device = next(generator.parameters()).device
    y = labels.to(device)
    t_y = None if targets is None else targets.to(device)
    if z0 is None:
        z0 = torch.randn(len(y), generator.cfg.z_dim, device=device, generator=generator_rng)
    z0 = z0.to(device).detach()
    with contextlib.ExitStack() as stack:
        stack.enter_context(frozen(generator))
        stack.enter_context(frozen(critic))
        forward = stack.enter_context(attack_mode(classifier, fast=amp))
        with torch.no_grad():
            x0 = generator(z0, y)                                        # [B, C, H, W] in [0, 1]
        tau = None
        if eps_pix > 0:
            tau = torch.zeros_like(x0) if tau_init is None else tau_init.to(x0).detach().clone()
        z = z0.clone() if z_init is None else z_init.to(z0).detach().clone()
        state = _SearchState(z0, z, tau, x0, y, t_y)
        settings = dict(steps=steps, lr=lr, lambda1=lambda1, lambda2=lambda2, z_eps=z_eps, eps_pix=eps_pix, l0=l0,
                        noise=noise, rng=generator_rng, amp=amp)
        for t in range(steps + 1):
            if not _step(state, t, generator, critic, forward, **settings):
                break
    return state.result()


class _SearchState:
    """The per-sample tensors of a search; ``active`` marks samples still being searched."""

    def __init__(self, z0, z, tau, x0, y, targets):
        self.z0, self.z, self.tau, self.x0, self.y, self.targets = z0, z, tau, x0, y, targets
        b = len(y)
        self.active = torch.ones(b, dtype=torch.bool, device=y.device)
        self.success = torch.zeros_like(self.active)
        self.steps_taken = torch.zeros(b, dtype=torch.long, device=y.device)
        self.x = x0.clone()
        self.pred = torch.zeros_like(y)
        self.ac_pred = torch.zeros_like(y)

    def record(self, idx, x, pred, ac_pred, ok, t):
        """Store the current iterate of samples ``idx``; freeze those with ``ok``."""
        self.x[idx], self.pred[idx], self.ac_pred[idx] = x, pred, ac_pred
        self.steps_taken[idx] = t
        self.success[idx[ok]] = True
        self.active[idx[ok]] = False

    def result(self) -> SearchResult:
        return SearchResult(self.x, self.z, self.success, self.steps_taken, self.pred, self.ac_pred, self.x0,
                            self.tau)


@torch.no_grad()
def _confirm(ok, x, pred, ac_pred, y, targets, critic, forward) -> torch.Tensor:
    """Re-judge the reduced-precision successes ``ok`` in fp32 (classifier and AC head); updates
    ``pred`` and ``ac_pred`` in place and returns the confirmed successes."""
    cand = ok.nonzero().squeeze(1)
    pred[cand] = exact(forward)(x[cand]).argmax(1)
    ac_pred[cand] = critic(x[cand]).class_logits.argmax(1)
    return _succeeded(pred, ac_pred, y, targets)


def _step(s: _SearchState, t: int, generator, critic, forward, *, steps, lr, lambda1, lambda2, z_eps,
          eps_pix, noise, rng, amp, l0) -> bool:
    """Check step ``t``'s iterate of the active samples, then update those that did not succeed.
    Returns False when nothing is left to do."""
    idx = s.active.nonzero().squeeze(1)                                   # [n]
    if len(idx) == 0:
        return False
    targets = None if s.targets is None else s.targets[idx]
    with torch.enable_grad():
        z = s.z[idx].requires_grad_(True)                                 # [n, z_dim]
        tau = None if s.tau is None else s.tau[idx].requires_grad_(True)  # [n, C, H, W]
        with runtime.autocast(z.device, amp):
            x = _render(generator, z, s.y[idx], tau, eps_pix).float()
            ac_logits = critic(x).class_logits.float()                   # [n, K]
        logits = forward(x)                                              # [n, K]
        pred, ac_pred = logits.argmax(1), ac_logits.argmax(1)
        ok = _succeeded(pred, ac_pred, s.y[idx], targets)
        if amp and bool(ok.any()):        # a success is only counted when fp32 agrees
            ok = _confirm(ok, x.detach(), pred, ac_pred, s.y[idx], targets, critic, forward)
        s.record(idx, x.detach(), pred, ac_pred, ok, t)
        if t == steps or bool(ok.all()):
            return False
        loss = search_loss(logits, ac_logits, z, s.z0[idx], s.y[idx], targets,
                           lambda1=lambda1, lambda2=lambda2, z_eps=z_eps, l0=l0)
        loss = loss.masked_fill(ok, 0.0).sum()
        grads = torch.autograd.grad(loss, [z] if tau is None else [z, tau])
    keep = ~ok
    g_z = torch.nan_to_num(grads[0])
    if noise > 0:   # drawn for the whole batch: the RNG stream does not depend on who is active
        eta = torch.randn(s.z.shape, device=z.device, generator=rng)[idx]
        g_z = g_z + noise / (1 + t) ** 0.55 * eta
    s.z[idx[keep]] = (z.detach() - lr * g_z)[keep]
    if tau is not None:
        s.tau[idx[keep]] = (tau.detach() - lr * torch.nan_to_num(grads[1]))[keep]
    return True
