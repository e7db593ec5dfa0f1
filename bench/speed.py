"""Speed benchmark: ms per batch, images/s, peak memory, and ratios measured side by side in one run on the
same machine, model and batch: ours against the usual way (the fp32 train step, a naive attack step, a naive
latent-search iteration, torchattacks' PGD-10 evaluation, the reference AC-GAN steps) and each augmenter's
training step against a clean one. bench/README.md lists each ratio with its target.

    python bench/speed.py              # DenseNet-BC-40-12 and -100-12 at batch 128, AC-GAN steps, memory
    python bench/speed.py --quick      # DenseNet-BC-40-12 only, fewer repeats, no -100-12 memory probe
    python bench/speed.py --compile    # also a torch.compile'd train step (its compile time reported)
    python bench/speed.py --smoke      # seconds: a tiny model and batch; checks every path runs (tests)

Results: ``bench/results/<machine>.json`` and a Markdown table on stdout (``--out`` elsewhere).
Inputs are random: speed does not depend on the pixels. Every timing is the median of ``--repeats``
calls after warm-up calls; ratios divide medians measured in this run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
import tuning  # noqa: E402
from attacks import SEARCHES, attack_mode, fgsm, frozen, per_sample_objective, pgd, predict  # noqa: E402
from attacks.latent import _Search  # noqa: E402
from augment import build_augmenter  # noqa: E402
from classifier import TrainConfig, build_classifier  # noqa: E402
from classifier.train import make_train_step  # noqa: E402
from data import ImageDataset, Split  # noqa: E402
from gan.models import Critic, Generator, model_config  # noqa: E402
from gan.sample import LoadedGAN  # noqa: E402
from gan.train import GANTrainer, preset_configs  # noqa: E402

EPS = 8 / 255


# ----------------------------------------------------------------------------- timing

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn, device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


# ----------------------------------------------------------------------------- fixtures

def fake_dataset(n: int, channels: int, classes: int, device: torch.device) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    split = Split(images.to(device), labels.to(device))
    return ImageDataset("bench", split, split, [str(i) for i in range(classes)], crop_pad=4, flip=True,
                        default_eps=EPS)


def fake_gan(classes: int, channels: int, device: torch.device) -> LoadedGAN:
    cfg = model_config("small", num_classes=classes, out_channels=channels)
    torch.manual_seed(0)
    g, d = Generator(cfg).to(device).eval(), Critic(cfg).to(device).eval()
    return LoadedGAN(g, d, {"num_classes": classes, "channels": channels, "image_size": 32})


# ----------------------------------------------------------------------------- the usual way (references)

def reference_train_step(model: nn.Module, opt: torch.optim.Optimizer, x, y):
    """Seed-code training: fp32, contiguous, train mode."""
    model.train()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def naive_attack_step(model: nn.Module, x, y, train_mode: bool = False):
    """Seed-code FGSM step: live model (eval mode, or train mode as many PGD-AT scripts leave it),
    parameter gradients on, fp32, ``loss.backward()``."""
    model.train(train_mode)
    x_adv = x.clone().requires_grad_(True)
    F.cross_entropy(model(x_adv), y).backward()
    out = (x_adv + EPS * x_adv.grad.sign()).clamp(0, 1).detach()
    model.zero_grad(set_to_none=True)
    return out


def naive_search_iteration(gan: LoadedGAN, model: nn.Module, z0, y):
    """One iteration of the fast setting's search the plain way (the same loss): fp32, live modules,
    parameter gradients on, ``loss.backward()``."""
    cfg = SEARCHES["fast"]
    z = z0.clone().requires_grad_(True)
    x = gan.generator(z, y)
    logits, ac = model(x), gan.critic(x).class_logits
    per_sample_objective(cfg, logits, ac, z, z0, y, None).sum().backward()
    with torch.no_grad():
        z -= cfg.lr * z.grad
    for m in (gan.generator, gan.critic, model):
        m.zero_grad(set_to_none=True)


def our_search_iteration(gan: LoadedGAN, model: nn.Module, z0, x0, y):
    """One iteration of ``unrestricted_search``'s fast setting (its forward and update, every sample active)."""
    with frozen(gan.generator), frozen(gan.critic), attack_mode(model) as forward:
        search = _Search(SEARCHES["fast"], 0.0, gan.generator, gan.critic, forward, z0, z0, None, y, None, None)
        idx = torch.arange(len(y), device=y.device)
        logits, ac_logits, z, tau = search._forward(idx)
        search._update(idx, logits, ac_logits, z, tau, 0)


# ----------------------------------------------------------------------------- benchmark groups

