"""Suites of runs: train the AC-GAN, one classifier per setting, evaluate all alike, write the report.

A suite is data (the dataclasses below); ``run_suite`` is idempotent: finished runs are skipped,
interrupted ones resumed, so re-running the same command after Ctrl-C continues where it stopped.

Example::

    run_suite(SUITES["demo"], "runs/demo")
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import runs
import runtime
from classifier import TrainConfig

from .claims import claims_json, claims_markdown, judge_claims, published_markdown
from .evaluate import EvalSettings, evaluate_classifier
from .pictures import GridOptions, draw_grid
from .report import collect, write_report
from .train import ClassifierRun, train_classifier, train_gan_run
from .unrestricted import find_unrestricted_set, heldout_accuracy


@dataclass
class Setting:
    """One classifier run of a suite."""
    name: str
    augment: str = "none"
    augment_kw: dict = field(default_factory=dict)
    epochs: int | None = None          # None: the suite's
    cost: float = 1.0                  # relative cost per epoch (for the time-left estimate)
    seed_offset: int = 0               # training seed = the suite's seed + this (evaluation: the suite's seed)


@dataclass(frozen=True)
class Anchor:
    """A published figure range (fractions) that a run's metric is compared with in the report."""
    run: str
    metric: str
    low: float
    high: float
    source: str


@dataclass
class Suite:
    name: str
    dataset: str
    arch: str
    train: TrainConfig
    settings: list[Setting]
    eval: EvalSettings
    gan_preset: str = "small"
    gan_steps: int | None = None       # None: the preset's default
    needs_gan: bool = True
    heldout_unrestricted: int = 0      # searches for a held-out set of unrestricted examples vs the first run
    heldout_steps: int = 200           # latent steps per held-out search
    claims: bool = False               # judge the research claims (claims.py) into the report
    anchors: tuple[Anchor, ...] = ()   # published figures to state the distance to

    def __post_init__(self):
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names) or GAN_DIR in names or "pictures" in names:
            raise ValueError(f"suite {self.name}: run names must be unique and not {GAN_DIR!r} or 'pictures'")


GAN_DIR = "acgan"                      # the suite's AC-GAN run, beside the classifier runs


def _settings(pgd_steps: int, replays: int, *, claims: bool = False) -> list[Setting]:
    """One classifier per augment mode. ``claims`` adds what the claims need beyond that: FGSM with a
    2 eps step (alpha 0.2 at eps 0.1), the setting known to overfit catastrophically (claim e), and a
    second training seed of clean training and of both FGSM settings: the seed-to-seed spread, an
    independent clean model for the held-out unrestricted set (found against the first), and whether an
    FGSM run collapses, which varies from seed to seed."""
    second = (lambda s: [s, replace(s, name=f"{s.name}-seed1", seed_offset=1)]) if claims else (lambda s: [s])
    return [
        *second(Setting("none")),
        *second(Setting("fgsm", "fgsm", cost=2)),                          # random start, step 1.25 eps
        *(second(Setting("fgsm-2eps", "fgsm", {"alpha": 0.2}, cost=2)) if claims else []),
        Setting("pgd", "pgd", {"steps": pgd_steps}, cost=pgd_steps + 1),
        Setting("free", "free", {"replays": replays}),
        Setting("gan", "gan", cost=1.5),
        Setting("unrestricted", "unrestricted", cost=3),
    ]


# Fashion-MNIST at eps 0.1 with small CNNs, as the issue quotes them
_FMNIST_SOURCE = "Croce, Andriushchenko & Hein 2019 (Table 1); Song, Shokri & Mittal 2019"
FASHION_MNIST_ANCHORS = (
    Anchor("none", "clean_acc", 0.905, 0.922, _FMNIST_SOURCE),
    Anchor("none", "pgd_acc", 0.0, 0.04, _FMNIST_SOURCE),
    Anchor("pgd", "clean_acc", 0.885, 0.909, _FMNIST_SOURCE),
    Anchor("pgd", "pgd_acc", 0.68, 0.785, _FMNIST_SOURCE),
)

