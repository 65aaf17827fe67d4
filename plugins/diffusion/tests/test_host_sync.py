"""No host read-back and no host-made tensor per model call in the samplers, whatever the prediction type.

On a GPU a host read-back (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``, ``.cpu()``) waits for
the device, and a tensor made on the host and moved costs a copy. Each sampler runs here with 4 and
with 8 steps, and what it does besides the model calls must not grow with the number of steps:

* read-backs are counted by wrapping those ``torch.Tensor`` methods (on any tensor: a read of a host
  tensor is no device sync, but it is a Python scalar computed per call, which is what this looks for);
* tensors made on another device than ``x_T``'s are counted by running on the ``meta`` device (a
  stand-in for an accelerator: nothing there can be read back) under a dispatch mode that looks at
  every operator's outputs.

Both counts run with ``check_finite=False``: with ``check_finite=True`` the core's frame reads the
model outputs' extremes (min, max) back once per call (counted separately below).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from gradhub_diffusion import PATH_KINDS, PREDICTIONS
from gradhub_diffusion.gmm import square_mixture
from gradhub_diffusion.paths import GaussianPath
from gradhub_diffusion.samplers import (
    ddim,
    ddpm_ancestral,
    dpmpp_2m,
    edm_sigmas,
    euler_maruyama_sde,
    euler_ode,
    fm_euler,
    heun_edm,
)
from torch.utils._python_dispatch import TorchDispatchMode

from gradhub.errors import UnsupportedInputError
from gradhub.testing import counting_read_backs


@contextmanager
def counted_read_backs() -> Iterator[Counter[str]]:
    """:func:`gradhub.testing.counting_read_backs`, as counts by method name once the block ends."""
    counts: Counter[str] = Counter()
    with counting_read_backs() as reads:
        yield counts
    counts.update(reads)


COPIES = (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default)


class OffDevice(TorchDispatchMode):
    """Counts operators that make a tensor on another device than ``device`` ("made: op") and operators
    that bring a tensor from another device to it ("copied: op", a host-to-device copy on a GPU)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device, self.counts = device, Counter[str]()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        outputs = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]
        inputs = [t for t in (*args, *(kwargs or {}).values()) if isinstance(t, torch.Tensor)]
        if any(t.device != self.device for t in outputs):
            self.counts[f"made: {func}"] += 1
        if func in COPIES and outputs and any(t.device != self.device for t in inputs):
            self.counts[f"copied: {func}"] += 1
        return out


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Any output shaped like x serves as every prediction type; no read-back of its own."""
    return 0.5 * x + 0.1 * t.reshape(-1, *([1] * (x.dim() - 1)))


Run = Callable[[Any, torch.Tensor, int, str, torch.Generator | None], Any]


def _sigmas(sampler: Any, **hparams: Any) -> Run:
    def run(model: Any, x_T: torch.Tensor, steps: int, prediction: str, generator: torch.Generator | None) -> Any:
        grid = edm_sigmas(steps, sigma_max=10.0)
        return sampler(model, x_T, grid, generator=generator, check_finite=False, prediction=prediction, **hparams)

    return run


def _times(sampler: Any, path: str, **hparams: Any) -> Run:
    def run(model: Any, x_T: torch.Tensor, steps: int, prediction: str, generator: torch.Generator | None) -> Any:
        top = 80.0 if path == "edm" else 0.98
        grid = torch.linspace(top, 0.0, steps + 1, dtype=torch.float64)
        return sampler(
            model, x_T, grid, generator=generator, check_finite=False, prediction=prediction, path=path, **hparams
        )

    return run


SAMPLERS: dict[str, Run] = {
    "euler_ode": _sigmas(euler_ode),
    "heun_edm (churn)": _sigmas(heun_edm, S_churn=4.0),  # off-grid sigma_hat at every step
    "dpmpp_2m": _sigmas(dpmpp_2m),
    "euler_maruyama_sde": _sigmas(euler_maruyama_sde),
    "ddpm_ancestral (vp_linear)": _times(ddpm_ancestral, "vp_linear", variance="beta_tilde"),
    "ddim (vp_cosine, eta=0.5)": _times(ddim, "vp_cosine", eta=0.5),
    "ddim (ve)": _times(ddim, "ve"),
    "fm_euler (linear_fm)": _times(fm_euler, "linear_fm"),
}


def _read_backs(monkeypatch: pytest.MonkeyPatch, run: Run, steps: int, prediction: str) -> Counter[str]:
    x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    with counted_read_backs() as counts:
        run(toy_model, x_T, steps, prediction, generator)
    return counts


def _off_device(run: Run, steps: int, prediction: str) -> Counter[str]:
    x_T = torch.empty(6, 2, device="meta")
    with OffDevice(x_T.device) as mode:
        run(toy_model, x_T, steps, prediction, None)
    return mode.counts


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("name", SAMPLERS)
def test_read_backs_do_not_grow_with_steps(monkeypatch: pytest.MonkeyPatch, name: str, prediction: str) -> None:
    four, eight = (_read_backs(monkeypatch, SAMPLERS[name], steps, prediction) for steps in (4, 8))
    assert four == eight, f"{name}, prediction={prediction}: read-backs {dict(four)} (4 steps), {dict(eight)} (8 steps)"


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("name", SAMPLERS)
def test_no_tensor_made_off_device_per_step(name: str, prediction: str) -> None:
    four, eight = (_off_device(SAMPLERS[name], steps, prediction) for steps in (4, 8))
    assert four == eight, f"{name}, prediction={prediction}: off-device {dict(four)} (4 steps), {dict(eight)} (8 steps)"


def test_the_frames_finite_check_is_one_read_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the default check_finite=True the frame reads the model outputs' extremes once per call."""
    x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    for steps in (4, 8):
        with counted_read_backs() as checked:
            result = heun_edm(toy_model, x_T, edm_sigmas(steps, sigma_max=10.0), prediction="eps")
        with counted_read_backs() as unchecked:
            heun_edm(toy_model, x_T, edm_sigmas(steps, sigma_max=10.0), prediction="eps", check_finite=False)
        assert result.evaluations > 1
        assert checked - unchecked == Counter(tolist=1)