def bench_classifier(arch: str, batch: int, classes: int, device, repeats: int, warmup: int, with_gan: bool,
                     compile_: bool) -> tuple[dict, dict]:
    rows, ratios = {}, {}
    ds = fake_dataset(batch * 4, 3, classes, device)
    x = ds.train.images[:batch].float().div(255)
    y = ds.train.labels[:batch]

    def row(name, ms, images=batch):
        rows[name] = {"ms": round(ms, 1), "images_per_s": round(images / ms * 1e3, 1)}
        print(f"  {arch} {name}: {ms:.1f} ms", file=sys.stderr, flush=True)
        return ms

    def model():
        torch.manual_seed(0)
        return build_classifier(arch, num_classes=classes, in_channels=3).to(device)

    # clean training: the usual fp32 step vs ours (the loop's step: channels-last + autocast)
    ref = model()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)
    ref_ms = row("train step, reference (fp32, contiguous)",
                 median_ms(lambda: reference_train_step(ref, ref_opt, x, y), device, repeats, warmup))
    cfg = TrainConfig(epochs=1000, batch_size=batch, lr=0.01)

    def ours(aug, per=1):
        step = make_train_step(model(), ds, cfg, device, aug)
        return median_ms(lambda: step(x, y), device, repeats, warmup) / per

    clean_ms = row("train step, ours: none", ours(build_augmenter("none")))
    ratios["clean train step: reference / ours (target >= 2.3)"] = ref_ms / clean_ms
    if compile_:
        step = make_train_step(model(), ds, TrainConfig(epochs=1000, batch_size=batch, lr=0.01, compile=True),
                               device, build_augmenter("none"))
        t0 = time.perf_counter()
        step(x, y)
        sync(device)
        rows["torch.compile: first step incl. compile"] = {"ms": round((time.perf_counter() - t0) * 1e3, 1)}
        comp_ms = row("train step, ours + torch.compile", median_ms(lambda: step(x, y), device, repeats, warmup))
        ratios["clean train step: ours / ours + compile"] = clean_ms / comp_ms

    # the attack step: naive vs ours (one FGSM step through the attack-time view)
    live = model()
    naive_ms = row("attack step, naive (live, param grads, fp32)",
                   median_ms(lambda: naive_attack_step(live, x, y), device, repeats, warmup))
    naive_train_ms = row("attack step, naive in train mode (BN batch statistics)",
                         median_ms(lambda: naive_attack_step(live, x, y, True), device, repeats, warmup))
    fast = model().to(memory_format=torch.channels_last)
    attack_ms = row("attack step, ours (attack-time view)",
                    median_ms(lambda: fgsm(fast, x, y, eps=EPS), device, repeats, warmup))
    ratios["attack step: naive / ours (target >= 3)"] = naive_ms / attack_ms
    ratios["attack step: naive in train mode / ours"] = naive_train_ms / attack_ms

    # adversarial training steps vs our clean step
    for name, aug, per, target in [
            ("fgsm", build_augmenter("fgsm", eps=EPS), 1, "<= 2.0"),
            ("pgd-7", build_augmenter("pgd", eps=EPS, steps=7), 1, "<= 7"),
            ("free m=4, per replay", build_augmenter("free", eps=EPS, replays=4), 4, "<= 1.05")]:
        ms = row(f"train step, ours: {name}", ours(aug, per))
        ratios[f"{name} train step / clean (target {target})"] = ms / clean_ms
    if with_gan:
        gan = fake_gan(classes, 3, device)
        ms = row("train step, ours: gan", ours(build_augmenter("gan", gan=gan)))
        ratios["gan train step / clean"] = ms / clean_ms
        # unrestricted: the pool is filled on the first call; time the steady state, report the fill apart
        aug = build_augmenter("unrestricted", gan=gan)
        step = make_train_step(model(), ds, cfg, device, aug)
        t0 = time.perf_counter()
        step(x, y)
        rows["unrestricted: first step (fills the pool)"] = {"ms": round((time.perf_counter() - t0) * 1e3, 1)}
        ms = row("train step, ours: unrestricted (steady state)", median_ms(lambda: step(x, y), device, repeats, warmup))
        ratios["unrestricted train step / clean (target <= 3)"] = ms / clean_ms
        z0 = torch.randn(batch, gan.generator.cfg.z_dim, device=device)
        with torch.no_grad():
            x0 = gan.generator(z0, y)
        naive_s = row("latent search iteration, naive fp32",
                      median_ms(lambda: naive_search_iteration(gan, live, z0, y), device, repeats, warmup))
        our_s = row("latent search iteration, ours",
                    median_ms(lambda: our_search_iteration(gan, fast, z0, x0, y), device, repeats, warmup))
        ratios["latent search iteration: naive / ours (target >= 2.5)"] = naive_s / our_s

    # PGD-10 evaluation: ours vs the attack library's on the same model and batch
    alpha = 2.5 * EPS / 10
    ours_eval = row("PGD-10 evaluation, ours",
                    median_ms(lambda: predict(fast, pgd(fast, x, y, eps=EPS, steps=10, alpha=alpha)), device,
                              repeats, warmup))
    try:
        import torchattacks
    except ImportError:
        torchattacks = None
    if torchattacks is not None:
        plain = model().eval()
        atk = torchattacks.PGD(plain, eps=EPS, alpha=alpha, steps=10, random_start=True)

        def library():
            adv = atk(x, y)
            with torch.no_grad():
                return plain(adv).argmax(1)
        lib_ms = row("PGD-10 evaluation, torchattacks", median_ms(library, device, repeats, warmup))
        ratios["PGD-10 evaluation: torchattacks / ours (target >= 2.5)"] = lib_ms / ours_eval
    return rows, {k: round(v, 2) for k, v in ratios.items()}


