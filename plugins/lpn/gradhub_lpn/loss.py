"""The proximal matching loss and its gamma schedule (paper Sec. 3.3, Eq. 3.2-3.3; Thm. 3.2).

Paper: "What's in a Prior? Learned Proximal Networks for Inverse Problems", Zhenghan Fang, Sam Buchanan,
Jeremias Sulam, ICLR 2024, arXiv:2310.14344. Official code:
https://github.com/ZhenghanFang/learned-proximal-networks (``lpn/utils/utils.py``: ``ExpDiracSrgt``,
``get_loss_hparams_and_lr``).

    l_PM(f(y), x; gamma) = 1 - c_gamma exp(-||f(y) - x||_2^2 / gamma^2),    per sample

with the L2 norm over every coordinate of a sample (an image: all of C x H x W). Minimising its expectation
over (x, y = x + sigma eps) gives, as gamma -> 0, the MAP denoiser f*(y) = argmax_x p(x | y) =
prox_{-sigma^2 log p_x}(y) (Thm. 3.2), whereas the L2 loss gives the posterior mean and L1 the median. The
paper's normaliser c_gamma = (pi gamma^2)^(-n/2) only rescales the loss; the official code drops it
(c_gamma = 1) and so does ``normalize=False`` (the default). The batch reduction is the mean (official).

The loss is flat far from the target (its gradient ~ d exp(-d^2 / gamma^2) / gamma^2 -> 0): robust to
outliers, and hard to optimise from scratch. The official recipe pre-trains with L1, then anneals gamma
over ``n_stages`` equal stages, gamma = gamma_min 2^(n_stages - 1 - stage)
(:func:`proximal_matching_schedule`), with gamma_min = 0.08 sqrt(n) for images in [0, 1]
(:func:`default_gamma_min`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor, require_values
from gradhub.kinds.loss import loss, reduce
from gradhub_lpn import PROXIMAL_MATCHING


def proximal_matching_loss(
    prediction: Tensor, target: Tensor, gamma: float, normalize: bool = False, reduction: str = "mean"
) -> Tensor:
    """The loss without the module's checks (the module validates and calls this)."""
    batch = prediction.shape[0]
    distance = (prediction - target).reshape(batch, -1).square().sum(1)  # ||f(y) - x||^2 per sample
    exponent = -distance / gamma**2
    if normalize:  # c_gamma = (pi gamma^2)^(-n/2), folded into the exponent (no overflow of c_gamma itself)
        exponent = exponent - 0.5 * prediction[0].numel() * math.log(math.pi * gamma**2)
    return reduce(1 - torch.exp(exponent), reduction, PROXIMAL_MATCHING.name)


@loss(PROXIMAL_MATCHING)
class ProximalMatchingLoss(nn.Module):
    """``ProximalMatchingLoss(gamma)(prediction, target)``: the batch mean of 1 - exp(-||pred - target||^2 / gamma^2).

    ``prediction`` and ``target`` are (B, ...) of one shape, the first dimension the batch (a 1-D tensor is B
    scalar samples). ``gamma`` may be reassigned between steps (it is validated); see
    :func:`proximal_matching_schedule`. ``reduction='none'`` gives the B per-sample values.
    """

    def __init__(self, gamma: float, *, normalize: bool, reduction: str) -> None:
        super().__init__()
        self.gamma, self.normalize, self.reduction = gamma, normalize, reduction

    def __setattr__(self, name: str, value: object) -> None:
        if name == "gamma":
            _check_positive(PROXIMAL_MATCHING.name, "gamma", value)
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, normalize={self.normalize}, reduction={self.reduction!r}"

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        method = PROXIMAL_MATCHING.name
        require_tensor(method, "prediction", prediction, min_dim=1, nonempty=True)
        require_tensor(method, "target", target, min_dim=1, nonempty=True)
        require_matching_shapes(method, prediction=prediction, target=target)
        require_same_device(method, prediction=prediction, target=target)
        # Deferred to the loss frame's one read, with the loss value's own finiteness check.
        require_values(method, "prediction", ~torch.isfinite(prediction), prediction, "prediction must be finite")
        require_values(method, "target", ~torch.isfinite(target), target, "target must be finite")
        return proximal_matching_loss(prediction, target, self.gamma, self.normalize, self.reduction)


def _check_positive(method: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise HyperparameterError(method, name, value, "a finite number > 0")
    return float(value)


def _check_count(method: str, name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise HyperparameterError(method, name, value, f"an integer >= {low}")
    return value


SCHEDULE = "proximal_matching_schedule"


def proximal_matching_schedule(step: int, total: int, gamma_min: float, n_stages: int = 4) -> float:
    """gamma at proximal-matching step ``step`` of ``total``: gamma_min 2^(n_stages - 1 - stage).

    The official ramp (``get_loss_hparams_and_lr``): ``total`` steps (counted after the L1 pre-training)
    in ``n_stages`` stages of ``total // n_stages`` steps, the last stage also running past ``total``;
    gamma halves from stage to stage and ends at ``gamma_min``.
    """
    step = _check_count(SCHEDULE, "step", step, 0)
    n_stages = _check_count(SCHEDULE, "n_stages", n_stages, 1)
    total = _check_count(SCHEDULE, "total", total, n_stages)
    gamma_min = _check_positive(SCHEDULE, "gamma_min", gamma_min)
    stage = min(step // (total // n_stages), n_stages - 1)
    return gamma_min * 2.0 ** (n_stages - 1 - stage)


def default_gamma_min(n: int) -> float:
    """The official gamma_min = 0.08 sqrt(n) for images in [0, 1] with n = C x H x W entries (``train.py``)."""
    return 0.08 * math.sqrt(_check_count(SCHEDULE, "n", n, 1))
