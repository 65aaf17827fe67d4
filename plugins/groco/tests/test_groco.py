"""GroCoLoss against the official compute_loss (read with diffsort), closed forms, the loss's properties (b)-(d)."""

from __future__ import annotations

import math

import diffsort
import pytest
import torch
import torch.nn.functional as F
from gradhub_groco.groco import GroCoLoss

from gradhub.claims import single_thread


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 matrix products (diffsort's) wait milliseconds on a second BLAS thread of a busy machine."""
    with single_thread():
        yield


def official_reading(
    views: torch.Tensor, n_pos: int, k: int, steepness: float, stop_grad: bool = True, transposed: bool = False
) -> torch.Tensor:
    """The official ``GroCo.forward``/``compute_loss`` as read (one anchor view at a time), sorting with diffsort.

    ``transposed=True`` is the WRONG index convention: group sums over P's input index instead of its rank.
    """
    total = 0.0
    for a in range(views.shape[0]):
        anchor = views[a]
        held = [views[j].detach() if stop_grad else views[j] for j in range(n_pos) if j != a]
        positives = [F.cosine_similarity(anchor, positive, dim=1) for positive in held]
        pos = torch.stack(positives, 1) if positives else anchor[:, :0]
        unit = anchor / anchor.norm(dim=1, keepdim=True).clamp_min(1e-8)
        neg = unit @ (unit.detach() if stop_grad else unit).T
        neg = neg.masked_fill(torch.eye(len(anchor), dtype=torch.bool), -math.inf)
        scores = torch.cat((neg.topk(k, 1).values.flip(1), pos.sort(1).values), 1)
        _, P = diffsort.DiffSortNet("odd_even", scores.shape[1], steepness=steepness, distribution="cauchy")(scores)
        if transposed:
            P = P.mT
        target = torch.eye(scores.shape[1], dtype=scores.dtype).expand_as(P)
        q_neg, q_pos = P[:, :, :k].sum(2).clip(0, 1), P[:, :, k:].sum(2).clip(0, 1)
        t_neg, t_pos = target[:, :, :k].sum(2), target[:, :, k:].sum(2)
        total = total + (F.binary_cross_entropy(q_pos, t_pos) + F.binary_cross_entropy(q_neg, t_neg)) / 2
    return total / views.shape[0]


CONFIGS = [  # n_augs, n_pos_augs, topk_neg, steepness, stop_grad
    (2, None, 3, 1.0, True),
    (3, None, 4, 2.0, True),
    (4, 2, 5, 1.0, True),  # multi-crop: 2 full-size views, 2 small crops
    (3, 1, 2, 5.0, True),  # one full-size view: its anchor has no positive
    (3, None, 3, 1.0, False),
    (4, 2, 3, 3.0, False),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_equals_the_official_loss_computed_with_diffsort(config: tuple) -> None:
    n_augs, n_pos, k, steepness, stop_grad = config
    views = torch.randn(n_augs, 9, 6, generator=torch.Generator().manual_seed(n_augs + k), dtype=torch.float64)
    views.requires_grad_()
    loss = GroCoLoss(n_augs=n_augs, n_pos_augs=n_pos, topk_neg=k, steepness=steepness, stop_grad=stop_grad)
    ours = loss(views)
    (gradient,) = torch.autograd.grad(ours, views)
    reference = official_reading(views, n_pos or n_augs, k, steepness, stop_grad)
    (reference_gradient,) = torch.autograd.grad(reference, views)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-13)
    torch.testing.assert_close(gradient, reference_gradient, rtol=0, atol=1e-13)
    # the same views as a list of (B, D) tensors
    torch.testing.assert_close(loss(list(views)), ours, rtol=0, atol=0)


def test_transposed_permutation_fails_the_official_comparison() -> None:
    """WRONG: group sums over the input index (P transposed) give another loss."""
    views = torch.randn(3, 9, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ours = GroCoLoss(n_augs=3, topk_neg=4, steepness=2.0)(views)
    wrong = official_reading(views, 3, 4, 2.0, transposed=True)
    assert (ours - wrong).abs() > 1e-3


def _two_views(seed: int) -> torch.Tensor:
    return torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _cosines(views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negatives) cosine similarities per anchor view and image: (2, B) and (2, B, B) with -inf diagonal."""
    unit = F.normalize(views, dim=-1)
    positive = torch.stack([(unit[0] * unit[1]).sum(-1), (unit[1] * unit[0]).sum(-1)])
    negatives = unit @ unit.mT
    eye = torch.eye(views.shape[1], dtype=torch.bool)
    return positive, negatives.masked_fill(eye, -math.inf)


def test_closed_form_one_negative_one_positive() -> None:
    """k = 1, two views: one comparator, loss = mean over anchors and images of -log f(s (pos - hardest neg)).

    (P = [[alpha, 1 - alpha], [1 - alpha, alpha]] with alpha = f(s (pos - neg)): every BCE entry is -log alpha.)
    """
    views, steepness = _two_views(0), 3.0
    positive, negatives = _cosines(views)
    alpha = torch.atan(steepness * (positive - negatives.max(-1).values)) / math.pi + 0.5
    expected = -alpha.log().mean()
    torch.testing.assert_close(GroCoLoss(topk_neg=1, steepness=steepness)(views), expected, rtol=0, atol=1e-14)
    weakest = torch.where(negatives.isinf(), math.inf, negatives).min(-1).values  # WRONG: the easiest negative
    wrong = -(torch.atan(steepness * (positive - weakest)) / math.pi + 0.5).log().mean()
    assert (wrong - expected).abs() > 1e-2


def _three_value_loss(positive: torch.Tensor, two: torch.Tensor, steepness: float, transposed: bool = False):
    """k = 2, one positive: s = (n1, n2, p) through odd-even layers (0,1), (1,2), (0,1), as 3 x 3 matrices."""
    s = torch.stack([two[..., 0], two[..., 1], positive], -1)  # (2, B, 3), ascending negatives first
    P = torch.eye(3, dtype=s.dtype).expand(*s.shape[:-1], 3, 3)
    for low, high in ((0, 1), (1, 2), (0, 1)):
        values = (s.unsqueeze(-2) @ P).squeeze(-2)
        alpha = torch.atan(steepness * (values[..., high] - values[..., low])) / math.pi + 0.5
        M = torch.eye(3, dtype=s.dtype).repeat(*s.shape[:-1], 1, 1)
        M[..., low, low], M[..., high, high] = alpha, alpha
        M[..., high, low], M[..., low, high] = 1 - alpha, 1 - alpha
        P = P @ M
    if transposed:
        P = P.mT
    q_neg, q_pos = P[..., :2].sum(-1), P[..., 2:].sum(-1)  # (2, B, 3)
    t_neg = torch.tensor([1.0, 1.0, 0.0], dtype=s.dtype)
    bce = -(t_neg * q_neg.log() + (1 - t_neg) * (1 - q_neg).log()) - (
        (1 - t_neg) * q_pos.log() + t_neg * (1 - q_pos).log()
    )
    return bce.mean() / 2


def test_closed_form_two_negatives_one_positive() -> None:
    """k = 2, two views: P as the product of the three odd-even layer matrices of (n1, n2, p); transposed fails."""
    views, steepness = _two_views(1), 2.0
    positive, negatives = _cosines(views)
    two = negatives.topk(2, dim=-1).values.flip(-1)
    expected = _three_value_loss(positive, two, steepness)
    torch.testing.assert_close(GroCoLoss(topk_neg=2, steepness=steepness)(views), expected, rtol=0, atol=1e-14)
    assert (_three_value_loss(positive, two, steepness, transposed=True) - expected).abs() > 1e-3  # WRONG


def test_wide_margin_gives_a_small_loss_and_reversed_order_a_large_one() -> None:
    """(b) Positives at similarity 1 and negatives at 0 (orthonormal images), steepness 1e4: loss < 1e-3;
    positives at -1 (below every negative): loss > 1."""
    images = torch.eye(16, dtype=torch.float64)
    loss = GroCoLoss(topk_neg=10, steepness=1e4)
    assert loss(torch.stack((images, images))) < 1e-3
    assert loss(torch.stack((images, -images))) > 1


def test_invariant_to_the_order_of_images_and_views() -> None:
    """(c) Pre-ordering makes the loss blind to the order of positives (views) and negatives (images)."""
    generator = torch.Generator().manual_seed(2)
    for n_augs, n_pos in ((3, None), (5, 3)):
        views = torch.randn(n_augs, 12, 4, generator=generator, dtype=torch.float64)
        loss = GroCoLoss(n_augs=n_augs, n_pos_augs=n_pos, topk_neg=5, steepness=3.0)
        value = loss(views)
        full = n_pos or n_augs
        shuffled = torch.cat((views[:full].flip(0), views[full:].flip(0)))  # within full-size views, within crops
        torch.testing.assert_close(loss(shuffled), value, rtol=1e-13, atol=0)
        images = torch.randperm(12, generator=generator)
        torch.testing.assert_close(loss(views[:, images]), value, rtol=1e-13, atol=0)


class _UnsortedPositives(GroCoLoss):
    """WRONG: positives in view order instead of ascending (no pre-ordering within the positive group)."""

    @staticmethod
    def _ascending(positives: torch.Tensor, itself: torch.Tensor | None) -> torch.Tensor:
        if itself is None:
            return positives
        full = positives.shape[0]
        others = torch.tensor([[j for j in range(full) if j != a] for a in range(full)])
        return positives.gather(2, others.unsqueeze(1).expand(-1, positives.shape[1], -1))


def test_unsorted_positives_fail_the_invariance() -> None:
    views = torch.randn(3, 12, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    loss = _UnsortedPositives(n_augs=3, topk_neg=5, steepness=3.0)
    assert (loss(views[[0, 2, 1]]) - loss(views)).abs() > 1e-6


@pytest.mark.parametrize("stop_grad", [True, False])
def test_stop_grad_leaves_only_the_anchor_differentiated(stop_grad: bool) -> None:
    """(d) Anchor 0's loss has a gradient with respect to view 0 only, with stop_grad (and to all views without)."""
    views = [torch.randn(8, 5, generator=torch.Generator().manual_seed(j), dtype=torch.float64) for j in range(3)]
    views = [view.requires_grad_() for view in views]
    loss = GroCoLoss(n_augs=3, n_pos_augs=2, topk_neg=4, steepness=2.0, stop_grad=stop_grad)
    _, info = loss.loss_and_info(views)
    gradients = torch.autograd.grad(info["per_anchor"][0], views, allow_unused=True)
    norms = [0.0 if g is None else g.abs().max().item() for g in gradients]
    assert norms[0] > 1e-6
    assert norms[2] == 0.0  # a small crop is never a positive nor a negative of another view
    if stop_grad:
        assert norms[1] == 0.0
    else:
        assert norms[1] > 1e-6  # WRONG for GroCo's default: the positive view gets a gradient


def test_info_values() -> None:
    views = _two_views(4)
    value, info = GroCoLoss(topk_neg=3, steepness=2.0).loss_and_info(views)
    positive, negatives = _cosines(views)
    top = negatives[0].topk(3, dim=-1).values
    torch.testing.assert_close(info["pos_max"], positive[0].mean())
    torch.testing.assert_close(info["neg_max"], top[:, 0].mean())
    torch.testing.assert_close(info["neg_min"], top[:, -1].mean())
    torch.testing.assert_close(info["pos_neg_dist"], positive[0].mean() - top[:, 0].mean())
    torch.testing.assert_close(info["per_anchor"].mean(), value)


def test_precision() -> None:
    """float32 agrees with float64; bfloat16 views give a bfloat16 loss computed in float32."""
    views = torch.randn(2, 32, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    loss = GroCoLoss(topk_neg=10, steepness=10.0)
    torch.testing.assert_close(loss(views.float()).double(), loss(views), rtol=1e-5, atol=1e-6)
    half = loss(views.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half, loss(views.to(torch.bfloat16).float()).to(torch.bfloat16))


def test_binary_cross_entropy_is_torchs_without_the_range_check() -> None:
    """The elementwise BCE equals torch.nn.functional.binary_cross_entropy (values, gradients, the clamps at
    0 and 1) and lets NaN through, where torch's raises (CPU) or asserts on the device (CUDA)."""
    from gradhub_groco.groco import _BinaryCrossEntropy

    q = torch.rand(64, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    q = torch.cat((q, torch.tensor([0.0, 1.0, 1e-50, 1e-13, 1 - 1e-13], dtype=torch.float64))).requires_grad_()
    for value in (0.0, 1.0):
        target = torch.full_like(q, value)
        ours = _BinaryCrossEntropy.apply(q, target)
        reference = F.binary_cross_entropy(q, target, reduction="none")
        torch.testing.assert_close(ours, reference, rtol=1e-15, atol=1e-15)
        (gradient,) = torch.autograd.grad(ours.sum(), q)
        (reference_gradient,) = torch.autograd.grad(reference.sum(), q)
        torch.testing.assert_close(gradient, reference_gradient, rtol=1e-15, atol=0)
    assert _BinaryCrossEntropy.apply(torch.tensor([math.nan]), torch.tensor([1.0])).isnan().all()
