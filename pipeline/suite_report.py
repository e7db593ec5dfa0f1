"""A suite's pictures and report: the comparison table and charts, its settings and timings, the claims'
verdicts and the distance to published figures."""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import runs

from .claims import claims_json, claims_markdown, judge_claims, published_markdown
from .pictures import GridOptions, draw_grid
from .report import collect, write_report

GAN_DIR = "acgan"


def pictures_and_report(suite, out: Path, gan_dir: Path, data_dir: str, device: str) -> dict:
    """Draw the suite's pictures (against its first, clean run) and write its report; returns the paths."""
    report_dir = out / suite.report_dir if suite.report_dir else out
    pictures = report_dir / "pictures"
    first = suite.settings[0].name
    judge = suite.judge_for(first) if suite.needs_gan else None
    options = GridOptions(classifier=str(out / first), gan=str(gan_dir) if suite.needs_gan else None,
                          judge=str(out / judge) if judge else None, data_dir=data_dir, device=device,
                          seed=suite.train.seed)
    grids = [("fgsm", options, [first]), ("pgd", options, [first])]
    if suite.needs_gan and not suite.report_dir:
        grids += [("samples", replace(options, scale=2, seed=suite.train.seed + 1), [GAN_DIR]),
                  ("unrestricted", options, [first, GAN_DIR, *([judge] if judge else [])])]
    for kind, opts, needs in grids:
        missing = [n for n in needs if not (out / n / runs.CHECKPOINT_NAME).is_file()]
        if missing:          # a run done by its records alone (pipeline/suites.py): the picture stays as it was
            _log(f"pictures: {kind}.png not redrawn: no checkpoint in {', '.join(missing)}")
            continue
        draw_grid(kind, pictures / f"{kind}.png", opts)
    rows = collect([out / s.name for s in suite.settings])
    by_run = {r["run"]: r for r in rows}
    extra = "\n## Settings\n\n" + settings_markdown(suite, out, by_run)
    if suite.claims:
        reference = runs.read_json(out / "reference_search.json") if (out / "reference_search.json").is_file() else None
        verdicts = judge_claims(by_run, reference=reference)
        runs.write_json(report_dir / "claims.json", claims_json(verdicts))
        extra += "\n## The claims, judged from these numbers\n\n" + claims_markdown(verdicts) + "\n"
    if suite.anchors:
        extra += "\n## Distance to published figures\n\n" + published_markdown(by_run, suite.anchors) + "\n"
    paths = write_report(rows, report_dir, title=title(suite), extra_md=extra)
    _log(f"report: {paths['md']}  pictures: {pictures}")
    return paths


def title(suite) -> str:
    """'fashion-mnist, densenet-bc-22-8' (the suite's name only where it is not the data set's)."""
    what = f"{suite.dataset}, {suite.arch}"
    return what if suite.name == suite.dataset else f"{suite.name}: {what}"


def settings_markdown(suite, out: Path, by_run: dict[str, dict]) -> str:
    """What the suite ran with, and how long each part took, as Markdown (for the report);
    ``by_run``: run name -> its report row (``report.collect``)."""
    t, e = suite.train, suite.eval
    eps = next((r["epsilon"] for r in by_run.values() if r.get("epsilon") is not None), e.eps)
    lines = [f"- data set `{suite.dataset}`" + (f", L-inf eps {eps:.4g}" if eps is not None else "")
             + f"; seed {t.seed}",
             f"- classifier `{suite.arch}`: {t.epochs} epochs, batch {t.batch_size}, SGD lr {t.lr} "
             f"({t.schedule}), momentum {t.momentum}, weight decay {t.weight_decay}, "
             f"{'bf16 autocast' if t.amp else 'fp32'}{', channels-last' if t.channels_last else ''}; "
             f"FGSM and PGD training examples crafted with batch norm in train mode unless a run says "
             f"craft_bn=eval; adversarial runs hold out their overfitting probe's batch from the training data"]
    gan = runs.read_json(out / GAN_DIR / "metrics.json").get("train", {}) if suite.needs_gan and \
        (out / GAN_DIR / "metrics.json").is_file() else {}
    if gan:
        lines.append(f"- AC-GAN: preset `{suite.gan_preset}`, {gan.get('gan_steps', suite.gan_steps)} generator steps, "
                     f"{gan.get('train_seconds', 0) / 60:.1f} min of training")
    lines.append(f"- evaluation, identical for every run: clean accuracy on the whole test split; FGSM and "
                 f"PGD-{e.pgd_steps} ({'+'.join(e.losses).upper()} losses, {e.restarts} restart(s) each, "
                 f"{'early stop per sample, ' if e.early_stop else ''}worst case per sample) on {_images(e.subset)}")
    if suite.autoattack:
        lines.append(f"- AutoAttack (torchattacks, standard: APGD-CE, APGD-T, FAB-T, Square; "
                     f"{'bf16 view' if e.autoattack_fast else 'fp32'}) for every adversarially trained run on "
                     f"{_images(e.autoattack_subset or e.subset)}, beside PGD on the same images")
    if suite.needs_gan:
        lines.append(f"- {e.gan_samples} AC-GAN samples; {e.unrestricted_samples} latent searches (setting "
                     f"`{e.search}`, pure latent) per run, each judged for validity by "
                     f"`{suite.judge}` (`{suite.judge2}` judges `{suite.judge}`)")
    first = next(iter(by_run.values()), {})
    if suite.needs_gan and suite.heldout_unrestricted and first.get("heldout_searched"):   # else another suite's
        lines.append(f"- held-out unrestricted set: {first['heldout_found']} valid examples of "
                     f"{first['heldout_succeeded']} successes in {first['heldout_searched']} searches against "
                     f"`{suite.settings[0].name}`"
                     + (f" ({first['heldout_search_seconds'] / 60:.1f} min)" if first.get("heldout_search_seconds")
                        else ""))
    table = ["| run | augment | options | epochs | train (min) | evaluation (min) |", "|---|---|---|---|---|---|"]
    for s in suite.settings:
        r = by_run.get(s.name, {})
        opts = ", ".join([f"{k}={v}" for k, v in s.augment_kw.items()]
                         + ([f"training seed {t.seed + s.seed_offset}"] if s.seed_offset else [])) or "defaults"
        table.append(f"| {s.name} | {s.augment} | {opts} | {s.epochs or t.epochs} | "
                     f"{_minutes(r.get('train_seconds'))} | {_minutes(r.get('eval_seconds'))} |")
    return "\n".join(lines) + "\n\n" + "\n".join(table) + "\n"


def _images(subset: int | None) -> str:
    return f"the first {subset} test images" if subset else "all test images"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)
