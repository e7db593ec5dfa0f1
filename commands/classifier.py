"""``train-classifier`` and ``evaluate``."""
from __future__ import annotations

import json

import click

from .choices import ARCHS, ATTACK_LOSSES, AUGMENTERS, BN_MODES, GUARD_MODES, SCHEDULES, TRAIN
from .common import (EPS, PixelFraction, data_dir_option, dataset_option, device_option, eps_pix_option, given,
                     judge_option, out_option, reports_user_errors, resume_option, search_option, seed_option,
                     target_option)

# augmenter setting -> the flag that sets it (error messages name flags, not Python parameters)
AUGMENT_FLAGS = {"eps": "--eps", "alpha": "--alpha", "random_start": "--zero-start", "steps": "--pgd-steps",
                 "replays": "--replays", "ratio": "--aug-ratio", "weight": "--aug-weight", "gan": "--gan",
                 "candidates": "--gan-candidates", "latent_steps": "--refresh-steps", "pool_size": "--pool-size",
                 "craft_bn": "--craft-bn", "eps_pix": "--eps-pix"}
# what --resume keeps from the run (a typed value is ignored, with a warning); --epochs extends the run
RUN_SETTINGS = ("dataset", "arch", "memory_efficient", "augment", "eps", "alpha", "zero_start", "pgd_steps",
                "craft_bn", "overfit", "replays", "aug_ratio", "aug_weight", "gan_run", "gan_candidates",
                "refresh_steps", "pool_size", "eps_pix",
                "batch_size", "lr", "schedule", "weight_decay", "label_smoothing", "amp", "channels_last",
                "nonfinite", "compile_", "sync_bn", "seed")


@click.command("train-classifier")
@dataset_option()
@data_dir_option
@click.option("--arch", type=click.Choice(ARCHS), default="densenet-bc-100-12", show_default=True,
              help="DenseNet-BC preset.")
@click.option("--memory-efficient", is_flag=True, default=False,
              help="Recompute each bottleneck's concat-BN-ReLU-Conv1x1 in backward: DenseNet-BC-100-12 at batch "
                   "128 needed 43% less memory at 1.3-1.5x the step time (bench/README.md).")
@click.option("--augment", type=click.Choice(AUGMENTERS), default="none", show_default=True,
              help="Augmenter applied to every training batch.")
@click.option("--eps", type=EPS, default=None,
              help="L-inf radius in pixels (0.1 or 8/255) for fgsm/pgd/free.  [default: the data set's, 8/255 "
                   "CIFAR, 0.1 grey]")
@click.option("--alpha", type=EPS, default=None, help="Attack step size.  [default: fgsm 1.25*eps, pgd 2.5*eps/K]")
@click.option("--zero-start", is_flag=True, help="fgsm/pgd: start at the clean image (classic FGSM) instead of random.")
@click.option("--pgd-steps", type=int, default=None, help="pgd: attack steps K.  [default: 7]")
@click.option("--craft-bn", type=click.Choice(BN_MODES), default=None,
              help="fgsm/pgd: batch norm while crafting the training examples: train (batch statistics, as "
                   "the reference implementations) or eval (running statistics).  [default: train]")
@click.option("--overfit", type=click.Choice(GUARD_MODES), default="warn", show_default=True,
              help="fgsm/pgd/free: when the per-epoch PGD probe (a held-out batch of training images) collapses, "
                   "warn, or stop and keep the previous epoch's weights (fast_adversarial's --early-stop).")
@click.option("--replays", type=int, default=None, help="free: minibatch replays m (epochs are divided by m).  [default: 4]")
@click.option("--aug-ratio", type=float, default=None,
              help="Fraction of each batch replaced by augmented samples.  [default: 1.0 attacks, 0.5 gan/unrestricted]")
@click.option("--aug-weight", type=float, default=None, help="Loss weight of augmented samples.  [default: 1.0]")
@click.option("--gan", "gan_run", type=click.Path(exists=True), default=None, metavar="RUN",
              help="gan/unrestricted: the trained AC-GAN (run directory or checkpoint).")
@click.option("--gan-candidates", type=int, default=None,
              help="gan: keep the most confident of k samples per slot (AC head).  [default: 1, no filter]")
@click.option("--refresh-steps", type=int, default=None,
              help="unrestricted: warm-started latent-search steps per pool refresh.  [default: 5]")
@click.option("--pool-size", type=int, default=None, help="unrestricted: latent pool size.  [default: 512]")
@click.option("--eps-pix", type=PixelFraction(allow_zero=True), default=None,
              help="unrestricted: pixel noise eps_pix*tanh(tau) searched with z.  [default: 0, pure latent]")
@click.option("--epochs", type=click.IntRange(min=1), default=TRAIN["epochs"], show_default=True,
              help="Passes of work over the training set (free training divides them by --replays). With "
                   "--resume: a larger number extends the run.")