def bench_gan(batch: int, classes: int, device, repeats: int, warmup: int) -> tuple[dict, dict]:
    """The AC-GAN's critic and generator steps: ours (bf16 + channels-last + lazy GP) vs plain fp32."""
    rows, ratios = {}, {}
    ds = fake_dataset(batch, 3, classes, device)
    x, y = ds.train.images.float().div(255), ds.train.labels
    mcfg, ours_cfg = preset_configs("small")
    mcfg = dataclasses.replace(mcfg, num_classes=classes, out_channels=3)
    plain_cfg = dataclasses.replace(ours_cfg, amp=False, channels_last=False, gp_every=1)
    for name, cfg in (("reference (fp32, contiguous, GP every step)", plain_cfg), ("ours", ours_cfg)):
        torch.manual_seed(0)
        t = GANTrainer(mcfg, cfg, device)
        for kind, fn in (("critic step", lambda: t.critic_step(x, y)), ("generator step", lambda: t.generator_step(batch))):
            ms = median_ms(fn, device, repeats * cfg.gp_every, warmup)   # covers the lazy-GP cycle
            rows[f"AC-GAN {kind}, {name}"] = {"ms": round(ms, 1), "images_per_s": round(batch / ms * 1e3, 1)}
            print(f"  gan {kind} {name}: {ms:.1f} ms", file=sys.stderr, flush=True)
    for kind in ("critic step", "generator step"):
        ratios[f"AC-GAN {kind}: reference / ours"] = round(
            rows[f"AC-GAN {kind}, reference (fp32, contiguous, GP every step)"]["ms"] / rows[f"AC-GAN {kind}, ours"]["ms"], 2)
    return rows, ratios


# ----------------------------------------------------------------------------- peak memory (own process each)

