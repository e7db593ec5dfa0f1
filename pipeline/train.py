"""Training steps of the application layer: a classifier run (data, model, augmenter, overfitting
guard, the one training loop) and an AC-GAN run, each from settings without option parsing."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import runs
import runtime
from attacks import OverfitGuard
from augment import Augmenter, augmenter_class
from classifier import TrainConfig, build_classifier, fit
from data import ImageDataset, Split, load_dataset
from gan import preset_configs, train_gan

from .common import ConfigError, load_compatible_gan, say

@dataclass
class ClassifierRun:
    """Everything that defines a classifier training run (stored in config.json and the checkpoint)."""
    dataset: str = "cifar100"
    data_dir: str = "datasets"
    arch: str = "densenet-bc-100-12"
    augment: str = "none"
    augment_kw: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    memory_efficient: bool = False    # recompute the bottlenecks in backward (less memory, more time)
    overfit: str = "warn"             # adversarial training's overfitting guard: warn, or stop (keep the
                                      # previous epoch's weights, as fast_adversarial's --early-stop)


def train_classifier(run: ClassifierRun, out: str | Path, *, device: str = "auto", resume: bool = False,
                     extend_epochs: int | None = None, flags: dict[str, str] | None = None) -> dict:
    """Train (or resume) a classifier run into ``out``; returns its metrics.

    Args:
        resume: continue the run in ``out``; its checkpoint's settings win over ``run``'s (but ``data_dir``).
        extend_epochs: with ``resume``, a new, larger number of epochs (the lr schedule stretches to it).
        flags: augmenter setting -> the CLI flag that sets it, so that errors name what the user typed.
    """
    dev = runtime.pick_device(device)
    runtime.init_distributed(dev)
    if resume:  # the checkpoint's settings win: nothing needs repeating on the command line
        saved = runs.resume_checkpoint(out, kind="classifier")
        train = _extended(TrainConfig(**saved["config"]["train"]), extend_epochs, out)
        run = ClassifierRun(**{**saved["config"]["run"], "train": train, "data_dir": run.data_dir})
    _check_global_batch(run.train.batch_size)
    ds = load_dataset(run.dataset, run.data_dir)
    if run.train.batch_size > len(ds.train):
        raise ConfigError(f"--batch-size {run.train.batch_size} is larger than the {len(ds.train)} training images "
                          f"of {ds.name}")
    aug = make_augmenter(run.augment, run.augment_kw, ds, amp=run.train.amp, flags=flags)
    hooks, ds = overfit_guard(aug, ds, dev, mode=run.overfit)
    run.augment_kw = {k: v for k, v in run.augment_kw.items() if v is not None}
    runs_cfg = run_config(run)
    out = runs.prepare_run_dir(out, resume=resume, config=runs_cfg) if runtime.dist_info().is_main else Path(out)
    runtime.seed_everything(run.train.seed)
    mean, std = ds.channel_stats()
    model = build_classifier(run.arch, num_classes=ds.num_classes, in_channels=ds.channels,
                             mean=mean, std=std, memory_efficient=run.memory_efficient).to(dev)
    say(f"training {run.arch} on {run.dataset} ({len(ds.train)} train / {len(ds.test)} test, "
        f"{ds.num_classes} classes) with augment={run.augment} on {dev} -> {out}")
    return fit(model, ds, cfg=run.train, out=out, device=dev, augmenter=aug, resume=resume, epoch_hooks=hooks,
               extra_config={"run": runs_cfg["run"], "arch": run.arch})


def run_config(run: ClassifierRun) -> dict:
    """What a classifier run's config.json holds (augmenter settings left unset are not recorded)."""
    run = replace(run, augment_kw={k: v for k, v in run.augment_kw.items() if v is not None})
    return {"run": {k: v for k, v in asdict(run).items() if k != "train"}, "train": asdict(run.train)}


def _extended(train: TrainConfig, epochs: int | None, out) -> TrainConfig:
    if epochs is None or epochs == train.epochs:
        return train
    if epochs < train.epochs:
        raise ConfigError(f"--epochs {epochs}: the run in {out} already has {train.epochs} epochs; --resume "
                          f"--epochs can only extend it")
    say(f"extending the run from {train.epochs} to {epochs} epochs (the lr schedule stretches to the new end)")
    return replace(train, epochs=epochs)


