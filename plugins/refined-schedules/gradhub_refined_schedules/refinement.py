"""Schedule refinement from recorded gradient norms: median filter, closed form, ``RefinedLR``.

Paper: "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement",
Aaron Defazio, Ashok Cutkosky, Harsh Mehta, Konstantin Mishchenko, 2023, arXiv:2310.07831.
Official code: https://github.com/facebookresearch/adaptive_scheduling (``find_schedule.py``:
``find_closed_form_schedule``; README and ``visual.py``: the median-filter recipe).

The refinement (the paper's schedule-refinement algorithm, Section 3):

1. a previous run records the gradient norms ``G_0..G_{T-1}`` (before clipping, unscaled);
2. smooth them with a median filter of odd width ``2 floor(tau T / 2) + 1``, the sequence's
   END padded by reflection (``2 width`` values, NumPy ``mode="reflect"``, edge not repeated)
   and the filter's own boundary ``"nearest"`` (repeat the edge), then crop: exactly the
   official README's ``median_filter(np.pad(G, (0, pad), "reflect"), size=width, mode="nearest")[:-pad]``
   (``visual.py`` uses ``sigma2 = 0.1``, our default ``tau``);
3. weights ``a_t = G_t^-power`` (``power = 2`` for the L2 norm / SGD; the official Adam
   variant uses L1 norms with ``power = 1``, ``visual.py``: ``weights=gnorms**-1``) and
   ``w_t = a_t sum_{p=t+1}^{T-1} a_p`` (a TAIL sum), ``w_{T-1} = 0``;
4. normalise to ``max w = 1``; the new run uses ``lr_t = base_lr w_t``.

Differences from the official code: it divides ``w`` by ``a_{T-1}`` (a constant) and
``visual.py`` then by ``max w``; we normalise by ``max w`` directly and compute ``a_t`` in
log space shifted by its maximum (scale-free, so identical after normalisation, and no
overflow for large ``power`` or tiny norms). The official filter width uses the plotting
grid's 10,000 points (after interpolating shorter sequences up to it); ours uses ``T``.
Constant ``G`` gives ``w_t = (T - 1 - t) / (T - 1)``: linear decay, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gradhub.errors import HyperparameterError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub_refined_schedules import REFINED_SCHEDULE, RefinementHyperparameters
from gradhub_refined_schedules._common import check_optimizer

__all__ = ["RefinedLR", "median_filter", "refine_schedule", "refined_lr", "resample_schedule"]

METHOD = REFINED_SCHEDULE.name
_REFINEMENT = RefinementHyperparameters()
"""The refinement's defaults (``tau``, ``power``), read from its model for :func:`refine_schedule`."""
_WINDOW_ELEMENTS = 1 << 22  # rows x width of one block of the median filter's sliding windows


