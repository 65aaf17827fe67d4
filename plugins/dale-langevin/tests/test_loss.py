"""multiplicative_dsm: its value against the formulas, and its minimiser is the true score.

The loss draws, from its generator, ``t ~ U(0, 1]`` (float64, (batch,)) and then ``eps ~ N(0, I)`` in x0's
dtype; the tests replay those draws with a generator seeded alike.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gradhub_dale_langevin.lognormal import LogNormalMixture
from gradhub_dale_langevin.loss import multiplicative_dsm
from gradhub_dale_langevin.schedule import GBMSchedule

from gradhub.testing import counting_read_backs

SCHEDULE = GBMSchedule(sigma_max=1.5, mu=0.1)


def _draws(x0: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    t = 1.0 - torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    return t, torch.randn(x0.shape, generator=generator, dtype=x0.dtype)


def _model(seed: int = 0) -> Any:
    """A fixed smooth 'score network' in float64, so the identities hold for any model, not just the true score."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, 2, generator=generator, dtype=torch.float64)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.cat([x.log(), t[:, None]], 1) @ weight) / x

    return model


def _data(count: int = 64, seed: int = 5) -> torch.Tensor:
    return torch.rand(count, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 + 0.05


def test_weightings_against_their_formulas() -> None:
    """x2: ||x_t (s - grad log p(x_t|x0))||^2; x2_sigma2: s_t^2 times it, which equals the log-domain eps-prediction
    loss ||eps - eps_theta||^2 with eps_theta = -s_t (x_t s + 1) (to 1e-10, float64); none: ||s - grad log p||^2."""
    x0, model = _data(), _model()
    t, eps = _draws(x0, 11)
    x_t = SCHEDULE.sample(x0, t, eps)
    score, target = model(x_t, t), SCHEDULE.conditional_score(x_t, x0, t)
    s_t = SCHEDULE.log_std(t)[:, None]
    expected = {
        "x2": (x_t * (score - target)).square().mean(1),
        "x2_sigma2": (eps - (-s_t * (x_t * score + 1))).square().mean(1),
        "none": (score - target).square().mean(1),
    }
    for weighting, values in expected.items():
        got = multiplicative_dsm(
            model, x0, torch.Generator().manual_seed(11), schedule=SCHEDULE, weighting=weighting, reduction="none"
        )
        torch.testing.assert_close(got, values, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(expected["x2_sigma2"], s_t[:, 0] ** 2 * expected["x2"], rtol=1e-10, atol=1e-12)


def test_log_score_parameterisation_is_the_same_loss() -> None:
    """param='log_score' with a model returning x s + 1 gives the loss of param='score' with s (any weighting)."""
    x0, model = _data(), _model()

    def log_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * model(x, t) + 1

    for weighting in ("x2", "x2_sigma2", "none"):
        common = dict(schedule=SCHEDULE, weighting=weighting, reduction="none")
        by_x = multiplicative_dsm(model, x0, torch.Generator().manual_seed(3), **common)
        by_log = multiplicative_dsm(log_model, x0, torch.Generator().manual_seed(3), param="log_score", **common)
        torch.testing.assert_close(by_log, by_x, rtol=1e-10, atol=1e-12)


def test_given_times() -> None:
    """A given t (0-D or (batch,)) replaces the drawn one: only eps is drawn."""
    x0, model = _data(8), _model()
    generator = torch.Generator().manual_seed(4)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    t = torch.full((8,), 0.3, dtype=torch.float64)
    x_t = SCHEDULE.sample(x0, t, eps)
    expected = (x_t * (model(x_t, t) - SCHEDULE.conditional_score(x_t, x0, t))).square().mean(1)
    for given in (t, torch.tensor(0.3, dtype=torch.float64)):
        got = multiplicative_dsm(
            model, x0, torch.Generator().manual_seed(4), given, schedule=SCHEDULE, reduction="none"
        )
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_one_host_read_per_call() -> None:
    """The positivity and time checks join the loss frame's single read (none with both checks off)."""
    x0, model = _data(8), _model()
    with counting_read_backs() as reads:
        multiplicative_dsm(model, x0, torch.Generator().manual_seed(0), schedule=SCHEDULE)
    assert len(reads) == 1, reads
    with counting_read_backs() as reads:
        multiplicative_dsm(
            model, x0, torch.Generator().manual_seed(0), schedule=SCHEDULE, check_values=False, check_finite=False
        )
    assert reads == [], reads


# --- the minimiser: log-normal data, whose GBM-perturbed score is known in closed form -----------------------

CENTRE, SPREAD, COUNT = 0.3, 0.4, 40_000


def _parametrised(centre: float, variance: float, domain: str = "x") -> Any:
    """The log-normal family's GBM score: the log-domain score -(y - centre - m_t)/(variance + s_t^2), given in x
    (``(. - 1)/x``, the loss's default contract); wrong variants: handed over as if it were the x score, or shifted
    by -1/x, which is the shipped loss seen through a loss that drops the Jacobian term (the +1 of x s + 1)."""

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift = SCHEDULE.mean_shift(t)[:, None]
        log_score = -(x.log() - centre - shift) / (variance + SCHEDULE.log_var(t)[:, None])
        if domain == "log-as-x":
            return log_score
        if domain == "no-jacobian":  # what a loss without the +1 of x s + 1 sees: x s_theta where it needs x s + 1
            return (log_score - 1) / x - 1 / x
        return (log_score - 1) / x

    return model


def _losses(centre: float, variance: float, weighting: str, domain: str = "x") -> torch.Tensor:
    """Per-sample losses on one fixed set of data, times t ~ U(0.3, 1] and noise (float64). The minimiser is the
    true score at every t; times away from 0 keep the per-sample variance of the x2 and none weightings (which
    grows like 1/s_t^2) small enough for 40 000 samples to resolve the gradient."""
    generator = torch.Generator().manual_seed(21)
    data = LogNormalMixture([CENTRE], SPREAD).sample(COUNT, generator)
    t = 0.8 - 0.3 * torch.rand(COUNT, generator=generator, dtype=torch.float64)
    model = _parametrised(centre, variance, domain)
    common = dict(schedule=SCHEDULE, weighting=weighting, reduction="none")
    return multiplicative_dsm(model, data, torch.Generator().manual_seed(22), t, **common)


def _gradient_z(centre: float, variance: float, weighting: str, domain: str = "x") -> tuple[float, float]:
    """z-scores of the loss's gradient in (centre, variance): per-sample central differences (same draws), their mean
    over the standard error of the mean (CLT). Zero in expectation exactly at the minimiser."""
    scores = []
    for index, step in ((0, 1e-5), (1, 1e-6)):
        plus = [centre, variance]
        minus = [centre, variance]
        plus[index] += step
        minus[index] -= step
        gradient = (_losses(*plus, weighting, domain) - _losses(*minus, weighting, domain)) / (2 * step)
        scores.append(gradient.mean().item() / (gradient.std().item() / math.sqrt(COUNT)))
    return scores[0], scores[1]


@pytest.mark.parametrize("weighting", ["x2", "x2_sigma2", "none"])
def test_true_score_is_the_minimiser(weighting: str) -> None:
    """The true score (centre 0.3, variance 0.16) has a lower loss than perturbed scores on the same draws, and the
    loss's gradient in the score's parameters vanishes there (|z| < 5); a score off by 0.1 in its centre has a
    gradient far from zero (|z| > 8; measured 12-29)."""
    truth = _losses(CENTRE, SPREAD**2, weighting).mean().item()
    for centre, variance in ((CENTRE + 0.1, SPREAD**2), (CENTRE - 0.1, SPREAD**2), (CENTRE, 0.25), (CENTRE, 0.09)):
        assert _losses(centre, variance, weighting).mean().item() > truth, (centre, variance)
    z_centre, z_variance = _gradient_z(CENTRE, SPREAD**2, weighting)
    assert abs(z_centre) < 5 and abs(z_variance) < 5, (z_centre, z_variance)
    assert abs(_gradient_z(CENTRE + 0.1, SPREAD**2, weighting)[0]) > 8


@pytest.mark.parametrize("domain", ["log-as-x", "no-jacobian"])
def test_wrong_variants_are_not_the_minimiser(domain: str) -> None:
    """Wrong variants: the true log-domain score handed to the loss as the x score (param mismatch), and a loss
    without the Jacobian term. At the true parameters the gradient does not vanish (|z| > 8 in one parameter),
    under every weighting."""
    for weighting in ("x2", "x2_sigma2", "none"):
        z_centre, z_variance = _gradient_z(CENTRE, SPREAD**2, weighting, domain=domain)
        assert max(abs(z_centre), abs(z_variance)) > 8, (z_centre, z_variance)
