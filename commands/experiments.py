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
