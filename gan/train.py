"""The one AC-GAN training loop: n_critic critic steps per generator step, EMA generator, exact resume.

Stages: configs and presets | one critic step / one generator step | checkpoint state | the loop.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

import runs
import runtime
from data import DeviceLoader, ImageDataset
from registry import Registry

from .losses import adversarial_loss, aux_class_loss, penalty
from .models import MODEL_PRESETS, Critic, GANConfig, Generator, model_config
from .sample import check_compatible, recalibrate_bn, save_sample_grid


# ----------------------------------------------------------------------------- configs and presets

@dataclass
class TrainConfig:
    """Hyperparameters of ``train_gan``; ``asdict(cfg)`` is stored in checkpoints.

    Args:
        steps: generator steps (each preceded by ``n_critic`` critic steps).
        gp_every: apply the penalty every k-th critic step with weight x k (lazy regularisation).
        ac_weight_real / ac_weight_fake: auxiliary CE weights on real (critic) and generated (generator) data.
        ema_decay: decay of the generator EMA used for every sample (warmed up as min(d, (1+t)/(10+t))).
        amp: bf16 autocast (ignored where only fp16 exists); the penalty always runs in fp32.
    """
    steps: int = 100_000
    batch_size: int = 64
    n_critic: int = 5
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    loss: str = "wgan"
    penalty: str = "gp"
    gp_weight: float = 10.0
    gp_every: int = 1
    ac_weight_real: float = 1.0
    ac_weight_fake: float = 0.1
    ema_decay: float = 0.999
    amp: bool = True
    channels_last: bool = True
    seed: int = 0
    ckpt_every: int = 1000
    sample_every: int = 1000
    log_every: int = 25
    grid_columns: int = 10


TRAIN_PRESETS = Registry("GAN preset", {
    "cifar": dict(steps=100_000, n_critic=5, batch_size=64, ema_decay=0.999),
    "small": dict(steps=2600, n_critic=2, batch_size=64, lr_g=4e-4, lr_d=4e-4, gp_every=4, ac_weight_real=1.0,
                  ac_weight_fake=1.0, ema_decay=0.995, ckpt_every=500, sample_every=300),
})
PRESETS = sorted(set(MODEL_PRESETS) & set(TRAIN_PRESETS))


def preset_configs(preset: str, **train_overrides) -> tuple[GANConfig, TrainConfig]:
    """Model and training configs of a preset; ``None`` overrides are ignored (CLI defaults)."""
    kw = {**TRAIN_PRESETS.lookup(preset), **{k: v for k, v in train_overrides.items() if v is not None}}
    return model_config(preset), TrainConfig(**kw)


# ----------------------------------------------------------------------------- one step each

def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every floating-point parameter (buffers untouched)."""
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm.detach(), 1.0 - decay)


def _average_grads(model: nn.Module) -> None:
    """Average gradients over ranks (no DDP wrapper: it cannot all-reduce the penalty's double backward)."""
    info = runtime.dist_info()
    if info.enabled:
        for p in model.parameters():
            if p.grad is not None:
                runtime.all_reduce_sum(p.grad).div_(info.world_size)