@click.option("--batch-size", type=click.IntRange(min=1), default=TRAIN["batch_size"], show_default=True,
              help="Global batch: under torchrun each of N ranks takes batch/N, so the lr stays as it is.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=TRAIN["lr"], show_default=True,
              help="Peak SGD learning rate.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=TRAIN["schedule"], show_default=True,
              help="multistep: x0.1 at 50% and 75% of the steps (DenseNet paper); cosine: to 0.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=TRAIN["weight_decay"], show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=TRAIN["label_smoothing"],
              show_default=True)
@click.option("--amp/--fp32", default=TRAIN["amp"], show_default=True,
              help="bf16 autocast (fp16 with loss scaling where bf16 is missing), or plain fp32.")
@click.option("--channels-last/--no-channels-last", default=TRAIN["channels_last"], show_default=True,
              help="Channels-last memory format for the model and its inputs.")
@click.option("--nonfinite", type=click.Choice(["stop", "skip"]), default=TRAIN["nonfinite"], show_default=True,
              help="On a NaN/inf loss: stop (keeping the last good checkpoint) or skip the batch.")
@click.option("--compile", "compile_", is_flag=True, default=TRAIN["compile"],
              help="torch.compile the training model (the first steps pay the compile time).")
@click.option("--sync-bn", is_flag=True, default=TRAIN["sync_bn"],
              help="Under torchrun: batch-norm statistics of the global batch (SyncBatchNorm on CUDA, an "
                   "all-reduce on CPU). No effect in one process.")
@out_option()
@device_option
@seed_option
@resume_option
@reports_user_errors
@click.pass_context
def train_classifier(ctx, dataset, data_dir, arch, memory_efficient, augment, eps, alpha, zero_start, pgd_steps,
                     craft_bn, overfit, replays, aug_ratio, aug_weight, gan_run, gan_candidates, refresh_steps,
                     pool_size, eps_pix, epochs,
                     batch_size, lr, schedule, weight_decay, label_smoothing, amp, channels_last, nonfinite,
                     compile_, sync_bn, out, device, seed, resume):
    """Train a DenseNet-BC classifier, optionally with an augmenter.

    \b
    Examples:
      python cli.py train-classifier --dataset digits --arch densenet-bc-40-12 --epochs 5 --out runs/d
      python cli.py train-classifier --dataset digits --augment fgsm --eps 0.1 --out runs/d-fgsm
      python cli.py train-classifier --dataset cifar10 --augment pgd --eps 8/255 --pgd-steps 7 --out runs/c-pgd
      python cli.py train-classifier --dataset digits --augment free --replays 4 --out runs/d-free
      python cli.py train-classifier --dataset digits --augment unrestricted --gan runs/gan-digits --out runs/d-u
      python cli.py train-classifier --out runs/d --resume               # continue an interrupted run
      python cli.py train-classifier --out runs/d --resume --epochs 10   # extend a run to 10 epochs

    Ctrl-C (or SIGTERM) saves a checkpoint at the next step boundary; --resume continues exactly.
    """
    from classifier import TrainConfig
    from pipeline import ClassifierRun, train_classifier as run_training

    if resume:
        ignored = given(ctx, *RUN_SETTINGS)
        if ignored:
            click.echo(f"warning: --resume keeps the run's own settings; ignored: {', '.join(ignored)} "
                       f"(only --epochs can change: a larger number extends the run)", err=True)
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, weight_decay=weight_decay,
                        label_smoothing=label_smoothing, amp=amp, channels_last=channels_last, seed=seed,
                        nonfinite=nonfinite, sync_bn=sync_bn, compile=compile_)
    aug_kw = {"eps": eps, "alpha": alpha, "random_start": False if zero_start else None, "steps": pgd_steps,
              "replays": replays, "ratio": aug_ratio, "weight": aug_weight, "gan": gan_run,
              "candidates": gan_candidates, "latent_steps": refresh_steps, "pool_size": pool_size,
              "craft_bn": craft_bn, "eps_pix": eps_pix}
    run = ClassifierRun(dataset=dataset.lower(), data_dir=data_dir, arch=arch, augment=augment, augment_kw=aug_kw,
                        train=train, memory_efficient=memory_efficient, overfit=overfit)
    metrics = run_training(run, out, device=device, resume=resume, flags=AUGMENT_FLAGS,
                           extend_epochs=epochs if resume and given(ctx, "epochs") else None)
    t = metrics["train"]
    stopped = f" (stopped early at epoch {t['stopped_early_at_epoch']})" if t["stopped_early_at_epoch"] else ""
    click.echo(f"done: test accuracy {t['test_acc']:.4f} after {t['epochs_done']} epochs{stopped} "
               f"({t['train_seconds']:.0f} s); run in {out}")


@click.command("evaluate")
@click.argument("run", type=click.Path(exists=True))
@dataset_option(default=None, show_choices=True)
@click.option("--force-dataset", is_flag=True,
              help="Evaluate on --dataset although the run was trained on another (recorded as such).")
@data_dir_option
@click.option("--eps", type=EPS, default=None, help="L-inf radius of the attacks (0.1 or 8/255).  [default: the "
                                                   "data set's]")
