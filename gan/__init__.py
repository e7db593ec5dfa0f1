"""AC-GAN with gradient penalty: models, loss terms, the training loop, sampling and quality metrics."""
from .losses import (AdversarialLoss, adversarial_loss, aux_class_loss, gradient_penalty, loss_names,
                     penalty, penalty_names, r1_penalty, register_adversarial_loss, register_penalty)
from .metrics import frechet_distance, gan_metrics, inception_score
from .models import MODEL_PRESETS, Critic, CriticOutput, GANConfig, Generator, build_gan, model_config
from .sample import (LoadedGAN, check_compatible, load_gan, load_generator, recalibrate_bn, sample,
                     save_sample_grid, truncate)
from .train import PRESETS, TRAIN_PRESETS, GANTrainer, TrainConfig, ema_update, preset_configs, train_gan

__all__ = ["AdversarialLoss", "adversarial_loss", "aux_class_loss", "gradient_penalty", "loss_names", "penalty",
           "penalty_names", "r1_penalty", "register_adversarial_loss", "register_penalty", "frechet_distance",
           "gan_metrics", "inception_score", "MODEL_PRESETS", "Critic", "CriticOutput", "GANConfig", "Generator",
           "build_gan", "model_config", "LoadedGAN", "check_compatible", "load_gan", "load_generator",
           "recalibrate_bn", "sample", "save_sample_grid", "truncate", "PRESETS", "TRAIN_PRESETS", "GANTrainer",
           "TrainConfig", "ema_update", "preset_configs", "train_gan"]