def test_mixture_samples_on_a_device_with_its_generator() -> None:
    """The mixture's weights live on its means' device, so sampling draws there (meta: no CPU tensor)."""
    mixture = square_mixture(torch.float32, "meta")
    assert mixture.weights.device.type == "meta"
    with OffDevice(torch.device("meta")) as mode:
        samples = mixture.sample(5)
        mixture.denoiser(samples, torch.full((5,), 0.5, device="meta"))
    assert samples.device.type == "meta" and mode.counts == Counter()
    with pytest.raises(UnsupportedInputError, match=r"GaussianMixture: unsupported generator device: cpu"):
        mixture.sample(5, torch.Generator())


@pytest.mark.parametrize("kind", PATH_KINDS)
def test_conversions_at_a_host_time_make_nothing_on_the_host(kind: str) -> None:
    """At a PathPoint (and, for edm and linear_fm, at a Python number) every conversion multiplies by Python
    floats: no tensor on another device, no copy to the device."""
    path = GaussianPath(kind=kind)
    point = path.point(0.3 * path.t_max)
    times = [point, point.t] if kind in ("edm", "linear_fm") else [point]
    x_t, output = torch.empty(2, 4, 3, device="meta")
    with OffDevice(x_t.device) as mode:
        for t in times:
            for source in PREDICTIONS:
                for convert in (path.to_x0, path.to_eps, path.to_score, path.to_v, path.to_velocity):
                    convert(output, x_t, t, source)
            path.sample(x_t, t, output)
    assert mode.counts == Counter()
