"""GroCo: self-supervised learning by sorting, with group ordering constraints.

Paper: "Learning by Sorting: Self-supervised Learning with Group Ordering Constraints", Nina
Shvetsova, Felix Petersen, Anna Kukleva, Bernt Schiele, Hilde Kuehne, ICCV 2023,
arXiv:2301.02009. Official code: https://github.com/ninatu/learning_by_sorting
(``learning_by_sorting/losses/groco.py``, class ``GroCo``; ``losses/utils.py``).

For each anchor view ``a`` of a batch of ``B`` images (Sec. 3, the official ``compute_loss``):

1. cosine similarities of the anchor to its positives, ``s_pos[b, j] = cos(z_a[b], sg(z_j[b]))``
   for the other full-size views ``j != a`` (all ``n_pos_augs`` of them for a small-crop anchor
   ``a >= n_pos_augs``), and to its negatives, ``s_neg[b, b'] = cos(z_a[b], sg(z_a[b']))`` for the
   other images ``b' != b`` of the same view (of every process's batch with ``distributed=True``);
   ``sg`` is the stop-gradient (``stop_grad=True``);
2. the ``k = topk_neg`` largest negatives, ascending, then the positives, ascending:
   ``s = [s_neg^(k), s_pos]``, ``n = k + P`` values whose ground-truth order puts every negative
   below every positive (Eq. 3-4: the group ordering constraint);
3. a differentiable sorting network (odd-even, Cauchy relaxation; :mod:`gradhub_groco.sorting`)
   gives the relaxed permutation ``P[b, i, r]`` (input ``i`` at rank ``r``, ascending);
4. group probabilities ``q_neg[b, i] = sum_{r < k} P[b, i, r]`` (input ``i`` lands among the ``k``
   lowest ranks) and ``q_pos = sum_{r >= k} P[b, i, r]``, clipped to [0, 1], with targets
   ``t_neg[i] = [i < k]`` and ``t_pos = 1 - t_neg`` (the official ``perm_target`` is the identity);
5. ``loss_a = (BCE(q_pos, t_pos) + BCE(q_neg, t_neg)) / 2``, each BCE the mean over the ``B n``
   entries (``torch.nn.BCELoss``, logs clamped at -100); the loss is the mean over anchors.

What differs from the official code: anchors with the same number of positives are computed in one
batch (the official code loops over views; the value is the same), so the sorting network runs
twice at most per call; cosine similarities are computed from embeddings normalised once
(``z / max(||z||, 1e-8)``, the official all-to-all formula, also for the pairwise positives where the
official code calls ``nn.CosineSimilarity``: equal up to round-off); ``forward`` returns the loss
alone (``loss_and_info`` also returns the official log values, as tensors, without the host syncs
``.item()`` would cost, and each anchor's loss); the network, relaxation and ``art_lambda`` are
hyperparameters (hard-coded ``odd_even``, ``cauchy``, 0.25 in the official code); float64 inputs are
computed in float64 (the official code casts to float32; float16 and bfloat16 are computed in float32
here too). In distributed mode the gathered negatives pass back only this process's slice of their
gradient, as the official ``GatherLayer`` does (it matters only with ``stop_grad=False``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import deferred_checks, require_same_device, require_tensor, require_values
from gradhub.kinds.loss import loss, require_finite_loss
from gradhub_groco import GROCO
from gradhub_groco.sorting import sort_wires

__all__ = ["GroCoLoss", "cosine_normalize", "group_probabilities"]

NORM_EPS = 1e-8
"""The official ``_normalize_embeddings`` floor on the norm."""


def cosine_normalize(z: Tensor) -> Tensor:
    """``z / max(||z||, 1e-8)`` along the last dimension, so that dot products are cosine similarities."""
    return z / torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(NORM_EPS)


def group_probabilities(W: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``(q_neg, q_pos)`` of the wire-major relaxed permutation ``W[r, i, b]`` (:func:`sort_wires`): the
    probability that input ``i`` lands in the ``k`` lowest ranks, and in the others; each (n, B), clipped."""
    return W[:k].sum(0).clamp(0, 1), W[k:].sum(0).clamp(0, 1)


_BCE_EPS = 9.99999996004197e-13
"""ATen's ``EPSILON`` of the BCE backward: 1e-12 as a float32."""


