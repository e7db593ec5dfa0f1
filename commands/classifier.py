"""``train-classifier`` and ``evaluate``."""
from __future__ import annotations

import json

import click

from classifier import PRESETS, SCHEDULES, TrainConfig

from .common import (data_dir_option, dataset_option, device_option, out_option, reports_user_errors,
                     resume_option, seed_option)

_T = TrainConfig()


@click.command("train-classifier")
@dataset_option()
@data_dir_option
@click.option("--arch", type=click.Choice(list(PRESETS)), default="densenet-bc-100-12", show_default=True,
              help="DenseNet-BC preset.")
@click.option("--augment", default="none", show_default=True, metavar="NAME",
              help="Augmenter: none (more arrive with the augment package).")
@click.option("--epochs", type=click.IntRange(min=1), default=_T.epochs, show_default=True,
              help="Passes of work over the training set (free training divides them by --replays).")
@click.option("--batch-size", type=click.IntRange(min=1), default=_T.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=_T.lr, show_default=True,
              help="Peak SGD learning rate.")
@click.option("--schedule", type=click.Choice(list(SCHEDULES)), default=_T.schedule, show_default=True,
              help="multistep: x0.1 at 50% and 75% of the steps (DenseNet paper); cosine: to 0.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=_T.weight_decay, show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=_T.label_smoothing,
              show_default=True)
@click.option("--amp/--fp32", default=_T.amp, show_default=True,
              help="bf16 autocast (fp16 with loss scaling where bf16 is missing), or plain fp32.")
@click.option("--channels-last/--no-channels-last", default=_T.channels_last, show_default=True,
              help="Channels-last memory format for the model and its inputs.")
@click.option("--nonfinite", type=click.Choice(["stop", "skip"]), default=_T.nonfinite, show_default=True,
              help="On a NaN/inf loss: stop (keeping the last good checkpoint) or skip the batch.")
@out_option()
@device_option
@seed_option
@resume_option
@reports_user_errors
def train_classifier(dataset, data_dir, arch, augment, epochs, batch_size, lr, schedule, weight_decay,
                     label_smoothing, amp, channels_last, nonfinite, out, device, seed, resume):
    """Train a DenseNet-BC classifier, optionally with an augmenter.

    \b
    Examples:
      python cli.py train-classifier --dataset digits --arch densenet-bc-40-12 --epochs 5 --out runs/d
      python cli.py train-classifier --out runs/d --resume

    Ctrl-C (or SIGTERM) saves a checkpoint at the next step boundary; --resume continues exactly.
    """
    from pipeline import ClassifierRun, train_classifier as run_training
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, weight_decay=weight_decay,
                        label_smoothing=label_smoothing, amp=amp, channels_last=channels_last, seed=seed,
                        nonfinite=nonfinite)
    run = ClassifierRun(dataset=dataset, data_dir=data_dir, arch=arch, augment=augment, train=train)
    metrics = run_training(run, out, device=device, resume=resume)
    click.echo(f"done: clean accuracy {metrics['clean_acc']:.4f} after {metrics['epochs_done']} epochs "
               f"({metrics['train_seconds']:.0f} s); run in {out}")


@click.command("evaluate")
@click.argument("run", type=click.Path(exists=True))
@dataset_option(default=None, show_choices=True)
@data_dir_option
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@reports_user_errors
def evaluate(run, dataset, data_dir, batch_size, device, as_json):
    """Evaluate a trained classifier (RUN: run directory or checkpoint file) on the test split.

    Results are merged into the run's metrics.json. The data set defaults to the checkpoint's.

    \b
    Example:
      python cli.py evaluate runs/d
    """
    from pipeline import evaluate_classifier
    result = evaluate_classifier(run, data_dir=data_dir, dataset=dataset, device=device, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            click.echo(f"{k:>24}  {v:.4f}" if isinstance(v, float) else f"{k:>24}  {v}")
