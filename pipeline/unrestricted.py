"""Unrestricted adversarial examples at the application layer: class-balanced latent searches against a
trained classifier, and the held-out set of examples found against one model that others are scored on."""
from __future__ import annotations

import time
from pathlib import Path

import torch

import runs
import runtime
from attacks import SearchResult, unrestricted_search
from classifier import accuracy, load_classifier
from data import Split, load_dataset

from .common import load_compatible_gan

def balanced_search(model, loaded, n: int, *, steps: int, seed: int, device, batch_size: int | None = None):
    """Latent searches against ``model`` for ``n`` class-balanced source labels (0, 1, ..., K-1, 0, ...),
    z0 drawn from a generator seeded with ``seed``, ``batch_size`` samples at a time (None: all at once).
    Returns ``(labels [n], SearchResult)``."""
    labels = (torch.arange(n) % loaded.info["num_classes"]).to(device)
    rng = torch.Generator(device=device).manual_seed(seed)
    parts = [unrestricted_search(loaded.generator, loaded.critic, model, y, steps=steps, generator_rng=rng)
             for y in labels.split(batch_size or n)]
    return labels, SearchResult(*(None if f[0] is None else torch.cat(f) for f in zip(*parts)))



def find_unrestricted_set(classifier_run: str | Path, gan_run: str | Path, out: str | Path, *, n: int,
                          latent_steps: int = 200, data_dir: str = "datasets", device: str = "auto",
                          seed: int = 12_345, batch_size: int = 250) -> dict:
    """Search ``n`` class-balanced unrestricted examples against ``classifier_run`` and save the ones that
    succeeded (fooling it while the AC head keeps the class) to ``out``: a file of kind "unrestricted-set"
    with uint8 ``images`` (quantised as stored data is) and ``labels``.

    The RNG seed is separate from any training pool's, so the set is held out from what the unrestricted
    augmenter saw. Returns ``{"images", "labels", "searched", "found"}``."""
    t0 = time.perf_counter()
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(classifier_run, dev)
    ds = load_dataset(ckpt["dataset"], data_dir)
    loaded = load_compatible_gan(gan_run, ds, dev)
    labels, res = balanced_search(model, loaded, n, steps=latent_steps, seed=seed, device=dev,
                                  batch_size=batch_size)
    x = res.x[res.success].mul(255).round().to(torch.uint8).cpu()     # stored as images are: uint8
    found = {"kind": "unrestricted-set", "version": runs.PROJECT_VERSION,
             "config": {"classifier": str(classifier_run), "gan": str(gan_run), "latent_steps": latent_steps,
                        "seed": seed}, "images": x, "labels": labels[res.success].cpu(), "searched": n,
             "found": len(x), "seconds": round(time.perf_counter() - t0, 2)}
    runs.atomic_save(found, out)
    return found


def heldout_accuracy(classifier_run: str | Path, heldout: dict, device: str = "auto") -> float:
    """Accuracy of a classifier on a saved set of unrestricted examples (``find_unrestricted_set``)."""
    dev = runtime.pick_device(device)
    model, _ = load_classifier(classifier_run, dev)
    return accuracy(model, Split(heldout["images"], heldout["labels"]), device=dev, amp=False)
