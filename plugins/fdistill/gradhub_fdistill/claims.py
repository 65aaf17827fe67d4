"""Claim check for f-distill: the f-divergence decides between mode seeking and mass covering.

The paper's claim (its discussion of mode seeking and mass covering): weighting DMD's score difference by
``h(r) = f''(r) r^2`` minimises the chosen f-divergence, so a mass-covering divergence (forward KL, h = r)
spreads the student over the teacher's modes while reverse KL (h = 1, DMD) seeks one mode, and
Jensen-Shannon lies between.

Set-up (seconds on a CPU, no networks): teacher p = 0.8 N((-3, 0), 0.5^2 I) + 0.2 N((3, 0), 0.5^2 I);
student a Gaussian generator ``x = mu + s * z`` (learnable mu and log s; one Gaussian cannot cover both
modes). Noise ``x_t = x + sigma eps`` with ``sigma ~ logUniform[0.1, 3]``. In place of the networks, the
exact quantities: the teacher's x0 prediction (posterior mean of the mixture,
:class:`gradhub_diffusion.gmm.GaussianMixture`), the student's (Gaussian) and the exact log ratio
``log p_sigma(x_t) - log q_sigma(x_t)`` as the discriminator's logit. :class:`~gradhub_fdistill.loss.FDistillLoss`
as shipped, with ``dmd_normalizer=False``, no ratio clip, the ratio normalisation over 10 bins of sigma in
[0.1, 3]; 600 Adam steps (lr 0.05, batch 512, float64) per divergence; the student's mean and std are
averaged over the last 100 steps.

Measured (torch 2.13 CPU, float64): std along x1 rkl 0.664, kl 2.445, js 2.315 (moment matching of the
noise-free problem predicts 0.5 and 2.45); rkl's mean x1 -2.825. Wrong weightings fail the same criterion
(tests/test_claims.py): h = 1/r for "kl" (Neyman's weight) gives a kl student of std 0.556 on the heavy
mode; the ratio inverted (q/p) gives std 0.553.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from gradhub_diffusion.gmm import GaussianMixture
from torch import Tensor

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_fdistill import DIVERGENCES

LossFunction = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]

TEACHER_MEANS = ((-3.0, 0.0), (3.0, 0.0))
TEACHER_WEIGHTS = (0.8, 0.2)
TEACHER_STD = 0.5
SIGMA_RANGE = (0.1, 3.0)
STEPS, LR, BATCH, AVERAGED = 600, 0.05, 512, 100

KL_OVER_RKL_STD = 2.0
RKL_MEAN_TOLERANCE = 0.5


def teacher() -> GaussianMixture:
    """The claim's 2-D teacher (float64)."""
    means = torch.tensor(TEACHER_MEANS, dtype=torch.float64)
    return GaussianMixture(means, TEACHER_STD, torch.tensor(TEACHER_WEIGHTS, dtype=torch.float64))


def log_teacher(mixture: GaussianMixture, x: Tensor, sigma: Tensor) -> Tensor:
    """``log p_sigma(x)``: the mixture convolved with N(0, sigma^2 I); sigma (batch,)."""
    variance = (mixture.std**2 + sigma**2)[:, None]  # (batch, 1)
    squared = (x[:, None, :] - mixture.means[None]).square().sum(-1)  # (batch, K)
    dim = x.shape[1]
    log_normal = -squared / (2 * variance) - 0.5 * dim * torch.log(2 * math.pi * variance)
    return torch.logsumexp(mixture.weights.log() + log_normal, dim=1)


