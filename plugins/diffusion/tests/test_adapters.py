"""DiffusersDenoiser: a diffusers model on a discrete VP schedule as gradhub's EDM-form denoiser D(x; sigma).

(a) The convention mapping, exactly: for data x0 ~ N(0, s^2 I) the best eps / v / x0 predictors in VP
coordinates are known in closed form at every (fractional) timestep; wrapped, each must give the exact EDM
denoiser ``s^2 / (s^2 + sigma^2) x`` at any sigma of the schedule's range, between its levels too.
(b) A real, randomly initialised ``diffusers.UNet2DModel`` wraps, samples with the plugin's samplers and
behaves as a module (dtype moves, parameters, state_dict). (c) Clear errors.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
import pytest
import torch
from gradhub_diffusion import adapters
from gradhub_diffusion.adapters import DiffusersDenoiser
from gradhub_diffusion.paths import GaussianPath
from gradhub_diffusion.samplers import ddim, dpmpp_2m, edm_sigmas, euler_ode, heun_edm
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kernels import accelerator_formulation
from gradhub.testing import counting_read_backs

DATA_STD = 0.7


@pytest.fixture(scope="module")
def diffusers() -> Any:
    import diffusers

    return diffusers


def _schedules(diffusers: Any) -> dict[str, torch.Tensor]:
    """DDPM's linear schedule (1000 steps) and a 20-step cosine one, whose levels are far apart."""
    return {
        "linear-1000": diffusers.DDPMScheduler().alphas_cumprod,
        "cosine-20": diffusers.DDPMScheduler(num_train_timesteps=20, beta_schedule="squaredcos_cap_v2").alphas_cumprod,
    }


class Output:
    """What a diffusers model returns with ``return_dict=True``: the prediction as ``.sample``."""

    def __init__(self, sample: torch.Tensor) -> None:
        self.sample = sample


