"""``demo``: the whole pipeline end to end on digits, offline, in minutes."""
from __future__ import annotations

import click

from .common import data_dir_option, device_option, reports_user_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True, metavar="DIR",
              help="Where every run, the pictures and the report go.")
@data_dir_option
@device_option
@reports_user_errors
def demo(out, data_dir, device):
    """Train the small AC-GAN and a small DenseNet per augment mode on digits, evaluate all, report.

    Offline and CPU-sized (see experiments.SUITES["demo"] for the settings). Re-running skips what is
    finished and resumes what was interrupted.

    \b
    Example:
      python cli.py demo --out runs/demo
    """
    from experiments import SUITES, run_suite
    paths = run_suite(SUITES["demo"], out, data_dir=data_dir, device=device)
    click.echo(f"done: open {paths['md']} (table) and {paths['png']} (chart); pictures in {out}/pictures")


@click.command("reproduce")
@click.option("--dataset", type=click.Choice(["fashion-mnist"]), default="fashion-mnist", show_default=True,
              help="Data set whose claims suite to run (experiments.SUITES).")
@click.option("--full", is_flag=True, help="The longer, paper-like schedule (for a GPU) instead of the CPU one.")
@click.option("--out", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where every run, the pictures, the report and the claims go.  [default: results/DATASET"
                   "[-full]]")
@data_dir_option
@device_option
@reports_user_errors
def reproduce(dataset, full, out, data_dir, device):
    """Re-measure the research claims: AC-GAN, one classifier per setting, identical evaluation, report.

    The settings live in experiments.SUITES ("fashion-mnist": sized for at most 150 min on 2 CPU
    cores; "fashion-mnist-full" with --full). Each claim gets a verdict computed from the numbers (claims.py),
    written to claims.json and the report. Re-running skips finished runs and resumes an interrupted one.

    \b
    Example:
      python cli.py reproduce --dataset fashion-mnist --out results/fashion-mnist
    """
    from experiments import SUITES, run_suite
    name = f"{dataset}-full" if full else dataset
    out = out or f"results/{name}"
    paths = run_suite(SUITES[name], out, data_dir=data_dir, device=device)
    click.echo(f"done: open {paths['md']} (table, claims) and {paths['curves']} (curves); pictures in "
               f"{out}/pictures")
