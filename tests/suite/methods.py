"""Small, correct methods of every kind: the fixtures the conformance suite's own tests run.

Each method here passes every conformance check of its kind on CPU, quickly, so that a
failing check in ``broken.py`` (a copy of one of these with one convention broken) can
only be blamed on that convention. ``conftest.py`` loads this file as the module
``gradhub_suite_methods``, the name the specs' import paths use.

They are written the way a plugin writes them (plugin protocol 2): a method's spec comes
first, and the implementation binds to it, so its name is written once (``name=``) and its
defaults and bounds only in its hyperparameter model. An optimizer class sets ``spec = ...``
and the :class:`gradhub.kinds.optimizer.Optimizer` base derives its signature, defaults and
validation; functions and module classes take ``@validated(SPEC)`` with keyword-only
hyperparameters without defaults; the solver is a ``@solver`` iteration and one sampler a
``@sampler`` step. ``legacy.py`` keeps one fixture of each protocol-1 shape the core still accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import (
    Betas,
    Foreach,
    Fused,
    Hyperparameters,
    LearningRate,
    Momentum,
    NonNegative,
    Probability,
    WeightDecay,
    validated,
)
from gradhub.kernels import group_tensors
from gradhub.kinds import evaluation_mode
from gradhub.kinds.attack import AttackExample, AttackResult
from gradhub.kinds.layer import LayerExample
from gradhub.kinds.loss import LossExample, reduce
from gradhub.kinds.optimizer import ElementwiseOptimizer, Optimizer, OptimizerExample
from gradhub.kinds.probe import ProbeExample
from gradhub.kinds.sampler import SamplerCall, SampleResult, SamplerExample, sampler
from gradhub.kinds.schedule import ScheduleExample
from gradhub.kinds.solver import Iterate, SolverExample, solver
from gradhub.progress import ProgressCallback, tracker
from gradhub.specs import MethodSpec, Paper

MODULE = "gradhub_suite_methods"
"""The name ``conftest.py`` imports this file under; spec import paths start with it."""

PAPER = Paper(
    title="Fixtures for the gradhub conformance suite's own tests",
    authors=("gradhub contributors",),
    year=2025,
)


def method_spec(
    name: str, kind: str, target: str, params: type[Hyperparameters], example: str, **extra: Any
) -> MethodSpec:
    """A spec whose target and example live in this module."""
    return MethodSpec(
        name=name,
        kind=kind,
        summary=f"conformance-suite fixture: {name}",
        paper=PAPER,
        target=f"{MODULE}:{target}",
        params=params,
        example=f"{MODULE}:{example}",
        **extra,
    )


def seeded_module(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Build a module from ``seed`` without touching the global RNG the suite scrambles."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def classifier(seed: int, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A user's model mid-training: train mode, BatchNorm whose statistics a careless method would move."""
    model = seeded_module(seed, lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)))
    return model.to(device=device, dtype=dtype)


# --- optimizer: SGD with heavy-ball momentum and decoupled weight decay ----------------------


class MomentumHyperparameters(Hyperparameters):
    lr: LearningRate = 0.1
    momentum: Momentum = 0.9
    weight_decay: WeightDecay = 0.0
    foreach: Foreach = None


class FusedMomentumHyperparameters(MomentumHyperparameters):
    fused: Fused = None


MOMENTUM = method_spec(
    "suite-momentum",
    "optimizer",
    "MomentumSGD",
    MomentumHyperparameters,
    "momentum_example",
    capabilities={"supports_foreach": True, "fsdp2": {"status": "tested"}},
)
FUSED_MOMENTUM = method_spec(
    "suite-fused-momentum",
    "optimizer",
    "FusedMomentumSGD",
    FusedMomentumHyperparameters,
    "momentum_example",
    capabilities={
        "supports_foreach": True,
        "fused": "a pure-torch stand-in for a kernel (tests the fused path's check)",
        "ddp": {"status": "untested"},
        "compile": {"status": "tested"},
    },
)


