"""Analytical step skipping: the Gaussian closed form for the early steps, any gradhub sampler for the rest.

"Diffusion Models Generate Images Like Painters: an Analytical Theory of Outline First, Details
Later", Binxu Wang and John J. Vastola, 2023, arXiv:2303.02490, Section 5 (the TMLR 2024 version's
"analytical teleportation"): early in sampling, at high noise, a trained model's denoiser is close to
the denoiser of the data's Gaussian approximation, so the trajectory from ``sigma_max`` to some
``sigma_skip`` is (nearly) the Gaussian flow, which is known in closed form. Jump there with
:meth:`GaussianPFODE.solve` and integrate the learned PF-ODE only from ``sigma_skip`` down: with EDM's
Heun (Karras et al. 2022, Algorithm 1; NVlabs/edm ``generate.py``) that saves ``2 * skip_to_index``
model evaluations.

``gaussian_skip_sampler(model, gaussian, x_T, sigmas, *, skip_to_index, sampler="heun_edm",
sampler_options=None, generator=None, progress=None, return_trajectory=False, enable_grad=False,
check_finite=True) -> SampleResult``. The hand-over is a call of the other sampler, as it is, on the
rest of the grid ``sigmas[skip_to_index:]``: any gradhub sigma-grid sampler (EDM form, ``x_T`` at noise
level ``sigmas[0]``; gradhub-diffusion's ``heun_edm``, ``euler_ode``, ``dpmpp_2m``,
``euler_maruyama_sde``), its own frame counting the model calls, checking them and drawing from
``generator``. So ``skip_to_index=0`` *is* that sampler (bit for bit), and a multistep sampler keeps its
history over the steps it runs. (A stochastic sampler's per-grid settings see the shorter grid: heun_edm's
churn ``S_churn / N`` uses the N steps it is given.)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import gradhub
from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.sampler import SampleResult, check_state, read_grid
from gradhub.progress import ProgressCallback, ProgressEvent, Tracker, tracker
from gradhub_gaussian_pfode import GAUSSIAN_SKIP_SAMPLER
from gradhub_gaussian_pfode.gaussian import GaussianPFODE

NAME = GAUSSIAN_SKIP_SAMPLER.name


class _Forward:
    """The hand-over sampler's progress, continued on this call's tracker (after the skipped steps)."""

    def __init__(self, bar: Tracker) -> None:
        self.bar, self.seen = bar, 0

    def __call__(self, event: ProgressEvent) -> None:
        if not event.done and event.step > self.seen:
            self.bar.update(event.step - self.seen, **event.metrics)
            self.seen = event.step


def _hand_over(choice: str | Callable[..., Any]) -> Callable[..., Any]:
    """The sampler function named (or given), checked to take a sigma grid."""
    function = gradhub.get(choice) if isinstance(choice, str) else choice
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C callable: trust the caller
        return function
    if "sigmas" not in parameters:
        shown = choice if isinstance(choice, str) else getattr(choice, "__name__", type(choice).__name__)
        raise UnsupportedInputError(
            NAME,
            "sampler",
            f"{shown} (its arguments: {', '.join(list(parameters)[:3])}, ...)",
            "a sigma-grid sampler in EDM form, called sampler(model, x_T, sigmas, ...): heun_edm, euler_ode, "
            "dpmpp_2m, euler_maruyama_sde",
        )
    return function


@validated(GAUSSIAN_SKIP_SAMPLER)
def gaussian_skip_sampler(
    model: Callable[[Tensor, Tensor], Tensor],
    gaussian: GaussianPFODE,
    x_T: Tensor,
    sigmas: Tensor | list[float],
    *,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
    return_trajectory: bool = False,
    enable_grad: bool = False,
    check_finite: bool = True,
    skip_to_index: int,
    sampler: str | Callable[..., Any],
    sampler_options: dict[str, Any] | None,
) -> SampleResult:
    """Jump from ``sigmas[0]`` to ``sigmas[skip_to_index]`` with the Gaussian flow, then sample the rest.

    ``x_skip = gaussian.solve(x_T, sigmas[0], sigmas[skip_to_index])`` (no model call),
    then ``sampler(model, x_skip, sigmas[skip_to_index:], ...)``, by default EDM's Heun (second order,
    Euler on a last step to sigma = 0). ``model(x, sigma)`` is an EDM denoiser ``D(x; sigma)`` (or what
    ``sampler_options={'prediction': ...}`` says). ``evaluations`` counts the hand-over sampler's model
    calls; ``return_trajectory=True`` stacks the closed form's states at the skipped grid points and the
    sampler's after them (``len(sigmas)`` states). ``skip_to_index = len(sigmas) - 1`` samples with the
    Gaussian alone (no model call).
    """
    for flag, value in (("return_trajectory", return_trajectory), ("enable_grad", enable_grad)):
        if not isinstance(value, bool):
            raise HyperparameterError(NAME, flag, value, "True or False")
    if not isinstance(check_finite, bool):
        raise HyperparameterError(NAME, "check_finite", check_finite, "True or False")
    check_state(NAME, x_T, generator)
    if not isinstance(gaussian, GaussianPFODE):
        raise UnsupportedInputError(
            NAME, "gaussian", type(gaussian).__name__, "pass a GaussianPFODE (e.g. GaussianPFODE.fit(training_data))"
        )
    if gaussian.schedule != "ve":
        raise UnsupportedInputError(
            NAME,
            "gaussian schedule",
            gaussian.schedule,
            "the grid is EDM's sigma: pass gaussian.with_schedule('ve') (the same data distribution)",
        )
    points = read_grid(NAME, "sigmas", sigmas, x_T.device, 0.0)
    steps = len(points) - 1
    if skip_to_index > steps:
        raise HyperparameterError(
            NAME, "skip_to_index", skip_to_index, f"an integer in [0, {steps}] (sigmas has {steps} steps)"
        )
    hand_over = _hand_over(sampler) if skip_to_index < steps else None
    x, states = x_T, None
    with tracker(progress, total=steps, task=NAME) as bar:
        if skip_to_index:
            head = points[: skip_to_index + 1]
            with torch.set_grad_enabled(enable_grad):
                if return_trajectory:
                    states = gaussian.trajectory(x_T, head)
                    x = states[-1]
                else:
                    x = gaussian.solve(x_T, head[0], head[-1])
            bar.update(skip_to_index, sigma=head[-1])
        if hand_over is None:
            return SampleResult(samples=x, evaluations=0, trajectory=states)
        result = hand_over(
            model,
            x,
            sigmas[skip_to_index:],
            generator=generator,
            progress=_Forward(bar),
            return_trajectory=return_trajectory,
            enable_grad=enable_grad,
            check_finite=check_finite,
            **(sampler_options or {}),
        )
    if not isinstance(result, SampleResult):
        raise UnsupportedInputError(
            NAME, "sampler result", type(result).__name__, "the hand-over sampler must return a SampleResult"
        )
    trajectory = result.trajectory
    if trajectory is not None:
        trajectory = trajectory.to(x_T.dtype)
        if states is not None:
            trajectory = torch.cat([states, trajectory[1:]])
    return SampleResult(samples=result.samples.to(x_T.dtype), evaluations=result.evaluations, trajectory=trajectory)


__all__ = [gaussian_skip_sampler.__name__]
