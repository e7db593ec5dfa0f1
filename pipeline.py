"""Orchestration between the CLI and the library: one function per command, no option parsing.

``cli.py`` parses options and calls these; the reproduce/demo drivers call them too.
"""
from __future__ import annotations

import inspect
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import runs
import runtime
from augment import Augmenter, augmenter_class
from classifier import TrainConfig, accuracy, build_classifier, fit, load_classifier
from data import ImageDataset, Split, load_dataset


class ConfigError(ValueError):
    """Options that do not fit together (one line, for the user)."""


@dataclass
class ClassifierRun:
    """Everything that defines a classifier training run (stored in config.json and the checkpoint)."""
    dataset: str = "cifar100"
    data_dir: str = "datasets"
    arch: str = "densenet-bc-100-12"
    augment: str = "none"
    augment_kw: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    memory_efficient: bool = False    # recompute the bottlenecks in backward (less memory, more time)


def train_classifier(run: ClassifierRun, out: str | Path, *, device: str = "auto", resume: bool = False) -> dict:
    """Train (or resume) a classifier run into ``out``; returns its metrics."""
    dev = runtime.pick_device(device)
    runtime.init_distributed(dev)
    history = []
    if resume:  # the checkpoint's settings win: nothing needs repeating on the command line
        saved = runs.resume_checkpoint(out, kind="classifier")
        run = ClassifierRun(**{**saved["config"]["run"], "train": TrainConfig(**saved["config"]["train"]),
                               "data_dir": run.data_dir})
        history = saved["history"]
    _check_global_batch(run.train.batch_size)
    ds = load_dataset(run.dataset, run.data_dir)
    aug = make_augmenter(run.augment, run.augment_kw, ds)
    run.augment_kw = {k: v for k, v in run.augment_kw.items() if v is not None}
    runs_cfg = {"run": {k: v for k, v in asdict(run).items() if k != "train"}, "train": asdict(run.train)}
    out = runs.prepare_run_dir(out, resume=resume, config=runs_cfg) if runtime.dist_info().is_main else Path(out)
    runtime.seed_everything(run.train.seed)
    mean, std = ds.channel_stats()
    model = build_classifier(run.arch, num_classes=ds.num_classes, in_channels=ds.channels,
                             mean=mean, std=std, memory_efficient=run.memory_efficient).to(dev)
    _say(f"training {run.arch} on {run.dataset} ({len(ds.train)} train / {len(ds.test)} test, "
         f"{ds.num_classes} classes) with augment={run.augment} on {dev} -> {out}")
    return fit(model, ds, cfg=run.train, out=out, device=dev, augmenter=aug, resume=resume,
               epoch_hooks=overfit_hooks(aug, ds, dev, history), extra_config={"run": runs_cfg["run"], "arch": run.arch})


def _check_global_batch(batch_size: int) -> None:
    try:
        runtime.per_rank_batch(batch_size, "--batch-size")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def train_gan_run(out: str | Path, *, dataset: str | None = None, data_dir: str = "datasets",
                  preset: str = "cifar", device: str = "auto", resume: bool = False, **overrides) -> dict:
    """Train (or resume) an AC-GAN run into ``out`` from a preset plus overrides (None = preset's).

    With ``resume`` the checkpoint's settings and data set win; only an explicit ``steps`` extends it.
    """
    from gan import preset_configs, train_gan
    dev = runtime.pick_device(device)
    runtime.init_distributed(dev)
    if dataset is None:
        dataset = runs.resume_checkpoint(out, kind="gan")["dataset"] if resume else "cifar100"
    model_cfg, cfg = preset_configs(preset, **overrides)
    _check_global_batch(cfg.batch_size)
    ds = load_dataset(dataset, data_dir)
    if cfg.batch_size > len(ds.train):      # whole batches only: not even one would exist
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the {len(ds.train)} training images "
                          f"of {dataset}")
    summary = train_gan(ds, out, model_cfg=model_cfg, cfg=cfg, device=dev,
                        resume=resume, extend_to=overrides.get("steps") if resume else None)
    return {**summary, "dataset": dataset}


