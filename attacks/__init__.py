"""Attacks on [0, 1]-pixel classifiers, a library of their own: the augmenters (``augment/``) and the
evaluation (``pipeline/``) both use it; it never imports either.

- ``linf``: FGSM and PGD (L-inf, restarts), their losses, ``predict`` / ``correct`` (fp32 verdicts).
- ``mode`` / ``view``: attack mode (the model as attacks see it, restored afterwards) and the fast
  attack-time view (fx conv+BN fusion, channels-last, autocast).
- ``latent``: unrestricted adversarial examples by latent search in an AC-GAN (Song et al. 2018): the
  reference's search (``SEARCHES["song2018"]``) and the project's ``fast`` setting side by side.
- ``autoattack``: AutoAttack (Croce & Hein 2020) through torchattacks, the cross-check of ``robust``.
- ``robust``: clean / FGSM / PGD accuracy, worst case per sample.
- ``overfit``: the per-epoch catastrophic-overfitting guard of adversarial training.
"""
from .autoattack import autoattack_accuracy, torchattacks_robust
from .latent import SEARCHES, SearchConfig, SearchResult, per_sample_objective, search_objective, unrestricted_search
from .linf import ATTACK_LOSSES, attack_loss, ce_loss, correct, cw_loss, fgsm, pgd, predict, project, random_init
from .mode import attack_mode, exact, frozen
from .overfit import CatastrophicOverfitWarning, OverfitGuard, overfit_probe
from .robust import as_pixels, robust_accuracy
from .view import AttackView, as_logits

__all__ = ["autoattack_accuracy", "torchattacks_robust", "SEARCHES", "SearchConfig", "SearchResult", "per_sample_objective",
           "search_objective", "unrestricted_search", "ATTACK_LOSSES", "attack_loss", "ce_loss",
           "correct", "cw_loss", "fgsm", "pgd", "predict", "project", "random_init", "attack_mode", "exact",
           "frozen", "CatastrophicOverfitWarning", "OverfitGuard", "overfit_probe", "as_pixels",
           "robust_accuracy", "AttackView", "as_logits"]
