"""``grid``: every kind of labelled picture (``pipeline.pictures.GRID_KINDS``) from one command."""
from __future__ import annotations

from pathlib import Path

import click

from .choices import GRID_KINDS
from .common import (EPS, data_dir_option, device_option, eps_pix_option, judge_option, reports_user_errors,
                     search_option, seed_option, target_option)


def _check_png(ctx, param, value):
    if Path(value).suffix.lower() != ".png":
        raise click.BadParameter("must be a .png file (lossless: perturbations survive)")
    return value


@click.command("grid")
@click.option("--kind", type=click.Choice(GRID_KINDS), default="samples", show_default=True,
              help="samples: AC-GAN samples, rows = classes (--gan); fgsm / pgd: test images | adversarial | "
                   "amplified perturbation (--classifier); unrestricted: start G(z0,y) | found G(z*,y) | "
                   "difference (--classifier and --gan).")
@click.option("--gan", type=click.Path(exists=True), default=None, metavar="RUN",
              help="AC-GAN run directory or checkpoint (samples, unrestricted).")
@click.option("--classifier", type=click.Path(exists=True), default=None, metavar="RUN",
              help="Classifier run directory or checkpoint (fgsm, pgd, unrestricted).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, callback=_check_png, metavar="PNG",
              help="Where to write the grid.")
@data_dir_option
@click.option("--eps", type=EPS, default=None,
              help="fgsm/pgd: L-inf radius (0.1 or 8/255).  [default: the data set's]")
@click.option("--pgd-steps", type=click.IntRange(min=1), default=20, show_default=True, help="pgd: attack steps.")
@click.option("--rows", type=click.IntRange(min=1), default=8, show_default=True,
              help="fgsm/pgd/unrestricted: examples, one per row.")
@click.option("--columns", type=click.IntRange(min=1), default=10, show_default=True,
              help="samples: samples per class.")
@search_option
@click.option("--search-steps", type=click.IntRange(min=1), default=None,
              help="unrestricted: most latent-search steps per example.  [default: the setting's]")
@eps_pix_option
@target_option
@judge_option
@click.option("--truncation", type=click.FloatRange(min=0, min_open=True), default=None,
              help="samples: resample latent entries beyond this magnitude (sharper, less varied). Off by default.")
@click.option("--scale", type=click.IntRange(min=1), default=2, show_default=True,
              help="Integer upscaling of each image.")
@device_option
@seed_option
@reports_user_errors
def grid(kind, gan, classifier, out, data_dir, eps, pgd_steps, rows, columns, search, search_steps, eps_pix, target,
         judge, truncation, scale, device, seed):
    """Draw a labelled image grid as a PNG.

    \b
    Examples:
      python cli.py grid --kind samples --gan runs/gan-digits --out samples.png
      python cli.py grid --kind pgd --classifier runs/d-pgd --eps 0.1 --rows 6 --out pgd.png
      python cli.py grid --kind unrestricted --classifier runs/d --gan runs/gan-digits --judge runs/d-pgd --out u.png
      python cli.py grid --kind unrestricted --classifier runs/d --gan runs/gan-digits --target all --out t.png
    """
    from pipeline import GridOptions, draw_grid

    options = GridOptions(classifier=classifier, gan=gan, data_dir=data_dir, eps=eps, rows=rows, columns=columns,
                          pgd_steps=pgd_steps, search=search, search_steps=search_steps, eps_pix=eps_pix,
                          target=target, judge=judge, truncation=truncation, scale=scale, device=device, seed=seed)
    click.echo(f"wrote {draw_grid(kind, out, options)}")
