"""``demo`` and ``reproduce``: suites of runs (``pipeline.suites.SUITES``) end to end."""
from __future__ import annotations

import click

from .common import data_dir_option, device_option, reports_user_errors, seed_option


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True, metavar="DIR",
              help="Where every run, the pictures and the report go.")
@data_dir_option
@device_option
@seed_option
@reports_user_errors
def demo(out, data_dir, device, seed):
    """Train the small AC-GAN and a small DenseNet per augment mode on digits, evaluate all, report.

    Offline and CPU-sized (see pipeline/suites.py, SUITES["demo"], for the settings). Re-running skips what is
    finished and resumes what was interrupted.

    \b
    Example:
      python cli.py demo --out runs/demo
    """
    from pipeline import SUITES, run_suite

    paths = run_suite(SUITES["demo"], out, data_dir=data_dir, device=device, seed=seed)
    click.echo(f"done: open {paths['md']} (table) and {paths['png']} (chart); pictures in {out}/pictures")


@click.command("reproduce")
@click.option("--dataset", type=click.Choice(["fashion-mnist"], case_sensitive=False), default="fashion-mnist",
              show_default=True, help="Data set whose claims suite to run (pipeline/suites.py, SUITES).")
@click.option("--full", is_flag=True, help="The longer, paper-like schedule (for a GPU) instead of the CPU one.")
@click.option("--ablations", is_flag=True,
              help="Instead of the claims: FGSM (1.25 and 2 eps) and PGD-3 training with examples crafted in "
                   "train vs eval batch-norm mode, two seeds each, into the same folder (its train-mode runs are "
                   "the claims suite's; robustness figures only, no GAN); report in OUT/ablations/. Runs finished "
                   "on another machine count as done by their records.")
@click.option("--autoattack", "autoattack_n", type=click.IntRange(min=1), default=None, metavar="N",
              help="Instead of the claims: AutoAttack (standard, fp32) and PGD on the first N test images of every "
                   "adversarially trained run of a finished suite in OUT, each timed (OUT/autoattack-N.md).")
@click.option("--out", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where every run, the pictures, the report and the claims go.  [default: runs/reproduce-DATASET"
                   "[-full]; the committed results are in results/fashion-mnist]")
@data_dir_option
@device_option
@seed_option
@reports_user_errors
def reproduce(dataset, full, ablations, autoattack_n, out, data_dir, device, seed):
    """Re-measure the research claims: AC-GAN, one classifier per setting, identical evaluation, report.

    The settings live in pipeline/suites.py, SUITES ("fashion-mnist": sized for at most 150 min on 2 CPU
    cores; "fashion-mnist-full" with --full). Each claim gets a verdict computed from the numbers
    (pipeline/claims.py), written to claims.json and the report. Re-running skips finished runs and resumes
    an interrupted one.

    \b
    Examples:
      python cli.py reproduce --dataset fashion-mnist --out runs/reproduce-fashion-mnist
      python cli.py reproduce --out runs/reproduce-fashion-mnist --ablations        # after the claims suite
      python cli.py reproduce --out runs/reproduce-fashion-mnist --autoattack 500   # after the claims suite
    """
    from pipeline import SUITES, autoattack_check, run_suite

    name = f"{dataset.lower()}-full" if full else dataset.lower()
    out = out or f"runs/reproduce-{name}"
    if autoattack_n:
        autoattack_check(SUITES[name], out, n=autoattack_n, data_dir=data_dir, device=device, seed=seed)
        click.echo(f"done: {out}/autoattack-{autoattack_n}.md")
        return
    if ablations and f"{name}-ablations" not in SUITES:
        raise click.UsageError(f"--ablations: no ablation suite for {name} (there is one for {dataset.lower()})")
    suite = SUITES[f"{name}-ablations"] if ablations else SUITES[name]
    paths = run_suite(suite, out, data_dir=data_dir, device=device, seed=seed)
    click.echo(f"done: open {paths['md']} (table, claims) and {paths['curves']} (curves)")
