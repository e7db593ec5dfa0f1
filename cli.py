#!/usr/bin/env python
"""Command-line entry point: ``python cli.py COMMAND --help``.

The commands live in ``commands/``; this file assembles them and tunes the process (allocator, oneDNN cache;
``runtime.tune_process``) before the work starts.
"""
from __future__ import annotations

import click

from commands.classifier import evaluate, train_classifier
from commands import grids as _attack_grids  # noqa: F401  (registers grid --kind fgsm|pgd)
from commands.experiments import demo, reproduce
from commands.gan import grid, train_gan
from commands.report import report
from runtime import tune_process


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli():
    """Study how generated and adversarial data change an image classifier.

    \b
    Pipeline: train-gan -> train-classifier --augment NAME -> evaluate -> grid / report.
    """


cli.add_command(train_classifier)
cli.add_command(evaluate)
cli.add_command(train_gan)
cli.add_command(grid)
cli.add_command(report)
cli.add_command(demo)
cli.add_command(reproduce)


def main() -> None:
    tune_process()
    cli()


if __name__ == "__main__":
    main()
