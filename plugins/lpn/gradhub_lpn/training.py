"""Training an LPN as a denoiser, the official recipe in stages (paper Sec. 3.3 and App. D; official
``lpn/train.py`` and ``exps/laplacian/laplacian_train.ipynb``).

Paper: "What's in a Prior? Learned Proximal Networks for Inverse Problems", Zhenghan Fang, Sam Buchanan,
Jeremias Sulam, ICLR 2024, arXiv:2310.14344. Official code:
https://github.com/ZhenghanFang/learned-proximal-networks.

Each step draws fresh clean samples x, noisy inputs y = x + sigma eps (eps ~ N(0, I)), takes one Adam step
on loss(f_theta(y), x) and then projects the weights back onto the convex set (``clip_weights``, official
``wclip``). The loss is one of ``"l2"`` (sum of squares per sample, batch mean: the notebook's MSE, whose
minimiser is the posterior mean), ``"l1"`` (absolute values, mean over entries: the official ``nn.L1Loss``,
the posterior median) and ``"pm"`` (the proximal matching loss of :mod:`gradhub_lpn.loss`, the MAP as
gamma -> 0). One Adam optimizer runs through all stages, its learning rate set per stage (as in the notebook).
:func:`proximal_matching_stages` writes the official recipe: L1 pre-training, then gamma annealed by
:func:`~gradhub_lpn.loss.proximal_matching_schedule`.

``antithetic=True`` (not in the official code) pairs every drawn (x, y) with (-x, -y): for a prior and a
noise symmetric about 0 this keeps the batch symmetric, which removes the odd part of the gradient noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.progress import ProgressCallback, tracker
from gradhub_lpn.loss import proximal_matching_loss, proximal_matching_schedule
from gradhub_lpn.networks import _ProximalNetwork, potential_and_gradient

METHOD = "train_lpn"
Sampler = Callable[[int, torch.Generator], Tensor]


@dataclass(frozen=True)
class Stage:
    """``steps`` Adam steps at learning rate ``lr`` on ``loss`` (with ``gamma`` for ``"pm"``)."""

    loss: Literal["l2", "l1", "pm"]
    steps: int
    lr: float
    gamma: float | None = None

    def __post_init__(self) -> None:
        if self.loss not in ("l2", "l1", "pm"):
            raise UnsupportedInputError(METHOD, "stage loss", repr(self.loss), "one of 'l2', 'l1', 'pm'")
        _require_count("stage steps", self.steps)
        _require_positive("stage lr", self.lr)
        if self.loss == "pm":
            _require_positive("gamma", self.gamma)


def _require_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UnsupportedInputError(METHOD, name, repr(value), f"{name} must be an integer >= 1")


def _require_positive(name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise UnsupportedInputError(METHOD, name, repr(value), f"{name} must be a finite number > 0")


def proximal_matching_stages(
    pretrain_steps: int,
    steps: int,
    gamma_min: float,
    n_stages: int = 4,
    pretrain_lr: float = 1e-3,
    lr: float = 1e-4,
) -> list[Stage]:
    """The official recipe (``get_loss_hparams_and_lr``): L1 at ``pretrain_lr``, then ``steps`` proximal
    matching steps at ``lr`` with gamma from :func:`proximal_matching_schedule` (one stage per gamma).

    Official image defaults: 20 000 + 20 000 steps, lr 1e-3 then 1e-4, gamma_min = 0.08 sqrt(n), 4 stages.
    """
    stages = [Stage("l1", pretrain_steps, pretrain_lr)]
    per_stage = steps // n_stages
    for stage in range(n_stages):
        gamma = proximal_matching_schedule(stage * per_stage, steps, gamma_min, n_stages)
        length = per_stage if stage < n_stages - 1 else steps - per_stage * (n_stages - 1)
        stages.append(Stage("pm", length, lr, gamma))
    return stages


def laplace_sampler(scale: float = 1.0, dim: int = 1) -> Sampler:
    """Samples of p(x) = exp(-|x| / scale) / (2 scale) per entry, (n, dim) float64, on the generator's device."""
    _require_positive("scale", scale)
    _require_count("dim", dim)

    def sample(n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, dim, generator=generator, dtype=torch.float64, device=generator.device) - 0.5
        return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())

    return sample


def _denoising_loss(stage: Stage, prediction: Tensor, target: Tensor) -> Tensor:
    batch = prediction.shape[0]
    error = (prediction - target).reshape(batch, -1)
    if stage.loss == "l2":
        return error.square().sum(1).mean()
    if stage.loss == "l1":
        return error.abs().mean()
    return proximal_matching_loss(prediction, target, stage.gamma)


def train_lpn(
    model: _ProximalNetwork,
    sample: Sampler,
    *,
    sigma: float,
    stages: Sequence[Stage],
    batch_size: int = 2000,
    seed: int = 0,
    antithetic: bool = False,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """Train ``model`` in place as a denoiser of noise level ``sigma``; returns the loss of every step.

    ``sample(n, generator)`` draws n clean samples shaped like the model's input (on the CPU or the model's
    device); the noise is drawn from a CPU generator seeded by ``seed`` and moved, so a run is the same on
    every device. ``batch_size`` counts the samples per step (with ``antithetic``, half are drawn).
    """
    if not isinstance(model, _ProximalNetwork):
        raise UnsupportedInputError(METHOD, "model", type(model).__name__, "model must be an LPN or a ConvLPN")
    _require_positive("sigma", sigma)
    _require_count("batch_size", batch_size)
    if antithetic and batch_size % 2:
        raise UnsupportedInputError(METHOD, "batch_size", batch_size, "an even batch_size with antithetic=True")
    if not stages or not all(isinstance(stage, Stage) for stage in stages):
        raise UnsupportedInputError(METHOD, "stages", repr(stages), "stages must be a non-empty list of Stage")
    parameter = next(model.parameters())
    generator = torch.Generator(device="cpu").manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=stages[0].lr, foreach=True)
    drawn = batch_size // 2 if antithetic else batch_size
    losses: list[float] = []
    with tracker(progress, total=sum(stage.steps for stage in stages), task=METHOD) as bar:
        for stage in stages:
            for group in optimizer.param_groups:
                group["lr"] = stage.lr
            for _ in range(stage.steps):
                clean = sample(drawn, generator).to(device="cpu", dtype=parameter.dtype)
                noisy = clean + sigma * torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device="cpu")
                if antithetic:
                    clean, noisy = torch.cat([clean, -clean]), torch.cat([noisy, -noisy])
                clean, noisy = clean.to(parameter.device), noisy.to(parameter.device)
                # The batch is ours (finite, shaped for the model): f(y) without the layer's input checks.
                prediction = potential_and_gradient(model, noisy, create_graph=True)[1]
                loss = _denoising_loss(stage, prediction, clean)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                model.clip_weights()
                losses.append(loss.item())
                bar.update(loss=losses[-1], gamma=stage.gamma or 0.0)
    return losses
