"""gradhub-hessian-spectrum: the probes behind Sagun et al.'s Hessian analysis, as gradhub methods.

This is the plugin's entry module: specs and hyperparameter models only, no torch, so
listing and inspecting the methods stays cheap. Each method is declared once, here (``name=``
in its spec), and once as an entry point in ``pyproject.toml``; the probes bind to their specs
(``@validated(HESSIAN_SPECTRUM)``) for their names, defaults and bounds. The implementation lives in
:mod:`gradhub_hessian_spectrum.spectrum` (spectra, density, Gauss-Newton split),
:mod:`gradhub_hessian_spectrum.curvature` (Hessian- and Gauss-Newton-vector products),
:mod:`gradhub_hessian_spectrum.lanczos` (Lanczos and stochastic Lanczos quadrature) and
:mod:`gradhub_hessian_spectrum.path` (loss along a linear path).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict

from gradhub.hyperparameters import Hyperparameters, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Empirical Analysis of the Hessian of Over-Parametrized Neural Networks",
    authors=("Levent Sagun", "Utku Evci", "V. Ugur Guney", "Yann Dauphin", "Leon Bottou"),
    year=2017,
    venue="ICLR 2018 Workshop",
    arxiv="1706.04454",
    url="https://arxiv.org/abs/1706.04454",
)

Count = Annotated[int, Strict(), Field(ge=1)]

METHOD = "'dense' (torch.func.hessian, small models) or 'lanczos' (k Lanczos steps on Hessian-vector products)"
STEPS = "Lanczos steps (= Ritz values returned) for method='lanczos'; must be <= the parameter count"
BATCH = "evaluate the full-data loss in chunks of this many samples (None: all at once); the loss must be a mean"
DENSE_LIMIT = "largest parameter count for which a dense P x P matrix is built"


class HessianSpectrumHyperparameters(Hyperparameters):
    """Eigenvalues of the full-data training-loss Hessian."""

    method: Literal["dense", "lanczos"] = Field("dense", description=METHOD)
    k: Count = Field(50, description=STEPS)
    batch_size: Count | None = Field(None, description=BATCH)
    dense_limit: Count = Field(4096, description=DENSE_LIMIT)


class SpectralDensityHyperparameters(Hyperparameters):
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; as in PyHessian's ``density``)."""

    n_probes: Count = Field(10, description="Rademacher start vectors (independent quadratures averaged)")
    m: Count = Field(80, description="Lanczos steps per probe; must be <= the parameter count")
    grid_points: Annotated[int, Strict(), Field(ge=2)] = Field(512, description="points of the density grid")
    sigma: Real = Field(0.01, gt=0, description="Gaussian kernel width, as a fraction of the spectrum's extent")
    batch_size: Count | None = Field(None, description=BATCH)


class GGNDecompositionHyperparameters(Hyperparameters):
    """Eigenvalues of H, of its Gauss-Newton part G and of the rest R = H - G."""

    method: Literal["dense", "lanczos"] = Field("dense", description=METHOD)
    k: Count = Field(50, description=STEPS)
    batch_size: Count | None = Field(None, description=BATCH)
    dense_limit: Count = Field(4096, description=DENSE_LIMIT)


class LossAlongPathHyperparameters(Hyperparameters):
    """Loss at evenly spaced points of the segment between two sets of weights."""

    n_points: Annotated[int, Strict(), Field(ge=2)] = Field(21, description="points alpha in [0, 1], ends included")
    batch_size: Count | None = Field(None, description=BATCH)


_COMMON = dict(
    kind="probe",
    paper=PAPER,
    tags=("hessian", "curvature", "loss-landscape", "lanczos"),
    claims=("gradhub_hessian_spectrum.claims:outliers_follow_clusters",),
)

HESSIAN_SPECTRUM = MethodSpec(
    name="hessian_spectrum",
    summary="Eigenvalues of the training-loss Hessian: dense, or Lanczos with full reorthogonalisation",
    target="gradhub_hessian_spectrum.spectrum",
    params=HessianSpectrumHyperparameters,
    example="gradhub_hessian_spectrum.examples:lanczos_on_three_clusters",
    **_COMMON,
)
SPECTRAL_DENSITY = MethodSpec(
    name="spectral_density",
    summary="Gaussian-smoothed eigenvalue density of the Hessian by stochastic Lanczos quadrature",
    target="gradhub_hessian_spectrum.spectrum",
    params=SpectralDensityHyperparameters,
    example="gradhub_hessian_spectrum.examples:quadrature_on_three_clusters",
    **_COMMON,
)
GGN_DECOMPOSITION = MethodSpec(
    name="ggn_decomposition",
    summary="Eigenvalues of the Hessian H, its generalised Gauss-Newton part G and the rest R = H - G",
    target="gradhub_hessian_spectrum.spectrum",
    params=GGNDecompositionHyperparameters,
    example="gradhub_hessian_spectrum.examples:dense_split_on_three_clusters",
    **_COMMON,
)
LOSS_ALONG_PATH = MethodSpec(
    name="loss_along_path",
    summary="Training loss along the straight line between two weight vectors (same-basin test)",
    target="gradhub_hessian_spectrum.path",
    params=LossAlongPathHyperparameters,
    example="gradhub_hessian_spectrum.examples:path_between_two_seeds",
    **_COMMON,
)