SUITES: dict[str, Suite] = {
    # digits, end to end in minutes on 2 CPU cores: the README's quick demo
    "demo": Suite("demo", "digits", "densenet-bc-22-8",
                  TrainConfig(epochs=12, batch_size=64, lr=0.1, schedule="cosine"),
                  settings=_settings(pgd_steps=3, replays=4),
                  eval=EvalSettings(pgd_steps=10, restarts=1, gan_samples=500, unrestricted_samples=100,
                                    latent_steps=100)),
    # `reproduce`: the research claims on Fashion-MNIST (eps 0.1) within ~150 min on 2 CPU cores
    "fashion-mnist": Suite("fashion-mnist", "fashion-mnist", "densenet-bc-22-8",
                           TrainConfig(epochs=6, batch_size=128, lr=0.1, schedule="cosine"),
                           settings=_settings(pgd_steps=3, replays=4, claims=True),
                           eval=EvalSettings(pgd_steps=20, restarts=2, subset=1000, gan_samples=1000,
                                             unrestricted_samples=200, latent_steps=100),
                           gan_steps=6000, heldout_unrestricted=500, heldout_steps=100, claims=True,
                           anchors=FASHION_MNIST_ANCHORS),
    # `reproduce --full`: a longer, paper-like schedule for a GPU
    "fashion-mnist-full": Suite("fashion-mnist-full", "fashion-mnist", "densenet-bc-40-12",
                                TrainConfig(epochs=40, batch_size=128, lr=0.1, schedule="multistep"),
                                settings=_settings(pgd_steps=7, replays=8, claims=True),
                                eval=EvalSettings(pgd_steps=20, restarts=2, gan_samples=5000,
                                                  unrestricted_samples=1000, latent_steps=200),
                                gan_preset="cifar", gan_steps=20_000, heldout_unrestricted=2000,
                                heldout_steps=200, claims=True, anchors=FASHION_MNIST_ANCHORS),
}


def run_suite(suite: Suite, out: str | Path, *, data_dir: str = "datasets", device: str = "auto",
              seed: int = 0) -> dict:
    """Run every step of ``suite`` into ``out`` (skipping what is done); returns the report's paths.

    ``seed`` seeds the AC-GAN, every training run (plus its setting's offset), the evaluation and the
    held-out search."""
    suite = replace(suite, train=replace(suite.train, seed=seed), eval=replace(suite.eval, seed=seed))
    try:
        return _run_suite(suite, Path(out), data_dir, device)
    except runtime.Interrupted as e:             # the run's own hint, and the suite's
        raise runtime.Interrupted(f"{e}\nRun the same command again to resume the whole suite from there.") from None


