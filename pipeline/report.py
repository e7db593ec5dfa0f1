"""Comparison report across runs: metrics.json of several run directories -> Markdown, CSV, bar chart.

A run's metrics.json has one section per writer (``train``, ``evaluation``, ``heldout``); ``row`` reads each
figure from its section into one flat row per run, the only place where the sections meet.

Example::

    rows = collect(["runs/none", "runs/fgsm"])
    write_report(rows, "runs/report")     # report.md, report.csv, report.json, accuracy.png
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from matplotlib.figure import Figure

import runs

# (row key, column title, kind): kind "acc" prints as a percentage, "points" as a difference of two
COLUMNS: list[tuple[str, str, str]] = [
    ("augment", "augment", "text"),
    ("clean_acc", "clean acc", "acc"),
    ("fgsm_acc", "FGSM acc", "acc"),
    ("pgd_acc", "PGD acc", "acc"),
    ("autoattack_acc", "AutoAttack acc", "acc"),
    ("autoattack_gap", "PGD - AutoAttack (points, same images)", "points"),
    ("gan_sample_acc", "GAN-sample acc", "acc"),
    ("unrestricted_success_rate", "unrestricted success", "acc"),
    ("unrestricted_valid_success_rate", "unrestricted valid success", "acc"),
    ("unrestricted_mean_steps", "search steps to success", "decimal"),
    ("heldout_unrestricted_acc", "held-out unrestricted acc", "acc"),
    ("train_seconds", "train time (s)", "count"),
    ("eval_seconds", "eval time (s)", "count"),
]
BARS = [("clean_acc", "clean"), ("fgsm_acc", "FGSM"), ("pgd_acc", "PGD"), ("autoattack_acc", "AutoAttack"),
        ("gan_sample_acc", "GAN samples"),
        ("unrestricted_valid_success_rate", "valid unrestricted examples found against that model (search success)"),
        ("heldout_unrestricted_acc", "held-out valid unrestricted examples (found against the first clean model)")]


class ReportError(Exception):
    """A run directory without metrics (one line, for the user)."""


def collect(run_dirs: list[str | os.PathLike]) -> list[dict]:
    """One row per run (``row``), named after its folder."""
    rows = []
    for d in run_dirs:
        path = Path(d) / "metrics.json"
        if not path.is_file():
            raise ReportError(f"{d} has no metrics.json: train and evaluate it first")
        metrics = runs.read_json(path)
        if metrics.get("kind") != "classifier" or "train" not in metrics:
            what = "an AC-GAN run" if metrics.get("kind") == "gan" else "not a classifier run of this version"
            raise ReportError(f"{d} is {what}: report compares classifier runs")
        rows.append({"run": Path(d).name, **row(metrics)})
    return rows


def row(metrics: dict) -> dict:
    """A classifier run's figures, flat: training's from ``train``, evaluation's from ``evaluation`` (clean
    accuracy falls back to the last epoch's test accuracy, the same measurement), the suite's held-out
    accuracy from ``heldout``."""
    t, e, h = metrics["train"], metrics.get("evaluation") or {}, metrics.get("heldout") or {}
    aug, aa, gan, u = t.get("augment", {}), e.get("autoattack") or {}, e.get("gan") or {}, e.get("unrestricted") or {}
    return {
        "augment": aug.get("name"), "craft_bn": aug.get("craft_bn"), "dataset": e.get("dataset", t.get("dataset")),
        "epsilon": e.get("epsilon", aug.get("eps")), "clean_acc": e.get("clean_acc", t.get("test_acc")),
        "fgsm_acc": e.get("fgsm_acc"), "pgd_acc": e.get("pgd_acc"), "pgd_steps": e.get("pgd_steps"),
        "attack_samples": e.get("attack_samples"), "autoattack_acc": aa.get("acc"), "autoattack_gap": aa.get("gap"),
        "autoattack_pgd_acc": aa.get("pgd_acc_same_images"), "autoattack_samples": aa.get("samples"),
        "autoattack_stderr": aa.get("acc_stderr"), "autoattack_seconds": aa.get("seconds"),
        "gan_sample_acc": gan.get("gan_sample_acc"),
        **{f"unrestricted_{k}": v for k, v in u.items()},
        "heldout_unrestricted_acc": h.get("acc"), **{f"heldout_{k}": v for k, v in h.items() if k != "acc"},
        "train_seconds": t.get("train_seconds"), "eval_seconds": e.get("eval_seconds"),
        "images_per_second": t.get("images_per_second"), "epochs_done": t.get("epochs_done"),
        "stopped_early_at_epoch": t.get("stopped_early_at_epoch"), "history": t.get("history", []),
    }


def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "acc":
        return f"{100 * value:.1f}%"
    if kind == "count":
        return f"{value:.0f}"
    if kind == "decimal":
        return f"{value:.1f}"
    if kind == "points":
        return f"{100 * value:+.1f}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    """One row per run; a column no run has a value for is left out."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    head = ["run"] + [title for _, title, _ in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["run"]] + [_fmt(r.get(key), kind) for key, _, kind in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run"] + [key for key, _, _ in COLUMNS] + ["epsilon", "pgd_steps"])
    for r in rows:
        writer.writerow([r["run"]] + [r.get(key, "") for key, _, _ in COLUMNS] +
                        [r.get("epsilon", ""), r.get("pgd_steps", "")])
    return buf.getvalue()


