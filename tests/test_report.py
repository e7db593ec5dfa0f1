"""The comparison report: table values, CSV, chart, and a clear error for a run without metrics."""
from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

import runs
from cli import cli
from pipeline import ReportError, collect, write_report


def _run(tmp_path, name, train: dict, evaluation: dict | None = None, **sections):
    d = tmp_path / name
    d.mkdir()
    record = {"kind": "classifier", "train": {"dataset": "digits", **train}, **sections}
    if evaluation is not None:
        record["evaluation"] = {"dataset": "digits", "epsilon": 0.1, **evaluation}
    runs.write_json(d / "metrics.json", record)
    return d


def test_report_files_and_values(tmp_path):
    a = _run(tmp_path, "clean", {"augment": {"name": "none"}, "test_acc": 0.94, "train_seconds": 10.0,
                                 "images_per_second": 500.0, "history": [{"epoch": 1}]},
             {"clean_acc": 0.95, "fgsm_acc": 0.2, "pgd_acc": 0.01})
    b = _run(tmp_path, "fgsm", {"augment": {"name": "fgsm", "eps": 0.1}, "test_acc": 0.9},
             {"clean_acc": 0.9, "fgsm_acc": 0.7, "pgd_acc": 0.6, "gan": {"gan_sample_acc": 0.85},
              "autoattack": {"acc": 0.55, "gap": 0.05}})
    c = _run(tmp_path, "trained-only", {"augment": {"name": "none"}, "test_acc": 0.93}, heldout={"acc": 0.4})
    paths = write_report(collect([a, b, c]), tmp_path / "rep", title="digits")
    md = paths["md"].read_text()
    assert "| clean | none | 95.0% | 20.0% | 1.0% | - | - | - |" in md
    assert "| fgsm | fgsm | 90.0% | 70.0% | 60.0% | 55.0% | +5.0 | 85.0% |" in md
    assert "| trained-only | none | 93.0% | - | - | - | - | - | 40.0% |" in md       # training's test accuracy
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert rows[1]["pgd_acc"] == "0.6" and rows[0]["epsilon"] == "0.1"
    assert "history" not in runs.read_json(paths["json"])[0]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 5000


def test_missing_metrics_is_one_line(tmp_path):
    with pytest.raises(ReportError, match="no metrics.json"):
        collect([tmp_path])
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
