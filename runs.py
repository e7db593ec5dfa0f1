"""Run directories and checkpoints: atomic writes, safe loading, config/metrics JSON, TensorBoard.

A run directory (``--out``) holds ``config.json``, ``checkpoint.pt`` (latest), ``final.pt``/``best.pt``,
TensorBoard event files, ``samples/`` and ``metrics.json``. Imports nothing of the project.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

PROJECT_VERSION = "0.1.0"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, foreign or of the wrong kind (one line, for the user)."""


class RunDirError(Exception):
    """An output folder that cannot be used (one line, for the user)."""


# ----------------------------------------------------------------------------- atomic writes

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of it.
    The file gets the permissions an ordinary ``open`` would give it (0666 less the umask), not the
    temp file's 0600, so others on a shared machine can read reports and runs as the umask allows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file and a rename."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the project writes JSON: indented, keys sorted, tensors as lists, paths as strings."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def read_json(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


# metrics.json has one section per writer: "train" (the training loop), "evaluation" (evaluate), "heldout"
# (a suite's held-out unrestricted set); a writer replaces its section whole, never key by key
EVALUATION_SECTIONS = ("evaluation", "heldout")


def update_metrics(out: str | os.PathLike, sections: dict, drop: tuple[str, ...] = ()) -> dict:
    """Replace the given top-level sections of ``OUT/metrics.json`` (and remove those in ``drop``),
    atomically; returns the whole record."""
    path = Path(out) / "metrics.json"
    metrics = read_json(path) if path.exists() else {}
    for key in drop:
        metrics.pop(key, None)
    metrics.update(sections)
    write_json(path, metrics)
    return metrics


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------------------- checkpoints

def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory or a checkpoint file -> the checkpoint file (``RUN/checkpoint.pt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    return p


def load_checkpoint(path: str | os.PathLike, kind: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint of this project with ``weights_only=True`` (a file can never run code).

    Args:
        path: checkpoint file or run directory.
        kind: expected ``ckpt["kind"]`` (``"classifier"`` or ``"gan"``); ``None`` accepts any.
    Raises:
        CheckpointError: missing, truncated/corrupt, not ours, or the wrong kind.
    """
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, bytes that are no checkpoint at all
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"{p} is not a readable checkpoint (truncated, corrupt or foreign): {first}") from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{p} is not a checkpoint written by this project")
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{p} is a {ckpt['kind']} checkpoint, but a {kind} checkpoint is expected here")
    return ckpt


def resume_checkpoint(out: str | os.PathLike, kind: str) -> dict:
    """The checkpoint a ``--resume`` continues from; RunDirError when ``out`` holds none."""
    if not (Path(out) / CHECKPOINT_NAME).is_file():
        raise _nothing_to_resume(out)
    return load_checkpoint(out, kind=kind)


def _nothing_to_resume(out) -> RunDirError:
    return RunDirError(f"--resume: nothing to resume in {out} (no {CHECKPOINT_NAME})")


# ----------------------------------------------------------------------------- run directories

def prepare_run_dir(out: str | os.PathLike, *, resume: bool, config: dict | None = None) -> Path:
    """Check ``out`` can hold this run and write ``config.json``; never overwrite a run silently.

    - ``out`` is a file, or not writable: RunDirError.
    - ``resume`` with no checkpoint in ``out``: RunDirError ("nothing to resume").
    - no ``resume`` but a checkpoint already there: RunDirError (pass --resume or choose another --out).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a folder")
    has_ckpt = (out / CHECKPOINT_NAME).is_file()
    if resume and not has_ckpt:
        raise _nothing_to_resume(out)
    if not resume and has_ckpt:
        raise RunDirError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        raise RunDirError(f"cannot write to --out {out}: {e.strerror or e}") from None
    if config is not None:
        write_json(out / "config.json", config)
    return out


class NullWriter:
    """Stands in for a SummaryWriter on ranks other than 0, or when TensorBoard is off."""

    def __getattr__(self, name):
        return lambda *a, **k: None


def make_writer(out: str | os.PathLike, enabled: bool = True):
    """A TensorBoard ``SummaryWriter`` writing into ``out``, or a no-op writer."""
    if not enabled:
        return NullWriter()
    from torch.utils.tensorboard import SummaryWriter  # heavy import, only when used
    return SummaryWriter(log_dir=str(out))
