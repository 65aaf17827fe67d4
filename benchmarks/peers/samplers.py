"""gradhub's diffusion samplers against k-diffusion's and diffusers' (``kinds.py --only samplers``).

    python benchmarks/kinds.py --only samplers

Rows (each in float32 and float64, on one 8x3x32x32 batch, 18 steps):

* ``heun_edm``, ``euler_ode``, ``dpmpp_2m`` against k-diffusion's ``sample_heun``, ``sample_euler``,
  ``sample_dpmpp_2m`` (crowsonkb/k-diffusion ``k_diffusion/sampling.py``), on one EDM-preconditioned conv
  denoiser ``D(x, sigma)`` (k-diffusion's and gradhub's denoiser contract are the same: ``model(x, sigma)``
  with sigma a ``(batch,)`` tensor, returning the x0 prediction) and one grid, ``edm_sigmas(18)``: Karras et
  al.'s Eq. 5 with sigma_min 0.002, sigma_max 80, rho 7, then 0 (k-diffusion's ``get_sigmas_karras``, checked
  here to equal it to float32 rounding). gradhub reads the float64 grid (its convention); k-diffusion gets
  it in the sample's dtype (its convention: ``get_sigmas_karras`` builds it in the default dtype, and a float64
  grid would promote a float32 state to float64), so in float32 the update coefficients differ by the grid's
  float32 rounding (the model sees the same sigmas: gradhub calls it with sigma in the sample's dtype).
* ``ddim`` (eta 0), also with a 1x1-convolution network in float32 (:class:`PointwiseNet`: the samplers' own
  per-step work, frame, adapter and update, is most of the time), against a diffusers ``DDIMScheduler`` loop
  written as ``DDIMPipeline`` writes it: an eps-prediction conv network on DDPM's linear 1000-step schedule,
  ``set_timesteps(18)`` (diffusers' default "leading" spacing: 935, 880, ..., 55, 0, then alpha_bar = 1),
  ``clip_sample=False``. gradhub runs the same network through ``DiffusersDenoiser`` (EDM form, ``x_edm = x_vp
  sqrt(1 + sigma^2)``) with ``ddim`` on the ``edm`` path over the sigmas of those timesteps, then 0: DDIM with
  eta = 0 is the same update in either scale.

Neither side keeps autograd graphs: k-diffusion's samplers are decorated with ``torch.no_grad``, the diffusers
loop runs under it as ``DDIMPipeline.__call__`` does, and gradhub's samplers run under it by default. Progress
bars are off on both sides (k-diffusion's ``disable=True``; gradhub has none unless ``progress=`` is given).
The outputs must agree before anything is timed (``check``): they are the same arithmetic in another order,
so to ~1e-4 relative in float32 and 1e-10 in float64 (the max-abs difference over the max-abs sample).

k-diffusion is imported from its sampling module's file, not as a package: ``import k_diffusion`` runs
``k_diffusion/__init__.py``, which imports its training, evaluation and augmentation modules (torchvision,
clip, clean-fid, kornia, scikit-image, wandb, ...), and ``k_diffusion.utils``, which ``sampling.py`` imports
for ``append_dims``, imports ``torchvision.transforms.functional`` at the top for its image helpers.
torchvision is pinned to one torch build and would replace the torch installed here, so
:func:`k_diffusion_sampling` loads ``sampling.py`` and ``utils.py`` unchanged from the installed package
under a private package name, with an empty stand-in for ``torchvision.transforms.functional`` present only
while they import (no sampler calls it). Install: see ``requirements-bench.txt``.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.metadata
import importlib.util
import math
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from kinds import Comparison
from torch import Tensor, nn
from torch.nn import functional as F

BATCH, CHANNELS, SIZE = 8, 3, 32
STEPS = 18
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}
"""Max-abs difference over max-abs sample allowed between gradhub's samples and the peer's: the same
arithmetic in another order (float32: ~1e-7 per operation, grown over 18-35 model calls)."""

K_DIFFUSION = "k-diffusion"
K_DIFFUSION_VERSION = "0.1.1.post1"
_PRIVATE_PACKAGE = "_gradhub_bench_k_diffusion"


# --- the networks -----------------------------------------------------------------------------


class ConvNet(nn.Module):
    """Three 3x3 convolutions (3 -> 32 -> 32 -> 3) with SiLU, conditioned on a scalar noise input ``c``
    through a per-channel shift after the first layer. ``c`` has shape () or (batch,)."""

    def __init__(self, channels: int = CHANNELS, width: int = 32) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.embed = nn.Linear(1, width)
        self.conv_mid = nn.Conv2d(width, width, 3, padding=1)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift = self.embed(c.to(device=x.device, dtype=x.dtype).reshape(-1, 1))
        h = F.silu(self.conv_in(x) + shift[:, :, None, None])
        return self.conv_out(F.silu(self.conv_mid(h)))


class PointwiseNet(nn.Module):
    """One 1x1 convolution (3 -> 3) plus the noise input's per-channel shift: a network so cheap that a sampler's
    own per-step work (the frame, the adapter, the update) is most of the time. ``c`` has shape () or (batch,)."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.mix = nn.Conv2d(channels, channels, 1)
        self.embed = nn.Linear(1, channels)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift = self.embed(c.to(device=x.device, dtype=x.dtype).reshape(-1, 1))
        return self.mix(x) + shift[:, :, None, None]