def bar_chart(rows: list[dict], title: str = "") -> bytes:
    """Grouped bars: one group per run, one bar per accuracy that any run has."""
    bars = [(k, label) for k, label in BARS if any(r.get(k) is not None for r in rows)]
    width = 0.8 / max(len(bars), 1)
    fig = Figure(figsize=(max(6, 1.3 * len(rows) + 2), 4.6), dpi=120)
    ax = fig.subplots()
    for i, (key, label) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(rows))]
        values = [r.get(key) for r in rows]
        bars_ = ax.bar(xs, [100 * (v or 0) for v in values], width, label=label)
        # every bar says its value, so a 0% bar is told apart from a missing one ("n/a")
        ax.bar_label(bars_, labels=["n/a" if v is None else f"{100 * v:.0f}" for v in values], fontsize=6,
                     rotation=90, padding=2)
    ax.set_xticks(range(len(rows)), [r["run"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 112)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(bars), 3), loc="upper center", bbox_to_anchor=(0.5, -0.18),
              frameon=False)
    ax.set_title(title or "accuracy by training mode")
    return _png(fig)


def curves_chart(rows: list[dict], title: str = "") -> bytes:
    """Test accuracy per epoch of every run (solid) and, where measured, the overfitting probe's PGD
    accuracy (dashed), against training progress (free training's epochs are fewer but each replays m times)."""
    fig = Figure(figsize=(7.5, 4.6), dpi=120)
    ax = fig.subplots()
    for i, r in enumerate(rows):
        hist = r.get("history") or []
        xs = [(j + 1) / len(hist) for j in range(len(hist))]
        color = f"C{i % 10}"
        ax.plot(xs, [100 * h.get("test_acc", float("nan")) for h in hist], "-o", ms=3, color=color,
                label=f"{r['run']} clean")
        if any("probe_pgd_acc" in h for h in hist):
            ax.plot(xs, [100 * h.get("probe_pgd_acc", float("nan")) for h in hist], "--", color=color,
                    label=f"{r['run']} PGD probe")
    ax.set_xlabel("training progress (fraction of the run's epochs)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "accuracy per epoch")
    return _png(fig)


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes, through matplotlib's object API (no pyplot, no global backend state)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_report(rows: list[dict], out: str | os.PathLike, *, title: str = "", extra_md: str = "") -> dict[str, Path]:
    """Write report.md (with ``extra_md`` appended), report.csv, report.json, accuracy.png and curves.png
    into ``out``; return their paths. Everything is drawn before the first file is written, so a failure
    leaves no half-written report."""
    out = Path(out)
    eps = sorted({r.get("epsilon") for r in rows if r.get("epsilon") is not None})
    note = f"L-inf eps = {', '.join(f'{e:.4g}' for e in eps)}; " if eps else ""
    md = (f"# {title or 'Comparison'}\n\n{note}accuracies on the test split (attacks on the evaluated "
          f"subset); PGD keeps the worst case per sample.\n\n{markdown_table(rows)}\n![accuracy](accuracy.png)\n"
          f"\n![accuracy per epoch](curves.png)\n{extra_md}")
    paths = {"md": out / "report.md", "csv": out / "report.csv", "json": out / "report.json",
             "png": out / "accuracy.png", "curves": out / "curves.png"}
    table = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    content = {"md": md.encode(), "csv": csv_table(rows).encode(), "json": runs.json_bytes(table),
               "png": bar_chart(rows, title), "curves": curves_chart(rows, title)}
    for key, data in content.items():
        runs.atomic_write_bytes(paths[key], data)
    return paths
