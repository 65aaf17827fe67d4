"""FDistillLoss against the paper's gradient and the official code's steps, each with a wrong variant that fails."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_fdistill.divergences import f_weight
from gradhub_fdistill.loss import FDistillLoss

EPS = 1e-6


def batch(n: int = 24, shape: tuple[int, ...] = (3, 2), seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=dtype)
    teacher = x + 0.3 * torch.randn(n, *shape, generator=g, dtype=dtype)
    fake = x + 0.3 * torch.randn(n, *shape, generator=g, dtype=dtype)
    logits = 3 * torch.randn(n, 4, generator=g, dtype=dtype)  # (B, D): the mean over D is the logit
    t = torch.rand(n, generator=g, dtype=dtype)
    return x, teacher, fake, logits, t


def reference_vsd(x, teacher, fake):
    """DMD/VSD's pseudo-target loss (FastGen common_loss.variational_score_distillation_loss, re-derived)."""
    with torch.no_grad():
        w = 1 / ((x - teacher).abs().flatten(1).mean(1) + EPS)
        target = x - (fake - teacher) * w.reshape(-1, *[1] * (x.dim() - 1))
    return 0.5 * (x - target).square().mean()


def manual_weights(
    logits, t, divergence, clip=(0.1, 20.0), n_bins=10, t_range=(0.0, 1.0), ema=0.0, bins=None, per_bin=True
):
    """Steps 1-3 written out sample by sample and bin by bin; returns (h, updated bins)."""
    r = logits.flatten(1).mean(1).clamp(-10, 10).exp()
    if clip is not None:
        r = r.clamp(*clip)
    bins = torch.ones(n_bins, dtype=r.dtype) if bins is None else bins.clone()
    if per_bin:
        width = (t_range[1] - t_range[0]) / n_bins
        index = [min(max(math.floor((ti - t_range[0]) / width), 0), n_bins - 1) for ti in t.tolist()]
        for k in set(index):
            members = [i for i, j in enumerate(index) if j == k]
            bins[k] = ema * bins[k] + (1 - ema) * r[members].mean()
        r = torch.stack([r[i] / (bins[index[i]] + EPS) for i in range(len(index))])
    h = f_weight(r, divergence)
    return h / (h.mean() + EPS), bins


def gradient(loss, x, *rest):
    x = x.clone().requires_grad_(True)
    value = loss(x, *rest)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def expected_gradient(x, teacher, fake, h):
    w = h / ((x - teacher).abs().flatten(1).mean(1) + EPS)
    return (fake - teacher) * w.reshape(-1, *[1] * (x.dim() - 1)) / x.numel()


# (b) reverse KL is DMD / VSD ------------------------------------------------------------------


def test_rkl_equals_the_dmd_vsd_loss_and_gradient():
    x, teacher, fake, logits, t = batch()
    value, grad = gradient(FDistillLoss(divergence="rkl", normalize_h=False), x, teacher, fake, logits, t)
    reference, reference_grad = gradient(lambda x, T, F, *_: reference_vsd(x, T, F), x, teacher, fake)
    assert abs(value - reference) <= 1e-7 * max(1.0, abs(reference.item()))
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=0)
    # with h normalised by its mean (the default), h = 1 / (1 + eps): the value (h^2) to 2 eps, relative
    value, grad = gradient(FDistillLoss(divergence="rkl"), x, teacher, fake, logits, t)
    assert value.item() == pytest.approx(reference.item() / (1 + EPS) ** 2, rel=1e-12)
    torch.testing.assert_close(grad, reference_grad, rtol=2 * EPS, atol=0)


def test_rkl_ignores_the_discriminator_other_divergences_do_not():
    x, teacher, fake, logits, t = batch()
    reference = gradient(FDistillLoss(divergence="rkl"), x, teacher, fake, logits, t)[1]
    assert torch.equal(gradient(FDistillLoss(divergence="rkl"), x, teacher, fake, -logits, t)[1], reference)
    # a wrong "DMD limit": js (or any other h) is not the VSD gradient
    for divergence in ("kl", "js", "sh"):
        other = gradient(FDistillLoss(divergence=divergence), x, teacher, fake, logits, t)[1]
        assert not torch.allclose(other, reference, rtol=1e-3)


# (c) the gradient is (D_F - D_T) w h / numel ---------------------------------------------------


@pytest.mark.parametrize("divergence", ["js", "kl", "neyman", "jf"])
def test_gradient_is_weighted_score_difference(divergence):
    x, teacher, fake, logits, t = batch(seed=1)
    h, _ = manual_weights(logits, t, divergence)
    grad = gradient(FDistillLoss(divergence=divergence), x, teacher, fake, logits, t)[1]
    torch.testing.assert_close(grad, expected_gradient(x, teacher, fake, h), rtol=1e-12, atol=0)


