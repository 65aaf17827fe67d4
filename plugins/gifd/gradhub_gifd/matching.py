"""GIFD's objective pieces: gradient matching, the image priors, the per-stage learning rate, iDLG labels.

Fang et al., "GIFD: A Generative Gradient Inversion Method with Feature Domain Optimization",
ICCV 2023, arXiv:2308.04699, Eq. 2-3; official code https://github.com/ffhibnese/GIFD_Gradient_Inversion_Attack
(``inversefed/reconstruction_algorithms.py``: ``reconstruction_costs`` with ``cost_fn="sim_cmpr0"``,
``_gradient_closure``, ``get_lr``, ``infer_label``).

- Gradient matching (``sim_cmpr0``: cosine with no compression): ONE cosine over the concatenation
  of every parameter's gradient, ``D = 1 - sum_l w_l <g_l, g*_l> / (sqrt(sum_l w_l ||g_l||^2)
  sqrt(sum_l w_l ||g*_l||^2))`` (not a mean of per-tensor cosines); computed as one flattened dot.
- Priors: ``TV(x) = mean |x[..., 1:, :] - x[..., :-1, :]| + mean |x[..., :, 1:] - x[..., :, :-1]|``
  (InvertingGradients) and ``||x||_2 / (H W)`` (official: divided by the image side squared).
- Learning rate in a stage of ``n`` steps, step ``i``, ``t = i / n`` (ILO / StyleGAN projector):
  ``ramp = min(1, (1 - t) / 0.75)``, ``ramp = 0.5 - 0.5 cos(pi ramp)``, ``ramp *= min(1, t / 0.05)``.
- Labels (iDLG, Zhao et al. 2020; official ``infer_label``): the ``B`` classes whose rows of the last
  linear layer's weight gradient have the most negative sums, sorted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor
from gradhub.kinds.loss import loss
from gradhub_gifd import GRADIENT_MATCHING_COSINE

Gradients = torch.Tensor | Sequence[torch.Tensor]


# --- gradient matching ------------------------------------------------------------------------------


def flatten(gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """The gradients as one vector (one copy; its dot products are single kernels)."""
    return torch.cat([gradient.reshape(-1) for gradient in gradients])


def cosine_distance(trial: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - <t, s>_w / (||t||_w ||s||_w)`` of flattened gradients (the last dim), ``w`` elementwise weights.

    Batched over leading dims of ``trial``; no epsilon, as in the official ``sim`` costs (a zero
    gradient gives NaN, which the callers report).
    """
    weighted = target if weights is None else target * weights
    inner = (trial * weighted).sum(-1)
    trial_norm = (trial.square() if weights is None else trial.square() * weights).sum(-1).sqrt()
    target_norm = (target * weighted).sum(-1).sqrt()
    return 1 - inner / (trial_norm * target_norm)


def squared_distance(trial: torch.Tensor, target: torch.Tensor, tensors: int) -> torch.Tensor:
    """The official ``l2`` cost: ``sum_l ||g_l - g*_l||^2 / L`` over ``L`` tensors (flattened; batched)."""
    return (trial - target).square().sum(-1) / tensors


