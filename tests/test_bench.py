"""The speed benchmark runs end to end (``--smoke``: tiny model and batch) and writes its JSON; the
figures themselves are measured on an idle machine and recorded in bench/README.md, never asserted here."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_smoke_run(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    ratios = {k: v for g in result["groups"].values() for k, v in g["ratios"].items()}
    assert any(k.startswith("clean train step") for k in ratios) and any(k.startswith("attack step") for k in ratios)
    assert any("latent search" in k for k in ratios) and any("peak memory" in k for k in ratios)
    assert all(math.isfinite(v) for v in ratios.values())
    assert all(v > 0 for k, v in ratios.items() if "saved" not in k)     # memory saved may be < 0 at toy size
    assert "| ratio (side by side, this run) | value |" in proc.stdout


def _unrestricted_bench():
    """bench/unrestricted.py as a module (it is a script, not a package member)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_unrestricted", ROOT / "bench" / "unrestricted.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_unrestricted_bench_pairs_the_searches_both_settings_succeed_on():
    """The judge's share on the searches both settings succeed on: the reference succeeding on fewer, easier
    searches must not count as its examples being more valid."""
    bench = _unrestricted_bench()
    row = lambda ok, valid: {"per_search": {"success": ok, "valid": valid}}
    ref = row([True, True, False, False, True], [True, True, False, False, False])
    fast = row([True, True, True, True, False], [True, False, False, True, False])
    assert bench.paired(fast, ref) == (2, 0.5, 1.0)          # searches 0 and 1: fast valid on 1 of 2, ref on 2
    assert bench.paired(row([False] * 5, [False] * 5), ref) == (0, None, None)
    assert bench.paired(ref, ref) == (3, 2 / 3, 2 / 3)


def test_unrestricted_bench_repeats_a_setting_and_reports_the_median_time():
    """--repeat: the same deterministic search timed again; the row's seconds are the median of its timings."""
    import dataclasses
    import statistics

    import torch

    from attacks import SEARCHES
    from tests.tiny_digits import trained_tiny_model
    from tests.tiny_gan import tiny_gan
    bench = _unrestricted_bench()
    g, f = tiny_gan(), trained_tiny_model()
    y = torch.arange(10)
    z0 = torch.randn(10, g.generator.cfg.z_dim, generator=torch.Generator().manual_seed(0))
    cfg = dataclasses.replace(SEARCHES["fast"], steps=5)
    row = bench.measure("fast", cfg, g.generator, g.critic, f, f, y, z0, 0, False, repeat=3)
    once = bench.measure("fast", cfg, g.generator, g.critic, f, f, y, z0, 0, False)
    assert len(row["timings"]) == 3 and row["seconds"] == round(statistics.median(row["timings"]), 2)
    assert row["per_search"] == once["per_search"] and len(once["timings"]) == 1


def test_the_confident_search_setting_is_the_benchmarked_candidate():
    """SEARCHES["confident"] is the candidate row whose figures bench/README.md and its comment quote."""
    import dataclasses

    from attacks import SEARCHES
    bench = _unrestricted_bench()
    (row,) = [v for k, v in bench.CANDIDATES.items() if "(the confident setting)" in k]
    assert dataclasses.replace(SEARCHES["fast"], **row) == SEARCHES["confident"]