class EDMDenoiser(nn.Module):
    """Karras et al. (2022) preconditioning (Table 1, sigma_data = 0.5) of a :class:`ConvNet`:
    ``D(x; sigma) = c_skip x + c_out F(c_in x, log(sigma) / 4)``, the x0 prediction, as both k-diffusion's
    samplers and gradhub's sigma-grid samplers call it: ``model(x, sigma)`` with sigma of shape (batch,)."""

    def __init__(self, network: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.network, self.sigma_data = network, sigma_data

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        sigma = sigma.to(x.dtype).reshape(-1, 1, 1, 1)
        total = sigma**2 + self.sigma_data**2
        c_skip, c_out, c_in = self.sigma_data**2 / total, sigma * self.sigma_data * total.rsqrt(), total.rsqrt()
        return c_skip * x + c_out * self.network(c_in * x, sigma.log().flatten() / 4)


class EpsNetwork(nn.Module):
    """A :class:`ConvNet` as a diffusers-style eps model ``model(x_vp, t)``: ``t`` the (integer or fractional)
    timestep of a 1000-step schedule, a tensor of shape () or (batch,), fed to the network as ``t / 1000``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.network(x, t.to(device=x.device, dtype=x.dtype) / 1000)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Deterministic parameter initialisation that leaves the caller's global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _in(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A copy of ``module`` (same weights) in ``dtype`` on ``device``, in eval mode."""
    return copy.deepcopy(module).to(device=device, dtype=dtype).eval()


# --- k-diffusion's sampling module, without its package ---------------------------------------


def k_diffusion_sampling() -> types.ModuleType:
    """``k_diffusion/sampling.py`` of the installed k-diffusion, loaded without ``k_diffusion/__init__.py``.

    The files are k-diffusion's own, unchanged: a private package (``__path__`` the installed
    ``k_diffusion`` folder) lets ``sampling.py`` import its sibling ``utils.py``; an empty
    ``torchvision.transforms.functional`` stands in while ``utils.py`` imports (only its image helpers use
    it) and is removed again, so nothing else in the process sees a torchvision. See the module docstring.
    """
    name = f"{_PRIVATE_PACKAGE}.sampling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"benchmarks/peers/samplers.py needs {K_DIFFUSION}: pip install --no-deps "
            f"{K_DIFFUSION}=={K_DIFFUSION_VERSION} && pip install -r requirements-bench.txt"
        )
    package = types.ModuleType(_PRIVATE_PACKAGE, "k_diffusion's installed files, without its __init__")
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = _PRIVATE_PACKAGE
    sys.modules[_PRIVATE_PACKAGE] = package
    stand_ins: list[str] = []
    if importlib.util.find_spec("torchvision") is None:
        parts = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
        modules = [types.ModuleType(part, "an empty stand-in while k_diffusion.utils imports") for part in parts]
        modules[0].transforms, modules[1].functional = modules[1], modules[2]
        for part, module in zip(parts, modules):
            sys.modules[part] = module
        stand_ins.extend(parts)
    try:
        return importlib.import_module(name)
    finally:
        for part in stand_ins:
            del sys.modules[part]


# --- the comparisons --------------------------------------------------------------------------


def _samples(result: Any) -> Tensor:
    return result.samples if hasattr(result, "samples") else result


