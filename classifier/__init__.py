"""DenseNet-BC for 32x32 images and the one classifier training loop."""
from .densenet import PRESETS, DenseNet, DenseNetConfig, build_classifier, classifier_config, unwrap

__all__ = ["PRESETS", "DenseNet", "DenseNetConfig", "build_classifier", "classifier_config", "unwrap"]