def single_tensor_momentum(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: MomentumHyperparameters
) -> None:
    """The reference path, one tensor at a time: b = m b + g; w *= 1 - lr wd; w -= lr b."""
    lr, momentum, weight_decay = options.lr, options.momentum, options.weight_decay
    for param, grad, buffer in zip(params, grads, buffers):
        buffer.mul_(momentum).add_(grad)
        if weight_decay:
            param.mul_(1 - lr * weight_decay)
        # Not param.add_(buffer, alpha=-lr): after mul_ by an expression of lr, torch 2.13's Inductor
        # miscompiles it once lr is a dynamic float (compiled_step caught it; see the CHANGELOG).
        param.sub_(buffer * lr)


def multi_tensor_momentum(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: MomentumHyperparameters
) -> None:
    """The same step with ``torch._foreach_*`` ops over tensors grouped by device and dtype."""
    lr, momentum, weight_decay = options.lr, options.momentum, options.weight_decay
    for group_params, group_grads, group_buffers in group_tensors([params, grads, buffers]).values():
        torch._foreach_mul_(group_buffers, momentum)
        torch._foreach_add_(group_buffers, group_grads)
        if weight_decay:
            torch._foreach_mul_(group_params, 1 - lr * weight_decay)
        torch._foreach_add_(group_params, group_buffers, alpha=-lr)


def fused_momentum(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: FusedMomentumHyperparameters
) -> bool:
    """A stand-in "fused kernel": one pass per tensor of fused-style arithmetic.

    ``w <- w (1 - lr wd) - lr (m b + g)`` and ``b <- m b + g``: the same step as the other
    paths, arranged as a kernel would (new buffer computed once, used twice). Returns True:
    it is always available.
    """
    for param, grad, buffer in zip(params, grads, buffers):
        new_buffer = torch.add(grad, buffer, alpha=options.momentum)
        buffer.copy_(new_buffer)
        if options.weight_decay:
            param.mul_(1 - options.lr * options.weight_decay)
        param.sub_(new_buffer, alpha=options.lr)
    return True


class MomentumSGD(Optimizer):
    """SGD with momentum and a ``step`` of its own; its pieces are class attributes, for ``broken.py`` to break."""

    spec = MOMENTUM
    single_tensor_update: ClassVar[Callable[..., None]] = staticmethod(single_tensor_momentum)
    multi_tensor_update: ClassVar[Callable[..., None]] = staticmethod(multi_tensor_momentum)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.evaluate_closure(closure)
        # Sparse gradients and bad hyperparameters raise here, before any group changes.
        groups = self.parameters_with_gradients()
        options = [self.options(group) for group in self.param_groups]
        for group, params, group_options in zip(self.param_groups, groups, options):
            if params:
                self.update_group(group, params, group_options)
        return loss

    def momentum_buffer(self, param: Tensor) -> Tensor:
        state = self.state[param]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state["momentum_buffer"]

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        update = type(self).multi_tensor_update if self.use_foreach(group, params) else type(self).single_tensor_update
        update(params, [param.grad for param in params], [self.momentum_buffer(param) for param in params], options)


class FusedMomentumSGD(ElementwiseOptimizer):
    """SGD with momentum on :class:`~gradhub.kinds.optimizer.ElementwiseOptimizer`, with a fused path."""

    spec = FUSED_MOMENTUM
    state_names = ("momentum_buffer",)
    counts_steps = False
    single_tensor = staticmethod(single_tensor_momentum)
    multi_tensor = staticmethod(multi_tensor_momentum)
    fused_kernel: ClassVar[Callable[..., bool] | None] = staticmethod(fused_momentum)


