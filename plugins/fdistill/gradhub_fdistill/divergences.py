"""The f-divergences of f-distill and their weighting functions h(r) = f''(r) r^2.

"One-step Diffusion Models with f-Divergence Distribution Matching", Y. Xu, W. Nie, A. Vahdat, 2025,
arXiv:2502.15681. For ``D_f(p || q) = E_q[f(p/q)]`` between the teacher's (p) and the student's (q)
diffused distributions, the paper's main result is the generator gradient

    grad_theta D_f = -E[ f''(r) r^2 (grad log p_t(x_t) - grad log q_t(x_t)) dx_t/dtheta ],   r = p_t/q_t,

i.e. DMD's score difference weighted per sample by ``h(r) = f''(r) r^2`` (reverse KL, f = -log r, has
h = 1: DMD/VSD). The table below is the official code's (FastGen ``f_distill.py``,
``all_f_div_weighting_function``), names included; ``GENERATORS`` holds an f for each, with f(1) = 0,
whose ``f'' r^2`` is h up to a positive constant (checked by autograd in the tests):

========  ===========================================  ===============  ===================
name      f(r)                                          h(r)             f'' r^2
========  ===========================================  ===============  ===================
rkl       -log r                      (reverse KL)      1                1
kl        r log r                     (forward KL)      r                r
js        r log r - (1+r) log((1+r)/2) (Jensen-Shannon) r / (1+r)        r / (1+r)
sf        (1+r) log((1+r)/(2r))       (softened RKL)    1 / (1+r)        1 / (1+r)
neyman    (1-r)^2 / r                 (Neyman chi^2)    1 / r            2 / r
sh        (sqrt(r) - 1)^2             (squared Hellinger) sqrt(r)        sqrt(r) / 2
jf        (r-1) log r                 (Jeffreys)        1 + r            1 + r
========  ===========================================  ===============  ===================

"sf" is the paper's softened reverse KL: ``E_q[(1+r) log((1+r)/(2r))] = 2 KL(m || p)`` with
``m = (p+q)/2`` (derived here from the official h; the code names only the letters). Constant factors
do not matter: f-distill divides h by its batch mean. As in the official code, ``neyman`` clamps r
at 1e-8 before dividing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub_fdistill import DIVERGENCES

__all__ = ["GENERATORS", "WEIGHTS", "f_weight"]


def _neyman(r: Tensor) -> Tensor:
    return 1 / r.clamp_min(1e-8)


WEIGHTS: dict[str, Callable[[Tensor], Tensor]] = {
    "rkl": torch.ones_like,
    "kl": lambda r: r,
    "js": lambda r: r / (1 + r),
    "sf": lambda r: 1 / (1 + r),
    "neyman": _neyman,
    "sh": torch.sqrt,
    "jf": lambda r: 1 + r,
}
"""h(r) per divergence (the official table; ``js`` written r/(1+r), the official 1 - 1/(1+r))."""

GENERATORS: dict[str, Callable[[Tensor], Tensor]] = {
    "rkl": lambda r: -torch.log(r),
    "kl": lambda r: r * torch.log(r),
    "js": lambda r: r * torch.log(r) - (1 + r) * torch.log((1 + r) / 2),
    "sf": lambda r: (1 + r) * torch.log((1 + r) / (2 * r)),
    "neyman": lambda r: (1 - r) ** 2 / r,
    "sh": lambda r: (torch.sqrt(r) - 1) ** 2,
    "jf": lambda r: (r - 1) * torch.log(r),
}
"""A convex generator f (f(1) = 0) per divergence: ``f'' r^2`` is :data:`WEIGHTS`' h up to a constant."""


def f_weight(r: Tensor, divergence: str) -> Tensor:
    """The weighting ``h(r) = f''(r) r^2`` of the f-divergence ``divergence`` (module table), elementwise.

    ``r`` is a floating tensor of density ratios ``p_teacher / q_student`` (positive); the result has
    its shape, dtype and device. ``rkl`` gives ones: reverse KL is DMD.
    """
    if divergence not in WEIGHTS:
        raise HyperparameterError("f_weight", "divergence", divergence, f"one of {', '.join(DIVERGENCES)}")
    if not isinstance(r, Tensor) or not r.is_floating_point():
        shown = f"a {r.dtype} tensor" if isinstance(r, Tensor) else type(r).__name__
        raise UnsupportedInputError("f_weight", "r", shown, "r must be a floating-point tensor of density ratios")
    return WEIGHTS[divergence](r)
