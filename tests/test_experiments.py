"""The suite driver: runs everything once, writes the report, and a rerun skips finished work."""
from __future__ import annotations

import pytest
import torch

import runs
from classifier import TrainConfig
from pipeline import Anchor, EvalSettings, Setting, Suite, run_suite


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
    assert m["eval_seconds"] > 0 and "eval time (s)" in md
    assert "## Settings" in md and "PGD-2 (CE+CW losses, 1 restart(s) each" in md
    assert "| fgsm | fgsm | defaults | 1 |" in md and "Distance to published" not in md
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


def test_claims_suite_with_a_held_out_unrestricted_set(tmp_path):
    suite = Suite("mini-claims", "digits", "densenet-bc-22-8", TrainConfig(epochs=1, batch_size=256),
                  settings=[Setting("none"), Setting("unrestricted", "unrestricted", {"pool_size": 32, "latent_steps": 2})],
                  eval=EvalSettings(pgd_steps=2, subset=64, gan_samples=50, unrestricted_samples=10, latent_steps=5),
                  gan_steps=20, heldout_unrestricted=20, heldout_steps=10, claims=True,
                  anchors=(Anchor("none", "clean_acc", 0.9, 1.0, "a paper"),))
    paths = run_suite(suite, tmp_path)
    held = runs.load_checkpoint(tmp_path / "heldout_unrestricted.pt", kind="unrestricted-set")
    assert held["searched"] == 20 and held["found"] == len(held["labels"]) and held["images"].dtype == torch.uint8
    for name in ("none", "unrestricted"):
        m = runs.read_json(tmp_path / name / "metrics.json")
        assert 0 <= m["heldout_unrestricted_acc"] <= 1 and m["heldout_unrestricted_found"] == held["found"]
    verdicts = {v["key"]: v for v in runs.read_json(tmp_path / "claims.json")}
    assert sorted(verdicts) == list("abcdef")
    assert verdicts["a"]["holds"] is None and "fgsm" in verdicts["a"]["evidence"]      # no such runs here
    assert verdicts["f"]["holds"] in (True, False) and "held-out" in verdicts["f"]["evidence"]
    md = paths["md"].read_text()
    assert "The claims, judged from these numbers" in md and "held-out unrestricted acc" in md
    assert f"held-out unrestricted set: {held['found']} of 20 searches (10 steps) against `none`" in md
    assert "AC-GAN: preset `small`, 20 generator steps" in md
    assert "## Distance to published figures" in md and "| none | clean_acc |" in md and "a paper" in md
    assert paths["curves"].exists()
    stamp = (tmp_path / "heldout_unrestricted.pt").stat().st_mtime_ns
    run_suite(suite, tmp_path)                                   # the held-out set is found once
    assert (tmp_path / "heldout_unrestricted.pt").stat().st_mtime_ns == stamp


def test_time_left_counts_runs_finished_before_a_resume(tmp_path):
    from pipeline.suites import _Clock, _run_seconds
    runs.write_json(tmp_path / "metrics.json", {"train_seconds": 50.0, "eval_seconds": 10.0})
    clock = _Clock(total_units=3)
    clock.done(1, _run_seconds(tmp_path, wall=0.01))          # skipped: finished in an earlier process
    assert clock.status() == "elapsed 1.0 min, about 2 min left"
    runs.write_json(tmp_path / "metrics.json", {"train_seconds": 50.0})   # not evaluated: the wall time
    assert _run_seconds(tmp_path, wall=7.0) == 7.0


def test_an_interrupted_suite_says_how_to_resume_it(tmp_path, mini_suite, monkeypatch):
    import runtime
    from pipeline import suites

    def stop(*args, **kw):
        raise runtime.Interrupted("SIGINT: stopped at epoch 1, batch 3; checkpoint saved in X. Resume with --out X --resume")
    monkeypatch.setattr(suites, "_train_setting", stop)
    with pytest.raises(runtime.Interrupted, match="(?s)batch 3.*Run the same command again to resume the whole suite"):
        run_suite(mini_suite, tmp_path)
