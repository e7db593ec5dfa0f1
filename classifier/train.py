"""The one classifier training loop. Augmenters plug in through the interface of augment/base.py.

SGD (Nesterov) with weight decay, an lr schedule defined on optimizer steps (multi-step at 50%/75%
as in the DenseNet paper, or cosine), optional label smoothing, bf16 autocast and channels-last,
test accuracy every epoch, atomic checkpoints with everything needed for an exact resume.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import runs
import runtime
from data import DeviceLoader, ImageDataset, Split
from registry import Registry

from .densenet import classifier_config
from .sync_bn import convert_sync_batchnorm


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "multistep"       # multistep (x0.1 at 50% and 75%) | cosine
    label_smoothing: float = 0.0
    amp: bool = True                  # bf16 autocast (fp16 + loss scaling where bf16 is missing)
    channels_last: bool = True
    seed: int = 0
    eval_batch_size: int = 500
    nonfinite: str = "stop"           # stop | skip: what a NaN/inf training loss does
    sync_bn: bool = False             # under torchrun: batch-norm statistics of the global batch
    compile: bool = False             # torch.compile the training model (first steps pay the compile)


SCHEDULES: Registry = Registry("lr schedule", {
    "multistep": lambda t: 0.1 ** ((t >= 0.5) + (t >= 0.75)),
    "cosine": lambda t: 0.5 * (1 + math.cos(math.pi * t)),
    "constant": lambda t: 1.0,
})


class NonFiniteLoss(RuntimeError):
    """Raised when the training loss is NaN or infinite."""


# ----------------------------------------------------------------------------- evaluation

@torch.inference_mode()
def accuracy(model: nn.Module, split: Split, *, device: torch.device, batch_size: int = 500,
             amp: bool = True, channels_last: bool = True) -> float:
    """Top-1 accuracy of ``model`` on a whole split (sharded across ranks, counts all-reduced)."""
    info = runtime.dist_info()
    loader = DeviceLoader(split.images, split.labels, batch_size=batch_size, device=device, shuffle=False,
                          rank=info.rank, world_size=info.world_size)
    was_training = model.training
    model.eval()
    counts = torch.zeros(2, dtype=torch.float64, device=device)
    for x, y in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(device, amp):
            counts[0] += (model(x).argmax(1) == y).sum()
        counts[1] += len(y)
    model.train(was_training)
    runtime.all_reduce_sum(counts)
    return (counts[0] / counts[1]).item()


# ----------------------------------------------------------------------------- the loop

def fit(model: nn.Module, dataset: ImageDataset, *, cfg: TrainConfig, out: str | Path,
        device: torch.device, augmenter, resume: bool = False,
        epoch_hooks: Iterable[Callable[[nn.Module, dict], dict]] = (),
        extra_config: dict | None = None, stop: runtime.GracefulStop | None = None) -> dict:
    """Train ``model`` on ``dataset`` and write checkpoints, TensorBoard scalars and metrics.json.

    Args:
        model: a DenseNet (or any module taking [B, C, H, W] in [0, 1]) on ``device``.
        cfg: optimisation settings; ``cfg.epochs`` counts passes of work, so an augmenter with
            ``replays = m`` runs ``ceil(epochs / m)`` epochs.
        augmenter: any object with the interface of ``augment.base.Augmenter`` (``build_augmenter("none")``
            trains on clean data); the loop knows no augmenter class.
        resume: continue from ``out/checkpoint.pt`` (model, optimizer, step, RNG and augmenter state).
        epoch_hooks: called as ``hook(model, record)`` after each epoch's training; the dict they return is
            merged into that epoch's record (e.g. the catastrophic-overfitting probe); ``"stop": True`` in it
            ends the run after this epoch. A hook with ``state_dict``/``load_state_dict`` is checkpointed.
    Returns:
        The run's metrics.json: ``{"kind": "classifier", "train": {...}}`` (a later evaluation adds its block).
    """
    state = _TrainState.create(model, dataset, cfg, device, augmenter, Path(out), extra_config or {})
    state.hooks = list(epoch_hooks)
    if resume:
        state.load(runs.load_checkpoint(Path(out), kind="classifier", map_location=device))
    writer = runs.make_writer(out, enabled=runtime.dist_info().is_main)
    with (stop if stop is not None else runtime.GracefulStop()) as stop, contextlib.closing(writer):
        while state.epoch < state.total_epochs and state.stopped_early is None:
            record = _run_epoch(state, writer, stop)
            for hook in state.hooks:
                record.update(hook(runtime.unwrap(state.model), record) or {})
            if record.get("stop"):            # a hook ended the run (the overfitting guard's early stop)
                state.stopped_early = record["epoch"]
            state.finish_epoch(record, writer)
        metrics = state.final_metrics()
        writer.add_hparams(_hparams(state), {"hparam/test_acc": metrics["train"]["test_acc"] or 0.0},
                           run_name="hparams")
    return metrics


def _run_epoch(state: "_TrainState", writer, stop: runtime.GracefulStop) -> dict:
    loader = state.loader
    loader.set_epoch(state.epoch)
    state.aug.set_epoch(state.epoch)
    if state.batch == 0:
        state.partial.zero_()                 # [loss sum, correct, images, seconds] of this epoch so far
    bar = tqdm(loader.batches(state.batch), total=len(loader), initial=state.batch, leave=False,
               desc=f"epoch {state.epoch + 1}/{state.total_epochs}", unit="batch",
               disable=not runtime.dist_info().is_main, dynamic_ncols=True)
    t0 = time.perf_counter()
    for x, y in bar:
        result = _train_step(state, x, y)
        state.batch += 1
        if result is not None:
            loss, correct = result
            state.partial[0] += loss.detach() * len(y)
            state.partial[1] += correct
            state.partial[2] += len(y)
        if result is not None and state.step % 20 == 0:
            writer.add_scalar("loss/train", loss.item(), state.step)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{state.lr:.3g}")
        if stop.should_stop(state.device):
            state.partial[3] += time.perf_counter() - t0
            state.interrupt(stop.signal_name or "stop requested")
    state.partial[3] += time.perf_counter() - t0
    sums = runtime.all_reduce_sum(state.partial[:3].clone())
    return {"epoch": state.epoch + 1, "lr": state.lr, "train_loss": (sums[0] / sums[2]).item(),
            "train_acc": (sums[1] / sums[2]).item(), "seconds": state.partial[3].item(),
            "images": int(sums[2].item())}


def _train_step(state: "_TrainState", x: torch.Tensor, y: torch.Tensor):
    """One minibatch: ``aug.replays`` forward/backward/update rounds.

    Returns (loss, #correct) of the last round, or None when every round was skipped as non-finite.
    """
    model, opt, cfg, aug = state.model, state.optimizer, state.cfg, state.aug
    result = None
    for _ in range(aug.replays):
        state.set_lr()
        batch = aug(model, x, y)                      # AugBatch: x [B, C, H, W] in [0, 1]
        xb = batch.x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else batch.x
        with runtime.autocast(state.device, cfg.amp):
            logits = model(xb)
        losses = F.cross_entropy(logits.float(), batch.y, reduction="none", label_smoothing=cfg.label_smoothing)
        loss = _global_mean(losses * batch.weight if batch.weight is not None else losses)
        opt.zero_grad(set_to_none=True)
        if runtime.any_rank(not torch.isfinite(loss).item(), state.device):
            state.non_finite(loss)
            continue
        state.scaler.scale(loss).backward()
        aug.after_backward()
        state.scaler.step(opt)
        state.scaler.update()
        state.step += 1
        result = loss, (logits.argmax(1) == batch.y).sum()
    return result


def make_train_step(model: nn.Module, dataset: ImageDataset, cfg: TrainConfig, device: torch.device,
                    augmenter) -> Callable[[torch.Tensor, torch.Tensor], tuple | None]:
    """The loop's training step as a function ``step(x, y)`` (benchmarks time exactly what ``fit`` runs)."""
    state = _TrainState.create(model, dataset, cfg, device, augmenter, Path("."), {})
    return lambda x, y: _train_step(state, x, y)


def _global_mean(values: torch.Tensor) -> torch.Tensor:
    """The local batch mean; under torchrun scaled so that DDP's averaging over ranks yields the gradient
    of the *global* batch mean even when ranks hold unequal shares (a short last batch)."""
    info = runtime.dist_info()
    if not info.enabled:
        return values.mean()
    n = runtime.all_reduce_sum(torch.tensor([float(len(values))], device=values.device))
    return values.sum() * (info.world_size / n[0])


# ----------------------------------------------------------------------------- state and checkpoints

@dataclass
class _TrainState:
    """Everything the loop mutates, and how it goes into / comes out of a checkpoint."""
    model: nn.Module                  # what the loop calls: the model, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    device: torch.device
    aug: object                       # anything with the augmenter interface (augment/base.py)
    out: Path
    dataset: ImageDataset
    loader: DeviceLoader
    total_epochs: int                 # ceil(cfg.epochs / aug.replays)
    total_steps: int                  # optimizer steps of the whole run (the lr schedule's length)
    scaler: torch.amp.GradScaler      # fp16 loss scaling (disabled for bf16 and fp32)
    partial: torch.Tensor             # [loss sum, correct, images, seconds] of the epoch in progress
    extra_config: dict = field(default_factory=dict)
    epoch: int = 0
    batch: int = 0                    # batches done in the epoch in progress
    step: int = 0
    lr: float = 0.0
    history: list = field(default_factory=list)
    best_acc: float = -1.0
    skipped: int = 0
    stopped_early: int | None = None  # the epoch at which a hook stopped the run
    hooks: list = field(default_factory=list)

    @classmethod
    def create(cls, model, dataset, cfg, device, aug, out, extra_config):
        info = runtime.dist_info()
        if info.enabled and cfg.sync_bn:
            model = convert_sync_batchnorm(model, device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        train_model = model
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if cfg.compile:
            train_model = torch.compile(train_model)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                              weight_decay=cfg.weight_decay)
        loader = DeviceLoader(dataset.train.images, dataset.train.labels,
                              batch_size=runtime.per_rank_batch(cfg.batch_size), device=device,
                              crop_pad=dataset.crop_pad, flip=dataset.flip, seed=cfg.seed,
                              rank=info.rank, world_size=info.world_size)
        total_epochs = math.ceil(cfg.epochs / aug.replays)
        fp16 = cfg.amp and runtime.autocast_dtype(device) == torch.float16
        return cls(model=train_model, optimizer=opt, cfg=cfg, device=device, aug=aug, out=out,
                   dataset=dataset, loader=loader, total_epochs=total_epochs,
                   total_steps=total_epochs * len(loader) * aug.replays, lr=cfg.lr, extra_config=extra_config,
                   partial=torch.zeros(4, dtype=torch.float64, device=device),
                   scaler=torch.amp.GradScaler(device.type, enabled=fp16))

    @property
    def train_seconds(self) -> float:
        """Training time (no evaluation) of finished epochs plus the current partial epoch."""
        return sum(r["seconds"] for r in self.history) + (self.partial[3].item() if self.batch else 0.0)

    def set_lr(self) -> None:
        self.lr = self.cfg.lr * SCHEDULES[self.cfg.schedule](self.step / max(1, self.total_steps))
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr

    def finish_epoch(self, record: dict, writer) -> None:
        record["test_acc"] = accuracy(self.model, self.dataset.test, device=self.device,
                                      batch_size=self.cfg.eval_batch_size, amp=self.cfg.amp,
                                      channels_last=self.cfg.channels_last)
        self.history.append(record)
        self.epoch, self.batch = self.epoch + 1, 0
        for key, tag in EPOCH_TAGS.items():
            if record.get(key) is not None:
                writer.add_scalar(tag, record[key], self.epoch)
        _log(_summary_line(record, self.total_epochs))
        self.save(best=record["test_acc"] > self.best_acc, new_epoch=True)

    def non_finite(self, loss: torch.Tensor) -> None:
        """A NaN/inf loss: stop (the last good checkpoint stays on disk) or skip the batch."""
        where = f"step {self.step} (epoch {self.epoch + 1}, batch {self.batch})"
        if self.cfg.nonfinite == "stop":
            raise NonFiniteLoss(f"non-finite training loss ({loss.item()}) at {where}; the last good "
                                f"checkpoint is kept in {self.out} (or train with --nonfinite skip)")
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        _log(f"warning: non-finite loss at {where}: batch skipped ({self.skipped} so far)")

    def interrupt(self, why: str) -> None:
        """Save at this step boundary and stop with a message saying how to resume."""
        self.partial[:3] = runtime.all_reduce_sum(self.partial[:3].clone())   # the checkpoint holds all ranks'
        self.save()
        raise runtime.Interrupted(f"{why}: stopped at epoch {self.epoch + 1}, batch {self.batch}; checkpoint "
                                  f"saved in {self.out}. Resume with: python cli.py train-classifier --out {self.out} --resume")

    def checkpoint(self, aug_states: list[dict]) -> dict:
        """``aug_states``: every rank's augmenter state (free's perturbation, the latent pool, ...)."""
        model = runtime.unwrap(self.model)
        return {
            "kind": "classifier", "version": runs.PROJECT_VERSION,
            "config": {"model": classifier_config(model), "train": asdict(self.cfg), **self.extra_config},
            "dataset": self.dataset.name, "num_classes": self.dataset.num_classes,
            "classes": list(self.dataset.classes),
            "model": model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "augmenter": aug_states[0],
            "augmenter_per_rank": aug_states,
            "epoch": self.epoch, "batch": self.batch, "step": self.step, "rng": runtime.rng_state(),
            "partial": self.partial.cpu(), "history": self.history, "best_acc": self.best_acc,
            "skipped": self.skipped, "stopped_early": self.stopped_early,
            "hooks": [h.state_dict() if hasattr(h, "state_dict") else None for h in self.hooks],
        }

    def save(self, best: bool = False, new_epoch: bool = False) -> None:
        """Checkpoint and metrics.json; ``new_epoch``: the weights changed, so an earlier evaluation (and the
        suite's held-out figures) no longer describe them and are dropped from the record."""
        aug_states = runtime.gather_to_main(self.aug.state_dict())      # every rank takes part
        if not runtime.dist_info().is_main:
            return
        if best:
            self.best_acc = self.history[-1]["test_acc"]
        ckpt = self.checkpoint(aug_states)
        runs.atomic_save(ckpt, self.out / runs.CHECKPOINT_NAME)
        if best:
            runs.atomic_save(ckpt, self.out / "best.pt")
        runs.update_metrics(self.out, self.metrics(), drop=runs.EVALUATION_SECTIONS if new_epoch else ())

    def load(self, ckpt: dict) -> None:
        runtime.unwrap(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        info = runtime.dist_info()
        per_rank = ckpt.get("augmenter_per_rank") or [ckpt["augmenter"]]
        if len(per_rank) != info.world_size and per_rank[0]:
            _log(f"warning: the augmenter state was saved by {len(per_rank)} rank(s) and is resumed on "
                 f"{info.world_size}: every rank starts from rank 0's")
        self.aug.load_state_dict(per_rank[info.rank] if len(per_rank) == info.world_size else per_rank[0])
        for k in ("epoch", "batch", "step", "history", "best_acc", "skipped"):
            setattr(self, k, ckpt[k])
        self.stopped_early = ckpt.get("stopped_early")
        for hook, hook_state in zip(self.hooks, ckpt.get("hooks") or []):
            if hook_state is not None:
                hook.load_state_dict(hook_state)
        self.partial = ckpt["partial"].to(self.device)
        if not info.is_main:
            self.partial[:3] = 0                  # rank 0 carries the sums of the interrupted epoch
        runtime.set_rng_state(ckpt["rng"])
        self.set_lr()

    def metrics(self) -> dict:
        """The training section of metrics.json (replaced whole at every save)."""
        images = sum(r["images"] for r in self.history)
        done = sum(r["seconds"] for r in self.history)
        train = {
            "dataset": self.dataset.name, "arch": self.extra_config.get("arch"), "augment": self.aug.describe(),
            "config": asdict(self.cfg), "epochs": self.total_epochs, "epochs_done": self.epoch,
            "test_acc": self.history[-1]["test_acc"] if self.history else None,
            "best_test_acc": max((r["test_acc"] for r in self.history), default=None),
            "stopped_early_at_epoch": self.stopped_early, "train_seconds": self.train_seconds,
            "images_per_second": images / done if done else None, "skipped_batches": self.skipped,
            "history": self.history,
        }
        return {"kind": "classifier", "train": train}

    def final_metrics(self) -> dict:
        aug_states = runtime.gather_to_main(self.aug.state_dict())
        if runtime.dist_info().is_main:
            runs.atomic_save(self.checkpoint(aug_states), self.out / "final.pt")
            return runs.update_metrics(self.out, self.metrics())
        return self.metrics()


# epoch record key -> TensorBoard tag (the probe's figures exist during adversarial training)
EPOCH_TAGS = {"train_loss": "loss/train_epoch", "train_acc": "acc/train", "test_acc": "acc/clean", "lr": "lr",
              "probe_clean_acc": "acc/probe_clean", "probe_pgd_acc": "acc/probe_pgd"}


def _hparams(state: _TrainState) -> dict:
    """The run's settings as TensorBoard hyperparameters (scalars and strings only)."""
    settings = {**asdict(state.cfg), **{f"aug_{k}": v for k, v in state.aug.describe().items()},
                "arch": state.extra_config.get("arch")}
    return {k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool))}


def _summary_line(record: dict, total_epochs: int) -> str:
    known = {"epoch", "lr", "train_loss", "train_acc", "test_acc", "seconds", "images"}
    extra = "".join(f"  {k} {v:.3f}" for k, v in record.items() if k not in known and isinstance(v, float))
    return (f"epoch {record['epoch']}/{total_epochs}  loss {record['train_loss']:.4f}  "
            f"train {record['train_acc']:.2%}  test {record['test_acc']:.2%}  lr {record['lr']:.3g}  "
            f"{record['seconds']:.1f}s ({record['images'] / max(record['seconds'], 1e-9):.0f} img/s){extra}")


def _log(msg: str) -> None:
    if runtime.dist_info().is_main:
        print(msg, file=sys.stderr, flush=True)
