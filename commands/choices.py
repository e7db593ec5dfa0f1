"""The CLI's static view of the library's registries and defaults.

``python cli.py --help`` and every ``COMMAND --help`` must answer in well under 2 s, and importing
torch alone takes longer than that, so the command modules import no library code at module level
(command bodies import what they call). The choices and defaults their options show are therefore
spelled out here; ``tests/test_cli_choices.py`` checks every one against the registry or dataclass
it mirrors, so they cannot drift apart.
"""
from __future__ import annotations

DATASETS = ("cifar100", "cifar10", "fashion-mnist", "digits")          # data.DATASETS
ARCHS = ("densenet-bc-100-12", "densenet-bc-40-12", "densenet-bc-190-40", "densenet-bc-22-8")  # classifier.PRESETS
AUGMENTERS = ("none", "fgsm", "free", "gan", "pgd", "unrestricted")     # augment.AUGMENTERS
SCHEDULES = ("multistep", "cosine", "constant")                         # classifier.SCHEDULES
ATTACK_LOSSES = ("ce", "cw")                                            # attacks.ATTACK_LOSSES
GRID_KINDS = ("samples", "fgsm", "pgd", "unrestricted")                 # pipeline.pictures.GRID_KINDS
GAN_PRESETS = ("cifar", "small")                                        # gan.PRESETS
GAN_LOSSES = ("wgan", "hinge")                                          # gan.loss_names()
GAN_PENALTIES = ("gp", "r1", "none")                                    # gan.penalty_names()
SEARCHES = ("song2018", "fast", "confident")                            # attacks.SEARCHES
BN_MODES = ("train", "eval")                                            # attacks.mode.BN_MODES
GUARD_MODES = ("warn", "stop")                                          # attacks.overfit.GUARD_MODES

# classifier.TrainConfig()
TRAIN = dict(epochs=300, batch_size=64, lr=0.1, schedule="multistep", weight_decay=1e-4, label_smoothing=0.0,
             amp=True, channels_last=True, nonfinite="stop", compile=False, sync_bn=False)

# gan.TrainConfig() with each preset's overrides, as `--help` shows them ("cifar: 100000, small: 2600")
GAN_TRAIN = dict(steps="cifar: 100000, small: 2600", batch_size="64", n_critic="cifar: 5, small: 2",
                 loss="wgan", penalty="gp", gp_weight="10.0", gp_every="cifar: 1, small: 4",
                 ac_weight_real="1.0", ac_weight_fake="cifar: 0.1, small: 1.0",
                 ema_decay="cifar: 0.999, small: 0.995", amp="True")
