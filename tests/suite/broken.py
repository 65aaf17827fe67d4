"""Deliberately broken variants of the good methods: each breaks one convention a check enforces.

Every :class:`BrokenVariant` is a copy of a method in ``methods.py`` with one realistic
bug (a sign error, a forgotten ``.detach()``, state kept outside ``state_dict``...) and
names the check that must catch it, a fragment of the message that shows the check
caught *that* bug, and the other checks the same bug also trips (``collateral``). A
variant whose target is unusable as a whole (the wrong type) says so with
``collateral=None``. ``conftest.py`` loads this file as ``gradhub_suite_broken``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from gradhub_suite_methods import (
    CONJUGATE_GRADIENT,
    COSINE_FACTORY,
    COSINE_PATH,
    DENOISING,
    FUSED_MOMENTUM,
    GRADIENT_FLOW,
    GRADIENT_NORM,
    LANGEVIN,
    MOMENTUM,
    PGD,
    RESIDUAL,
    SCALED_TANH,
    SHARPNESS,
    SIGMOID_RAMP,
    SQUARED_ERROR,
    STE_QUANTIZE,
    WARMUP_DECAY,
    ZERO_ONE,
    ConjugateGradientHyperparameters,
    CosineDecayHyperparameters,
    CosinePath,
    DenoisingHyperparameters,
    FusedMomentumSGD,
    GradientFlowHyperparameters,
    GradientNormRecorder,
    LangevinHyperparameters,
    MomentumSGD,
    ProjectedGradientHyperparameters,
    QuantizeHyperparameters,
    RampHyperparameters,
    Residual,
    ScaledTanh,
    SharpnessHyperparameters,
    SquaredErrorHyperparameters,
    WarmupLinearDecay,
    ZeroOneHyperparameters,
    conjugate_gradient_iterations,
    evaluation_mode,
    fused_momentum,
    gradient_flow,
    langevin_dynamics,
    langevin_noise,
    multi_tensor_momentum,
    projected_gradient_descent,
    random_direction,
    random_direction_sharpness,
    random_start,
    single_tensor_momentum,
)
from pydantic import Field
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import Hyperparameters, validate_hyperparameters, validated
from gradhub.kernels.native import KernelUnavailableWarning
from gradhub.kinds import KINDS
from gradhub.kinds.attack import AttackResult
from gradhub.kinds.loss import reduce
from gradhub.kinds.sampler import SampleResult
from gradhub.kinds.solver import SolverResult
from gradhub.progress import ProgressEvent
from gradhub.specs import MethodSpec

MODULE = "gradhub_suite_broken"
METHODS = "gradhub_suite_methods"


@dataclass(frozen=True)
class BrokenVariant:
    """A good method with one convention broken, and the check that must catch it."""

    spec: MethodSpec
    breaks: str
    """The id of the check that must fail."""
    message: str
    """A fragment of that check's failure message: proof it failed for this bug, not another."""
    collateral: frozenset[str] | None
    """The other checks the same bug fails; ``None`` when the method is unusable as a whole."""
    requires: str | None = None
    """A device the check needs (``"cuda"`` for ``devices_agree``), or ``None``."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind.value


DISTRIBUTED_CHECKS = ("ddp_matches_single_process", "fsdp2_matches_single_process")


def variant(
    good: MethodSpec,
    name: str,
    breaks: str,
    message: str,
    *,
    target: str | None = None,
    collateral: Iterable[str] | None = (),
    requires: str | None = None,
    **spec_fields: Any,
) -> BrokenVariant:
    """``good``'s spec renamed, with ``target`` (an attribute of this module, or a full import path) swapped in.

    An optimizer variant that breaks a single-process convention declares DDP and FSDP2
    untested: spawning processes for it would only repeat its bug at a cost of seconds.
    """
    fields = {**good.model_dump(), "name": name, **spec_fields}
    if good.kind.value == "optimizer" and breaks not in DISTRIBUTED_CHECKS and "capabilities" not in spec_fields:
        fields["capabilities"] = {
            **fields["capabilities"],
            "ddp": {"status": "untested"},
            "fsdp2": {"status": "untested"},
        }
    if target is not None:
        fields["target"] = target if ":" in target else f"{MODULE}:{target}"
    return BrokenVariant(
        MethodSpec.model_validate(fields),
        breaks,
        message,
        None if collateral is None else frozenset(collateral),
        requires,
    )


def with_expected_failures(spec: MethodSpec, failures: dict[str, str]) -> MethodSpec:
    """A copy of ``spec`` (specs are frozen) declaring ``failures`` as expected."""
    return MethodSpec.model_validate({**spec.model_dump(), "expected_failures": failures})


def with_capabilities(good: MethodSpec, **changes: Any) -> dict[str, Any]:
    return {**good.capabilities.model_dump(), **changes}


def on_cuda(tensor: Tensor) -> bool:
    return tensor.device.type == "cuda"


# === optimizer ================================================================================


class LenientHyperparameters(Hyperparameters):
    """A stale copy of the spec's model: the bounds were never written here."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    foreach: bool | None = None


