"""``train-gan`` and ``grid``.

``grid`` dispatches on ``--kind`` through the ``GRID_KINDS`` registry; attack grids (fgsm, pgd,
unrestricted) register themselves with ``@grid_kind("name")`` and receive every option as keywords.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from data import dataset_names
from gan import PRESETS, TRAIN_PRESETS, TrainConfig, loss_names, penalty_names

from .common import UserError, data_dir_option, device_option, out_option, reports_user_errors, seed_option, \
    resume_option

_T = TrainConfig()


def _preset_default(name: str) -> str:
    """'small: 1500, cifar: 100000' (or the single value when every preset agrees) for --help."""
    values = {p: TRAIN_PRESETS[p].get(name, getattr(_T, name)) for p in PRESETS}
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{p}: {v}" for p, v in values.items())


def _opt(flag: str, field: str, type_, help_: str):
    return click.option(flag, field, type=type_, default=None, show_default=_preset_default(field), help=help_)


@click.command("train-gan")
@click.option("--dataset", type=click.Choice(dataset_names()), default=None,
              show_default="cifar100; with --resume the run's", help="Data set name.")
@data_dir_option
@click.option("--preset", type=click.Choice(PRESETS), default="cifar", show_default=True,
              help="Architecture and hyperparameters: cifar (reference widths, GPU) or small (CPU minutes). "
                   "With --resume the run's settings win; only --steps can extend it.")
@_opt("--steps", "steps", click.IntRange(min=1), "Generator steps (with --resume: may extend the run).")
@_opt("--batch-size", "batch_size", click.IntRange(min=1), "Global batch per critic / generator step (split over torchrun ranks).")
@_opt("--n-critic", "n_critic", click.IntRange(min=1), "Critic steps per generator step.")
@_opt("--loss", "loss", click.Choice(loss_names()), "Adversarial loss.")
@_opt("--penalty", "penalty", click.Choice(penalty_names()), "Critic penalty: WGAN-GP, R1 or none.")
@_opt("--gp-weight", "gp_weight", click.FloatRange(min=0), "Weight of the penalty.")
@_opt("--gp-every", "gp_every", click.IntRange(min=1), "Penalty every k-th critic step, weighted x k (lazy).")
@_opt("--ac-weight-real", "ac_weight_real", click.FloatRange(min=0), "Class loss weight on real images (critic).")
@_opt("--ac-weight-fake", "ac_weight_fake", click.FloatRange(min=0),
      "Class loss weight on generated images (generator); 0 drops it.")
@_opt("--ema-decay", "ema_decay", click.FloatRange(0, 1), "Decay of the generator EMA used for sampling.")
@click.option("--amp/--fp32", default=None, show_default=str(_T.amp),
              help="bf16 autocast where supported (the penalty always runs in fp32), or plain fp32.")
@out_option()
@device_option
@seed_option
@resume_option
@reports_user_errors
def train_gan(dataset, data_dir, preset, out, device, seed, resume, **overrides):
    """Train an AC-GAN (ResNet, WGAN-GP by default) with an EMA generator.

    Writes checkpoints, TensorBoard scalars and class-conditional sample grids (OUT/samples/) to --out.

    \b
    Examples:
      python cli.py train-gan --dataset digits --preset small --out runs/gan-digits
      python cli.py train-gan --dataset cifar10 --preset cifar --out runs/gan-c10 --device cuda
      python cli.py train-gan --out runs/gan-digits --resume
    """
    from pipeline import train_gan_run
    summary = train_gan_run(out, dataset=dataset, data_dir=data_dir, preset=preset, device=device, resume=resume,
                            seed=seed, **overrides)
    click.echo(f"done: {summary['gan_steps']} generator steps on {summary['dataset']} in {summary['train_seconds']:.0f} s; "
               f"samples in {Path(out) / 'samples'}, generator in {Path(out) / 'checkpoint.pt'}")


# ----------------------------------------------------------------------------- grids

GRID_KINDS: dict[str, Callable[..., Path]] = {}


def grid_kind(name: str):
    """Register a grid kind: ``fn(*, out, device, **options) -> Path`` of the PNG it wrote."""
    def deco(fn):
        GRID_KINDS[name] = fn
        return fn
    return deco


@grid_kind("samples")
def samples_grid(*, gan_run, out, device, columns, seed, truncation, scale, **_) -> Path:
    """Rows = classes (named), columns = samples of the EMA generator from fixed noise."""
    import runtime
    from gan import load_gan, save_sample_grid

    if gan_run is None:
        raise UserError("--kind samples needs --gan RUN (a GAN run directory or checkpoint)")
    loaded = load_gan(gan_run, runtime.pick_device(device))
    save_sample_grid(loaded.generator, out, classes=loaded.info.get("classes"), columns=columns, seed=seed,
                     truncation=truncation, scale=scale)
    return Path(out)


def _check_kind(ctx, param, value):
    if value not in GRID_KINDS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(GRID_KINDS)}")
    return value


def _check_png(ctx, param, value):
    if Path(value).suffix.lower() != ".png":
        raise click.BadParameter("must be a .png file (lossless: perturbations survive)")
    return value


@click.command("grid")
@click.option("--kind", default="samples", show_default=True, callback=_check_kind, metavar="KIND",
              help="What to draw: samples (class-conditional GAN samples); attack kinds join as they are built.")
@click.option("--gan", "gan_run", type=click.Path(exists=True), default=None, metavar="RUN",
              help="GAN run directory or checkpoint.")
@click.option("--classifier", type=click.Path(exists=True), default=None, metavar="RUN",
              help="Classifier run directory or checkpoint (attack kinds).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, callback=_check_png, metavar="PNG",
              help="Where to write the grid.")
@click.option("--columns", type=click.IntRange(min=1), default=10, show_default=True, help="Samples per row.")
@click.option("--truncation", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Resample latent entries beyond this magnitude (sharper, less varied). Off by default.")
@click.option("--scale", type=click.IntRange(min=1), default=2, show_default=True,
              help="Integer upscaling of each image.")
@device_option
@seed_option
@reports_user_errors
def grid(kind, **options):
    """Draw a labelled image grid as a PNG.

    \b
    Example:
      python cli.py grid --kind samples --gan runs/gan-digits --out samples.png
    """
    path = GRID_KINDS[kind](**options)
    click.echo(f"wrote {path}")
