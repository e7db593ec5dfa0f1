"""Process-level helpers: device choice, seeding, RNG state, mixed precision, torch.distributed.

Imports nothing of the project. Nothing here runs at import.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import sys
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist


# ----------------------------------------------------------------------------- device

class DeviceError(RuntimeError):
    """An unknown or unavailable device (one line, for the user)."""


def pick_device(name: str = "auto") -> torch.device:
    """Resolve ``auto|cpu|cuda|cuda:N`` to a device; under torchrun each rank takes its local GPU.

    Raises DeviceError for a device that is not available (the CLI turns it into one line).
    """
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA GPU is visible to PyTorch")
        if name == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if name != "cpu" and not name.startswith("cuda"):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device supports it (CPU, Ampere and newer), else fp16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, enabled: bool):
    """``torch.autocast`` for the device, or a no-op context when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=autocast_dtype(device))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under DistributedDataParallel and torch.compile wrappers (any nesting)."""
    while isinstance(model, torch.nn.parallel.DistributedDataParallel) or hasattr(model, "_orig_mod"):
        model = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model._orig_mod
    return model


# ----------------------------------------------------------------------------- seeds and RNG

def seed_everything(seed: int) -> None:
    """Seed Python, torch (CPU and every GPU). numpy is not used for randomness in this project."""
    random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG state, in a form ``torch.load(weights_only=True)`` accepts."""
    state = {"torch": torch.get_rng_state(), "python": list(_py_state())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state():
    version, internal, gauss = random.getstate()
    return version, list(internal), gauss


# ----------------------------------------------------------------------------- distributed

@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Rank and world size of this process (world size 1 without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when started by torchrun (gloo on CPU, nccl on CUDA); else no-op."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return dist_info()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        atexit.register(_leave_process_group)
    return dist_info()


def _leave_process_group() -> None:
    """Destroy the process group before the interpreter exits. Without it, a rank that finished first
    could abort at exit ("terminate called without an active exception", SIGABRT) with gloo's threads
    still alive (seen as 2 failed torchrun tests in one run of tests/test_distributed.py)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def per_rank_batch(global_batch: int, what: str = "batch size") -> int:
    """This rank's share of a *global* batch: the same command trains the same model on any number
    of ranks (no learning-rate rescaling needed). Raises ValueError when it does not divide evenly."""
    world = dist_info().world_size
    if global_batch % world:
        raise ValueError(f"{what} {global_batch} does not split evenly over {world} ranks; "
                         f"use a multiple of {world}")
    return global_batch // world


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (identity in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_to_main(obj) -> list:
    """Every rank's ``obj`` as a list on rank 0 (``[obj]`` in a single process; ``[]`` on other ranks)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    info = dist_info()
    objects = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, objects, dst=0)
    return objects if info.is_main else []


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (``flag`` itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# ----------------------------------------------------------------------------- graceful stop

class Interrupted(Exception):
    """Training stopped on request after saving a checkpoint; the message says how to resume."""


class GracefulStop:
    """Within this context the first SIGINT/SIGTERM only sets ``requested``: the training loop saves a
    checkpoint at the next step boundary and stops. A second SIGINT interrupts at once. Handlers are
    installed only in the main thread and restored on exit.
    """

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._previous: dict = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signal_name = True, signal.Signals(signum).name
        print(f"\n{self.signal_name}: saving a checkpoint at the next step boundary "
              f"(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def should_stop(self, device: torch.device) -> bool:
        """Whether to stop now; all ranks agree (any rank's request stops every rank)."""
        return any_rank(self.requested, device)
