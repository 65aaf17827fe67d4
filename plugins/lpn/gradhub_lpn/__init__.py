"""gradhub-lpn: Learned Proximal Networks and proximal matching (Fang, Buchanan & Sulam, ICLR 2024).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing and
inspecting the methods stays cheap. The implementation lives in :mod:`gradhub_lpn.networks` (the
input-convex potentials ``LPN`` and ``ConvLPN`` whose gradient is the learned proximal operator),
:mod:`gradhub_lpn.loss` (the proximal-matching loss and its gamma schedule), :mod:`gradhub_lpn.prior`
(the learned regulariser R_theta, by inverting the proximal map), :mod:`gradhub_lpn.pnp` (plug-and-play
PGD and ADMM with an LPN as the prox) and :mod:`gradhub_lpn.training` (a seeded denoising trainer).

Each method is declared once, here (``name=`` in its spec, whose handle is the name in upper case:
``LPN``, ``LPN_CONV``, ``PROXIMAL_MATCHING``, ``LPN_PRIOR``, ``LPN_PNP_PGD``, ``LPN_PNP_ADMM``), and once as
an entry point in ``pyproject.toml``; the implementations bind to these specs for their names, defaults
and bounds. Torch-side helpers are importable from here lazily (``from gradhub_lpn import train_lpn``
imports torch only at that moment); the classes and solvers from their modules or by ``gradhub.get``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="What's in a Prior? Learned Proximal Networks for Inverse Problems",
    authors=("Zhenghan Fang", "Sam Buchanan", "Jeremias Sulam"),
    year=2024,
    venue="International Conference on Learning Representations (ICLR)",
    arxiv="2310.14344",
    url="https://arxiv.org/abs/2310.14344",
    code="https://github.com/ZhenghanFang/learned-proximal-networks",
)

Count = Annotated[int, Strict(), Field(ge=0)]
PositiveCount = Annotated[int, Strict(), Field(ge=1)]
Positive = Annotated[float, Strict(), Field(gt=0)]
NonNegative = Annotated[float, Strict(), Field(ge=0)]

BETA = "sharpness of the softplus s(t) = log(1 + exp(beta t)) / beta (official: 10); > 0"
ALPHA = "strong convexity: psi gains alpha ||y||^2 (official convention, gradient 2 alpha y); >= 0"
TOL = "stop when every sample's residual (an L2 norm, see the solver) is <= tol"
MAX_ITER = "maximum number of iterations"


class LPNHyperparameters(Hyperparameters):
    """The fully connected LPN of the official 1-D Laplacian experiment (``exps/laplacian/network.py``)."""

    in_dim: PositiveCount = Field(description="n: each sample is a vector of n entries (or any shape with n entries)")
    hidden: PositiveCount = Field(50, description="hidden units per layer (official 1-D notebook: 50)")
    layers: Count = Field(4, description="hidden-to-hidden layers, each with a passthrough from y (notebook: 4)")
    beta: Positive = Field(10.0, description=BETA)
    alpha: NonNegative = Field(0.0, description=ALPHA)


class ConvLPNHyperparameters(Hyperparameters):
    """The convolutional LPN of the official MNIST model (``lpn/networks/lpn_mnist.py``), any size 4k x 4k."""

    in_channels: PositiveCount = Field(1, description="image channels")
    hidden: PositiveCount = Field(64, description="channels of the convolutional layers (official MNIST: 64)")
    img_size: PositiveCount = Field(28, description="images are img_size x img_size, a multiple of 4 (MNIST: 28)")
    head: PositiveCount = Field(64, description="units of the last hidden (dense) layer (official: 64)")
    beta: Positive = Field(10.0, description=BETA)
    alpha: NonNegative = Field(0.0, description=ALPHA + " (official MNIST config: 0.01)")

    @model_validator(mode="after")
    def _size_divisible_by_four(self) -> ConvLPNHyperparameters:
        if self.img_size % 4:
            raise HyperparameterError(
                LPN_CONV.name, "img_size", self.img_size, "a multiple of 4 (two stride-2 convolutions)"
            )
        return self


class ProximalMatchingHyperparameters(Hyperparameters):
    """The proximal matching loss 1 - c_gamma exp(-||f(y) - x||^2 / gamma^2) (paper Eq. 3.2; official ExpDiracSrgt)."""

    gamma: Positive = Field(description="width gamma > 0 (anneal it towards 0: proximal_matching_schedule)")
    normalize: Flag = Field(
        False, description="multiply by the paper's c_gamma = (pi gamma^2)^(-n/2) (official code: no, c_gamma = 1)"
    )
    reduction: Literal["mean", "sum", "none"] = Field("mean", description="over the batch (official: mean)")


class LPNPriorHyperparameters(Hyperparameters):
    """Inverting the learned prox: y* = argmin_y psi(y) - <x, y>, then R(x) = <x, y*> - ||x||^2 / 2 - psi(y*)."""

    tol: NonNegative = Field(1e-5, description=TOL + " (residual ||f(y) - x||)")
    max_iter: PositiveCount = Field(1000, description=MAX_ITER)


class PnPPGDHyperparameters(Hyperparameters):
    """Plug-and-play proximal gradient: x <- f(x - step A^T (A x - b))."""

    step: Positive = Field(description="gradient step eta on 0.5 ||A x - b||^2 (convergent for eta <= 1 / ||A||^2)")
    tol: NonNegative = Field(1e-5, description=TOL + " (residual ||x_{k+1} - x_k||)")
    max_iter: PositiveCount = Field(100, description=MAX_ITER)


class PnPADMMHyperparameters(Hyperparameters):
    """Plug-and-play ADMM with the data term's prox in closed form and the LPN as the prior's prox."""

    rho: Positive = Field(1.0, description="ADMM penalty rho > 0")
    tol: NonNegative = Field(1e-5, description=TOL + " (residual max(||x - z||, ||z_{k+1} - z_k||))")
    max_iter: PositiveCount = Field(100, description=MAX_ITER)


LAPLACIAN_CLAIM = "gradhub_lpn.claims:laplacian_map_and_prior"
_LAYER = dict(kind="layer", paper=PAPER, capabilities={"gradient": "exact"}, tags=("inverse-problems", "icnn"))
_SOLVER = dict(kind="solver", paper=PAPER, tags=("inverse-problems", "plug-and-play"))

LPN = MethodSpec(
    name="lpn",
    summary="Learned proximal network: an input-convex MLP psi whose gradient f = grad psi is an exact prox",
    target="gradhub_lpn.networks:LPN",
    params=LPNHyperparameters,
    example="gradhub_lpn.examples:lpn_layer",
    claims=(LAPLACIAN_CLAIM,),
    **_LAYER,
)
LPN_CONV = MethodSpec(
    name="lpn_conv",
    summary="Convolutional learned proximal network for images (official MNIST layout, bilinear passthroughs)",
    target="gradhub_lpn.networks:ConvLPN",
    params=ConvLPNHyperparameters,
    example="gradhub_lpn.examples:conv_lpn_layer",
    **_LAYER,
)
PROXIMAL_MATCHING = MethodSpec(
    name="proximal_matching",
    kind="loss",
    summary="Proximal matching loss 1 - exp(-||f(y) - x||^2 / gamma^2): as gamma -> 0 its minimiser is the MAP",
    paper=PAPER,
    target="gradhub_lpn.loss:ProximalMatchingLoss",
    params=ProximalMatchingHyperparameters,
    example="gradhub_lpn.examples:denoised_batch",
    claims=(LAPLACIAN_CLAIM,),
    capabilities={"gradient": "exact", "reductions": ("none", "mean", "sum")},
    tags=("denoising", "map-estimation"),
)
LPN_PRIOR = MethodSpec(
    name="lpn_prior",
    summary="The learned prior R(x) of an LPN: invert f by minimising psi(y) - <x, y>, R = <x,y> - |x|^2/2 - psi",
    target="gradhub_lpn.prior",
    params=LPNPriorHyperparameters,
    example="gradhub_lpn.examples:prior_problem",
    claims=(LAPLACIAN_CLAIM,),
    **_SOLVER,
)
LPN_PNP_PGD = MethodSpec(
    name="lpn_pnp_pgd",
    summary="Plug-and-play proximal gradient descent for 0.5||Ax - b||^2 + R(x) with a learned prox (an LPN)",
    target="gradhub_lpn.pnp:pnp_pgd",
    params=PnPPGDHyperparameters,
    example="gradhub_lpn.examples:pgd_problem",
    **_SOLVER,
)
LPN_PNP_ADMM = MethodSpec(
    name="lpn_pnp_admm",
    summary="Plug-and-play ADMM for 0.5||Ax - b||^2 + R(x): closed-form data step, a learned prox (an LPN)",
    target="gradhub_lpn.pnp:pnp_admm",
    params=PnPADMMHyperparameters,
    example="gradhub_lpn.examples:admm_problem",
    **_SOLVER,
)

_LAZY = {
    "ConvLPN": "gradhub_lpn.networks",
    "potential_and_gradient": "gradhub_lpn.networks",
    "ProximalMatchingLoss": "gradhub_lpn.loss",
    "proximal_matching_loss": "gradhub_lpn.loss",
    "proximal_matching_schedule": "gradhub_lpn.loss",
    "default_gamma_min": "gradhub_lpn.loss",
    "PriorResult": "gradhub_lpn.prior",
    "pnp_pgd": "gradhub_lpn.pnp",
    "pnp_admm": "gradhub_lpn.pnp",
    "Stage": "gradhub_lpn.training",
    "train_lpn": "gradhub_lpn.training",
    "proximal_matching_stages": "gradhub_lpn.training",
    "laplace_sampler": "gradhub_lpn.training",
}

__getattr__ = lazy_exports(__name__, _LAZY)
