"""Linear decay with optional linear warm-up, the worst-case-optimal schedule.

Paper: "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement",
Aaron Defazio, Ashok Cutkosky, Harsh Mehta, Konstantin Mishchenko, 2023, arXiv:2310.07831.
Official code: https://github.com/facebookresearch/adaptive_scheduling (it has no
linear-decay scheduler; its plotting scripts draw warm-up + polynomial decay).

The paper's worst-case analysis of the last iterate (Section 2, the linear-decay theorem)
gives eta_t proportional to 1 - t/T. In practice a short warm-up is recommended, so the
multiplier at step t is

    m(t) = t / warmup_steps                                          for t < warmup_steps,
    m(t) = final_frac + (1 - final_frac) (1 - (t - warmup_steps) / (total_steps - warmup_steps))
                                                                     for t >= warmup_steps,

clamped to ``final_frac`` after ``total_steps`` (the convention of
``transformers.get_linear_schedule_with_warmup``, which this equals for ``final_frac=0``).
The multiplier reaches ``final_frac`` at step ``total_steps``, one step after the last
update of a ``total_steps``-step run; :func:`gradhub_refined_schedules.refine_schedule`
of constant gradient norms is instead ``(T - 1 - t) / (T - 1)``, zero on the last update.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from gradhub.hyperparameters import validated
from gradhub_refined_schedules import LINEAR_DECAY
from gradhub_refined_schedules._common import check_optimizer


def linear_decay_multiplier(step: int, total_steps: int, warmup_steps: int, final_frac: float) -> float:
    """The multiplier m(step) of the base learning rate (the formula in the module docstring)."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = min((step - warmup_steps) / (total_steps - warmup_steps), 1.0)
    return final_frac + (1.0 - final_frac) * (1.0 - progress)


@validated(LINEAR_DECAY)
def linear_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, final_frac: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` whose multiplier warms up linearly over ``warmup_steps`` then decays linearly.

    Step it after each ``optimizer.step()``. Raises ``gradhub.HyperparameterError`` when
    ``warmup_steps >= total_steps`` (the decay would have no length) or a value is out of range.
    """
    check_optimizer(LINEAR_DECAY.name, optimizer)
    # a partial of a module-level function rather than a closure, so the scheduler pickles
    multiplier: Any = functools.partial(
        linear_decay_multiplier, total_steps=total_steps, warmup_steps=warmup_steps, final_frac=final_frac
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        linear_decay,
        linear_decay_multiplier,
    )
]
