"""The sampler kind: ``sample(model, *args, generator=None, **hparams) -> SampleResult``.

A sampler draws from a model (a denoiser, a score, an energy) using only ``generator``
for randomness, so a seed reproduces the samples, and reports how many times it
evaluated the model (one call, batched or not, is one evaluation).

The call frame (:func:`sampler`) owns what every grid sampler repeats — the k-diffusion loop
and the diffusers ``scheduler.step`` split — so a sampler plugin writes one step::

    @sampler(EULER, grid="sigmas", bounds=(0.0, None))
    def euler(call, x, sigma, sigma_next, *, churn):      # defaults come from EULER.params
        denoised = call.model(x, sigma)                   # counted, checked
        return x + (sigma_next - sigma) / sigma * (x - denoised)

``euler(model, x_T, sigmas, *, generator=None, progress=None, return_trajectory=False,
enable_grad=False, check_finite=True, churn=...)`` then validates the hyperparameters against
the spec's model, checks ``x_T`` (a real floating tensor with a batch dimension) and the
generator (a ``torch.Generator`` on ``x_T``'s device), reads the grid once (finite, strictly
decreasing, within ``bounds``; one host sync per call), keeps the state in at least float32,
calls the step once per pair of grid points under ``torch.no_grad()`` (unless
``enable_grad=True``), records the trajectory and progress, and returns a :class:`SampleResult`
in ``x_T``'s dtype. :meth:`SamplerCall.model` calls the user's model in ``x_T``'s dtype with a
``(batch,)`` time tensor, counts the call, and checks the output's shape and device; unless
``check_finite=False`` it keeps the output's extremes on the device (one pass, NaN-propagating:
:func:`gradhub.kernels.extremes`), and the frame reads them once after the last step (one host sync
per call, none per model call) and raises, naming the method, the first bad step and its time.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import bind_and_validate, bind_to_spec, public_signature
from gradhub.kernels.reductions import extremes
from gradhub.kinds.inputs import require_generator
from gradhub.progress import tracker

__all__ = ["SampleResult", "SamplerCall", "SamplerExample", "check_state", "is_sampler_target", "read_grid", "sampler"]


@dataclass
class SampleResult:
    samples: torch.Tensor
    evaluations: int
    trajectory: torch.Tensor | None = None


@dataclass(kw_only=True)
class SamplerExample:
    model: Callable[..., Any]
    args: tuple[Any, ...] = ()
    hparams: dict[str, Any] = field(default_factory=dict)


def is_sampler_target(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)


class SamplerCall:
    """One call of a sampler, as its step function sees it: the counted model, noise, the grid.

    ``index`` is the current step (0-based) of ``steps``; ``memory`` is a dict a multistep method
    keeps its history in (it lives for one call).
    """

    def __init__(
        self, method: str, model: Any, x_T: torch.Tensor, generator: torch.Generator | None, grid: list[float]
    ) -> None:
        if not callable(model):
            raise UnsupportedInputError(method, "model", type(model).__name__, "pass a callable model(x, t)")
        self.method, self._model, self.generator, self.grid = method, model, generator, grid
        self.dtype, self.batch = x_T.dtype, x_T.shape[0]
        self.steps = len(grid) - 1
        self.index = 0
        self.evaluations = 0
        self.check_finite = True
        self.memory: dict[str, Any] = {}
        self._extremes: list[torch.Tensor] = []
        self._where: list[tuple[int, float]] = []

    def model(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The model's output at ``(x, t)`` in the state's dtype: one counted, checked evaluation."""
        time = torch.full((self.batch,), t, dtype=self.dtype, device=x.device)
        output = self._model(x.to(self.dtype), time)
        self.evaluations += 1
        if not isinstance(output, torch.Tensor) or output.shape != x.shape or output.device != x.device:
            got = (
                f"{tuple(output.shape)} on {output.device}"
                if isinstance(output, torch.Tensor)
                else type(output).__name__
            )
            raise UnsupportedInputError(
                self.method,
                "model output",
                got,
                f"the model must return a tensor shaped like x {tuple(x.shape)} on {x.device}",
            )
        if self.check_finite:  # (min, max) kept on the device; read once, by finish()
            self._extremes.append(extremes(output))
            self._where.append((self.index, t))
        return output.to(x.dtype)

    def finish(self) -> None:
        """Raise if any model output of this call was non-finite, naming the first one's step and time.

        One host read per call (not per model call): each output's (min, max) stays on the device
        while the sampler runs, so a NaN is reported after the last step, with where it began.
        """
        if not self._extremes:
            return
        read = torch.stack([pair.to(torch.float64) for pair in self._extremes]).tolist()
        for (low, high), (index, t) in zip(read, self._where):
            if not (math.isfinite(low) and math.isfinite(high)):
                found = "NaN" if math.isnan(low) or math.isnan(high) else "infinite values"
                raise UnsupportedInputError(
                    self.method,
                    f"model output at step {index} (t={t:.6g})",
                    f"a tensor with non-finite entries ({found}; min {low}, max {high})",
                    "the model must return finite values (pass check_finite=False to skip this check)",
                )

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like``, drawn from the call's generator only."""
        return torch.randn(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)


def check_state(method: str, x_T: Any, generator: Any) -> None:
    """``x_T`` is a real floating tensor with a batch dimension; ``generator`` a Generator on its device."""
    if not isinstance(x_T, torch.Tensor) or not x_T.is_floating_point() or x_T.dim() < 1 or x_T.shape[0] < 1:
        shown = (
            f"{x_T.dtype} tensor of shape {tuple(x_T.shape)}" if isinstance(x_T, torch.Tensor) else type(x_T).__name__
        )
        raise UnsupportedInputError(method, "x_T", shown, "x_T must be a real floating tensor (batch, ...)")
    require_generator(method, generator, x_T, "x_T")


