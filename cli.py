#!/usr/bin/env python
"""Command-line entry point: ``python cli.py COMMAND --help``.

The commands live in ``commands/``; this file assembles them and tunes the process (allocator) before
PyTorch starts. Nothing imports this file.
"""
from __future__ import annotations

import os
import sys

import click

from commands.classifier import evaluate, train_classifier
from commands import grids as _attack_grids  # noqa: F401  (registers grid --kind fgsm|pgd)
from commands.experiments import demo
from commands.gan import grid, train_gan
from commands.report import report

# glibc's default malloc unmaps large freed blocks and page-faults them back on the next step;
# DenseNet's concatenations allocate 10-110 MB temporaries every layer. Keeping freed memory made
# training 1.5-2.2x faster on 2-core CPUs (bench/README.md). oneDNN's primitive cache must hold the
# train/attack/eval variants at once. Both must be set before the process starts.
_TUNED_ENV = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736",
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16384",
}


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


def _tune_process() -> None:
    """Re-exec once with the allocator settings above unless the user set them (or opted out)."""
    if not sys.platform.startswith("linux") or os.environ.get("ADVGEN_NO_TUNING"):
        return
    missing = {k: v for k, v in _TUNED_ENV.items() if k not in os.environ}
    if missing:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})


def main() -> None:
    _tune_process()
    cli()


if __name__ == "__main__":
    main()