class MomentumVariant(MomentumSGD):
    """Base of the broken optimizers: gives each its own ``__init__``, so its errors name it.

    :class:`gradhub.kinds.optimizer.Optimizer` checks constructor keywords only in an
    ``__init__`` a class defines itself, and names *that* class's ``method``; an inherited
    ``__init__`` would name "suite-momentum" (a problem in the base class, demonstrated in
    test_problems.py). Declaring one per subclass keeps each variant broken in one way only.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        inherited = MomentumSGD.__init__

        def __init__(self: MomentumSGD, *args: Any, **kwargs: Any) -> None:
            inherited(self, *args, **kwargs)

        __init__.__signature__ = inspect.signature(inherited)  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]
        super().__init_subclass__(**kwargs)


class ForeignExpectedFailureSGD(MomentumVariant):
    """The good optimizer under the name of a spec whose expected_failures were copied from a solver."""

    method = "suite-momentum-foreign-xfail"


class ClaimsClosureSGD(MomentumVariant):
    """The good optimizer under the name of a spec that wrongly declares requires_closure."""

    method = "suite-momentum-claims-closure"


class LenientMomentumSGD(MomentumVariant):
    """Validates against a model without bounds: lr=-1 gets through."""

    method = "suite-momentum-lenient"
    hyperparameters = LenientHyperparameters


class CopiedNameMomentumSGD(MomentumSGD):
    """A subclass that never set ``method``: its errors name another method (suite-momentum)."""


class NoisyMomentumSGD(MomentumVariant):
    """Gradient noise drawn from the global RNG instead of a seeded generator."""

    method = "suite-momentum-noisy"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for param in params:
            param.grad.add_(torch.randn_like(param.grad), alpha=1e-3)
        super().update_group(group, params)


def _ascending(update: Callable[..., None]) -> Callable[..., None]:
    def ascend(*args: Any, lr: float, **kwargs: Any) -> None:
        update(*args, lr=-lr, **kwargs)  # the sign error: a step along the gradient

    return ascend


class AscendingMomentumSGD(MomentumVariant):
    method = "suite-momentum-ascends"
    single_tensor_update = staticmethod(_ascending(single_tensor_momentum))
    multi_tensor_update = staticmethod(_ascending(multi_tensor_momentum))


class ClosureLossDroppedSGD(MomentumVariant):
    """Evaluates the closure but returns None instead of its loss."""

    method = "suite-momentum-drops-loss"

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        super().step(closure)
        return None


def multi_tensor_momentum_without_decay(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], *, lr: float, momentum: float, weight_decay: float
) -> None:
    """The multi-tensor path as first written: weight decay forgotten."""
    torch._foreach_mul_(buffers, momentum)
    torch._foreach_add_(buffers, grads)
    torch._foreach_add_(params, buffers, alpha=-lr)


class ForeachWithoutDecaySGD(MomentumVariant):
    method = "suite-momentum-foreach-differs"
    multi_tensor_update = staticmethod(multi_tensor_momentum_without_decay)


def fused_momentum_without_decay(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], *, lr: float, momentum: float, weight_decay: float
) -> bool:
    return fused_momentum(params, grads, buffers, lr=lr, momentum=momentum, weight_decay=0.0)


class FusedWithoutDecaySGD(FusedMomentumSGD):
    """Its fused kernel forgets the weight decay."""

    method = "suite-fused-momentum-no-decay"
    fused_kernel = staticmethod(fused_momentum_without_decay)


def unavailable_kernel(*args: Any, **kwargs: Any) -> bool:
    warnings.warn("suite: the kernel could not be compiled here", KernelUnavailableWarning, stacklevel=2)
    return False


class UnavailableFusedSGD(FusedMomentumSGD):
    """Its kernel never loads: fused=True silently runs the multi-tensor path (a warning says so)."""

    method = "suite-fused-momentum-unavailable"
    fused_kernel = staticmethod(unavailable_kernel)


class FirstGroupLrSGD(MomentumVariant):
    """Reads the learning rate of the first param group for every group."""

    method = "suite-momentum-one-lr"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        super().update_group({**group, "lr": self.param_groups[0]["lr"]}, params)


class DecayEverythingSGD(MomentumVariant):
    """Applies weight decay to every parameter of the group, with a gradient or not."""

    method = "suite-momentum-decays-unused"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        super().update_group(group, params)
        for param in group["params"]:
            if param.grad is None:
                param.mul_(1 - group["lr"] * group["weight_decay"])


class EagerStateSGD(MomentumVariant):
    """Creates a momentum buffer for every parameter of the group, used or not."""

    method = "suite-momentum-eager-state"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for param in group["params"]:
            self.momentum_buffer(param)
        super().update_group(group, params)


class StateDroppingSGD(MomentumVariant):
    """state_dict() leaves the momentum buffers out (to keep checkpoints small)."""

    method = "suite-momentum-drops-state"

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "state": {}}


class SideStateSGD(MomentumVariant):
    """Keeps momentum buffers in its own dict, which state_dict() knows nothing about."""

    method = "suite-momentum-side-state"

    def momentum_buffer(self, param: Tensor) -> Tensor:
        buffers: dict[int, Tensor] = self.__dict__.setdefault("buffers_by_id", {})
        if id(param) not in buffers:
            buffers[id(param)] = torch.zeros_like(param)
        return buffers[id(param)]


class Float64StateSGD(MomentumVariant):
    """Keeps momentum in float64 whatever the parameter's dtype."""

    method = "suite-momentum-float64-state"

    def momentum_buffer(self, param: Tensor) -> Tensor:
        state = self.state[param]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param, dtype=torch.float64)
        return state["momentum_buffer"]


class MetaStateSGD(MomentumVariant):
    """Reserves a second-moment buffer on the meta device (allocated 'later') and leaves it there."""

    method = "suite-momentum-meta-state"

    def momentum_buffer(self, param: Tensor) -> Tensor:
        self.state[param].setdefault("second_moment", torch.empty_like(param, device="meta"))
        return super().momentum_buffer(param)


class RebindingSGD(MomentumVariant):
    """Assigns new tensors to ``param.data`` instead of updating in place."""

    method = "suite-momentum-rebinds"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for param in params:
            buffer = self.momentum_buffer(param)
            buffer.mul_(group["momentum"]).add_(param.grad)
            param.data = param.data * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * buffer


class SparseAcceptingSGD(MomentumVariant):
    """Never looks at the gradients' layout: sparse gradients go through."""

    method = "suite-momentum-accepts-sparse"

    def _parameters_with_gradients(self) -> list[list[Tensor]]:
        return [[param for param in group["params"] if param.grad is not None] for group in self.param_groups]


class LateSparseCheckSGD(SparseAcceptingSGD):
    """Rejects a sparse gradient only when it reaches it, after updating the parameters before it."""

    method = "suite-momentum-late-sparse-check"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for index, param in enumerate(params):
            if param.grad.is_sparse:
                raise UnsupportedInputError(self.method, f"sparse gradient (parameter {index})", "sparse", "dense")
            super().update_group(group, [param])


class CudaTunedSGD(MomentumVariant):
    """A learning rate 'tuned' per device: CUDA runs take a slightly larger step."""

    method = "suite-momentum-device-tuned"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        factor = 1.01 if on_cuda(params[0]) else 1.0
        super().update_group({**group, "lr": group["lr"] * factor}, params)


class RankDependentSGD(MomentumSGD):
    """Reads its process's rank: under DDP the replicas take different steps and drift apart."""

    method = "suite-momentum-rank"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        super().update_group({**group, "lr": group["lr"] * (1 + rank)}, params)


class LocalNormSGD(MomentumSGD):
    """Normalises each gradient by the norm of what it holds locally: under FSDP2, a shard's norm."""

    method = "suite-momentum-local-norm"

    def update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for param in params:
            local = param.grad.to_local() if hasattr(param.grad, "to_local") else param.grad
            param.grad.mul_(1.0 / (local.norm().item() + 1e-12))
        super().update_group(group, params)


