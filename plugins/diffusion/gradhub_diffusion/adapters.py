"""Adapters: a diffusers model, trained on a discrete DDPM-style VP schedule, as a gradhub (EDM-form) denoiser.

gradhub's sigma-grid samplers call ``D(x; sigma)``, the x0 prediction for ``x = x0 + sigma eps`` (Karras et
al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", §2 and Table 1: alpha = 1,
sigma(t) = t). A diffusers model (``UNet2DModel``, ``UNet2DConditionModel``, ...) was trained on the
discrete variance-preserving schedule of DDPM (Ho et al. 2020): at step ``t`` of ``T``,
``x_vp = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` with ``abar_t = alphas_cumprod[t]``, and it predicts
eps, v (Salimans & Ho 2022, "Progressive Distillation", §4: ``v = sqrt(abar) eps - sqrt(1 - abar) x0``) or
x0 itself (diffusers' ``prediction_type`` "epsilon", "v_prediction", "sample").

The two forms are one process up to a scale (Karras et al. 2022, Eq. 4 with s(t) = sqrt(abar)):
``sigma = sqrt((1 - abar) / abar)`` and ``x_edm = x_vp / sqrt(abar) = x_vp sqrt(1 + sigma^2)``. So

    D(x; sigma) = c_skip x + c_out F(c_in x, t(sigma)),   c_in = 1 / sqrt(1 + sigma^2),

with ``(c_skip, c_out)`` = ``(1, -sigma)`` for eps (x0 = x_edm - sigma eps), ``(1/(1 + sigma^2),
-sigma/sqrt(1 + sigma^2))`` for v (x0 = sqrt(abar) x_vp - sqrt(1 - abar) v), ``(0, 1)`` for x0; the scalings
use the requested sigma itself, only the network's timestep is looked up. That timestep is the
fractional ``t`` whose log-sigma interpolates the schedule's linearly: ``t = i + w`` between the discrete
levels ``i`` and ``i + 1`` with ``log sigma = (1 - w) log sigma_i + w log sigma_{i+1}`` (the reading of
k-diffusion's ``DiscreteSchedule.sigma_to_t``, crowsonkb/k-diffusion ``k_diffusion/external.py``; as there,
``quantize=True`` rounds it to the nearest level instead).

The adapter is an ``nn.Module`` with the network as its submodule ``model``: ``.to()``, ``.parameters()`` and
``state_dict`` (the network's, under ``model.``) behave as usual. The schedule is a non-persistent buffer kept
in float64 whatever dtype the module is moved to. A call is vectorised over the batch and reads nothing back
from an accelerator: see :class:`DiffusersDenoiser` for how a sigma outside the schedule is reported.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kernels import host_formulation

__all__ = ["PREDICTION_TYPES", "DiffusersDenoiser"]

ADAPTER = "DiffusersDenoiser"
"""The adapter's name in its error messages."""

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
"""diffusers' names of what a model predicts: eps, v (Salimans & Ho 2022), x0."""


def _import_diffusers(why: str) -> Any:
    """diffusers, imported on first need (the plugin itself never needs it)."""
    try:
        import diffusers
    except ImportError as error:
        raise ImportError(
            f"{ADAPTER}: {why} needs diffusers, which is not installed: pip install diffusers "
            "(or pass the scheduler's alphas_cumprod as a 1-D tensor)"
        ) from error
    return diffusers


