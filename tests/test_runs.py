"""Atomic writes, safe checkpoint loading (weights_only) and run-directory checks."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

import runs
from runs import CheckpointError, RunDirError


def _ckpt(kind="classifier"):
    return {"kind": kind, "config": {"a": 1}, "w": torch.arange(3)}


def test_atomic_save_round_trip_leaves_no_temp_files(tmp_path):
    runs.atomic_save(_ckpt(), tmp_path / "checkpoint.pt")
    assert os.listdir(tmp_path) == ["checkpoint.pt"]
    assert torch.equal(runs.load_checkpoint(tmp_path)["w"], torch.arange(3))


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    runs.write_json(tmp_path / "metrics.json", {"a": 1})
    with pytest.raises(TypeError):
        runs.write_json(tmp_path / "metrics.json", {"a": object()})
    assert runs.read_json(tmp_path / "metrics.json") == {"a": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_missing_truncated_foreign_and_wrong_kind_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        runs.load_checkpoint(tmp_path)
    runs.atomic_save(_ckpt(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or foreign"):
        runs.load_checkpoint(tmp_path / "cut.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint written by this project"):
        runs.load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="is a classifier checkpoint, but a gan checkpoint"):
        runs.load_checkpoint(tmp_path / "good.pt", kind="gan")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_checkpoint_can_never_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"kind": "classifier", "config": Evil()}, f)
    torch.save({"kind": "classifier", "config": Evil()}, "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError):
            runs.load_checkpoint(name)
    assert not (tmp_path / "pwned").exists()


def test_run_dir_rules(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        runs.prepare_run_dir(f, resume=False)
    with pytest.raises(RunDirError, match="nothing to resume"):
        runs.prepare_run_dir(tmp_path / "new", resume=True)
    out = runs.prepare_run_dir(tmp_path / "run", resume=False, config={"x": 1})
    assert runs.read_json(out / "config.json") == {"x": 1}
    runs.atomic_save(_ckpt(), out / "checkpoint.pt")
    with pytest.raises(RunDirError, match="already holds a run"):
        runs.prepare_run_dir(out, resume=False)
    assert runs.prepare_run_dir(out, resume=True) == out


def test_update_metrics_merges(tmp_path):
    runs.update_metrics(tmp_path, {"a": 1})
    assert runs.update_metrics(tmp_path, {"b": 2.5}) == {"a": 1, "b": 2.5}


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        runs.write_json(tmp_path / "m.json", {"a": 1})
        runs.atomic_save({"kind": "classifier", "config": {}}, tmp_path / "c.pt")
        assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        runs.write_json(tmp_path / "private.json", {"a": 1})
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
