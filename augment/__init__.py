"""Pluggable augmenters for the classifier's training loop, built by name."""
from .base import AugBatch, Augmenter, augmenter_names, build_augmenter, register_augmenter

__all__ = ["AugBatch", "Augmenter", "augmenter_names", "build_augmenter", "register_augmenter"]