def make_augmenter(name: str, options: dict, ds: ImageDataset) -> Augmenter:
    """Build augmenter ``name`` from the options the user gave (None = not given).

    An option the augmenter does not take is an error, not silently ignored; ``eps`` defaults to the
    data set's threat model. Invalid values (eps <= 0, ratio outside [0, 1], ...) raise ConfigError.
    """
    try:
        cls = augmenter_class(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    accepted = inspect.signature(cls.__init__).parameters
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(k for k in given if k not in accepted)
    if wrong:
        raise ConfigError(f"option{'s' if len(wrong) > 1 else ''} {', '.join(wrong)} not used by --augment {name} "
                          f"(it takes: {', '.join(p for p in accepted if p != 'self') or 'nothing'})")
    if "eps" in accepted and "eps" not in given:
        given["eps"] = ds.default_eps
    if "gan" in accepted:
        if "gan" not in given:
            raise ConfigError(f"--augment {name} needs --gan RUN (a trained AC-GAN run or checkpoint)")
        given["gan"] = load_compatible_gan(given["gan"], ds, runtime.pick_device("cpu"))
    try:
        return cls(**given)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--augment {name}: {e}") from None


def overfit_hooks(aug: Augmenter, ds: ImageDataset, device, history: list) -> list:
    """The catastrophic-overfitting probe for adversarial training: PGD-5 on one held-out test batch
    every epoch, warning when robust accuracy collapses (seeded with the history of a resumed run)."""
    if not hasattr(aug, "eps"):
        return []
    from evaluate import OverfitGuard
    guard = OverfitGuard(ds.test.images[:256], ds.test.labels[:256], eps=aug.eps, device=device)
    guard.history = [(r["probe_clean_acc"], r["probe_pgd_acc"]) for r in history if "probe_pgd_acc" in r]
    return [guard]


@dataclass
class EvalSettings:
    """How ``evaluate`` attacks a model (recorded in metrics.json)."""
    eps: float | None = None          # None: the data set's threat model
    pgd_steps: int = 20
    restarts: int = 1
    losses: tuple[str, ...] = ("ce", "cw")
    subset: int | None = None         # first N test images for the attacks (None: the whole split)
    attacks: bool = True
    gan: str | None = None            # GAN run/checkpoint: sample accuracy, FID/IS (classifier features)
    gan_samples: int = 1000
    unrestricted_samples: int = 200   # latent searches against the model (with --gan)
    latent_steps: int = 200           # search steps per sample (early stop on success)
    seed: int = 0
    batch_size: int = 500


def evaluate_classifier(checkpoint: str | Path, settings: EvalSettings = EvalSettings(), *,
                        data_dir: str = "datasets", dataset: str | None = None, device: str = "auto",
                        write: bool = True) -> dict:
    """Evaluate a trained classifier; merged into the run's metrics.json when ``write``.

    ``clean_acc`` is on the whole test split with the precision the run was trained (and evaluated each
    epoch) with, so it reproduces the accuracy the training logged. The attacks (fp32, eval mode) run on
    ``settings.subset`` test images and keep the worst case per sample over FGSM, every PGD loss and
    restart, so ``pgd_acc <= fgsm_acc <= attack_clean_acc`` on that subset.
    """
    t0 = time.perf_counter()
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(checkpoint, dev)
    ds = load_dataset(dataset or ckpt["dataset"], data_dir)
    check_compatible(ds, ckpt, what="classifier checkpoint")
    result = {"dataset": ds.name, "clean_acc": _clean_accuracy(model, ds, ckpt, dev, settings.batch_size),
              "eval_settings": asdict(settings)}
    if settings.attacks:
        result.update(_attack_metrics(model, ds, settings, dev))
    if settings.gan:
        result.update(_gan_metrics(model, ds, settings, dev))
    result["eval_seconds"] = round(time.perf_counter() - t0, 2)
    if write:
        run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
        runs.update_metrics(run_dir, result)
    return result


def _clean_accuracy(model, ds: ImageDataset, ckpt: dict, dev, batch_size: int) -> float:
    train_cfg = ckpt["config"].get("train", {})
    amp, channels_last = train_cfg.get("amp", False), train_cfg.get("channels_last", False)
    model = model.to(memory_format=torch.channels_last) if channels_last else model
    acc = accuracy(model, ds.test, device=dev, batch_size=batch_size, amp=amp, channels_last=channels_last)
    model.to(memory_format=torch.contiguous_format)
    return acc


def _attack_metrics(model, ds: ImageDataset, s: EvalSettings, dev) -> dict:
    from evaluate import robust_accuracy
    n = len(ds.test) if s.subset is None else min(s.subset, len(ds.test))
    r = robust_accuracy(model, ds.test.images[:n], ds.test.labels[:n], eps=s.eps or ds.default_eps,
                        pgd_steps=s.pgd_steps, restarts=s.restarts, losses=tuple(s.losses),
                        batch_size=min(s.batch_size, 256), device=dev, seed=s.seed)
    r["attack_clean_acc"] = r.pop("clean_acc")
    return r


def load_compatible_gan(path, ds: ImageDataset, dev):
    """Load a GAN run/checkpoint and check it was trained on this data set's classes and image shape."""
    from gan import check_compatible as gan_compatible, load_gan
    loaded = load_gan(path, dev)
    gan_compatible(loaded.info, num_classes=ds.num_classes, channels=ds.channels, image_size=ds.image_size,
                   dataset=ds.name, path=path)
    return loaded


def _gan_metrics(model, ds: ImageDataset, s: EvalSettings, dev) -> dict:
    from gan import gan_metrics
    loaded = load_compatible_gan(s.gan, ds, dev)
    result = gan_metrics(loaded.generator, loaded.critic, model, ds.test, n_samples=s.gan_samples,
                         batch_size=256, seed=s.seed, device=dev, feature_net=f"{ds.name} classifier under test")
    return {**result, **unrestricted_metrics(model, loaded, s, dev)}


def balanced_search(model, loaded, n: int, *, steps: int, seed: int, device, batch_size: int | None = None):
    """Latent searches against ``model`` for ``n`` class-balanced source labels (0, 1, ..., K-1, 0, ...),
    z0 drawn from a generator seeded with ``seed``, ``batch_size`` samples at a time (None: all at once).
    Returns ``(labels [n], SearchResult)``."""
    from augment.latent_search import SearchResult, unrestricted_search
    labels = (torch.arange(n) % loaded.info["num_classes"]).to(device)
    rng = torch.Generator(device=device).manual_seed(seed)
    parts = [unrestricted_search(loaded.generator, loaded.critic, model, y, steps=steps, generator_rng=rng)
             for y in labels.split(batch_size or n)]
    return labels, SearchResult(*(None if f[0] is None else torch.cat(f) for f in zip(*parts)))


def unrestricted_metrics(model, loaded, s: EvalSettings, dev) -> dict:
    """Song et al.'s latent search against ``model`` on ``s.unrestricted_samples`` class-balanced
    samples: success = classifier fooled while the AC head still says the source class."""
    labels, res = balanced_search(model, loaded, s.unrestricted_samples, steps=s.latent_steps, seed=s.seed,
                                  device=dev)
    ok = res.success
    return {"unrestricted_success_rate": ok.float().mean().item(),
            "unrestricted_mean_steps": res.steps_taken[ok].float().mean().item() if ok.any() else None,
            "unrestricted_acc": (res.pred == labels).float().mean().item(),   # on the returned examples
            "unrestricted_samples": len(labels), "unrestricted_latent_steps": s.latent_steps}


def attack_grid(kind: str, classifier_run: str | Path, out: str | Path, *, data_dir: str = "datasets",
                eps: float | None = None, rows: int = 8, device: str = "auto", seed: int = 0,
                scale: int = 3, pgd_steps: int = 20) -> Path:
    """PNG of ``rows`` test images: clean | adversarial (``kind`` = fgsm or pgd) | amplified perturbation,
    captioned with the true class and the classifier's predictions."""
    from augment.attacks import fgsm, pgd, predict
    from grids import amplify, save_comparison_grid
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(classifier_run, dev)
    ds = load_dataset(ckpt["dataset"], data_dir)
    eps = eps or ds.default_eps
    gen = torch.Generator(device=dev).manual_seed(seed)
    x, y = ds.test.images[:rows].to(dev).float().div(255), ds.test.labels[:rows].to(dev)
    if kind == "fgsm":
        x_adv = fgsm(model, x, y, eps=eps, random_start=False)
    else:
        x_adv = pgd(model, x, y, eps=eps, steps=pgd_steps, generator=gen)
    p_clean, p_adv = predict(model, x), predict(model, x_adv)
    name = lambda i: ds.classes[int(i)][:12]
    captions = [[f"{name(t)}: {name(p)}" for t, p in zip(y, p_clean)], [f"pred {name(p)}" for p in p_adv],
                [f"x{1 / (2 * eps):.0f}" for _ in y]]
    save_comparison_grid([x, x_adv, amplify(x_adv - x, eps)], out, scale=scale, captions=captions,
                         col_labels=["true: pred", f"{kind.upper()} {eps:.3g}", "delta"])
    return Path(out)


def unrestricted_grid(classifier_run: str | Path, gan_run: str | Path, out: str | Path, *,
                      data_dir: str = "datasets", rows: int = 8, latent_steps: int = 200, device: str = "auto",
                      seed: int = 0, scale: int = 3) -> Path:
    """PNG: start G(z0, y) | found G(z*, y) | amplified difference, one row per class-balanced sample,
    captioned with the classifier's prediction and the AC head's class."""
    from augment.attacks import predict
    from grids import amplify, save_comparison_grid
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(classifier_run, dev)
    ds = load_dataset(ckpt["dataset"], data_dir)
    loaded = load_compatible_gan(gan_run, ds, dev)
    labels, res = balanced_search(model, loaded, rows, steps=latent_steps, seed=seed, device=dev)
    name = lambda i: ds.classes[int(i)][:12]
    diff = (res.x - res.x0).abs().amax().item()
    captions = [[f"{name(y)}: {name(p)}" for y, p in zip(labels, predict(model, res.x0))],
                [f"{name(p)} / AC {name(a)}" + ("" if ok else " (fail)")
                 for p, a, ok in zip(res.pred, res.ac_pred, res.success)],
                [f"+-{diff:.2f}" for _ in labels]]
    save_comparison_grid([res.x0, res.x, amplify(res.x - res.x0, diff)], out, scale=scale, captions=captions,
                         col_labels=["start y: pred", "found: pred/AC", "difference"], font_size=10)
    return Path(out)


def find_unrestricted_set(classifier_run: str | Path, gan_run: str | Path, out: str | Path, *, n: int,
                          latent_steps: int = 200, data_dir: str = "datasets", device: str = "auto",
                          seed: int = 12_345, batch_size: int = 250) -> dict:
    """Search ``n`` class-balanced unrestricted examples against ``classifier_run`` and save the ones that
    succeeded (fooling it while the AC head keeps the class) to ``out``: a file of kind "unrestricted-set"
    with uint8 ``images`` (quantised as stored data is) and ``labels``.

    The RNG seed is separate from any training pool's, so the set is held out from what the unrestricted
    augmenter saw. Returns ``{"images", "labels", "searched", "found"}``."""
    t0 = time.perf_counter()
    dev = runtime.pick_device(device)
    model, ckpt = load_classifier(classifier_run, dev)
    ds = load_dataset(ckpt["dataset"], data_dir)
    loaded = load_compatible_gan(gan_run, ds, dev)
    labels, res = balanced_search(model, loaded, n, steps=latent_steps, seed=seed, device=dev,
                                  batch_size=batch_size)
    x = res.x[res.success].mul(255).round().to(torch.uint8).cpu()     # stored as images are: uint8
    found = {"kind": "unrestricted-set", "version": runs.PROJECT_VERSION,
             "config": {"classifier": str(classifier_run), "gan": str(gan_run), "latent_steps": latent_steps,
                        "seed": seed}, "images": x, "labels": labels[res.success].cpu(), "searched": n,
             "found": len(x), "seconds": round(time.perf_counter() - t0, 2)}
    runs.atomic_save(found, out)
    return found


def heldout_accuracy(classifier_run: str | Path, heldout: dict, device: str = "auto") -> float:
    """Accuracy of a classifier on a saved set of unrestricted examples (``find_unrestricted_set``)."""
    dev = runtime.pick_device(device)
    model, _ = load_classifier(classifier_run, dev)
    return accuracy(model, Split(heldout["images"], heldout["labels"]), device=dev, amp=False)


def check_compatible(ds: ImageDataset, ckpt: dict, *, what: str) -> None:
    """A checkpoint trained on other classes or another image shape cannot be used with ``ds``."""
    if ckpt["num_classes"] != ds.num_classes:
        raise runs.CheckpointError(f"the {what} has {ckpt['num_classes']} classes but {ds.name} has "
                                   f"{ds.num_classes}")
    cfg = ckpt["config"].get("model", {})
    if cfg.get("in_channels", ds.channels) != ds.channels:
        raise runs.CheckpointError(f"the {what} takes {cfg['in_channels']}-channel images but {ds.name} "
                                   f"has {ds.channels}")


def _say(msg: str) -> None:
    if runtime.dist_info().is_main:
        print(msg, file=sys.stderr, flush=True)