def _alphas_cumprod(scheduler: Any) -> tuple[Tensor, str | None]:
    """The schedule's ``alphas_cumprod`` (float64, on the host) and the prediction type its config names, if any."""
    if isinstance(scheduler, dict):  # a scheduler config (a dict, or diffusers' FrozenDict)
        diffusers = _import_diffusers("building a scheduler from its config")
        name = scheduler.get("_class_name", "DDPMScheduler")
        scheduler_class = getattr(diffusers, name, None)
        if scheduler_class is None:
            raise UnsupportedInputError(
                ADAPTER, "scheduler config", f"_class_name={name!r}", "name a scheduler class of diffusers"
            )
        scheduler = scheduler_class.from_config(scheduler)
    config = getattr(scheduler, "config", None)
    predicted = getattr(config, "prediction_type", None) if config is not None else None
    values = getattr(scheduler, "alphas_cumprod", scheduler)
    if isinstance(values, (list, tuple)):
        values = torch.tensor(values, dtype=torch.float64, device="cpu")
    if not isinstance(values, Tensor):
        raise UnsupportedInputError(
            ADAPTER,
            "scheduler",
            type(scheduler).__name__,
            "pass a diffusers scheduler with alphas_cumprod (DDPMScheduler, DDIMScheduler, ...), its config, "
            "or alphas_cumprod itself as a 1-D tensor",
        )
    values = values.detach().to("cpu", torch.float64)
    if values.dim() != 1 or values.numel() < 2:
        raise UnsupportedInputError(
            ADAPTER, "alphas_cumprod", f"a tensor of shape {tuple(values.shape)}", "a 1-D tensor of at least 2 steps"
        )
    if not bool(((values > 0) & (values < 1)).all()):
        raise UnsupportedInputError(
            ADAPTER,
            "alphas_cumprod",
            f"values from {values.min().item():.6g} to {values.max().item():.6g}",
            "every alpha_bar must lie in (0, 1): sigma = sqrt((1 - alpha_bar)/alpha_bar) must be finite and "
            "positive (a zero-terminal-SNR schedule has sigma = inf at its last step)",
        )
    if not bool((values[1:] < values[:-1]).all()):
        raise UnsupportedInputError(
            ADAPTER, "alphas_cumprod", "a schedule that does not strictly decrease", "alpha_bar must decrease with t"
        )
    return values, predicted