class _BinaryCrossEntropy(torch.autograd.Function):
    """``torch.nn.BCELoss``'s elementwise values and gradients (logs clamped at -100, the gradient's denominator
    at 1e-12), without its input range check: that check reads the device (a sync, and a device-side assert on
    CUDA) where a NaN from non-finite views should reach the loss frame's error instead."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(q, target)
        return (target - 1) * torch.log1p(-q).clamp_min(-100) - target * torch.log(q).clamp_min(-100)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        q, target = ctx.saved_tensors
        return grad * (q - target) / ((1 - q) * q).clamp_min(_BCE_EPS), None


class _GatherKeepingLocalGradient(torch.autograd.Function):
    """All-gather along dim 1 whose backward returns this process's slice of the gradient (official ``GatherLayer``)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rank, ctx.size = rank, tensor.shape[1]
        return torch.cat(parts, 1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad[:, ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def _gathered(method: str, bank: Tensor, stop_grad: bool) -> tuple[Tensor, int]:
    """Every process's ``bank`` (A, B, D) concatenated along the batch, and this process's offset in it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise UnsupportedInputError(
            method,
            "distributed",
            "True without a process group",
            "call torch.distributed.init_process_group() first, or pass distributed=False",
        )
    offset = dist.get_rank() * bank.shape[1]
    if stop_grad:
        parts = [torch.empty_like(bank) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, bank.contiguous())
        return torch.cat(parts, 1), offset
    return _GatherKeepingLocalGradient.apply(bank), offset


@loss(GROCO)
class GroCoLoss(nn.Module):
    """The GroCo loss over the projections of ``B`` images under ``n_augs`` augmentations.

    ``forward(views)`` takes the views as a tensor ``(n_augs, B, D)`` or a sequence of ``n_augs``
    tensors ``(B, D)`` (the full-size crops first in multi-crop: the first ``n_pos_augs`` views are
    the positives) and returns the scalar loss. ``loss_and_info(views)`` returns ``(loss, info)``
    with the official log values for the first anchor (``pos_max``, ``pos_min``, ``neg_max``,
    ``neg_min``, ``pos_neg_dist``: mean similarities, detached) and ``per_anchor``, each anchor
    view's loss (in the graph). Each view needs at least ``topk_neg + 1`` images (in distributed
    mode, in all processes together, every process with the same ``B``).
    """

    def __init__(
        self,
        *,
        n_augs: int,
        n_pos_augs: int | None,
        topk_neg: int,
        steepness: float,
        sorting_network: str,
        relaxation: str,
        art_lambda: float,
        stop_grad: bool,
        distributed: bool,
    ) -> None:
        super().__init__()
        self.n_augs, self.topk_neg = n_augs, topk_neg
        self.n_pos_augs = n_augs if n_pos_augs is None else n_pos_augs
        self.steepness, self.sorting_network, self.relaxation = steepness, sorting_network, relaxation
        self.art_lambda, self.stop_grad, self.distributed = art_lambda, stop_grad, distributed

    def forward(self, views: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
        return self._loss_and_info(views, with_info=False)[0]

    def loss_and_info(self, views: Tensor | list[Tensor] | tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, info)``: the loss as ``forward`` returns it (checked finite likewise) and the log values."""
        with deferred_checks() as deferred:
            value, info = self._loss_and_info(views, with_info=True)
        require_finite_loss(self.method, value if self.check_finite else None, deferred)  # type: ignore[attr-defined]
        return value, info

    def _views(self, views: Any) -> Tensor:
        method = self.method  # type: ignore[attr-defined]
        if isinstance(views, (list, tuple)):
            if len(views) != self.n_augs:
                raise UnsupportedInputError(
                    method, "views", f"{len(views)} views", f"pass n_augs={self.n_augs} views (tensors of shape (B, D))"
                )
            for index, view in enumerate(views):
                require_tensor(method, f"views[{index}]", view, dim=2, what="of shape (B, D)")
            require_same_device(method, **{f"views[{index}]": view for index, view in enumerate(views)})
            shapes = {tuple(view.shape) for view in views}
            if len(shapes) > 1 or len({view.dtype for view in views}) > 1:
                given = ", ".join(f"{tuple(view.shape)} {view.dtype}" for view in views)
                raise UnsupportedInputError(method, "views", given, "every view must have the same shape and dtype")
            views = torch.stack(tuple(views))
        else:
            require_tensor(method, "views", views, dim=3, what=f"of shape (n_augs={self.n_augs}, B, D)")
            if views.shape[0] != self.n_augs:
                raise UnsupportedInputError(
                    method, "views shape", tuple(views.shape), f"views must have shape (n_augs={self.n_augs}, B, D)"
                )
        if views.shape[2] == 0:
            raise UnsupportedInputError(method, "views shape", tuple(views.shape), "the embedding dimension D is 0")
        if not self.distributed and views.shape[1] <= self.topk_neg:
            raise UnsupportedInputError(
                method,
                "views shape",
                tuple(views.shape),
                f"each view needs at least topk_neg + 1 = {self.topk_neg + 1} images: an anchor's negatives are "
                "the other images of its view",
            )
        require_values(method, "views", ~torch.isfinite(views), views, "views must be finite")
        return views

    def _loss_and_info(self, views: Any, with_info: bool) -> tuple[Tensor, dict[str, Tensor]]:
        method = self.method  # type: ignore[attr-defined]
        views = self._views(views)
        given = views.dtype
        z = cosine_normalize(views if given in (torch.float32, torch.float64) else views.float())
        held = z.detach() if self.stop_grad else z
        A, B = z.shape[:2]
        full, k = self.n_pos_augs, self.topk_neg
        # negatives (Eq. 3): the other images of the anchor's view, in every process with distributed=True
        bank, offset = _gathered(method, held, self.stop_grad) if self.distributed else (held, 0)
        if bank.shape[1] <= k:
            raise UnsupportedInputError(
                method,
                "views shape",
                tuple(views.shape),
                f"the processes' batches hold {bank.shape[1]} images together; topk_neg={k} needs {k + 1}",
            )
        negatives = torch.bmm(z, bank.transpose(1, 2))
        image = torch.arange(B, device=z.device)
        negatives[:, image, image + offset] = float("-inf")
        negatives = self._hardest(negatives, k)
        # positives: the same image's full-size views (the anchor's own similarity set to +inf, sorted last, dropped)
        positives = torch.einsum("abd,cbd->abc", z, held[:full])
        itself = torch.eye(full, dtype=torch.bool, device=z.device).unsqueeze(1)
        groups = [self._ascending(positives[:full], itself)]
        if full < A:  # multi-crop: small crops are anchors only, against every full-size view
            groups.append(self._ascending(positives[full:], None))
        info: dict[str, Tensor] = {}
        if with_info and groups[0].shape[-1] > 0:
            first_neg, first_pos = negatives[0], groups[0][0]
            info = {
                "pos_max": first_pos[:, -1].mean().detach(),
                "pos_min": first_pos[:, 0].mean().detach(),
                "neg_max": first_neg[:, -1].mean().detach(),
                "neg_min": first_neg[:, 0].mean().detach(),
            }
            info["pos_neg_dist"] = info["pos_min"] - info["neg_max"]
        anchors = (slice(0, full), slice(full, A))
        per_anchor = torch.cat(
            [self._sorting_loss(torch.cat((negatives[rows], group), -1)) for rows, group in zip(anchors, groups)]
        )
        if with_info:
            info["per_anchor"] = per_anchor.to(given)
        return per_anchor.mean().to(given), info

    @staticmethod
    def _hardest(negatives: Tensor, k: int) -> Tensor:
        """The ``k`` largest similarities of each row, ascending (the official ``topk`` then ``flip``; the k values
        are sorted apart, cheaper than a sorted ``topk``)."""
        return negatives.topk(k, dim=-1, sorted=False).values.sort(dim=-1).values

    @staticmethod
    def _ascending(positives: Tensor, itself: Tensor | None) -> Tensor:
        """Each row's positive similarities ascending, less the anchor's own view (``itself``) where given:
        set to +inf, it sorts last and is dropped."""
        if itself is None:
            return positives.sort(dim=-1).values
        return positives.masked_fill(itself, float("inf")).sort(dim=-1).values[..., :-1]

    def _sorting_loss(self, scores: Tensor) -> Tensor:
        """Each anchor's ``(BCE(q_pos, t_pos) + BCE(q_neg, t_neg)) / 2`` for scores (A, B, n), pre-ordered."""
        A, B, n = scores.shape
        k = self.topk_neg
        _, W = sort_wires(
            scores.reshape(A * B, n).T, self.sorting_network, self.steepness, self.relaxation, self.art_lambda
        )
        q_neg, q_pos = group_probabilities(W, k)
        t_neg = (torch.arange(n, device=scores.device) < k).to(scores.dtype).unsqueeze(1).expand(n, A * B)
        bce = _BinaryCrossEntropy.apply(q_pos, 1 - t_neg) + _BinaryCrossEntropy.apply(q_neg, t_neg)
        return bce.view(n, A, B).mean((0, 2)) / 2

    def extra_repr(self) -> str:
        return (
            f"n_augs={self.n_augs}, n_pos_augs={self.n_pos_augs}, topk_neg={self.topk_neg}, "
            f"steepness={self.steepness}, sorting_network={self.sorting_network!r}, relaxation={self.relaxation!r}, "
            f"art_lambda={self.art_lambda}, stop_grad={self.stop_grad}, distributed={self.distributed}"
        )