OPTIMIZER_VARIANTS = [
    variant(
        MOMENTUM,
        "suite-momentum-rank",
        "ddp_matches_single_process",
        "differ from rank 0's",
        target="RankDependentSGD",
        collateral={"fsdp2_matches_single_process"},
    ),
    variant(
        MOMENTUM,
        "suite-momentum-local-norm",
        "fsdp2_matches_single_process",
        "differs from a one-process run over the same global batch",
        target="LocalNormSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-function-target",
        "spec_valid",
        "target must be a torch.optim.Optimizer subclass",
        target=f"{METHODS}:single_tensor_momentum",
        collateral=None,
    ),
    variant(
        MOMENTUM,
        "suite-momentum-foreign-xfail",
        "spec_valid",
        "expected_failures names 'converges_within_tol', which is not",
        target="ForeignExpectedFailureSGD",
        expected_failures={"converges_within_tol": "copied from a solver's spec"},
    ),
    variant(
        MOMENTUM,
        "suite-momentum-lenient",
        "hyperparameters_validated",
        "lr=-1 was accepted",
        target="LenientMomentumSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-copied-name",
        "hyperparameters_validated",
        "does not name the method",
        target="CopiedNameMomentumSGD",
        collateral={"sparse_gradients_rejected"},  # the sparse-gradient error names the other method too
    ),
    variant(
        MOMENTUM,
        "suite-momentum-noisy",
        "deterministic",
        "two runs from the same seed",
        target="NoisyMomentumSGD",
        collateral={"foreach_matches_single", "param_groups_independent", "resume_exact"},
    ),
    variant(
        MOMENTUM, "suite-momentum-ascends", "loss_decreases", "loss did not go down", target="AscendingMomentumSGD"
    ),
    variant(
        MOMENTUM,
        "suite-momentum-drops-loss",
        "step_with_closure",
        "returned None, not the loss the closure returned",
        target="ClosureLossDroppedSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-claims-closure",
        "step_with_closure",
        "declares requires_closure, but step() without a closure did not raise",
        target="ClaimsClosureSGD",
        capabilities=with_capabilities(MOMENTUM, requires_closure=True),
    ),
    variant(
        MOMENTUM,
        "suite-momentum-foreach-differs",
        "foreach_matches_single",
        "foreach=True vs foreach=False",
        target="ForeachWithoutDecaySGD",
    ),
    variant(
        FUSED_MOMENTUM,
        "suite-fused-momentum-no-decay",
        "fused_matches_single",
        "fused=True vs foreach=False",
        target="FusedWithoutDecaySGD",
    ),
    variant(
        FUSED_MOMENTUM,
        "suite-fused-momentum-unavailable",
        "fused_matches_single",
        "fused=True did not run its fused kernel",
        target="UnavailableFusedSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-one-lr",
        "param_groups_independent",
        "one optimizer with two param groups vs two optimizers",
        target="FirstGroupLrSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-decays-unused",
        "none_gradients_skipped",
        "changed a parameter whose .grad is None",
        target="DecayEverythingSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-eager-state",
        "none_gradients_skipped",
        "created state ['momentum_buffer'] for a parameter whose .grad is None",
        target="EagerStateSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-drops-state",
        "resume_exact",
        "does state_dict() hold all the state?",
        target="StateDroppingSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-side-state",
        "resume_exact",
        "does state_dict() hold all the state?",
        target="SideStateSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-float64-state",
        "state_on_parameter_device",
        "state 'momentum_buffer' of parameter 0 is torch.float64, the parameter torch.float32",
        target="Float64StateSGD",
        collateral={"resume_exact"},  # load_state_dict casts the float64 state to float32: no exact resume
    ),
    variant(
        MOMENTUM,
        "suite-momentum-meta-state",
        "state_on_parameter_device",
        "state 'second_moment' of parameter 0 is on meta, the parameter on cpu",
        target="MetaStateSGD",
        collateral={"deterministic", "foreach_matches_single", "resume_exact"},  # meta tensors hold no values
    ),
    variant(
        MOMENTUM,
        "suite-momentum-rebinds",
        "parameter_dtype_kept",
        "parameter 0 was replaced instead of updated in place",
        target="RebindingSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-accepts-sparse",
        "sparse_gradients_rejected",
        "a sparse gradient was accepted",
        target="SparseAcceptingSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-late-sparse-check",
        "sparse_gradients_rejected",
        "parameter 0 changed although the step raised",
        target="LateSparseCheckSGD",
    ),
    variant(
        MOMENTUM,
        "suite-momentum-device-tuned",
        "devices_agree",
        "cpu vs cuda",
        target="CudaTunedSGD",
        requires="cuda",
    ),
]


# === layer ====================================================================================


class LenientScaledTanhHyperparameters(Hyperparameters):
    """The spec's model with the bound on scale forgotten."""

    in_features: int = Field(4, ge=1)
    out_features: int = Field(3, ge=1)
    scale: float = 1.0


class RenamedClaimScaledTanh(ScaledTanh):
    """The good layer under the name of a spec whose claim check was renamed."""

    method = "suite-scaled-tanh-renamed-claim"


class LenientScaledTanh(ScaledTanh):
    method = "suite-scaled-tanh-lenient"
    hyperparameters = LenientScaledTanhHyperparameters


class NoisyScaledTanh(ScaledTanh):
    """Noise injection in training mode, drawn from the global RNG."""

    method = "suite-scaled-tanh-noisy"

    def forward(self, inputs: Tensor) -> Tensor:
        output = super().forward(inputs)
        return output + 1e-3 * torch.randn_like(output) if self.training else output