class ExactGaussianModel(nn.Module):
    """The exact VP-coordinates predictor for x0 ~ N(0, s^2 I), called like a diffusers UNet ``(sample, timestep)``.

    The timestep may be fractional: its noise level is the schedule's log-sigma interpolated linearly
    (``np.interp``), the reading the adapter inverts. With ``x_vp = a x0 + b eps`` (``a = sqrt(abar)``,
    ``b = sqrt(1 - abar)``): ``E[eps | x_vp] = b x_vp / (a^2 s^2 + b^2)``, ``E[x0 | x_vp] = a s^2 x_vp / (...)``,
    ``E[v | x_vp] = a E[eps] - b E[x0]``.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, prediction_type: str, std: float = DATA_STD) -> None:
        super().__init__()
        abar = alphas_cumprod.double().numpy()
        self.log_sigmas = np.log(np.sqrt((1 - abar) / abar))
        self.prediction_type, self.std = prediction_type, std
        self.seen: list[torch.Tensor] = []

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, return_dict: bool = True) -> Any:
        self.seen.append(timestep)
        steps = np.arange(len(self.log_sigmas), dtype=np.float64)
        sigma = torch.from_numpy(np.exp(np.interp(timestep.double().numpy(), steps, self.log_sigmas)))
        a = (1 + sigma**2).rsqrt()[:, None, None, None]
        b = sigma[:, None, None, None] * a
        x = sample.double()
        denominator = a**2 * self.std**2 + b**2
        eps, x0 = b * x / denominator, a * self.std**2 * x / denominator
        prediction = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - b * x0}[self.prediction_type]
        prediction = prediction.to(sample.dtype)
        return Output(prediction) if return_dict else (prediction,)


def _test_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The range's ends, two discrete levels, the geometric midpoints between levels and round numbers inside."""
    levels = ((1 - alphas_cumprod.double()) / alphas_cumprod.double()).sqrt()
    k = len(levels)
    middles = [(levels[i] * levels[i + 1]).sqrt() for i in (0, k // 3, k - 2)]
    inside = [s for s in (0.05, 0.3, 1.0, 2.5, 9.0) if levels[0] < s < levels[-1]]
    return torch.tensor([levels[0], levels[-1], levels[1], levels[k // 2], *middles, *inside], dtype=torch.float64)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("schedule", ["linear-1000", "cosine-20"])
def test_exact_gaussian_denoiser(diffusers: Any, schedule: str, prediction_type: str) -> None:
    """D(x; sigma) = s^2 / (s^2 + sigma^2) x for every prediction type, per-sample and scalar sigma."""
    alphas_cumprod = _schedules(diffusers)[schedule]
    denoiser = DiffusersDenoiser(ExactGaussianModel(alphas_cumprod, prediction_type), alphas_cumprod)
    assert denoiser.prediction_type == "epsilon"  # a bare alphas_cumprod names no type: diffusers' default
    denoiser = DiffusersDenoiser(
        ExactGaussianModel(alphas_cumprod, prediction_type), alphas_cumprod, prediction_type=prediction_type
    )
    sigmas = _test_sigmas(alphas_cumprod)
    x = torch.randn(len(sigmas), 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5
    exact = DATA_STD**2 / (DATA_STD**2 + sigmas[:, None, None, None] ** 2) * x
    torch.testing.assert_close(denoiser(x, sigmas), exact, rtol=1e-10, atol=1e-12)
    for i in (0, 4, len(sigmas) - 1):  # a scalar sigma (a number, a 0-d tensor) for the whole batch
        torch.testing.assert_close(denoiser(x, sigmas[i].item()), DATA_STD**2 / (DATA_STD**2 + sigmas[i] ** 2) * x)
        torch.testing.assert_close(denoiser(x, sigmas[i]), DATA_STD**2 / (DATA_STD**2 + sigmas[i] ** 2) * x)


def test_timestep_interpolates_log_sigma(diffusers: Any) -> None:
    """A discrete level is its own step; the geometric mean of two levels is the step half-way; quantize rounds."""
    alphas_cumprod = _schedules(diffusers)["cosine-20"]
    levels = ((1 - alphas_cumprod.double()) / alphas_cumprod.double()).sqrt()
    denoiser = DiffusersDenoiser(ExactGaussianModel(alphas_cumprod, "epsilon"), alphas_cumprod)
    steps = torch.arange(20, dtype=torch.float64)
    torch.testing.assert_close(denoiser.timestep(levels), steps, rtol=0, atol=1e-12)
    middles = (levels[:-1] * levels[1:]).sqrt()
    torch.testing.assert_close(denoiser.timestep(middles), steps[:-1] + 0.5, rtol=0, atol=1e-12)
    quarter = (levels[3].log() * 0.75 + levels[4].log() * 0.25).exp()
    assert denoiser.timestep(quarter).item() == pytest.approx(3.25, abs=1e-12)
    quantized = DiffusersDenoiser(ExactGaussianModel(alphas_cumprod, "epsilon"), alphas_cumprod, quantize=True)
    assert quantized.timestep(quarter).item() == 3.0
    # the network of the wrong reading: quantized steps, so between levels D is no longer the exact denoiser
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    exact = DATA_STD**2 / (DATA_STD**2 + quarter**2)
    assert abs(quantized(x, quarter).item() - exact) > 1e-3
    assert abs(denoiser(x, quarter).item() - exact) < 1e-12


def test_scheduler_object_config_and_learned_variance(diffusers: Any) -> None:
    """A scheduler (its prediction_type read from the config), its config dict, and a 2C-channel output agree."""
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=20, prediction_type="v_prediction")
    model = ExactGaussianModel(scheduler.alphas_cumprod, "v_prediction")
    from_scheduler = DiffusersDenoiser(model, scheduler)
    from_config = DiffusersDenoiser(model, dict(scheduler.config))
    assert from_scheduler.prediction_type == from_config.prediction_type == "v_prediction"
    assert (from_scheduler.sigma_min, from_scheduler.sigma_max) == (from_config.sigma_min, from_config.sigma_max)

    def learned_variance(sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        prediction = model(sample, timestep, return_dict=False)[0]
        return torch.cat([prediction, torch.full_like(prediction, 1e6)], dim=1)  # (prediction, variance)

    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma = torch.tensor([0.02, 0.2, 0.45], dtype=torch.float64)  # 20 linear steps reach sigma = 0.474
    torch.testing.assert_close(DiffusersDenoiser(learned_variance, scheduler)(x, sigma), from_scheduler(x, sigma))


# --- (b) a real UNet2DModel ----------------------------------------------------------------------


def _unet(diffusers: Any, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return diffusers.UNet2DModel(
            sample_size=8,
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16),
            layers_per_block=1,
            norm_num_groups=4,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
        )


def test_unet_in_the_samplers(diffusers: Any) -> None:
    """Heun, DPM++(2M), Euler and DDIM (on the EDM path) run a random UNet end to end: finite, right shape."""
    denoiser = DiffusersDenoiser(_unet(diffusers), diffusers.DDPMScheduler())
    assert isinstance(denoiser, nn.Module)
    assert denoiser.sigma_min == pytest.approx(0.0100005, rel=1e-4) and denoiser.sigma_max == pytest.approx(
        157.4, rel=1e-3
    )
    sigmas = denoiser.sigmas(3)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * sigmas[0].item()
    path = GaussianPath(kind="edm", sigma_max=denoiser.sigma_max)
    for sampler, extra, calls in ((heun_edm, {}, 5), (dpmpp_2m, {}, 3), (euler_ode, {}, 3), (ddim, {"path": path}, 3)):
        result = sampler(denoiser, x_T, sigmas, **extra)
        assert result.samples.shape == x_T.shape and result.samples.dtype == torch.float32, sampler.__name__
        assert torch.isfinite(result.samples).all() and result.evaluations == calls, sampler.__name__


def test_unet_wiring_by_hand(diffusers: Any) -> None:
    """At a discrete level i: D = x - sigma_i UNet(x / sqrt(1 + sigma_i^2), i), the UNet called directly."""
    unet, scheduler = _unet(diffusers), diffusers.DDPMScheduler()
    denoiser = DiffusersDenoiser(unet, scheduler)
    abar = scheduler.alphas_cumprod.double()[[10, 600]]
    sigma = ((1 - abar) / abar).sqrt()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        eps = unet(x * abar.sqrt().float()[:, None, None, None], torch.tensor([10.0, 600.0])).sample
        torch.testing.assert_close(denoiser(x, sigma), x - sigma.float()[:, None, None, None] * eps)


def test_unet_as_a_module(diffusers: Any) -> None:
    """parameters() are the UNet's; state_dict round-trips; .to(float64) moves the UNet, keeps the schedule float64."""
    unet = _unet(diffusers)
    denoiser = DiffusersDenoiser(unet, diffusers.DDPMScheduler())
    assert [id(p) for p in denoiser.parameters()] == [id(p) for p in unet.parameters()]
    state = denoiser.state_dict()
    assert set(state) == {f"model.{key}" for key in unet.state_dict()}  # the schedule is not state
    other = DiffusersDenoiser(_unet(diffusers, seed=1), diffusers.DDPMScheduler())
    x, sigma = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)), torch.tensor([0.1, 20.0])
    with torch.no_grad():
        assert not torch.allclose(other(x, sigma), denoiser(x, sigma))
        other.load_state_dict(state)
        torch.testing.assert_close(other(x, sigma), denoiser(x, sigma), rtol=0, atol=0)
        schedule = denoiser.log_sigmas.clone()
        assert denoiser.to(torch.float64) is denoiser
        assert all(p.dtype == torch.float64 for p in unet.parameters())
        assert denoiser.log_sigmas.dtype == torch.float64 and torch.equal(denoiser.log_sigmas, schedule)
        denoiser.half()  # a float16 copy of the schedule would move the timesteps
        assert denoiser.log_sigmas.dtype == torch.float64 and torch.equal(denoiser.log_sigmas, schedule)
        denoiser.double()
        result = heun_edm(denoiser, x.double() * 80, edm_sigmas(3, sigma_min=0.01001, sigma_max=80.0))
    assert result.samples.dtype == torch.float64 and torch.isfinite(result.samples).all()


# --- no read-back per call --------------------------------------------------------------------------


class MetaNetwork(nn.Module):
    """A network that runs on the meta device (a stand-in for an accelerator: nothing there can be read)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return sample * self.scale + timestep[:, None, None, None]


def test_no_read_back_on_an_accelerator(diffusers: Any) -> None:
    """On the meta device a call reads nothing back: 10 Euler steps with check_finite=False make no host read."""
    denoiser = DiffusersDenoiser(MetaNetwork(), diffusers.DDPMScheduler()).to("meta")
    x_T = torch.empty(4, 3, 8, 8, device="meta")
    grid = denoiser.sigmas(10).tolist()  # a list: the frame's one read of a grid tensor is not the adapter's
    with counting_read_backs() as counts:
        result = euler_ode(denoiser, x_T, grid, check_finite=False)
    assert result.evaluations == 10 and result.samples.device.type == "meta"
    assert not counts, f"host read-backs in 10 steps: {counts}"


def test_out_of_range_on_an_accelerator_is_nan(diffusers: Any) -> None:
    """Where sigma is not checked on the host, a sigma outside the range makes its samples NaN (the others
    are untouched), and a sampler's finiteness check reports it."""
    model = ExactGaussianModel(diffusers.DDPMScheduler().alphas_cumprod, "epsilon")
    denoiser = DiffusersDenoiser(model, diffusers.DDPMScheduler())
    x = torch.ones(3, 1, 2, 2, dtype=torch.float64)
    sigma = torch.tensor([0.5, 0.001, 500.0], dtype=torch.float64)
    with accelerator_formulation():
        out = denoiser(x, sigma)
        assert torch.isfinite(out[0]).all() and torch.isnan(out[1:]).all()
        edge = torch.tensor([denoiser.sigma_min, denoiser.sigma_max], dtype=torch.float32)  # rounded ends pass
        assert torch.isfinite(denoiser(x[:2].float(), edge)).all()
        with pytest.raises(UnsupportedInputError, match="non-finite"):
            euler_ode(denoiser, x * 80, edm_sigmas(4))  # edm_sigmas' default sigma_min 0.002 < 0.0100


# --- (c) errors -------------------------------------------------------------------------------------


def test_errors(diffusers: Any) -> None:
    scheduler = diffusers.DDPMScheduler()
    model = ExactGaussianModel(scheduler.alphas_cumprod, "epsilon")
    with pytest.raises(HyperparameterError, match=r"DiffusersDenoiser.*prediction_type='eps'.*'epsilon', 'v_pre"):
        DiffusersDenoiser(model, scheduler, prediction_type="eps")
    denoiser = DiffusersDenoiser(model, scheduler)
    x = torch.ones(2, 1, 2, 2)
    allowed = r"\[sigma_min, sigma_max\] = \[0\.0100013, 157\.407\]"
    for sigma in (0.002, 200.0, torch.tensor([1.0, 0.002]), torch.tensor(float("nan"))):
        with pytest.raises(UnsupportedInputError, match=rf"DiffusersDenoiser: unsupported sigma: .*{allowed}"):
            denoiser(x, sigma)
    with pytest.raises(UnsupportedInputError, match=r"unsupported sigma: 0\.002.*must lie in"):
        heun_edm(denoiser, x * 80, edm_sigmas(4, sigma_max=80.0))  # the grid's last level 0.002 is below
    with pytest.raises(UnsupportedInputError, match=r"sigma: a tensor of shape \(3,\); shape \(\), \(1,\) or \(2,\)"):
        denoiser(x, torch.ones(3))
    with pytest.raises(UnsupportedInputError, match=r"alphas_cumprod.*must lie in \(0, 1\)"):
        DiffusersDenoiser(model, torch.tensor([0.9, 0.5, 0.0]))
    with pytest.raises(UnsupportedInputError, match="alpha_bar must decrease"):
        DiffusersDenoiser(model, torch.tensor([0.9, 0.95, 0.5]))
    with pytest.raises(UnsupportedInputError, match="scheduler: str; pass a diffusers scheduler"):
        DiffusersDenoiser(model, "ddpm")
    with pytest.raises(UnsupportedInputError, match=r"model output: shape \(2, 3, 2, 2\); the model must return"):
        DiffusersDenoiser(lambda sample, t: torch.ones(2, 3, 2, 2), scheduler)(x, 1.0)


def test_missing_diffusers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without diffusers the module imports and a tensor schedule works; building a scheduler from a config says
    what to install."""
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    spec = importlib.util.spec_from_file_location("gradhub_diffusion_adapters_copy", adapters.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)  # a fresh import of the module, without diffusers
    alphas_cumprod = torch.linspace(0.999, 0.01, 10, dtype=torch.float64)
    denoiser = fresh.DiffusersDenoiser(lambda sample, t: torch.zeros_like(sample), alphas_cumprod)
    assert denoiser(torch.ones(1, 1, 2, 2), 1.0).eq(1).all()
    with pytest.raises(
        ImportError,
        match=r"DiffusersDenoiser: building a scheduler from its config needs diffusers.*pip install diffusers",
    ):
        fresh.DiffusersDenoiser(lambda sample, t: sample, {"num_train_timesteps": 10})


class PerSampleNetwork(nn.Module):
    """A network whose output for each sample depends on that sample and its own timestep only."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * (1 + t.reshape(-1, *([1] * (x.dim() - 1))) / 1000) - 0.1 * x


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_sigma_on_the_host_equals_the_per_sample_path(
    diffusers: Any, prediction_type: str, quantize: bool, dtype: torch.dtype
) -> None:
    """A sampler's call (one sigma: a number, or a CPU tensor of equal entries) takes the host path, with its
    coefficients and timestep in Python floats; per-sample sigmas take the tensor path. Both are the same
    formulas in float64, so each sample agrees to its dtype's rounding."""
    denoiser = DiffusersDenoiser(PerSampleNetwork(), diffusers.DDPMScheduler(), prediction_type=prediction_type)
    denoiser.quantize = quantize
    sigmas = torch.tensor([denoiser.sigma_min * 1.5, 0.37, 2.9, denoiser.sigma_max * 0.99], dtype=torch.float64)
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    per_sample = denoiser(x, sigmas)  # different sigmas: the tensor path
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12  # rounding (tanh vectorised or not, log, pow); a wrong
    # coefficient or timestep differs by far more
    for index, sigma in enumerate(sigmas.tolist()):
        for given in (sigma, torch.tensor(sigma, dtype=torch.float64), torch.full((1,), sigma, dtype=dtype)):
            alone = denoiser(x[index : index + 1], given)
            assert alone.dtype == dtype
            torch.testing.assert_close(alone[0], per_sample[index], rtol=tolerance, atol=tolerance)
        timestep = denoiser.timestep(torch.tensor([sigma], dtype=torch.float64)).item()
        assert denoiser._host_timestep(sigma) == pytest.approx(timestep, rel=1e-12, abs=1e-9)
    with pytest.raises(UnsupportedInputError, match=r"sigma must lie in the scheduler's range"):
        denoiser(x, torch.full((4,), denoiser.sigma_max * 2))
