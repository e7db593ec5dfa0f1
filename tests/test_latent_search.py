"""Unrestricted latent search, on a tiny trained classifier and a fitted generator / AC critic: the song2018
setting is the reference's objective and algorithm (checked against a hand computation and an independent
re-implementation); the fast setting flips most predictions while the AC head keeps the class; every reported
success survives an independent fp32 re-judgement; pure-latent images are exactly G(z, y)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from attacks import SEARCHES, SearchConfig, search_objective, unrestricted_search
from tests.tiny_digits import trained_tiny_model
from tests.tiny_gan import tiny_gan

N = 40


@pytest.fixture(scope="module")
def models():
    g = tiny_gan()
    return g.generator, g.critic, trained_tiny_model()


def run(models, config="fast", steps=60, seed=0, n=N, **kw):
    G, D, f = models
    y = torch.arange(n) % 10
    cfg = SEARCHES[config] if isinstance(config, str) else config
    return y, unrestricted_search(G, D, f, y, config=cfg, steps=steps,
                                  generator_rng=torch.Generator().manual_seed(seed), **kw)


@pytest.fixture(scope="module")
def result(models):
    return run(models)


def _rejudged(models, y, r, targets=None, ac_confidence=0.0):
    """An independent fp32 verdict on what the search returned: the classifier on x, the AC head on G(z, y) (its
    argmax, and with ``ac_confidence`` its probability of class y)."""
    G, D, f = models
    with torch.no_grad():
        pred, ac_logits = f(r.x).argmax(1), D(G(r.z, y)).class_logits
    ac = ac_logits.argmax(1)
    fooled = pred != y if targets is None else pred == targets
    sure = ac_logits.softmax(1).gather(1, y[:, None]).squeeze(1) >= ac_confidence
    return fooled & (ac == y) & sure, pred, ac


def test_fast_search_flips_most_predictions_while_the_ac_head_keeps_the_class(models, result):
    G, D, f = models
    y, r = result
    with torch.no_grad():
        assert (f(r.x0).argmax(1) == y).float().mean() >= 0.75          # the start samples are recognised
    assert r.success.float().mean() >= 0.6          # lr 0.1 keeps z near z0: 67% on this tiny GAN, 99% on Fashion
    assert r.x.shape == r.x0.shape == (N, 1, 32, 32) and 0 <= r.x.min() and r.x.max() <= 1


@pytest.mark.parametrize("config", ["fast", "song2018", "confident"])
def test_every_reported_success_survives_an_independent_fp32_verdict(models, config):
    G, _, _ = models
    y, r = run(models, config, steps=40)
    success, pred, ac = _rejudged(models, y, r, ac_confidence=SEARCHES[config].ac_confidence)
    assert r.success.any()
    assert torch.equal(success, r.success) and torch.equal(pred, r.pred) and torch.equal(ac, r.ac_pred)
    with torch.no_grad():                                              # pure latent: the image is G(z, y) exactly
        assert torch.equal(r.x, G(r.z, y)) and torch.equal(r.x0, G(r.z0, y))
    assert r.tau is None


def test_succeeded_samples_are_frozen(models, result):
    y, short = result
    _, long = run(models, steps=120)
    done = short.success & ~short.start_success
    assert done.any() and (short.steps_taken[done] < 60).all()
    assert torch.equal(long.x[done], short.x[done]) and torch.equal(long.z[done], short.z[done])
    assert torch.equal(long.steps_taken[done], short.steps_taken[done])
    assert long.success.sum() >= short.success.sum()


# ----------------------------------------------------------------------------- the reference, exactly

def _reference_objective(logits, ac_logits, z, z0, y, targets, lambda1=100.0, lambda2=100.0, z_eps=0.1):
    """ermongroup/generative_adversary main.py, written out as its TF code computes it (batch means)."""
    k = logits.shape[1]
    if targets is None:                        # untargeted: reduce_mean(reduce_min over j != s of CE(logits, j))
        ces = torch.stack([F.cross_entropy(logits, torch.full_like(y, j), reduction="none") for j in range(k)], 1)
        ces = ces.masked_fill(F.one_hot(y, k).bool(), float("inf"))
        term = ces.min(1).values.mean()
    else:
        term = F.cross_entropy(logits, targets)
    return (term + lambda1 * torch.clamp((z0 - z) ** 2 - z_eps ** 2, min=0.0).mean()
            + lambda2 * F.cross_entropy(ac_logits, y))


@pytest.mark.parametrize("targeted", [False, True])
def test_song2018_objective_is_the_references_formula(models, targeted):
    G, D, f = models
    g = torch.Generator().manual_seed(3)
    y = torch.arange(64) % 10                                           # the reference's batch of 64
    t = (y + 1 + torch.randint(0, 9, (64,), generator=g)) % 10 if targeted else None
    z0 = torch.randn(64, 16, generator=g)
    z = z0 + 0.3 * torch.randn(64, 16, generator=g)
    with torch.no_grad():
        x = G(z, y)
        logits, ac = f(x), D(x).class_logits
    ours = search_objective(SEARCHES["song2018"], logits, ac, z, z0, y, t)
    assert ours.item() == pytest.approx(_reference_objective(logits, ac, z, z0, y, t).item(), rel=1e-5)


def _reference_search(models, y, z0, steps, seed):
    """An independent re-implementation of the reference's loop: SGD lr 1 on the batch-mean objective, Gaussian
    noise of variance 0.01 / (1 + i)^0.55 on the z gradient, success judged once after the last step."""
    G, D, f = models
    z, rng = z0.clone(), torch.Generator().manual_seed(seed)
    for i in range(steps):
        z.requires_grad_(True)
        x = G(z, y)
        obj = _reference_objective(f(x), D(x).class_logits, z, z0, y, None)
        (grad,) = torch.autograd.grad(obj, z)
        noise = torch.randn(z.shape, generator=rng) * (0.01 / (1.0 + i) ** 0.55) ** 0.5
        z = (z - 1.0 * (grad + noise)).detach()
    with torch.no_grad():
        x = G(z, y)
        return (f(x).argmax(1) != y) & (D(x).class_logits.argmax(1) == y)


STEPS = 60     # the reference runs 1,000; the algorithm is the same at any length (kept short for the suite)


def test_song2018_agrees_with_an_independent_reimplementation(models):
    G, D, f = models
    for m in models:
        m.eval()
    y = torch.arange(64) % 10
    z0 = torch.randn(64, 16, generator=torch.Generator().manual_seed(7))
    ours = unrestricted_search(G, D, f, y, config=SEARCHES["song2018"], steps=STEPS, z0=z0,
                               generator_rng=torch.Generator().manual_seed(11))
    theirs = _reference_search(models, y, z0, STEPS, seed=11)
    assert (ours.success == theirs).float().mean() >= 0.95               # the same noise: near-identical runs
    assert abs(ours.success.float().mean() - theirs.float().mean()) <= 0.05
    assert (ours.steps_taken == STEPS).all()                             # no early stop: every step is taken
    assert theirs.any() and not theirs.all()                             # a run that tells successes apart


def test_pixel_noise_is_judged_apart_from_the_latent_image(models):
    G, D, _ = models
    y, r = run(models, steps=5, n=10, eps_pix=0.1)
    assert r.tau is not None and (r.x - G(r.z, y)).abs().max() <= 0.1 + 1e-6
    with torch.no_grad():                                              # the AC head judges G(z), before the noise
        assert torch.equal(r.ac_pred, D(G(r.z, y)).class_logits.argmax(1))


def test_deterministic_with_a_seeded_rng(models):
    cfg = dataclasses.replace(SEARCHES["song2018"], batch_size=8)
    _, a = run(models, cfg, steps=5, n=8)
    _, b = run(models, cfg, steps=5, n=8)
    assert torch.equal(a.x, b.x) and torch.equal(a.z, b.z)


def test_models_left_as_found_and_no_parameter_grads(models):
    G, D, f = models
    G.train(), D.train(), f.train()
    frozen = next(D.parameters())
    frozen.requires_grad_(False)
    grads = [p.grad for m in models for p in m.parameters()]
    grads = [None if g is None else g.clone() for g in grads]
    try:
        run(models, steps=3, n=6)
        assert G.training and D.training and f.training
        assert not frozen.requires_grad
        assert all(p.requires_grad for p in G.parameters())
        after = [p.grad for m in models for p in m.parameters()]        # untouched (None or as before)
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(after, grads))
    finally:
        G.eval(), D.eval(), f.eval()
        frozen.requires_grad_(True)


def test_targeted_success_means_the_target_class(models):
    t = (torch.arange(20) + 1) % 10
    y, r = run(models, steps=30, n=20, targets=t)
    assert r.success.any()
    assert torch.equal(_rejudged(models, y, r, t)[0], r.success)
    assert (r.pred[r.success] == t[r.success]).all() and (r.ac_pred[r.success] == y[r.success]).all()


def _ac_probability(models, y, z):
    """The AC head's fp32 probability of class ``y`` in G(z, y), per sample."""
    G, D, _ = models
    with torch.no_grad():
        return D(G(z, y)).class_logits.softmax(1).gather(1, y[:, None]).squeeze(1)