def _as_vector(method: str, name: str, values: Any, minimum: float | None, strict: bool, length: int = 1) -> np.ndarray:
    """``values`` (list, array or tensor) as a float64 1-D array; checked, with gradhub errors."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise HyperparameterError(method, name, values, "a 1-D sequence of numbers") from None
    allowed = f"a 1-D sequence of at least {length} finite numbers" + (
        "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    )
    if array.ndim != 1 or array.size < length:
        raise HyperparameterError(method, name, values, f"{allowed} (got shape {array.shape})")
    bad = ~np.isfinite(array)
    if minimum is not None:
        bad |= (array <= minimum) if strict else (array < minimum)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise HyperparameterError(method, name, values, f"{allowed} ({name}[{index}] = {float(array[index])!r})")
    return array


def median_filter(values: Any, width: int) -> np.ndarray:
    """The official recipe's median filter: odd ``width``, end reflected, boundary nearest, same length.

    Equals ``scipy.ndimage.median_filter(np.pad(v, (0, 2 width), "reflect"), size=width,
    mode="nearest")[:-2 width]`` (the README of facebookresearch/adaptive_scheduling).
    Vectorised over sliding windows, processed in blocks of rows to bound memory.
    """
    array = _as_vector("median_filter", "values", values, None, False)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1 or width % 2 == 0:
        raise HyperparameterError("median_filter", "width", width, "an odd integer >= 1")
    if width == 1 or array.size == 1:
        return array.copy()
    pad, half = 2 * width, width // 2
    padded = np.pad(array, (0, pad), mode="reflect")
    padded = np.pad(padded, (half, half), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)[: array.size]
    rows = max(1, _WINDOW_ELEMENTS // width)
    return np.concatenate([np.median(windows[start : start + rows], axis=1) for start in range(0, array.size, rows)])


def filter_width(steps: int, tau: float) -> int:
    """``2 floor(tau T / 2) + 1`` (the README's ``2*(int(sigma2*nvals)//2) + 1``)."""
    return 2 * (int(tau * steps) // 2) + 1


def _closed_form(log_weights: np.ndarray) -> np.ndarray:
    """``w_t = a_t sum_{p>t} a_p``, ``a = exp(log_weights)``, normalised to max 1 (``w_{T-1} = 0``)."""
    weights = np.exp(log_weights - log_weights.max())
    tail = np.cumsum(weights[::-1])[::-1]  # tail[t] = sum_{p >= t} a_p
    refined = np.zeros_like(weights)
    refined[:-1] = weights[:-1] * tail[1:]
    return refined / refined.max()


def refine_schedule(
    grad_norms: Any,
    tau: float = _REFINEMENT.tau,
    power: float = _REFINEMENT.power,
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Refined multipliers ``w / max(w)`` (length T, float64, last entry 0) from recorded norms.

    ``grad_norms``: the ``T >= 2`` norms ``G_t`` of the previous run (list, array or tensor;
    finite and > 0). ``tau``: median-filter width as a fraction of T (0 disables it).
    ``power``: ``a_t = G_hat_t^-power`` (2: L2 norms, SGD; 1: L1 norms, Adam). ``weights``:
    explicit ``a_t`` (the official ``weights=`` argument), used instead of the filtered norms.
    """
    norms = _as_vector(METHOD, "grad_norms", grad_norms, 0.0, True, length=2)
    options = validate_hyperparameters(METHOD, RefinementHyperparameters, {"tau": tau, "power": power})
    if weights is not None:
        explicit = _as_vector(METHOD, "weights", weights, 0.0, True, length=2)
        if explicit.size != norms.size:
            raise HyperparameterError(
                METHOD, "weights", weights, f"one weight per gradient norm ({norms.size}), got {explicit.size}"
            )
        return _closed_form(np.log(explicit))
    smoothed = median_filter(norms, filter_width(norms.size, options["tau"]))
    return _closed_form(-options["power"] * np.log(smoothed))


def resample_schedule(multipliers: Any, total_steps: int) -> np.ndarray:
    """Linear interpolation of a schedule onto ``total_steps`` points; the endpoints are kept."""
    values = np.asarray(multipliers, dtype=np.float64)
    if values.size == total_steps:
        return values.copy()
    if values.size == 1:
        return np.full(total_steps, values[0])
    if total_steps == 1:
        return values[:1].copy()
    return np.interp(np.linspace(0.0, 1.0, total_steps), np.linspace(0.0, 1.0, values.size), values)


class _TableMultiplier:
    """``step -> table[min(step, len - 1)]``: a picklable LambdaLR multiplier over a fixed table.

    ``LambdaLR.state_dict`` keeps a callable object's ``__dict__``, so the table (a tuple of
    floats, loadable with ``torch.load(weights_only=True)``) travels with the scheduler's state.
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = tuple(float(value) for value in table)

    def __call__(self, step: int) -> float:
        return self.table[min(step, len(self.table) - 1)]


class RefinedLR(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` over given multipliers (e.g. :func:`refine_schedule`'s), one per step.

    ``total_steps`` (default ``len(multipliers)``) resamples them linearly when the new run
    is longer or shorter; the first and last multipliers are kept. After the last step
    the last multiplier holds. The multipliers are part of the ``state_dict``, so a resumed
    scheduler continues the saved schedule.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, multipliers: Any, total_steps: int | None = None, last_epoch: int = -1
    ) -> None:
        check_optimizer("RefinedLR", optimizer)
        table = _as_vector("RefinedLR", "multipliers", multipliers, 0.0, False)
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1
        ):
            raise HyperparameterError("RefinedLR", "total_steps", total_steps, "an integer >= 1 or None")
        steps = table.size if total_steps is None else int(total_steps)
        super().__init__(optimizer, _TableMultiplier(resample_schedule(table, steps)), last_epoch)

    @property
    def multipliers(self) -> np.ndarray:
        """The per-step multipliers this scheduler follows (after resampling)."""
        return np.asarray(self.lr_lambdas[0].table, dtype=np.float64)


@validated(REFINED_SCHEDULE)
def refined_lr(
    optimizer: torch.optim.Optimizer, grad_norms: Any, tau: float, power: float, total_steps: int | None
) -> RefinedLR:
    """``RefinedLR(optimizer, refine_schedule(grad_norms, tau, power), total_steps)``.

    The factory registered as ``refined_schedule``: the recorded norms of run 1 enter as
    data (``grad_norms``); run 2 keeps run 1's base lr (the optimizer's ``lr``), and
    ``total_steps`` resamples the refined schedule if run 2 has a different length.
    """
    return RefinedLR(optimizer, refine_schedule(grad_norms, tau, power), total_steps)