class NoGradScaledTanh(ScaledTanh):
    """An 'inference fast path' that cuts the graph."""

    method = "suite-scaled-tanh-no-grad"

    def forward(self, inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return super().forward(inputs)


class TanhWithWrongDerivative(torch.autograd.Function):
    """tanh whose backward writes the derivative in terms of the input (1 - x^2), not the output."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor) -> Tensor:
        ctx.save_for_backward(inputs)
        return torch.tanh(inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        (inputs,) = ctx.saved_tensors
        return grad_output * (1 - inputs**2)


class WrongBackwardScaledTanh(ScaledTanh):
    method = "suite-scaled-tanh-wrong-backward"

    def forward(self, inputs: Tensor) -> Tensor:
        return self.scale * TanhWithWrongDerivative.apply(self.linear(inputs))


class PlainAttributeScaledTanh(ScaledTanh):
    """A random offset kept as a plain attribute: not in state_dict, not moved by .to()."""

    method = "suite-scaled-tanh-plain-attribute"

    def __init__(self, **hyperparameters: Any) -> None:
        super().__init__(**hyperparameters)
        self.offset = 0.1 * torch.randn(self.linear.out_features)

    def forward(self, inputs: Tensor) -> Tensor:
        return super().forward(inputs) + self.offset.to(inputs.dtype)


class CudaScaledTanh(ScaledTanh):
    method = "suite-scaled-tanh-device-dependent"

    def forward(self, inputs: Tensor) -> Tensor:
        output = super().forward(inputs)
        return output * 1.01 if on_cuda(inputs) else output


@validated("suite-ste-quantize-no-surrogate", QuantizeHyperparameters)
def rounding_quantize(inputs: Tensor, levels: int = 4) -> Tensor:
    """Declared a surrogate, but the straight-through trick was left out: round() has zero gradient."""
    return torch.round(inputs * levels) / levels


class HiddenInnerResidual(Residual):
    """Keeps the wrapped module in a plain list: state_dict() and .to() do not see it."""

    method = "suite-residual-hidden-inner"

    def __init__(self, inner: nn.Module, **hyperparameters: Any) -> None:
        super().__init__(nn.Identity(), **hyperparameters)
        self.hidden = [inner]

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * self.hidden[0](x)


LAYER_VARIANTS = [
    variant(
        RESIDUAL,
        "suite-residual-hidden-inner",
        "state_dict_round_trip",
        "outputs after load_state_dict",
        target="HiddenInnerResidual",
        collateral={"forward_backward", "gradient_exact"},
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-model-target",
        "spec_valid",
        "target must be an nn.Module subclass or a function",
        target=f"{METHODS}:ScaledTanhHyperparameters",
        collateral=None,
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-renamed-claim",
        "spec_valid",
        f"'{METHODS}:scaled_tanh_claim' does not import",
        target="RenamedClaimScaledTanh",
        claims=(f"{METHODS}:scaled_tanh_claim",),
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-lenient",
        "hyperparameters_validated",
        "scale=-1 was accepted",
        target="LenientScaledTanh",
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-noisy",
        "deterministic",
        "two runs from the same seed",
        target="NoisyScaledTanh",
        collateral={"gradient_exact", "state_dict_round_trip"},
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-no-grad",
        "forward_backward",
        "no gradient reaches its inputs or parameters",
        target="NoGradScaledTanh",
        collateral={"gradient_exact"},
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-wrong-backward",
        "gradient_exact",
        "its gradient is declared exact but gradcheck fails in torch.float64",
        target="WrongBackwardScaledTanh",
    ),
    variant(
        STE_QUANTIZE,
        "suite-ste-quantize-no-surrogate",
        "gradient_flows",
        "its surrogate gradient is zero everywhere on the example",
        target="rounding_quantize",
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-plain-attribute",
        "state_dict_round_trip",
        "outputs after load_state_dict",
        target="PlainAttributeScaledTanh",
    ),
    variant(
        SCALED_TANH,
        "suite-scaled-tanh-device-dependent",
        "devices_agree",
        "cpu vs cuda",
        target="CudaScaledTanh",
        requires="cuda",
    ),
]


# === loss =====================================================================================

DEFAULT_WEIGHTS = torch.ones(3)
"""What a loss spec's target must not point at: a tensor is not callable."""


def unchecked_squared_error(prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """No validation: a negative weight turns the loss into a reward."""
    return reduce(weight * (prediction - target) ** 2, reduction, "suite-squared-error-unchecked")


@validated("suite-squared-error-subsampled", SquaredErrorHyperparameters)
def subsampled_squared_error(
    prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Averages a random half of the elements, drawn from the global RNG."""
    keep = (torch.rand(prediction.shape) < 0.5).to(device=prediction.device, dtype=prediction.dtype)
    return reduce(weight * keep * (prediction - target) ** 2, reduction, "suite-squared-error-subsampled")


@validated("suite-squared-error-float32", SquaredErrorHyperparameters)
def float32_squared_error(prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """Hard-codes float32 (a 'mixed-precision' shortcut) whatever the inputs' dtype."""
    return reduce(weight * (prediction.float() - target.float()) ** 2, reduction, "suite-squared-error-float32")


class SquaredErrorWithoutFactorTwo(torch.autograd.Function):
    """(p - t)^2 with a hand-written backward that forgot the factor 2."""

    @staticmethod
    def forward(ctx: Any, prediction: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(prediction - target)
        return (prediction - target) ** 2

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        (difference,) = ctx.saved_tensors
        return grad_output * difference, -grad_output * difference


@validated("suite-squared-error-wrong-backward", SquaredErrorHyperparameters)
def hand_differentiated_squared_error(
    prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean"
) -> Tensor:
    values = weight * SquaredErrorWithoutFactorTwo.apply(prediction, target)
    return reduce(values, reduction, "suite-squared-error-wrong-backward")


@validated("suite-squared-error-keepdim", SquaredErrorHyperparameters)
def keepdim_squared_error(prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """Reduces with keepdim: 'mean' and 'sum' come back with shape (1,), not as scalars."""
    values = (weight * (prediction - target) ** 2).flatten()
    if reduction == "mean":
        return values.mean(0, keepdim=True)
    if reduction == "sum":
        return values.sum(0, keepdim=True)
    return reduce(values.view_as(prediction), reduction, "suite-squared-error-keepdim")


@validated("suite-squared-error-sum-averaged", SquaredErrorHyperparameters)
def batch_averaged_squared_error(
    prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """'sum' sums per sample and then averages over the batch (so 'sum' is not the sum of 'none')."""
    values = weight * (prediction - target) ** 2
    if reduction == "sum":
        return values.sum() / values.shape[0]
    return reduce(values, reduction, "suite-squared-error-sum-averaged")


@validated("suite-squared-error-device-dependent", SquaredErrorHyperparameters)
def device_dependent_squared_error(
    prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean"
) -> Tensor:
    weight = weight * (1.01 if on_cuda(prediction) else 1.0)
    return reduce(weight * (prediction - target) ** 2, reduction, "suite-squared-error-device-dependent")


@validated("suite-zero-one-no-surrogate", ZeroOneHyperparameters)
def sign_zero_one(scores: Tensor, labels: Tensor, temperature: float = 0.5, reduction: str = "mean") -> Tensor:
    """Declared a surrogate, but sign() has zero gradient: nothing reaches the scores."""
    return reduce((1 - torch.sign(scores * labels)) / 2, reduction, "suite-zero-one-no-surrogate")


@validated("suite-denoising-detached", DenoisingHyperparameters)
def detached_denoising_loss(
    model: nn.Module, x: Tensor, generator: torch.Generator | None = None, sigma: float = 0.5, reduction: str = "mean"
) -> Tensor:
    """Detaches the model's output: no gradient reaches the parameters (the loss itself still needs one)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    value = (model(x + sigma * noise).detach() - x).square().sum(1)
    return reduce(value + 0 * x.sum().requires_grad_(), reduction, "suite-denoising-detached")


@validated("suite-denoising-noiseless", DenoisingHyperparameters)
def noiseless_denoising_loss(
    model: nn.Module, x: Tensor, generator: torch.Generator | None = None, sigma: float = 0.5, reduction: str = "mean"
) -> Tensor:
    """Forgets to draw the noise: a reconstruction loss that ignores its generator."""
    return reduce((model(x) - x).square().sum(1), reduction, "suite-denoising-noiseless")


LOSS_VARIANTS = [
    variant(
        DENOISING,
        "suite-denoising-detached",
        "model_gradients",
        "no gradient reaches the model's parameters",
        target="detached_denoising_loss",
    ),
    variant(
        DENOISING,
        "suite-denoising-noiseless",
        "generator_matters",
        "does not draw its noise from its generator",
        target="noiseless_denoising_loss",
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-tensor-target",
        "spec_valid",
        "target must be an nn.Module subclass or a function",
        target="DEFAULT_WEIGHTS",
        collateral=None,
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-unchecked",
        "hyperparameters_validated",
        "weight=-1 was accepted",
        target="unchecked_squared_error",
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-subsampled",
        "deterministic",
        "two runs from the same seed",
        target="subsampled_squared_error",
        collateral={"gradient_exact", "reduction_consistent"},
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-float32",
        "forward_backward",
        "output 0 is torch.float32; inputs are torch.float64",
        target="float32_squared_error",
        collateral={"gradient_exact"},
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-wrong-backward",
        "gradient_exact",
        "its gradient is declared exact but gradcheck fails in torch.float64",
        target="hand_differentiated_squared_error",
    ),
    variant(
        ZERO_ONE,
        "suite-zero-one-no-surrogate",
        "gradient_flows",
        "its surrogate gradient is zero everywhere on the example",
        target="sign_zero_one",
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-keepdim",
        "returns_scalar",
        "with the default reduction it returned (1,), not a scalar tensor",
        target="keepdim_squared_error",
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-sum-averaged",
        "reduction_consistent",
        "reduction='sum' gives",
        target="batch_averaged_squared_error",
    ),
    variant(
        SQUARED_ERROR,
        "suite-squared-error-device-dependent",
        "devices_agree",
        "cpu vs cuda",
        target="device_dependent_squared_error",
        requires="cuda",
    ),
]


# === solver ===================================================================================


class ToleranceOnlyHyperparameters(Hyperparameters):
    """A solver's model that forgot max_iter."""

    tol: float = 1e-8


def _result(history: list[tuple[Tensor, Tensor]], tol: float) -> SolverResult:
    residuals = torch.stack([norm for _, norm in history])
    return SolverResult(history[-1][0], bool(residuals[-1] <= tol), len(history) - 1, residuals)


@validated("suite-cg-no-max-iter", ConjugateGradientHyperparameters)
def forgotten_max_iter_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """The good solver; its spec's model (ToleranceOnlyHyperparameters) is the broken part."""
    return _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)


def plain_error_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Validates by hand, with builtin exceptions a caller cannot tell from a crash."""
    if not tol >= 0 or math.isinf(tol):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    return _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)


@validated("suite-cg-random-start", ConjugateGradientHyperparameters)
def random_start_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Starts from a random guess drawn from the global RNG."""
    start = 0.01 * torch.randn(rhs.shape).to(device=rhs.device, dtype=rhs.dtype)
    return _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter, start)), tol)


@validated("suite-cg-short-history", ConjugateGradientHyperparameters)
def short_history_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Records the residual after each iteration but not the one before the first."""
    result = _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)
    return SolverResult(result.solution, result.converged, result.iterations, result.residuals[1:])


@validated("suite-cg-tensor-flag", ConjugateGradientHyperparameters)
def tensor_flag_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Reports converged as a 0-d bool tensor (a device sync waiting to happen in the caller)."""
    result = _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)
    return SolverResult(result.solution, result.residuals[-1] <= tol, result.iterations, result.residuals)  # type: ignore[arg-type]


@validated("suite-cg-stale-solution", ConjugateGradientHyperparameters)
def stale_solution_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Off by one: returns the iterate from before the last update, with the last residual."""
    history = list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter))
    result = _result(history, tol)
    return SolverResult(history[max(len(history) - 2, 0)][0], result.converged, result.iterations, result.residuals)


@validated("suite-cg-own-cap", ConjugateGradientHyperparameters)
def own_cap_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Ignores max_iter for its own cap (CG 'converges in n steps', so it allows 2n)."""
    return _result(list(conjugate_gradient_iterations(matrix, rhs, tol, 2 * rhs.numel())), tol)


@validated("suite-cg-always-converged", ConjugateGradientHyperparameters)
def always_converged_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Reports converged=True whenever it stops, also when max_iter stopped it."""
    result = _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)
    return SolverResult(result.solution, True, result.iterations, result.residuals)


@validated("suite-cg-device-dependent", ConjugateGradientHyperparameters)
def device_dependent_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Solves a slightly different system on CUDA."""
    if on_cuda(rhs):
        rhs = rhs * 1.01
    return _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)


