"""gbm_sampler: the update written out, the log-normal target reproduced, positivity on every step.

For a log-normal target ``log x0 ~ N(a, tau^2)`` the exact GBM score is linear in ``y = log x`` and the sampler's
chain is Gaussian in y: its output mean is exactly ``a`` and its variance follows the recursion
``P <- P (1 - dv/V_t)^2 + dv`` (then ``P tau^4 / V_t^2`` for the final Tweedie step), so the Monte-Carlo check
compares with the chain's own law (5 standard errors, CLT) and, separately, that law with the target.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gradhub_dale_langevin.claims import ambient_sampler
from gradhub_dale_langevin.lognormal import LogNormalMixture
from gradhub_dale_langevin.sampler import gbm_sampler
from gradhub_dale_langevin.schedule import GBMSchedule

from .conftest import NoItoSchedule

SCHEDULE = GBMSchedule(sigma_max=1.5)
A, TAU, COUNT = 0.3, 0.15, 10_000


def _chain_law(schedule: GBMSchedule, steps: int, final_denoise: bool = True) -> tuple[float, float]:
    """The exact mean and variance of log x_0 the sampler produces from the exact t = 1 marginal (float64)."""
    points = schedule.points(schedule.times(steps).tolist())
    variance = TAU**2 + points[0].v
    last = len(points) - 2 if final_denoise else len(points) - 1
    for now, then in itertools.pairwise(points[: last + 1]):
        variance = variance * (1 - (now.v - then.v) / (TAU**2 + now.v)) ** 2 + (now.v - then.v)
    if final_denoise:
        return A, variance * TAU**4 / (TAU**2 + points[-2].v) ** 2
    return A + points[-1].m, variance


def _sample(schedule: GBMSchedule, steps: int, seed: int = 0, param: str = "score", model_param: str = "score", **kw):
    """Log samples of the sampler on the log-normal target's exact score, x_T from the exact t = 1 marginal."""
    generator = torch.Generator().manual_seed(seed)
    start = SCHEDULE.points([1.0])[0]
    log_x_T = (
        A + start.m + math.sqrt(TAU**2 + start.v) * torch.randn(COUNT, 1, generator=generator, dtype=torch.float64)
    )

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The target's exact score under the true process (whatever schedule samples): linear in log x."""
        now = SCHEDULE.points([t[0].item()])[0]
        log_score = -(x.log() - A - now.m) / (TAU**2 + now.v)
        return log_score if model_param == "log_score" else (log_score - 1) / x

    result = gbm_sampler(
        model, log_x_T.exp(), schedule.times(steps), generator=generator, schedule=schedule, param=param, **kw
    )
    return result.samples.log()[:, 0]


def _matches(log_x: torch.Tensor, mean: float, variance: float) -> bool:
    n = log_x.numel()
    return abs(log_x.mean().item() - mean) <= 5 * math.sqrt(variance / n) and abs(
        log_x.var().item() / variance - 1
    ) <= 5 * math.sqrt(2 / n)


@pytest.mark.parametrize(("param", "final_denoise"), [("score", True), ("log_score", False)])
def test_lognormal_target_reproduced(param: str, final_denoise: bool) -> None:
    """500 steps on the exact score: the sample log-moments match the chain's law (CLT) and that law the target
    (mean exact; std within 0.5%: the discretisation's variance bias is dv^2/V_t per step)."""
    log_x = _sample(SCHEDULE, 500, param=param, model_param=param, final_denoise=final_denoise)
    mean, variance = _chain_law(SCHEDULE, 500, final_denoise)
    assert _matches(log_x, mean, variance), (log_x.mean().item(), log_x.var().item(), mean, variance)
    # the target: the data (Tweedie denoises to s = 0) or the t = 0 marginal, N(A + m_0, TAU^2 + s_0^2)
    end = SCHEDULE.points([0.0])[0]
    target_mean, target_var = (A, TAU**2) if final_denoise else (A + end.m, TAU**2 + end.v)
    assert abs(math.sqrt(variance / target_var) - 1) < 0.005 and abs(mean - target_mean) < 1e-12


def test_wrong_variants_miss_the_target() -> None:
    """The same criterion fails for a sampler without the Ito shift (log-mean off by ~s_1^2/2) and for the x score
    read as the log score (param mismatch). (The true score pulls
    towards the right marginal, so the missing drift costs 0.05 in the log-mean: 35 standard errors.)"""
    mean, variance = _chain_law(SCHEDULE, 500)
    no_ito = _sample(NoItoSchedule(sigma_max=1.5), 500)
    assert not _matches(no_ito, mean, variance) and abs(no_ito.mean().item() - A) > 0.03  # measured 0.051
    mismatch = _sample(SCHEDULE, 500, param="log_score", model_param="score")
    assert not _matches(mismatch, mean, variance)