@click.option("--pgd-steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--restarts", type=click.IntRange(min=1), default=1, show_default=True,
              help="PGD restarts per loss; the worst case per sample is kept.")
@click.option("--losses", default="ce,cw", show_default=True, help=f"PGD losses, comma-separated ({', '.join(ATTACK_LOSSES)}).")
@click.option("--early-stop/--last-iterate", default=True, show_default=True,
              help="PGD: a sample stops at its first misclassified iterate (locuslab's attack_pgd), or each "
                   "restart returns its last iterate.")
@click.option("--fast/--fp32", "fast", default=True, show_default=True,
              help="Attack gradients through the bf16 attack-time view, or the fp32 model (verdicts are fp32 "
                   "either way).")
@click.option("--subset", type=click.IntRange(min=1), default=None,
              help="Attack only the first N test images.  [default: all]")
@click.option("--no-attacks", is_flag=True, help="Clean accuracy only.")
@click.option("--autoattack", is_flag=True,
              help="Also AutoAttack (torchattacks, standard: APGD-CE, APGD-T, FAB-T, Square), beside PGD on the "
                   "same images.")
@click.option("--autoattack-subset", type=click.IntRange(min=1), default=None,
              help="AutoAttack on the first N test images.  [default: --subset]")
@click.option("--autoattack-view", is_flag=True,
              help="AutoAttack through the bf16 attack-time view instead of the fp32 model (its accuracy against "
                   "fp32: bench/autoattack.py --view).")
@click.option("--gan", type=click.Path(exists=True), default=None, metavar="RUN",
              help="AC-GAN run or checkpoint: accuracy on its samples, FID/IS in this classifier's features, "
                   "unrestricted adversarial examples.")
@click.option("--gan-samples", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Class-balanced GAN samples for sample accuracy, FID and IS.")
@click.option("--unrestricted-samples", type=click.IntRange(min=1), default=200, show_default=True,
              help="Latent searches against the model.")
@search_option
@click.option("--search-steps", type=click.IntRange(min=1), default=None,
              help="Most latent-search steps per example.  [default: the setting's, song2018 1000, fast 100]")
@eps_pix_option
@target_option
@judge_option
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@device_option
@seed_option
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation block as JSON.")
@reports_user_errors
def evaluate(run, dataset, force_dataset, data_dir, eps, pgd_steps, restarts, losses, early_stop, fast, subset,
             no_attacks, autoattack, autoattack_subset, autoattack_view, gan, gan_samples, unrestricted_samples,
             search, search_steps, eps_pix, target, judge, batch_size, device, seed, as_json):
    """Evaluate a trained classifier (RUN: run directory or checkpoint file).

    Clean accuracy on the whole test split; FGSM and PGD-K (CE and CW losses, restarts) keeping the
    worst case per sample; with --autoattack, AutoAttack beside PGD on the same images; with --gan, accuracy
    on the GAN's class-conditional samples and unrestricted adversarial examples (latent search; the AC
    head must keep the class; with --judge, valid success). The run's metrics.json gets one evaluation
    block with these settings, replacing any earlier one whole. The data set is the checkpoint's.

    \b
    Examples:
      python cli.py evaluate runs/d
      python cli.py evaluate runs/d --pgd-steps 50 --restarts 5 --autoattack --subset 500
      python cli.py evaluate runs/d --gan runs/gan-digits --judge runs/d-pgd --search song2018
    """
    from pipeline import EvalSettings, evaluate_classifier

    names = tuple(n.strip() for n in losses.split(",") if n.strip())
    bad = [n for n in names if n not in ATTACK_LOSSES]
    if bad or not names:
        raise click.BadParameter(f"unknown loss {', '.join(bad) or '(none)'}: use {', '.join(ATTACK_LOSSES)}",
                                 param_hint="--losses")
    settings = EvalSettings(eps=eps, pgd_steps=pgd_steps, restarts=restarts, losses=names, early_stop=early_stop,
                            fast=fast, subset=subset, attacks=not no_attacks, autoattack=autoattack,
                            autoattack_subset=autoattack_subset, autoattack_fast=autoattack_view, gan=gan,
                            gan_samples=gan_samples, unrestricted_samples=unrestricted_samples, search=search,
                            search_steps=search_steps, eps_pix=eps_pix, target=target, judge=judge, seed=seed,
                            batch_size=batch_size)
    block = evaluate_classifier(run, settings, data_dir=data_dir, dataset=dataset and dataset.lower(),
                                force_dataset=force_dataset, device=device)
    if as_json:
        click.echo(json.dumps(block, indent=2))
        return
    _print_block(block)


def _print_block(block: dict, prefix: str = "") -> None:
    for k, v in block.items():
        if k in ("settings", "gan_sample_acc_per_class"):
            continue
        if isinstance(v, dict):
            _print_block(v, f"{prefix}{k}.")
        elif not isinstance(v, list):
            click.echo(f"{prefix + k:>34}  {v:.4f}" if isinstance(v, float) else f"{prefix + k:>34}  {v}")