def _run_suite(suite: Suite, out: Path, data_dir: str, device: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(out / "suite.json", asdict(suite))
    gan_dir = out / GAN_DIR
    if suite.needs_gan:
        _log(f"[gan] AC-GAN ({suite.gan_preset} preset) on {suite.dataset}")
        _train_gan(suite, gan_dir, data_dir, device)
    clock = _Clock(sum((s.epochs or suite.train.epochs) * s.cost for s in suite.settings))
    for i, s in enumerate(suite.settings, 1):
        run_dir = out / s.name
        _log(f"[run {i}/{len(suite.settings)}] {s.name} (augment={s.augment}); {clock.status()}")
        t0 = time.perf_counter()
        _train_setting(suite, s, run_dir, gan_dir, data_dir, device)
        _evaluate(suite, run_dir, gan_dir, data_dir, device)
        clock.done((s.epochs or suite.train.epochs) * s.cost, _run_seconds(run_dir, time.perf_counter() - t0))
    if suite.needs_gan and suite.heldout_unrestricted:
        _heldout(suite, out, gan_dir, data_dir, device)
    return _pictures_and_report(suite, out, gan_dir, data_dir, device)


HELDOUT = "heldout_unrestricted.pt"
HELDOUT_SEED = 12_345                  # apart from every training pool's and evaluation's RNG streams


def _heldout(suite: Suite, out: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    """Unrestricted examples found against the first (clean) run, then every run's accuracy on them."""
    path = out / HELDOUT
    if path.is_file():
        found = runs.load_checkpoint(path, kind="unrestricted-set")
    else:
        _log(f"[held-out] searching {suite.heldout_unrestricted} unrestricted examples against "
             f"{suite.settings[0].name}")
        found = find_unrestricted_set(out / suite.settings[0].name, gan_dir, path, n=suite.heldout_unrestricted,
                                      latent_steps=suite.heldout_steps, data_dir=data_dir, device=device,
                                      seed=HELDOUT_SEED + suite.train.seed)
    for s in suite.settings:
        if "heldout_unrestricted_acc" not in runs.read_json(out / s.name / "metrics.json"):
            runs.update_metrics(out / s.name, {
                "heldout_unrestricted_acc": heldout_accuracy(out / s.name, found, device),
                "heldout_unrestricted_found": found["found"], "heldout_unrestricted_searched": found["searched"],
                "heldout_unrestricted_search_seconds": found.get("seconds")})


def _train_gan(suite: Suite, gan_dir: Path, data_dir: str, device: str) -> None:
    train_gan_run(gan_dir, dataset=suite.dataset, data_dir=data_dir, preset=suite.gan_preset, device=device,
                  resume=(gan_dir / runs.CHECKPOINT_NAME).is_file(), steps=suite.gan_steps, seed=suite.train.seed)


def _train_setting(suite: Suite, s: Setting, run_dir: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    kw = dict(s.augment_kw)
    if s.augment in ("gan", "unrestricted"):
        kw["gan"] = str(gan_dir)
    run = ClassifierRun(dataset=suite.dataset, data_dir=data_dir, arch=suite.arch, augment=s.augment,
                        augment_kw=kw, train=replace(suite.train, epochs=s.epochs or suite.train.epochs,
                                                     seed=suite.train.seed + s.seed_offset))
    train_classifier(run, run_dir, device=device, resume=(run_dir / runs.CHECKPOINT_NAME).is_file())


def _evaluate(suite: Suite, run_dir: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    settings = replace(suite.eval, gan=str(gan_dir) if suite.needs_gan else None)
    done = runs.read_json(run_dir / "metrics.json").get("eval_settings")
    if done != _jsonable(asdict(settings)):
        evaluate_classifier(run_dir, settings, data_dir=data_dir, device=device)


def _pictures_and_report(suite: Suite, out: Path, gan_dir: Path, data_dir: str, device: str) -> dict:
    pictures = out / "pictures"
    options = GridOptions(classifier=str(out / suite.settings[0].name), gan=str(gan_dir) if suite.needs_gan else None,
                          data_dir=data_dir, device=device, seed=suite.train.seed)
    for kind in ("fgsm", "pgd"):
        draw_grid(kind, pictures / f"{kind}.png", options)
    if suite.needs_gan:
        draw_grid("samples", pictures / "samples.png", replace(options, scale=2, seed=suite.train.seed + 1))
        draw_grid("unrestricted", pictures / "unrestricted.png", options)
    rows = collect([out / s.name for s in suite.settings])
    by_run = {r["run"]: r for r in rows}
    extra = "\n## Settings\n\n" + settings_markdown(suite, out, by_run)
    if suite.claims:
        verdicts = judge_claims(by_run)
        runs.write_json(out / "claims.json", claims_json(verdicts))
        extra += "\n## The claims, judged from these numbers\n\n" + claims_markdown(verdicts) + "\n"
    if suite.anchors:
        extra += ("\n## Distance to published figures\n\n"
                  + published_markdown(by_run, suite.anchors) + "\n")
    paths = write_report(rows, out, title=_title(suite), extra_md=extra)
    _log(f"report: {paths['md']}  pictures: {pictures}")
    return paths


def _title(suite: Suite) -> str:
    """'fashion-mnist, densenet-bc-22-8' (the suite's name only where it is not the data set's)."""
    what = f"{suite.dataset}, {suite.arch}"
    return what if suite.name == suite.dataset else f"{suite.name}: {what}"


def settings_markdown(suite: Suite, out: Path, by_run: dict[str, dict]) -> str:
    """What the suite ran with, and how long each part took, as Markdown (for the report);
    ``by_run``: run name -> its metrics.json."""
    t, e = suite.train, suite.eval
    eps = next((r["epsilon"] for r in by_run.values() if r.get("epsilon") is not None), e.eps)
    lines = [f"- data set `{suite.dataset}`" + (f", L-inf eps {eps:.4g}" if eps is not None else "")
             + f"; seed {t.seed}",
             f"- classifier `{suite.arch}`: {t.epochs} epochs, batch {t.batch_size}, SGD lr {t.lr} "
             f"({t.schedule}), momentum {t.momentum}, weight decay {t.weight_decay}, "
             f"{'bf16 autocast' if t.amp else 'fp32'}{', channels-last' if t.channels_last else ''}"]
    gan = runs.read_json(out / GAN_DIR / "metrics.json") if suite.needs_gan else {}
    if gan:
        lines.append(f"- AC-GAN: preset `{suite.gan_preset}`, {gan.get('gan_steps', suite.gan_steps)} generator steps, "
                     f"{gan.get('train_seconds', 0) / 60:.1f} min of training")
    lines.append(f"- evaluation, identical for every run: clean accuracy on the whole test split; FGSM and "
                 f"PGD-{e.pgd_steps} ({'+'.join(e.losses).upper()} losses, {e.restarts} restart(s) each, worst "
                 f"case per sample) on {_images(e.subset)}"
                 + (f"; {e.gan_samples} AC-GAN samples; {e.unrestricted_samples} latent searches of up to "
                    f"{e.latent_steps} steps" if suite.needs_gan else ""))
    held = next((r for r in by_run.values() if r.get("heldout_unrestricted_searched")), None)
    if held:
        lines.append(f"- held-out unrestricted set: {held['heldout_unrestricted_found']} of "
                     f"{held['heldout_unrestricted_searched']} searches ({suite.heldout_steps} steps) against "
                     f"`{suite.settings[0].name}` succeeded"
                     + (f" ({held['heldout_unrestricted_search_seconds'] / 60:.1f} min)"
                        if held.get("heldout_unrestricted_search_seconds") else ""))
    table = ["| run | augment | options | epochs | train (min) | evaluation (min) |", "|---|---|---|---|---|---|"]
    for s in suite.settings:
        r = by_run.get(s.name, {})
        opts = ", ".join([f"{k}={v}" for k, v in s.augment_kw.items()]
                         + ([f"training seed {t.seed + s.seed_offset}"] if s.seed_offset else [])) or "defaults"
        table.append(f"| {s.name} | {s.augment} | {opts} | {s.epochs or t.epochs} | "
                     f"{_minutes(r.get('train_seconds'))} | {_minutes(r.get('eval_seconds'))} |")
    return "\n".join(lines) + "\n\n" + "\n".join(table) + "\n"


def _images(subset: int | None) -> str:
    return f"the first {subset} test images" if subset else "all test images"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _run_seconds(run_dir: Path, wall: float) -> float:
    """What a run cost: its recorded training and evaluation seconds (also right for a run finished or
    half done before a resume, whose wall time here is ~0), else the wall time measured here."""
    m = runs.read_json(run_dir / "metrics.json")
    if m.get("train_seconds") is None or m.get("eval_seconds") is None:
        return wall
    return m["train_seconds"] + m["eval_seconds"]


class _Clock:
    """Time-left estimate from the relative cost of the runs done so far."""

    def __init__(self, total_units: float):
        self.total, self.units, self.seconds = total_units, 0.0, 0.0

    def done(self, units: float, seconds: float) -> None:
        self.units += units
        self.seconds += seconds

    def status(self) -> str:
        if not self.units:
            return "time left: estimating after the first run"
        left = (self.total - self.units) * self.seconds / self.units
        return f"elapsed {self.seconds / 60:.1f} min, about {left / 60:.0f} min left"


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)
