"""Generation with a distilled f-distill student: one step, or a few with re-noising in between.

"One-step Diffusion Models with f-Divergence Distribution Matching", Y. Xu, W. Nie, A. Vahdat, 2025,
arXiv:2502.15681. The student G is a one-step generator in the teacher's parameterisation: called as
``G(x_T, T)`` on pure noise at the path's largest time it returns a sample (FastGen: ``net(latents(noise),
max_t)`` with ``latents(noise) = sigma(T) noise``). On a grid ``ts = [T, t_min]`` the sampler is that
single call. A longer grid ``[T, tau_1, ..., t_min]`` runs the multistep sampling FastGen offers for
students distilled with several steps (and consistency models use, Song et al. 2023, Algorithm 1):
``x0 = G(x, t_i)``; ``x <- alpha(tau_{i+1}) x0 + sigma(tau_{i+1}) z`` with fresh noise z, and the last
step returns x0.

Under the core's sampler frame (:func:`gradhub.kinds.sampler.sampler`): ``fdistill_sampler(student,
x_T, ts, *, path="edm", prediction="x0", generator=None, progress=None, ...)``; ``x_T`` is the student's
input at ``ts[0]`` (for one step: ``sigma(T) z``); ``ts`` strictly decreasing within the path's range.
"""

from __future__ import annotations

from typing import Any

from gradhub_diffusion.paths import GaussianPath
from torch import Tensor

from gradhub.kinds.sampler import SamplerCall, sampler
from gradhub_fdistill import FDISTILL_SAMPLER


def _path_range(values: dict[str, Any]) -> tuple[float, float]:
    return values["path"].t_min, values["path"].t_max


@sampler(FDISTILL_SAMPLER, grid="ts", bounds=_path_range)
def fdistill_sampler(
    call: SamplerCall, x: Tensor, t: float, s: float, *, path: GaussianPath, prediction: str
) -> Tensor:
    """One student evaluation ``x0 = G(x, t)``; re-noised to ``s`` (``alpha(s) x0 + sigma(s) z``) unless last.

    One model call per step; a one-step grid draws no noise.
    """
    points = call.memory.get("path points")
    if points is None:  # the grid's coefficients once per call, on the host
        points = call.memory["path points"] = path.points(call.grid)
    denoised = path.to_x0(call.model(x, t), x, points[call.index], prediction)
    if call.index == call.steps - 1:
        return denoised
    return path.sample(denoised, points[call.index + 1], call.noise(denoised))


# The public name, from the object itself: the method's name is written once, in its spec.
__all__ = [fdistill_sampler.__name__]