@validated("suite-cg-mute", ConjugateGradientHyperparameters)
def mute_conjugate_gradient(
    matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100, *, progress: Any = None
) -> SolverResult:
    """Takes a progress callback and ignores it."""
    return _result(list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter)), tol)


@validated("suite-cg-chatty", ConjugateGradientHyperparameters)
def chatty_conjugate_gradient(
    matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100, *, progress: Any = None
) -> SolverResult:
    """Prints every residual when nobody asked."""
    history = list(conjugate_gradient_iterations(matrix, rhs, tol, max_iter))
    for step, (_, norm) in enumerate(history):
        if progress is not None:
            progress(ProgressEvent("suite-cg-chatty", step, max_iter, {}, done=step == len(history) - 1))
        else:
            print(f"iteration {step}: residual {norm.item():.3g}")
    return _result(history, tol)


SOLVER_VARIANTS = [
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-mute",
        "progress_reported",
        "never called it",
        target="mute_conjugate_gradient",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-chatty",
        "progress_reported",
        "library calls stay silent",
        target="chatty_conjugate_gradient",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-result-target",
        "spec_valid",
        "target must be a function returning gradhub.kinds.solver.SolverResult",
        target="gradhub.kinds.solver:SolverResult",
        collateral=None,
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-no-max-iter",
        "spec_valid",
        "must take the hyperparameter 'max_iter'; its model lacks it",
        target="forgotten_max_iter_cg",
        params=ToleranceOnlyHyperparameters,
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-plain-errors",
        "hyperparameters_validated",
        "tol=-1 raised ValueError",
        target="plain_error_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-random-start",
        "deterministic",
        "two runs from the same seed",
        target="random_start_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-short-history",
        "result_contract",
        "residuals recorded for",
        target="short_history_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-tensor-flag",
        "result_contract",
        "result.converged is Tensor, not bool",
        target="tensor_flag_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-stale-solution",
        "converges_within_tol",
        "it reports convergence, but the returned solution's residual is",
        target="stale_solution_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-own-cap",
        "max_iter_respected",
        "max_iter=1 but it ran",
        target="own_cap_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-always-converged",
        "max_iter_respected",
        "it reports convergence although the residual is above tol",
        target="always_converged_cg",
    ),
    variant(
        CONJUGATE_GRADIENT,
        "suite-cg-device-dependent",
        "devices_agree",
        "cpu vs cuda",
        target="device_dependent_cg",
        requires="cuda",
    ),
]


# === attack ===================================================================================


def _pgd(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None,
    eps: float,
    step_size: float,
    max_iter: int,
    *,
    use_generator: bool = True,
    switch_to_eval: bool = True,
    restore_mode: bool = True,
    use_backward: bool = False,
    freeze_weights: bool = False,
    project_after_step: bool = True,
    iterations: int | None = None,
) -> AttackResult:
    """PGD as in methods.py, with one switch per bug below (the defaults are the correct attack)."""
    perturbation = random_start(inputs, eps, generator if use_generator else None)
    steps = max_iter if iterations is None else iterations
    modes = [(module, module.training) for module in model.modules()]
    if switch_to_eval:
        model.eval()
    if freeze_weights:  # "saves memory"; never undone
        for param in model.parameters():
            param.requires_grad_(False)
    for _ in range(steps):
        perturbation = perturbation.detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(inputs + perturbation), labels)
        if use_backward:
            loss.backward()
            gradient = perturbation.grad
        else:
            (gradient,) = torch.autograd.grad(loss, perturbation)
        if project_after_step:
            perturbation = (perturbation.detach() + step_size * gradient.sign()).clamp(-eps, eps)
        else:
            perturbation = perturbation.detach().clamp(-eps, eps) + step_size * gradient.sign()
    if restore_mode:
        for module, training in modes:
            module.training = training
    return AttackResult(output=(inputs + perturbation).detach(), iterations=steps)


def unchecked_pgd(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    eps: float = 0.1,
    step_size: float = 0.05,
    max_iter: int = 3,
) -> AttackResult:
    """No validation: eps=-1 silently inverts the clamp."""
    return _pgd(model, inputs, labels, generator, eps, step_size, max_iter)


