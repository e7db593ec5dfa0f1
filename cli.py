#!/usr/bin/env python
"""Command-line entry point: ``python cli.py COMMAND --help``.

The commands live in ``commands/``; this file assembles them and tunes the process (allocator, oneDNN cache;
``tuning.tune_process``) before anything heavy is imported. The command modules import no library code at
module level, so ``--help`` answers without loading torch.
"""
from __future__ import annotations

import click

from commands.classifier import evaluate, train_classifier
from commands.gan import train_gan
from commands.grid import grid
from commands.report import report
from commands.suites import demo, reproduce
from tuning import tune_process


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli():
    """Study how generated and adversarial data change an image classifier.

    \b
    Pipeline: train-gan -> train-classifier --augment NAME -> evaluate -> grid / report.
    Suites:   demo (digits, minutes) and reproduce (the research claims on Fashion-MNIST).
    """


for command in (train_classifier, evaluate, train_gan, grid, report, demo, reproduce):
    cli.add_command(command)


def main() -> None:
    tune_process()
    cli()


if __name__ == "__main__":
    main()
