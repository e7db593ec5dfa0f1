"""The suite driver: runs everything once, writes the report, and a rerun skips finished work."""
from __future__ import annotations

import pytest

import runs
from classifier import TrainConfig
from experiments import Setting, Suite, run_suite
from pipeline import EvalSettings


@pytest.fixture
def mini_suite():
    return Suite("mini", "digits", "densenet-bc-22-8", TrainConfig(epochs=1, batch_size=256),
                 settings=[Setting("none"), Setting("fgsm", "fgsm", cost=2)],
                 eval=EvalSettings(pgd_steps=2, subset=64), needs_gan=False)


def test_suite_runs_then_skips_finished_runs(tmp_path, mini_suite):
    paths = run_suite(mini_suite, tmp_path)
    md = paths["md"].read_text()
    assert "| none | none |" in md and "| fgsm | fgsm |" in md
    assert (tmp_path / "pictures" / "fgsm.png").exists() and (tmp_path / "pictures" / "pgd.png").exists()
    m = runs.read_json(tmp_path / "fgsm" / "metrics.json")
    assert m["pgd_acc"] <= m["fgsm_acc"] and m["eval_settings"]["pgd_steps"] == 2
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoint.pt")}
    run_suite(mini_suite, tmp_path)                               # nothing left to train or evaluate
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoint.pt")}


def test_run_names_cannot_collide_with_the_gan_run():
    with pytest.raises(ValueError, match="unique"):
        Suite("bad", "digits", "densenet-bc-22-8", TrainConfig(), settings=[Setting("acgan", "gan")],
              eval=EvalSettings())
    with pytest.raises(ValueError, match="unique"):
        Suite("bad", "digits", "densenet-bc-22-8", TrainConfig(), settings=[Setting("a"), Setting("a")],
              eval=EvalSettings())
