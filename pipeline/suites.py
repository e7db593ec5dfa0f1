"""Suites of runs: train the AC-GAN, one classifier per setting, evaluate all alike, write the report.

A suite is data (the dataclasses and the ``SUITES`` table below); ``run_suite`` is idempotent: finished runs
are skipped, interrupted ones resumed, so re-running the same command after Ctrl-C continues where it stopped.
A run whose records (config.json, metrics.json) say it finished training with these settings and was evaluated
as the suite asks is done even where its checkpoint is not (checkpoints are not committed): a suite can be
spread over machines by carrying its records, and a record-only run is retrained only when a step needs it.
Where the suite uses the GAN, every run is trained first, then every run is evaluated, so that the validity
judge (the suite's PGD-trained model) exists when the unrestricted examples of the others are judged; without
it each run is evaluated as soon as it is trained, so that an interrupted suite leaves finished records.

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

from .evaluate import GAN_SETTINGS, EvalSettings, evaluate_classifier
from .suite_report import GAN_DIR, pictures_and_report
from .train import ClassifierRun, run_config, train_classifier, train_gan_run
from .unrestricted import find_unrestricted_set, heldout_accuracy, reference_search


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


ADVERSARIAL = ("fgsm", "pgd", "free")  # augmenters whose models get AutoAttack in a suite's evaluation


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
    judge: str | None = None           # the run that judges unrestricted examples' validity (its own: judge2)
    judge2: str | None = None          # the judge's judge
    autoattack: bool = False           # AutoAttack for every adversarially trained run (EvalSettings' subset)
    heldout_unrestricted: int = 0      # searches for a held-out set of unrestricted examples vs the first run
    heldout_steps: int | None = None   # latent steps per held-out search (None: the search setting's)
    reference_search: int = 0          # song2018 searches against the first run (claim c), 0: none
    reference_steps: int | None = None # their steps (None: the reference's 1,000; fewer only to test the suite)
    claims: bool = False               # judge the research claims (claims.py) into the report
    anchors: tuple[Anchor, ...] = ()   # published figures to state the distance to
    report_dir: str = ""               # where the report goes, relative to the suite folder ("": the folder)

    def __post_init__(self):
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names) or GAN_DIR in names or "pictures" in names:
            raise ValueError(f"suite {self.name}: run names must be unique and not {GAN_DIR!r} or 'pictures'")

    def judge_for(self, name: str) -> str | None:
        """The run that judges the unrestricted examples found against run ``name`` (never ``name`` itself)."""
        judge = self.judge2 if name == self.judge else self.judge
        return judge if judge != name else None



HELDOUT = "heldout_unrestricted.pt"
HELDOUT_SEED = 12_345                  # apart from every training pool's and evaluation's RNG streams
REFERENCE = "reference_search.json"


def _settings(pgd_steps: int, replays: int, *, claims: bool = False, fgsm_seeds: int = 1) -> list[Setting]:
    """One classifier per augment mode. ``claims`` adds what the claims need beyond that: FGSM with a
    2 eps step (alpha 0.2 at eps 0.1), the setting known to overfit catastrophically (claim e), and a second
    training seed of clean training: the seed-to-seed spread, and an independent clean model for the
    held-out unrestricted set (found against the first). ``fgsm_seeds=2`` adds a second seed of both FGSM
    settings too (whether an FGSM run collapses varies from seed to seed; on the CPU the ablation suite
    trains those seeds)."""
    two = lambda s: [s, replace(s, name=f"{s.name}-seed1", seed_offset=1)]
    fgsm = [Setting("fgsm", "fgsm", cost=2)]                                # random start, step 1.25 eps
    if claims:
        fgsm.append(Setting("fgsm-2eps", "fgsm", {"alpha": 0.2}, cost=2))
    return [
        *(two(Setting("none")) if claims else [Setting("none")]),
        *(t for s in fgsm for t in (two(s) if fgsm_seeds == 2 else [s])),
        Setting("pgd", "pgd", {"steps": pgd_steps}, cost=pgd_steps + 1),
        Setting("free", "free", {"replays": replays}),
        Setting("gan", "gan", cost=1.5),
        Setting("unrestricted", "unrestricted", cost=3),
    ]


def _ablations(pgd_steps: int) -> list[Setting]:
    """Crafting with batch norm in train mode (the references', the default) against eval mode, for FGSM
    with both step sizes and PGD, two training seeds each. The train-mode runs are the claims suite's."""
    base = [Setting("fgsm", "fgsm", cost=2), Setting("fgsm-2eps", "fgsm", {"alpha": 0.2}, cost=2),
            Setting("pgd", "pgd", {"steps": pgd_steps}, cost=pgd_steps + 1)]
    evalbn = lambda s: replace(s, name=f"{s.name}-evalbn", augment_kw={**s.augment_kw, "craft_bn": "eval"})
    seed1 = lambda s: replace(s, name=f"{s.name}-seed1", seed_offset=1)
    # seed 0 first, each train-mode run beside its eval-mode twin: a suite spread over machines (by its
    # records) gives paired comparisons from its first runs on
    return [*(t for s in base for t in (s, evalbn(s))), *(seed1(t) for s in base for t in (s, evalbn(s)))]


# Fashion-MNIST at eps 0.1 with small CNNs, as the issue quotes them
_FMNIST_SOURCE = "Croce, Andriushchenko & Hein 2019 (Table 1); Song, Shokri & Mittal 2019"
FASHION_MNIST_ANCHORS = (
    Anchor("none", "clean_acc", 0.905, 0.922, _FMNIST_SOURCE),
    Anchor("none", "pgd_acc", 0.0, 0.04, _FMNIST_SOURCE),
    Anchor("pgd", "clean_acc", 0.885, 0.909, _FMNIST_SOURCE),
    Anchor("pgd", "pgd_acc", 0.68, 0.785, _FMNIST_SOURCE),
)
_FMNIST_TRAIN = TrainConfig(epochs=4, batch_size=128, lr=0.1, schedule="cosine")
_FMNIST_EVAL = EvalSettings(pgd_steps=20, restarts=2, subset=1000, autoattack_subset=100, gan_samples=1000,
                            unrestricted_samples=200)
_FMNIST = dict(gan_steps=6000, judge="pgd", judge2="free", autoattack=True)

SUITES: dict[str, Suite] = {
    # digits, end to end in minutes on 2 CPU cores: the README's quick demo
    "demo": Suite("demo", "digits", "densenet-bc-22-8",
                  TrainConfig(epochs=12, batch_size=64, lr=0.1, schedule="cosine"),
                  settings=_settings(pgd_steps=3, replays=4),
                  eval=EvalSettings(pgd_steps=10, restarts=1, gan_samples=500, unrestricted_samples=100),
                  judge="pgd", judge2="free"),
    # `reproduce`: the research claims on Fashion-MNIST (eps 0.1) within ~150 min on 2 CPU cores
    "fashion-mnist": Suite("fashion-mnist", "fashion-mnist", "densenet-bc-22-8", _FMNIST_TRAIN,
                           settings=_settings(pgd_steps=3, replays=4, claims=True), eval=_FMNIST_EVAL,
                           heldout_unrestricted=500, reference_search=200, claims=True,
                           anchors=FASHION_MNIST_ANCHORS, **_FMNIST),
    # `reproduce --ablations`: crafting mode of FGSM/PGD training, train vs eval BN, two seeds (same folder, so
    # its train-mode seed-0 runs are the claims suite's; no GAN: robustness figures only; the claims runs'
    # evaluations hold them, checkpoints or not)
    "fashion-mnist-ablations": Suite("fashion-mnist-ablations", "fashion-mnist", "densenet-bc-22-8", _FMNIST_TRAIN,
                                     settings=_ablations(pgd_steps=3), eval=_FMNIST_EVAL, report_dir="ablations",
                                     needs_gan=False, autoattack=True),
    # `reproduce --full`: a longer, paper-like schedule for a GPU
    "fashion-mnist-full": Suite("fashion-mnist-full", "fashion-mnist", "densenet-bc-40-12",
                                TrainConfig(epochs=40, batch_size=128, lr=0.1, schedule="multistep"),
                                settings=_settings(pgd_steps=7, replays=8, claims=True, fgsm_seeds=2),
                                eval=EvalSettings(pgd_steps=20, restarts=2, autoattack_subset=1000, gan_samples=5000,
                                                  unrestricted_samples=1000),
                                gan_preset="cifar", gan_steps=20_000, judge="pgd", judge2="free", autoattack=True,
                                heldout_unrestricted=2000, reference_search=1000, claims=True,
                                anchors=FASHION_MNIST_ANCHORS),
}


# ----------------------------------------------------------------------------- running a suite

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
    runs.write_json(out / (f"{suite.report_dir}/suite.json" if suite.report_dir else "suite.json"), asdict(suite))
    gan_dir = out / GAN_DIR
    if suite.needs_gan:
        _log(f"[gan] AC-GAN ({suite.gan_preset} preset) on {suite.dataset}")
        _train_gan(suite, gan_dir, data_dir, device)
    clock = _Clock(sum((s.epochs or suite.train.epochs) * s.cost for s in suite.settings))
    needed = _models_needed(suite, out, gan_dir)
    for i, s in enumerate(suite.settings, 1):
        units, run_dir = (s.epochs or suite.train.epochs) * s.cost, out / s.name
        if s.name not in needed and _done_by_records(suite, s, run_dir, gan_dir, data_dir,
                                                     _eval_settings(suite, s, out, gan_dir)):
            _log(f"[train {i}/{len(suite.settings)}] {s.name}: trained and evaluated with these settings (its "
                 f"records; no checkpoint here), skipped")
            clock.done(units, _train_seconds(run_dir, 0.0))
            continue
        _log(f"[train {i}/{len(suite.settings)}] {s.name} (augment={s.augment}); {clock.status()}")
        t0 = time.perf_counter()
        _train_setting(suite, s, run_dir, gan_dir, data_dir, device)
        clock.done(units, _train_seconds(run_dir, time.perf_counter() - t0))
        if not suite.needs_gan:                  # no judge to wait for: a run is finished (records) at once
            _evaluate(suite, s, i, out, gan_dir, data_dir, device)
    for i, s in enumerate(suite.settings, 1):
        _evaluate(suite, s, i, out, gan_dir, data_dir, device)
    if suite.needs_gan and suite.reference_search:
        _reference(suite, out, gan_dir, data_dir, device)
    if suite.needs_gan and suite.heldout_unrestricted:
        _heldout(suite, out, gan_dir, data_dir, device)
    return pictures_and_report(suite, out, gan_dir, data_dir, device)


def _evaluate(suite: Suite, s: Setting, i: int, out: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    settings = _eval_settings(suite, s, out, gan_dir)
    if not _covers(_evaluated(out / s.name), settings):
        _log(f"[evaluate {i}/{len(suite.settings)}] {s.name}")
        evaluate_classifier(out / s.name, settings, data_dir=data_dir, device=device)


def autoattack_check(suite: Suite, out: str | Path, *, n: int = 500, data_dir: str = "datasets",
                     device: str = "auto", seed: int = 0) -> dict:
    """AutoAttack (standard, fp32) and the suite's PGD on the same first ``n`` test images for every
    adversarially trained run of a finished suite in ``out``, each timed; written to
    ``out/autoattack-<n>.json`` and ``.md`` (a run already measured with these settings is skipped)."""
    out = Path(out)
    path = out / f"autoattack-{n}.json"
    done = runs.read_json(path) if path.is_file() else {}
    settings = replace(suite.eval, seed=seed, subset=n, autoattack=True, autoattack_subset=n, attacks=True, gan=None)
    for s in suite.settings:
        if s.augment not in ADVERSARIAL or done.get(s.name, {}).get("settings") == _jsonable(asdict(settings)):
            continue
        if not (out / s.name / runs.CHECKPOINT_NAME).is_file():
            raise runs.RunDirError(f"{out / s.name} holds no trained run: run the suite first")
        _log(f"[autoattack {n}] {s.name}")
        block = evaluate_classifier(out / s.name, settings, data_dir=data_dir, device=device, write=False)
        done[s.name] = {"settings": _jsonable(asdict(settings)), "pgd_acc": block["pgd_acc"],
                        "autoattack": block["autoattack"], "seconds": block["eval_seconds"]}
        runs.write_json(path, done)
    lines = [f"| run | PGD-{settings.pgd_steps} | AutoAttack | PGD - AutoAttack (points) | PGD robust, AutoAttack "
             f"breaks | AutoAttack time (min) |", "|---|---|---|---|---|---|"]
    for name, r in done.items():
        a = r["autoattack"]
        lines.append(f"| {name} | {100 * r['pgd_acc']:.1f}% | {100 * a['acc']:.1f}% | {100 * a['gap']:+.1f} | "
                     f"{a['pgd_only']} of {a['samples']} | {a['seconds'] / 60:.1f} |")
    runs.atomic_write_bytes(out / f"autoattack-{n}.md", ("\n".join(lines) + "\n").encode())
    return done


def _train_gan(suite: Suite, gan_dir: Path, data_dir: str, device: str) -> None:
    train_gan_run(gan_dir, dataset=suite.dataset, data_dir=data_dir, preset=suite.gan_preset, device=device,
                  resume=(gan_dir / runs.CHECKPOINT_NAME).is_file(), steps=suite.gan_steps, seed=suite.train.seed)


def _classifier_run(suite: Suite, s: Setting, gan_dir: Path, data_dir: str) -> ClassifierRun:
    kw = dict(s.augment_kw)
    if s.augment in ("gan", "unrestricted"):
        kw["gan"] = str(gan_dir)
    return ClassifierRun(dataset=suite.dataset, data_dir=data_dir, arch=suite.arch, augment=s.augment,
                         augment_kw=kw, train=replace(suite.train, epochs=s.epochs or suite.train.epochs,
                                                      seed=suite.train.seed + s.seed_offset))


def _train_setting(suite: Suite, s: Setting, run_dir: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    train_classifier(_classifier_run(suite, s, gan_dir, data_dir), run_dir, device=device,
                     resume=(run_dir / runs.CHECKPOINT_NAME).is_file())


def _done_by_records(suite: Suite, s: Setting, run_dir: Path, gan_dir: Path, data_dir: str,
                     settings: EvalSettings) -> bool:
    """Whether a run without a checkpoint needs nothing more: its config.json is this setting's (the data
    folder aside), its metrics.json says training finished, and its evaluation covers ``settings``."""
    cfg_path, metrics_path = run_dir / "config.json", run_dir / "metrics.json"
    if (run_dir / runs.CHECKPOINT_NAME).is_file() or not (cfg_path.is_file() and metrics_path.is_file()):
        return False
    run = _classifier_run(suite, s, gan_dir, data_dir)
    want, have = _jsonable(run_config(run)), runs.read_json(cfg_path)
    for cfg in (want, have):
        cfg.get("run", {}).pop("data_dir", None)
    train = runs.read_json(metrics_path).get("train", {})
    finished = train.get("epochs_done") == run.train.epochs or train.get("stopped_early_at_epoch") is not None
    return have == want and finished and _covers(_evaluated(run_dir), settings)


def _models_needed(suite: Suite, out: Path, gan_dir: Path) -> set[str]:
    """The runs whose models a later step uses besides their own evaluation. Without the GAN part there are
    none. With it, the judges, the reference search and the held-out set use other runs' models, and
    retraining one run drops its records: so while any of those steps is still to do, every run is needed
    (no run is taken from its records alone); once all are done, none is."""
    if not suite.needs_gan:
        return set()
    evaluated = all(_covers(_evaluated(out / s.name), _eval_settings(suite, s, out, gan_dir)) for s in suite.settings)
    reference = out / REFERENCE
    referenced = not suite.reference_search or (reference.is_file() and
                                                runs.read_json(reference).get("request") == _reference_request(suite))
    held = not suite.heldout_unrestricted or _heldout_done(suite, out)
    return set() if evaluated and referenced and held else {s.name for s in suite.settings}


def _eval_settings(suite: Suite, s: Setting, out: Path, gan_dir: Path) -> EvalSettings:
    judge = suite.judge_for(s.name) if suite.needs_gan else None
    return replace(suite.eval, gan=str(gan_dir) if suite.needs_gan else None,
                   judge=str(out / judge) if judge else None,
                   autoattack=suite.autoattack and s.augment in ADVERSARIAL)


def _covers(recorded: dict | None, wanted: EvalSettings) -> bool:
    """Whether a recorded evaluation's settings measured what ``wanted`` asks: the same settings, or, where
    ``wanted`` asks for no GAN figures, the same settings apart from the GAN part (an evaluation that also
    measured the GAN samples and the unrestricted search holds every figure of one that did not)."""
    want = _jsonable(asdict(wanted))
    if recorded is None or recorded == want:
        return recorded is not None
    if want["gan"] is not None or recorded.get("gan") is None:
        return False
    strip = lambda d: {k: v for k, v in d.items() if k not in GAN_SETTINGS}
    return strip(recorded) == strip(want)


def _evaluated(run_dir: Path) -> dict | None:
    """The settings of the run's current evaluation block (None when it has none)."""
    path = run_dir / "metrics.json"
    return runs.read_json(path).get("evaluation", {}).get("settings") if path.is_file() else None


def _reference(suite: Suite, out: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    """Song et al.'s search as their code runs it, against the first (clean) run, judged alike (claim c)."""
    path = out / REFERENCE
    clean, judge = out / suite.settings[0].name, suite.judge_for(suite.settings[0].name)
    want = _reference_request(suite)
    if path.is_file() and runs.read_json(path).get("request") == want:
        return
    _log(f"[reference search] {suite.reference_search} song2018 searches against {suite.settings[0].name}")
    figures = reference_search(clean, gan_dir, n=suite.reference_search, steps=suite.reference_steps,
                               judge_run=out / judge if judge else None, data_dir=data_dir, device=device,
                               seed=suite.eval.seed)
    runs.write_json(path, {"request": want, **figures})


def _reference_request(suite: Suite) -> dict:
    return {"searches": suite.reference_search, "steps": suite.reference_steps, "seed": suite.eval.seed,
            "judge": suite.judge_for(suite.settings[0].name)}


def _heldout_done(suite: Suite, out: Path) -> bool:
    """Whether every run's accuracy on the held-out set is recorded."""
    return all((out / s.name / "metrics.json").is_file() and "heldout" in runs.read_json(out / s.name / "metrics.json")
               for s in suite.settings)


def _heldout(suite: Suite, out: Path, gan_dir: Path, data_dir: str, device: str) -> None:
    """Valid unrestricted examples found against the first (clean) run, then every run's accuracy on them."""
    path = out / HELDOUT
    if _heldout_done(suite, out):
        return                                   # measured earlier (the set itself may be on another machine)
    if path.is_file():
        found = runs.load_checkpoint(path, kind="unrestricted-set")
    else:
        first = suite.settings[0].name
        judge = suite.judge_for(first)
        _log(f"[held-out] searching {suite.heldout_unrestricted} unrestricted examples against {first}")
        found = find_unrestricted_set(out / first, gan_dir, path, n=suite.heldout_unrestricted,
                                      judge_run=out / judge if judge else None, steps=suite.heldout_steps,
                                      data_dir=data_dir, device=device, seed=HELDOUT_SEED + suite.train.seed)
    for s in suite.settings:
        if "heldout" not in runs.read_json(out / s.name / "metrics.json"):
            runs.update_metrics(out / s.name, {"heldout": {
                "acc": heldout_accuracy(out / s.name, found, device), "found": found["found"],
                "succeeded": found.get("succeeded"), "searched": found["searched"], "judge": found.get("judge"),
                "search_seconds": found.get("seconds")}})


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _train_seconds(run_dir: Path, wall: float) -> float:
    """What training a run cost: its recorded training seconds (also right for a run finished or half done
    before a resume, whose wall time here is ~0), else the wall time measured here."""
    m = runs.read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    seconds = m.get("train", {}).get("train_seconds")
    return wall if seconds is None else seconds


class _Clock:
    """Time-left estimate of the training phase from the relative cost of the runs trained so far."""

    def __init__(self, total_units: float):
        self.total, self.units, self.seconds = total_units, 0.0, 0.0

    def done(self, units: float, seconds: float) -> None:
        self.units += units
        self.seconds += seconds

    def status(self) -> str:
        if not self.units:
            return "time left: estimating after the first run"
        left = (self.total - self.units) * self.seconds / self.units
        return f"elapsed {self.seconds / 60:.1f} min, about {left / 60:.0f} min of training left"


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)