def test_loss_value_is_half_mean_square_of_the_step():
    x, teacher, fake, logits, t = batch(seed=2)
    h, _ = manual_weights(logits, t, "js")
    value = FDistillLoss()(x, teacher, fake, logits, t)
    step = expected_gradient(x, teacher, fake, h) * x.numel()
    assert value.item() == pytest.approx(0.5 * step.square().mean().item(), rel=1e-12)


def test_wrong_variants_fail_the_gradient_check():
    """No clipping, normalisation per batch instead of per bin, no DMD normaliser: each misses the gradient."""
    x, teacher, fake, logits, t = batch(seed=1)
    grad = gradient(FDistillLoss(divergence="kl"), x, teacher, fake, logits, t)[1]
    assert bool((logits.mean(1).exp() > 20).any() & (logits.mean(1).exp() < 0.1).any())  # both bounds in play
    unclipped, _ = manual_weights(logits, t, "kl", clip=None)
    per_batch, _ = manual_weights(logits, t, "kl", n_bins=1)
    for wrong in (unclipped, per_batch):
        assert not torch.allclose(grad, expected_gradient(x, teacher, fake, wrong), rtol=1e-3)
    right, _ = manual_weights(logits, t, "kl")
    undivided = (fake - teacher) * right.reshape(-1, 1, 1) / x.numel()
    assert not torch.allclose(grad, undivided, rtol=1e-3)
    torch.testing.assert_close(grad, expected_gradient(x, teacher, fake, right), rtol=1e-12, atol=0)


def test_without_dmd_normalizer_the_weight_is_h_alone():
    x, teacher, fake, logits, t = batch(seed=3)
    h, _ = manual_weights(logits, t, "sf")
    grad = gradient(FDistillLoss(divergence="sf", dmd_normalizer=False), x, teacher, fake, logits, t)[1]
    torch.testing.assert_close(grad, (fake - teacher) * h.reshape(-1, 1, 1) / x.numel(), rtol=1e-12, atol=0)


# (d) a student that matches the teacher gets no gradient -----------------------------------------


@pytest.mark.parametrize("divergence", ["rkl", "kl", "js", "sf", "neyman", "sh", "jf"])
def test_equal_teacher_and_fake_give_zero_gradient(divergence):
    x, teacher, _, logits, t = batch(seed=4)
    value, grad = gradient(FDistillLoss(divergence=divergence), x, teacher, teacher.clone(), logits, t)
    assert value.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_descent_moves_toward_the_teacher_and_away_from_the_fake():
    x, teacher, fake, logits, t = batch(seed=5)
    grad = gradient(FDistillLoss(), x, teacher, fake, logits, t)[1]
    assert (-(grad * (teacher - fake)).flatten(1).sum(1) > 0).all()


# (e) ratio clipping and the per-bin normalisation -----------------------------------------------


