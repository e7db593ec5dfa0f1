"""``train-gan``."""
from __future__ import annotations

from pathlib import Path

import click

from .choices import DATASETS, GAN_LOSSES, GAN_PENALTIES, GAN_PRESETS, GAN_TRAIN
from .common import data_dir_option, device_option, out_option, reports_user_errors, resume_option, seed_option


def _opt(flag: str, field: str, type_, help_: str):
    return click.option(flag, field, type=type_, default=None, show_default=GAN_TRAIN[field], help=help_)


@click.command("train-gan")
@click.option("--dataset", type=click.Choice(DATASETS, case_sensitive=False), default=None,
              show_default="cifar100; with --resume the run's", help="Data set name.")
@data_dir_option
@click.option("--preset", type=click.Choice(GAN_PRESETS), default="cifar", show_default=True,
              help="Architecture and hyperparameters: cifar (reference widths, GPU) or small (CPU minutes). "
                   "With --resume the run's settings win; only --steps can extend it.")
@_opt("--steps", "steps", click.IntRange(min=1), "Generator steps (with --resume: may extend the run).")
@_opt("--batch-size", "batch_size", click.IntRange(min=1), "Global batch per critic / generator step (split over torchrun ranks).")
@_opt("--n-critic", "n_critic", click.IntRange(min=1), "Critic steps per generator step.")
@_opt("--loss", "loss", click.Choice(GAN_LOSSES), "Adversarial loss.")
@_opt("--penalty", "penalty", click.Choice(GAN_PENALTIES), "Critic penalty: WGAN-GP, R1 or none.")
@_opt("--gp-weight", "gp_weight", click.FloatRange(min=0), "Weight of the penalty.")
@_opt("--gp-every", "gp_every", click.IntRange(min=1), "Penalty every k-th critic step, weighted x k (lazy).")
@_opt("--ac-weight-real", "ac_weight_real", click.FloatRange(min=0), "Class loss weight on real images (critic).")
@_opt("--ac-weight-fake", "ac_weight_fake", click.FloatRange(min=0),
      "Class loss weight on generated images (generator); 0 drops it.")
@_opt("--ema-decay", "ema_decay", click.FloatRange(0, 1), "Decay of the generator EMA used for sampling.")
@click.option("--amp/--fp32", default=None, show_default=GAN_TRAIN["amp"],
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
    summary = train_gan_run(out, dataset=dataset and dataset.lower(), data_dir=data_dir, preset=preset, device=device, resume=resume,
                            seed=seed, **overrides)
    click.echo(f"done: {summary['gan_steps']} generator steps on {summary['dataset']} in {summary['train_seconds']:.0f} s; "
               f"samples in {Path(out) / 'samples'}, generator in {Path(out) / 'checkpoint.pt'}")
