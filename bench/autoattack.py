"""The project's PGD evaluation against AutoAttack on the same images, and what AutoAttack costs.

    python bench/autoattack.py results/fashion-mnist/pgd results/fashion-mnist/fgsm --n 100
    python bench/autoattack.py RUN... --n 100 --view          # also AutoAttack on the bf16 attack-time view

For each run, on its first N test images: AutoAttack (torchattacks, standard version: APGD-CE, APGD-T, FAB-T,
Square) on the fp32 model, timed; optionally AutoAttack on the bf16 attack-time view (cheaper: is the accuracy
the same?); and the project's PGD-20 (CE and CW losses, worst case per sample) in the variants that could
close a gap to AutoAttack: the evaluation's default (bf16 gradients, 2 restarts, per-sample early stop), fp32
gradients, the last iterate instead of early stop, and 5 restarts; and each of AutoAttack's four attacks alone
(which of them breaks what PGD does not: a black-box Square that succeeds where the gradient attacks fail
points at masked gradients). Each row: accuracy, the gap to AutoAttack
in points, images that PGD calls robust and AutoAttack breaks, seconds. Every figure comes from this one run
on this machine. Results: ``bench/results/autoattack-<device>-<threads>threads.json`` and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torchattacks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
import tuning  # noqa: E402
from attacks import autoattack_accuracy, robust_accuracy, torchattacks_robust  # noqa: E402
from classifier import load_classifier  # noqa: E402
from data import load_dataset  # noqa: E402

# the project's PGD-20 (CE + CW, worst case per sample) in each variant: robust_accuracy's keyword arguments
PGD_VARIANTS = {
    "PGD-20, 2 restarts, early stop, bf16 gradients (the evaluation's default)": dict(restarts=2, early_stop=True),
    "PGD-20, 2 restarts, early stop, fp32 gradients": dict(restarts=2, early_stop=True, fast=False),
    "PGD-20, 2 restarts, last iterate, bf16 gradients": dict(restarts=2, early_stop=False),
    "PGD-20, 5 restarts, early stop, bf16 gradients": dict(restarts=5, early_stop=True),
}


# AutoAttack's four attacks alone, built as torchattacks' AutoAttack(version="standard") builds them (note:
# torchattacks keeps its APGD/APGD-T/FAB default of 10 steps there, where the original AutoAttack runs 100)
COMPONENTS = {
    "APGD-CE alone": lambda net, k, eps, seed: torchattacks.APGD(net, eps=eps, loss="ce", n_restarts=1, seed=seed),
    "APGD-T alone": lambda net, k, eps, seed: torchattacks.APGDT(net, eps=eps, n_classes=k, n_restarts=1, seed=seed),
    "FAB-T alone": lambda net, k, eps, seed: torchattacks.FAB(net, eps=eps, multi_targeted=True, n_classes=k,
                                                             n_restarts=1, seed=seed),
    "Square (5,000 queries) alone": lambda net, k, eps, seed: torchattacks.Square(net, eps=eps, n_queries=5000,
                                                                                 n_restarts=1, seed=seed),
}


def measure_run(run: Path, n: int, view: bool, device: torch.device, seed: int, progress: bool,
                eps: float | None = None) -> list[dict]:
    model, ckpt = load_classifier(run, device)
    ds = load_dataset(ckpt["dataset"])
    eps = eps or ds.default_eps
    x, y = ds.test.images[:n], ds.test.labels[:n]
    aa = autoattack_accuracy(model, x, y, eps=eps, device=device, seed=seed, progress=progress)
    aa_acc, aa_mask = aa["autoattack_acc"], aa["masks"]["autoattack"]

    def row(attack: str, mask: torch.Tensor, seconds: float) -> dict:
        acc = mask.double().mean().item()
        return {"run": run.name, "attack": attack, "acc": acc, "seconds": seconds, "gap_points": 100 * (acc - aa_acc),
                "pgd_robust_aa_broken": int((mask & ~aa_mask).sum()), "images": n, "eps": eps}

    rows = [row("AutoAttack standard, fp32", aa_mask, aa["autoattack_seconds"])]
    if view:
        v = autoattack_accuracy(model, x, y, eps=eps, fast=True, device=device, seed=seed, progress=progress)
        rows.append(row("AutoAttack standard, bf16 view", v["masks"]["autoattack"], v["autoattack_seconds"]))
    for name, build in COMPONENTS.items():
        t0 = time.perf_counter()
        mask = torchattacks_robust(model, x, y, lambda net, k, build=build: build(net, k, eps, seed), device=device,
                                   progress=progress, desc=name)
        rows.append(row(name, mask, round(time.perf_counter() - t0, 1)))
    for name, kw in PGD_VARIANTS.items():
        t0 = time.perf_counter()
        r = robust_accuracy(model, x, y, eps=eps, pgd_steps=20, device=device, seed=seed, progress=progress, **kw)
        rows.append(row(name, r["masks"]["pgd"], round(time.perf_counter() - t0, 1)))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| run | attack | robust acc | minus AutoAttack (points) | robust here, broken by AutoAttack | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['attack']} | {100 * r['acc']:.1f}% | {r['gap_points']:+.1f} | "
                     f"{r['pgd_robust_aa_broken']} of {r['images']} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    tuning.tune_process()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="classifier run folders")
    p.add_argument("--n", type=int, default=100, help="the first N test images")
    p.add_argument("--view", action="store_true", help="also run AutoAttack on the bf16 attack-time view")
    p.add_argument("--eps", type=float, default=None, help="L-inf radius  [default: the data set's]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--progress", action="store_true")
    a = p.parse_args()
    dev = runtime.pick_device(a.device)
    rows = []
    for run in a.runs:
        rows += measure_run(run, a.n, a.view, dev, a.seed, a.progress, a.eps)
        print(f"{run}: done", file=sys.stderr, flush=True)
    md = table(rows)
    print(md)
    out = a.out or ROOT / "bench" / "results" / f"autoattack-{dev.type}-{torch.get_num_threads()}threads.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__, "device": str(dev),
                               "threads": torch.get_num_threads(), "rows": rows, "table": md}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