class GANTrainer:
    """Generator, critic, their EMA/optimizers/schedulers, and the two update steps."""

    def __init__(self, mcfg: GANConfig, cfg: TrainConfig, device: torch.device):
        self.mcfg, self.cfg, self.device = mcfg, cfg, device
        self.amp = cfg.amp and runtime.autocast_dtype(device) == torch.bfloat16
        self.fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = Generator(mcfg).to(device, memory_format=self.fmt)
        self.D = Critic(mcfg).to(device, memory_format=self.fmt)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas)
        decay = lambda s: max(0.0, 1.0 - s / cfg.steps)   # linear to 0 over the run
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, decay)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, decay)
        self.adv, self.pen = adversarial_loss(cfg.loss), penalty(cfg.penalty)
        self.step, self.batches_seen, self.critic_steps, self.seconds = 0, 0, 0, 0.0

    def _fake(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.mcfg.z_dim, device=self.device)
        y = torch.randint(self.mcfg.num_classes, (n,), device=self.device)
        return z, y

    def _critic(self, x: torch.Tensor):
        return self.D(x.contiguous(memory_format=self.fmt))

    def critic_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One critic update on real x [B, C, H, W] in [0, 1], y [B]; returns detached statistics."""
        cfg = self.cfg
        z, yf = self._fake(x.shape[0])
        with torch.no_grad(), runtime.autocast(self.device, self.amp):
            fake = self.G(z, yf)                                            # [B, C, H, W] in [0, 1]
        with runtime.autocast(self.device, self.amp):
            real_out, fake_out = self._critic(x), self._critic(fake)
            adv = self.adv.critic(real_out.score, fake_out.score)
            ac_real = aux_class_loss(real_out.class_logits, y)
        loss = adv + cfg.ac_weight_real * ac_real
        pen = None
        if cfg.penalty != "none" and self.critic_steps % cfg.gp_every == 0:
            pen = self.pen(lambda t: self._critic(t).score, x, fake)        # fp32, outside autocast
            loss = loss + cfg.gp_weight * cfg.gp_every * pen
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        _average_grads(self.D)
        self.opt_d.step()
        self.critic_steps += 1
        stats = {"loss/d": loss.detach(), "loss/ac_real": ac_real.detach(),
                 "acc/ac_real": (real_out.class_logits.argmax(1) == y).float().mean(),
                 "wasserstein": (real_out.score.mean() - fake_out.score.mean()).detach()}
        if pen is not None:
            stats["loss/gp"] = pen.detach()
        return stats

    def generator_step(self, batch_size: int) -> dict[str, torch.Tensor]:
        """One generator update (critic frozen), then the EMA update and the lr schedules."""
        cfg = self.cfg
        z, yf = self._fake(batch_size)
        self.D.requires_grad_(False)
        with runtime.autocast(self.device, self.amp):
            out = self._critic(self.G(z, yf))
            adv = self.adv.generator(out.score)
            ac_fake = aux_class_loss(out.class_logits, yf)
        loss = adv + cfg.ac_weight_fake * ac_fake
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.D.requires_grad_(True)
        _average_grads(self.G)
        self.opt_g.step()
        self.step += 1
        ema_update(self.ema, self.G, min(cfg.ema_decay, (1 + self.step) / (10 + self.step)))
        self.sched_g.step()
        self.sched_d.step()
        return {"loss/g": loss.detach(), "loss/ac_fake": ac_fake.detach()}

    # ------------------------------------------------------------------------- checkpoint state

    def state_dict(self, dataset: ImageDataset) -> dict:
        recalibrate_bn(self.ema, seed=self.cfg.seed)
        return {"kind": "gan", "version": runs.PROJECT_VERSION,
                "config": {"model": asdict(self.mcfg), "train": asdict(self.cfg)},
                "generator": self.G.state_dict(), "critic": self.D.state_dict(), "ema": self.ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
                "step": self.step, "batches_seen": self.batches_seen, "critic_steps": self.critic_steps,
                "seconds": self.seconds, "rng": runtime.rng_state(),
                "dataset": dataset.name, "num_classes": dataset.num_classes, "classes": list(dataset.classes),
                "image_size": dataset.image_size, "channels": dataset.channels}

    def load_state_dict(self, ckpt: dict) -> None:
        for name in ("G", "D", "ema"):
            getattr(self, name).load_state_dict(ckpt[{"G": "generator", "D": "critic", "ema": "ema"}[name]])
        for name in ("opt_g", "opt_d", "sched_g", "sched_d"):
            getattr(self, name).load_state_dict(ckpt[name])
        self.step, self.batches_seen = ckpt["step"], ckpt["batches_seen"]
        self.critic_steps, self.seconds = ckpt["critic_steps"], ckpt["seconds"]
        runtime.set_rng_state(ckpt["rng"])


# ----------------------------------------------------------------------------- the loop

def train_gan(dataset: ImageDataset, out: str | Path, *, model_cfg: GANConfig, cfg: TrainConfig,
              device: torch.device, resume: bool = False, progress: bool = True,
              stop_at: int | None = None, extend_to: int | None = None) -> dict:
    """Train an AC-GAN on ``dataset`` into the run directory ``out``; returns a summary dict.

    Args:
        model_cfg: architecture (class count and channels are taken from the data set).
        cfg: hyperparameters. With ``resume`` both configs come from ``out/checkpoint.pt`` (``model_cfg``
            and ``cfg`` are ignored) and the run continues bit-exactly where it stopped.
        stop_at: stop after this generator step (checkpointed) as if interrupted; None runs to the end.
        extend_to: with ``resume``, a new total step count (the lr decay stretches to it).
    """
    out, info = Path(out), runtime.dist_info()
    if info.is_main:
        runs.prepare_run_dir(out, resume=resume)
    runtime.barrier()
    trainer = _make_trainer(dataset, out, model_cfg, cfg, device, resume, extend_to)
    cfg, end = trainer.cfg, min(trainer.cfg.steps, stop_at or trainer.cfg.steps)
    if info.is_main:
        runs.write_json(out / "config.json", {"kind": "gan", "dataset": dataset.name, "version": runs.PROJECT_VERSION,
                                              "model": asdict(trainer.mcfg), "train": asdict(cfg)})
    rank_batch = runtime.per_rank_batch(cfg.batch_size)         # --batch-size is the global batch
    loader = DeviceLoader(dataset.train.images, dataset.train.labels, batch_size=rank_batch, device=device,
                          shuffle=True, seed=cfg.seed, rank=info.rank, world_size=info.world_size, drop_last=True)
    stream, writer = _batches(loader, trainer.batches_seen), runs.make_writer(out, enabled=info.is_main)
    pbar = tqdm(total=cfg.steps, initial=trainer.step, unit="step", desc="train-gan", dynamic_ncols=True,
                disable=not (progress and info.is_main))
    stats: dict[str, list] = {}
    tick = time.perf_counter()
    with runtime.GracefulStop() as stop, contextlib.closing(writer), contextlib.closing(pbar):
        while trainer.step < end:
            for _ in range(cfg.n_critic):
                trainer.batches_seen += 1
                _collect(stats, trainer.critic_step(*next(stream)))
            _collect(stats, trainer.generator_step(rank_batch))
            pbar.update(1)
            step = trainer.step
            if step % cfg.log_every == 0 or step == end:
                pbar.set_postfix(_flush(stats, writer, step), refresh=False)
            if info.is_main and (step % cfg.sample_every == 0 or step == end):
                _write_grid(trainer, out, writer, dataset.classes)
            interrupted = stop.should_stop(device)
            if step % cfg.ckpt_every == 0 or step == end or interrupted:
                trainer.seconds += time.perf_counter() - tick
                tick = time.perf_counter()
                _save(trainer, dataset, out, final=step == cfg.steps)
            if interrupted:
                raise runtime.Interrupted(f"{stop.signal_name}: stopped at step {step}/{cfg.steps}; checkpoint "
                                          f"saved in {out}. Resume with: python cli.py train-gan --out {out} --resume")
    return _summary(trainer, dataset, out)


def _make_trainer(dataset: ImageDataset, out: Path, model_cfg: GANConfig, cfg: TrainConfig,
                  device: torch.device, resume: bool, extend_to: int | None = None) -> GANTrainer:
    info = runtime.dist_info()
    if not resume:
        runtime.seed_everything(cfg.seed)
        mcfg = replace(model_cfg, num_classes=dataset.num_classes, out_channels=dataset.channels)
        trainer = GANTrainer(mcfg, cfg, device)      # same initial weights on every rank
    else:
        ckpt = runs.load_checkpoint(out, kind="gan")
        check_compatible(ckpt, num_classes=dataset.num_classes, channels=dataset.channels,
                         image_size=dataset.image_size, dataset=dataset.name, path=out)
        saved = TrainConfig(**ckpt["config"]["train"])
        trainer = GANTrainer(GANConfig.from_dict(ckpt["config"]["model"]),
                             replace(saved, steps=max(extend_to or 0, saved.steps)), device)
        trainer.load_state_dict(ckpt)
    if info.enabled:                                 # different z and labels per rank
        torch.manual_seed(trainer.cfg.seed + 7919 * info.rank + 104_729 * trainer.step)
    return trainer


def _batches(loader: DeviceLoader, start: int):
    """Endless (x, y) batches, starting at global batch index ``start`` (exact mid-epoch resume)."""
    epoch, b = divmod(start, len(loader))
    while True:
        loader.set_epoch(epoch)
        yield from loader.batches(start=b)
        epoch, b = epoch + 1, 0


def _collect(stats: dict[str, list], new: dict[str, torch.Tensor]) -> None:
    for k, v in new.items():
        stats.setdefault(k, []).append(v)


def _flush(stats: dict[str, list], writer, step: int) -> dict[str, str]:
    """Mean of each statistic since the last flush -> TensorBoard; returns a short progress-bar postfix."""
    means = {k: torch.stack(v).float().mean().item() for k, v in stats.items()}
    stats.clear()
    for k, v in means.items():
        writer.add_scalar(k, v, step)
    return {k.split("/")[-1]: f"{means[k]:.3g}" for k in ("loss/d", "loss/g", "wasserstein", "acc/ac_real")
            if k in means}


def _write_grid(trainer: GANTrainer, out: Path, writer, classes: list[str]) -> None:
    """Class-conditional samples of the EMA generator from fixed noise: rows = classes."""
    recalibrate_bn(trainer.ema, seed=trainer.cfg.seed)
    grid = save_sample_grid(trainer.ema, out / "samples" / f"step_{trainer.step:06d}.png", classes=classes,
                            columns=trainer.cfg.grid_columns, seed=trainer.cfg.seed + 1)
    writer.add_image("samples", grid, trainer.step)


def _save(trainer: GANTrainer, dataset: ImageDataset, out: Path, *, final: bool) -> None:
    if not runtime.dist_info().is_main:
        return
    state = trainer.state_dict(dataset)
    runs.atomic_save(state, out / runs.CHECKPOINT_NAME)
    if final:
        runs.atomic_save(state, out / "final.pt")
    tqdm.write(f"step {trainer.step}/{trainer.cfg.steps}: checkpoint saved ({trainer.seconds:.0f} s of training)")


def _summary(trainer: GANTrainer, dataset: ImageDataset, out: Path) -> dict:
    cfg = trainer.cfg
    images = trainer.batches_seen * cfg.batch_size
    summary = {"dataset": dataset.name, "gan_steps": trainer.step, "gan_preset_steps": cfg.steps,
               "train_seconds": round(trainer.seconds, 2),
               "images_per_second": round(images / max(trainer.seconds, 1e-9), 2)}
    if runtime.dist_info().is_main:
        runs.update_metrics(out, {"kind": "gan", "train": summary})
    return summary
