"""The CLI through click's runner and, once, as a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["train-classifier"], ["evaluate"]])
def test_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_train_then_evaluate_reproduces_the_accuracy(tmp_path):
    out = tmp_path / "run"
    result = invoke("train-classifier", "--dataset", "digits", "--arch", "densenet-bc-22-8", "--epochs", 1,
                    "--batch-size", 128, "--out", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    train = metrics["train"]
    assert metrics["kind"] == "classifier" and set(metrics) == {"kind", "train"}
    assert train["dataset"] == "digits" and train["augment"] == {"name": "none"} and 0 <= train["test_acc"] <= 1
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    assert json.loads((out / "config.json").read_text())["run"]["arch"] == "densenet-bc-22-8"
    result = invoke("evaluate", out, "--subset", 16, "--pgd-steps", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["clean_acc"] == train["test_acc"]
    assert "fgsm_acc" in json.loads((out / "metrics.json").read_text())["evaluation"]
    result = invoke("evaluate", out, "--no-attacks")                          # replaces the block whole
    block = json.loads((out / "metrics.json").read_text())["evaluation"]
    assert result.exit_code == 0 and block["settings"]["attacks"] is False
    assert not {"fgsm_acc", "pgd_acc", "attack_clean_acc", "epsilon"} & set(block)
    other = invoke("evaluate", out, "--dataset", "fashion-mnist")            # trained on digits: refused
    assert other.exit_code == 2 and other.output.count("\n") == 1 and "trained on digits" in other.output

    again = invoke("train-classifier", "--dataset", "digits", "--out", out)   # never overwrite a run
    assert again.exit_code == 2 and "already holds a run" in again.output
    resumed = invoke("train-classifier", "--out", out, "--resume")            # finished: nothing to do
    assert resumed.exit_code == 0, resumed.output
    longer = invoke("train-classifier", "--out", out, "--resume", "--epochs", 2, "--lr", 0.5)
    assert longer.exit_code == 0, longer.output
    assert "ignored: --lr" in longer.output and "extending the run from 1 to 2 epochs" in longer.output
    extended = json.loads((out / "metrics.json").read_text())
    assert extended["train"]["epochs_done"] == 2 and len(extended["train"]["history"]) == 2
    assert extended["train"]["history"][0] == train["history"][0]            # the first epoch is kept as it was
    assert "evaluation" not in extended                                      # it described the old weights
    shorter = invoke("train-classifier", "--out", out, "--resume", "--epochs", 1)
    assert shorter.exit_code == 2 and "can only extend it" in shorter.output


def test_offline_cifar_is_one_clear_line(tmp_path):
    result = invoke("train-classifier", "--dataset", "cifar100", "--data-dir", tmp_path / "nonexistent",
                    "--out", tmp_path / "o", "--epochs", 1)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "cifar-100-python.tar.gz" in lines[0]
    assert "Traceback" not in result.output


def test_wrong_kind_of_checkpoint_for_evaluate(tmp_path):
    import runs
    runs.atomic_save({"kind": "gan", "config": {}}, tmp_path / "checkpoint.pt")
    result = invoke("evaluate", tmp_path)
    assert result.exit_code == 2 and "is a gan checkpoint" in result.output


@pytest.mark.slow
def test_real_process_entry_point(tmp_path):
    """``python cli.py`` as users run it, through ``main()`` (which tunes the allocator and re-execs)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GLIBC_TUNABLES", None)
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "train-classifier", "--dataset", "digits",
                           "--arch", "densenet-bc-22-8", "--epochs", "1", "--batch-size", "256",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 1/1" in proc.stderr and (tmp_path / "r" / "final.pt").exists()


