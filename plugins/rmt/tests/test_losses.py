"""The symmetric cross-entropy (Eq. 6) and the contrastive loss (Eq. 3) against direct formulas on tiny inputs.

Each key check is also run on a deliberately wrong variant, which must fail it.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from gradhub_rmt.losses import contrastive_loss, cross_entropy_between, symmetric_cross_entropy
from rmt_reference import closed_form, reference_contrastive


def _logits(*shape: int, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


# --- wrong variants -----------------------------------------------------------------------------


def sce_reverse_detached(z: torch.Tensor, z_teacher: torch.Tensor) -> torch.Tensor:
    """Wrong: the student's probabilities in CE(p -> q) detached (only the forward CE trains the student)."""
    return 0.5 * (cross_entropy_between(z_teacher, z) + cross_entropy_between(z.detach(), z_teacher))


def sce_student_detached(z: torch.Tensor, z_teacher: torch.Tensor) -> torch.Tensor:
    """Wrong direction: the student side detached, the gradient going to the teacher's logits."""
    return 0.5 * (cross_entropy_between(z_teacher, z.detach()) + cross_entropy_between(z.detach(), z_teacher))


def sce_half_weights(z: torch.Tensor, z_teacher: torch.Tensor, z_aug: torch.Tensor) -> torch.Tensor:
    """Wrong: 1/2 per view pair (the sum of two two-term SCEs) instead of the official 1/4."""
    return symmetric_cross_entropy(z, z_teacher, reduction="none") + symmetric_cross_entropy(
        z_aug, z_teacher, reduction="none"
    )


# --- the symmetric cross-entropy ----------------------------------------------------------------


@pytest.mark.parametrize("with_aug", [False, True])
def test_sce_equals_closed_form(with_aug: bool) -> None:
    z, z_teacher, z_aug = _logits(6, 5, seed=1), _logits(6, 5, seed=2), _logits(6, 5, seed=3)
    aug = z_aug if with_aug else None
    expected = closed_form(z, z_teacher, aug)
    per_sample = symmetric_cross_entropy(z, z_teacher, aug, reduction="none")
    torch.testing.assert_close(per_sample, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(symmetric_cross_entropy(z, z_teacher, aug), expected.mean(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        symmetric_cross_entropy(z, z_teacher, aug, reduction="sum"), expected.sum(), rtol=1e-12, atol=1e-12
    )


def test_sce_with_aug_weights_each_term_a_quarter_and_wrong_weights_fail() -> None:
    z, z_teacher, z_aug = _logits(6, 5, seed=1), _logits(6, 5, seed=2), _logits(6, 5, seed=3)
    expected = closed_form(z, z_teacher, z_aug)
    # With z_aug = z the four-term loss is the two-term one (official symmetric_entropy vs softmax_entropy).
    torch.testing.assert_close(
        symmetric_cross_entropy(z, z_teacher, z, reduction="none"),
        symmetric_cross_entropy(z, z_teacher, reduction="none"),
        rtol=1e-12,
        atol=1e-12,
    )
    assert not torch.allclose(sce_half_weights(z, z_teacher, z_aug), expected, rtol=1e-6)


def test_sce_symmetric_without_the_augmented_view() -> None:
    """(b) Swapping student and teacher logits leaves the two-term loss unchanged, sample by sample."""
    z, z_teacher = _logits(7, 4, seed=4), _logits(7, 4, seed=5)
    torch.testing.assert_close(
        symmetric_cross_entropy(z, z_teacher, reduction="none"),
        symmetric_cross_entropy(z_teacher, z, reduction="none"),
        rtol=1e-14,
        atol=1e-14,
    )
    # The plain CE is not symmetric: a check of symmetry that a one-directional loss would fail.
    assert not torch.allclose(cross_entropy_between(z_teacher, z), cross_entropy_between(z, z_teacher))


def analytic_gradient(z: torch.Tensor, z_teacher: torch.Tensor) -> torch.Tensor:
    """d/dz of 1/2 [CE(q -> p) + CE(p -> q)] per sample: 1/2 (p - q) - 1/2 p (log q - <p, log q>)."""
    p, q = z.softmax(1), z_teacher.softmax(1)
    log_q = z_teacher.log_softmax(1)
    forward = p - q  # d CE(q -> p) / dz: unbounded weight on a confident wrong teacher (the paper's argument)
    reverse = -p * (log_q - (p * log_q).sum(1, keepdim=True))  # d CE(p -> q) / dz
    return 0.5 * (forward + reverse)


@pytest.mark.parametrize(
    ("loss", "passes"),
    [(symmetric_cross_entropy, True), (sce_reverse_detached, False), (sce_student_detached, False)],
    ids=["implemented", "wrong-reverse-detached", "wrong-student-detached"],
)
def test_sce_gradient_matches_the_analytic_gradient(loss, passes: bool) -> None:
    """(a) autograd's gradient of the per-sample loss w.r.t. the student logits equals the closed form."""
    z = _logits(5, 4, seed=6).requires_grad_(True)
    z_teacher = _logits(5, 4, seed=7).requires_grad_(True)  # so that a wrong variant can route its gradient there
    values = loss(z, z_teacher) if loss is not symmetric_cross_entropy else loss(z, z_teacher, reduction="none")
    (gradient,) = torch.autograd.grad(values.sum(), z, allow_unused=True)
    gradient = torch.zeros_like(z) if gradient is None else gradient
    expected = analytic_gradient(z.detach(), z_teacher.detach())
    assert torch.allclose(gradient, expected, rtol=1e-10, atol=1e-12) is passes


def test_sce_gradient_with_aug_splits_over_the_two_views() -> None:
    z, z_aug = _logits(5, 4, seed=8).requires_grad_(True), _logits(5, 4, seed=9).requires_grad_(True)
    z_teacher = _logits(5, 4, seed=10)
    grad_z, grad_aug = torch.autograd.grad(symmetric_cross_entropy(z, z_teacher, z_aug, reduction="sum"), (z, z_aug))
    torch.testing.assert_close(grad_z, 0.5 * analytic_gradient(z.detach(), z_teacher), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_aug, 0.5 * analytic_gradient(z_aug.detach(), z_teacher), rtol=1e-10, atol=1e-12)


def test_sce_reverse_term_bounded_where_forward_ce_is_not() -> None:
    """The paper's argument: against a confidently wrong teacher, CE(q -> p)'s gradient has norm ~ sqrt 2 (p - q
    between two near one-hot vectors), CE(p -> q)'s vanishes when the student is confident too."""
    z = torch.tensor([[12.0, 0.0, 0.0]], dtype=torch.float64)  # the student: class 0, confidently
    z_teacher = torch.tensor([[0.0, 12.0, 0.0]], dtype=torch.float64)  # the teacher: class 1, confidently
    p, q, log_q = z.softmax(1), z_teacher.softmax(1), z_teacher.log_softmax(1)
    forward = p - q
    reverse = -p * (log_q - (p * log_q).sum(1, keepdim=True))
    assert forward.norm() > 1.4
    assert reverse.norm() < 1e-3


def test_sce_computes_half_precision_in_float32() -> None:
    z, z_teacher = _logits(4, 3, seed=11).half(), _logits(4, 3, seed=12).half()
    value = symmetric_cross_entropy(z, z_teacher, reduction="none")
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), closed_form(z.double(), z_teacher.double()), rtol=1e-6, atol=1e-6)


