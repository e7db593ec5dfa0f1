"""Pluggable augmenters for the classifier's training loop, built by name (``build_augmenter``).

The attacks they use live in the ``attacks`` package (``from attacks import fgsm, pgd``); the names
``augment.fgsm`` / ``augment.pgd`` / ``augment.free`` are the augmenter modules.
"""
from . import fgsm, free, gan_samples, pgd, unrestricted   # noqa: F401  (importing them registers the augmenters)
from .base import AUGMENTERS, AugBatch, Augmenter, augmenter_class, augmenter_names, build_augmenter, register_augmenter
from .mixing import MixingAugmenter

__all__ = ["AUGMENTERS", "AugBatch", "Augmenter", "augmenter_class", "augmenter_names", "build_augmenter",
           "register_augmenter", "MixingAugmenter"]