def _attack_variant(method: str, **bug: Any) -> Callable[..., AttackResult]:
    """A validated attack named ``method`` with one of :func:`_pgd`'s bugs switched on."""

    @validated(method, ProjectedGradientHyperparameters)
    def attack(
        model: nn.Module,
        inputs: Tensor,
        labels: Tensor,
        generator: torch.Generator | None = None,
        eps: float = 0.1,
        step_size: float = 0.05,
        max_iter: int = 3,
    ) -> AttackResult:
        return _pgd(model, inputs, labels, generator, eps, step_size, max_iter, **bug)

    return attack


global_rng_pgd = _attack_variant("suite-pgd-global-rng", use_generator=False)
backward_pgd = _attack_variant("suite-pgd-backward", use_backward=True)
eval_leaking_pgd = _attack_variant("suite-pgd-leaves-eval", restore_mode=False)
train_mode_pgd = _attack_variant("suite-pgd-train-mode", switch_to_eval=False)
freezing_pgd = _attack_variant("suite-pgd-freezes-model", freeze_weights=True)
unclamped_pgd = _attack_variant("suite-pgd-projects-first", project_after_step=False)
extra_step_pgd = _attack_variant("suite-pgd-extra-step", iterations=4)


@validated("suite-pgd-mute", ProjectedGradientHyperparameters)
def mute_projected_gradient_descent(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    eps: float = 0.1,
    step_size: float = 0.05,
    max_iter: int = 3,
    *,
    progress: Any = None,
) -> AttackResult:
    """Takes a progress callback and ignores it."""
    return projected_gradient_descent.__wrapped__(model, inputs, labels, generator, eps, step_size, max_iter)


ATTACK_VARIANTS = [
    variant(
        PGD,
        "suite-pgd-mute",
        "progress_reported",
        "never called it",
        target="mute_projected_gradient_descent",
    ),
    variant(
        PGD,
        "suite-pgd-result-target",
        "spec_valid",
        "target must be a function returning gradhub.kinds.attack.AttackResult",
        target="gradhub.kinds.attack:AttackResult",
        collateral=None,
    ),
    variant(PGD, "suite-pgd-unchecked", "hyperparameters_validated", "eps=-1 was accepted", target="unchecked_pgd"),
    variant(PGD, "suite-pgd-global-rng", "deterministic", "two runs from the same seed", target="global_rng_pgd"),
    variant(
        PGD,
        "suite-pgd-backward",
        "model_unchanged",
        "it changed the .grad of parameter '0.weight'; use torch.autograd.grad instead of backward()",
        target="backward_pgd",
    ),
    variant(
        PGD,
        "suite-pgd-leaves-eval",
        "model_unchanged",
        "it changed the training mode of ['<root>', '0', '1', '2', '3']",
        target="eval_leaking_pgd",
    ),
    variant(
        PGD,
        "suite-pgd-train-mode",
        "model_unchanged",
        "it changed the model's buffer '1.running_mean'",
        target="train_mode_pgd",
    ),
    variant(
        PGD,
        "suite-pgd-freezes-model",
        "model_unchanged",
        "it changed requires_grad of parameter '0.weight'",
        target="freezing_pgd",
    ),
    variant(PGD, "suite-pgd-projects-first", "budget_respected", "> eps=0.1", target="unclamped_pgd"),
    variant(
        PGD, "suite-pgd-extra-step", "budget_respected", "it ran 4 iterations with max_iter=3", target="extra_step_pgd"
    ),
]


# === sampler ==================================================================================


def unchecked_langevin(
    score: Callable[[Tensor], Tensor],
    start: Tensor,
    generator: torch.Generator | None = None,
    steps: int = 8,
    step_size: float = 0.1,
) -> SampleResult:
    """No validation: steps=0 returns the start point as 'samples'."""
    return _langevin(score, start, generator, steps, step_size)


def _langevin(
    score: Callable[[Tensor], Tensor],
    start: Tensor,
    generator: torch.Generator | None,
    steps: int,
    step_size: float,
    *,
    noise_source: Callable[[Tensor, torch.Generator | None], torch.Generator | None] = lambda start, given: given,
    evaluations_per_step: int = 1,
    reported: Callable[[int, Tensor], int] = lambda steps, samples: steps,
) -> SampleResult:
    """Langevin as in methods.py, with one switch per bug below (the defaults are the correct sampler).

    ``noise_source`` picks the generator the noise is drawn from; ``evaluations_per_step``
    > 1 averages repeated score calls (a corrector); ``reported`` is the evaluation count returned.
    """
    samples = start.clone()
    noise_generator = noise_source(start, generator)
    noise_scale = math.sqrt(2 * step_size)
    with torch.no_grad():
        for _ in range(steps):
            drift = sum(score(samples) for _ in range(evaluations_per_step)) / evaluations_per_step
            samples = samples + step_size * drift + noise_scale * langevin_noise(samples, noise_generator)
    return SampleResult(samples=samples, evaluations=reported(steps, samples))


def _sampler_variant(method: str, **bug: Any) -> Callable[..., SampleResult]:
    """A validated sampler named ``method`` with one of :func:`_langevin`'s bugs switched on."""

    @validated(method, LangevinHyperparameters)
    def sample(
        score: Callable[[Tensor], Tensor],
        start: Tensor,
        generator: torch.Generator | None = None,
        steps: int = 8,
        step_size: float = 0.1,
    ) -> SampleResult:
        return _langevin(score, start, generator, steps, step_size, **bug)

    return sample


# Accepts a generator and ignores it: the noise comes from the global RNG.
global_rng_langevin = _sampler_variant("suite-langevin-global-rng", noise_source=lambda start, given: None)
# "Reproducible by default": seeds its own generator with 0 and ignores the caller's.
fixed_seed_langevin = _sampler_variant(
    "suite-langevin-fixed-seed",
    noise_source=lambda start, given: torch.Generator(device=start.device).manual_seed(0),
)
# A corrector evaluation per step that the count leaves out.
corrector_langevin = _sampler_variant("suite-langevin-uncounted-corrector", evaluations_per_step=2)
# Counts one evaluation per sample, although one batched call is one evaluation.
per_sample_count_langevin = _sampler_variant(
    "suite-langevin-counts-samples", reported=lambda steps, samples: steps * samples.shape[0]
)


@validated("suite-langevin-mute", LangevinHyperparameters)
def mute_langevin_dynamics(
    score: Any,
    start: Tensor,
    generator: torch.Generator | None = None,
    steps: int = 8,
    step_size: float = 0.1,
    *,
    progress: Any = None,
) -> Any:
    """Takes a progress callback and ignores it."""
    return langevin_dynamics.__wrapped__(score, start, generator, steps, step_size)


@validated("suite-gradient-flow-jittered", GradientFlowHyperparameters)
def jittered_gradient_flow(
    score: Any, start: Tensor, generator: torch.Generator | None = None, steps: int = 8, step_size: float = 0.1
) -> SampleResult:
    """Declared deterministic, but perturbs its start with noise from the generator."""
    start = start + 1e-3 * torch.randn(start.shape, generator=generator, device=start.device, dtype=start.dtype)
    return gradient_flow.__wrapped__(score, start, generator, steps, step_size)