def _as_list(method: str, name: str, value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return list(value)
    raise UnsupportedInputError(
        method, name, type(value).__name__, f"{name} must be a tensor or a non-empty list of tensors"
    )


@loss(GRADIENT_MATCHING_COSINE)
def cosine_grad_loss(
    trial_grads: Gradients, target_grads: Gradients, weights: torch.Tensor | Sequence[float] | None = None
) -> torch.Tensor:
    """``1 - cos(g, g*)`` over all parameter tensors at once (GIFD, Eq. 2; official ``sim_cmpr0``).

    ``trial_grads`` and ``target_grads``: one tensor or equal-length lists of tensors, pairwise of
    one shape (the gradients of the same parameters); ``weights``: None or one non-negative weight
    per tensor (official ``weights="equal"``: None). Scalar, in [0, 2]; differentiable in both.
    """
    method = GRADIENT_MATCHING_COSINE.name
    trial, target = _as_list(method, "trial_grads", trial_grads), _as_list(method, "target_grads", target_grads)
    if len(trial) != len(target):
        raise UnsupportedInputError(
            method,
            "gradient lists",
            f"{len(trial)} trial and {len(target)} target tensors",
            "one trial gradient per target gradient (the same parameters, in the same order)",
        )
    for index, (t, s) in enumerate(zip(trial, target)):
        require_tensor(method, f"trial_grads[{index}]", t)
        require_tensor(method, f"target_grads[{index}]", s)
        require_matching_shapes(method, **{f"trial_grads[{index}]": t, f"target_grads[{index}]": s})
        require_same_device(method, **{f"trial_grads[{index}]": t, f"target_grads[{index}]": s})
    flat_weights = None
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=trial[0].dtype, device=trial[0].device)
        if weights.dim() != 1 or weights.shape[0] != len(trial):
            raise UnsupportedInputError(
                method, "weights shape", tuple(weights.shape), f"None or one weight per tensor ({len(trial)},)"
            )
        if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
            raise UnsupportedInputError(method, "weights", weights.tolist(), "finite, non-negative weights")
        sizes = torch.tensor([t.numel() for t in trial], device=weights.device)
        flat_weights = weights.repeat_interleave(sizes)
    return cosine_distance(flatten(trial), flatten(target), flat_weights)


# --- image priors (per restart: x is (R, B, C, H, W)) ------------------------------------------------


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV of each restart's batch: mean |vertical diffs| + mean |horizontal diffs| per ``x[r]``."""
    vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return vertical + horizontal


def image_norm(x: torch.Tensor) -> torch.Tensor:
    """``||x[r]||_2 / (H W)`` per restart (official: ``torch.norm(x) / side**2``)."""
    return x.flatten(1).norm(dim=1) / (x.shape[-1] * x.shape[-2])


# --- the per-stage learning rate ---------------------------------------------------------------------


def ilo_lr(t: float, lr: float, rampdown: float = 0.75, rampup: float = 0.05) -> float:
    """The ILO / StyleGAN-projector schedule at progress ``t`` in [0, 1] of a stage (official ``get_lr``)."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / rampup)


# --- labels ------------------------------------------------------------------------------------------


def last_linear(method: str, model: nn.Module) -> tuple[str, nn.Linear]:
    """The model's last ``nn.Linear`` (in ``model.modules()`` order) and its weight's parameter name."""
    found = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not found:
        raise UnsupportedInputError(
            method,
            "model",
            f"{type(model).__name__} without an nn.Linear layer",
            "iDLG label inference reads the last linear layer's weight gradient; pass labels= instead",
        )
    name, module = found[-1]
    return (f"{name}.weight" if name else "weight"), module


def infer_labels_idlg(last_weight_gradient: torch.Tensor, batch_size: int = 1) -> torch.Tensor:
    """iDLG (Zhao et al. 2020) as in GIFD's code: the ``batch_size`` classes whose rows of ``dL/dW``
    (``W``: the last linear layer, classes x features) sum lowest, in increasing class order.

    Exact for ``batch_size=1``, cross-entropy and non-negative inputs to that layer (ReLU features):
    the row of class ``c`` is ``(p_c - y_c) a``, negative only for the true class.
    """
    method = "iDLG label inference"
    require_tensor(method, "last_weight_gradient", last_weight_gradient, dim=2)
    classes = last_weight_gradient.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= classes:
        raise UnsupportedInputError(
            method, "batch_size", repr(batch_size), f"an int in [1, {classes}] (the classes of the last layer)"
        )
    lowest = last_weight_gradient.sum(-1).argsort()[:batch_size]
    return lowest.sort().values


__all__ = ["cosine_grad_loss", "ilo_lr", "image_norm", "infer_labels_idlg", "total_variation"]
