"""The classifier training loop: the augmenter hook, learning, exact resume, non-finite loss."""
from __future__ import annotations

import math

import pytest
import torch

import runtime
from augment import AugBatch, Augmenter
from classifier import NonFiniteLoss, TrainConfig, build_classifier, fit
from runs import read_json


class CountingAugmenter(Augmenter):
    """A toy augmenter: adds a constant, replays each batch twice, counts every hook call."""
    name = "toy"

    def __init__(self, replays=2):
        self.replays, self.calls, self.after, self.epochs = replays, 0, 0, []

    def __call__(self, model, x, y):
        self.calls += 1
        assert model.training
        return AugBatch((x + 0.01).clamp(0, 1), y, torch.ones(len(y)))

    def after_backward(self):
        self.after += 1

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def state_dict(self):
        return {"calls": self.calls}


def _model(ds):
    mean, std = ds.channel_stats()
    return build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1, mean=mean, std=std)


def test_hook_replays_and_epoch_division(tiny_digits, tmp_path):
    torch.manual_seed(0)
    aug = CountingAugmenter(replays=2)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    metrics = fit(_model(tiny_digits), tiny_digits, cfg=cfg, out=tmp_path, device=torch.device("cpu"), augmenter=aug)
    epochs, batches = math.ceil(3 / 2), math.ceil(256 / 64)
    assert metrics["train"]["epochs_done"] == epochs and aug.epochs == [0, 1]
    assert aug.calls == aug.after == epochs * batches * 2
    assert read_json(tmp_path / "metrics.json")["train"]["augment"] == {"name": "toy"}
    assert {"checkpoint.pt", "final.pt", "best.pt", "metrics.json"} <= {p.name for p in tmp_path.iterdir()}


def test_training_learns(tiny_digits, tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=5, batch_size=16, lr=0.1, schedule="cosine")
    m = fit(_model(tiny_digits), tiny_digits, cfg=cfg, out=tmp_path, device=torch.device("cpu"),
            augmenter=Augmenter())["train"]
    losses = [r["train_loss"] for r in m["history"]]
    assert losses[-1] < 0.75 * losses[0]
    assert m["test_acc"] > 0.3           # chance is 0.1 (80 steps of a tiny model)
    assert m["images_per_second"] > 0 and len(m["history"]) == 5


class StopAfter:
    """An epoch hook that simulates a crash after ``n`` finished epochs (before the next save)."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def __call__(self, model, record):
        self.seen += 1
        if self.seen > self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("amp", [False, True])
def test_resume_is_bit_exact(tiny_digits, tmp_path, amp):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, amp=amp)
    cpu = torch.device("cpu")
    torch.manual_seed(1)
    straight = _model(tiny_digits)
    fit(straight, tiny_digits, cfg=cfg, out=tmp_path / "a", device=cpu, augmenter=CountingAugmenter(1))

    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(tiny_digits), tiny_digits, cfg=cfg, out=tmp_path / "b", device=cpu,
            augmenter=CountingAugmenter(1), epoch_hooks=[StopAfter(1)])
    torch.manual_seed(12345)   # whatever the process did meanwhile, resume restores every RNG
    resumed = _model(tiny_digits)
    aug = CountingAugmenter(1)
    fit(resumed, tiny_digits, cfg=cfg, out=tmp_path / "b", device=cpu, augmenter=aug, resume=True)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    a, b = read_json(tmp_path / "a" / "metrics.json"), read_json(tmp_path / "b" / "metrics.json")
    assert [r["test_acc"] for r in a["train"]["history"]] == [r["test_acc"] for r in b["train"]["history"]]


class StopAtCall(CountingAugmenter):
    """Raises the graceful-stop flag (as SIGINT would) during its ``n``-th call."""

    def __init__(self, stop, n):
        super().__init__(replays=1)
        self.stop, self.n = stop, n

    def __call__(self, model, x, y):
        if self.calls + 1 == self.n:
            self.stop.requested = True
        return super().__call__(model, x, y)


def test_stop_mid_epoch_then_resume_is_bit_exact(tiny_digits, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    cpu = torch.device("cpu")
    torch.manual_seed(2)
    straight = _model(tiny_digits)
    fit(straight, tiny_digits, cfg=cfg, out=tmp_path / "a", device=cpu, augmenter=CountingAugmenter(1))

    torch.manual_seed(2)
    stop = runtime.GracefulStop()
    with pytest.raises(runtime.Interrupted, match="epoch 2, batch 2.*--resume"):
        fit(_model(tiny_digits), tiny_digits, cfg=cfg, out=tmp_path / "b", device=cpu,
            augmenter=StopAtCall(stop, n=6), stop=stop)      # 4 batches per epoch: stops inside epoch 2
    resumed = _model(tiny_digits)
    fit(resumed, tiny_digits, cfg=cfg, out=tmp_path / "b", device=cpu, augmenter=CountingAugmenter(1), resume=True)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    a, b = read_json(tmp_path / "a" / "metrics.json"), read_json(tmp_path / "b" / "metrics.json")
    assert [r["train_loss"] for r in a["train"]["history"]] == [r["train_loss"] for r in b["train"]["history"]]


def test_non_finite_batches_can_be_skipped(tiny_digits, tmp_path):
    class PoisonSome(Augmenter):
        calls = 0

        def __call__(self, model, x, y):
            self.calls += 1
            return AugBatch(x * float("nan") if self.calls % 2 else x, y)

    model = _model(tiny_digits)
    m = fit(model, tiny_digits, cfg=TrainConfig(epochs=1, batch_size=64, nonfinite="skip"), out=tmp_path,
            device=torch.device("cpu"), augmenter=PoisonSome())["train"]
    assert m["skipped_batches"] == 2 and math.isfinite(m["history"][0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_loss_names_the_step(tiny_digits, tmp_path):
    class Poison(Augmenter):
        def __call__(self, model, x, y):
            return AugBatch(x * float("nan"), y)

    with pytest.raises(NonFiniteLoss, match="at step 0 .*last good checkpoint"):
        fit(_model(tiny_digits), tiny_digits, cfg=TrainConfig(epochs=1, batch_size=64), out=tmp_path,
            device=torch.device("cpu"), augmenter=Poison())
