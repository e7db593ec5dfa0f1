"""Bad input through the real CLI: exit code 2, a message that says what is wrong, no traceback, and
nothing written where a run would have gone."""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import runs
from cli import cli

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train-classifier", "--dataset", "digits", "--arch", "densenet-bc-22-8", "--epochs", "1"]
GAN = ["train-gan", "--dataset", "digits", "--preset", "small", "--steps", "2"]

# (arguments with {tmp} for the test's folder, text the error must contain)
CASES = [
    (["train-classifier", "--dataset", "imagenet", "--out", "{tmp}/o"], "Invalid value for '--dataset'"),
    (["train-classifier", "--arch", "resnet-50", "--out", "{tmp}/o"], "Invalid value for '--arch'"),
    ([*TRAIN, "--batch-size", "0", "--out", "{tmp}/o"], "Invalid value for '--batch-size'"),
    ([*TRAIN, "--epochs", "0", "--out", "{tmp}/o"], "Invalid value for '--epochs'"),
    ([*TRAIN, "--lr", "0", "--out", "{tmp}/o"], "Invalid value for '--lr'"),
    ([*TRAIN, "--augment", "fgsm", "--eps", "1.5", "--out", "{tmp}/o"], "sizes are in [0, 1] pixel units"),
    ([*TRAIN, "--augment", "fgsm", "--eps", "8", "--out", "{tmp}/o"], "write 8/255"),
    ([*TRAIN, "--augment", "pgd", "--eps", "0", "--out", "{tmp}/o"], "it must be > 0"),
    ([*TRAIN, "--augment", "pgd", "--eps", "8/x", "--out", "{tmp}/o"], "a fraction like 8/255"),
    ([*TRAIN, "--augment", "pgd", "--pgd-steps", "0", "--out", "{tmp}/o"], "PGD steps must be >= 1"),
    ([*TRAIN, "--augment", "free", "--replays", "0", "--out", "{tmp}/o"], "replays must be >= 1"),
    ([*TRAIN, "--augment", "gan", "--out", "{tmp}/o"], "--augment gan needs --gan RUN"),
    ([*TRAIN, "--out", "{tmp}/a-file"], "is a file"),
    (["train-classifier", "--out", "{tmp}/o", "--resume"], "nothing to resume"),
    (["train-classifier", "--dataset", "cifar10", "--data-dir", "{tmp}/empty", "--out", "{tmp}/o"],
     "cifar-10-python.tar.gz"),
    ([*TRAIN, "--device", "cuda:7", "--out", "{tmp}/o"], "cuda"),
    ([*GAN, "--out", "{tmp}/a-file"], "is a file"),
    (["train-gan", "--out", "{tmp}/o", "--resume"], "nothing to resume"),
    ([*GAN, "--batch-size", "5000", "--out", "{tmp}/o"], "larger than the 1437 training images"),
    (["evaluate", "{tmp}/empty"], "no checkpoint"),
    (["evaluate", "{tmp}/truncated"], "not a readable checkpoint"),
    (["evaluate", "{tmp}/gan-run"], "is a gan checkpoint"),
    (["evaluate", "{tmp}/empty", "--eps", "2"], "Invalid value for '--eps'"),
    (["grid", "--kind", "samples", "--gan", "{tmp}/gan-run", "--out", "{tmp}/o/grid.jpg"], "must be a .png"),
    (["grid", "--kind", "fgsm", "--gan", "{tmp}/gan-run", "--out", "{tmp}/o/grid.png"], "--classifier"),
    (["grid", "--kind", "mosaic", "--out", "{tmp}/o/grid.png"], "mosaic"),
    (["report", "{tmp}/empty", "--out", "{tmp}/o"], "metrics.json"),
    (["report", "{tmp}/gan-run", "--out", "{tmp}/o"], "is an AC-GAN run: report compares classifier runs"),
    ([*TRAIN, "--eps", "0.1", "--out", "{tmp}/o"], "--eps is not used by --augment none (it takes no options)"),
    ([*TRAIN, "--augment", "pgd", "--replays", "4", "--out", "{tmp}/o"],
     "--replays is not used by --augment pgd (it takes --eps, --pgd-steps, --alpha, --zero-start, --craft-bn"),
    ([*TRAIN, "--batch-size", "5000", "--out", "{tmp}/o"], "larger than the 1437 training images of digits"),
    (["train-classifier", "--dataset", "DIGITS", "--batch-size", "5000", "--out", "{tmp}/o"],
     "larger than the 1437 training images of digits"),
    (["train-classifier", "--dataset", "cifar10", "--data-dir", "{tmp}/no/such/dir", "--out", "{tmp}/o"],
     "cifar-10-python.tar.gz"),
    (["grid", "--kind", "unrestricted", "--classifier", "{tmp}/empty", "--out", "{tmp}/o/grid.png"], "--gan RUN"),
    (["grid", "--kind", "pgd", "--classifier", "{tmp}/empty", "--eps", "8", "--out", "{tmp}/o/grid.png"],
     "write 8/255"),
    (["evaluate", "{tmp}/empty", "--eps", "8"], "write 8/255"),
    (["evaluate", "{tmp}/empty", "--target", "two"], "neither a class number nor 'all'"),
    ([*TRAIN, "--craft-bn", "eval", "--out", "{tmp}/o"], "--craft-bn is not used by --augment none"),
    ([*TRAIN, "--overfit", "stop", "--out", "{tmp}/o"], "--overfit stop applies to adversarial training"),
    ([*TRAIN, "--augment", "fgsm", "--craft-bn", "batch", "--out", "{tmp}/o"], "Invalid value for '--craft-bn'"),
    (["reproduce", "--full", "--ablations", "--out", "{tmp}/o"], "no ablation suite for fashion-mnist-full"),
    (["reproduce", "--autoattack", "500", "--out", "{tmp}/o"], "holds no trained run"),
]


@pytest.fixture
def tmp(tmp_path) -> Path:
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "truncated").mkdir()
    runs.atomic_save({"kind": "classifier", "config": {}, "model": {}}, tmp_path / "truncated" / "checkpoint.pt")
    data = (tmp_path / "truncated" / "checkpoint.pt").read_bytes()
    (tmp_path / "truncated" / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "gan-run").mkdir()
    runs.atomic_save({"kind": "gan", "config": {}}, tmp_path / "gan-run" / "checkpoint.pt")
    runs.write_json(tmp_path / "gan-run" / "config.json", {"kind": "gan", "dataset": "digits"})
    runs.write_json(tmp_path / "gan-run" / "metrics.json", {"kind": "gan", "train": {"gan_steps": 2}})
    return tmp_path


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a[:1] + a[-3:-1]) for a, _ in CASES])
def test_bad_input_is_one_clear_error(tmp, args, message):
    result = CliRunner().invoke(cli, [a.replace("{tmp}", str(tmp)) for a in args], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp / "o").exists()                                    # nothing written
    assert not (tmp / "no").exists()                                   # no data folder left behind


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` read-only for this process: chmod for ordinary users; root ignores modes, so for
    root the folder is marked immutable (``chattr +i``), which binds root too."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no way to make a read-only folder")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        with pytest.raises(OSError) as e:                    # the folder really is read-only
            (ro / "probe").mkdir()
        assert e.value.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *TRAIN, "--out", str(ro / "run")],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"Error: cannot write to --out {ro / 'run'}: "
                                                f"{os.strerror(e.value.errno)}"]
    assert not (ro / "run").exists()
