"""Orchestration between the CLI and the library: one function per command, no option parsing.

``cli.py`` parses options and calls these; the reproduce/demo drivers call them too.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import runs
import runtime
from augment import build_augmenter
from classifier import TrainConfig, accuracy, build_classifier, fit, load_classifier
from data import ImageDataset, load_dataset


@dataclass
class ClassifierRun:
    """Everything that defines a classifier training run (stored in config.json and the checkpoint)."""
    dataset: str = "cifar100"
    data_dir: str = "datasets"
    arch: str = "densenet-bc-100-12"
    augment: str = "none"
    augment_kw: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)


def train_classifier(run: ClassifierRun, out: str | Path, *, device: str = "auto", resume: bool = False) -> dict:
    """Train (or resume) a classifier run into ``out``; returns its metrics."""
    dev = runtime.pick_device(device)
    runtime.init_distributed(dev)
    if resume:  # the checkpoint's settings win: nothing needs repeating on the command line
        saved = runs.load_checkpoint(out, kind="classifier")["config"]
        run = ClassifierRun(**{**saved["run"], "train": TrainConfig(**saved["train"]), "data_dir": run.data_dir})
    runs_cfg = {"run": {k: v for k, v in asdict(run).items() if k != "train"}, "train": asdict(run.train)}
    out = runs.prepare_run_dir(out, resume=resume, config=runs_cfg) if runtime.dist_info().is_main else Path(out)
    runtime.seed_everything(run.train.seed)
    ds = load_dataset(run.dataset, run.data_dir)
    mean, std = ds.channel_stats()
    model = build_classifier(run.arch, num_classes=ds.num_classes, in_channels=ds.channels,
                             mean=mean, std=std).to(dev)
    aug = build_augmenter(run.augment, **run.augment_kw)
    _say(f"training {run.arch} on {run.dataset} ({len(ds.train)} train / {len(ds.test)} test, "
         f"{ds.num_classes} classes) with augment={run.augment} on {dev} -> {out}")
    return fit(model, ds, cfg=run.train, out=out, device=dev, augmenter=aug, resume=resume,
               extra_config={"run": runs_cfg["run"], "arch": run.arch})


def evaluate_classifier(checkpoint: str | Path, *, data_dir: str = "datasets", dataset: str | None = None,
                        device: str = "auto", batch_size: int = 500, write: bool = True) -> dict:
    """Clean test accuracy of a trained classifier; merged into the run's metrics.json when ``write``.

    Uses the precision settings the run was trained (and evaluated each epoch) with, so it reproduces
    the accuracy the training logged.
    """
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(checkpoint, dev)
    ds = load_dataset(dataset or ckpt["dataset"], data_dir)
    check_compatible(ds, ckpt, what="classifier checkpoint")
    train_cfg = ckpt["config"].get("train", {})
    amp, channels_last = train_cfg.get("amp", False), train_cfg.get("channels_last", False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    result = {"dataset": ds.name, "clean_acc": accuracy(model, ds.test, device=dev, batch_size=batch_size,
                                                        amp=amp, channels_last=channels_last)}
    if write:
        run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
        runs.update_metrics(run_dir, result)
    return result


def check_compatible(ds: ImageDataset, ckpt: dict, *, what: str) -> None:
    """A checkpoint trained on other classes or another image shape cannot be used with ``ds``."""
    if ckpt["num_classes"] != ds.num_classes:
        raise runs.CheckpointError(f"the {what} has {ckpt['num_classes']} classes but {ds.name} has "
                                   f"{ds.num_classes}")
    cfg = ckpt["config"].get("model", {})
    if cfg.get("in_channels", ds.channels) != ds.channels:
        raise runs.CheckpointError(f"the {what} takes {cfg['in_channels']}-channel images but {ds.name} "
                                   f"has {ds.channels}")


def _say(msg: str) -> None:
    if runtime.dist_info().is_main:
        print(msg, file=sys.stderr, flush=True)

