"""The suite driver: runs everything once, writes the report, and a rerun skips finished work."""
from __future__ import annotations

import json
from dataclasses import asdict, replace

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
    m = runs.read_json(tmp_path / "fgsm" / "metrics.json")["evaluation"]
    assert m["pgd_acc"] <= m["fgsm_acc"] and m["settings"]["pgd_steps"] == 2
    assert m["eval_seconds"] > 0 and "eval time (s)" in md
    assert "## Settings" in md and "PGD-2 (CE+CW losses, 1 restart(s) each" in md
    assert "| fgsm | fgsm | defaults | 1 |" in md and "Distance to published" not in md
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoint.pt")}
    run_suite(mini_suite, tmp_path)                               # nothing left to train or evaluate
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoint.pt")}


def test_a_suite_is_done_by_its_records_where_its_checkpoints_are_gone(tmp_path, mini_suite, capsys):
    """Checkpoints are not committed: a finished suite carried to another machine by its records is not
    retrained; a run whose records no longer match what the suite asks is."""
    run_suite(mini_suite, tmp_path)
    before = {n: (tmp_path / n / "metrics.json").read_bytes() for n in ("none", "fgsm")}
    for ckpt in tmp_path.glob("*/checkpoint.pt"):
        ckpt.unlink()
    capsys.readouterr()
    paths = run_suite(mini_suite, tmp_path)
    err = capsys.readouterr().err
    assert not list(tmp_path.glob("*/checkpoint.pt"))                       # nothing retrained
    assert before == {n: (tmp_path / n / "metrics.json").read_bytes() for n in ("none", "fgsm")}
    assert "fgsm: trained and evaluated with these settings (its records" in err
    assert "pgd.png not redrawn: no checkpoint in none" in err and paths["md"].is_file()
    longer = replace(mini_suite, eval=replace(mini_suite.eval, pgd_steps=3))   # a new evaluation needs the model
    run_suite(longer, tmp_path)
    assert {p.parent.name for p in tmp_path.glob("*/checkpoint.pt")} == {"none", "fgsm"}
    assert runs.read_json(tmp_path / "fgsm" / "metrics.json")["evaluation"]["settings"]["pgd_steps"] == 3


def test_an_evaluation_with_the_gan_part_covers_one_without_it():
    from pipeline.suites import _covers
    plain = EvalSettings(pgd_steps=2, subset=64)
    with_gan = json.loads(json.dumps(asdict(replace(plain, gan="g", judge="j", unrestricted_samples=5))))
    assert _covers(with_gan, plain)                                  # it measured all that and more
    assert not _covers(json.loads(json.dumps(asdict(plain))), replace(plain, gan="g"))   # not the other way
    assert not _covers(with_gan, replace(plain, pgd_steps=3))        # other attack settings: not covered
    assert not _covers(None, plain)


def test_with_the_gan_part_no_run_is_taken_from_its_records_while_a_step_needs_models(tmp_path):
    """Judges, the reference search and the held-out set use other runs' models: only once all of them are
    done may runs without checkpoints be left untrained."""
    from pipeline.suites import REFERENCE, _eval_settings, _models_needed, _reference_request
    suite = Suite("g", "digits", "densenet-bc-22-8", TrainConfig(epochs=1), settings=[Setting("none"),
                  Setting("pgd", "pgd")], eval=EvalSettings(pgd_steps=2), judge="pgd", reference_search=4,
                  heldout_unrestricted=4)
    gan_dir = tmp_path / "acgan"
    for s in suite.settings:
        settings = json.loads(json.dumps(asdict(_eval_settings(suite, s, tmp_path, gan_dir))))
        runs.write_json(tmp_path / s.name / "metrics.json", {"evaluation": {"settings": settings}, "heldout": {}})
    assert _models_needed(suite, tmp_path, gan_dir) == {"none", "pgd"}          # the reference search is to do
    runs.write_json(tmp_path / REFERENCE, {"request": _reference_request(suite)})
    assert _models_needed(suite, tmp_path, gan_dir) == set()
    runs.write_json(tmp_path / "pgd" / "metrics.json", {"evaluation": {"settings": settings}})   # no held-out figure
    assert _models_needed(suite, tmp_path, gan_dir) == {"none", "pgd"}
    assert _models_needed(replace(suite, needs_gan=False), tmp_path, gan_dir) == set()   # runs are independent


def test_run_names_cannot_collide_with_the_gan_run():
    with pytest.raises(ValueError, match="unique"):
        Suite("bad", "digits", "densenet-bc-22-8", TrainConfig(), settings=[Setting("acgan", "gan")],
              eval=EvalSettings())
    with pytest.raises(ValueError, match="unique"):
        Suite("bad", "digits", "densenet-bc-22-8", TrainConfig(), settings=[Setting("a"), Setting("a")],
              eval=EvalSettings())


