"""Claims are judged from the numbers: they can hold, fail (with the numbers) or be unmeasured."""
from __future__ import annotations

import copy

import pytest

from pipeline import Anchor, claims_markdown, judge_claims, published_markdown


def row(clean, pgd, *, seconds=100.0, gan=0.9, success=0.97, valid=0.95, heldout=0.1, history=()):
    return {"clean_acc": clean, "pgd_acc": pgd, "train_seconds": seconds, "gan_sample_acc": gan,
            "unrestricted_search": "fast", "unrestricted_searches": 200, "unrestricted_success_rate": success,
            "unrestricted_valid_success_rate": valid, "unrestricted_valid_share": valid / success,
            "unrestricted_judge_start_acc": 0.9, "heldout_unrestricted_acc": heldout, "heldout_found": 400,
            "history": list(history)}


REFERENCE = {"searches": 200, "success_rate": 0.96, "valid_success_rate": 0.93, "valid_share": 0.97}


@pytest.fixture
def holding():
    return {"none": row(0.92, 0.01), "fgsm": row(0.88, 0.60, seconds=180), "pgd": row(0.87, 0.70, seconds=600),
            "fgsm-2eps": row(0.90, 0.02, history=[{"overfit": False}, {"overfit": True}]),
            "free": row(0.86, 0.67, seconds=110), "gan": row(0.915, 0.0),
            "unrestricted": row(0.90, 0.0, heldout=0.6, success=0.7, valid=0.6)}


def test_every_claim_holds_on_numbers_that_support_it(holding):
    verdicts = judge_claims(holding, reference=REFERENCE)
    assert [v.key for v in verdicts] == list("abcdef") and all(v.holds for v in verdicts)
    assert "holds" in claims_markdown(verdicts)


@pytest.mark.parametrize("key, change", [
    ("a", lambda m: m["pgd"].update(clean_acc=0.93)),
    ("a", lambda m: m.update({"none-seed1": row(0.85, 0.0)})),        # the seed spread swallows the drop
    ("b", lambda m: m["gan"].update(clean_acc=0.89)),
    ("c", lambda m: REFERENCE.update(valid_success_rate=0.6) or m),    # successes the judge does not accept
    ("d", lambda m: m["free"].update(pgd_acc=0.55)),
    ("d", lambda m: m["free"].update(train_seconds=400)),
    ("e", lambda m: m["fgsm-2eps"].update(pgd_acc=0.5)),
    ("e", lambda m: m["fgsm-2eps"].update(history=[{"overfit": False}])),
    ("e", lambda m: m["fgsm"].update(history=[{"epoch": 1, "overfit": False}, {"epoch": 2, "overfit": True}])),
    ("e", lambda m: m.update({"fgsm-2eps-seed1": row(0.90, 0.30)})),       # a second 2-eps seed that held
    ("f", lambda m: m["unrestricted"].update(heldout_unrestricted_acc=0.05)),
    ("f", lambda m: m["unrestricted"].update(unrestricted_valid_success_rate=0.9)),  # search about as easy
    ("f", lambda m: m["unrestricted"].update(heldout_unrestricted_acc=0.14)),  # within two standard errors
    ("f", lambda m: m.update({"none-seed1": row(0.92, 0.0, heldout=0.7)})),    # transfer, not training
])
def test_a_claim_the_numbers_contradict_does_not_hold(holding, key, change, monkeypatch):
    monkeypatch.setitem(globals(), "REFERENCE", dict(REFERENCE))
    m = copy.deepcopy(holding)
    change(m)
    verdicts = {v.key: v for v in judge_claims(m, reference=REFERENCE)}
    assert verdicts[key].holds is False and "%" in verdicts[key].evidence
    assert all(v.holds for k, v in verdicts.items() if k != key)
    assert "**does not hold**" in claims_markdown(list(verdicts.values()))


def test_missing_runs_or_numbers_are_not_measured(holding):
    m = copy.deepcopy(holding)
    del m["fgsm-2eps"]
    del m["unrestricted"]["heldout_unrestricted_acc"]
    verdicts = {v.key: v for v in judge_claims(m, reference=REFERENCE)}
    assert verdicts["e"].holds is None and "fgsm-2eps" in verdicts["e"].evidence
    assert verdicts["f"].holds is None and verdicts["a"].holds


def test_distance_to_published_figures_is_zero_inside_the_range_and_signed_outside(holding):
    anchors = [Anchor("none", "clean_acc", 0.90, 0.95, "paper A"), Anchor("pgd", "pgd_acc", 0.75, 0.80, "paper B"),
               Anchor("none", "pgd_acc", 0.0, 0.004, "paper A"), Anchor("missing", "clean_acc", 0.5, 0.6, "paper A")]
    md = published_markdown(holding, anchors)
    assert "| none | clean_acc | 92.0% | 90.0%-95.0% | +0.0 |" in md        # inside the range
    assert "| pgd | pgd_acc | 70.0% | 75.0%-80.0% | -5.0 |" in md           # below it
    assert "| none | pgd_acc | 1.0% | 0.0%-0.4% | +0.6 |" in md             # above it
    assert "| missing | clean_acc | not measured |" in md
    assert md.endswith("Published: paper A; paper B.")


def test_claim_c_without_the_reference_search_is_judged_on_the_evaluations_search(holding):
    c = {v.key: v for v in judge_claims(holding)}["c"]
    assert c.holds and "song2018" not in c.evidence and "valid success 95.0%" in c.evidence
    holding["none"]["unrestricted_valid_success_rate"] = 0.5
    assert {v.key: v for v in judge_claims(holding)}["c"].holds is False
