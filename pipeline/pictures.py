"""Pictures: every kind of labelled grid the ``grid`` command and the suites draw, in one registry.

- ``samples``: class-conditional AC-GAN samples (rows = classes);
- ``fgsm`` / ``pgd``: test images | adversarial versions | amplified perturbation, true and predicted classes;
- ``unrestricted``: start G(z0, y) | found G(z*, y) | difference (each row on its own scale), captioned with
  the classifier's prediction and the validity judge's; with ``target="all"`` one found image per target class.

Example::

    draw_grid("pgd", out="pgd.png", classifier="runs/d-pgd")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import runtime
from attacks import fgsm, pgd, predict
from classifier import load_classifier
from data import load_dataset
from gan import load_gan, save_sample_grid
from grids import amplify, save_comparison_grid
from registry import Registry

from .common import ConfigError, load_compatible_gan
from .unrestricted import balanced_search, load_judge

@dataclass
class GridOptions:
    """What a grid is drawn from and how (every kind takes what it needs and checks it has it)."""
    classifier: str | None = None      # classifier run or checkpoint (attack kinds)
    gan: str | None = None             # AC-GAN run or checkpoint (samples, unrestricted)
    data_dir: str = "datasets"
    eps: float | None = None           # None: the data set's threat model
    rows: int = 8                      # examples (fgsm, pgd, unrestricted)
    columns: int = 10                  # samples per class (samples)
    pgd_steps: int = 20
    search: str = "fast"               # unrestricted: the latent search setting (attacks.SEARCHES)
    search_steps: int | None = None    # unrestricted: None = the setting's steps
    eps_pix: float = 0.0               # unrestricted: pixel noise (0: pure latent)
    target: int | str | None = None    # unrestricted: None, a target class, or "all"
    judge: str | None = None           # unrestricted: classifier run that judges validity (captions)
    truncation: float | None = None    # samples: resample latent entries beyond this magnitude
    scale: int = 3                     # integer upscaling of each image
    device: str = "auto"
    seed: int = 0


GRID_KINDS = Registry("grid kind", error=ConfigError)


def draw_grid(kind: str, out: str | Path, options: GridOptions = GridOptions()) -> Path:
    """Draw grid ``kind`` (see ``GRID_KINDS``) into the PNG ``out``; returns its path."""
    return GRID_KINDS.lookup(kind)(Path(out), options)


def _need(options: GridOptions, kind: str, *what: str) -> None:
    missing = [w for w in what if getattr(options, w) is None]
    if missing:
        flags = " and ".join(f"--{w} RUN" for w in missing)
        raise ConfigError(f"--kind {kind} needs {flags} (a {' and '.join(missing)} run directory or checkpoint)")


@GRID_KINDS.register("samples")
def samples_grid(out: Path, o: GridOptions) -> Path:
    """Rows = classes (named), columns = samples of the EMA generator from fixed noise."""
    _need(o, "samples", "gan")
    loaded = load_gan(o.gan, runtime.pick_device(o.device))
    save_sample_grid(loaded.generator, out, classes=loaded.info.get("classes"), columns=o.columns, seed=o.seed,
                     truncation=o.truncation, scale=o.scale)
    return out


@GRID_KINDS.register("fgsm")
def fgsm_grid(out: Path, o: GridOptions) -> Path:
    """Test images, their zero-start FGSM versions and the perturbation, with true/predicted classes."""
    return attack_grid("fgsm", out, o)


@GRID_KINDS.register("pgd")
def pgd_grid(out: Path, o: GridOptions) -> Path:
    """Test images, their PGD versions and the perturbation, with true/predicted classes."""
    return attack_grid("pgd", out, o)


def attack_grid(kind: str, out: Path, o: GridOptions) -> Path:
    """PNG of ``o.rows`` test images: clean | adversarial (``kind`` = fgsm or pgd) | amplified perturbation,
    captioned with the true class and the classifier's predictions."""
    _need(o, kind, "classifier")
    dev = runtime.pick_device(o.device)
    model, ckpt = load_classifier(o.classifier, dev)
    ds = load_dataset(ckpt["dataset"], o.data_dir)
    eps = o.eps or ds.default_eps
    gen = torch.Generator(device=dev).manual_seed(o.seed)
    x, y = ds.test.images[:o.rows].to(dev).float().div(255), ds.test.labels[:o.rows].to(dev)
    if kind == "fgsm":
        x_adv = fgsm(model, x, y, eps=eps, random_start=False)
    else:
        x_adv = pgd(model, x, y, eps=eps, steps=o.pgd_steps, generator=gen)
    p_clean, p_adv = predict(model, x), predict(model, x_adv)
    name = lambda i: ds.classes[int(i)][:12]
    captions = [[f"{name(t)}: {name(p)}" for t, p in zip(y, p_clean)], [f"pred {name(p)}" for p in p_adv],
                [f"x{1 / (2 * eps):.0f}" for _ in y]]
    save_comparison_grid([x, x_adv, amplify(x_adv - x, eps)], out, scale=o.scale, captions=captions,
                         col_labels=["true: pred", f"{kind.upper()} {eps:.3g}", "delta"])
    return out


@GRID_KINDS.register("unrestricted")
def unrestricted_grid(out: Path, o: GridOptions) -> Path:
    """PNG of latent searches against the classifier, one row per class-balanced source sample: start
    G(z0, y) | found | difference (amplified, each row on its own scale), or with ``target="all"`` start | one
    found image per target class. Captions: the classifier's prediction and, with a judge, the judge's class
    (``ok``: a valid success; ``x``: the search failed)."""
    _need(o, "unrestricted", "classifier", "gan")
    dev = runtime.pick_device(o.device)
    model, ckpt = load_classifier(o.classifier, dev)
    ds = load_dataset(ckpt["dataset"], o.data_dir)
    loaded = load_compatible_gan(o.gan, ds, dev)
    judge = load_judge(o.judge, ds, dev, searched=o.classifier)
    run = balanced_search(model, loaded, o.rows, search=o.search, steps=o.search_steps, eps_pix=o.eps_pix,
                          target=o.target, seed=o.seed, device=dev, progress=True)
    r, name = run.result, lambda i: ds.classes[int(i)]
    verdict = predict(judge, r.x) if judge is not None else None

    def found(i: int) -> str:
        text = (f"-> {name(run.targets[i])}: " if run.targets is not None else "") + f"f {name(r.pred[i])}"
        if verdict is not None:
            text += f" | J {name(verdict[i])}"
        return text + ("" if r.success[i] else " x")
    if o.target == "all":
        k = ds.num_classes - 1
        columns = [r.x0[::k]] + [r.x[j::k] for j in range(k)]
        captions = [[f"{name(y)}: f {name(p)}" for y, p in zip(run.labels[::k], predict(model, r.x0[::k]))]]
        captions += [[found(i) for i in range(j, len(run.labels), k)] for j in range(k)]
        labels = ["start y: f"] + [f"target {j + 1}" for j in range(k)]
    else:
        radius = (r.x - r.x0).flatten(1).abs().amax(1)                             # [N]: each row's scale
        columns = [r.x0, r.x, amplify(r.x - r.x0, radius)]
        captions = [[f"{name(y)}: f {name(p)}" for y, p in zip(run.labels, predict(model, r.x0))],
                    [found(i) for i in range(len(run.labels))], [f"+-{v:.2f}" for v in radius.tolist()]]
        labels = ["start y: f", "found: f | judge", "difference"]
    save_comparison_grid(columns, out, scale=o.scale, captions=captions, col_labels=labels, font_size=10)
    return out
