"""Unrestricted adversarial examples at the application layer: class-balanced latent searches against a
trained classifier, their figures judged by an independent classifier, and the held-out set of valid
examples found against one model that other models are scored on.

Validity. The search keeps the AC-GAN's class head on the source class, but it optimises against that head,
which can be fooled too. A *judge* (``--judge RUN``: a classifier of the same data set that the search never
sees; the suites use their PGD-trained model, since robust classifiers' decisions track human perception far
better than standard ones: Tsipras et al. 2019, Santurkar et al. 2019) re-classifies every found image. A
**valid success** is a success the judge also calls the source class. The judge errs too: its accuracy on
the unmodified G(z0, y) (``judge_start_acc``) is the floor of what it can tell.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import torch

import runs
import runtime
from attacks import SEARCHES, SearchResult, predict, unrestricted_search
from classifier import accuracy, load_classifier
from data import ImageDataset, Split, load_dataset
from gan import LoadedGAN

from .common import ConfigError, check_compatible, load_compatible_gan


class SearchRun(NamedTuple):
    labels: torch.Tensor               # [N] source classes
    targets: torch.Tensor | None       # [N] target classes (targeted searches), else None
    result: SearchResult
    seconds: float


def search_labels(n: int, num_classes: int, target: int | str | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class-balanced source labels ``[N]`` and targets: untargeted (None) ``n`` searches 0, 1, ..., K-1, 0, ...;
    a target class ``t``: ``n`` searches from the other classes in turn, all toward ``t``; ``"all"``: each of
    ``n`` sources toward every other class (``n * (K - 1)`` searches, one source's targets side by side)."""
    if target is None:
        return torch.arange(n) % num_classes, None
    if target == "all":
        src = (torch.arange(n) % num_classes).repeat_interleave(num_classes - 1)             # [n * (K-1)]
        offset = torch.arange(1, num_classes).repeat(n)                                      # 1..K-1 per source
        return src, (src + offset) % num_classes
    t = int(target)
    if not 0 <= t < num_classes:
        raise ConfigError(f"--target {t}: the classes are 0..{num_classes - 1}")
    others = torch.tensor([c for c in range(num_classes) if c != t])
    return others[torch.arange(n) % len(others)], torch.full((n,), t)


