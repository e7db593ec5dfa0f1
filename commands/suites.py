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
@click.option("--out", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where every run, the pictures, the report and the claims go.  [default: runs/reproduce-DATASET"
                   "[-full]; the committed results are in results/fashion-mnist]")
@data_dir_option
@device_option
@seed_option
@reports_user_errors
def reproduce(dataset, full, out, data_dir, device, seed):
    """Re-measure the research claims: AC-GAN, one classifier per setting, identical evaluation, report.

    The settings live in pipeline/suites.py, SUITES ("fashion-mnist": sized for at most 150 min on 2 CPU
    cores; "fashion-mnist-full" with --full). Each claim gets a verdict computed from the numbers
    (pipeline/claims.py), written to claims.json and the report. Re-running skips finished runs and resumes
    an interrupted one.

    \b
    Example:
      python cli.py reproduce --dataset fashion-mnist --out runs/reproduce-fashion-mnist
    """
    from pipeline import SUITES, run_suite

    name = f"{dataset.lower()}-full" if full else dataset.lower()
    out = out or f"runs/reproduce-{name}"
    paths = run_suite(SUITES[name], out, data_dir=data_dir, device=device, seed=seed)
    click.echo(f"done: open {paths['md']} (table, claims) and {paths['curves']} (curves); pictures in "
               f"{out}/pictures")
