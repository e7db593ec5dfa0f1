"""The CLI's static choices and defaults (commands/choices.py, which keeps ``--help`` free of torch) equal
the registries and dataclasses they mirror; and ``--help`` answers without importing torch."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from commands import choices

ROOT = Path(__file__).resolve().parents[1]


def test_choices_mirror_the_registries():
    import augment
    import classifier
    import data
    import gan
    from attacks import ATTACK_LOSSES
    from pipeline import GRID_KINDS
    assert list(choices.DATASETS) == data.dataset_names()
    assert list(choices.ARCHS) == classifier.PRESETS.names()
    assert list(choices.AUGMENTERS) == augment.augmenter_names()
    assert list(choices.SCHEDULES) == classifier.SCHEDULES.names()
    assert list(choices.ATTACK_LOSSES) == ATTACK_LOSSES.names()
    assert list(choices.GRID_KINDS) == GRID_KINDS.names()
    assert list(choices.GAN_PRESETS) == list(gan.PRESETS)
    assert list(choices.GAN_LOSSES) == gan.loss_names() and list(choices.GAN_PENALTIES) == gan.penalty_names()
    from attacks import SEARCHES
    from attacks.mode import BN_MODES
    from attacks.overfit import GUARD_MODES
    assert list(choices.SEARCHES) == SEARCHES.names()
    assert choices.BN_MODES == BN_MODES and choices.GUARD_MODES == GUARD_MODES


def test_defaults_mirror_the_dataclasses():
    from classifier import TrainConfig
    from gan import PRESETS, TRAIN_PRESETS, TrainConfig as GANTrain
    train = dataclasses.asdict(TrainConfig())
    assert {k: train[k] for k in choices.TRAIN} == choices.TRAIN
    for field, shown in choices.GAN_TRAIN.items():
        values = {p: TRAIN_PRESETS[p].get(field, getattr(GANTrain(), field)) for p in PRESETS}
        expect = str(values[PRESETS[0]]) if len(set(values.values())) == 1 else \
            ", ".join(f"{p}: {v}" for p, v in values.items())
        assert shown == expect, field


def test_help_imports_no_torch():
    code = ("import sys; sys.argv = ['cli.py', 'train-classifier', '--help']; import cli\n"
            "try:\n    cli.cli()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--augment [none|fgsm|free|gan|pgd|unrestricted]" in proc.stdout
