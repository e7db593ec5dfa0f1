"""Evaluation of a trained classifier: clean and robust accuracy, and with an AC-GAN its samples'
accuracy, FID/IS in the classifier's features and the unrestricted-search success rate."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import runs
import runtime
from attacks import robust_accuracy
from classifier import accuracy, load_classifier
from data import ImageDataset, load_dataset
from gan import gan_metrics

from .common import check_compatible, load_compatible_gan
from .unrestricted import balanced_search

@dataclass
class EvalSettings:
    """How ``evaluate`` attacks a model (recorded in metrics.json)."""
    eps: float | None = None          # None: the data set's threat model
    pgd_steps: int = 20
    restarts: int = 1
    losses: tuple[str, ...] = ("ce", "cw")
    subset: int | None = None         # first N test images for the attacks (None: the whole split)
    attacks: bool = True
    gan: str | None = None            # GAN run/checkpoint: sample accuracy, FID/IS (classifier features)
    gan_samples: int = 1000
    unrestricted_samples: int = 200   # latent searches against the model (with --gan)
    latent_steps: int = 200           # search steps per sample (early stop on success)
    seed: int = 0
    batch_size: int = 500


def evaluate_classifier(checkpoint: str | Path, settings: EvalSettings = EvalSettings(), *,
                        data_dir: str = "datasets", dataset: str | None = None, device: str = "auto",
                        write: bool = True) -> dict:
    """Evaluate a trained classifier; merged into the run's metrics.json when ``write``.

    ``clean_acc`` is on the whole test split with the precision the run was trained (and evaluated each
    epoch) with, so it reproduces the accuracy the training logged. The attacks (fp32, eval mode) run on
    ``settings.subset`` test images and keep the worst case per sample over FGSM, every PGD loss and
    restart, so ``pgd_acc <= fgsm_acc <= attack_clean_acc`` on that subset.
    """
    t0 = time.perf_counter()
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(checkpoint, dev)
    ds = load_dataset(dataset or ckpt["dataset"], data_dir)
    check_compatible(ds, ckpt, what="classifier checkpoint")
    result = {"dataset": ds.name, "clean_acc": _clean_accuracy(model, ds, ckpt, dev, settings.batch_size),
              "eval_settings": asdict(settings)}
    if settings.attacks:
        result.update(_attack_metrics(model, ds, settings, dev))
    if settings.gan:
        result.update(_gan_metrics(model, ds, settings, dev))
    result["eval_seconds"] = round(time.perf_counter() - t0, 2)
    if write:
        run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
        runs.update_metrics(run_dir, result)
    return result


def _clean_accuracy(model, ds: ImageDataset, ckpt: dict, dev, batch_size: int) -> float:
    train_cfg = ckpt["config"].get("train", {})
    amp, channels_last = train_cfg.get("amp", False), train_cfg.get("channels_last", False)
    model = model.to(memory_format=torch.channels_last) if channels_last else model
    acc = accuracy(model, ds.test, device=dev, batch_size=batch_size, amp=amp, channels_last=channels_last)
    model.to(memory_format=torch.contiguous_format)
    return acc


def _attack_metrics(model, ds: ImageDataset, s: EvalSettings, dev) -> dict:
    n = len(ds.test) if s.subset is None else min(s.subset, len(ds.test))
    r = robust_accuracy(model, ds.test.images[:n], ds.test.labels[:n], eps=s.eps or ds.default_eps,
                        pgd_steps=s.pgd_steps, restarts=s.restarts, losses=tuple(s.losses),
                        batch_size=min(s.batch_size, 256), device=dev, seed=s.seed)
    r.pop("masks")
    r["attack_clean_acc"] = r.pop("clean_acc")
    return r


def _gan_metrics(model, ds: ImageDataset, s: EvalSettings, dev) -> dict:
    loaded = load_compatible_gan(s.gan, ds, dev)
    result = gan_metrics(loaded.generator, loaded.critic, model, ds.test, n_samples=s.gan_samples,
                         batch_size=256, seed=s.seed, device=dev, feature_net=f"{ds.name} classifier under test")
    return {**result, **unrestricted_metrics(model, loaded, s, dev)}


def unrestricted_metrics(model, loaded, s: EvalSettings, dev) -> dict:
    """Song et al.'s latent search against ``model`` on ``s.unrestricted_samples`` class-balanced
    samples: success = classifier fooled while the AC head still says the source class."""
    labels, res = balanced_search(model, loaded, s.unrestricted_samples, steps=s.latent_steps, seed=s.seed,
                                  device=dev)
    ok = res.success
    return {"unrestricted_success_rate": ok.float().mean().item(),
            "unrestricted_mean_steps": res.steps_taken[ok].float().mean().item() if ok.any() else None,
            "unrestricted_acc": (res.pred == labels).float().mean().item(),   # on the returned examples
            "unrestricted_samples": len(labels), "unrestricted_latent_steps": s.latent_steps}