def memory_probe(arch: str, batch: int, efficient: bool, device: torch.device, fp32: bool = False) -> None:
    """Print peak memory (MiB) and median ms of our training step for ``arch`` (``fp32``: plain fp32,
    contiguous); run in a fresh process so that the peak is this step's."""
    ds = fake_dataset(batch, 3, 100, device)
    x, y = ds.train.images.float().div(255), ds.train.labels
    torch.manual_seed(0)
    model = build_classifier(arch, num_classes=100, in_channels=3, memory_efficient=efficient).to(device)
    cfg = TrainConfig(epochs=10, batch_size=batch, amp=not fp32, channels_last=not fp32)
    step = make_train_step(model, ds, cfg, device, build_augmenter("none"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")        # peak RSS (VmHWM) := current RSS
        base = _status_mib("VmRSS")
    ms = median_ms(lambda: step(x, y), device, 3, 1)
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20 if device.type == "cuda" \
        else _status_mib("VmHWM") - base
    print(json.dumps({"peak_mib": round(peak, 1), "ms": round(ms, 1)}))


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _probe(arch: str, batch: int, efficient: bool, device: torch.device, fp32: bool = False,
           env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--probe-memory", arch, str(batch), str(int(efficient)), str(device)]
    out = subprocess.run(cmd + (["--fp32"] if fp32 else []), capture_output=True, text=True, check=True,
                         env=env or os.environ).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_allocator(arch: str, batch: int, device: torch.device) -> tuple[dict, dict]:
    """fp32 train step with glibc's default malloc settings vs the entry point's (tuning.TUNED_ENV)."""
    rows = {}
    plain = {k: v for k, v in os.environ.items() if k not in tuning.TUNED_ENV} | {"ADVGEN_NO_TUNING": "1"}
    for name, env in (("glibc defaults", plain), ("tuned (entry point)", None)):
        r = _probe(arch, batch, False, device, fp32=True, env=env)
        rows[f"{arch} fp32 train step, allocator {name}"] = {"ms": r["ms"], "peak_mib": r["peak_mib"]}
        print(f"  allocator {name}: {r}", file=sys.stderr, flush=True)
    a, b = (rows[f"{arch} fp32 train step, allocator {k}"]["ms"] for k in ("glibc defaults", "tuned (entry point)"))
    return rows, {f"{arch} fp32 train step: glibc defaults / tuned allocator": round(a / b, 2)}


def bench_memory(arch: str, batch: int, device: torch.device) -> tuple[dict, dict]:
    rows = {}
    for efficient in (False, True):
        r = _probe(arch, batch, efficient, device)
        rows[f"{arch} train step peak memory, {'memory-efficient' if efficient else 'default'}"] = {
            "peak_mib": r["peak_mib"], "ms": r["ms"]}
        print(f"  {arch} memory efficient={efficient}: {r}", file=sys.stderr, flush=True)
    a, b = (rows[f"{arch} train step peak memory, {k}"]["peak_mib"] for k in ("default", "memory-efficient"))
    return rows, {f"{arch} peak memory saved by memory-efficient (target >= 40%)": round(1 - b / a, 3)}


# ----------------------------------------------------------------------------- report

def machine(device: torch.device) -> dict:
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(device),
            "python": platform.python_version(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}, device {m['device']}"
             f"{', ' + m['gpu'] if 'gpu' in m else ''}; batch {result['batch']}, median of {result['repeats']}.",
             "", "| group | measurement | ms per batch | images/s | peak MiB |", "|---|---|---|---|---|"]
    for gname, group in result["groups"].items():
        for name, r in group["rows"].items():
            lines.append(f"| {gname} | {name} | {r.get('ms', '')} | {r.get('images_per_s', '')} | "
                         f"{r.get('peak_mib', '')} |")
    lines += ["", "| group | ratio (side by side, this run) | value |", "|---|---|---|"]
    for gname, group in result["groups"].items():
        lines += [f"| {gname} | {k} | {v} |" for k, v in group["ratios"].items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="DenseNet-BC-40-12 only, fewer repeats.")
    p.add_argument("--smoke", action="store_true", help="Tiny model and batch: checks that every path runs.")
    p.add_argument("--compile", action="store_true", help="Also time a torch.compile'd train step.")
    p.add_argument("--repeats", type=int, default=None, help="Timed calls per measurement (median).")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/<machine>.json).")
    p.add_argument("--table", metavar="JSON", help="Print the Markdown table of a saved result and exit.")
    p.add_argument("--probe-memory", nargs=4, metavar=("ARCH", "BATCH", "EFFICIENT", "DEVICE"), help=argparse.SUPPRESS)
    p.add_argument("--fp32", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.table:
        return print(markdown(json.loads(Path(a.table).read_text())))
    if a.probe_memory:
        arch, batch, eff, dev = a.probe_memory
        return memory_probe(arch, int(batch), bool(int(eff)), torch.device(dev), fp32=a.fp32)
    tuning.tune_process()                # measure under the entry point's settings (re-execs once)
    device = runtime.pick_device(a.device)
    if a.smoke:
        archs, batch, classes, repeats, warmup = ["densenet-bc-22-8"], 8, 10, a.repeats or 1, 1
    elif a.quick:
        archs, batch, classes, repeats, warmup = ["densenet-bc-40-12"], 128, 100, a.repeats or 3, 1
    else:
        archs, batch, classes, repeats, warmup = ["densenet-bc-40-12", "densenet-bc-100-12"], 128, 100, a.repeats or 5, 2
    result = {"machine": machine(device), "batch": batch, "repeats": repeats, "eps": EPS, "groups": {}}
    t0 = time.perf_counter()
    for i, arch in enumerate(archs):
        rows, ratios = bench_classifier(arch, batch, classes, device, repeats, warmup, with_gan=i == 0,
                                        compile_=a.compile and i == 0)
        result["groups"][arch] = {"rows": rows, "ratios": ratios}
    rows, ratios = bench_gan(batch if not a.smoke else 8, classes, device, repeats, warmup)
    result["groups"]["ac-gan small"] = {"rows": rows, "ratios": ratios}
    mem_arch = "densenet-bc-22-8" if a.smoke else "densenet-bc-100-12"
    if not a.quick:
        rows, ratios = bench_memory(mem_arch, batch, device)
        result["groups"]["memory"] = {"rows": rows, "ratios": ratios}
        if device.type == "cpu":
            rows, ratios = bench_allocator(mem_arch, batch, device)
            result["groups"]["allocator"] = {"rows": rows, "ratios": ratios}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    name = "smoke" if a.smoke else ("cuda-" + torch.cuda.get_device_name(device).replace(" ", "-").lower()
                                    if device.type == "cuda" else f"cpu-{torch.get_num_threads()}threads")
    out = Path(a.out) if a.out else ROOT / "bench" / "results" / f"{name}{'-quick' if a.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwrote {out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