def ratio_weights(loss: FDistillLoss, r: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    return loss.weights(r.log()[:, None], t)


def test_ratio_is_clipped_and_logits_clamped():
    loss = FDistillLoss(divergence="kl", ratio_normalization=False, normalize_h=False)
    r = torch.tensor([0.001, 0.05, 0.5, 5.0, 100.0], dtype=torch.float64)
    assert torch.allclose(ratio_weights(loss, r), torch.tensor([0.1, 0.1, 0.5, 5.0, 20.0], dtype=torch.float64))
    unclipped = FDistillLoss(divergence="kl", ratio_normalization=False, normalize_h=False, ratio_clip=None)
    logits = torch.tensor([[-50.0], [0.0], [50.0]], dtype=torch.float64)
    torch.testing.assert_close(
        unclipped.weights(logits, None), torch.tensor([math.exp(-10), 1.0, math.exp(10)]).double()
    )
    # clipping not applied would keep r = 100: the clipped weight is 20
    assert ratio_weights(loss, torch.tensor([100.0], dtype=torch.float64)).item() != 100.0


def test_constant_ratio_in_one_bin_normalises_to_one():
    loss = FDistillLoss(divergence="kl", normalize_h=False, ratio_ema=0.5)
    r = torch.full((6,), 7.0, dtype=torch.float64)
    t = torch.full((6,), 0.33, dtype=torch.float64)  # bin 3 of 10
    first = ratio_weights(loss, r, t)
    for _ in range(60):
        last = ratio_weights(loss, r, t)
    assert first[0].item() == pytest.approx(7.0 / 4.0, rel=1e-5)  # bin 3: 0.5 * 1 + 0.5 * 7 = 4
    torch.testing.assert_close(last, torch.ones_like(last), rtol=1e-5, atol=0)
    expected_bins = torch.ones(10)
    expected_bins[3] = 7.0
    torch.testing.assert_close(loss.bins, expected_bins, rtol=1e-6, atol=0)


def test_normalisation_is_per_bin_not_per_batch():
    """Two noise levels with ratios 0.5 and 8: per bin both normalise to 1; one bin (per batch) cannot."""
    r = torch.tensor([0.5, 0.5, 8.0, 8.0], dtype=torch.float64)
    t = torch.tensor([0.05, 0.05, 0.95, 0.95], dtype=torch.float64)
    per_bin = ratio_weights(FDistillLoss(divergence="kl", normalize_h=False), r, t)
    torch.testing.assert_close(per_bin, torch.ones(4, dtype=torch.float64), rtol=1e-5, atol=0)
    per_batch = ratio_weights(FDistillLoss(divergence="kl", normalize_h=False, n_bins=1), r, t)
    assert not torch.allclose(per_batch, torch.ones(4, dtype=torch.float64), rtol=0.1)


def test_bins_update_only_where_the_batch_has_samples_and_t_outside_the_range_clamps():
    loss = FDistillLoss(divergence="kl", normalize_h=False, t_range=(0.0, 2.0), n_bins=4)
    r = torch.tensor([2.0, 3.0, 5.0], dtype=torch.float64)
    t = torch.tensor([-1.0, 0.1, 9.0], dtype=torch.float64)  # bins 0, 0, 3
    loss.weights(r.log()[:, None], t)
    torch.testing.assert_close(loss.bins, torch.tensor([2.5, 1.0, 1.0, 5.0]), rtol=1e-6, atol=0)


def test_without_normalisation_the_bins_are_untouched_and_t_optional():
    loss = FDistillLoss(ratio_normalization=False)
    x, teacher, fake, logits, _ = batch()
    assert torch.isfinite(loss(x, teacher, fake, logits))
    assert torch.equal(loss.bins, torch.ones(10))


# buffer, dtypes, distributed hook --------------------------------------------------------------------


def test_bins_are_a_buffer_that_round_trips_through_state_dict():
    x, teacher, fake, logits, t = batch()
    trained = FDistillLoss(ratio_ema=0.5)
    trained(x, teacher, fake, logits, t)
    state = trained.state_dict()
    assert set(state) == {"bins"} and not torch.equal(state["bins"], torch.ones(10))
    restored = FDistillLoss(ratio_ema=0.5)
    restored.load_state_dict(state)
    x2, teacher2, fake2, logits2, t2 = batch(seed=9)
    torch.testing.assert_close(
        gradient(restored, x2, teacher2, fake2, logits2, t2)[1],
        gradient(trained, x2, teacher2, fake2, logits2, t2)[1],
        rtol=0,
        atol=0,
    )
    fresh = gradient(FDistillLoss(ratio_ema=0.5), x2, teacher2, fake2, logits2, t2)[1]
    assert not torch.equal(fresh, gradient(restored, x2, teacher2, fake2, logits2, t2)[1])


def test_weights_in_float32_for_bfloat16_inputs_and_under_autocast():
    x, teacher, fake, logits, t = (v.float() for v in batch())
    reference = FDistillLoss()
    reference(x, teacher, fake, logits, t)
    low = FDistillLoss()
    value = low(*(v.bfloat16() for v in (x, teacher, fake, logits)), t)
    assert value.dtype == torch.bfloat16 and low.last_weights.dtype == torch.float32
    assert low.bins.dtype == torch.float32
    torch.testing.assert_close(low.last_weights, reference.last_weights, rtol=0.05, atol=0)
    autocast = FDistillLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast(x, teacher, fake, logits.bfloat16(), t)
    assert autocast.last_weights.dtype == torch.float32


def test_all_reduce_hook_sums_bin_statistics_and_h():
    """A hook standing for two processes with the same batch (it doubles every sum) changes no weight."""
    x, teacher, fake, logits, t = batch()
    calls = []

    def two_identical_processes(tensor):
        calls.append(tuple(tensor.shape))
        tensor.mul_(2)

    local = FDistillLoss()
    local(x, teacher, fake, logits, t)
    reduced = FDistillLoss(all_reduce=two_identical_processes)
    reduced(x, teacher, fake, logits, t)
    assert calls == [(2, 10), (2,)]  # (counts, sums) per bin, then (sum of h, count)
    torch.testing.assert_close(reduced.last_weights, local.last_weights, rtol=1e-12, atol=0)
    torch.testing.assert_close(reduced.bins, local.bins, rtol=1e-6, atol=0)
    # a hook that does not reduce what it is given changes the weights: the sums are really read from it
    skewed = FDistillLoss(all_reduce=lambda tensor: tensor[0].mul_(3))
    skewed(x, teacher, fake, logits, t)
    assert not torch.allclose(skewed.last_weights, local.last_weights, rtol=1e-3)


def test_gradient_reaches_only_x_gen():
    x, teacher, fake, logits, t = (v.clone().requires_grad_(True) for v in batch())
    FDistillLoss()(x, teacher, fake, logits, t).backward()
    assert x.grad is not None and teacher.grad is None and fake.grad is None and logits.grad is None