def test_ac_confidence_success_needs_a_confident_ac_head(models):
    """A success under ``ac_confidence`` c is an ordinary success whose AC-head probability of the source class is
    at least c, re-judged in fp32. Without early stop the trajectory is the same, so its successes are exactly the
    ordinary ones that clear c (a subset, strictly smaller here)."""
    plain = dataclasses.replace(SEARCHES["fast"], early_stop=False)
    y, r0 = run(models, plain, steps=30)
    _, r1 = run(models, dataclasses.replace(plain, ac_confidence=0.9), steps=30)
    assert torch.equal(r0.z, r1.z)
    assert torch.equal(r1.success, r0.success & (_ac_probability(models, y, r1.z) >= 0.9))
    assert r1.success.any() and r1.success.sum() < r0.success.sum()
    _, r2 = run(models, dataclasses.replace(SEARCHES["fast"], ac_confidence=0.9), steps=30)   # with early stop
    sure = _ac_probability(models, y, r2.z) >= 0.9
    assert r2.success.any() and sure[r2.success].all()
    assert torch.equal(_rejudged(models, y, r2, ac_confidence=0.9)[0], r2.success)


def test_adam_search_steps_are_torch_adams_on_the_same_objective(models):
    """``optimizer="adam"``: each z step is ``torch.optim.Adam``'s on the summed per-sample objective (no early stop,
    fp32, so every sample takes every step)."""
    G, D, f = models
    for m in models:
        m.eval()
    cfg = SearchConfig(steps=4, lr=0.08, lambda1=1.0, lambda2=200.0, optimizer="adam", betas=(0.5, 0.999),
                       early_stop=False, fast=False)
    y = torch.arange(N) % 10
    z0 = torch.randn(N, G.cfg.z_dim, generator=torch.Generator().manual_seed(3))
    ours = unrestricted_search(G, D, f, y, config=cfg, z0=z0)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.08, betas=(0.5, 0.999), eps=1e-8)
    for _ in range(cfg.steps):
        x = G(z, y)
        (z.grad,) = torch.autograd.grad(search_objective(cfg, f(x), D(x).class_logits, z, z0, y), z)
        opt.step()
    assert torch.allclose(ours.z, z.detach(), atol=1e-5)
    assert not torch.allclose(ours.z, z0, atol=1e-2)                     # it moved
    sgd = unrestricted_search(G, D, f, y, config=dataclasses.replace(cfg, optimizer="sgd"), z0=z0)
    assert not torch.allclose(sgd.z, ours.z, atol=1e-3)                  # and not as plain SGD does


def test_bad_settings_raise():
    with pytest.raises(ValueError):
        SearchConfig(steps=1, lr=0.0, lambda1=1.0, lambda2=1.0)
    with pytest.raises(ValueError, match="objective"):
        SearchConfig(steps=1, lr=1.0, lambda1=1.0, lambda2=1.0, objective="ce")
    with pytest.raises(ValueError, match="ac_confidence"):
        SearchConfig(steps=1, lr=1.0, lambda1=1.0, lambda2=1.0, ac_confidence=1.0)
    with pytest.raises(ValueError, match="optimizer"):
        SearchConfig(steps=1, lr=1.0, lambda1=1.0, lambda2=1.0, optimizer="rmsprop")
    with pytest.raises(ValueError, match="betas"):
        SearchConfig(steps=1, lr=1.0, lambda1=1.0, lambda2=1.0, optimizer="adam", betas=(0.9, 1.0))