def _check_global_batch(batch_size: int) -> None:
    try:
        runtime.per_rank_batch(batch_size, "--batch-size")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def train_gan_run(out: str | Path, *, dataset: str | None = None, data_dir: str = "datasets",
                  preset: str = "cifar", device: str = "auto", resume: bool = False, **overrides) -> dict:
    """Train (or resume) an AC-GAN run into ``out`` from a preset plus overrides (None = preset's).

    With ``resume`` the checkpoint's settings and data set win; only an explicit ``steps`` extends it.
    """
    dev = runtime.pick_device(device)
    runtime.init_distributed(dev)
    if dataset is None:
        dataset = runs.resume_checkpoint(out, kind="gan")["dataset"] if resume else "cifar100"
    model_cfg, cfg = preset_configs(preset, **overrides)
    _check_global_batch(cfg.batch_size)
    ds = load_dataset(dataset, data_dir)
    if cfg.batch_size > len(ds.train):      # whole batches only: not even one would exist
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the {len(ds.train)} training images "
                          f"of {dataset}")
    summary = train_gan(ds, out, model_cfg=model_cfg, cfg=cfg, device=dev,
                        resume=resume, extend_to=overrides.get("steps") if resume else None)
    return {**summary, "dataset": dataset}


def make_augmenter(name: str, options: dict, ds: ImageDataset, *, amp: bool = True,
                   flags: dict[str, str] | None = None) -> Augmenter:
    """Build augmenter ``name`` from the options the user gave (None = not given).

    An option the augmenter does not take is an error, not silently ignored; ``eps`` defaults to the
    data set's threat model; an augmenter that crafts examples does so in the training loop's precision
    (``amp``). Invalid values (eps <= 0, ratio outside [0, 1], ...) raise ConfigError. ``flags`` maps
    setting names to the CLI flags that set them, for the messages.
    """
    try:
        cls = augmenter_class(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    accepted = cls.options()
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(k for k in given if k not in accepted)
    if wrong:
        flag = (flags or {}).get
        takes = [flag(p, p) for p in accepted if flags is None or p in flags]
        raise ConfigError(f"{', '.join(flag(k, k) for k in wrong)} {'is' if len(wrong) == 1 else 'are'} not used by "
                          f"--augment {name} (" + (f"it takes {', '.join(takes)})" if takes else "it takes no options)"))
    if "eps" in accepted and "eps" not in given:
        given["eps"] = ds.default_eps
    if "amp" in accepted:
        given.setdefault("amp", amp)
    if "gan" in accepted:
        if "gan" not in given:
            raise ConfigError(f"--augment {name} needs --gan RUN (a trained AC-GAN run or checkpoint)")
        given["gan"] = load_compatible_gan(given["gan"], ds, runtime.pick_device("cpu"))
    try:
        return cls(**given)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--augment {name}: {e}") from None


def overfit_guard(aug: Augmenter, ds: ImageDataset, device, *, mode: str = "warn",
                  probe_size: int = 256) -> tuple[list, ImageDataset]:
    """The catastrophic-overfitting guard of adversarial training (augmenters with an ``eps``) and the data
    set to train on: the guard's probe batch is the last ``min(probe_size, N / 10)`` training images, left out
    of training (never test images). Other augmenters get no guard and the whole training split."""
    if not hasattr(aug, "eps"):
        if mode != "warn":
            raise ConfigError(f"--overfit {mode} applies to adversarial training (fgsm, pgd, free), not to "
                              f"--augment {aug.name}")
        return [], ds
    n = min(probe_size, len(ds.train) // 10)
    train, probe = ds.train, Split(ds.train.images[-n:], ds.train.labels[-n:])
    guard = OverfitGuard(probe.images, probe.labels, eps=aug.eps, mode=mode, bn=getattr(aug, "craft_bn", "eval"),
                         fast=getattr(aug, "amp", True), device=device)
    return [guard], replace(ds, train=Split(train.images[:-n], train.labels[:-n]))
