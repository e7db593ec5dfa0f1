"""Attack grid kinds for ``grid --kind``: fgsm and pgd (clean | adversarial | amplified perturbation),
and unrestricted (start G(z0, y) | found G(z*, y) | difference)."""
from __future__ import annotations

from pathlib import Path

from .common import UserError
from .gan import grid_kind


def _attack_grid(kind: str, *, classifier, out, device, seed, scale, data_dir="datasets", eps=None, rows=8, **_) -> Path:
    from pipeline import attack_grid
    if classifier is None:
        raise UserError(f"--kind {kind} needs --classifier RUN (a classifier run directory or checkpoint)")
    return attack_grid(kind, classifier, out, data_dir=data_dir, eps=eps, rows=rows, device=device, seed=seed,
                       scale=scale)


@grid_kind("fgsm")
def fgsm_grid(**options) -> Path:
    """Test images, their zero-start FGSM versions and the perturbation, with true/predicted classes."""
    return _attack_grid("fgsm", **options)


@grid_kind("pgd")
def pgd_grid(**options) -> Path:
    """Test images, their PGD-20 versions and the perturbation, with true/predicted classes."""
    return _attack_grid("pgd", **options)


@grid_kind("unrestricted")
def unrestricted_grid(*, classifier, gan_run, out, device, seed, scale, data_dir="datasets", rows=8, **_) -> Path:
    """Unrestricted adversarial examples found by latent search against the classifier."""
    from pipeline import unrestricted_grid as draw
    if classifier is None or gan_run is None:
        raise UserError("--kind unrestricted needs --classifier RUN and --gan RUN")
    return draw(classifier, gan_run, out, data_dir=data_dir, rows=rows, device=device, seed=seed, scale=scale)
