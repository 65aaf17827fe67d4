"""The mean teacher: its momentum and its exponential-moving-average update.

Paper: "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation", Döbler et al.,
CVPR 2023, arXiv:2211.13081, Sec. 3.1: after each optimisation step of the student,
``theta_T <- m theta_T + (1 - m) theta_S`` with m = 0.999. Official code:
``classification/methods/rmt.py`` (``update_ema_variables``: a Python loop over the parameter
pairs) and ``conf.py`` (``_C.M_TEACHER.MOMENTUM = 0.999``, a constant: no ramp-up).

Readings settled from the official code: only *parameters* are averaged (buffers are not; RMT's
BatchNorm layers keep no running statistics), pairs are matched by the order of ``parameters()``,
and m multiplies the teacher. Here the update is one ``torch._foreach_mul_`` and one
``torch._foreach_add_`` per (device, dtype) group instead of a loop.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kernels import group_tensors
from gradhub_rmt import MEAN_TEACHER_EMA


@validated(MEAN_TEACHER_EMA)
def mean_teacher_ema(step: int, *, momentum: float) -> float:
    """The teacher momentum m at optimisation step ``step`` (>= 0): constant, as in the official code."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise UnsupportedInputError(MEAN_TEACHER_EMA.name, "step", repr(step), "step must be an integer >= 0")
    return momentum


def _tensors(name: str, value: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    tensors = list(value.parameters()) if isinstance(value, nn.Module) else list(value)
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
            raise UnsupportedInputError(
                MEAN_TEACHER_EMA.name,
                f"{name} parameter {index}",
                type(tensor).__name__ if not isinstance(tensor, Tensor) else tensor.dtype,
                f"{name} must be an nn.Module or an iterable of floating-point tensors",
            )
    return tensors


@validated(MEAN_TEACHER_EMA)
@torch.no_grad()
def ema_update(
    teacher: nn.Module | Iterable[Tensor], student: nn.Module | Iterable[Tensor], momentum: float
) -> nn.Module | Iterable[Tensor]:
    """``teacher <- momentum * teacher + (1 - momentum) * student``, parameter by parameter, in place.

    ``teacher`` and ``student`` are modules (their ``parameters()``, in order) or sequences of
    tensors; each pair must have one shape, dtype and device. ``momentum`` in [0, 1]: 0 copies the
    student, 1 leaves the teacher as it is. Returns ``teacher``.
    """
    method = MEAN_TEACHER_EMA.name
    teachers, students = _tensors("teacher", teacher), _tensors("student", student)
    if len(teachers) != len(students):
        raise UnsupportedInputError(
            method,
            "parameters",
            f"{len(teachers)} teacher parameters and {len(students)} student parameters",
            "the teacher must be a copy of the student (the same parameters in the same order)",
        )
    for index, (mean, current) in enumerate(zip(teachers, students)):
        if mean.shape != current.shape or mean.dtype != current.dtype or mean.device != current.device:
            raise UnsupportedInputError(
                method,
                f"parameter {index}",
                f"teacher {tuple(mean.shape)} {mean.dtype} on {mean.device}, "
                f"student {tuple(current.shape)} {current.dtype} on {current.device}",
                "each teacher parameter must have its student parameter's shape, dtype and device",
            )
    for means, currents in group_tensors([teachers, students]).values():
        torch._foreach_mul_(means, momentum)
        torch._foreach_add_(means, currents, alpha=1.0 - momentum)
    return teacher


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [exported.__name__ for exported in (ema_update, mean_teacher_ema)]
