"""``report``: a comparison table and chart across runs."""
from __future__ import annotations

import click

from .common import reports_user_errors


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(), default="report", show_default=True, metavar="DIR",
              help="Where report.md, report.csv, report.json, accuracy.png and curves.png go.")
@click.option("--title", default="", help="Title of the report and chart.")
@reports_user_errors
def report(run_dirs, out, title):
    """Compare classifier runs: gathers each RUN_DIR's metrics.json into one table and a bar chart.

    Nothing is written unless every run can be read and every file drawn.

    \b
    Example:
      python cli.py report runs/none runs/fgsm runs/free --out runs/report
    """
    from pipeline import collect, markdown_table, write_report

    rows = collect(list(run_dirs))
    paths = write_report(rows, out, title=title)
    click.echo(markdown_table(rows))
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