SAMPLER_VARIANTS = [
    variant(
        GRADIENT_FLOW,
        "suite-gradient-flow-jittered",
        "generator_matters",
        "declares stochastic=False",
        target="jittered_gradient_flow",
    ),
    variant(
        LANGEVIN,
        "suite-langevin-mute",
        "progress_reported",
        "never called it",
        target="mute_langevin_dynamics",
    ),
    variant(
        LANGEVIN,
        "suite-langevin-result-target",
        "spec_valid",
        "target must be a function returning gradhub.kinds.sampler.SampleResult",
        target="gradhub.kinds.sampler:SampleResult",
        collateral=None,
    ),
    variant(
        LANGEVIN,
        "suite-langevin-unchecked",
        "hyperparameters_validated",
        "steps=0 was accepted",
        target="unchecked_langevin",
    ),
    variant(
        LANGEVIN,
        "suite-langevin-global-rng",
        "deterministic",
        "two runs from the same seed",
        target="global_rng_langevin",
    ),
    variant(
        LANGEVIN,
        "suite-langevin-fixed-seed",
        "generator_matters",
        "generators seeded 0 and 1 gave identical samples",
        target="fixed_seed_langevin",
    ),
    variant(
        LANGEVIN,
        "suite-langevin-uncounted-corrector",
        "evaluations_counted",
        "it reports 6 model evaluations but called the model 12 times",
        target="corrector_langevin",
    ),
    variant(
        LANGEVIN,
        "suite-langevin-counts-samples",
        "evaluations_counted",
        "it reports 96 model evaluations but called the model 6 times",
        target="per_sample_count_langevin",
    ),
]


# === schedule =================================================================================


class UncheckedWarmupLinearDecay(WarmupLinearDecay):
    """No validation: warmup_steps=-1 gives rates above the base rate."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int = 5,
        total_steps: int = 40,
        final_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.warmup_steps, self.total_steps, self.final_ratio = warmup_steps, total_steps, final_ratio
        torch.optim.lr_scheduler.LRScheduler.__init__(self, optimizer, last_epoch)


class JitteredWarmupLinearDecay(WarmupLinearDecay):
    """Multiplies each rate by random jitter from the global RNG."""

    method = "suite-warmup-decay-jitter"

    def get_lr(self) -> list[float]:
        jitter = 1 + 0.01 * torch.rand(()).item()
        return [rate * jitter for rate in super().get_lr()]


class UnclampedWarmupLinearDecay(WarmupLinearDecay):
    """The decay is not clamped at total_steps: past it, the rate goes negative."""

    method = "suite-warmup-decay-unclamped"

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 1 - (1 - self.final_ratio) * progress


class ForgetfulWarmupLinearDecay(WarmupLinearDecay):
    """state_dict() saves only the base rates, not where in the schedule it is."""

    method = "suite-warmup-decay-forgetful"

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs}


class DeviceDependentWarmupLinearDecay(WarmupLinearDecay):
    method = "suite-warmup-decay-device-dependent"

    def get_lr(self) -> list[float]:
        factor = 1.01 if on_cuda(self.optimizer.param_groups[0]["params"][0]) else 1.0
        return [rate * factor for rate in super().get_lr()]


class ReversedCosinePath(CosinePath):
    """Noise at t_min and data at t_max: the time convention backwards."""

    method = "suite-cosine-path-reversed"

    def angle(self, t: Tensor) -> Tensor:
        return super().angle(1 - t)


@validated("suite-sigmoid-ramp-negative", RampHyperparameters)
def negative_ramp(p: float, *, gamma: float = 10.0) -> float:
    """A function of progress whose values dip below zero."""
    return math.sin(2 * math.pi * p)


def cosine_not_scheduler(optimizer: torch.optim.Optimizer, **hyperparameters: Any) -> Any:
    """A factory that returns the multiplier function instead of the scheduler."""
    validate_hyperparameters("suite-cosine-factory-function", CosineDecayHyperparameters, hyperparameters)
    return lambda step: 1.0


SCHEDULE_VARIANTS = [
    variant(
        COSINE_PATH,
        "suite-cosine-path-reversed",
        "noise_monotone",
        "the signal-to-noise ratio must strictly decrease",
        target="ReversedCosinePath",
    ),
    variant(
        SIGMOID_RAMP,
        "suite-sigmoid-ramp-negative",
        "rates_nonnegative",
        "its value at p=",
        target="negative_ramp",
    ),
    variant(
        COSINE_FACTORY,
        "suite-cosine-factory-function",
        "rates_nonnegative",
        "as a factory it must give a torch LRScheduler",
        target="cosine_not_scheduler",
        collateral=None,
    ),
    variant(
        WARMUP_DECAY,
        "suite-warmup-decay-model-target",
        "spec_valid",
        "a schedule target must be an LRScheduler (or factory)",
        target=f"{METHODS}:WarmupDecayHyperparameters",
        collateral=None,
    ),
    variant(
        WARMUP_DECAY,
        "suite-warmup-decay-unchecked",
        "hyperparameters_validated",
        "warmup_steps=-1 was accepted",
        target="UncheckedWarmupLinearDecay",
    ),
    variant(
        WARMUP_DECAY,
        "suite-warmup-decay-jitter",
        "deterministic",
        "two runs from the same seed",
        target="JitteredWarmupLinearDecay",
        collateral={"state_dict_round_trip"},
    ),
    variant(
        WARMUP_DECAY,
        "suite-warmup-decay-unclamped",
        "rates_nonnegative",
        "rates must be finite and non-negative",
        target="UnclampedWarmupLinearDecay",
    ),
    variant(
        WARMUP_DECAY,
        "suite-warmup-decay-forgetful",
        "state_dict_round_trip",
        "after a state_dict round trip the rate at step",
        target="ForgetfulWarmupLinearDecay",
    ),
    variant(
        WARMUP_DECAY,
        "suite-warmup-decay-device-dependent",
        "devices_agree",
        "cpu vs cuda",
        target="DeviceDependentWarmupLinearDecay",
        requires="cuda",
    ),
]


# === probe ====================================================================================


class SharpnessProbe:
    """The probe wrapped in a class: a probe target must be the function itself."""

    def __call__(self, model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        return random_direction_sharpness(model, *args, **kwargs)


def unchecked_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
) -> dict[str, Tensor]:
    """No validation: radius=-1 measures along the opposite directions."""
    return random_direction_sharpness.__wrapped__(model, inputs, labels, generator, radius, directions)


@validated("suite-sharpness-global-rng", SharpnessHyperparameters)
def global_rng_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
) -> dict[str, Tensor]:
    """Accepts a generator and ignores it: directions come from the global RNG."""
    return random_direction_sharpness.__wrapped__(model, inputs, labels, None, radius, directions)


@validated("suite-sharpness-in-place", SharpnessHyperparameters)
def in_place_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
) -> dict[str, Tensor]:
    """Moves the model's own weights and subtracts the move afterwards: round-off stays behind."""
    parameters = dict(model.named_parameters())
    with evaluation_mode(model), torch.no_grad():
        base = nn.functional.cross_entropy(model(inputs), labels)
        increases = []
        for _ in range(directions):
            direction = random_direction({name: p.detach() for name, p in parameters.items()}, radius, generator)
            for name, param in parameters.items():
                param.add_(direction[name])
            increases.append(nn.functional.cross_entropy(model(inputs), labels) - base)
            for name, param in parameters.items():
                param.sub_(direction[name])
    return {"loss": base, "sharpness": torch.stack(increases).mean()}