def momentum_example(device: torch.device, dtype: torch.dtype, seed: int) -> OptimizerExample:
    """A two-layer regression network on 16 fixed points (four parameters, so two param groups split evenly)."""
    generator = torch.Generator().manual_seed(seed)
    model = seeded_module(seed, lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
    model = model.to(device=device, dtype=dtype)
    inputs = torch.randn(16, 4, generator=generator).to(device=device, dtype=dtype)
    targets = torch.sin(inputs.sum(1, keepdim=True))

    def loss() -> Tensor:
        return nn.functional.mse_loss(model(inputs), targets)

    return OptimizerExample(model=model, loss=loss, hparams={"lr": 0.05, "weight_decay": 0.01}, steps=10)


# --- layer (exact gradient): scale * tanh(linear(x)) ----------------------------------------


class ScaledTanhHyperparameters(Hyperparameters):
    in_features: int = Field(4, ge=1)
    out_features: int = Field(3, ge=1)
    scale: NonNegative = 1.0


SCALED_TANH = method_spec("suite-scaled-tanh", "layer", "ScaledTanh", ScaledTanhHyperparameters, "scaled_tanh_example")


@validated(SCALED_TANH)
class ScaledTanh(nn.Module):
    """``scale * tanh(W x + b)``."""

    def __init__(self, *, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = scale

    def forward(self, inputs: Tensor) -> Tensor:
        return self.scale * torch.tanh(self.linear(inputs))


def scaled_tanh_example(device: torch.device, dtype: torch.dtype, seed: int) -> LayerExample:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(5, 4, generator=generator).to(device=device, dtype=dtype)
    return LayerExample(inputs=(inputs,), hparams={"in_features": 4, "out_features": 3, "scale": 2.0})


# --- layer (surrogate gradient): straight-through quantisation ------------------------------


class QuantizeHyperparameters(Hyperparameters):
    levels: int = Field(4, ge=1, description="quantisation steps per unit")


STE_QUANTIZE = method_spec(
    "suite-ste-quantize",
    "layer",
    "straight_through_quantize",
    QuantizeHyperparameters,
    "quantize_example",
    capabilities={"gradient": "surrogate"},
)


@validated(STE_QUANTIZE)
def straight_through_quantize(inputs: Tensor, *, levels: int) -> Tensor:
    """Round to ``1 / levels`` in the forward pass; pass the gradient straight through (the surrogate)."""
    quantized = torch.round(inputs * levels) / levels
    return inputs + (quantized - inputs).detach()


def quantize_example(device: torch.device, dtype: torch.dtype, seed: int) -> LayerExample:
    generator = torch.Generator().manual_seed(seed)
    return LayerExample(inputs=(torch.randn(6, 3, generator=generator).to(device=device, dtype=dtype),))


# --- layer, composite: wraps a module the user brings ---------------------------------------


class ResidualHyperparameters(Hyperparameters):
    scale: float = Field(1.0, allow_inf_nan=False)


RESIDUAL = method_spec("suite-residual", "layer", "Residual", ResidualHyperparameters, "residual_example")


@validated(RESIDUAL)
class Residual(nn.Module):
    """``x + scale * inner(x)`` around the user's ``inner`` module: built as ``Residual(inner, scale=...)``."""

    def __init__(self, inner: nn.Module, *, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * self.inner(x)


def residual_example(device: torch.device, dtype: torch.dtype, seed: int) -> LayerExample:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(4, 3, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    return LayerExample(
        inputs=(inputs,), hparams={"scale": 0.5}, modules=lambda: (nn.Sequential(nn.Linear(3, 3), nn.Tanh()),)
    )


# --- loss (exact gradient): weighted squared error -------------------------------------------

Reduction = Literal["none", "mean", "sum"]


class SquaredErrorHyperparameters(Hyperparameters):
    weight: NonNegative = 1.0
    reduction: Reduction = "mean"


SQUARED_ERROR = method_spec(
    "suite-squared-error",
    "loss",
    "weighted_squared_error",
    SquaredErrorHyperparameters,
    "regression_example",
    capabilities={"reductions": ("none", "mean", "sum")},
)


@validated(SQUARED_ERROR)
def weighted_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    return reduce(weight * (prediction - target) ** 2, reduction, SQUARED_ERROR.name)


def regression_example(device: torch.device, dtype: torch.dtype, seed: int) -> LossExample:
    generator = torch.Generator().manual_seed(seed)
    prediction, target = torch.randn(2, 6, 3, generator=generator).to(device=device, dtype=dtype)
    return LossExample(inputs=(prediction, target), hparams={"weight": 0.5})


# --- loss (model form): denoising score matching over a model ---------------------------


class DenoisingHyperparameters(Hyperparameters):
    sigma: float = Field(0.5, gt=0, allow_inf_nan=False, description="noise level")
    reduction: Reduction = "mean"


DENOISING = method_spec(
    "suite-denoising",
    "loss",
    "denoising_loss",
    DenoisingHyperparameters,
    "denoising_example",
    capabilities={"form": "model", "reductions": ("none", "mean", "sum")},
)


@validated(DENOISING)
def denoising_loss(
    model: nn.Module, x: Tensor, generator: torch.Generator | None = None, *, sigma: float, reduction: str
) -> Tensor:
    """``|| model(x + sigma z) - x ||^2`` per sample, z from ``generator``: a model-form loss."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return reduce((model(x + sigma * noise) - x).square().sum(1), reduction, DENOISING.name)


def denoising_example(device: torch.device, dtype: torch.dtype, seed: int) -> LossExample:
    model = seeded_module(seed, lambda: nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)))
    generator = torch.Generator().manual_seed(seed)
    data = torch.randn(6, 3, generator=generator).to(device=device, dtype=dtype)
    return LossExample(inputs=(model.to(device=device, dtype=dtype), data), hparams={"sigma": 0.3})


# --- loss (surrogate gradient): 0-1 loss with a sigmoid surrogate ----------------------------


class ZeroOneHyperparameters(Hyperparameters):
    temperature: float = Field(0.5, gt=0, description="width of the sigmoid surrogate")
    reduction: Reduction = "mean"


ZERO_ONE = method_spec(
    "suite-zero-one",
    "loss",
    "smoothed_zero_one",
    ZeroOneHyperparameters,
    "classification_example",
    capabilities={"gradient": "surrogate", "reductions": ("none", "mean", "sum")},
)


@validated(ZERO_ONE)
def smoothed_zero_one(scores: Tensor, labels: Tensor, *, temperature: float, reduction: str) -> Tensor:
    """Misclassification (labels are +-1) in the forward pass; the sigmoid's gradient in the backward."""
    margins = scores * labels
    surrogate = torch.sigmoid(-margins / temperature)
    errors = (margins <= 0).to(scores.dtype) + (surrogate - surrogate.detach())
    return reduce(errors, reduction, ZERO_ONE.name)


def classification_example(device: torch.device, dtype: torch.dtype, seed: int) -> LossExample:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(8, generator=generator).to(device=device, dtype=dtype)
    labels = (torch.randint(0, 2, (8,), generator=generator) * 2 - 1).to(device=device, dtype=dtype)
    return LossExample(inputs=(scores, labels))


# --- solver: conjugate gradient ----------------------------------------------------------------


class ConjugateGradientHyperparameters(Hyperparameters):
    tol: NonNegative = 1e-8
    max_iter: int = Field(100, ge=1)


CONJUGATE_GRADIENT = method_spec(
    "suite-cg", "solver", "conjugate_gradient", ConjugateGradientHyperparameters, "linear_system_example"
)


def conjugate_gradient_iterates(matrix: Tensor, rhs: Tensor, start: Tensor | None = None) -> Iterator[Iterate]:
    """Hestenes-Stiefel CG: the state before the first iteration, then one per iteration, without end.

    Whoever drives it stops it (the ``@solver`` frame: at ``residual <= tol`` or after ``max_iter``).
    """
    solution = torch.zeros_like(rhs) if start is None else start
    residual = rhs - matrix @ solution
    direction = residual.clone()
    squared_norm = residual @ residual
    yield Iterate(solution, squared_norm.sqrt())
    while True:
        product = matrix @ direction
        step = squared_norm / (direction @ product)
        solution = solution + step * direction
        residual = residual - step * product
        new_squared_norm = residual @ residual
        direction = residual + (new_squared_norm / squared_norm) * direction
        squared_norm = new_squared_norm
        yield Iterate(solution, squared_norm.sqrt())


@solver(CONJUGATE_GRADIENT)
def conjugate_gradient(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> Iterator[Iterate]:
    """Solve ``matrix @ x = rhs`` for a symmetric positive definite matrix."""
    yield from conjugate_gradient_iterates(matrix, rhs)


def linear_system_example(device: torch.device, dtype: torch.dtype, seed: int) -> SolverExample:
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(8, 8, generator=generator, dtype=torch.float64)
    matrix = (factor @ factor.T / 8 + torch.eye(8, dtype=torch.float64)).to(device=device, dtype=dtype)
    rhs = torch.randn(8, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-4

    def residual(solution: Tensor) -> float:
        return torch.linalg.vector_norm(rhs - matrix @ solution).item()

    return SolverExample(args=(matrix, rhs), hparams={"tol": tol}, residual=residual)


# --- attack: projected gradient descent in the L-infinity ball -------------------------------


class ProjectedGradientHyperparameters(Hyperparameters):
    eps: NonNegative = 0.1
    step_size: NonNegative = 0.05
    max_iter: int = Field(3, ge=1)


PGD = method_spec(
    "suite-pgd",
    "attack",
    "projected_gradient_descent",
    ProjectedGradientHyperparameters,
    "attack_example",
    capabilities={"perturbation_norm": "linf"},
)


def random_start(inputs: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    noise = torch.rand(inputs.shape, generator=generator, device=inputs.device, dtype=inputs.dtype)
    return (2 * noise - 1) * eps


@validated(PGD)
def projected_gradient_descent(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    eps: float,
    step_size: float,
    max_iter: int,
    progress: ProgressCallback | None = None,
) -> AttackResult:
    """Maximise the cross-entropy within ``eps`` of ``inputs`` (Madry et al.'s PGD with a random start)."""
    perturbation = random_start(inputs, eps, generator)
    losses = []
    with evaluation_mode(model), tracker(progress, total=max_iter, task=PGD.name) as bar:
        for _ in range(max_iter):
            bar.update()
            perturbation.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(inputs + perturbation), labels)
            # autograd.grad, not backward(): the model's .grad must stay as the user left it.
            (gradient,) = torch.autograd.grad(loss, perturbation)
            perturbation = (perturbation.detach() + step_size * gradient.sign()).clamp(-eps, eps)
            losses.append(loss.detach())
    return AttackResult(output=(inputs + perturbation).detach(), iterations=max_iter, history=torch.stack(losses))


def attack_example(device: torch.device, dtype: torch.dtype, seed: int) -> AttackExample:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(6, 4, generator=generator).to(device=device, dtype=dtype)
    labels = torch.randint(0, 3, (6,), generator=generator).to(device)
    return AttackExample(
        model=classifier(seed, device, dtype),
        args=(inputs, labels),
        hparams={"eps": 0.1, "step_size": 0.05, "max_iter": 3},
        reference=inputs,
    )


# --- sampler: unadjusted Langevin dynamics -----------------------------------------------------


class LangevinHyperparameters(Hyperparameters):
    steps: int = Field(8, ge=1)
    step_size: NonNegative = 0.1


LANGEVIN = method_spec("suite-langevin", "sampler", "langevin_dynamics", LangevinHyperparameters, "langevin_example")


class GaussianScore(nn.Module):
    """The score of a standard normal shifted to ``mean``: what the samplers evaluate (it ignores the time)."""

    def __init__(self, mean: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)

    def forward(self, samples: Tensor, t: Tensor | None = None) -> Tensor:
        return self.mean - samples


def langevin_noise(samples: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(samples.shape, generator=generator, device=samples.device, dtype=samples.dtype)


@validated(LANGEVIN)
def langevin_dynamics(
    score: Callable[[Tensor], Tensor],
    start: Tensor,
    generator: torch.Generator | None = None,
    *,
    steps: int,
    step_size: float,
    progress: ProgressCallback | None = None,
) -> SampleResult:
    """``x <- x + h score(x) + sqrt(2h) z`` from ``start``: one model evaluation per step."""
    samples = start.clone()
    noise_scale = math.sqrt(2 * step_size)
    with torch.no_grad(), tracker(progress, total=steps, task=LANGEVIN.name) as bar:
        for _ in range(steps):
            bar.update()
            samples = samples + step_size * score(samples) + noise_scale * langevin_noise(samples, generator)
    return SampleResult(samples=samples, evaluations=steps)


def langevin_example(device: torch.device, dtype: torch.dtype, seed: int) -> SamplerExample:
    mean = torch.tensor([1.0, -2.0], device=device, dtype=dtype)
    return SamplerExample(
        model=GaussianScore(mean), args=(torch.zeros(16, 2, device=device, dtype=dtype),), hparams={"steps": 6}
    )


# --- sampler (deterministic, on the sampler frame): Euler steps of the gradient flow ---------


class GradientFlowHyperparameters(Hyperparameters):
    rate: float = Field(1.0, gt=0, allow_inf_nan=False, description="the flow's speed: dx/dt = -rate * score")


GRADIENT_FLOW = method_spec(
    "suite-gradient-flow",
    "sampler",
    "gradient_flow",
    GradientFlowHyperparameters,
    "gradient_flow_example",
    capabilities={"stochastic": False},
)


@sampler(GRADIENT_FLOW, grid="ts")
def gradient_flow(call: SamplerCall, x: Tensor, t: float, t_next: float, *, rate: float) -> Tensor:
    """One Euler step from ``t`` down to ``t_next`` towards the mode: deterministic, so it draws no noise."""
    return x + rate * (t - t_next) * call.model(x, t)


def gradient_flow_example(device: torch.device, dtype: torch.dtype, seed: int) -> SamplerExample:
    """Five steps of 0.1 from a random start (``ts`` from 0.5 down to 0)."""
    mean = torch.tensor([1.0, -2.0], device=device, dtype=dtype)
    start = torch.randn(8, 2, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=dtype)
    ts = torch.linspace(0.5, 0.0, 6, dtype=torch.float64)
    return SamplerExample(model=GaussianScore(mean), args=(start, ts), hparams={"rate": 1.0})


# --- schedule: linear warm-up, then linear decay to a floor ----------------------------------


class WarmupDecayHyperparameters(Hyperparameters):
    warmup_steps: int = Field(5, ge=0)
    total_steps: int = Field(40, ge=1)
    final_ratio: Probability = Field(0.0, description="the rate after total_steps, relative to the base rate")


WARMUP_DECAY = method_spec(
    "suite-warmup-decay", "schedule", "WarmupLinearDecay", WarmupDecayHyperparameters, "warmup_decay_example"
)


@validated(WARMUP_DECAY)
class WarmupLinearDecay(torch.optim.lr_scheduler.LRScheduler):
    """Rates rise linearly for ``warmup_steps``, then fall linearly to ``final_ratio`` at ``total_steps``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        last_epoch: int = -1,
        *,
        warmup_steps: int,
        total_steps: int,
        final_ratio: float,
    ) -> None:
        self.warmup_steps, self.total_steps, self.final_ratio = warmup_steps, total_steps, final_ratio
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 1 - (1 - self.final_ratio) * progress

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]


def warmup_decay_example(device: torch.device, dtype: torch.dtype, seed: int) -> ScheduleExample:
    """More steps than total_steps, so the floor after the decay is part of the example."""
    return ScheduleExample(hparams={"warmup_steps": 5, "total_steps": 30, "final_ratio": 0.1}, steps=40)


# --- schedule, other forms: a factory, a function of progress, a noise schedule --------------


class CosineDecayHyperparameters(Hyperparameters):
    total_steps: int = Field(40, ge=1)


COSINE_FACTORY = method_spec(
    "suite-cosine-factory",
    "schedule",
    "cosine_decay",
    CosineDecayHyperparameters,
    "cosine_factory_example",
    capabilities={"form": "factory"},
)


@validated(COSINE_FACTORY)
def cosine_decay(optimizer: torch.optim.Optimizer, *, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A factory: half a cosine from the base rate to zero over ``total_steps``, then zero."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )


def cosine_factory_example(device: torch.device, dtype: torch.dtype, seed: int) -> ScheduleExample:
    return ScheduleExample(hparams={"total_steps": 30}, steps=40)


class RampHyperparameters(Hyperparameters):
    gamma: float = Field(10.0, gt=0, allow_inf_nan=False)


SIGMOID_RAMP = method_spec(
    "suite-sigmoid-ramp",
    "schedule",
    "sigmoid_ramp",
    RampHyperparameters,
    "ramp_example",
    capabilities={"form": "progress"},
)


@validated(SIGMOID_RAMP)
def sigmoid_ramp(p: float, *, gamma: float) -> float:
    """A function of progress p in [0, 1]: 2 / (1 + exp(-gamma p)) - 1, rising from 0 towards 1."""
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def ramp_example(device: torch.device, dtype: torch.dtype, seed: int) -> ScheduleExample:
    return ScheduleExample(hparams={"gamma": 5.0}, steps=21)


class CosinePathHyperparameters(Hyperparameters):
    offset: float = Field(0.008, ge=0, le=0.5, allow_inf_nan=False)


COSINE_PATH = method_spec(
    "suite-cosine-path",
    "schedule",
    "CosinePath",
    CosinePathHyperparameters,
    "cosine_path_example",
    capabilities={"form": "noise"},
)


@validated(COSINE_PATH)
class CosinePath:
    """A variance-preserving noise schedule: alpha = cos(pi/2 f(t)), sigma = sin(pi/2 f(t))."""

    t_min = 0.0
    t_max = 1.0

    def __init__(self, *, offset: float) -> None:
        self.offset = offset

    def angle(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * (t + self.offset) / (1 + self.offset)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(self.angle(t)).clamp_min(0)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sin(self.angle(t))


def cosine_path_example(device: torch.device, dtype: torch.dtype, seed: int) -> ScheduleExample:
    return ScheduleExample(hparams={"offset": 0.01}, steps=32)


# --- probe: loss increase along random weight directions (sharpness) -------------------------


class SharpnessHyperparameters(Hyperparameters):
    radius: NonNegative = 0.05
    directions: int = Field(4, ge=1)


SHARPNESS = method_spec(
    "suite-sharpness", "probe", "random_direction_sharpness", SharpnessHyperparameters, "sharpness_example"
)


def random_direction(
    parameters: dict[str, Tensor], radius: float, generator: torch.Generator | None
) -> dict[str, Tensor]:
    """A direction of norm ``radius`` over all parameters together."""
    noise = {
        name: torch.randn(value.shape, generator=generator, device=value.device, dtype=value.dtype)
        for name, value in parameters.items()
    }
    norm = torch.sqrt(sum((value**2).sum() for value in noise.values()))
    return {name: value * (radius / norm) for name, value in noise.items()}


@validated(SHARPNESS)
def random_direction_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
    progress: ProgressCallback | None = None,
) -> dict[str, Tensor]:
    """Mean loss increase when the weights move ``radius`` along random directions.

    The perturbed weights go through ``torch.func.functional_call``, so the model's own
    parameters are never written to; eval mode keeps BatchNorm's statistics still.
    """
    parameters = {name: value.detach() for name, value in model.named_parameters()}
    with evaluation_mode(model), torch.no_grad():
        base = nn.functional.cross_entropy(model(inputs), labels)
        increases = []
        bar = tracker(progress, total=directions, task=SHARPNESS.name)
        for _ in range(directions):
            bar.update()
            direction = random_direction(parameters, radius, generator)
            moved = {name: value + direction[name] for name, value in parameters.items()}
            loss = nn.functional.cross_entropy(torch.func.functional_call(model, moved, (inputs,)), labels)
            increases.append(loss - base)
        bar.close()
    return {"loss": base, "sharpness": torch.stack(increases).mean()}


def sharpness_example(device: torch.device, dtype: torch.dtype, seed: int) -> ProbeExample:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(6, 4, generator=generator).to(device=device, dtype=dtype)
    labels = torch.randint(0, 3, (6,), generator=generator).to(device)
    return ProbeExample(model=classifier(seed, device, dtype), args=(inputs, labels), hparams={"directions": 3})


# --- probe (recorder): the gradient norm of every training step -----------------------------


class GradientNormHyperparameters(Hyperparameters):
    order: float = Field(2.0, ge=1, allow_inf_nan=False, description="the norm's order")


GRADIENT_NORM = method_spec(
    "suite-gradient-norm",
    "probe",
    "GradientNormRecorder",
    GradientNormHyperparameters,
    "gradient_norm_example",
    capabilities={"form": "recorder"},
)


@validated(GRADIENT_NORM)
class GradientNormRecorder:
    """Records ``||g_t||`` over all parameters at each step, kept on the device (no host sync)."""

    def __init__(self, model: nn.Module, *, order: float) -> None:
        self.order = order
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.history: list[Tensor] = []

    def record(self) -> Tensor:
        norms = [torch.linalg.vector_norm(p.grad, self.order) for p in self.parameters if p.grad is not None]
        value = torch.linalg.vector_norm(torch.stack(norms), self.order)
        self.history.append(value.detach())
        return value

    def state_dict(self) -> dict[str, Any]:
        return {"history": torch.stack(self.history) if self.history else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"].unbind())


def gradient_norm_example(device: torch.device, dtype: torch.dtype, seed: int) -> ProbeExample:
    model = seeded_module(seed, lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)))
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(10, 4, generator=generator).to(device=device, dtype=dtype)
    targets = torch.randn(10, 2, generator=generator).to(device=device, dtype=dtype)

    def loss_fn(model: nn.Module) -> Tensor:
        return nn.functional.mse_loss(model(inputs), targets)

    return ProbeExample(model=model.to(device=device, dtype=dtype), args=(loss_fn,), hparams={"order": 2.0}, steps=6)


# --- a correct method the suite mis-judges (test_problems.py) ---------------------------------

CLOSURE_MOMENTUM = method_spec(
    "suite-closure-momentum",
    "optimizer",
    "ClosureMomentumSGD",
    MomentumHyperparameters,
    "momentum_example",
    capabilities={"supports_foreach": True, "requires_closure": True},
)
"""Correct, but param_groups_independent once failed it: see test_problems.py."""


class ClosureMomentumSGD(MomentumSGD):
    """MomentumSGD that insists on a closure, as line-search or SAM-style optimizers do."""

    spec = CLOSURE_MOMENTUM

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise UnsupportedInputError(
                self.method, "step() without a closure", None, "pass a closure that re-evaluates the loss"
            )
        return super().step(closure)


class LionHyperparameters(Hyperparameters):
    lr: LearningRate = 1e-3
    betas: Betas = (0.9, 0.99)
    weight_decay: WeightDecay = 0.0
    foreach: Foreach = None


LION = method_spec(
    "suite-lion",
    "optimizer",
    "Lion",
    LionHyperparameters,
    "lion_example",
    capabilities={"supports_foreach": True, "ddp": {"status": "untested"}},
)


def single_tensor_lion(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], options: LionHyperparameters
) -> None:
    """Lion (Chen et al. 2023, Algorithm 2): w -= lr (sign(b1 m + (1 - b1) g) + wd w); m = b2 m + (1 - b2) g."""
    (beta1, beta2), lr = options.betas, options.lr
    for param, grad, exp_avg in zip(params, grads, exp_avgs):
        param.mul_(1 - lr * options.weight_decay).add_(torch.lerp(grad, exp_avg, beta1).sign_(), alpha=-lr)
        exp_avg.lerp_(grad, 1 - beta2)


def multi_tensor_lion(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], options: LionHyperparameters
) -> None:
    (beta1, beta2), lr = options.betas, options.lr
    torch._foreach_mul_(params, 1 - lr * options.weight_decay)
    torch._foreach_add_(params, torch._foreach_sign(torch._foreach_lerp(grads, exp_avgs, beta1)), alpha=-lr)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta2)


class Lion(ElementwiseOptimizer):
    """A third-party optimizer as CONTRIBUTING.md shows it; ``broken.py`` plants Lion bugs in copies of it."""

    spec = LION
    state_names = ("exp_avg",)
    counts_steps = False
    single_tensor = staticmethod(single_tensor_lion)
    multi_tensor = staticmethod(multi_tensor_lion)


def lion_example(device: torch.device, dtype: torch.dtype, seed: int) -> OptimizerExample:
    """The momentum example's network, with weight decay on (so a Lion that forgot it is seen)."""
    example = momentum_example(device, dtype, seed)
    return OptimizerExample(
        model=example.model, loss=example.loss, hparams={"lr": 1e-2, "weight_decay": 0.1}, steps=example.steps
    )


GOOD_METHODS: tuple[MethodSpec, ...] = (
    MOMENTUM,
    LION,
    FUSED_MOMENTUM,
    SCALED_TANH,
    STE_QUANTIZE,
    RESIDUAL,
    SQUARED_ERROR,
    ZERO_ONE,
    DENOISING,
    CONJUGATE_GRADIENT,
    PGD,
    LANGEVIN,
    GRADIENT_FLOW,
    WARMUP_DECAY,
    COSINE_FACTORY,
    SIGMOID_RAMP,
    COSINE_PATH,
    SHARPNESS,
    GRADIENT_NORM,
)
"""One correct method per kind, plus a surrogate-gradient layer and loss (gradient_flows applies only to those)."""