def test_update_written_out() -> None:
    """Each step is x <- x exp(-(m_t - m_s) + dv (x score + 1) + sqrt(dv) z), the last Tweedie (float64, 1e-12)."""
    mixture = LogNormalMixture([[-1.0, 0.5], [0.5, -0.5]], 0.15)
    schedule = GBMSchedule(sigma_max=1.2, kind="linear", mu=0.3)
    x_T = schedule.prior((16, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = schedule.times(7)
    result = gbm_sampler(
        mixture.score_model(schedule),
        x_T,
        ts,
        generator=torch.Generator().manual_seed(2),
        schedule=schedule,
        return_trajectory=True,
    )
    generator = torch.Generator().manual_seed(2)
    points = schedule.points(ts.tolist())
    y = x_T.log()
    for index, (now, then) in enumerate(itertools.pairwise(points)):
        x = y.exp()
        log_score = x * mixture.score(x, torch.full((16,), now.t, dtype=torch.float64), schedule) + 1
        if index == 6:
            y = y - now.m + now.v * log_score
        else:
            z = torch.randn(y.shape, generator=generator, dtype=torch.float64)
            y = y - (now.m - then.m) + (now.v - then.v) * log_score + math.sqrt(now.v - then.v) * z
        torch.testing.assert_close(result.trajectory[index + 1], y.exp(), rtol=1e-12, atol=0)
    assert result.evaluations == 7 and result.trajectory.shape == (8, 16, 2)
    torch.testing.assert_close(result.trajectory[0], x_T, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_positive_on_every_step_for_extreme_steps(dtype: torch.dtype, steps: int) -> None:
    """1, 2 or 5 steps over s from 0.01 to 8 (log-variance steps up to 64), with the exact score and with a wild
    log score (+-1e4): every state of the trajectory is > 0 and finite, in every dtype. The ambient Euler-Maruyama
    step on the same grid (the sign-agnostic sampler) leaves samples <= 0."""
    schedule = GBMSchedule(sigma_max=8.0)
    mixture = LogNormalMixture([[-1.0, 0.5], [0.5, -0.5]], 0.15, dtype=dtype)
    x_T = schedule.prior((256, 2), generator=torch.Generator().manual_seed(3), dtype=dtype)

    signs = torch.where(torch.arange(x_T.numel()).reshape(x_T.shape) % 2 == 0, 1.0, -1.0).to(dtype)

    def wild(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # a log score of +-1e4: y moves by up to 6e5
        return signs * 1e4

    # the exact score in log x (in x it overflows float16 for the tiny x a log-std of 8 reaches)
    for model, param in ((mixture.score_model(schedule, "log_score"), "log_score"), (wild, "log_score")):
        result = gbm_sampler(
            model,
            x_T,
            schedule.times(steps),
            generator=torch.Generator().manual_seed(4),
            schedule=schedule,
            param=param,
            return_trajectory=True,
        )
        assert result.trajectory.dtype == dtype
        assert bool((result.trajectory > 0).all()) and bool(torch.isfinite(result.trajectory).all())


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_ambient_discretisation_crosses_zero(steps: int) -> None:
    """Wrong variant of the same criterion: Euler-Maruyama on the reverse SDE written in x (the sign-agnostic
    sampler), on the same exact score and grid, leaves samples <= 0 where the Dale-Langevin sampler has none."""
    schedule = GBMSchedule(sigma_max=1.5)
    mixture = LogNormalMixture([[-1.0, 0.5], [0.5, -0.5]], 0.15)
    x_T = schedule.prior((2000, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = gbm_sampler(
        mixture.score_model(schedule),
        x_T,
        schedule.times(steps),
        schedule=schedule,
        generator=torch.Generator().manual_seed(4),
        return_trajectory=True,
    )
    assert bool((result.trajectory > 0).all())
    ambient = ambient_sampler(mixture.score_model(schedule), x_T, schedule.times(steps), schedule=schedule)
    assert int((ambient <= 0).any(1).sum()) >= 10


def test_no_grad_by_default() -> None:
    """Sampling runs under no_grad (a network's samples carry no graph) unless enable_grad=True."""
    network = torch.nn.Linear(2, 2, dtype=torch.float64)
    x_T = SCHEDULE.prior((4, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return network(x.log()) / x

    assert not gbm_sampler(model, x_T, SCHEDULE.times(3), schedule=SCHEDULE).samples.requires_grad
    assert gbm_sampler(model, x_T, SCHEDULE.times(3), schedule=SCHEDULE, enable_grad=True).samples.requires_grad
