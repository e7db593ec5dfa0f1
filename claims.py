"""The research claims a suite re-measures, each judged from the numbers in the runs' metrics.json.

A claim whose runs are missing is reported as "not measured", never as holding; a claim that does not
hold is reported with the numbers that contradict it. Thresholds are stated in each claim's text.

Example::

    verdicts = judge_claims({"none": metrics_none, "fgsm": metrics_fgsm, ...})
    print(claims_markdown(verdicts))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable


@dataclass
class Verdict:
    key: str                 # "a" .. "f"
    claim: str
    holds: bool | None       # None: not measured (a run or a number is missing)
    evidence: str


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _a(m: dict) -> tuple[bool, str]:
    drops = {k: m["none"]["clean_acc"] - m[k]["clean_acc"] for k in ("fgsm", "pgd")}
    ev = ", ".join(f"{k} {_pct(m[k]['clean_acc'])}" for k in ("none", "fgsm", "pgd"))
    return all(d > 0 for d in drops.values()), f"clean accuracy: {ev}"


def _b(m: dict) -> tuple[bool, str]:
    d = m["gan"]["clean_acc"] - m["none"]["clean_acc"]
    return abs(d) <= 0.01, (f"clean accuracy {_pct(m['gan']['clean_acc'])} with GAN samples vs "
                            f"{_pct(m['none']['clean_acc'])} without ({100 * d:+.1f} points; holds within 1)")


def _c(m: dict) -> tuple[bool, str]:
    n = m["none"]
    ok = n["gan_sample_acc"] > 0.5 and n["unrestricted_success_rate"] >= 0.9
    return ok, (f"clean model: {_pct(n['gan_sample_acc'])} right on clean AC-GAN samples; the latent search "
                f"succeeds on {_pct(n['unrestricted_success_rate'])} with the AC head keeping the class "
                f"(accuracy on the found examples {_pct(n['unrestricted_acc'])}; needs > 50% and >= 90%)")


def _d(m: dict) -> tuple[bool, str]:
    gap = m["pgd"]["pgd_acc"] - m["free"]["pgd_acc"]
    cost = m["free"]["train_seconds"] / m["none"]["train_seconds"]
    return gap <= 0.05 and cost <= 1.5, (
        f"PGD accuracy free {_pct(m['free']['pgd_acc'])} vs PGD training {_pct(m['pgd']['pgd_acc'])} "
        f"({100 * gap:.1f} points behind; holds within 5); training time {cost:.2f}x clean training "
        f"(holds up to 1.5x)")


def _e(m: dict) -> tuple[bool, str]:
    big, small = m["fgsm-2eps"], m["fgsm"]
    warned = any(h.get("overfit") for h in big.get("history", []))
    collapsed = big["pgd_acc"] < 0.5 * small["pgd_acc"]
    return collapsed and warned, (
        f"PGD accuracy with step 2 eps {_pct(big['pgd_acc'])} vs step 1.25 eps with random start "
        f"{_pct(small['pgd_acc'])} (collapse: below half); the overfitting guard "
        f"{'warned' if warned else 'did not warn'} in the 2-eps run")


def _f(m: dict) -> tuple[bool, str]:
    key = "heldout_unrestricted_acc"
    u, n = m["unrestricted"], m["none"]
    return u[key] > n[key], (
        f"accuracy on held-out unrestricted examples (found against the clean model): {_pct(u[key])} after "
        f"training with unrestricted examples vs {_pct(n[key])} after clean training; cost: clean "
        f"{100 * (u['clean_acc'] - n['clean_acc']):+.1f} points, PGD {100 * (u['pgd_acc'] - n['pgd_acc']):+.1f} points")


CLAIMS: list[tuple[str, str, tuple[str, ...], Callable[[dict], tuple[bool, str]]]] = [
    ("a", "FGSM/PGD adversarial training lowers clean accuracy compared with clean training",
     ("none", "fgsm", "pgd"), _a),
    ("b", "GAN-sample augmentation leaves clean accuracy about unchanged (within 1 point)", ("none", "gan"), _b),
    ("c", "the clean model is right on most clean AC-GAN samples, and the latent search drives that to ~0% "
          "on found examples while the AC head keeps the class (success >= 90%)", ("none",), _c),
    ("d", "free training reaches PGD robustness within a few points of PGD training at about the cost of "
          "clean training", ("none", "pgd", "free"), _d),
    ("e", "FGSM with a 2 eps step collapses PGD accuracy (catastrophic overfitting) while 1.25 eps with a "
          "random start does not, and the overfitting guard warned in the collapsing run",
     ("fgsm", "fgsm-2eps"), _e),
    ("f", "training with unrestricted examples raises accuracy on unrestricted examples relative to clean "
          "training (and costs clean and PGD accuracy)", ("none", "unrestricted"), _f),
]


def judge_claims(metrics: dict[str, dict]) -> list[Verdict]:
    """One verdict per claim from ``{run name: metrics.json}``."""
    out = []
    for key, text, needs, judge in CLAIMS:
        missing = [n for n in needs if n not in metrics]
        if missing:
            out.append(Verdict(key, text, None, f"not measured: no run {', '.join(missing)}"))
            continue
        try:
            holds, evidence = judge(metrics)
        except (KeyError, TypeError, ZeroDivisionError) as e:   # a number the evaluation did not produce
            out.append(Verdict(key, text, None, f"not measured: {type(e).__name__} {e}"))
            continue
        out.append(Verdict(key, text, bool(holds), evidence))
    return out


def claims_markdown(verdicts: list[Verdict]) -> str:
    mark = {True: "holds", False: "**does not hold**", None: "not measured"}
    lines = ["| claim | verdict | the numbers |", "|---|---|---|"]
    lines += [f"| ({v.key}) {v.claim} | {mark[v.holds]} | {v.evidence} |" for v in verdicts]
    return "\n".join(lines)


def published_markdown(metrics: dict[str, dict], anchors) -> str:
    """Each anchor (``run``, ``metric``, ``low``..``high``, ``source``) against the measured number: the
    distance in points to the nearest end of the published range (0 inside it; negative below it)."""
    lines = ["| run | metric | measured | published | distance (points) |", "|---|---|---|---|---|"]
    for a in anchors:
        value = metrics.get(a.run, {}).get(a.metric)
        if value is None:
            lines.append(f"| {a.run} | {a.metric} | not measured | {_pct(a.low)}-{_pct(a.high)} | - |")
            continue
        dist = min(value - a.low, 0.0) + max(value - a.high, 0.0)
        lines.append(f"| {a.run} | {a.metric} | {_pct(value)} | {_pct(a.low)}-{_pct(a.high)} | {100 * dist:+.1f} |")
    sources = sorted({a.source for a in anchors})
    return "\n".join(lines) + ("\n\nPublished: " + "; ".join(sources) + "." if sources else "")


def claims_json(verdicts: list[Verdict]) -> list[dict]:
    return [asdict(v) for v in verdicts]