@validated("suite-sharpness-train-mode", SharpnessHyperparameters)
def train_mode_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
) -> dict[str, Tensor]:
    """Evaluates the model in the mode it was found in (train): BatchNorm's statistics move."""
    parameters = {name: value.detach() for name, value in model.named_parameters()}
    with torch.no_grad():
        base = nn.functional.cross_entropy(model(inputs), labels)
        increases = []
        for _ in range(directions):
            direction = random_direction(parameters, radius, generator)
            moved = {name: value + direction[name] for name, value in parameters.items()}
            loss = nn.functional.cross_entropy(torch.func.functional_call(model, moved, (inputs,)), labels)
            increases.append(loss - base)
    return {"loss": base, "sharpness": torch.stack(increases).mean()}


@validated("suite-sharpness-text", SharpnessHyperparameters)
def text_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
) -> str:
    """Returns a formatted report instead of the measurement."""
    result = random_direction_sharpness.__wrapped__(model, inputs, labels, generator, radius, directions)
    return f"sharpness {result['sharpness'].item():.4f}"


@validated("suite-sharpness-mute", SharpnessHyperparameters)
def mute_random_direction_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
    *,
    progress: Any = None,
) -> Any:
    """Takes a progress callback and ignores it."""
    return random_direction_sharpness.__wrapped__(model, inputs, labels, generator, radius, directions)


class ClippingRecorder(GradientNormRecorder):
    """Clips the gradients while measuring them: recording changes the run."""

    method = "suite-gradient-norm-clipping"

    def record(self) -> Tensor:
        value = super().record()
        torch.nn.utils.clip_grad_norm_(self.parameters, 0.01)
        return value


class AmnesicRecorder(GradientNormRecorder):
    """load_state_dict() ignores the saved history: a resumed run loses the steps before the checkpoint."""

    method = "suite-gradient-norm-amnesic"

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = []


PROBE_VARIANTS = [
    variant(
        GRADIENT_NORM,
        "suite-gradient-norm-clipping",
        "recorder_passive",
        "it changed the .grad of parameter",
        target="ClippingRecorder",
    ),
    variant(
        GRADIENT_NORM,
        "suite-gradient-norm-amnesic",
        "recorder_resume",
        "the final state_dict after a round trip",
        target="AmnesicRecorder",
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-mute",
        "progress_reported",
        "never called it",
        target="mute_random_direction_sharpness",
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-class-target",
        "spec_valid",
        "a probe target must be the function itself",
        target="SharpnessProbe",
        collateral=None,
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-unchecked",
        "hyperparameters_validated",
        "radius=-1 was accepted",
        target="unchecked_sharpness",
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-global-rng",
        "deterministic",
        "two runs from the same seed",
        target="global_rng_sharpness",
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-in-place",
        "model_unchanged",
        "it changed the model's parameter",
        target="in_place_sharpness",
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-train-mode",
        "model_unchanged",
        "it changed the model's buffer '1.running_mean'",
        target="train_mode_sharpness",
    ),
    variant(
        SHARPNESS,
        "suite-sharpness-text",
        "model_unchanged",
        "it returned str with no tensor or number in it",
        target="text_sharpness",
    ),
]


BROKEN_VARIANTS: tuple[BrokenVariant, ...] = (
    *OPTIMIZER_VARIANTS,
    *LAYER_VARIANTS,
    *LOSS_VARIANTS,
    *SOLVER_VARIANTS,
    *ATTACK_VARIANTS,
    *SAMPLER_VARIANTS,
    *SCHEDULE_VARIANTS,
    *PROBE_VARIANTS,
)
"""Every broken variant that is registered in-process (``entry_module_torch_free`` needs an
installed distribution; ``test_entry_module.py`` builds those)."""


# === entry modules (installed distributions) ====================================================


@dataclass(frozen=True)
class TorchImportingEntryModule:
    """A method whose plugin's entry module imports torch (test_entry_module.py installs it)."""

    kind: str
    breaks: str = "entry_module_torch_free"
    message: str = "imports torch; keep specs torch-free"

    @property
    def name(self) -> str:
        return f"suite-entry-imports-torch-{self.kind}"


TORCH_IMPORTING_ENTRY_MODULES = tuple(TorchImportingEntryModule(kind) for kind in KINDS)
"""One per kind: entry_module_torch_free runs for every kind, and must be seen to fail for each."""


# === bugs the suite does not see (test_problems.py demonstrates each, as a strict xfail) ========


class LooseReductionHyperparameters(Hyperparameters):
    """The spec's model with reduction loosened to any string."""

    weight: float = Field(1.0, ge=0)
    reduction: str = "mean"


@validated("suite-squared-error-any-reduction", LooseReductionHyperparameters)
def any_reduction_squared_error(
    prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """Anything but 'none' and 'sum' is taken as 'mean': reduction='bogus' is silently accepted."""
    values = weight * (prediction - target) ** 2
    return values if reduction == "none" else values.sum() if reduction == "sum" else values.mean()


@validated("suite-pgd-under-reports", ProjectedGradientHyperparameters)
def under_reporting_pgd(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    eps: float = 0.1,
    step_size: float = 0.05,
    max_iter: int = 3,
) -> AttackResult:
    """Runs twice the allowed iterations and reports max_iter."""
    result = _pgd(model, inputs, labels, generator, eps, step_size, max_iter, iterations=2 * max_iter)
    return AttackResult(output=result.output, iterations=max_iter)


UNSEEN_BUGS = {
    "literal_hyperparameters_never_tried": variant(
        SQUARED_ERROR,
        "suite-squared-error-any-reduction",
        "hyperparameters_validated",
        "reduction='bogus' was accepted",
        target="any_reduction_squared_error",
    ),
    "self_reported_iterations": variant(
        PGD,
        "suite-pgd-under-reports",
        "budget_respected",
        "iterations with max_iter=3",
        target="under_reporting_pgd",
    ),
    "reductions_without_none": variant(
        SQUARED_ERROR,
        "suite-squared-error-sum-averaged-no-none",
        "reduction_consistent",
        "reduction='sum' gives",
        target="batch_averaged_squared_error_without_none",
        capabilities=with_capabilities(SQUARED_ERROR, reductions=("mean", "sum")),
    ),
}
"""Broken methods that pass the check that should catch them; see test_problems.py."""


@validated("suite-squared-error-sum-averaged-no-none", SquaredErrorHyperparameters)
def batch_averaged_squared_error_without_none(
    prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """batch_averaged_squared_error under its own name; its spec declares only 'mean' and 'sum'."""
    return batch_averaged_squared_error.__wrapped__(prediction, target, weight, reduction)
