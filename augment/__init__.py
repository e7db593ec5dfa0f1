"""Pluggable augmenters for the classifier's training loop, built by name, and the attacks they use.

The attack functions live in ``augment.attacks`` (``from augment.attacks import fgsm, pgd``): the
names ``augment.fgsm`` / ``augment.pgd`` / ``augment.free`` are the augmenter modules.
"""
from . import fgsm, free, gan_samples, pgd, unrestricted   # noqa: F401  (importing them registers the augmenters)
from .attack_mode import as_logits, attack_mode, frozen
from .attack_view import AttackView
from .attacks import ATTACK_LOSSES, predict
from .latent_search import SearchResult, unrestricted_search
from .base import AugBatch, Augmenter, augmenter_class, augmenter_names, build_augmenter, register_augmenter
from .mixing import MixingAugmenter

__all__ = ["AugBatch", "Augmenter", "augmenter_class", "augmenter_names", "build_augmenter", "register_augmenter",
           "MixingAugmenter", "AttackView", "attack_mode", "frozen", "as_logits", "ATTACK_LOSSES", "predict",
           "SearchResult", "unrestricted_search"]