def agree(what: str, dtype: torch.dtype) -> Callable[[Any, Any], None]:
    """A ``check``: raise, with the difference, unless both outputs have one shape and dtype, are finite and
    agree to ``TOLERANCE[dtype]`` (max-abs difference over the peer's max-abs sample)."""
    tolerance = TOLERANCE[dtype]

    def check(ours: Any, peer: Any) -> None:
        ours, peer = _samples(ours), _samples(peer)
        if ours.shape != peer.shape or ours.dtype != peer.dtype or ours.dtype != dtype:
            raise AssertionError(
                f"{what}: gradhub gave {ours.dtype} {tuple(ours.shape)}, the peer {peer.dtype} {tuple(peer.shape)}"
                f" (both should be {dtype} {(BATCH, CHANNELS, SIZE, SIZE)})"
            )
        if not (torch.isfinite(ours).all() and torch.isfinite(peer).all()):
            raise AssertionError(f"{what}: a sample is not finite")
        difference = ((ours - peer).abs().max() / peer.abs().max()).item()
        if not difference <= tolerance:
            raise AssertionError(
                f"{what}: the samples differ by {difference:.3g} of the largest |sample| (allowed {tolerance:g})"
            )

    return check


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def k_diffusion_rows(device: torch.device) -> list[Comparison]:
    """heun_edm / euler_ode / dpmpp_2m against k-diffusion on one EDM denoiser and ``edm_sigmas(18)``."""
    from gradhub_diffusion.samplers import dpmpp_2m, edm_sigmas, euler_ode, heun_edm

    sampling = k_diffusion_sampling()
    sigmas = edm_sigmas(STEPS, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO)
    theirs = sampling.get_sigmas_karras(STEPS, SIGMA_MIN, SIGMA_MAX, rho=RHO).double()
    if not torch.allclose(sigmas, theirs, rtol=1e-6, atol=0):
        raise AssertionError(f"edm_sigmas({STEPS}) and k-diffusion's get_sigmas_karras differ: {sigmas} {theirs}")
    with _seeded(0):
        denoiser = EDMDenoiser(ConvNet())
    noise = torch.randn(BATCH, CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    version = importlib.metadata.version("k-diffusion")
    pairs = (
        ("heun_edm", heun_edm, "sample_heun", sampling.sample_heun),
        ("euler_ode", euler_ode, "sample_euler", sampling.sample_euler),
        ("dpmpp_2m", dpmpp_2m, "sample_dpmpp_2m", sampling.sample_dpmpp_2m),
    )
    rows = []
    for dtype in (torch.float32, torch.float64):
        model = _in(denoiser, device, dtype)
        x_T = (noise * sigmas[0]).to(device=device, dtype=dtype)
        # k-diffusion takes the grid in x's dtype and on x's device (get_sigmas_karras makes it in the default dtype):
        # a float64 grid would promote a float32 state to float64 (to_d divides by append_dims(sigma), not a 0-d)
        peer_sigmas = sigmas.to(device=device, dtype=dtype)
        for ours_name, ours, peer_name, peer in pairs:
            name = f"{ours_name} vs {peer_name}, conv denoiser {BATCH}x{CHANNELS}x{SIZE}x{SIZE}, {STEPS} steps, {dtype}"
            rows.append(
                Comparison(
                    group="samplers",
                    name=name,
                    ours=functools.partial(ours, model, x_T, sigmas),
                    peer=functools.partial(peer, model, x_T, peer_sigmas, disable=True),
                    check=agree(name, dtype),
                    peer_name=f"{K_DIFFUSION} {version}",
                    sync=_sync(device),
                )
            )
    return rows


def diffusers_ddim(network: nn.Module, scheduler: Any, x: Tensor, steps: int) -> Tensor:
    """DDIM, eta = 0, as ``diffusers.DDIMPipeline.__call__`` runs it (under no_grad, timesteps on the host)."""
    with torch.no_grad():
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            x = scheduler.step(network(x, t), t, x, eta=0.0).prev_sample
    return x


def diffusers_rows(device: torch.device) -> list[Comparison]:
    """ddim (eta 0) through ``DiffusersDenoiser`` against a diffusers DDIMScheduler loop, one eps network."""
    import diffusers
    from gradhub_diffusion.adapters import DiffusersDenoiser
    from gradhub_diffusion.paths import GaussianPath
    from gradhub_diffusion.samplers import ddim

    with _seeded(0):
        eps_network = EpsNetwork(ConvNet())
        pointwise_network = EpsNetwork(PointwiseNet())
    noise = torch.randn(BATCH, CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rows = []
    cases = [("eps conv network", eps_network, dtype) for dtype in (torch.float32, torch.float64)]
    cases.append(("1x1-conv eps network (per-step overhead)", pointwise_network, torch.float32))
    for label, eps_network, dtype in cases:
        scheduler = diffusers.DDIMScheduler(clip_sample=False)  # DDPM's linear betas, 1000 steps, eps, "leading"
        if dtype == torch.float64:  # diffusers keeps the table in float32 whatever the sample's dtype
            scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()  # same values, square roots in float64
        network = _in(eps_network, device, dtype)
        denoiser = DiffusersDenoiser(network, scheduler)
        scheduler.set_timesteps(STEPS)
        alphas_cumprod = scheduler.alphas_cumprod.double()[scheduler.timesteps]
        grid = torch.cat([((1 - alphas_cumprod) / alphas_cumprod).sqrt(), alphas_cumprod.new_zeros(1)])
        path = GaussianPath(kind="edm", sigma_max=denoiser.sigma_max)
        x_vp = noise.to(device=device, dtype=dtype)  # diffusers' init_noise_sigma is 1
        x_edm = x_vp * math.sqrt(1 + grid[0].item() ** 2)
        name = (
            f"ddim (DiffusersDenoiser, edm path) vs DDIMScheduler loop, eta 0, {label} "
            f"{BATCH}x{CHANNELS}x{SIZE}x{SIZE}, {STEPS} steps, {dtype}"
        )
        rows.append(
            Comparison(
                group="samplers",
                name=name,
                ours=functools.partial(ddim, denoiser, x_edm, grid, path=path),
                peer=functools.partial(diffusers_ddim, network, scheduler, x_vp, STEPS),
                check=agree(name, dtype),
                peer_name=f"diffusers {diffusers.__version__}",
                sync=_sync(device),
            )
        )
    return rows


def comparisons(args: Any) -> list[Comparison]:
    device = torch.device(getattr(args, "device", "cpu"))
    return [*k_diffusion_rows(device), *diffusers_rows(device)]