def log_student(x: Tensor, sigma: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``log q_sigma(x)`` of the Gaussian student N(mean, diag(std^2)) convolved with N(0, sigma^2 I).

    ``x`` (..., d), ``sigma`` (...); ``mean`` and ``std`` broadcast against ``x``."""
    variance = std**2 + sigma[..., None] ** 2
    return (-(x - mean).square() / (2 * variance) - 0.5 * torch.log(2 * math.pi * variance)).sum(-1)


@dataclass
class ToyStudent:
    """A distilled Gaussian student: mean and std (averaged over the last steps) and their paths."""

    mean: Tensor
    std: Tensor
    mean_path: Tensor
    std_path: Tensor


def default_loss(divergence: str) -> LossFunction:
    from gradhub_fdistill.loss import FDistillLoss

    return FDistillLoss(divergence=divergence, ratio_clip=None, dmd_normalizer=False, t_range=SIGMA_RANGE)


def distill_gaussian_students(
    losses: dict[str, LossFunction], *, steps: int = STEPS, seed: int = 0
) -> dict[str, ToyStudent]:
    """Adam on ``loss(x, D_T(x_t), D_F(x_t), log p/q, sigma)`` for one Gaussian student per loss (module docstring).

    The students train side by side, each on its own draws and with its own loss: their parameters are rows of
    one tensor (Adam is elementwise, so this is the same as one optimizer each) and the teacher is evaluated
    on all their samples at once.
    """
    mixture = teacher()
    names = list(losses)
    count = len(names)
    generator = torch.Generator().manual_seed(seed)
    mean = torch.zeros(count, 1, 2, dtype=torch.float64, requires_grad=True)
    log_std = torch.zeros(count, 1, 2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([mean, log_std], lr=LR)
    low, high = math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1])
    means, stds = [], []
    for _ in range(steps):
        z = torch.randn(count, BATCH, 2, generator=generator, dtype=torch.float64)
        sigma = (low + (high - low) * torch.rand(count, BATCH, generator=generator, dtype=torch.float64)).exp()
        noise = torch.randn(count, BATCH, 2, generator=generator, dtype=torch.float64)
        std = log_std.exp()
        x = mean + std * z
        with torch.no_grad():
            x_t = x + sigma[..., None] * noise
            m, s = mean.detach(), std.detach()
            flat_x_t, flat_sigma = x_t.reshape(-1, 2), sigma.reshape(-1)
            teacher_x0 = mixture.posterior_mean(flat_x_t, torch.ones_like(flat_sigma), flat_sigma).view_as(x_t)
            fake_x0 = m + s**2 / (s**2 + sigma[..., None] ** 2) * (x_t - m)
            log_ratio = log_teacher(mixture, flat_x_t, flat_sigma).view_as(sigma) - log_student(x_t, sigma, m, s)
        total = sum(
            losses[name](x[i], teacher_x0[i], fake_x0[i], log_ratio[i], sigma[i]) for i, name in enumerate(names)
        )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        means.append(mean.detach()[:, 0].clone())
        stds.append(log_std.detach()[:, 0].exp())
    mean_path, std_path = torch.stack(means, 1), torch.stack(stds, 1)  # (students, steps, 2)
    return {
        name: ToyStudent(mean_path[i, -AVERAGED:].mean(0), std_path[i, -AVERAGED:].mean(0), mean_path[i], std_path[i])
        for i, name in enumerate(names)
    }


def _density_x1(grid: Tensor, means: Sequence[float], weights: Sequence[float], stds: Sequence[float]) -> Tensor:
    total = torch.zeros_like(grid)
    for mean, weight, std in zip(means, weights, stds):
        total += weight * torch.exp(-((grid - mean) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi))
    return total


@functools.lru_cache(maxsize=1)
def default_students() -> dict[str, ToyStudent]:
    """The shipped loss's students, one per divergence (deterministic: computed once per process)."""
    with single_thread():
        return distill_gaussian_students({divergence: default_loss(divergence) for divergence in DIVERGENCES})


def criterion_holds(students: dict[str, ToyStudent]) -> bool:
    """kl's std along x1 >= 2 x rkl's; rkl < js < kl; rkl's mean x1 within 0.5 of -3."""
    std = {name: student.std[0].item() for name, student in students.items()}
    rkl_mean = students["rkl"].mean[0].item()
    return (
        std["kl"] >= KL_OVER_RKL_STD * std["rkl"]
        and std["rkl"] < std["js"] < std["kl"]
        and abs(rkl_mean - TEACHER_MEANS[0][0]) <= RKL_MEAN_TOLERANCE
    )


def students_per_divergence(loss_factory: Callable[[str], LossFunction] | None = None) -> ClaimResult:
    """The claim on a student per divergence; :func:`criterion_holds` decides.

    ``loss_factory(divergence)`` replaces the shipped loss. The thresholds follow the theory (moment
    matching 2.45 against mode seeking 0.5, a factor ~5) with margin, not this CPU's values.
    """
    if loss_factory is None:
        students = default_students()
    else:
        with single_thread():
            students = distill_gaussian_students({divergence: loss_factory(divergence) for divergence in DIVERGENCES})
    std = {name: student.std[0].item() for name, student in students.items()}
    mean = {name: student.mean[0].item() for name, student in students.items()}
    passed = criterion_holds(students)
    grid = torch.linspace(-7, 7, 281, dtype=torch.float64)
    teacher_density = _density_x1(grid, [m[0] for m in TEACHER_MEANS], TEACHER_WEIGHTS, [TEACHER_STD] * 2)
    steps = torch.arange(1, STEPS + 1)
    figures = [
        LinePlot(
            title="f-distill students per divergence over the teacher density (marginal along x1)",
            series=[
                Series("teacher 0.8 N(-3, 0.5^2) + 0.2 N(3, 0.5^2)", grid, teacher_density, color="black"),
                *(
                    Series(
                        f"{name} student N({mean[name]:.2f}, {std[name]:.2f}^2)",
                        grid,
                        _density_x1(grid, [mean[name]], [1.0], [std[name]]),
                        "dashed",
                        f"C{index}",
                    )
                    for index, name in enumerate(students)
                ),
            ],
            xlabel="x1",
            ylabel="density",
        ),
        LinePlot(
            title="Student std along x1 during distillation (Adam, lr 0.05)",
            series=[
                Series(name, steps, student.std_path[:, 0], color=f"C{index}")
                for index, (name, student) in enumerate(students.items())
            ],
            xlabel="Adam step",
            ylabel="std along x1",
        ),
    ]
    details = "\n".join(
        f"{name:<7} mean ({mean[name]:+.3f}, {s.mean[1].item():+.3f})  std ({std[name]:.3f}, {s.std[1].item():.3f})"
        for name, s in students.items()
    )
    return ClaimResult(
        claim="The f-divergence chosen for distribution matching decides the one-step student's coverage: "
        "forward KL covers the teacher's modes, reverse KL (DMD) seeks one, Jensen-Shannon lies between.",
        criterion=f"Gaussian student of a 0.8/0.2 two-mode teacher: std along x1 kl >= {KL_OVER_RKL_STD:g} x rkl; "
        f"rkl < js < kl; rkl's mean x1 within {RKL_MEAN_TOLERANCE} of -3 (the heavy mode)",
        measured={
            **{f"std x1 ({name})": std[name] for name in students},
            **{f"mean x1 ({name})": mean[name] for name in students},
        },
        passed=bool(passed),
        details=details,
        figures=figures,
    )
