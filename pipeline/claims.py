"""The research claims a suite re-measures, each judged from the numbers in the runs' report rows.

A claim whose runs are missing is reported as "not measured", never as holding; a claim that does not
hold is reported with the numbers that contradict it. Thresholds and margins are stated in each claim's
text: a difference counts only when it is larger than the seed-to-seed spread (a) or than two standard
errors of the difference of two measured proportions (f).

Example::

    verdicts = judge_claims({"none": row_none, "fgsm": row_fgsm, ...})
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


def _seeds(m: dict, name: str) -> list[dict]:
    """The runs of one setting over its training seeds (``name``, ``name-seed1``)."""
    return [m[n] for n in (name, f"{name}-seed1") if n in m]


def _mean(runs: list[dict], key: str) -> float:
    return sum(r[key] for r in runs) / len(runs)


def _range(runs: list[dict], key: str) -> float:
    return max(r[key] for r in runs) - min(r[key] for r in runs)


def _a(m: dict, ctx: dict) -> tuple[bool, str]:
    clean = _seeds(m, "none")
    holds, parts = True, []
    for k in ("fgsm", "pgd"):
        runs = _seeds(m, k)
        drop = _mean(clean, "clean_acc") - _mean(runs, "clean_acc")
        spread = max(_range(clean, "clean_acc"), _range(runs, "clean_acc"))
        holds &= drop > spread
        parts.append(f"{k} {_pct(_mean(runs, 'clean_acc'))} over {len(runs)} seed(s): {100 * drop:.1f} points "
                     f"below clean training against a seed spread of {100 * spread:.1f}")
    return holds, (f"clean accuracy, means over seeds: clean training {_pct(_mean(clean, 'clean_acc'))} "
                   f"({len(clean)} seeds); " + "; ".join(parts) + " (holds if every drop exceeds its spread)")


def _b(m: dict, ctx: dict) -> tuple[bool, str]:
    d = m["gan"]["clean_acc"] - m["none"]["clean_acc"]
    spread = (f"; clean training with another seed: {_pct(m['none-seed1']['clean_acc'])}"
              if "none-seed1" in m else "")
    return abs(d) <= 0.01, (f"clean accuracy {_pct(m['gan']['clean_acc'])} with GAN samples vs "
                            f"{_pct(m['none']['clean_acc'])} without ({100 * d:+.1f} points; holds within 1)"
                            + spread)


def _search(r: dict, prefix: str = "unrestricted_") -> str:
    return (f"success {_pct(r[prefix + 'success_rate'])}, valid success {_pct(r[prefix + 'valid_success_rate'])} "
            f"(the judge accepts {_pct(r[prefix + 'valid_share'] or 0)} of the successes)")


def _c(m: dict, ctx: dict) -> tuple[bool, str]:
    """Judged on the reference search (Song et al.'s, as their code runs it) where the suite ran it, else on
    the evaluation's search; always on valid success."""
    n, reference = m["none"], ctx.get("reference")
    if reference is not None:
        rate, how = reference["valid_success_rate"], "Song et al.'s search (song2018)"
        ev_ref = f"{how}: " + _search(reference, "") + f", {reference['searches']} searches; "
    else:
        rate, how, ev_ref = n["unrestricted_valid_success_rate"], "the evaluation's search", ""
    ok = n["gan_sample_acc"] > 0.5 and rate >= 0.9
    return ok, (f"clean model: {_pct(n['gan_sample_acc'])} right on clean AC-GAN samples; {ev_ref}the project's "
                f"`{n['unrestricted_search']}` search: " + _search(n) + f"; the judge is right on "
                f"{_pct(n['unrestricted_judge_start_acc'])} of the unmodified samples (needs > 50% on samples and "
                f">= 90% valid success with {how})")


def _d(m: dict, ctx: dict) -> tuple[bool, str]:
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


def _e(m: dict, ctx: dict) -> tuple[bool, str]:
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


def _two_se(p1: float, p2: float, n1: int, n2: int) -> float:
    """Two standard errors of the difference of two measured proportions."""
    return 2 * (p1 * (1 - p1) / max(n1, 1) + p2 * (1 - p2) / max(n2, 1)) ** 0.5


def _f(m: dict, ctx: dict) -> tuple[bool, str]:
    """Two measures, both on valid examples: the held-out set found against the clean model (judged against an
    independently trained clean model where there is one: the model they were found against is wrong on all of
    them by construction), and the latent search run against each model itself. The costs are evidence only."""
    u, n = m["unrestricted"], m["none"]
    base = "none-seed1" if "none-seed1" in m else "none"
    b, found = m[base], u["heldout_found"]
    held_diff = u["heldout_unrestricted_acc"] - b["heldout_unrestricted_acc"]
    held_margin = _two_se(u["heldout_unrestricted_acc"], b["heldout_unrestricted_acc"], found, found)
    key = "unrestricted_valid_success_rate"
    search_diff = n[key] - u[key]
    search_margin = _two_se(n[key], u[key], n["unrestricted_searches"], u["unrestricted_searches"])
    holds = held_diff > held_margin and search_diff > search_margin
    return holds, (
        f"held-out valid unrestricted examples ({found}, found against `none`): {_pct(u['heldout_unrestricted_acc'])} "
        f"right after training with unrestricted examples vs {_pct(b['heldout_unrestricted_acc'])} for clean "
        f"training (`{base}`; {100 * held_diff:+.1f} points, margin {100 * held_margin:.1f})"
        + (f"; `none` itself: {_pct(n['heldout_unrestricted_acc'])}" if base != "none" else "")
        + f"; the search's valid success against the model itself: {_pct(u[key])} vs {_pct(n[key])} for clean "
        f"training ({100 * search_diff:.1f} points lower, margin {100 * search_margin:.1f}); holds if both "
        f"improve by more than their margin (two standard errors). Cost: clean "
        f"{100 * (u['clean_acc'] - n['clean_acc']):+.1f} points, PGD {100 * (u['pgd_acc'] - n['pgd_acc']):+.1f} points")


CLAIMS: list[tuple[str, str, tuple[str, ...], Callable[[dict, dict], tuple[bool, str]]]] = [
    ("a", "FGSM/PGD adversarial training lowers clean accuracy compared with clean training, by more than "
          "the seed-to-seed spread", ("none", "fgsm", "pgd"), _a),
    ("b", "GAN-sample augmentation leaves clean accuracy about unchanged (within 1 point)", ("none", "gan"), _b),
    ("c", "the clean model is right on most clean AC-GAN samples, and the latent search turns most of them into "
          "valid unrestricted adversarial examples: the classifier fooled, the AC head keeping the class and an "
          "independent judge seeing it too (valid success >= 90%)", ("none",), _c),
    ("d", "free training reaches PGD robustness within a few points of PGD training at about the cost of "
          "clean training", ("none", "pgd", "free"), _d),
    ("e", "FGSM with a 2 eps step collapses PGD accuracy (catastrophic overfitting) while 1.25 eps with a "
          "random start does not, and the overfitting guard warned in the collapsing run",
     ("fgsm", "fgsm-2eps"), _e),
    ("f", "training with unrestricted examples raises accuracy on valid unrestricted examples relative to clean "
          "training: on examples found against another model and against the model itself", ("none", "unrestricted"),
     _f),
]


def judge_claims(metrics: dict[str, dict], reference: dict | None = None) -> list[Verdict]:
    """One verdict per claim from ``{run name: report row}`` (``report.collect``); ``reference``: the figures
    of Song et al.'s search against the clean model, where the suite ran it (claim c)."""
    out = []
    for key, text, needs, judge in CLAIMS:
        missing = [n for n in needs if n not in metrics]
        if missing:
            out.append(Verdict(key, text, None, f"not measured: no run {', '.join(missing)}"))
            continue
        try:
            holds, evidence = judge(metrics, {"reference": reference})
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
