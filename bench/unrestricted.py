"""Latent search settings side by side: Song et al.'s search as their code runs it (``song2018``) against the
project's ``fast`` setting and against ``fast`` with each of its changes undone, on the same AC-GAN, classifier,
start latents z0 and source labels, with an independent validity judge.

    python bench/unrestricted.py --suite results/fashion-mnist          # the reproduce suite's runs
    python bench/unrestricted.py --gan G --classifier C --judge J       # any three runs
    python bench/unrestricted.py --suite S --quick                      # 64 searches, three settings
    python bench/unrestricted.py --suite S --candidates                 # candidate changes to the fast setting
    python bench/unrestricted.py --suite S --candidates --repeat 3 --seed 1 --only "AC probability"
                                                   # median of 3 timings, other z0, a subset of the candidates

For each setting: success (classifier fooled, AC head keeps the class), valid success (a success that the
judge, a classifier the search never sees, also calls the source class), the judge's share of successes,
successes already at the start, mean steps to success, |z - z0|, pixel change, seconds and valid examples
per second, the ratio of each setting's valid examples per second to the reference's, and, on the searches
where both the setting and the reference succeed, the judge's share of each one's examples (the share of all
successes also depends on which searches succeed: the reference succeeds on fewer, easier ones). Every figure comes
from this one run on this machine. Results: ``bench/results/unrestricted-<machine>.json`` and a Markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
import tuning  # noqa: E402
from attacks import SEARCHES, predict, unrestricted_search  # noqa: E402
from classifier import load_classifier  # noqa: E402
from data import load_dataset  # noqa: E402
from pipeline import load_compatible_gan  # noqa: E402

# the fast setting with one of its changes undone at a time: what each change is worth
VARIANTS = {
    "fast, no early stop (judged once after its steps)": dict(early_stop=False),
    "fast, song2018's min-CE term instead of the margin": dict(objective="song2018"),
    "fast, fp32 instead of the bf16 view": dict(fast=False),
    "fast, loss / 64 (song2018's per-sample step lr / 64)": dict(reduction=64),
    "fast, song2018's gradient noise": dict(grad_noise=0.01),
    "fast at lr 0.5 (the earlier setting: fewer steps, further from z0)": dict(lr=0.5),
}
QUICK = ("fast at lr 0.5 (the earlier setting: fewer steps, further from z0)",)   # the variants --quick keeps
ADAM = dict(optimizer="adam", lr=0.08, betas=(0.5, 0.999))     # the confident setting's z steps
# candidates for a fast setting whose successes the judge accepts as often as the reference's (--candidates)
CANDIDATES = {
    "fast, song2018's min-CE term instead of the margin": dict(objective="song2018"),
    "fast, fp32 instead of the bf16 view": dict(fast=False),
    "fast, min-CE term and fp32": dict(objective="song2018", fast=False),
    "fast, song2018's AC weight (lambda2 100)": dict(lambda2=100.0),
    "fast, song2018's weights (lambda1 = lambda2 = 100)": dict(lambda1=100.0, lambda2=100.0),
    "fast, min-CE term, fp32 and song2018's weights": dict(objective="song2018", fast=False, lambda1=100.0,
                                                           lambda2=100.0),
    "fast, success needs the AC head's probability of the source class >= 0.9": dict(ac_confidence=0.9),
    "fast, AC probability >= 0.98, lambda2 200, up to 25 steps": dict(ac_confidence=0.98, lambda2=200.0, steps=25),
    "fast, AC probability >= 0.985, lambda2 200, up to 25 steps (plain SGD: the earlier confident setting)": dict(
        ac_confidence=0.985, lambda2=200.0, steps=25),
    "fast, AC probability >= 0.985, lambda2 200, up to 25 steps, Adam lr 0.08 beta1 0.5 (the confident setting)":
        dict(ac_confidence=0.985, lambda2=200.0, steps=25, **ADAM),
    "fast with Adam lr 0.08 beta1 0.5 (no AC-probability condition)": ADAM,
    "fast with Adam lr 0.08 beta1 0.5, lambda2 200 (no AC-probability condition)": dict(lambda2=200.0, **ADAM),
    "fast, AC probability >= 0.99, lambda2 200, up to 25 steps": dict(ac_confidence=0.99, lambda2=200.0, steps=25),
    "fast at lr 0.05": dict(lr=0.05),
    "fast at lr 0.02, up to 300 steps": dict(lr=0.02, steps=300),
    "fast, min-CE term and fp32 at lr 0.02, up to 300 steps": dict(objective="song2018", fast=False, lr=0.02,
                                                                   steps=300),
    "song2018 with early stop (its steps, each search frozen at its first success)": dict(
        steps=1000, lr=1.0, lambda1=100.0, lambda2=100.0, objective="song2018", reduction=64, grad_noise=0.01,
        fast=False, batch_size=64),
}


REPEAT_UNDER_S = 60.0     # --repeat times again only the settings whose first run took less than this


def measure(name, cfg, G, D, model, judge, labels, z0, seed, progress, repeat=1) -> dict:
    """One setting on every search: the figures of one table row. With ``repeat`` > 1 the search runs up to
    ``repeat`` times (once when the first run took over ``REPEAT_UNDER_S``), must return the same z every time,
    and its seconds are the median."""
    times, r = [], None
    for _ in range(repeat):
        rng = torch.Generator(device=z0.device).manual_seed(seed)
        t0 = time.perf_counter()
        again = unrestricted_search(G, D, model, labels, config=cfg, z0=z0, generator_rng=rng, progress=progress)
        times.append(time.perf_counter() - t0)
        if r is not None and not torch.equal(again.z, r.z):
            raise SystemExit(f"{name}: a repeated search returned another z (not deterministic)")
        r = again
        if times[0] > REPEAT_UNDER_S:
            break
    seconds = statistics.median(times)
    ok = r.success
    valid = ok & (predict(judge, r.x) == labels)
    n_ok, n_valid = int(ok.sum()), int(valid.sum())
    change = (r.x - r.x0).flatten(1).abs()
    return {"setting": name, "config": dataclasses.asdict(cfg), "searches": len(labels),
            "success": n_ok / len(labels), "valid_success": n_valid / len(labels),
            "valid_share": n_valid / n_ok if n_ok else None, "start_successes": int(r.start_success.sum()),
            "mean_steps": r.steps_taken[ok].float().mean().item() if n_ok else None,
            "z_dist": (r.z - r.z0).norm(dim=1)[ok].mean().item() if n_ok else None,
            "pixel_change_mean": change.mean(1)[ok].mean().item() if n_ok else None,
            "pixel_change_max": change.amax(1)[ok].max().item() if n_ok else None,
            "seconds": round(seconds, 2), "timings": [round(t, 2) for t in times],
            "valid_per_second": n_valid / seconds,
            "per_search": {"success": ok.tolist(), "valid": valid.tolist()}}


def paired(row: dict, ref: dict) -> tuple[int, float | None, float | None]:
    """On the searches where both ``row``'s setting and ``ref``'s succeed: how many, and the judge's share of
    each one's examples there (the judge's share of all successes also depends on which searches succeed)."""
    both = [i for i, (a, b) in enumerate(zip(row["per_search"]["success"], ref["per_search"]["success"])) if a and b]
    if not both:
        return 0, None, None
    share = lambda r: sum(r["per_search"]["valid"][i] for i in both) / len(both)
    return len(both), share(row), share(ref)


def table(rows: list[dict], judge_start_acc: float) -> str:
    ref = next((r for r in rows if r["setting"] == "song2018"), None)
    lines = ["| setting | success | valid success | judge accepts | start successes | mean steps | |z - z0| | "
             "pixel change mean / max | seconds | valid / s | vs song2018 | both succeed: n, judge accepts "
             "(this / song2018) |", "|" + "---|" * 12]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"
    num = lambda v, f="{:.1f}": "-" if v is None else f.format(v)
    for r in rows:
        ratio = (r["valid_per_second"] / ref["valid_per_second"]) if ref and ref["valid_per_second"] else None
        n_both, mine, theirs = paired(r, ref) if ref else (0, None, None)
        lines.append(f"| {r['setting']} | {pct(r['success'])} | {pct(r['valid_success'])} | {pct(r['valid_share'])} | "
                     f"{r['start_successes']} | {num(r['mean_steps'])} | {num(r['z_dist'], '{:.2f}')} | "
                     f"{num(r['pixel_change_mean'], '{:.3f}')} / {num(r['pixel_change_max'], '{:.2f}')} | "
                     f"{r['seconds']:.1f} | {r['valid_per_second']:.3f} | {num(ratio, '{:.0f}x')} | "
                     f"{n_both}, {pct(mine)} / {pct(theirs)} |")
    return "\n".join(lines) + f"\n\nThe judge's accuracy on the unmodified G(z0, y): {pct(judge_start_acc)}.\n"


def _earlier_reference(path: Path, same: dict, seed: int) -> dict:
    """The song2018 row of an earlier result, which must be of the same runs, number of searches and seed."""
    earlier = json.loads(path.read_text())
    differ = {k: (earlier.get(k), v) for k, v in same.items() if earlier.get(k) != v}
    row = next((r for r in earlier.get("rows", []) if r["setting"] == "song2018"), None)
    if differ or row is None or earlier.get("seed", 0) != seed:
        why = "no song2018 row" if row is None else differ or "another seed"
        raise SystemExit(f"--reuse-reference {path}: not a song2018 result of these runs and searches ({why})")
    return row


def main() -> None:
    tuning.tune_process()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, help="a reproduce folder: uses its acgan/, none/ and pgd/ runs")
    p.add_argument("--gan", type=Path)
    p.add_argument("--classifier", type=Path, help="the model searched against  [default: SUITE/none]")
    p.add_argument("--judge", type=Path, help="the validity judge  [default: SUITE/pgd]")
    p.add_argument("--n", type=int, default=200, help="searches (class-balanced labels, the same z0 for all)")
    p.add_argument("--quick", action="store_true", help="64 searches; song2018, fast and the earlier fast setting only")
    p.add_argument("--candidates", action="store_true",
                   help="song2018, fast and the candidate changes to fast (instead of each change undone)")
    p.add_argument("--reuse-reference", type=Path, metavar="JSON",
                   help="take the song2018 row (about 9 min of 200 searches here) from an earlier result of this "
                        "script on the same runs, searches and seed instead of measuring it again")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help=f"time each setting R times and report the median (settings whose first run takes over "
                        f"{REPEAT_UNDER_S:.0f} s once)")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="keep only the variants whose name contains TEXT (repeatable; song2018 and fast always run)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start latents z0 (and of the gradient noise)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--progress", action="store_true")
    a = p.parse_args()
    gan_run, clf_run, judge_run = (a.gan or a.suite / "acgan", a.classifier or a.suite / "none",
                                   a.judge or a.suite / "pgd")
    torch.set_num_threads(torch.get_num_threads())
    dev = runtime.pick_device(a.device)
    model, ckpt = load_classifier(clf_run, dev)
    judge, _ = load_classifier(judge_run, dev)
    ds = load_dataset(ckpt["dataset"])
    loaded = load_compatible_gan(gan_run, ds, dev)
    n = 64 if a.quick else a.n
    labels = (torch.arange(n) % ds.num_classes).to(dev)
    z0 = torch.randn(n, loaded.generator.cfg.z_dim, generator=torch.Generator().manual_seed(a.seed)).to(dev)
    with torch.no_grad():
        judge_start_acc = (predict(judge, loaded.generator.eval()(z0, labels)) == labels).float().mean().item()
    settings = {"song2018": SEARCHES["song2018"], "fast": SEARCHES["fast"]}
    variants = CANDIDATES if a.candidates else {k: VARIANTS[k] for k in QUICK} if a.quick else VARIANTS
    settings |= {k: dataclasses.replace(SEARCHES["fast"], **v) for k, v in variants.items()
                 if not a.only or any(t in k for t in a.only)}
    rows = []
    if a.reuse_reference:
        rows.append(_earlier_reference(a.reuse_reference, {"gan": str(gan_run), "classifier": str(clf_run),
                                                            "judge": str(judge_run), "searches": n}, a.seed))
        del settings["song2018"]
    for name, cfg in settings.items():
        rows.append(measure(name, cfg, loaded.generator, loaded.critic, model, judge, labels, z0, a.seed, a.progress,
                            a.repeat))
        print(f"{name}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    md = table(rows, judge_start_acc)
    print(md)
    machine = f"{platform.processor() or platform.machine()}".replace(" ", "_") or "cpu"
    out = a.out or ROOT / "bench" / "results" / (
        f"unrestricted{'-candidates' if a.candidates else ''}{f'-seed{a.seed}' if a.seed else ''}-{dev.type}-"
        f"{torch.get_num_threads()}threads.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpu": machine, "torch": torch.__version__,
                               "device": str(dev), "threads": torch.get_num_threads(), "gan": str(gan_run),
                               "classifier": str(clf_run), "judge": str(judge_run), "searches": n, "seed": a.seed,
                               "judge_start_acc": judge_start_acc, "rows": rows, "table": md}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
