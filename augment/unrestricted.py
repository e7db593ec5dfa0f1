"""Training on unrestricted adversarial examples (Song et al. 2018), amortised by a latent pool.

A full latent search costs hundreds of generator + classifier passes per sample; to train on examples
found against the **current** classifier at a small multiple of a clean epoch, the augmenter keeps a
pool of ``pool_size`` searches (anchor z0, current z and tau, source class y_s drawn uniformly, last
image, success flag, steps spent). Each call:

1. **refresh**: the next ``ceil(refresh * B)`` pool entries (round robin) get a warm-started search of
   at most ``latent_steps`` steps from their previous z / tau against the live model. An entry that
   still fools the model succeeds at its step-0 check and costs one forward; one the model has learned
   continues from where it was. An entry that spent ``restart_steps`` steps without success restarts
   from a fresh z0 and class.
2. **serve**: the ``round(ratio * B)`` leading samples of the batch are replaced by pool images drawn
   uniformly from the currently successful entries (fewer when fewer succeed; the rest stay clean),
   labelled with their source class y_s (the AC head agreed with it when the entry succeeded).

Cost per batch, in search steps: at most ``latent_steps * ceil(refresh * B)`` sample-steps (each a
generator + classifier forward and a backward to z), about ``latent_steps * refresh`` clean batches;
early stopping makes it less. Randomness comes from the global RNG (checkpointed by the training loop)
and ``state_dict`` carries the pool, so a resumed run continues exactly.

The searches use a named setting of ``attacks.SEARCHES`` (``fast`` by default: per-sample early stop is
what makes warm starts cheap) with ``latent_steps`` steps per refresh, pure latent unless ``eps_pix > 0``
(pixel noise, as the reference's ``--noise``; off by default as there).

Args:
    gan: ``gan.LoadedGAN`` or a GAN run directory / checkpoint path.
    pool_size, latent_steps, refresh, restart_steps: the amortisation knobs above.
    ratio: fraction of each batch replaced (default 0.5); weight: their loss weight.
    search: the latent search setting; eps_pix: pixel noise of the search (0: pure latent).

Example::

    aug = build_augmenter("unrestricted", gan="runs/gan-digits", latent_steps=5)
    batch = aug(model, x, y)       # AugBatch: up to B/2 unrestricted examples labelled with y_s
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn as nn

from attacks import SEARCHES, frozen, unrestricted_search
from gan import LoadedGAN

from .base import AugBatch, register_augmenter
from .gan_samples import gan_on, gan_source, resolve_gan
from .mixing import MixingAugmenter


@register_augmenter("unrestricted")
class UnrestrictedAugmenter(MixingAugmenter):
    default_ratio = 0.5

    def __init__(self, *, gan: LoadedGAN | str | os.PathLike, pool_size: int = 512, latent_steps: int = 5,
                 refresh: float = 0.25, restart_steps: int = 50, ratio: float | None = None,
                 weight: float = 1.0, search: str = "fast", eps_pix: float = 0.0):
        super().__init__(ratio=ratio, weight=weight)
        if pool_size < 1 or latent_steps < 0 or restart_steps < 1 or not 0.0 < refresh <= 1.0 or eps_pix < 0:
            raise ValueError(f"need pool_size >= 1, latent_steps >= 0, restart_steps >= 1, 0 < refresh <= 1, "
                             f"eps_pix >= 0 (got {pool_size}, {latent_steps}, {restart_steps}, {refresh}, {eps_pix})")
        self.source = gan_source(gan)
        self.gan = resolve_gan(gan)
        self.pool_size, self.latent_steps, self.refresh = int(pool_size), int(latent_steps), float(refresh)
        self.restart_steps = int(restart_steps)
        self.search, self.eps_pix = search, float(eps_pix)
        self.config = SEARCHES.lookup(search)
        self.pool: dict[str, torch.Tensor] | None = None
        self.cursor = 0
        self.stats = {"searched": 0, "succeeded": 0, "search_steps": 0, "restarts": 0, "served": 0}

    # ------------------------------------------------------------------------- the call

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> AugBatch:
        loaded = gan_on(self.gan, x.device)
        pool = self._pool_on(x.device)
        self._refresh(model, loaded, pool, math.ceil(self.refresh * len(x)))
        ok = pool["success"].nonzero().squeeze(1)                          # [s]
        n = min(self.n_aug(len(x)), len(ok))
        pick = ok[torch.randint(len(ok), (n,), device=x.device)] if n else ok[:0]
        self.stats["served"] += n
        return self.mix(x, y, pool["x"][pick].to(x.dtype), pool["y"][pick])

    def _refresh(self, model: nn.Module, loaded: LoadedGAN, pool: dict, m: int) -> None:
        """Warm-started searches for the next ``m`` entries (round robin); restarts stale ones."""
        idx = (self.cursor + torch.arange(min(m, self.pool_size), device=pool["y"].device)) % self.pool_size
        self.cursor = (self.cursor + len(idx)) % self.pool_size
        stale = idx[(~pool["success"][idx]) & (pool["spent"][idx] >= self.restart_steps)]
        if len(stale):
            self._reset(pool, stale, loaded)
        tau = pool["tau"][idx] if pool["tau"] is not None else None
        r = unrestricted_search(loaded.generator, loaded.critic, model, pool["y"][idx], config=self.config,
                                steps=self.latent_steps, eps_pix=self.eps_pix, z0=pool["z0"][idx],
                                z_init=pool["z"][idx], tau_init=tau)
        pool["z"][idx], pool["x"][idx], pool["success"][idx] = r.z, r.x, r.success
        pool["spent"][idx] += r.steps_taken
        if pool["tau"] is not None:
            pool["tau"][idx] = r.tau
        self.stats["searched"] += len(idx)
        self.stats["succeeded"] += int(r.success.sum())
        self.stats["search_steps"] += int(r.steps_taken.sum())

    # ------------------------------------------------------------------------- the pool

    def _pool_on(self, device: torch.device) -> dict:
        if self.pool is None:
            g = self.gan.generator
            self.pool = {"z0": torch.empty(self.pool_size, g.cfg.z_dim, device=device),
                         "y": torch.empty(self.pool_size, dtype=torch.long, device=device)}
            self._reset(self.pool, torch.arange(self.pool_size, device=device), gan_on(self.gan, device))
        elif self.pool["z0"].device != device:
            self.pool = {k: None if v is None else v.to(device) for k, v in self.pool.items()}
        return self.pool

    def _reset(self, pool: dict, idx: torch.Tensor, loaded: LoadedGAN) -> None:
        """Fresh z0 ~ N(0, I) and uniform classes for entries ``idx`` (creating the other fields if missing)."""
        g, n = loaded.generator, len(idx)
        pool["z0"][idx] = torch.randn(n, g.cfg.z_dim, device=idx.device)
        pool["y"][idx] = torch.randint(g.cfg.num_classes, (n,), device=idx.device)
        with torch.no_grad(), frozen(g):
            x0 = g(pool["z0"][idx], pool["y"][idx])                         # [n, C, H, W] in [0, 1]
        if "x" not in pool:
            pool["x"] = torch.empty(self.pool_size, *x0.shape[1:], device=idx.device)
            pool["tau"] = torch.zeros_like(pool["x"]) if self.eps_pix > 0 else None
            pool["z"] = torch.empty_like(pool["z0"])
            pool["success"] = torch.zeros(self.pool_size, dtype=torch.bool, device=idx.device)
            pool["spent"] = torch.zeros(self.pool_size, dtype=torch.long, device=idx.device)
        pool["x"][idx], pool["z"][idx] = x0, pool["z0"][idx]
        pool["success"][idx], pool["spent"][idx] = False, 0
        if pool["tau"] is not None:
            pool["tau"][idx] = 0.0
        self.stats["restarts"] += n

    # ------------------------------------------------------------------------- state and description

    def state_dict(self) -> dict:
        pool = None if self.pool is None else {k: None if v is None else v.detach().clone()
                                               for k, v in self.pool.items()}
        return {"pool": pool, "cursor": self.cursor, "stats": dict(self.stats)}

    def load_state_dict(self, state: dict) -> None:
        pool = state.get("pool")
        self.pool = None if pool is None else {k: None if v is None else v.clone() for k, v in pool.items()}
        self.cursor = int(state.get("cursor", 0))
        self.stats.update(state.get("stats", {}))

    def describe(self) -> dict:
        s = self.stats
        return {**super().describe(), "gan": self.source, "pool_size": self.pool_size, "latent_steps": self.latent_steps,
                "refresh": self.refresh, "restart_steps": self.restart_steps, "search": self.search,
                "eps_pix": self.eps_pix,
                "search_success_rate": s["succeeded"] / max(s["searched"], 1),
                "search_steps_per_entry": s["search_steps"] / max(s["searched"], 1), **s}