def test_claims_suite_with_a_judge_a_reference_search_and_a_held_out_set(tmp_path):
    suite = Suite("mini-claims", "digits", "densenet-bc-22-8", TrainConfig(epochs=1, batch_size=256),
                  settings=[Setting("none"), Setting("pgd", "pgd", {"steps": 1}),
                            Setting("unrestricted", "unrestricted", {"pool_size": 32, "latent_steps": 2})],
                  eval=EvalSettings(pgd_steps=2, subset=64, autoattack_subset=4, gan_samples=50,
                                    unrestricted_samples=10, search_steps=5),
                  gan_steps=20, judge="pgd", autoattack=True, heldout_unrestricted=20, heldout_steps=20,
                  reference_search=10, reference_steps=5, claims=True,
                  anchors=(Anchor("none", "clean_acc", 0.9, 1.0, "a paper"),))
    paths = run_suite(suite, tmp_path)
    held = runs.load_checkpoint(tmp_path / "heldout_unrestricted.pt", kind="unrestricted-set")
    assert held["searched"] == 20 and held["found"] == len(held["labels"]) and held["images"].dtype == torch.uint8
    assert held["found"] <= held["succeeded"] and held["judge"] == str(tmp_path / "pgd")   # valid ones only
    for name in ("none", "unrestricted"):
        m = runs.read_json(tmp_path / name / "metrics.json")
        assert m["heldout"]["found"] == held["found"]
        assert (m["heldout"]["acc"] is None) == (held["found"] == 0) and 0 <= (m["heldout"]["acc"] or 0) <= 1
        u = m["evaluation"]["unrestricted"]
        assert u["judge"] == str(tmp_path / "pgd") and u["valid_success_rate"] <= u["success_rate"]
        assert "autoattack" not in m["evaluation"]                                 # not adversarially trained
    pgd = runs.read_json(tmp_path / "pgd" / "metrics.json")["evaluation"]
    assert pgd["unrestricted"]["judge"] is None and pgd["autoattack"]["samples"] == 4    # nobody judges the judge
    reference = runs.read_json(tmp_path / "reference_search.json")
    assert reference["search"] == "song2018" and reference["steps"] == 5 and reference["searches"] == 10
    verdicts = {v["key"]: v for v in runs.read_json(tmp_path / "claims.json")}
    assert sorted(verdicts) == list("abcdef")
    assert verdicts["a"]["holds"] is None and "fgsm" in verdicts["a"]["evidence"]      # no such runs here
    assert verdicts["c"]["holds"] in (True, False) and "song2018" in verdicts["c"]["evidence"]
    if held["found"]:                            # a 1-epoch judge may accept none of the successes
        assert verdicts["f"]["holds"] in (True, False) and "held-out" in verdicts["f"]["evidence"]
    else:
        assert verdicts["f"]["holds"] is None and "not measured" in verdicts["f"]["evidence"]
    md = paths["md"].read_text()
    assert "The claims, judged from these numbers" in md
    assert ("held-out unrestricted acc" in md) == bool(held["found"])
    assert f"held-out unrestricted set: {held['found']} valid examples of {held['succeeded']} successes in 20" in md
    assert "AC-GAN: preset `small`, 20 generator steps" in md and "AutoAttack" in md
    assert "## Distance to published figures" in md and "| none | clean_acc |" in md and "a paper" in md
    assert paths["curves"].exists()
    stamp = (tmp_path / "heldout_unrestricted.pt").stat().st_mtime_ns
    run_suite(suite, tmp_path)                                   # the held-out set is found once
    assert (tmp_path / "heldout_unrestricted.pt").stat().st_mtime_ns == stamp


def test_time_left_counts_runs_finished_before_a_resume(tmp_path):
    from pipeline.suites import _Clock, _train_seconds
    runs.write_json(tmp_path / "metrics.json", {"kind": "classifier", "train": {"train_seconds": 60.0}})
    clock = _Clock(total_units=3)
    clock.done(1, _train_seconds(tmp_path, wall=0.01))        # skipped: finished in an earlier process
    assert clock.status() == "elapsed 1.0 min, about 2 min of training left"
    runs.write_json(tmp_path / "metrics.json", {"kind": "classifier", "train": {}})   # no record: the wall time
    assert _train_seconds(tmp_path, wall=7.0) == 7.0


def test_an_interrupted_suite_says_how_to_resume_it(tmp_path, mini_suite, monkeypatch):
    import runtime
    from pipeline import suites

    def stop(*args, **kw):
        raise runtime.Interrupted("SIGINT: stopped at epoch 1, batch 3; checkpoint saved in X. Resume with --out X --resume")
    monkeypatch.setattr(suites, "_train_setting", stop)
    with pytest.raises(runtime.Interrupted, match="(?s)batch 3.*Run the same command again to resume the whole suite"):
        run_suite(mini_suite, tmp_path)


def test_without_the_gan_each_run_is_evaluated_as_soon_as_it_is_trained(tmp_path, mini_suite, monkeypatch):
    """An interrupted suite without judges leaves its finished runs' records whole (done by their records)."""
    import runtime
    from pipeline import suites
    real = suites._train_setting

    def train_then_stop(suite, s, *args, **kw):
        if s.name == "fgsm":
            raise runtime.Interrupted("SIGINT")
        return real(suite, s, *args, **kw)
    monkeypatch.setattr(suites, "_train_setting", train_then_stop)
    with pytest.raises(runtime.Interrupted):
        run_suite(mini_suite, tmp_path)
    assert runs.read_json(tmp_path / "none" / "metrics.json")["evaluation"]["settings"]["pgd_steps"] == 2


def test_a_suite_without_the_gan_does_not_describe_another_suites_held_out_set(tmp_path):
    """The ablation suite shares runs with the claims suite; the claims suite's held-out figures in a shared
    run's records are not a held-out set of the ablation suite's."""
    from pipeline.suite_report import settings_markdown
    suite = Suite("g", "digits", "densenet-bc-22-8", TrainConfig(epochs=1), settings=[Setting("fgsm", "fgsm")],
                  eval=EvalSettings(pgd_steps=2), judge="pgd", heldout_unrestricted=4)
    row = {"fgsm": {"heldout_searched": 4, "heldout_succeeded": 3, "heldout_found": 2}}
    assert "held-out unrestricted set: 2 valid examples of 3 successes in 4 searches" in settings_markdown(
        suite, tmp_path, row)
    assert "held-out" not in settings_markdown(replace(suite, needs_gan=False, heldout_unrestricted=0), tmp_path, row)