# --- the contrastive loss -----------------------------------------------------------------------


def contrastive_with_self_in_denominator(embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """Wrong: the anchor itself counted among the negatives of the softmax."""
    count, views, _ = embeddings.shape
    unit = torch.nn.functional.normalize(embeddings, dim=-1).transpose(0, 1).reshape(views * count, -1)
    log_prob = (unit @ unit.T / temperature).log_softmax(1)
    same = (torch.arange(views * count)[:, None] % count) == (torch.arange(views * count)[None, :] % count)
    positives = same & ~torch.eye(views * count, dtype=torch.bool)
    return -(log_prob * positives).sum(1).div(views - 1).mean()


@pytest.mark.parametrize(("views", "mode"), list(itertools.product([2, 3], ["all", "one"])))
def test_contrastive_loss_equals_the_direct_formula(views: int, mode: str) -> None:
    """(d) Against the per-anchor formula; with 2 views and mode 'all' it is SimCLR's NT-Xent."""
    embeddings = _logits(4, views, 5, seed=13, scale=1.0)
    value = contrastive_loss(embeddings, temperature=0.5, contrast_mode=mode)
    torch.testing.assert_close(value, reference_contrastive(embeddings, 0.5, mode), rtol=1e-12, atol=1e-12)


def test_contrastive_loss_two_views_is_nt_xent() -> None:
    embeddings = _logits(3, 2, 4, seed=14, scale=1.0)
    unit = torch.nn.functional.normalize(embeddings, dim=-1)
    first, second = unit[:, 0], unit[:, 1]
    features = torch.cat([first, second])
    similarity = features @ features.T / 0.1
    similarity.fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(3) + 3, torch.arange(3)])
    nt_xent = torch.nn.functional.cross_entropy(similarity, partner)
    torch.testing.assert_close(contrastive_loss(embeddings, temperature=0.1), nt_xent, rtol=1e-12, atol=1e-12)


def test_contrastive_loss_wrong_variant_fails() -> None:
    embeddings = _logits(4, 3, 5, seed=15, scale=1.0)
    reference = reference_contrastive(embeddings, 0.5, "all")
    assert not torch.allclose(contrastive_with_self_in_denominator(embeddings, 0.5), reference, rtol=1e-6)
    # Without the L2 normalisation the loss changes (a scale of the embeddings must not matter).
    torch.testing.assert_close(
        contrastive_loss(3 * embeddings, temperature=0.5), contrastive_loss(embeddings, temperature=0.5)
    )


def test_contrastive_loss_gradient_is_finite_with_the_masked_self_similarity() -> None:
    embeddings = _logits(4, 3, 5, seed=16, scale=1.0).requires_grad_(True)
    (gradient,) = torch.autograd.grad(contrastive_loss(embeddings, temperature=0.1), embeddings)
    assert torch.isfinite(gradient).all()
    assert torch.autograd.gradcheck(lambda e: contrastive_loss(e, temperature=0.5), (embeddings,))
