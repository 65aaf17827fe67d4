"""ReSTE's schedule of the power o over training: from the STE (o = 1) towards sign (o = 3).

Paper: "Estimator Meets Equilibrium Perspective: A Rectified Straight Through Estimator for
Binary Neural Networks Training", Wu et al., ICCV 2023, arXiv:2308.06689 (Sec. 4.3: o grows
during training to trade the estimating error against gradient stability). Official code:
https://github.com/DravenALG/ReSTE, ``main.py`` (function ``ReSTE(epoch)``), ``--o_end 3``.

    o(epoch) = o_start + (1 - cos(pi/2 * min(epoch / total_epochs, 1))) * (o_end - o_start)

The official code computes ``1 + (1 - cos(pi/2 * epoch / epochs)) * (o_end - 1)`` at the start of
every epoch (epochs 0 .. epochs - 1, so o never quite reaches o_end) and sets it as both ``o`` and
``o_a`` of every convolution. Two readings here: ``o_start`` replaces the official fixed 1 (the
default 1 gives the official values, which it computes in float32 tensors); past ``total_epochs`` o stays at ``o_end``
(the official run never goes there; the cosine would otherwise overshoot o_end).

:func:`reste_o_schedule` is the registered step-form function (``o = reste_o_schedule(epoch,
total_epochs=...)``); :class:`ReSTEPowerSchedule` holds the hyperparameters and also sets o on a
model (``schedule.apply(model, epoch)``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from torch import nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub_reste import RESTE_O_SCHEDULE, ReSTEScheduleHyperparameters
from gradhub_reste.layers import reste_layers

_EPOCH = "epoch must be a finite number >= 0 (an int, or a float for a fraction of an epoch)"


def _check_epoch(epoch: Any) -> float:
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or not 0 <= float(epoch) < math.inf:
        raise UnsupportedInputError(RESTE_O_SCHEDULE.name, "epoch", repr(epoch), _EPOCH)  # NaN lands here too
    return float(epoch)


def power_at(epoch: float, total_epochs: int, o_start: float, o_end: float) -> float:
    """o at ``epoch`` (module docstring), for validated arguments."""
    progress = min(epoch / total_epochs, 1.0)
    return o_start + (1.0 - math.cos(math.pi / 2 * progress)) * (o_end - o_start)


@validated(RESTE_O_SCHEDULE)
def reste_o_schedule(epoch: float, *, total_epochs: int, o_start: float, o_end: float) -> float:
    """o for ``epoch``: the official cosine rise from ``o_start`` (1) to ``o_end`` (3) over ``total_epochs``.

    ``epoch`` is a number >= 0 (0 at the start of training); from ``total_epochs`` on, o is ``o_end``.
    """
    return power_at(_check_epoch(epoch), total_epochs, o_start, o_end)


class ReSTEPowerSchedule:
    """``ReSTEPowerSchedule(total_epochs, o_start=1.0, o_end=3.0)``: ``schedule(epoch)`` is o, ``apply`` sets it.

    Call ``schedule.apply(model, epoch)`` at the start of every epoch (as the official ``main.py``);
    it sets the same o on weights and activations of every ReSTE layer of ``model`` and returns it.
    The object is stateless beyond its hyperparameters; ``state_dict`` gives them for a checkpoint.
    """

    def __init__(self, total_epochs: int, o_start: float = 1.0, o_end: float = 3.0) -> None:
        values = {"total_epochs": total_epochs, "o_start": o_start, "o_end": o_end}
        checked = validate_hyperparameters(RESTE_O_SCHEDULE.name, ReSTEScheduleHyperparameters, values)
        self.total_epochs: int = checked["total_epochs"]
        self.o_start: float = checked["o_start"]
        self.o_end: float = checked["o_end"]

    def __call__(self, epoch: float) -> float:
        return power_at(_check_epoch(epoch), self.total_epochs, self.o_start, self.o_end)

    def apply(self, model: nn.Module, epoch: float) -> float:
        """Set o(epoch) on every ReSTE layer of ``model`` (an error if it has none); returns o."""
        o = self(epoch)
        for _, layer in reste_layers(RESTE_O_SCHEDULE.name, model):
            layer._o = o  # o >= o_start >= 1 by construction: no per-layer validation
        return o

    def state_dict(self) -> dict[str, Any]:
        return {"total_epochs": self.total_epochs, "o_start": self.o_start, "o_end": self.o_end}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ReSTEPowerSchedule(total_epochs={self.total_epochs}, o_start={self.o_start}, o_end={self.o_end})"


__all__ = ["ReSTEPowerSchedule", "power_at", reste_o_schedule.__name__]