def read_grid(
    method: str, name: str, grid: Any, device: torch.device, low: float, high: float | None = None
) -> list[float]:
    """The grid as Python floats (float64), after checking it strictly decreases within [low, high]."""
    if isinstance(grid, torch.Tensor):
        if grid.device.type not in ("cpu", device.type):
            raise UnsupportedInputError(method, f"{name} device", grid.device, f"put {name} on the CPU or on {device}")
        if grid.dim() != 1 or grid.is_complex():
            raise UnsupportedInputError(
                method, name, f"a tensor of shape {tuple(grid.shape)}", f"{name} must be 1-D and real"
            )
        values = grid.detach().to("cpu", torch.float64).tolist()
    elif isinstance(grid, Sequence) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid):
        values = [float(v) for v in grid]
    else:
        raise UnsupportedInputError(
            method, name, type(grid).__name__, f"{name} must be a 1-D tensor or a list of numbers"
        )
    if len(values) < 2:
        raise UnsupportedInputError(method, name, values, f"{name} needs at least 2 entries (one step)")
    if not all(math.isfinite(v) for v in values):
        raise UnsupportedInputError(method, name, values, f"every entry of {name} must be finite")
    for i in range(len(values) - 1):
        if not values[i + 1] < values[i]:
            raise UnsupportedInputError(
                method,
                name,
                f"{name}[{i}]={values[i]:.6g}, {name}[{i + 1}]={values[i + 1]:.6g}",
                f"{name} must strictly decrease (noise first, data last)",
            )
    tolerance = 1e-9 * max(1.0, abs(high) if high is not None else 1.0)
    if values[-1] < low - tolerance or (high is not None and values[0] > high + tolerance):
        allowed = f"[{low:g}, {high:g}]" if high is not None else f"[{low:g}, inf)"
        raise UnsupportedInputError(
            method, name, f"from {values[0]:.6g} to {values[-1]:.6g}", f"{name} must lie in {allowed}"
        )
    return values


Bounds = tuple[float, float | None]
Step = Callable[..., torch.Tensor]

_FRAME_KEYWORDS = (
    ("generator", None),
    ("progress", None),
    ("return_trajectory", False),
    ("enable_grad", False),
    ("check_finite", True),
)


def sampler(
    spec: Any,
    *,
    grid: str = "sigmas",
    bounds: Bounds | Callable[[dict[str, Any]], Bounds] = (0.0, None),
    setup: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Callable[[Step], Callable[..., SampleResult]]:
    """Make a sampler from one step ``step(call, x, t, t_next, **hparams) -> x_next``; see the module docstring.

    ``grid`` names the grid argument (``"sigmas"``, ``"ts"``); ``bounds`` is ``(low, high)`` for its
    values (``high=None``: unbounded), or a function of the validated hyperparameters giving them;
    ``setup`` maps the validated hyperparameters to what the step receives (resolving a named
    noise schedule, say) before the grid is read.
    """
    model_type = spec.params

    def decorate(step: Step) -> Callable[..., SampleResult]:
        own = public_signature(step, model_type, spec.name)
        hyper = [p for name, p in own.parameters.items() if name in model_type.model_fields]
        leading = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("model", "x_T", grid)]
        frame = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value) for name, value in _FRAME_KEYWORDS
        ]
        signature = inspect.Signature(
            [*leading, *frame, *[p.replace(kind=p.KEYWORD_ONLY) for p in hyper]], return_annotation="SampleResult"
        )
        label = grid.removesuffix("s")

        @functools.wraps(step)
        def sample(*args: Any, **kwargs: Any) -> SampleResult:
            bound, values = bind_and_validate(spec.name, signature, model_type, args, kwargs)
            arguments = bound.arguments
            for flag in ("return_trajectory", "enable_grad", "check_finite"):
                if not isinstance(arguments[flag], bool):
                    raise HyperparameterError(spec.name, flag, arguments[flag], "True or False")
            x_T, generator = arguments["x_T"], arguments["generator"]
            check_state(spec.name, x_T, generator)
            if setup is not None:
                values = setup(values)
            low, high = bounds(values) if callable(bounds) else bounds
            points = read_grid(spec.name, grid, arguments[grid], x_T.device, low, high)
            call = SamplerCall(spec.name, arguments["model"], x_T, generator, points)
            call.check_finite = bool(arguments["check_finite"])
            x = x_T.to(torch.promote_types(x_T.dtype, torch.float32), copy=True)  # never the caller's x_T
            trajectory = [x] if arguments["return_trajectory"] else None
            with (
                torch.set_grad_enabled(bool(arguments["enable_grad"])),
                tracker(arguments["progress"], total=call.steps, task=spec.name) as bar,
            ):
                for index in range(call.steps):
                    call.index = index
                    x = step(call, x, points[index], points[index + 1], **values)
                    if trajectory is not None:
                        trajectory.append(x)
                    bar.update(**{label: points[index + 1]})
            call.finish()
            stacked = torch.stack([state.to(x_T.dtype) for state in trajectory]) if trajectory is not None else None
            return SampleResult(samples=x.to(x_T.dtype), evaluations=call.evaluations, trajectory=stacked)

        bind_to_spec(sample, spec, model_type, step.__doc__, signature)
        return sample

    return decorate
