"""The GAN training loop: a critic step learns, EMA arithmetic, checkpoints round-trip, resume is exact."""
from dataclasses import replace

import pytest
import torch

import runs
from data import ImageDataset, Split
from gan import GANConfig, GANTrainer, TrainConfig, ema_update, load_gan, load_generator, sample, train_gan

TINY_MODEL = GANConfig(num_classes=3, out_channels=1, g_channels=(16, 8, 8, 4), d_channels=(4, 8, 8))
TINY_TRAIN = TrainConfig(steps=4, batch_size=8, n_critic=2, gp_every=2, ema_decay=0.9, ckpt_every=2,
                         sample_every=2, log_every=1, grid_columns=2)


def tiny_dataset(num_classes: int = 3, channels: int = 1) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    split = lambda n: Split(torch.randint(0, 256, (n, channels, 32, 32), dtype=torch.uint8, generator=g),
                            torch.arange(n) % num_classes)
    return ImageDataset("tiny", split(40), split(12), [f"c{i}" for i in range(num_classes)], crop_pad=0,
                        flip=False, default_eps=0.1)


def test_ema_update_arithmetic():
    ema, model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        ema.weight.fill_(1.0), ema.bias.fill_(0.0), model.weight.fill_(3.0), model.bias.fill_(10.0)
    ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, torch.full((1, 2), 0.75 * 1 + 0.25 * 3))
    assert torch.allclose(ema.bias, torch.tensor([2.5]))
    assert torch.allclose(model.weight, torch.full((1, 2), 3.0))      # the live model is untouched


@pytest.mark.parametrize("loss", ["wgan", "hinge"])
def test_critic_step_lowers_its_loss_on_a_fixed_batch(loss):
    torch.manual_seed(0)
    cfg = replace(TINY_TRAIN, loss=loss, lr_d=1e-3, amp=False, gp_every=1)
    trainer = GANTrainer(TINY_MODEL, cfg, torch.device("cpu"))
    x, y = torch.rand(8, 1, 32, 32), torch.arange(8) % 3

    def step():
        torch.manual_seed(123)          # the same fake batch and GP interpolation every time
        return trainer.critic_step(x, y)["loss/d"].item()
    first = step()
    for _ in range(8):
        last = step()
    assert last < first


def test_generator_step_updates_ema_and_schedule():
    torch.manual_seed(0)
    trainer = GANTrainer(TINY_MODEL, replace(TINY_TRAIN, amp=False), torch.device("cpu"))
    before = [p.clone() for p in trainer.ema.parameters()]
    d_before = [p.clone() for p in trainer.D.parameters()]
    stats = trainer.generator_step(8)
    assert {"loss/g", "loss/ac_fake"} <= set(stats)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.ema.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d_before, trainer.D.parameters()))   # critic frozen
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 1 / 4))


def test_checkpoint_round_trip_rebuilds_same_generator(tmp_path):
    torch.manual_seed(0)
    ds = tiny_dataset()
    trainer = GANTrainer(TINY_MODEL, replace(TINY_TRAIN, amp=False, channels_last=False), torch.device("cpu"))
    trainer.generator_step(8)
    runs.atomic_save(trainer.state_dict(ds), tmp_path / "checkpoint.pt")
    G = load_generator(tmp_path, "cpu")
    z, y = torch.randn(6, 128), torch.arange(6) % 3
    assert torch.equal(sample(G, y, z), sample(trainer.ema, y, z))          # bit-exact, same memory format
    loaded = load_gan(tmp_path / "checkpoint.pt")
    assert loaded.info["classes"] == ["c0", "c1", "c2"] and loaded.info["channels"] == 1


def _weights(path):
    ck = torch.load(path, weights_only=True)
    flat = {f"{part}.{k}": v for part in ("generator", "critic", "ema") for k, v in ck[part].items()}
    for part in ("opt_g", "opt_d"):
        for pid, st in ck[part]["state"].items():
            flat.update({f"{part}.{pid}.{k}": v for k, v in st.items()})
    return flat, ck


