"""Evaluation of a trained classifier, recorded as one block of its metrics.json: clean and robust accuracy
(FGSM, PGD, and AutoAttack as the cross-check), and with an AC-GAN its samples' accuracy, FID/IS in the
classifier's features and unrestricted adversarial examples judged for validity.

The block (``metrics["evaluation"]``) holds the settings it was made with, the data set it was made on and
every figure; a later evaluation replaces it whole, so no figure can outlive the settings it came from.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import runs
import runtime
from attacks import SEARCHES, autoattack_accuracy, robust_accuracy
from classifier import accuracy, load_classifier
from data import ImageDataset, load_dataset
from gan import gan_metrics

from .common import check_compatible, load_compatible_gan
from .unrestricted import balanced_search, load_judge, search_figures


@dataclass
class EvalSettings:
    """How ``evaluate`` measures a model (recorded in its evaluation block)."""
    eps: float | None = None          # None: the data set's threat model
    pgd_steps: int = 20
    restarts: int = 1
    losses: tuple[str, ...] = ("ce", "cw")
    early_stop: bool = True           # PGD: a sample stops at its first misclassified iterate (locuslab's)
    fast: bool = True                 # attack gradients through the reduced-precision view (verdicts fp32)
    subset: int | None = None         # first N test images for the attacks (None: the whole split)
    attacks: bool = True
    autoattack: bool = False          # AutoAttack (standard) on the first autoattack_subset test images
    autoattack_subset: int | None = None   # None: the attacks' subset
    autoattack_fast: bool = False     # AutoAttack on the reduced-precision view instead of the fp32 model
    gan: str | None = None            # GAN run/checkpoint: sample accuracy, FID/IS (classifier features)
    gan_samples: int = 1000
    unrestricted_samples: int = 200   # latent searches against the model (with --gan)
    search: str = "fast"              # the latent search setting (attacks.SEARCHES)
    search_steps: int | None = None   # None: the setting's
    eps_pix: float = 0.0              # pixel noise of the search (0: pure latent)
    target: int | str | None = None   # None: untargeted; a class; "all": every other class
    judge: str | None = None          # classifier run that judges the validity of unrestricted examples
    seed: int = 0
    batch_size: int = 500


# the settings of the GAN part of an evaluation (unused where ``gan`` is None)
GAN_SETTINGS = ("gan", "gan_samples", "unrestricted_samples", "search", "search_steps", "eps_pix", "target", "judge")


def evaluate_classifier(checkpoint: str | Path, settings: EvalSettings = EvalSettings(), *,
                        data_dir: str = "datasets", dataset: str | None = None, force_dataset: bool = False,
                        device: str = "auto", write: bool = True) -> dict:
    """Evaluate a trained classifier; its metrics.json's ``evaluation`` block is replaced when ``write``.

    ``clean_acc`` is on the whole test split with the precision the run was trained (and evaluated each
    epoch) with, so it reproduces the accuracy the training logged. The attacks run on ``settings.subset``
    test images in eval mode (gradients through the bf16 attack-time view unless ``settings.fast`` is off,
    every verdict in fp32) and keep the worst case per sample over FGSM, every PGD loss and restart, so
    ``pgd_acc <= fgsm_acc <= attack_clean_acc`` on that subset. A data set other than the checkpoint's is
    refused unless ``force_dataset`` (then recorded beside the one it was trained on).

    Returns the evaluation block.
    """
    t0 = time.perf_counter()
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(checkpoint, dev)
    name = dataset or ckpt["dataset"]
    if name != ckpt["dataset"] and not force_dataset:
        raise runs.CheckpointError(f"{checkpoint} was trained on {ckpt['dataset']}, not {name}: evaluate it on "
                                   f"{ckpt['dataset']}, or pass --force-dataset to evaluate it on {name} anyway")
    ds = load_dataset(name, data_dir)
    check_compatible(ds, ckpt, what="classifier checkpoint")
    block = {"dataset": ds.name, "trained_on": ckpt["dataset"], "settings": asdict(settings),
             "clean_acc": _clean_accuracy(model, ds, ckpt, dev, settings.batch_size)}
    masks = {}
    if settings.attacks:
        attack = _attack_metrics(model, ds, settings, dev)
        masks = attack.pop("masks")
        block.update(attack)
    if settings.autoattack:
        block["autoattack"] = _autoattack_metrics(model, ds, settings, dev, masks)
    if settings.gan:
        block.update(_gan_metrics(model, ds, settings, dev, checkpoint))
    block["eval_seconds"] = round(time.perf_counter() - t0, 2)
    if write and runtime.dist_info().is_main:
        run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
        runs.update_metrics(run_dir, {"evaluation": block})
        _to_tensorboard(run_dir, block, step=len(ckpt.get("history", [])))
    return block


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
                        pgd_steps=s.pgd_steps, restarts=s.restarts, losses=tuple(s.losses), early_stop=s.early_stop,
                        fast=s.fast, batch_size=min(s.batch_size, 256), device=dev, seed=s.seed)
    r["attack_clean_acc"] = r.pop("clean_acc")
    r["attack_samples"] = r.pop("eval_samples")
    r.pop("eval_seed")
    return r


def _autoattack_metrics(model, ds: ImageDataset, s: EvalSettings, dev, masks: dict) -> dict:
    """AutoAttack's robust accuracy, and beside it the project's PGD on the very same images: the gap, and
    how many images PGD calls robust that AutoAttack breaks (and the other way round)."""
    n = s.autoattack_subset or s.subset or len(ds.test)
    n = min(n, len(ds.test))
    r = autoattack_accuracy(model, ds.test.images[:n], ds.test.labels[:n], eps=s.eps or ds.default_eps,
                            fast=s.autoattack_fast, device=dev, seed=s.seed, batch_size=min(s.batch_size, 250))
    aa = r.pop("masks")["autoattack"]
    out = {"acc": r["autoattack_acc"], "version": r["autoattack_version"], "precision": r["autoattack_precision"],
           "samples": n, "seconds": r["autoattack_seconds"],
           "acc_stderr": (r["autoattack_acc"] * (1 - r["autoattack_acc"]) / max(n, 1)) ** 0.5}
    pgd = masks.get("pgd")
    if pgd is not None and len(pgd) >= n:
        pgd = pgd[:n]
        out.update(pgd_acc_same_images=pgd.double().mean().item(),
                   gap=pgd.double().mean().item() - r["autoattack_acc"],
                   pgd_only=int((pgd & ~aa).sum()), autoattack_only=int((aa & ~pgd).sum()))
    return out


def _gan_metrics(model, ds: ImageDataset, s: EvalSettings, dev, checkpoint) -> dict:
    loaded = load_compatible_gan(s.gan, ds, dev)
    gan = gan_metrics(loaded.generator, loaded.critic, model, ds.test, n_samples=s.gan_samples, batch_size=256,
                      seed=s.seed, device=dev, feature_net=f"{ds.name} classifier under test")
    judge = load_judge(s.judge, ds, dev, searched=checkpoint)
    run = balanced_search(model, loaded, s.unrestricted_samples, search=s.search, steps=s.search_steps,
                          eps_pix=s.eps_pix, target=s.target, seed=s.seed, device=dev, progress=True)
    unrestricted = {"search": s.search, "steps": s.search_steps or SEARCHES.lookup(s.search).steps,
                    "eps_pix": s.eps_pix, "target": s.target, "judge": s.judge, **search_figures(run, judge)}
    return {"gan": gan, "unrestricted": unrestricted}


# evaluation figure -> TensorBoard tag (written at the run's last epoch, beside the training curves)
EVAL_TAGS = {("clean_acc",): "eval/clean_acc", ("fgsm_acc",): "eval/fgsm_acc", ("pgd_acc",): "eval/pgd_acc",
             ("autoattack", "acc"): "eval/autoattack_acc", ("gan", "gan_sample_acc"): "eval/gan_sample_acc",
             ("unrestricted", "success_rate"): "eval/unrestricted_success",
             ("unrestricted", "valid_success_rate"): "eval/unrestricted_valid_success"}


def _to_tensorboard(run_dir: Path, block: dict, step: int) -> None:
    writer = runs.make_writer(run_dir)
    try:
        for path, tag in EVAL_TAGS.items():
            value = block
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                writer.add_scalar(tag, value, step)
    finally:
        writer.close()