@pytest.mark.parametrize("args, message", [
    (["--augment", "pgd", "--replays", "3"], "--replays is not used by --augment pgd"),
    (["--augment", "fgsm", "--eps", "-0.1"], "it must be > 0"),
    (["--augment", "free", "--aug-ratio", "1.5"], "ratio must be in [0, 1]"),
    (["--augment", "none", "--eps", "0.1"], "--eps is not used by --augment none"),
])
def test_wrong_augment_combinations_are_usage_errors(tmp_path, args, message):
    result = invoke("train-classifier", "--dataset", "digits", "--out", tmp_path / "o", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o").exists()          # nothing written


def test_adversarial_training_then_robust_evaluation(tmp_path):
    out = tmp_path / "fgsm"
    result = invoke("train-classifier", "--dataset", "digits", "--arch", "densenet-bc-22-8", "--augment", "fgsm",
                    "--epochs", 1, "--batch-size", 128, "--out", out)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())["train"]
    assert m["augment"]["name"] == "fgsm" and m["augment"]["eps"] == 0.1 and m["augment"]["craft_bn"] == "train"
    assert "probe_pgd_acc" in m["history"][0]
    assert m["history"][0]["images"] == 1437 - 143                         # the probe batch is held out of training
    result = invoke("evaluate", out, "--subset", 64, "--pgd-steps", 3, "--autoattack", "--autoattack-subset", 8,
                    "--json")
    r = json.loads(result.stdout)
    assert r["pgd_acc"] <= r["fgsm_acc"] <= r["attack_clean_acc"] and r["epsilon"] == 0.1 and r["pgd_steps"] == 3
    aa = r["autoattack"]
    assert aa["samples"] == 8 and 0 <= aa["acc"] <= aa["pgd_acc_same_images"] + aa["autoattack_only"] / 8


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_attack_grid(tmp_path, kind):
    from PIL import Image
    out = tmp_path / "clf"
    assert invoke("train-classifier", "--dataset", "digits", "--arch", "densenet-bc-22-8", "--epochs", 1,
                  "--batch-size", 256, "--out", out).exit_code == 0
    result = invoke("grid", "--kind", kind, "--classifier", out, "--out", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    img = Image.open(tmp_path / "g.png")
    assert img.width > 3 * 64 and img.height > 8 * 64      # 3 columns x 8 rows of 2x-scaled (--scale) 32-px images
    assert invoke("grid", "--kind", kind, "--out", tmp_path / "h.png").exit_code == 2   # no --classifier


def _gan_run(path, num_classes=10):
    """An (untrained) AC-GAN checkpoint for digits-shaped data, written like train-gan writes it."""
    import dataclasses

    import runs
    import torch
    from data import load_dataset
    from gan import GANConfig, GANTrainer, TrainConfig as GANTrain
    ds = load_dataset("digits")
    if num_classes != 10:
        ds = dataclasses.replace(ds, classes=ds.classes[:num_classes])
    cfg = GANConfig(num_classes=num_classes, out_channels=1, g_channels=(16, 8, 8, 4), d_channels=(4, 8, 8))
    trainer = GANTrainer(cfg, GANTrain(steps=1, amp=False, channels_last=False), torch.device("cpu"))
    runs.atomic_save(trainer.state_dict(ds), path / "checkpoint.pt")
    return path


def test_generator_based_modes_through_the_cli(tmp_path):
    gan = _gan_run(tmp_path)
    clf = tmp_path / "clf"
    result = invoke("train-classifier", "--dataset", "digits", "--arch", "densenet-bc-22-8", "--augment", "gan",
                    "--gan", gan, "--epochs", 1, "--batch-size", 256, "--out", clf)
    assert result.exit_code == 0, result.output
    augment = json.loads((clf / "metrics.json").read_text())["train"]["augment"]
    assert augment["gan"] == str(gan)                                          # where the samples came from
    result = invoke("evaluate", clf, "--subset", 16, "--pgd-steps", 1, "--gan", gan, "--gan-samples", 20,
                    "--unrestricted-samples", 10, "--search-steps", 3, "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    u = r["unrestricted"]
    assert 0 <= r["gan"]["gan_sample_acc"] <= 1 and r["gan"]["gan_feature_net"]
    assert 0 <= u["success_rate"] <= 1 and 0 <= u["acc"] <= 1 and u["searches"] == 10 and u["steps"] == 3
    assert u["valid_success_rate"] is None and u["search"] == "fast" and u["eps_pix"] == 0.0  # no judge given
    judge_self = invoke("evaluate", clf, "--no-attacks", "--gan", gan, "--judge", clf)
    assert judge_self.exit_code == 2 and "another classifier" in judge_self.output
    result = invoke("grid", "--kind", "unrestricted", "--classifier", clf, "--gan", gan, "--out", tmp_path / "u.png",
                    "--rows", 2, "--target", "all", "--search-steps", 2)
    assert result.exit_code == 0 and (tmp_path / "u.png").stat().st_size > 1000


def test_gan_mismatch_and_missing_gan_are_one_line(tmp_path):
    other = _gan_run(tmp_path / "g3", num_classes=3) if (tmp_path / "g3").mkdir() is None else None
    result = invoke("train-classifier", "--dataset", "digits", "--augment", "gan", "--gan", other, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "3 classes" in result.output and "10 classes" in result.output
    result = invoke("train-classifier", "--dataset", "digits", "--augment", "unrestricted", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "needs --gan" in result.output
    assert not (tmp_path / "o").exists()
