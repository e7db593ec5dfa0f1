"""Not a test module: a few training steps on a 128-image digits subset, run by ``test_distributed`` as one
process and under ``torchrun`` (2 ranks) to compare the weights they reach.

    python tests/ddp_worker.py OUT none|free
    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT none|free
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runtime  # noqa: E402
from augment import build_augmenter  # noqa: E402
from classifier import TrainConfig, build_classifier, fit  # noqa: E402
from data import load_dataset  # noqa: E402
from data.sets import Split  # noqa: E402


def main(out: str, augment: str) -> None:
    device = torch.device("cpu")
    runtime.init_distributed(device)
    Path(out).mkdir(parents=True, exist_ok=True)
    ds = load_dataset("digits")
    ds = dataclasses.replace(ds, train=Split(ds.train.images[:128], ds.train.labels[:128]),
                             test=Split(ds.test.images[:64], ds.test.labels[:64]))
    torch.manual_seed(0)
    model = build_classifier("densenet-bc-22-8", num_classes=10, in_channels=1)
    aug = build_augmenter("free", eps=0.1, replays=2) if augment == "free" else build_augmenter("none")
    cfg = TrainConfig(epochs=aug.replays, batch_size=64, lr=0.01, schedule="constant", amp=False,
                      channels_last=False, sync_bn=True)
    fit(model, ds, cfg=cfg, out=out, device=device, augmenter=aug)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
