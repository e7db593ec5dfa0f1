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
    spread = (f"; clean training with another seed: {_pct(m['none-seed1']['clean_acc'])}"
              if "none-seed1" in m else "")
    return abs(d) <= 0.01, (f"clean accuracy {_pct(m['gan']['clean_acc'])} with GAN samples vs "
                            f"{_pct(m['none']['clean_acc'])} without ({100 * d:+.1f} points; holds within 1)"
                            + spread)


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


def _warned_at(run: dict) -> list[int]:
    """Epochs at which the catastrophic-overfitting guard warned."""
    return [h.get("epoch", i + 1) for i, h in enumerate(run.get("history", [])) if h.get("overfit")]


# claim (e)'s runs: step 1.25 eps with a random start, and step 2 eps, each over its training seeds
FGSM_RUNS, FGSM_2EPS_RUNS = ("fgsm", "fgsm-seed1"), ("fgsm-2eps", "fgsm-2eps-seed1")


def _e(m: dict) -> tuple[bool, str]:
    small = [n for n in FGSM_RUNS if n in m]
    big = [n for n in FGSM_2EPS_RUNS if n in m]
    pgd_small, pgd_big = (sum(m[n]["pgd_acc"] for n in names) / len(names) for names in (small, big))
    collapsed = pgd_big < 0.5 * pgd_small

    def said(name: str) -> str:
        run, epochs = m[name], _warned_at(m[name])
        return (f"{name}: PGD {_pct(run['pgd_acc'])}, clean {_pct(run['clean_acc'])}, guard "
                + (f"warned at epoch {', '.join(map(str, epochs))}" if epochs else "did not warn"))
    holds = collapsed and all(_warned_at(m[n]) for n in big) and not any(_warned_at(m[n]) for n in small)
    return holds, (f"mean PGD accuracy with step 2 eps {_pct(pgd_big)} vs step 1.25 eps with random start "
                   f"{_pct(pgd_small)} (collapse: below half; holds only if the guard warned in every 2-eps "
                   f"run and in no 1.25-eps run); " + "; ".join(said(n) for n in small + big))


def _f(m: dict) -> tuple[bool, str]:
    """Two measures: held-out examples found against the clean model (judged against an independently
    trained clean model where there is one: the model they were found against is wrong on all of them
    by construction), and the latent search run against each model itself."""
    key = "heldout_unrestricted_acc"
    u, n = m["unrestricted"], m["none"]
    base = "none-seed1" if "none-seed1" in m else "none"
    b = m[base]
    holds = u[key] > b[key] and u["unrestricted_success_rate"] < n["unrestricted_success_rate"]
    return holds, (
        f"held-out unrestricted examples (found against `none`): {_pct(u[key])} right after training with "
        f"unrestricted examples vs {_pct(b[key])} for clean training (`{base}`"
        + (f"; `none` itself: {_pct(n[key])}" if base != "none" else "") + "); the latent search against the "
        f"model itself succeeds on {_pct(u['unrestricted_success_rate'])} vs {_pct(n['unrestricted_success_rate'])} "
        f"(holds if both improve); cost: clean {100 * (u['clean_acc'] - n['clean_acc']):+.1f} points, "
        f"PGD {100 * (u['pgd_acc'] - n['pgd_acc']):+.1f} points")


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
