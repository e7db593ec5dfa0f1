"""``report``: a comparison table and chart across runs."""
from __future__ import annotations

import click

from .common import UserError


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(), default="report", show_default=True, metavar="DIR",
              help="Where report.md, report.csv, report.json and accuracy.png go.")
@click.option("--title", default="", help="Title of the report and chart.")
def report(run_dirs, out, title):
    """Compare runs: gathers each RUN_DIR's metrics.json into one table and a bar chart.

    \b
    Example:
      python cli.py report runs/none runs/fgsm runs/free --out runs/report
    """
    from report import ReportError, collect, markdown_table, write_report
    try:
        rows = collect(list(run_dirs))
    except ReportError as e:
        raise UserError(str(e)) from None
    paths = write_report(rows, out, title=title)
    click.echo(markdown_table(rows))
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