@pytest.mark.parametrize("amp", [False, True])
def test_resume_is_bit_exact(tmp_path, amp):
    ds, cfg = tiny_dataset(), replace(TINY_TRAIN, amp=amp)
    train_gan(ds, tmp_path / "a", model_cfg=TINY_MODEL, cfg=cfg, device=torch.device("cpu"), progress=False)
    train_gan(ds, tmp_path / "b", model_cfg=TINY_MODEL, cfg=cfg, device=torch.device("cpu"), progress=False,
              stop_at=2)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 2
    train_gan(ds, tmp_path / "b", model_cfg=TINY_MODEL, cfg=cfg, device=torch.device("cpu"), progress=False,
              resume=True)
    (a, ck_a), (b, ck_b) = _weights(tmp_path / "a" / "final.pt"), _weights(tmp_path / "b" / "final.pt")
    assert ck_a["step"] == ck_b["step"] == 4 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_directory_contents(tmp_path):
    ds = tiny_dataset()
    out = tmp_path / "run"
    summary = train_gan(ds, out, model_cfg=TINY_MODEL, cfg=TINY_TRAIN, device=torch.device("cpu"), progress=False)
    assert summary["gan_steps"] == 4
    assert {p.name for p in (out / "samples").iterdir()} == {"step_000002.png", "step_000004.png"}
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    assert (out / "final.pt").is_file() and runs.read_json(out / "config.json")["kind"] == "gan"
    assert runs.read_json(out / "metrics.json") == {"kind": "gan", "train": summary}
    with pytest.raises(runs.RunDirError):       # never overwrite a run silently
        train_gan(ds, out, model_cfg=TINY_MODEL, cfg=TINY_TRAIN, device=torch.device("cpu"), progress=False)


def test_bad_inputs_give_one_line_errors(tmp_path):
    runs.atomic_save({"kind": "classifier", "config": {}}, tmp_path / "clf" / "checkpoint.pt")
    with pytest.raises(runs.CheckpointError, match="classifier checkpoint, but a gan checkpoint"):
        load_generator(tmp_path / "clf")
    ds = tiny_dataset()
    train_gan(ds, tmp_path / "g", model_cfg=TINY_MODEL, cfg=TINY_TRAIN, device=torch.device("cpu"),
              progress=False, stop_at=2)
    with pytest.raises(runs.CheckpointError, match="5 classes") as e:
        train_gan(tiny_dataset(num_classes=5), tmp_path / "g", model_cfg=TINY_MODEL, cfg=TINY_TRAIN,
                  device=torch.device("cpu"), progress=False, resume=True)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- CLI (click's CliRunner)

def test_cli_train_gan_grid_and_errors(tmp_path):
    from click.testing import CliRunner

    from commands.gan import train_gan as train_cmd
    from commands.grid import grid
    runner, out = CliRunner(), tmp_path / "gan"
    args = ["--dataset", "digits", "--preset", "small", "--steps", "2", "--batch-size", "8", "--out", str(out),
            "--device", "cpu"]
    r = runner.invoke(train_cmd, args)
    assert r.exit_code == 0, r.output
    assert (out / "samples" / "step_000002.png").is_file()
    png = tmp_path / "grid.png"
    r = runner.invoke(grid, ["--kind", "samples", "--gan", str(out), "--out", str(png), "--columns", "3"])
    assert r.exit_code == 0, r.output
    from PIL import Image
    with Image.open(png) as im:                # 10 rows of 2x-scaled 32-px cells, 3 columns, a label column
        assert im.size[1] == 2 + 10 * (64 + 2) and im.size[0] > 2 + 3 * (64 + 2)
    # a classifier checkpoint where a GAN is expected: one line, exit 2
    runs.atomic_save({"kind": "classifier", "config": {}}, tmp_path / "clf" / "checkpoint.pt")
    r = runner.invoke(grid, ["--gan", str(tmp_path / "clf"), "--out", str(png)])
    assert r.exit_code == 2 and "classifier checkpoint" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(grid, ["--kind", "nope", "--gan", str(out), "--out", str(png)])
    assert r.exit_code == 2 and "samples" in r.output
    # resuming on a data set with another class count / channels: one line, exit 2
    r = runner.invoke(train_cmd, ["--dataset", "cifar10", "--out", str(out), "--resume", "--device", "cpu",
                                  "--data-dir", str(tmp_path / "none")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
