"""GAN quality metrics judged by a given classifier (gan/ never imports the classifier package).

The classifier must map [0, 1] images to logits and expose ``features(x) -> [B, F]`` (penultimate
features) and ``head(features) -> logits``, as the project's DenseNet does. Everything here is
deterministic for a seed: latents and labels come from a private ``torch.Generator``.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .sample import sample


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians (float64, scipy sqrtm)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():                  # near-singular product: regularise, as pytorch-fid does
        eps = 1e-6 * np.eye(s1.shape[0])
        covmean = scipy.linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] (float64) of features [N, F]."""
    f = features.double().cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def inception_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) from class probabilities [N, K] (one split)."""
    p = probs.double().clamp_min(1e-12)
    py = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - py.log())).sum(1).mean()))


@torch.no_grad()
def _classify(classifier: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats = classifier.features(x)                       # [B, F]
    return feats.float(), classifier.head(feats).float()  # [B, F], [B, K]


@torch.no_grad()
def sample_features(generator: nn.Module, classifier: nn.Module, labels: torch.Tensor, *, batch_size: int,
                    seed: int, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier features [N, F] and logits [N, K] of G(z, labels), z from a seeded private RNG."""
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    feats, logits = [], []
    batches = labels.to(device).split(batch_size)
    for y in tqdm(batches, desc="GAN samples", unit="batch", leave=False, disable=not progress, dynamic_ncols=True):
        f, l = _classify(classifier, sample(generator, y, rng=rng))
        feats.append(f.cpu())
        logits.append(l.cpu())
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def real_features(classifier: nn.Module, images: torch.Tensor, *, batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """Classifier features [N, F] of real uint8 images [N, C, H, W]."""
    out = [_classify(classifier, x.to(device).float().div(255))[0].cpu() for x in images.split(batch_size)]
    return torch.cat(out)


@torch.no_grad()
def critic_accuracy(critic: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                    device: torch.device) -> float:
    """Accuracy of the critic's auxiliary classifier on real uint8 images [N, C, H, W]."""
    correct = 0
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        logits = critic(x.to(device).float().div(255)).class_logits
        correct += int((logits.argmax(1).cpu() == y).sum())
    return correct / max(len(labels), 1)


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    return [float((pred[labels == k] == k).float().mean()) if (labels == k).any() else float("nan")
            for k in range(num_classes)]


def gan_metrics(generator: nn.Module, critic: nn.Module | None, classifier: nn.Module, dataset_split, *,
                n_samples: int = 10_000, batch_size: int = 256, seed: int = 0,
                device: torch.device | str = "cpu", feature_net: str | None = None) -> dict:
    """Sample accuracy, classifier-feature FID and IS of a generator, and the critic's real-data accuracy.

    Args:
        generator: class-conditional generator (EMA weights), e.g. from ``load_generator``.
        critic: the GAN's critic, or None to skip ``gan_ac_real_acc``.
        classifier: judge with ``features``/``head`` taking [0, 1] images (train/eval mode is restored).
        dataset_split: a ``data.Split`` (uint8 images, labels): the FID reference, normally the test split.
        n_samples: generated images, classes balanced (label i % K).
        feature_net: name recorded for the feature network (default: the classifier's class name).
    Returns:
        dict with gan_sample_acc, gan_sample_acc_per_class, gan_fid_classifier, gan_is_classifier,
        gan_ac_real_acc (None without critic), gan_feature_net, gan_fid_reference, gan_n_samples.
    """
    device = torch.device(device)
    modes = [(m, m.training) for m in (generator, classifier, critic) if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        k = generator.cfg.num_classes
        labels = torch.arange(n_samples) % k                                   # [N]
        fake_f, fake_logits = sample_features(generator, classifier, labels, batch_size=batch_size, seed=seed)
        real_f = real_features(classifier, dataset_split.images, batch_size=batch_size, device=device)
        pred = fake_logits.argmax(1)
        ac = None if critic is None else critic_accuracy(critic, dataset_split.images, dataset_split.labels,
                                                          batch_size=batch_size, device=device)
    finally:
        for m, mode in modes:
            m.train(mode)
    return {"gan_sample_acc": float((pred == labels).float().mean()),
            "gan_sample_acc_per_class": per_class_accuracy(pred, labels, k),
            "gan_fid_classifier": frechet_distance(*gaussian_stats(real_f), *gaussian_stats(fake_f)),
            "gan_is_classifier": inception_score(F.softmax(fake_logits, 1)),
            "gan_ac_real_acc": ac, "gan_feature_net": feature_net or type(classifier).__name__,
            "gan_fid_reference": f"test split ({len(dataset_split)} images)", "gan_n_samples": n_samples}
