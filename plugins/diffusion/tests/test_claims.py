"""The claim checks pass, and fail for deliberately wrong samplers (for the right reason)."""

from __future__ import annotations

import itertools
import typing

import gradhub_diffusion
import torch
from gradhub_diffusion.claims import heun_sample_quality, solver_orders
from gradhub_diffusion.samplers import dpmpp_2m, euler_ode

from gradhub.claims import claim_paths
from gradhub.figures import Style
from gradhub.kinds.sampler import SampleResult
from gradhub.specs import MethodSpec


def heun_without_correction(model, x_T, sigmas, **_):
    """'Heun' that never applies the trapezoidal correction: Euler in disguise (first order)."""
    x, grid = x_T.clone(), sigmas.tolist()
    for sigma, sigma_next in itertools.pairwise(grid):
        x = x + (sigma_next - sigma) * (x - model(x, torch.full((x.shape[0],), sigma, dtype=x.dtype))) / sigma
    return SampleResult(samples=x, evaluations=len(grid) - 1)


def euler_wrong_sign(model, x_T, sigmas, **_):
    """Euler with the ODE's sign flipped: dx/dsigma = (D - x) / sigma."""
    x, grid = x_T.clone(), sigmas.tolist()
    for sigma, sigma_next in itertools.pairwise(grid):
        x = x + (sigma_next - sigma) * (model(x, torch.full((x.shape[0],), sigma, dtype=x.dtype)) - x) / sigma
    return SampleResult(samples=x, evaluations=len(grid) - 1)


def test_solver_orders_pass() -> None:
    """Euler ratio ~2.08, Heun ratio ~4.24, DPM++(2M) e(32) ~0.0168 < e_Euler(64) ~0.0389."""
    result = solver_orders()
    assert result.passed, result.report()
    assert len(result.figures) == 1 and result.figures[0].xscale == "log"


def test_heun_sample_quality_passes() -> None:
    result = heun_sample_quality()
    assert result.passed, result.report()
    assert result.figures[0].series[0].style == "points"


def test_heun_without_correction_fails_the_order_check() -> None:
    result = solver_orders(heun=heun_without_correction)
    assert not result.passed
    assert result.measured["e_Heun(32)/e_Heun(64)"] < 3.0, result.report()


def test_euler_with_wrong_sign_fails() -> None:
    result = solver_orders(euler=euler_wrong_sign, heun=euler_ode, dpmpp=dpmpp_2m)
    assert not result.passed
    ratio = result.measured["e_Euler(32)/e_Euler(64)"]
    assert not 1.6 <= ratio <= 2.6 or result.measured["e_Euler(64)"] > 1.0, result.report()
    quality = heun_sample_quality(heun=euler_wrong_sign)
    assert not quality.passed and quality.measured["fraction within 1.0 of a mode"] < 0.5, quality.report()


def test_each_method_lists_the_claims_about_it() -> None:
    """A report section is headed by the methods sharing its claim check: Heun's quality is Heun's alone."""
    names = sorted(value.name for value in vars(gradhub_diffusion).values() if isinstance(value, MethodSpec))
    assert len(names) == 12
    assert claim_paths(names) == {
        "gradhub_diffusion.claims:solver_orders": ["dpmpp_2m", "euler_ode", "heun_edm"],
        "gradhub_diffusion.claims:flow_matching_training": ["flow_matching_loss", "fm_euler"],
        "gradhub_diffusion.claims:heun_sample_quality": ["heun_edm"],
    }


def test_mode_markers_drawn_over_the_samples() -> None:
    """The modes are the core's markers (large, drawn above every cloud), listed after the samples; with a core
    that has no "markers" style they are points listed last (drawn later, so still above the samples)."""
    figure = heun_sample_quality().figures[0]
    markers = "markers" if "markers" in typing.get_args(Style) else "points"
    assert [(series.label, series.style) for series in figure.series] == [("samples", "points"), ("modes", markers)]
    assert len(figure.series[0].x) == 2000 and len(figure.series[1].x) == 4
