"""The DMD2-style f-distill training loop: one-step student, fake score and discriminator, alternated.

"One-step Diffusion Models with f-Divergence Distribution Matching", Y. Xu, W. Nie, A. Vahdat, 2025,
arXiv:2502.15681 (its training algorithm); official code NVIDIA FastGen
``fastgen/methods/distribution_matching/dmd2.py`` (``DMD2Model``: ``_student_update_step``,
``_fake_score_discriminator_update_step``, ``single_train_step``) with ``f_distill.py`` replacing the
student's VSD loss.

Networks (the user's; the trainer never builds one):

* ``student(x_T, t)``: the one-step generator, called on ``x_T = sigma(T) z`` at ``t = T`` (the path's
  largest time), returning a sample (x0);
* ``teacher(x_t, t)``: the frozen teacher's x0 prediction (called without gradient);
* ``fake_score(x_t, t)``: an x0 predictor of the student's diffused distribution, trained online by
  denoising score matching on detached student samples (FastGen's x0 loss ``mse(D_F(x_t), x)``);
* ``discriminator(x_t, t)``: logits (B,) or (B, ...) of "teacher data" against "student sample" at the
  same noise level (FastGen: a head on the teacher's features: wrap both in one callable), trained with
  the non-saturating loss ``softplus(d(fake)) + softplus(-d(real))``; at its optimum the logit is
  ``log p_t / q_t``, the density ratio r of :class:`gradhub_fdistill.loss.FDistillLoss`.

One training iteration is ``fake_updates_per_student`` critic steps (fake score and discriminator
together, on fresh samples) followed by one student step, whose loss is the f-divergence term
(:class:`FDistillLoss`) plus ``gan_weight_gen * mean softplus(-d(x_t))`` (FastGen's ``student_update_freq``
is ``fake_updates_per_student + 1``). Real data enter only the discriminator, noised at their own times
(FastGen's default ``gan_use_same_t_noise=False``). Noise times are uniform on ``t_range`` unless a
``time_sampler`` is given. Gradients are taken with ``torch.autograd.grad`` for the networks each step
trains, so no other network's ``.grad`` is touched. Not included: EMA of the student, R1 regulariser,
classifier-free guidance of the teacher, multistep students.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from gradhub_diffusion.paths import GaussianPath
from torch import Tensor, nn
from torch.nn import functional as F

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kinds.inputs import require_generator, require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub_fdistill.loss import FDistillLoss

__all__ = ["FDistillHistory", "FDistillTrainer"]

NAME = "fdistill_trainer"
OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
TimeSampler = Callable[[int, "torch.Generator | None", torch.device], Tensor]


def _adam(parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=1e-4)


@dataclass
class FDistillHistory:
    """What :meth:`FDistillTrainer.train` recorded: one entry per student step (``steps``) or per critic
    step (``steps * fake_updates_per_student``), as tensors on the training device."""

    divergence_loss: Tensor | None = None
    gan_loss_gen: Tensor | None = None
    h_min: Tensor | None = None
    h_mean: Tensor | None = None
    h_max: Tensor | None = None
    fake_score_loss: Tensor | None = None
    discriminator_loss: Tensor | None = None
    records: dict[str, list[Tensor]] = field(default_factory=dict, repr=False)

    def append(self, values: dict[str, Tensor]) -> None:
        for name, value in values.items():
            self.records.setdefault(name, []).append(value)

    def finish(self) -> FDistillHistory:
        for name, values in self.records.items():
            if hasattr(self, name):
                setattr(self, name, torch.stack(values))
        return self


def _parameters(name: str, module: Any) -> list[nn.Parameter]:
    if not isinstance(module, nn.Module):
        raise UnsupportedInputError(NAME, name, type(module).__name__, f"{name} must be an nn.Module (it is trained)")
    parameters = [p for p in module.parameters() if p.requires_grad]
    if not parameters:
        raise UnsupportedInputError(NAME, name, "a module without trainable parameters", f"{name} must have some")
    return parameters


def _as_path(path: Any) -> GaussianPath:
    if isinstance(path, GaussianPath):
        return path
    if isinstance(path, str):
        return GaussianPath(kind=path)
    raise HyperparameterError(NAME, "path", path, "a GaussianPath or a path kind's name")


class FDistillTrainer:
    """f-distill's alternating loop (module docstring) over the user's four networks and a Gaussian path.

    ``divergence`` and ``**loss_options`` build the :class:`FDistillLoss` (``t_range`` defaults to the
    trainer's); ``gan_weight_gen`` (>= 0; FastGen's ImageNet-64 value 3e-3) weights the generator's GAN
    term; the optimizers are factories ``f(parameters) -> Optimizer`` (default Adam, lr 1e-4);
    ``latent_shape`` the student's noise shape per sample (default: the data's); ``generator`` the source
    of every random draw (noise, times, batches).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: Callable[[Tensor, Tensor], Tensor],
        fake_score: nn.Module,
        discriminator: nn.Module,
        path: GaussianPath | str = "edm",
        *,
        divergence: str = "js",
        gan_weight_gen: float = 3e-3,
        fake_updates_per_student: int = 1,
        t_range: tuple[float, float] | None = None,
        time_sampler: TimeSampler | None = None,
        latent_shape: tuple[int, ...] | None = None,
        student_optimizer: OptimizerFactory | None = None,
        fake_optimizer: OptimizerFactory | None = None,
        discriminator_optimizer: OptimizerFactory | None = None,
        generator: torch.Generator | None = None,
        **loss_options: Any,
    ) -> None:
        self.student_parameters = _parameters("student", student)
        self.fake_parameters = _parameters("fake_score", fake_score)
        self.discriminator_parameters = _parameters("discriminator", discriminator)
        if not callable(teacher):
            raise UnsupportedInputError(NAME, "teacher", type(teacher).__name__, "pass a callable teacher(x_t, t)")
        self.student, self.teacher, self.fake_score, self.discriminator = student, teacher, fake_score, discriminator
        self.path = _as_path(path)
        real = isinstance(gan_weight_gen, (int, float)) and not isinstance(gan_weight_gen, bool)
        if not real or not math.isfinite(gan_weight_gen) or gan_weight_gen < 0:
            raise HyperparameterError(NAME, "gan_weight_gen", gan_weight_gen, "a finite number >= 0")
        count = fake_updates_per_student
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise HyperparameterError(NAME, "fake_updates_per_student", count, "an integer >= 1")
        self.gan_weight_gen, self.fake_updates_per_student = float(gan_weight_gen), count
        self.t_range = (self.path.t_min, self.path.t_max) if t_range is None else tuple(t_range)
        if not (
            len(self.t_range) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.t_range)
            and self.path.t_min <= self.t_range[0] < self.t_range[1] <= self.path.t_max
        ):
            raise HyperparameterError(
                NAME, "t_range", t_range, f"(low, high) with {self.path.t_min} <= low < high <= {self.path.t_max}"
            )
        if time_sampler is not None and not callable(time_sampler):
            raise UnsupportedInputError(NAME, "time_sampler", type(time_sampler).__name__, "a callable or None")
        self.time_sampler = time_sampler
        self.latent_shape = None if latent_shape is None else tuple(latent_shape)
        self.generator = generator
        loss_options.setdefault("t_range", (float(self.t_range[0]), float(self.t_range[1])))
        self.loss = FDistillLoss(divergence=divergence, **loss_options)
        self.student_optimizer = (student_optimizer or _adam)(self.student_parameters)
        self.fake_optimizer = (fake_optimizer or _adam)(self.fake_parameters)
        self.discriminator_optimizer = (discriminator_optimizer or _adam)(self.discriminator_parameters)
        self.sigma_max = self.path.point(self.path.t_max).sigma

    # --- random draws, all from the trainer's generator -------------------------------------------

    def _times(self, batch: int, like: Tensor) -> Tensor:
        device = like.device
        require_generator(NAME, self.generator, like, "the data")
        if self.time_sampler is not None:
            t = self.time_sampler(batch, self.generator, device)
            require_tensor(NAME, "time_sampler output", t, dtype="real", dim=1, what=f"of shape ({batch},)")
            if t.shape[0] != batch:
                raise UnsupportedInputError(NAME, "time_sampler output shape", tuple(t.shape), f"({batch},)")
            return t.to(device=device, dtype=torch.float64)
        low, high = self.t_range
        return low + (high - low) * torch.rand(batch, generator=self.generator, device=device, dtype=torch.float64)

    def _noise(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        require_generator(NAME, self.generator, like, "the data")
        return torch.randn(shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def _check(self, real: Any) -> Tensor:
        require_tensor(NAME, "batch", real, min_dim=1, nonempty=True, what="of data samples (batch, ...)")
        require_generator(NAME, self.generator, real, "batch")
        return real

    def generate(self, batch: int, like: Tensor) -> Tensor:
        """Student samples ``G(sigma(T) z, T)`` for ``batch`` fresh latents z (in ``like``'s dtype and device)."""
        shape = (batch, *(self.latent_shape if self.latent_shape is not None else like.shape[1:]))
        x_T = self.sigma_max * self._noise(shape, like)
        return self.student(x_T, torch.full((batch,), self.path.t_max, device=like.device, dtype=like.dtype))

    def _noised(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = self._times(x.shape[0], x)
        return self.path.sample(x, t, self._noise(tuple(x.shape), x)), t, t.to(x.dtype)

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, objective: Tensor, parameters: list[nn.Parameter]) -> None:
        gradients = torch.autograd.grad(objective, parameters, allow_unused=True)
        optimizer.zero_grad(set_to_none=True)
        for parameter, gradient in zip(parameters, gradients):
            parameter.grad = gradient
        optimizer.step()

    # --- the two updates ---------------------------------------------------------------------------

    def critic_step(self, real: Tensor) -> dict[str, Tensor]:
        """One update of the fake score (x0 denoising loss on detached student samples) and of the
        discriminator (non-saturating GAN loss, real data against student samples); the losses, detached."""
        real = self._check(real)
        with torch.no_grad():
            x = self.generate(real.shape[0], real)
            x_t, _, t_model = self._noised(x)
        fake_score_loss = F.mse_loss(self.fake_score(x_t, t_model), x)
        real_t, _, real_t_model = self._noised(real)
        discriminator_loss = (
            F.softplus(self.discriminator(x_t, t_model)).mean()
            + F.softplus(-self.discriminator(real_t, real_t_model)).mean()
        )
        self._step(self.fake_optimizer, fake_score_loss, self.fake_parameters)
        self._step(self.discriminator_optimizer, discriminator_loss, self.discriminator_parameters)
        return {"fake_score_loss": fake_score_loss.detach(), "discriminator_loss": discriminator_loss.detach()}

    def student_step(self, real: Tensor) -> dict[str, Tensor]:
        """One student update on the loss ``FDistillLoss(...) + gan_weight_gen * mean softplus(-d(x_t))``; ``real``
        gives the batch size, dtype and device. Returns the losses and the weights' min, mean and max, detached."""
        real = self._check(real)
        x = self.generate(real.shape[0], real)
        x_t, t, t_model = self._noised(x)
        with torch.no_grad():
            teacher_x0 = self.teacher(x_t, t_model)
            fake_x0 = self.fake_score(x_t, t_model)
        logits = self.discriminator(x_t, t_model)
        divergence_loss = self.loss(x, teacher_x0, fake_x0, logits, t)
        gan_loss_gen = F.softplus(-logits).mean()
        total = divergence_loss + self.gan_weight_gen * gan_loss_gen
        self._step(self.student_optimizer, total, self.student_parameters)
        h = self.loss.last_weights
        return {
            "divergence_loss": divergence_loss.detach(),
            "gan_loss_gen": gan_loss_gen.detach(),
            "h_min": h.min(),
            "h_mean": h.mean(),
            "h_max": h.max(),
        }

    def train(
        self,
        data: Tensor,
        *,
        steps: int,
        batch_size: int,
        progress: ProgressCallback | None = None,
    ) -> FDistillHistory:
        """``steps`` iterations (``fake_updates_per_student`` critic steps, then a student step), each on
        batches of ``batch_size`` rows drawn with replacement from ``data``; metrics kept on the device."""
        require_tensor(NAME, "data", data, min_dim=1, nonempty=True, what="of data samples (N, ...)")
        for name, value in (("steps", steps), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HyperparameterError(NAME, name, value, "an integer >= 1")
        require_generator(NAME, self.generator, data, "data")
        history = FDistillHistory()

        def batch() -> Tensor:
            rows = torch.randint(data.shape[0], (batch_size,), generator=self.generator, device=data.device)
            return data[rows]

        with tracker(progress, total=steps, task=NAME) as bar:
            for _ in range(steps):
                for _ in range(self.fake_updates_per_student):
                    history.append(self.critic_step(batch()))
                record = self.student_step(batch())
                history.append(record)
                if bar.active:
                    bar.update(divergence_loss=record["divergence_loss"], h_max=record["h_max"])
                else:
                    bar.update()
        return history.finish()

    def state_dict(self) -> dict[str, Any]:
        """The trained networks, the loss's ratio bins and the three optimizers, for a checkpoint."""
        return {name: getattr(self, name).state_dict() for name in _STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the teacher is the caller's)."""
        for name in _STATE:
            getattr(self, name).load_state_dict(state[name])


_STATE = (
    "student",
    "fake_score",
    "discriminator",
    "loss",
    "student_optimizer",
    "fake_optimizer",
    "discriminator_optimizer",
)