class DiffusersDenoiser(nn.Module):
    """A diffusers model on a discrete VP schedule as the EDM-form denoiser ``D(x; sigma)`` of every gradhub sampler.

    ``DiffusersDenoiser(model, scheduler, *, prediction_type=None, quantize=False)``:

    * ``model(x_vp, t, **model_kwargs)``: a diffusers model (``UNet2DModel``, ``UNet2DConditionModel``) or any
      callable with its signature, returning a tensor, a ``(tensor, ...)`` tuple or an output with ``.sample``.
      An output with twice the input's channels (diffusers' learned variance, ``variance_type="learned_range"``)
      is split as diffusers' pipelines do: the first half is the prediction.
    * ``scheduler``: the schedule the model was trained on: a diffusers scheduler with ``alphas_cumprod``
      (``DDPMScheduler``, ``DDIMScheduler``, ...), its config as a dict (built with diffusers), or the
      ``alphas_cumprod`` tensor itself (decreasing, in (0, 1)).
    * ``prediction_type``: "epsilon", "v_prediction" or "sample"; None takes the scheduler config's, else "epsilon".
    * ``quantize``: round the network's timestep to the nearest discrete level (k-diffusion's option), for
      networks that were only ever shown integer steps.

    ``denoiser(x, sigma, **model_kwargs)``: ``x`` is the EDM-form state (batch first), ``sigma`` a number or a
    tensor of shape (), (1,) or (batch,); the keyword arguments go to the model (``class_labels=``,
    ``encoder_hidden_states=``). The result is in ``x``'s dtype; the network runs in its parameters' dtype.

    ``sigma`` must lie in the schedule's ``[sigma_min, sigma_max]`` (attributes, floats; up to the rounding of
    ``sigma``'s dtype): a sigma on the host (a number, a CPU tensor) outside it raises, naming the range. On an
    accelerator the check would read sigma back (a sync per call), so it is not made there: the outputs of
    those samples are NaN instead, which the samplers' finiteness check reports (and which never passes as a
    sample). Build grids inside the range: ``denoiser.sigmas(n)`` is ``edm_sigmas(n)`` over it.
    """

    def __init__(
        self, model: Callable[..., Any], scheduler: Any, *, prediction_type: str | None = None, quantize: bool = False
    ) -> None:
        super().__init__()
        if not callable(model):
            raise UnsupportedInputError(ADAPTER, "model", type(model).__name__, "pass a diffusers model (a callable)")
        alphas_cumprod, configured = _alphas_cumprod(scheduler)
        if prediction_type is None:
            prediction_type = configured or "epsilon"
        if prediction_type not in PREDICTION_TYPES:
            raise HyperparameterError(ADAPTER, "prediction_type", prediction_type, f"one of {PREDICTION_TYPES}")
        if not isinstance(quantize, bool):
            raise HyperparameterError(ADAPTER, "quantize", quantize, "True or False")
        self.model = model
        self.prediction_type = prediction_type
        self.quantize = quantize
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
        self.sigma_min, self.sigma_max = sigmas[0].item(), sigmas[-1].item()
        self.register_buffer("log_sigmas", sigmas.log(), persistent=False)
        self._log_sigma_list: list[float] = self.log_sigmas.tolist()  # the same table, for one sigma on the host

    def extra_repr(self) -> str:
        return (
            f"prediction_type={self.prediction_type!r}, steps={self.log_sigmas.numel()}, "
            f"sigma_min={self.sigma_min:.6g}, sigma_max={self.sigma_max:.6g}, quantize={self.quantize}"
        )

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> DiffusersDenoiser:
        """``.to()``/``.half()``/``.cuda()`` move the schedule but keep it float64 (float32 on MPS, which has
        no float64): a float16 log-sigma table moves the timesteps (by up to 0.17 of a step on DDPM's linear one)."""
        schedule = self.log_sigmas
        super()._apply(fn, recurse)
        device = self.log_sigmas.device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.log_sigmas = schedule.to(device=device, dtype=dtype)
        return self

    def sigmas(self, n: int, rho: float = 7.0) -> Tensor:
        """``edm_sigmas(n, sigma_min, sigma_max, rho)`` over this schedule's range (float64, last entry 0)."""
        from gradhub_diffusion.samplers import edm_sigmas

        return edm_sigmas(n, sigma_min=self.sigma_min, sigma_max=self.sigma_max, rho=rho)

    def _host_timestep(self, sigma: float) -> float:
        """:meth:`timestep` of one sigma, in Python floats (float64, the table's dtype): the same interpolation."""
        table = self._log_sigma_list
        log_sigma = min(max(math.log(sigma), table[0]), table[-1])
        low = min(max(bisect.bisect_left(table, log_sigma) - 1, 0), len(table) - 2)
        below, above = table[low], table[low + 1]
        t = low + min(max((log_sigma - below) / (above - below), 0.0), 1.0)
        return float(round(t)) if self.quantize else t

    def _one_host_sigma(self, sigma: Any, x: Tensor) -> float | None:
        """The one noise level of a call whose sigma is on the host (a number, or a tensor of shape (), (1,) or
        (batch,) holding one value, what every sampler passes, where :func:`host_formulation` says sigma may be
        read: the CPU), checked against the range; None otherwise."""
        if isinstance(sigma, Tensor):
            if not host_formulation(sigma.device) or sigma.dim() > 1 or not sigma.is_floating_point():
                return None
            if sigma.dim() == 1 and sigma.numel() not in (1, x.shape[0]):
                return None  # the tensor path names the shapes
            values = sigma.detach().reshape(-1).tolist()
            if not values or any(value != values[0] for value in values):
                return None
            value, slack = values[0], _slack(sigma.dtype)
        elif isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
            value, slack = float(sigma), _slack(torch.float64)
        else:
            return None
        if not self._inside(value, value, slack):
            self._check_range(torch.tensor([value], dtype=torch.float64, device="cpu"), slack)
        return value

    def timestep(self, sigma: Tensor) -> Tensor:
        """The network's (fractional) timestep for each sigma: log-sigma interpolated between the discrete levels."""
        log_sigmas = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.to(log_sigmas.dtype).log().clamp(log_sigmas[0], log_sigmas[-1])
        low = (torch.searchsorted(log_sigmas, log_sigma) - 1).clamp(0, log_sigmas.numel() - 2)
        below, above = log_sigmas[low], log_sigmas[low + 1]
        t = low + ((log_sigma - below) / (above - below)).clamp(0, 1)
        return t.round() if self.quantize else t

    def _sigma(self, sigma: Any, x: Tensor) -> tuple[Tensor, float | None]:
        """``sigma`` as a tensor of shape () or (batch,) on x's device in the schedule's dtype (float64), and the
        relative slack of its range check: None where it was checked here, on the host (a number, a CPU tensor)."""
        if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
            if not self._inside(float(sigma), float(sigma), _slack(torch.float64)):
                self._check_range(
                    torch.tensor([float(sigma)], dtype=torch.float64, device="cpu"), _slack(torch.float64)
                )
            return torch.full((), float(sigma), dtype=self.log_sigmas.dtype, device=x.device), None
        if not isinstance(sigma, Tensor) or sigma.is_complex() or sigma.dtype == torch.bool:
            shown = f"{sigma.dtype} tensor" if isinstance(sigma, Tensor) else type(sigma).__name__
            raise UnsupportedInputError(ADAPTER, "sigma", shown, "sigma must be a real number or tensor")
        if sigma.dim() > 1 or (sigma.dim() == 1 and sigma.numel() not in (1, x.shape[0])):
            raise UnsupportedInputError(
                ADAPTER, "sigma", f"a tensor of shape {tuple(sigma.shape)}", f"shape (), (1,) or ({x.shape[0]},)"
            )
        slack: float | None = _slack(sigma.dtype if sigma.is_floating_point() else torch.float64)
        if host_formulation(sigma.device):
            self._check_range(sigma, slack)
            slack = None
        sigma = sigma.reshape(()) if sigma.numel() == 1 else sigma
        return sigma.to(device=x.device, dtype=self.log_sigmas.dtype), slack

    def _inside(self, low: float, high: float, slack: float) -> bool:
        """``[low, high]`` within the schedule's range (False for NaN)."""
        return low >= self.sigma_min * (1 - slack) and high <= self.sigma_max * (1 + slack)

    def _check_range(self, sigma: Tensor, slack: float) -> None:
        """Raise, naming the schedule's range, if a (host) sigma lies outside it or is NaN."""
        flat = sigma.detach().reshape(-1)
        low, high = flat.aminmax() if flat.numel() > 1 else (flat[0], flat[0])
        if self._inside(float(low), float(high), slack):  # two reads on the host, no copies
            return
        values = flat.to("cpu", torch.float64)
        outside = ~((values >= self.sigma_min * (1 - slack)) & (values <= self.sigma_max * (1 + slack)))
        if bool(outside.any()):
            shown = ", ".join(f"{value:.6g}" for value in values[outside][:4].tolist())
            raise UnsupportedInputError(
                ADAPTER,
                "sigma",
                shown,
                f"sigma must lie in the scheduler's range [sigma_min, sigma_max] = [{self.sigma_min:.6g}, "
                f"{self.sigma_max:.6g}] (sqrt((1 - alpha_bar)/alpha_bar) at its first and last step); "
                "build the grid with denoiser.sigmas(n) or edm_sigmas(n, sigma_min=..., sigma_max=...)",
            )

    def _coefficients(self, sigma: Any) -> tuple[Any, Any, Any]:
        """``(c_skip, c_out, c_in)`` (Karras et al. 2022, Table 1, with sigma_data = 1 for the VP scale), for sigma
        a float64 tensor (the per-sample path) or a Python float (one sigma on the host); c_skip and, for "sample",
        c_out are plain numbers."""
        c_in = (1 + sigma * sigma) ** -0.5
        if self.prediction_type == "epsilon":  # x0 = x - sigma eps
            return 1.0, -sigma, c_in
        if self.prediction_type == "v_prediction":  # x0 = sqrt(abar) x_vp - sqrt(1 - abar) v
            return c_in * c_in, -sigma * c_in, c_in
        return 0.0, 1.0, c_in  # "sample": the network's output is x0

    def _output(self, output: Any, x: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            if hasattr(output, "sample"):
                output = output.sample
            elif isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
                output = output[0]
        if not isinstance(output, Tensor):
            raise UnsupportedInputError(
                ADAPTER, "model output", type(output).__name__, "a tensor, a tuple starting with one, or .sample"
            )
        if output.shape != x.shape and x.dim() > 1 and output.shape[1] == 2 * x.shape[1]:
            output = output[:, : x.shape[1]]  # learned variance: (prediction, variance) along channels
        if output.shape != x.shape:
            raise UnsupportedInputError(
                ADAPTER,
                "model output",
                f"shape {tuple(output.shape)}",
                f"the model must return x's shape {tuple(x.shape)} (or twice its channels with a learned variance)",
            )
        return output

    def _network_dtype(self, x: Tensor) -> torch.dtype:
        if isinstance(self.model, nn.Module):
            for parameter in self.model.parameters():
                if parameter.is_floating_point():
                    return parameter.dtype
        return x.dtype

    def forward(self, x: Tensor, sigma: Any, **model_kwargs: Any) -> Tensor:
        """``D(x; sigma) = c_skip x + c_out F(c_in x, t(sigma))``, in ``x``'s dtype."""
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1 or x.shape[0] < 1:
            shown = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise UnsupportedInputError(ADAPTER, "x", shown, "x must be a real floating tensor (batch, ...)")
        one = self._one_host_sigma(sigma, x)
        if one is not None:
            return self._forward_one_sigma(x, one, model_kwargs)
        sigma, slack = self._sigma(sigma, x)
        c_skip, c_out, c_in = self._coefficients(sigma)
        timestep = self.timestep(sigma).expand(x.shape[0])
        network_dtype = self._network_dtype(x)
        scaled = _per_sample(c_in, x) * x
        output = self.model(
            scaled.to(network_dtype), timestep.to(torch.promote_types(x.dtype, torch.float32)), **model_kwargs
        )
        output = self._output(output, x).to(x.dtype)
        denoised = _per_sample(c_out, x) * output if isinstance(c_out, Tensor) else output * c_out
        if not isinstance(c_skip, float):
            denoised = denoised + _per_sample(c_skip, x) * x
        elif c_skip != 0.0:
            denoised = denoised + x
        if slack is not None:  # not checked on the host (no read-back): a sigma outside makes its samples NaN
            inside = (sigma >= self.sigma_min * (1 - slack)) & (sigma <= self.sigma_max * (1 + slack))
            denoised = torch.where(_per_sample(inside, x), denoised, math.nan)
        return denoised

    def _forward_one_sigma(self, x: Tensor, sigma: float, model_kwargs: dict[str, Any]) -> Tensor:
        """:meth:`forward` for one noise level known on the host: the coefficients and the timestep as Python
        floats (the same formulas, in float64), about a dozen small tensor operations fewer per call."""
        c_skip, c_out, c_in = self._coefficients(sigma)
        timestep = torch.full(
            (x.shape[0],),
            self._host_timestep(sigma),
            dtype=torch.promote_types(x.dtype, torch.float32),
            device=x.device,
        )
        output = self.model((x * c_in).to(self._network_dtype(x)), timestep, **model_kwargs)
        output = self._output(output, x).to(x.dtype)
        if c_skip == 0.0:  # "sample": the output is x0 (c_out = 1)
            return output * c_out if c_out != 1.0 else output
        return torch.add(x if c_skip == 1.0 else x * c_skip, output, alpha=c_out)  # c_skip x + c_out F, one pass


def _slack(dtype: torch.dtype) -> float:
    """Relative room at the ends of the range for sigma's rounding: a float64 grid read in float32 (or bfloat16)
    may step over an end, and ``edm_sigmas`` reaches its ends through a power (within an ulp)."""
    return 4 * torch.finfo(dtype).eps


def _per_sample(value: Tensor, like: Tensor) -> Tensor:
    """A coefficient of shape () or (batch,) shaped to broadcast against ``like`` (in its dtype unless boolean)."""
    if value.dtype != torch.bool:
        value = value.to(like.dtype)
    return value.reshape(-1, *([1] * (like.dim() - 1))) if value.dim() == 1 else value
