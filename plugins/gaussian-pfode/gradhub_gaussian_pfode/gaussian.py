"""The closed-form probability-flow ODE of Gaussian data: flow map, score, denoiser, PCA fit.

"Diffusion Models Generate Images Like Painters: an Analytical Theory of Outline First, Details
Later", Binxu Wang and John J. Vastola, 2023, arXiv:2303.02490 (extended in "The Unreasonable
Effectiveness of Gaussian Score Approximation for Diffusion Models and its Applications", TMLR 2024,
arXiv:2412.09726). Official code: https://github.com/Animadversio/GaussianTeleportationDiffusion
(Gaussian and mixture scores with ``torch.inverse`` and ``solve_ivp`` integration; it holds no
closed-form flow map, so this module follows the paper's derivation of the Gaussian solution of the
probability-flow ODE, written below in its notation).

Data ``x0 ~ N(mu, Sigma)``, ``Sigma = U diag(lam) U^T`` with ``U`` (d x r) orthonormal and, when
r < d, the variance ``floor`` on the complement of span(U) (0 in the paper; a shrunk PCA fit sets it).
Every path the plugin knows is ``x_t = s_t x0 + sqrt(v_t) eps``:

* ``schedule="ve"`` (VE / EDM, time = sigma): ``s = 1``, ``v = sigma^2``;
* ``schedule="vp"`` (time = abar, the cumulative alpha product): ``s = sqrt(abar)``, ``v = 1 - abar``.

The noised marginal is ``N(s mu, s^2 Sigma + v I)``, so per eigendirection ``u_k``

* score: ``grad log p = -sum_k <u_k, x - s mu> / (s^2 lam_k + v) u_k``;
* denoiser ``E[x0 | x_t = x]``: ``mu + sum_k s lam_k / (s^2 lam_k + v) <u_k, x - s mu> u_k``
  (Tweedie: ``D = (x + v score) / s``);
* flow map (the paper's closed-form solution): along the PF-ODE the whitened coordinates
  ``<u_k, x - s mu> / sqrt(s^2 lam_k + v)`` are conserved, so
  ``x(t) = s mu + sum_k sqrt((s^2 lam_k + v) / (s_T^2 lam_k + v_T)) <u_k, x_T - s_T mu> u_k``
  (for VE: ``sqrt((lam_k + sigma^2) / (lam_k + sigma_T^2))``; the complement of span(U) scales by
  ``sigma / sigma_T``; for VP ``sqrt((abar lam_k + 1 - abar) / (abar_T lam_k + 1 - abar_T))``). At sigma = 0
  the complement collapses onto mu.

Every formula applies a function of the eigenvalues in the eigenbasis: one ``(N, d) @ (d, r)`` product
into the basis and one back, batched over samples and times (no d x d inverse, no loop over samples or
directions). A diagonal covariance is the elementwise special case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kinds.inputs import require_finite, require_same_device, require_tensor
from gradhub.kinds.solver import Iterate, solver
from gradhub_gaussian_pfode import GAUSSIAN_PFODE

NAME = GAUSSIAN_PFODE.name
SCHEDULES = ("ve", "vp")
Time = float | Tensor
"""A noise level: a number, a 0-d tensor, or a ``(batch,)`` tensor (one per sample)."""


@dataclass(frozen=True)
class _Parts:
    """The parameters in one dtype on one device (cached per pair)."""

    mean: Tensor
    basis: Tensor | None  # (d, r); None for a diagonal covariance
    values: Tensor  # lam (r,) or the diagonal (d,)
    floor: Tensor  # 0-d: the variance on the complement of span(basis)


def _tolerance(dtype: torch.dtype, dim: int) -> float:
    """Relative round-off allowed when checking a covariance or basis given in ``dtype``."""
    return 100.0 * dim * torch.finfo(dtype).eps


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class GaussianPFODE:
    """Gaussian data ``N(mean, Sigma)`` and its probability-flow ODE in closed form.

    Give the covariance one way: ``cov`` (d x d, symmetric positive semidefinite; eigendecomposed once
    in float64), ``U`` and ``lam`` (d x r orthonormal columns and r >= 0 variances, r <= d; with
    ``floor``, the variance of the other d - r directions, 0 by default) or ``diag`` (d variances).
    Or fit it to data with :meth:`fit`. ``mean`` may have any shape (an image's, say); ``x`` then has
    shape ``(batch, *mean.shape)`` or ``(batch, d)``.

    ``schedule="ve"``: times are noise levels sigma (EDM, x = x0 + sigma eps, data at 0);
    ``schedule="vp"``: times are abar in [0, 1] (x = sqrt(abar) x0 + sqrt(1 - abar) eps, data at 1).

    Computation runs in the input's dtype (at least float32) on its device; the parameters are cast
    and moved once per (dtype, device) and cached. ``check=False`` skips the checks of input values
    (finite, times in range: one host read) for loops on an accelerator.
    """

    def __init__(
        self,
        mean: Tensor,
        cov: Tensor | None = None,
        U: Tensor | None = None,
        lam: Tensor | None = None,
        *,
        diag: Tensor | None = None,
        floor: float = 0.0,
        schedule: str = "ve",
    ) -> None:
        require_tensor(NAME, "mean", mean, nonempty=True)
        self.event_shape = tuple(mean.shape)
        dim = mean.numel()
        forms = [name for name, value in (("cov", cov), ("U", U), ("lam", lam), ("diag", diag)) if value is not None]
        if forms not in (["cov"], ["U", "lam"], ["diag"]):
            raise UnsupportedInputError(
                NAME, "covariance", f"given: {forms or 'none'}", "give exactly one of cov, (U and lam), or diag"
            )
        given = {"mean": mean, "cov": cov, "U": U, "lam": lam, "diag": diag}
        given = {name: value for name, value in given.items() if value is not None}
        for name, value in given.items():
            require_tensor(NAME, name, value)
            require_finite(NAME, name, value)
        require_same_device(NAME, **given)
        dtype = mean.dtype
        for value in given.values():
            dtype = torch.promote_types(dtype, value.dtype)
        if not isinstance(floor, (int, float)) or isinstance(floor, bool) or not math.isfinite(floor) or floor < 0:
            raise UnsupportedInputError(NAME, "floor", floor, "floor must be a finite number >= 0")
        if floor and U is None:
            raise UnsupportedInputError(NAME, "floor", floor, "floor is the variance off span(U): give it with U, lam")
        mean = mean.reshape(-1).to(dtype)
        if cov is not None:
            basis, values = _eigh(cov, dim)
        elif diag is not None:
            basis, values = None, _clamped_variances(diag, dim, "diag")
        else:
            basis, values = _checked_basis(U, lam, dim)
        self._setup(mean.detach(), None if basis is None else basis.to(dtype), values.to(dtype), float(floor), schedule)

    def _setup(self, mean: Tensor, basis: Tensor | None, values: Tensor, floor: float, schedule: str) -> None:
        if schedule not in SCHEDULES:
            raise HyperparameterError(NAME, "schedule", schedule, "one of 've' (sigma) or 'vp' (abar)")
        self.schedule = schedule
        self._mean, self._basis, self._values, self._floor = mean, basis, values, floor
        self.dim = mean.numel()
        self.rank = self.dim if basis is None else basis.shape[1]
        """Directions with their own variance: r for (U, lam), d for cov and diag."""
        self._complement = basis is not None and self.rank < self.dim
        smallest = float(values.min()) if values.numel() else 0.0
        self._singular = smallest == 0.0 or (self._complement and floor == 0.0)
        self._cache: dict[tuple[torch.dtype, torch.device], _Parts] = {}

    @classmethod
    def _from_parts(
        cls, mean: Tensor, basis: Tensor | None, values: Tensor, floor: float, schedule: str, shape: tuple[int, ...]
    ) -> GaussianPFODE:
        gaussian = cls.__new__(cls)
        gaussian.event_shape = shape
        gaussian._setup(mean, basis, values, floor, schedule)
        return gaussian

    # --- construction from data ------------------------------------------------------------------

    @classmethod
    def fit(
        cls, data: Tensor, rank: int | None = None, shrinkage: float = 0.0, *, schedule: str = "ve"
    ) -> GaussianPFODE:
        """Mean and PCA covariance of ``data`` (N samples of any shape), eigenpairs sorted descending.

        The sample covariance ``S`` (divisor N - 1) is eigendecomposed in float64: ``eigh`` of the d x d
        matrix when N > d, else the SVD of the N x d centred data (its N - 1 nonzero directions; no d x d
        matrix is formed). ``rank`` keeps the top r directions (None: all). ``shrinkage`` alpha in [0, 1]
        shrinks towards the isotropic ``nu I``, ``nu = tr(S) / d``: the model is
        ``(1 - alpha) S_r + alpha nu I``, i.e. ``lam_k -> (1 - alpha) lam_k + alpha nu`` and the directions
        dropped get the ``floor`` ``alpha nu`` (the low-rank-plus-isotropic-floor covariance for images).
        Negative round-off eigenvalues are clamped to 0. The parameters stay float64 (cast per call).
        """
        require_tensor(NAME, "data", data, min_dim=1)
        if data.shape[0] < 2 or data[0].numel() < 1:
            raise UnsupportedInputError(NAME, "data shape", tuple(data.shape), "data must hold N >= 2 samples")
        require_finite(NAME, "data", data)
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise HyperparameterError(NAME, "rank", rank, "None or an integer >= 1")
        valid = isinstance(shrinkage, (int, float)) and not isinstance(shrinkage, bool)
        if not valid or not 0 <= shrinkage <= 1:
            raise HyperparameterError(NAME, "shrinkage", shrinkage, "a number in [0, 1]")
        count, shape = data.shape[0], tuple(data.shape[1:])
        flat = data.reshape(count, -1).to(torch.float64)
        dim = flat.shape[1]
        mean = flat.mean(0)
        centred = flat - mean
        if count - 1 >= dim:
            values, basis = torch.linalg.eigh(centred.T @ centred / (count - 1))
            values, basis = values.flip(0), basis.flip(1)
        else:  # thin SVD: S = V diag(s^2 / (N - 1)) V^T
            _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
            values, basis = singular.square() / (count - 1), vh.T
        values = values.clamp_min(0)
        if rank is not None:
            values, basis = values[:rank], basis[:, :rank]
        isotropic = float(centred.square().sum()) / ((count - 1) * dim)
        values = (1 - shrinkage) * values + shrinkage * isotropic
        floor = shrinkage * isotropic if basis.shape[1] < dim else 0.0
        return cls._from_parts(mean, basis.contiguous(), values, floor, schedule, shape)

    def with_schedule(self, schedule: str) -> GaussianPFODE:
        """The same Gaussian read on another path (``"ve"``: sigma; ``"vp"``: abar): the data are unchanged."""
        return GaussianPFODE._from_parts(self._mean, self._basis, self._values, self._floor, schedule, self.event_shape)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> GaussianPFODE:
        """The same Gaussian with its parameters on ``device`` in ``dtype``."""
        moved = [None if t is None else t.to(device=device, dtype=dtype) for t in (self._mean, self._basis)]
        values = self._values.to(device=device, dtype=dtype)
        return GaussianPFODE._from_parts(moved[0], moved[1], values, self._floor, self.schedule, self.event_shape)

    # --- the parameters ----------------------------------------------------------------------------

    @property
    def mean(self) -> Tensor:
        return self._mean.reshape(self.event_shape)

    @property
    def U(self) -> Tensor | None:
        """The eigenvectors (d x r, columns by descending eigenvalue); None for a diagonal covariance."""
        return self._basis

    @property
    def lam(self) -> Tensor:
        """The eigenvalues (descending), or the diagonal's variances (in coordinate order)."""
        return self._values

    @property
    def floor(self) -> float:
        return self._floor

    @property
    def dtype(self) -> torch.dtype:
        return self._mean.dtype

    @property
    def device(self) -> torch.device:
        return self._mean.device

    def covariance(self) -> Tensor:
        """The dense d x d covariance (for small d: tests, plots)."""
        if self._basis is None:
            return torch.diag(self._values)
        dense = (self._basis * self._values) @ self._basis.T
        if self._complement:
            eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
            dense = dense + self._floor * (eye - self._basis @ self._basis.T)
        return dense

    def commitment_sigmas(self, q: float = 0.9) -> Tensor:
        """Outline first: the sigma at which direction k's denoiser coefficient reaches q of its final value,
        ``sqrt(lam_k (1/q^2 - 1))`` (VE noise levels, whatever the schedule; large lam commits early)."""
        if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0 < q < 1:
            raise HyperparameterError(NAME, "q", q, "a number in (0, 1)")
        return (self._values * (1 / q**2 - 1)).sqrt()

    def __repr__(self) -> str:
        form = "diag" if self._basis is None else f"rank {self.rank}"
        if self._complement:
            form += f", floor {self._floor:.3g}"
        return f"GaussianPFODE(dim={self.dim}, {form}, schedule={self.schedule!r}, dtype={self.dtype})"

    # --- the closed forms ----------------------------------------------------------------------------

    def solve(self, x_T: Tensor, sigma_T: Time, sigma: Time, *, check: bool = True) -> Tensor:
        """The PF-ODE flow map from ``sigma_T`` to ``sigma`` (the paper's closed form), batched over ``x_T``'s rows.

        VE: any ``0 <= sigma <= sigma_T`` (sigma = 0 is the data end); VP: abar values with
        ``abar_T <= abar <= 1``. Times are numbers or ``(batch,)`` tensors. ``sigma == sigma_T`` returns
        ``x_T`` exactly (a copy).
        """
        flat, parts = self._input("x_T", x_T, check)
        (s_T, v_T), (s, v) = self._flow_times(sigma_T, sigma, flat, check)
        gains = self._gains(parts, lambda lam: ((s * s * lam + v) / (s_T * s_T * lam + v_T)).sqrt())
        out = s * parts.mean + self._apply(parts, flat - s_T * parts.mean, *gains)
        out = torch.where(self._same(sigma_T, sigma, flat), flat, out)
        return out.to(x_T.dtype).reshape(x_T.shape)

    def trajectory(self, x_T: Tensor, sigmas: Tensor | Sequence[float], *, check: bool = True) -> Tensor:
        """``x(sigma)`` at every entry of ``sigmas`` (from the noise end: decreasing sigma, or increasing
        abar for VP), starting from ``x_T`` at ``sigmas[0]``: a ``(len(sigmas), *x_T.shape)`` tensor, in
        one batched evaluation (the first entry is ``x_T`` exactly)."""
        flat, parts = self._input("x_T", x_T, check)
        times = self._grid(sigmas, flat)
        start = times[0]
        s_T, v_T = self._path(start)
        s, v = self._path(times[:, None, None])
        gains = self._gains(parts, lambda lam: ((s * s * lam + v) / (s_T * s_T * lam + v_T)).sqrt())
        out = s * parts.mean + self._apply(parts, flat - s_T * parts.mean, *gains)
        out = torch.cat([flat[None], out[1:]])
        return out.to(x_T.dtype).reshape(len(times), *x_T.shape)

    def score(self, x: Tensor, sigma: Time, *, check: bool = True) -> Tensor:
        """``grad_x log p_sigma(x) = -(s^2 Sigma + v I)^{-1} (x - s mu)`` (VE: ``-(Sigma + sigma^2 I)^{-1}
        (x - mu)``). At sigma = 0 (VP: abar = 1) only for a nonsingular covariance."""
        flat, parts = self._input("x", x, check)
        s, v = self._path(self._time("sigma", sigma, flat, check, data_end=not self._singular))
        gains = self._gains(parts, lambda lam: -1 / (s * s * lam + v))
        return self._apply(parts, flat - s * parts.mean, *gains).to(x.dtype).reshape(x.shape)

    def denoise(self, x: Tensor, sigma: Time, *, check: bool = True) -> Tensor:
        """The posterior mean ``E[x0 | x_sigma = x] = mu + s Sigma (s^2 Sigma + v I)^{-1} (x - s mu)``

        An EDM denoiser ``D(x; sigma)`` for the samplers (VE). At sigma = 0 it is the limit: the projection
        of ``x`` onto ``mu + span`` of the directions with nonzero variance.
        """
        flat, parts = self._input("x", x, check)
        s, v = self._path(self._time("sigma", sigma, flat, check, data_end=True))

        def gain(lam: Tensor) -> Tensor:
            denominator = s * s * lam + v
            return torch.where(denominator > 0, s * lam / denominator, torch.zeros_like(denominator))

        out = parts.mean + self._apply(parts, flat - s * parts.mean, *self._gains(parts, gain))
        return out.to(x.dtype).reshape(x.shape)

    def flow_residual(self, x_T: Tensor, sigma_T: Time, x: Tensor, sigma: Time) -> Tensor:
        """How far ``x`` at ``sigma`` is from the flow of ``x_T`` at ``sigma_T``: the relative defect of the
        conserved quantities ``<u_k, x - s mu> / sqrt(s^2 lam_k + v)`` (0-d tensor), computed from the
        coordinates of ``x`` itself (so it measures the returned state's round-off, and NaN if it is not finite).
        """
        flat_T, parts = self._input("x_T", x_T, check=False)
        flat, _ = self._input("x", x, check=False)
        (s_T, v_T), (s, v) = self._flow_times(sigma_T, sigma, flat_T, check=False)
        y_T, y = flat_T - s_T * parts.mean, flat.to(flat_T.dtype) - s * parts.mean
        a_T = self._gains(parts, lambda lam: (s_T * s_T * lam + v_T).sqrt())
        a = self._gains(parts, lambda lam: (s * s * lam + v).sqrt())
        if parts.basis is None:
            pairs = [(y, y_T, a_T[0], a[0])]
        else:
            pairs = [(y @ parts.basis, y_T @ parts.basis, a_T[0], a[0])]
            if self._complement:
                project = lambda z: z - (z @ parts.basis) @ parts.basis.T  # noqa: E731
                pairs.append((project(y), project(y_T), a_T[1], a[1]))
        defect = sum((scale_T * here - scale * start).square().sum() for here, start, scale_T, scale in pairs)
        size = sum((scale * start).square().sum() for _, start, _, scale in pairs)
        relative = defect.sqrt() / size.sqrt().clamp_min(torch.finfo(flat_T.dtype).tiny)
        return relative.to(torch.float64)

    # --- shared pieces -----------------------------------------------------------------------------

    def _parts(self, dtype: torch.dtype, device: torch.device) -> _Parts:
        key = (dtype, device)
        parts = self._cache.get(key)
        if parts is None:
            basis = None if self._basis is None else self._basis.to(device=device, dtype=dtype)
            parts = self._cache[key] = _Parts(
                mean=self._mean.to(device=device, dtype=dtype),
                basis=basis,
                values=self._values.to(device=device, dtype=dtype),
                floor=torch.tensor(self._floor, dtype=dtype, device=device),
            )
        return parts

    def _input(self, name: str, x: Any, check: bool) -> tuple[Tensor, _Parts]:
        require_tensor(NAME, name, x, min_dim=2)
        if x.shape[0] < 1 or x[0].numel() != self.dim:
            raise UnsupportedInputError(
                NAME,
                f"{name} shape",
                tuple(x.shape),
                f"{name} must be (batch, {', '.join(map(str, self.event_shape))}) or (batch, {self.dim}): "
                f"the Gaussian has dimension {self.dim}",
            )
        if check:
            require_finite(NAME, name, x)
        dtype = _compute_dtype(x.dtype)
        return x.reshape(x.shape[0], self.dim).to(dtype), self._parts(dtype, x.device)

    def _gains(self, parts: _Parts, function: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor | None]:
        """``function`` of the eigenvalues (or variances), and of the floor when there is a complement."""
        return function(parts.values), function(parts.floor.reshape(1)) if self._complement else None

    def _apply(self, parts: _Parts, y: Tensor, gain: Tensor, gain_off: Tensor | None) -> Tensor:
        """``sum_k gain_k <u_k, y> u_k + gain_off P_perp y``, batched (y: (..., d); gains broadcast)."""
        if parts.basis is None:
            return gain * y
        coefficients = y @ parts.basis
        if gain_off is None:
            return (coefficients * gain) @ parts.basis.T
        return gain_off * y + (coefficients * (gain - gain_off)) @ parts.basis.T

    def _path(self, time: Tensor) -> tuple[Tensor, Tensor]:
        """``(s, v)`` of ``x = s x0 + sqrt(v) eps`` at ``time`` (sigma for VE, abar for VP)."""
        if self.schedule == "ve":
            return torch.ones_like(time), time * time
        return time.sqrt(), 1 - time

    def _time(self, name: str, value: Any, flat: Tensor, check: bool, *, data_end: bool) -> Tensor:
        """A time as a tensor broadcasting against ``flat`` ((), or (batch, 1)), range-checked (a number on the
        host; a tensor with one read, unless ``check=False``); ``data_end=False`` refuses sigma = 0 / abar = 1."""
        time, host = _read_time(name, value, flat)
        if host is None and not check:
            return time
        values = torch.tensor(host, dtype=torch.float64, device="cpu") if host is not None else time.reshape(-1)
        if self.schedule == "ve":
            valid = values >= 0 if data_end else values > 0
            allowed = f"{name} must be finite and {'>= 0' if data_end else '> 0'}"
        else:
            valid = (values >= 0) & (values <= 1 if data_end else values < 1)
            allowed = f"for schedule='vp' {name} is abar and must be in {'[0, 1]' if data_end else '[0, 1)'}"
        bad = _first_bad(torch.isfinite(values) & valid)
        if bad is not None:
            if not data_end:
                allowed += " (the covariance is singular: its score at the data end is undefined)"
            raise UnsupportedInputError(NAME, name, float(values[bad]), allowed)
        return time

    def _flow_times(
        self, start: Any, end: Any, flat: Tensor, check: bool
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The two times' ``(s, v)``, checked: finite, in range, ``end`` at or after ``start`` towards the data."""
        time_T, host_T = _read_time("sigma_T", start, flat)
        time, host = _read_time("sigma", end, flat)
        if host_T is not None and host is not None:
            self._check_pair(host_T[0], host[0])
        elif check:
            first, second = (t.reshape(-1) for t in torch.broadcast_tensors(time_T, time))
            if self.schedule == "ve":
                valid = (first > 0) & (second >= 0) & (second <= first)
            else:
                valid = (first >= 0) & (first < 1) & (second >= first) & (second <= 1)
            bad = _first_bad(torch.isfinite(first) & torch.isfinite(second) & valid)
            if bad is not None:
                self._check_pair(float(first[bad]), float(second[bad]))
        return self._path(time_T), self._path(time)

    def _check_pair(self, start: float, end: float) -> None:
        if self.schedule == "ve":
            if not (math.isfinite(start) and start > 0):
                raise UnsupportedInputError(NAME, "sigma_T", start, "sigma_T must be finite and > 0")
            if not (math.isfinite(end) and 0 <= end <= start):
                raise UnsupportedInputError(
                    NAME, "sigma", end, f"sigma must be finite and in [0, sigma_T={start:.6g}] (the flow runs to data)"
                )
        else:
            if not (math.isfinite(start) and 0 <= start < 1):
                raise UnsupportedInputError(
                    NAME, "sigma_T", start, "for schedule='vp' sigma_T is abar_T and must be in [0, 1)"
                )
            if not (math.isfinite(end) and start <= end <= 1):
                raise UnsupportedInputError(
                    NAME,
                    "sigma",
                    end,
                    f"for schedule='vp' sigma is abar and must be in [abar_T={start:.6g}, 1] (the flow runs to data)",
                )

    def _same(self, start: Any, end: Any, flat: Tensor) -> Tensor | bool:
        """Where the flow's two times are equal (then the answer is ``x_T`` itself)."""
        time_T, _ = _read_time("sigma_T", start, flat)
        time, _ = _read_time("sigma", end, flat)
        return time_T == time

    def _grid(self, sigmas: Any, flat: Tensor) -> Tensor:
        if isinstance(sigmas, Tensor):
            if sigmas.dim() != 1 or sigmas.numel() < 1 or not sigmas.is_floating_point():
                raise UnsupportedInputError(NAME, "sigmas", tuple(sigmas.shape), "sigmas must be a 1-D float tensor")
            values = sigmas.detach().to("cpu", torch.float64).tolist()
        elif isinstance(sigmas, Sequence) and len(sigmas) > 0:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sigmas):
                raise UnsupportedInputError(NAME, "sigmas", sigmas, "sigmas must be numbers")
            values = [float(v) for v in sigmas]
        else:
            raise UnsupportedInputError(NAME, "sigmas", type(sigmas).__name__, "a non-empty 1-D tensor or list")
        towards_data = (lambda a, b: b < a) if self.schedule == "ve" else (lambda a, b: b > a)
        for index in range(len(values) - 1):
            if not towards_data(values[index], values[index + 1]):
                direction = "strictly decrease (sigma)" if self.schedule == "ve" else "strictly increase (abar)"
                raise UnsupportedInputError(
                    NAME,
                    "sigmas",
                    f"sigmas[{index}]={values[index]:.6g}, sigmas[{index + 1}]={values[index + 1]:.6g}",
                    f"sigmas must {direction}: from the noise end to the data end",
                )
        for value in values:
            self._check_pair(values[0], value)
        return torch.tensor(values, dtype=flat.dtype, device=flat.device)


def _first_bad(valid: Tensor) -> int | None:
    """The index of the first False in a 1-D mask, None when all hold (one host read)."""
    if bool(valid.all()):
        return None
    return int((~valid).int().argmax())


def _read_time(name: str, value: Any, flat: Tensor) -> tuple[Tensor, list[float] | None]:
    """``value`` as a tensor in ``flat``'s dtype and device, shaped () or (batch, 1); its host values when a
    number (free to check), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=flat.dtype, device=flat.device), [float(value)]
    if isinstance(value, Tensor) and value.is_floating_point():
        if value.dim() == 0:
            return value.to(device=flat.device, dtype=flat.dtype), None
        if value.dim() == 1 and value.shape[0] == flat.shape[0]:
            return value.to(device=flat.device, dtype=flat.dtype)[:, None], None
        raise UnsupportedInputError(
            NAME, f"{name} shape", tuple(value.shape), f"{name} must be a number, a 0-d tensor or ({flat.shape[0]},)"
        )
    shown = f"{value.dtype} tensor" if isinstance(value, Tensor) else type(value).__name__
    raise UnsupportedInputError(NAME, name, shown, f"{name} must be a real number or a floating tensor")


def _eigh(cov: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Eigenpairs of a symmetric PSD ``cov`` in float64, descending; round-off negatives clamped to 0."""
    if cov.shape != (dim, dim):
        raise UnsupportedInputError(NAME, "cov shape", tuple(cov.shape), f"cov must be ({dim}, {dim}) like mean")
    wide = cov.detach().to(torch.float64)
    scale = float(wide.abs().max())
    tolerance = _tolerance(cov.dtype, dim)
    asymmetry = float((wide - wide.T).abs().max())
    if asymmetry > tolerance * max(scale, torch.finfo(torch.float64).tiny):
        raise UnsupportedInputError(
            NAME, "cov", f"a non-symmetric matrix (max |cov - cov^T| = {asymmetry:.3g})", "cov must be symmetric"
        )
    values, basis = torch.linalg.eigh((wide + wide.T) / 2)
    largest = float(values.abs().max())
    _require_nonnegative("cov", values, tolerance * largest, "eigenvalue")
    # eigh resolves eigenvalues to about d eps ||cov|| (float64): below that they are zero, not signal
    values = torch.where(values.abs() <= _tolerance(torch.float64, dim) * largest, torch.zeros_like(values), values)
    return basis.flip(1), values.flip(0).clamp_min(0)


def _clamped_variances(values: Tensor, dim: int, name: str) -> Tensor:
    if values.shape != (dim,):
        raise UnsupportedInputError(NAME, f"{name} shape", tuple(values.shape), f"{name} must be ({dim},) like mean")
    wide = values.detach().to(torch.float64)
    _require_nonnegative(name, wide, _tolerance(values.dtype, dim) * float(wide.abs().max()), "variance")
    return wide.clamp_min(0)


def _checked_basis(U: Tensor, lam: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``U`` (d x r, orthonormal columns) and ``lam`` (r,), sorted by descending eigenvalue."""
    if U.dim() != 2 or U.shape[0] != dim or not 1 <= U.shape[1] <= dim:
        raise UnsupportedInputError(NAME, "U shape", tuple(U.shape), f"U must be ({dim}, r) with 1 <= r <= {dim}")
    rank = U.shape[1]
    if lam.shape != (rank,):
        raise UnsupportedInputError(NAME, "lam shape", tuple(lam.shape), f"lam must be ({rank},): one per column of U")
    wide = U.detach().to(torch.float64)
    gram_error = float((wide.T @ wide - torch.eye(rank, dtype=torch.float64, device=U.device)).abs().max())
    if gram_error > _tolerance(U.dtype, dim):
        raise UnsupportedInputError(
            NAME,
            "U",
            f"columns off orthonormal by {gram_error:.3g} (max |U^T U - I|)",
            "U must have orthonormal columns",
        )
    values = _clamped_variances(lam, rank, "lam")
    order = torch.argsort(values, descending=True, stable=True)
    return U.detach()[:, order], values[order]


def _require_nonnegative(name: str, values: Tensor, tolerance: float, what: str) -> None:
    smallest = float(values.min())
    if smallest < -tolerance:
        raise UnsupportedInputError(
            NAME,
            name,
            f"a negative {what} {smallest:.6g} (round-off tolerance {tolerance:.3g})",
            f"{name} must be positive semidefinite (every {what} >= 0)",
        )


@solver(GAUSSIAN_PFODE)
def gaussian_pfode(
    gaussian: GaussianPFODE, x_T: Tensor, sigma_T: Time, sigma: Time, *, tol: float, max_iter: int
) -> Iterator[Iterate]:
    """The Gaussian PF-ODE flow map ``x(sigma_T) = x_T -> x(sigma)`` in closed form, as a gradhub solver.

    ``gaussian_pfode(gaussian, x_T, sigma_T, sigma) -> SolverResult`` with ``solution = gaussian.solve(x_T,
    sigma_T, sigma)`` (the paper's closed form), ``iterations = 0`` (the closed form is the answer before any
    iteration) and ``residuals = [r]``, r the relative defect of the flow's conserved coordinates measured
    on the returned state (:meth:`GaussianPFODE.flow_residual`). ``converged`` is True only for a finite
    answer with ``r <= tol`` (the core's solver frame decides it), so an overflow never reports success.
    """
    if not isinstance(gaussian, GaussianPFODE):
        raise UnsupportedInputError(NAME, "gaussian", type(gaussian).__name__, "pass a GaussianPFODE")
    x = gaussian.solve(x_T, sigma_T, sigma)
    yield Iterate(x, gaussian.flow_residual(x_T, sigma_T, x, sigma))


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [GaussianPFODE.__name__, gaussian_pfode.__name__]