def balanced_search(model, loaded: LoadedGAN, n: int, *, search: str = "fast", steps: int | None = None,
                    eps_pix: float = 0.0, target: int | str | None = None, seed: int, device,
                    progress: bool = False) -> SearchRun:
    """Latent searches against ``model`` (see ``search_labels`` for the sources and targets), setting ``search``
    of ``attacks.SEARCHES`` (``steps`` overrides its steps), z0 from a generator seeded with ``seed`` (the same
    z0 for one source's targets with ``target="all"``), timed."""
    labels, targets = search_labels(n, loaded.info["num_classes"], target)
    labels = labels.to(device)
    targets = None if targets is None else targets.to(device)
    rng = torch.Generator(device=device).manual_seed(seed)
    per_source = loaded.info["num_classes"] - 1 if target == "all" else 1
    z0 = torch.randn(len(labels) // per_source, loaded.generator.cfg.z_dim, device=device, generator=rng)
    z0 = z0.repeat_interleave(per_source, 0)
    t0 = time.perf_counter()
    res = unrestricted_search(loaded.generator, loaded.critic, model, labels, config=SEARCHES.lookup(search),
                              steps=steps, eps_pix=eps_pix, targets=targets, z0=z0, generator_rng=rng,
                              progress=progress)
    return SearchRun(labels, targets, res, time.perf_counter() - t0)


def search_figures(run: SearchRun, judge=None) -> dict:
    """Success, valid success (with a judge) and what the found examples look like, as fractions / means."""
    labels, r = run.labels, run.result
    ok = r.success
    n, n_ok = len(labels), int(ok.sum())
    change = (r.x - r.x0).flatten(1).abs()                                   # [N, D]
    out = {"searches": n, "success_rate": n_ok / n, "acc": (r.pred == labels).float().mean().item(),
           "start_successes": int(r.start_success.sum()),
           "mean_steps": r.steps_taken[ok].float().mean().item() if n_ok else None,
           "z_dist": (r.z - r.z0).norm(dim=1)[ok].mean().item() if n_ok else None,
           "pixel_change_mean": change.mean(1)[ok].mean().item() if n_ok else None,
           "pixel_change_max": change.amax(1)[ok].max().item() if n_ok else None,
           "seconds": round(run.seconds, 2), "valid_success_rate": None, "valid_share": None,
           "judge_start_acc": None, "valid_per_second": None}
    if judge is not None:
        valid = ok & (predict(judge, r.x) == labels)
        out.update(valid_success_rate=int(valid.sum()) / n, valid_share=int(valid.sum()) / n_ok if n_ok else None,
                   judge_start_acc=(predict(judge, r.x0) == labels).float().mean().item(),
                   valid_per_second=int(valid.sum()) / max(run.seconds, 1e-9))
    return out


def load_judge(path: str | Path | None, ds: ImageDataset, dev, *, searched: str | Path | None = None):
    """The validity judge: a classifier of ``ds``'s classes (None: no judge). It must not be the model the
    search runs against (``searched``)."""
    if path is None:
        return None
    if searched is not None and runs.resolve_checkpoint(path).resolve() == runs.resolve_checkpoint(searched).resolve():
        raise ConfigError("--judge must be another classifier than the one searched against (the search sees it)")
    judge, ckpt = load_classifier(path, dev)
    check_compatible(ds, ckpt, what="judge")
    return judge


def reference_search(classifier_run: str | Path, gan_run: str | Path, *, n: int, steps: int | None = None,
                     judge_run: str | Path | None = None, data_dir: str = "datasets", device: str = "auto",
                     seed: int = 0) -> dict:
    """Song et al.'s search as their code runs it (``song2018``) against ``classifier_run``: ``n`` class-balanced
    searches with the z0 and labels an evaluation with the same ``seed`` uses, judged alike; its figures."""
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(classifier_run, dev)
    ds = load_dataset(ckpt["dataset"], data_dir)
    loaded = load_compatible_gan(gan_run, ds, dev)
    judge = load_judge(judge_run, ds, dev, searched=classifier_run)
    run = balanced_search(model, loaded, n, search="song2018", steps=steps, seed=seed, device=dev, progress=True)
    return {"search": "song2018", "classifier": str(classifier_run), "judge": None if judge_run is None else
            str(judge_run), "steps": steps or SEARCHES["song2018"].steps, **search_figures(run, judge)}


def find_unrestricted_set(classifier_run: str | Path, gan_run: str | Path, out: str | Path, *, n: int,
                          judge_run: str | Path | None = None, search: str = "fast", steps: int | None = None,
                          data_dir: str = "datasets", device: str = "auto", seed: int = 12_345) -> dict:
    """Search ``n`` class-balanced unrestricted examples (pure latent) against ``classifier_run`` and save the
    valid ones (a success that ``judge_run`` also calls the source class; every success without a judge) to
    ``out``: a file of kind "unrestricted-set" with uint8 ``images`` (quantised as stored data is) and ``labels``.

    The RNG seed is separate from any training pool's, so the set is held out from what the unrestricted
    augmenter saw. Returns ``{"images", "labels", "searched", "succeeded", "found", "judge", ...}``."""
    t0 = time.perf_counter()
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(classifier_run, dev)
    ds = load_dataset(ckpt["dataset"], data_dir)
    loaded = load_compatible_gan(gan_run, ds, dev)
    judge = load_judge(judge_run, ds, dev, searched=classifier_run)
    run = balanced_search(model, loaded, n, search=search, steps=steps, seed=seed, device=dev, progress=True)
    keep = run.result.success
    if judge is not None:
        keep = keep & (predict(judge, run.result.x) == run.labels)
    x = run.result.x[keep].mul(255).round().to(torch.uint8).cpu()           # stored as images are: uint8
    found = {"kind": "unrestricted-set", "version": runs.PROJECT_VERSION,
             "config": {"classifier": str(classifier_run), "gan": str(gan_run), "judge": str(judge_run),
                        "search": search, "steps": steps, "seed": seed},
             "images": x, "labels": run.labels[keep].cpu(), "searched": n, "succeeded": int(run.result.success.sum()),
             "found": len(x), "judge": None if judge_run is None else str(judge_run),
             "seconds": round(time.perf_counter() - t0, 2)}
    runs.atomic_save(found, out)
    return found


def heldout_accuracy(classifier_run: str | Path, heldout: dict, device: str = "auto") -> float | None:
    """Accuracy of a classifier on a saved set of unrestricted examples (``find_unrestricted_set``); None for an
    empty set."""
    if not len(heldout["labels"]):
        return None
    dev = runtime.pick_device(device)
    model, _ = load_classifier(classifier_run, dev)
    return accuracy(model, Split(heldout["images"], heldout["labels"]), device=dev, amp=False)
