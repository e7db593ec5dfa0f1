"""DenseNet-BC for 32x32 images and the one classifier training loop."""
from .densenet import (PRESETS, DenseNet, DenseNetConfig, build_classifier, classifier_config, load_classifier)
from .train import SCHEDULES, NonFiniteLoss, TrainConfig, accuracy, fit

__all__ = ["PRESETS", "DenseNet", "DenseNetConfig", "build_classifier", "classifier_config", "load_classifier",
           "SCHEDULES", "NonFiniteLoss", "TrainConfig", "accuracy", "fit"]
