"""RMT's two losses: the symmetric cross-entropy (Eq. 6) and the multi-view contrastive loss (Eq. 3).

Paper: "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation", Mario Döbler,
Robert A. Marsden, Bin Yang, CVPR 2023, arXiv:2211.13081. Official code:
https://github.com/mariodoebler/test-time-adaptation, ``classification/methods/rmt.py``
(``symmetric_entropy``, ``softmax_entropy``, ``RMT.contrastive_loss``).

With CE(p -> q) = -sum_c p_c log q_c, student probabilities p = softmax(z), augmented-view
probabilities p' = softmax(z') and teacher probabilities q = softmax(z_T):

* without the augmented view (official ``softmax_entropy``, used in the warm-up):
  L_sce = 1/2 [CE(q -> p) + CE(p -> q)];
* with it (official ``symmetric_entropy``, the test-time loss):
  L_sce = 1/4 [CE(q -> p) + CE(p -> q) + CE(q -> p') + CE(p' -> q)].

Readings settled from the official code: nothing is detached inside the loss. The teacher's
logits carry no gradient because the teacher's *parameters* are detached (``param.detach_()``),
so the student gets the gradient of both directions: d CE(q -> p)/dz = p - q (unbounded
weight on a confidently wrong teacher, the paper's argument against plain CE) and
d CE(p -> q)/dz = -p * (log q - <p, log q>) (bounded for a finite teacher). As a standalone
function the loss is differentiable in every argument (``gradient="exact"``); an adapter must
pass teacher logits without a graph, as :class:`gradhub_rmt.rmt.RMT` does. The per-sample
weights are 1/2 and 1/4 as in the official code (the paper writes SCE as the average of CE
and reverse CE per view pair, which is the same thing).

The contrastive loss is SupCon (Khosla et al., 2020) without labels, i.e. multi-view SimCLR:
the positives of an anchor are the other views of its own sample; every other embedding of the
batch is a negative; the anchor itself is left out of the denominator. Its scale
tau / tau_base is 1 (the official code sets tau_base = tau), so it is omitted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor
from gradhub.kinds.loss import loss, reduce
from gradhub_rmt import RMT_SPEC, SYMMETRIC_CE, RMTAdapterHyperparameters

__all__ = ["contrastive_loss", "cross_entropy_between", "symmetric_cross_entropy"]


def _computation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 at least: half-precision logits are upcast before softmax and log."""
    return torch.promote_types(dtype, torch.float32)


def cross_entropy_between(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Per-sample CE(p -> q) = -sum_c softmax(p_logits)_c log softmax(q_logits)_c over the last dimension."""
    return -(p_logits.softmax(-1) * q_logits.log_softmax(-1)).sum(-1)


@loss(SYMMETRIC_CE)
def symmetric_cross_entropy(
    student_logits: Tensor, teacher_logits: Tensor, student_aug_logits: Tensor | None = None, *, reduction: str
) -> Tensor:
    """Symmetric cross-entropy between student and teacher (Eq. 6; official ``symmetric_entropy``).

    Args:
        student_logits: (N, C) logits z of the student on the test batch.
        teacher_logits: (N, C) logits z_T of the mean teacher on the same batch (pass them without
            a graph to train the student only, as RMT does).
        student_aug_logits: (N, C) logits z' of the student on the augmented batch, or None.

    Returns:
        ``1/2 [CE(q -> p) + CE(p -> q)]`` per sample, or with ``student_aug_logits``
        ``1/4 [CE(q -> p) + CE(p -> q) + CE(q -> p') + CE(p' -> q)]``, reduced over the batch
        (``reduction='none'``: the (N,) per-sample values). Computed in float32 at least.
    """
    method = SYMMETRIC_CE.name
    named = {"student_logits": student_logits, "teacher_logits": teacher_logits}
    if student_aug_logits is not None:
        named["student_aug_logits"] = student_aug_logits
    for name, value in named.items():
        require_tensor(method, name, value, dim=2, nonempty=True, what="of logits (N samples, C classes)")
    require_matching_shapes(method, **named)
    require_same_device(method, **named)
    dtype = _computation_dtype(student_logits.dtype)
    z, z_teacher = student_logits.to(dtype), teacher_logits.to(dtype)
    values = cross_entropy_between(z_teacher, z) + cross_entropy_between(z, z_teacher)
    if student_aug_logits is None:
        return reduce(0.5 * values, reduction, method)
    z_aug = student_aug_logits.to(dtype)
    values = values + cross_entropy_between(z_teacher, z_aug) + cross_entropy_between(z_aug, z_teacher)
    return reduce(0.25 * values, reduction, method)


def contrastive_loss(embeddings: Tensor, *, temperature: float = 0.1, contrast_mode: str = "all") -> Tensor:
    """Multi-view contrastive loss without labels (official ``RMT.contrastive_loss``, SupCon with mask = I).

    Args:
        embeddings: (N, V, D): V >= 2 views of each of N samples (RMT: the nearest source prototype,
            the test feature and the augmented test feature, each through the projector). They are
            L2-normalised here.
        temperature: tau > 0.
        contrast_mode: "all": every view is an anchor (official default); "one": only view 0 is.

    Returns:
        The mean over anchors a of ``-1/|P(a)| sum_{p in P(a)} log( exp(e_a . e_p / tau) /
        sum_{k != a} exp(e_a . e_k / tau) )``, P(a) the other V - 1 views of a's sample, k over
        all N V embeddings. Computed in float32 at least; one (A, N V) similarity matrix.
    """
    method = RMT_SPEC.name
    checked = validate_hyperparameters(
        method, RMTAdapterHyperparameters, {"temperature": temperature, "contrast_mode": contrast_mode}
    )
    temperature, contrast_mode = checked["temperature"], checked["contrast_mode"]
    require_tensor(method, "embeddings", embeddings, dim=3, nonempty=True, what="of shape (N samples, V views, D)")
    count, views, _ = embeddings.shape
    if views < 2:
        raise UnsupportedInputError(
            method, "embeddings shape", tuple(embeddings.shape), "a contrastive loss needs V >= 2 views per sample"
        )
    normalised = F.normalize(embeddings.to(_computation_dtype(embeddings.dtype)), p=2, dim=-1)
    # View-major order (official torch.cat(torch.unbind(features, 1))): row v N + n is view v of sample n.
    contrast = normalised.transpose(0, 1).reshape(views * count, -1)
    anchors = contrast if contrast_mode == "all" else contrast[:count]
    rows = torch.arange(anchors.shape[0], device=embeddings.device)[:, None]
    columns = torch.arange(views * count, device=embeddings.device)[None, :]
    itself = columns == rows
    log_prob = ((anchors @ contrast.T) / temperature).masked_fill(itself, float("-inf")).log_softmax(dim=1)
    # Positives: the other views of the anchor's own sample (masks and where, no scatter in the backward).
    positive = (columns % count == rows % count) & ~itself
    positives = torch.where(positive, log_prob, 0.0).sum(1) / (views - 1)
    return -positives.mean()
