"""Deliberately broken variants of the good methods: each breaks one convention a check enforces.

Every :class:`BrokenVariant` is a copy of a method in ``methods.py`` with one realistic
bug (a sign error, a forgotten ``.detach()``, state kept outside ``state_dict``...) and
names the check that must catch it, a fragment of the message that shows the check
caught *that* bug, and the other checks the same bug also trips (``collateral``). A
variant whose target is unusable as a whole (the wrong type) says so with
``collateral=None``. ``conftest.py`` loads this file as ``gradhub_suite_broken``.

Each variant is declared just above its implementation, which binds to the variant's spec the
way a plugin binds to its own (``spec = V.spec``, ``@validated(V.spec)``, ``@solver``,
``@sampler``): the broken method's name is written once, and its errors name it.
:data:`BROKEN_VARIANTS` collects the module's variants, as the registry collects an entry
module's specs.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gradhub_suite_methods
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
    LION,
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
    CosinePath,
    FusedMomentumSGD,
    GradientFlowHyperparameters,
    GradientNormRecorder,
    Lion,
    LionHyperparameters,
    MomentumHyperparameters,
    MomentumSGD,
    ProjectedGradientHyperparameters,
    RampHyperparameters,
    Residual,
    ScaledTanh,
    ScaledTanhHyperparameters,
    SharpnessHyperparameters,
    SquaredErrorHyperparameters,
    WarmupLinearDecay,
    conjugate_gradient_iterates,
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
    sigmoid_ramp,
    single_tensor_momentum,
    weighted_squared_error,
)
from pydantic import Field, create_model
from pydantic.fields import FieldInfo
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import Hyperparameters, validated
from gradhub.kernels import host_formulation
from gradhub.kernels.native import KernelUnavailableWarning
from gradhub.kinds.attack import AttackResult
from gradhub.kinds.loss import reduce
from gradhub.kinds.sampler import SamplerCall, SampleResult, sampler
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub.progress import ProgressEvent
from gradhub.registry import KINDS
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


def bound_to(broken: BrokenVariant, params: type[Hyperparameters]) -> MethodSpec:
    """The variant's spec with another hyperparameter model: a stale copy an implementation binds to by mistake."""
    return broken.spec.model_copy(update={"params": params})


def edited_defaults(model: type[Hyperparameters], **defaults: Any) -> type[Hyperparameters]:
    """``model`` after an edit of these defaults (bounds kept), which an implementation bound to ``model`` missed."""
    fields = model.model_fields
    changed = {
        name: (fields[name].annotation, FieldInfo.merge_field_infos(fields[name], default=value))
        for name, value in defaults.items()
    }
    return create_model(f"Edited{model.__name__}", __base__=model, **changed)  # type: ignore[call-overload]


def on_accelerator(tensor: Tensor) -> bool:
    """The device test a path makes (gradhub.kernels.host_formulation): True on a GPU and on its CPU stand-in."""
    return not host_formulation(tensor.device)


# === optimizer ================================================================================

MOMENTUM_RANK = variant(
    MOMENTUM,
    "suite-momentum-rank",
    "ddp_matches_single_process",
    "differ from rank 0's",
    target="RankDependentSGD",
    collateral={"fsdp2_matches_single_process"},
)


class RankDependentSGD(MomentumSGD):
    """Reads its process's rank: under DDP the replicas take different steps and drift apart."""

    spec = MOMENTUM_RANK.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        super().update_group(group, params, options.model_copy(update={"lr": options.lr * (1 + rank)}))


MOMENTUM_LOCAL_NORM = variant(
    MOMENTUM,
    "suite-momentum-local-norm",
    "fsdp2_matches_single_process",
    "differs from a one-process run over the same global batch",
    target="LocalNormSGD",
    collateral={"gradients_left_as_autograd_made_them"},  # it normalises .grad in place
)


class LocalNormSGD(MomentumSGD):
    """Normalises each gradient by the norm of what it holds locally: under FSDP2, a shard's norm."""

    spec = MOMENTUM_LOCAL_NORM.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        for param in params:
            local = param.grad.to_local() if hasattr(param.grad, "to_local") else param.grad
            param.grad.mul_(1.0 / (local.norm().item() + 1e-12))
        super().update_group(group, params, options)


MOMENTUM_FUNCTION_TARGET = variant(
    MOMENTUM,
    "suite-momentum-function-target",
    "spec_valid",
    "target must be a torch.optim.Optimizer subclass",
    target=f"{METHODS}:single_tensor_momentum",
    collateral=None,
)
MOMENTUM_FOREIGN_XFAIL = variant(
    MOMENTUM,
    "suite-momentum-foreign-xfail",
    "spec_valid",
    "expected_failures names 'converges_within_tol', which is not",
    target="ForeignExpectedFailureSGD",
    expected_failures={"converges_within_tol": "copied from a solver's spec"},
)


class ForeignExpectedFailureSGD(MomentumSGD):
    """The good optimizer under the name of a spec whose expected_failures were copied from a solver."""

    spec = MOMENTUM_FOREIGN_XFAIL.spec


class LenientHyperparameters(Hyperparameters):
    """A stale copy of the spec's model: the bounds were never written here."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    foreach: bool | None = None


MOMENTUM_LENIENT = variant(
    MOMENTUM, "suite-momentum-lenient", "hyperparameters_validated", "lr=-1 was accepted", target="LenientMomentumSGD"
)


class LenientMomentumSGD(MomentumSGD):
    """Bound to a stale copy of its spec whose model has no bounds: lr=-1 gets through."""

    spec = bound_to(MOMENTUM_LENIENT, LenientHyperparameters)


MOMENTUM_COPIED_NAME = variant(
    MOMENTUM,
    "suite-momentum-copied-name",
    "hyperparameters_validated",
    "does not name the method",
    target="CopiedNameMomentumSGD",
    collateral={"sparse_gradients_rejected"},  # the sparse-gradient error names the other method too
)


class CopiedNameMomentumSGD(MomentumSGD):
    """A subclass that never set its spec: it inherits suite-momentum's, so its errors name that method."""


MOMENTUM_NOISY = variant(
    MOMENTUM,
    "suite-momentum-noisy",
    "deterministic",
    "two runs from the same seed",
    target="NoisyMomentumSGD",
    collateral={
        "devices_agree",
        "foreach_matches_single",
        "param_groups_independent",
        "resume_exact",
        "gradients_left_as_autograd_made_them",  # the noise is added to .grad itself
    },
)


class NoisyMomentumSGD(MomentumSGD):
    """Gradient noise drawn from the global RNG instead of a seeded generator."""

    spec = MOMENTUM_NOISY.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        for param in params:
            param.grad.add_(torch.randn_like(param.grad), alpha=1e-3)
        super().update_group(group, params, options)


MOMENTUM_ASCENDS = variant(
    MOMENTUM, "suite-momentum-ascends", "loss_decreases", "loss did not go down", target="AscendingMomentumSGD"
)


def _ascending(update: Callable[..., None]) -> Callable[..., None]:
    def ascend(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: Any) -> None:
        update(params, grads, buffers, options.model_copy(update={"lr": -options.lr}))  # a step along the gradient

    return ascend


class AscendingMomentumSGD(MomentumSGD):
    spec = MOMENTUM_ASCENDS.spec
    single_tensor_update = staticmethod(_ascending(single_tensor_momentum))
    multi_tensor_update = staticmethod(_ascending(multi_tensor_momentum))


MOMENTUM_DROPS_LOSS = variant(
    MOMENTUM,
    "suite-momentum-drops-loss",
    "step_with_closure",
    "returned None, not the loss the closure returned",
    target="ClosureLossDroppedSGD",
)


class ClosureLossDroppedSGD(MomentumSGD):
    """Evaluates the closure but returns None instead of its loss."""

    spec = MOMENTUM_DROPS_LOSS.spec

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        super().step(closure)
        return None


MOMENTUM_CLAIMS_CLOSURE = variant(
    MOMENTUM,
    "suite-momentum-claims-closure",
    "step_with_closure",
    "declares requires_closure, but step() without a closure did not raise",
    target="ClaimsClosureSGD",
    capabilities=with_capabilities(MOMENTUM, requires_closure=True),
)


class ClaimsClosureSGD(MomentumSGD):
    """The good optimizer under the name of a spec that wrongly declares requires_closure."""

    spec = MOMENTUM_CLAIMS_CLOSURE.spec


MOMENTUM_FOREACH_DIFFERS = variant(
    MOMENTUM,
    "suite-momentum-foreach-differs",
    "foreach_matches_single",
    "foreach=True vs foreach=False",
    target="ForeachWithoutDecaySGD",
    collateral={"hyperparameters_have_effect"},  # the default (multi-tensor) path ignores weight_decay
)


def multi_tensor_momentum_without_decay(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: MomentumHyperparameters
) -> None:
    """The multi-tensor path as first written: weight decay forgotten."""
    torch._foreach_mul_(buffers, options.momentum)
    torch._foreach_add_(buffers, grads)
    torch._foreach_add_(params, buffers, alpha=-options.lr)


class ForeachWithoutDecaySGD(MomentumSGD):
    spec = MOMENTUM_FOREACH_DIFFERS.spec
    multi_tensor_update = staticmethod(multi_tensor_momentum_without_decay)


FUSED_MOMENTUM_NO_DECAY = variant(
    FUSED_MOMENTUM,
    "suite-fused-momentum-no-decay",
    "fused_matches_single",
    "fused=True vs foreach=False",
    target="FusedWithoutDecaySGD",
)


def fused_momentum_without_decay(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: MomentumHyperparameters
) -> bool:
    return fused_momentum(params, grads, buffers, options.model_copy(update={"weight_decay": 0.0}))


class FusedWithoutDecaySGD(FusedMomentumSGD):
    """Its fused kernel forgets the weight decay."""

    spec = FUSED_MOMENTUM_NO_DECAY.spec
    fused_kernel = staticmethod(fused_momentum_without_decay)


FUSED_MOMENTUM_GPU_NO_DECAY = variant(
    FUSED_MOMENTUM,
    "suite-fused-momentum-gpu-no-decay",
    "foreach_matches_single",
    "in the accelerator formulation (as on a GPU) vs foreach=False",
    target="GPUWithoutDecaySGD",
    collateral={"devices_agree"},
)


def multi_tensor_momentum_gpu_without_decay(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], options: MomentumHyperparameters
) -> None:
    """The multi-tensor path, whose formulation for accelerators (never run on a CPU-only machine) drops decay."""
    if not host_formulation(params[0].device):
        options = options.model_copy(update={"weight_decay": 0.0})
    multi_tensor_momentum(params, grads, buffers, options)


class GPUWithoutDecaySGD(FusedMomentumSGD):
    """Its GPU formulation forgets the weight decay: only the accelerator stand-in shows it on CPU."""

    spec = FUSED_MOMENTUM_GPU_NO_DECAY.spec
    multi_tensor = staticmethod(multi_tensor_momentum_gpu_without_decay)


FUSED_MOMENTUM_UNAVAILABLE = variant(
    FUSED_MOMENTUM,
    "suite-fused-momentum-unavailable",
    "fused_matches_single",
    "fused=True did not run its fused kernel",
    target="UnavailableFusedSGD",
)


def unavailable_kernel(*args: Any, **kwargs: Any) -> bool:
    warnings.warn("suite: the kernel could not be compiled here", KernelUnavailableWarning, stacklevel=2)
    return False


class UnavailableFusedSGD(FusedMomentumSGD):
    """Its kernel never loads: fused=True silently runs the multi-tensor path (a warning says so)."""

    spec = FUSED_MOMENTUM_UNAVAILABLE.spec
    fused_kernel = staticmethod(unavailable_kernel)


MOMENTUM_ONE_LR = variant(
    MOMENTUM,
    "suite-momentum-one-lr",
    "param_groups_independent",
    "one optimizer with two param groups vs two optimizers",
    target="FirstGroupLrSGD",
)


class FirstGroupLrSGD(MomentumSGD):
    """Reads the learning rate of the first param group for every group."""

    spec = MOMENTUM_ONE_LR.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        super().update_group(group, params, options.model_copy(update={"lr": self.param_groups[0]["lr"]}))


MOMENTUM_DECAYS_UNUSED = variant(
    MOMENTUM,
    "suite-momentum-decays-unused",
    "none_gradients_skipped",
    "changed a parameter whose .grad is None",
    target="DecayEverythingSGD",
)


class DecayEverythingSGD(MomentumSGD):
    """Applies weight decay to every parameter of the group, with a gradient or not."""

    spec = MOMENTUM_DECAYS_UNUSED.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        super().update_group(group, params, options)
        for param in group["params"]:
            if param.grad is None:
                param.mul_(1 - options.lr * options.weight_decay)


MOMENTUM_EAGER_STATE = variant(
    MOMENTUM,
    "suite-momentum-eager-state",
    "none_gradients_skipped",
    "created state ['momentum_buffer'] for a parameter whose .grad is None",
    target="EagerStateSGD",
)


class EagerStateSGD(MomentumSGD):
    """Creates a momentum buffer for every parameter of the group, used or not."""

    spec = MOMENTUM_EAGER_STATE.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        for param in group["params"]:
            self.momentum_buffer(param)
        super().update_group(group, params, options)


MOMENTUM_DROPS_STATE = variant(
    MOMENTUM,
    "suite-momentum-drops-state",
    "resume_exact",
    "does state_dict() hold all the state?",
    target="StateDroppingSGD",
)


class StateDroppingSGD(MomentumSGD):
    """state_dict() leaves the momentum buffers out (to keep checkpoints small)."""

    spec = MOMENTUM_DROPS_STATE.spec

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "state": {}}


MOMENTUM_SIDE_STATE = variant(
    MOMENTUM,
    "suite-momentum-side-state",
    "resume_exact",
    "does state_dict() hold all the state?",
    target="SideStateSGD",
)


class SideStateSGD(MomentumSGD):
    """Keeps momentum buffers in its own dict, which state_dict() knows nothing about."""

    spec = MOMENTUM_SIDE_STATE.spec

    def momentum_buffer(self, param: Tensor) -> Tensor:
        buffers: dict[int, Tensor] = self.__dict__.setdefault("buffers_by_id", {})
        if id(param) not in buffers:
            buffers[id(param)] = torch.zeros_like(param)
        return buffers[id(param)]


MOMENTUM_FLOAT64_STATE = variant(
    MOMENTUM,
    "suite-momentum-float64-state",
    "state_on_parameter_device",
    "state 'momentum_buffer' of parameter 0 is torch.float64, the parameter torch.float32",
    target="Float64StateSGD",
    collateral={"resume_exact"},  # load_state_dict casts the float64 state to float32: no exact resume
)


class Float64StateSGD(MomentumSGD):
    """Keeps momentum in float64 whatever the parameter's dtype."""

    spec = MOMENTUM_FLOAT64_STATE.spec

    def momentum_buffer(self, param: Tensor) -> Tensor:
        state = self.state[param]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(param, dtype=torch.float64)
        return state["momentum_buffer"]


MOMENTUM_META_STATE = variant(
    MOMENTUM,
    "suite-momentum-meta-state",
    "state_on_parameter_device",
    "state 'second_moment' of parameter 0 is on meta, the parameter on cpu",
    target="MetaStateSGD",
    collateral={
        "devices_agree",
        "deterministic",
        "foreach_matches_single",
        "resume_exact",
    },  # meta tensors hold no values
)


class MetaStateSGD(MomentumSGD):
    """Reserves a second-moment buffer on the meta device (allocated 'later') and leaves it there."""

    spec = MOMENTUM_META_STATE.spec

    def momentum_buffer(self, param: Tensor) -> Tensor:
        self.state[param].setdefault("second_moment", torch.empty_like(param, device="meta"))
        return super().momentum_buffer(param)


MOMENTUM_REBINDS = variant(
    MOMENTUM,
    "suite-momentum-rebinds",
    "parameter_dtype_kept",
    "parameter 0 was replaced instead of updated in place",
    target="RebindingSGD",
)


class RebindingSGD(MomentumSGD):
    """Assigns new tensors to ``param.data`` instead of updating in place."""

    spec = MOMENTUM_REBINDS.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        for param in params:
            buffer = self.momentum_buffer(param)
            buffer.mul_(options.momentum).add_(param.grad)
            param.data = param.data * (1 - options.lr * options.weight_decay) - options.lr * buffer


MOMENTUM_ACCEPTS_SPARSE = variant(
    MOMENTUM,
    "suite-momentum-accepts-sparse",
    "sparse_gradients_rejected",
    "a sparse gradient was accepted",
    target="SparseAcceptingSGD",
)


class SparseAcceptingSGD(MomentumSGD):
    """Never looks at the gradients' layout: sparse gradients go through."""

    spec = MOMENTUM_ACCEPTS_SPARSE.spec

    def parameters_with_gradients(self) -> list[list[Tensor]]:
        return [[param for param in group["params"] if param.grad is not None] for group in self.param_groups]


MOMENTUM_LATE_SPARSE_CHECK = variant(
    MOMENTUM,
    "suite-momentum-late-sparse-check",
    "sparse_gradients_rejected",
    "parameter 0 changed although the step raised",
    target="LateSparseCheckSGD",
)


class LateSparseCheckSGD(SparseAcceptingSGD):
    """Rejects a sparse gradient only when it reaches it, after updating the parameters before it."""

    spec = MOMENTUM_LATE_SPARSE_CHECK.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        for index, param in enumerate(params):
            if param.grad.is_sparse:
                raise UnsupportedInputError(self.method, f"sparse gradient (parameter {index})", "sparse", "dense")
            super().update_group(group, [param], options)


MOMENTUM_DEVICE_TUNED = variant(
    MOMENTUM,
    "suite-momentum-device-tuned",
    "devices_agree",
    "cpu vs ",
    target="CudaTunedSGD",
    collateral={"foreach_matches_single"},
)


class CudaTunedSGD(MomentumSGD):
    """A learning rate 'tuned' per device: CUDA runs take a slightly larger step."""

    spec = MOMENTUM_DEVICE_TUNED.spec

    def update_group(self, group: dict[str, Any], params: list[Tensor], options: MomentumHyperparameters) -> None:
        factor = 1.01 if on_accelerator(params[0]) else 1.0
        super().update_group(group, params, options.model_copy(update={"lr": options.lr * factor}))


MOMENTUM_STALE_DEFAULT = variant(
    MOMENTUM,
    "suite-momentum-stale-default",
    "signature_matches_model",
    "the signature's default of 'momentum' is 0.9 but the model's is 0.5",
    target="StaleDefaultMomentumSGD",
    params=edited_defaults(MomentumHyperparameters, momentum=0.5),
)


class StaleDefaultMomentumSGD(MomentumSGD):
    """Bound to the model as it was before the spec's momentum default changed to 0.5: it still takes 0.9."""

    spec = bound_to(MOMENTUM_STALE_DEFAULT, MomentumHyperparameters)


# === layer ====================================================================================

RESIDUAL_HIDDEN_INNER = variant(
    RESIDUAL,
    "suite-residual-hidden-inner",
    "state_dict_round_trip",
    "outputs after load_state_dict",
    target="HiddenInnerResidual",
    collateral={"devices_agree", "hyperparameters_have_effect", "forward_backward", "gradient_exact"},
)


@validated(RESIDUAL_HIDDEN_INNER.spec)
class HiddenInnerResidual(Residual):
    """Keeps the wrapped module in a plain list: state_dict() and .to() do not see it."""

    def __init__(self, inner: nn.Module, *, scale: float) -> None:
        super().__init__(nn.Identity(), scale=scale)
        self.hidden = [inner]

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * self.hidden[0](x)


SCALED_TANH_MODEL_TARGET = variant(
    SCALED_TANH,
    "suite-scaled-tanh-model-target",
    "spec_valid",
    "target must be an nn.Module subclass or a function",
    target=f"{METHODS}:ScaledTanhHyperparameters",
    collateral=None,
)
SCALED_TANH_RENAMED_CLAIM = variant(
    SCALED_TANH,
    "suite-scaled-tanh-renamed-claim",
    "spec_valid",
    f"'{METHODS}:scaled_tanh_claim' does not import",
    target="RenamedClaimScaledTanh",
    claims=(f"{METHODS}:scaled_tanh_claim",),
)


@validated(SCALED_TANH_RENAMED_CLAIM.spec)
class RenamedClaimScaledTanh(ScaledTanh):
    """The good layer under the name of a spec whose claim check was renamed."""


class LenientScaledTanhHyperparameters(Hyperparameters):
    """The spec's model with the bound on scale forgotten."""

    in_features: int = Field(4, ge=1)
    out_features: int = Field(3, ge=1)
    scale: float = 1.0


SCALED_TANH_LENIENT = variant(
    SCALED_TANH,
    "suite-scaled-tanh-lenient",
    "hyperparameters_validated",
    "scale=-1 was accepted",
    target="LenientScaledTanh",
)


@validated(bound_to(SCALED_TANH_LENIENT, LenientScaledTanhHyperparameters))
class LenientScaledTanh(nn.Module):
    """ScaledTanh bound to a stale copy of its spec whose model lacks the bound on scale."""

    forward = ScaledTanh.forward

    def __init__(self, *, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = scale


SCALED_TANH_NOISY = variant(
    SCALED_TANH,
    "suite-scaled-tanh-noisy",
    "deterministic",
    "two runs from the same seed",
    target="NoisyScaledTanh",
    collateral={"devices_agree", "gradient_exact", "state_dict_round_trip"},
)


@validated(SCALED_TANH_NOISY.spec)
class NoisyScaledTanh(ScaledTanh):
    """Noise injection in training mode, drawn from the global RNG."""

    def forward(self, inputs: Tensor) -> Tensor:
        output = super().forward(inputs)
        return output + 1e-3 * torch.randn_like(output) if self.training else output


SCALED_TANH_NO_GRAD = variant(
    SCALED_TANH,
    "suite-scaled-tanh-no-grad",
    "forward_backward",
    "no gradient reaches its inputs or parameters",
    target="NoGradScaledTanh",
    collateral={"gradient_exact"},
)


@validated(SCALED_TANH_NO_GRAD.spec)
class NoGradScaledTanh(ScaledTanh):
    """An 'inference fast path' that cuts the graph."""

    def forward(self, inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return super().forward(inputs)


SCALED_TANH_WRONG_BACKWARD = variant(
    SCALED_TANH,
    "suite-scaled-tanh-wrong-backward",
    "gradient_exact",
    "its gradient is declared exact but gradcheck fails in torch.float64",
    target="WrongBackwardScaledTanh",
)


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


@validated(SCALED_TANH_WRONG_BACKWARD.spec)
class WrongBackwardScaledTanh(ScaledTanh):
    def forward(self, inputs: Tensor) -> Tensor:
        return self.scale * TanhWithWrongDerivative.apply(self.linear(inputs))


STE_QUANTIZE_NO_SURROGATE = variant(
    STE_QUANTIZE,
    "suite-ste-quantize-no-surrogate",
    "gradient_flows",
    "its surrogate gradient is zero everywhere on the example",
    target="rounding_quantize",
)


@validated(STE_QUANTIZE_NO_SURROGATE.spec)
def rounding_quantize(inputs: Tensor, *, levels: int) -> Tensor:
    """Declared a surrogate, but the straight-through trick was left out: round() has zero gradient."""
    return torch.round(inputs * levels) / levels


SCALED_TANH_PLAIN_ATTRIBUTE = variant(
    SCALED_TANH,
    "suite-scaled-tanh-plain-attribute",
    "state_dict_round_trip",
    "outputs after load_state_dict",
    target="PlainAttributeScaledTanh",
)


@validated(SCALED_TANH_PLAIN_ATTRIBUTE.spec)
class PlainAttributeScaledTanh(ScaledTanh):
    """A random offset kept as a plain attribute: not in state_dict, not moved by .to()."""

    def __init__(self, *, in_features: int, out_features: int, scale: float) -> None:
        super().__init__(in_features=in_features, out_features=out_features, scale=scale)
        self.offset = 0.1 * torch.randn(self.linear.out_features)

    def forward(self, inputs: Tensor) -> Tensor:
        return super().forward(inputs) + self.offset.to(inputs.dtype)


SCALED_TANH_DEVICE_DEPENDENT = variant(
    SCALED_TANH,
    "suite-scaled-tanh-device-dependent",
    "devices_agree",
    "cpu vs ",
    target="CudaScaledTanh",
)


@validated(SCALED_TANH_DEVICE_DEPENDENT.spec)
class CudaScaledTanh(ScaledTanh):
    def forward(self, inputs: Tensor) -> Tensor:
        output = super().forward(inputs)
        return output * 1.01 if on_accelerator(inputs) else output


SCALED_TANH_STALE_DEFAULT = variant(
    SCALED_TANH,
    "suite-scaled-tanh-stale-default",
    "signature_matches_model",
    "the signature's default of 'scale' is 1.0 but the model's is 2.0",
    target="StaleDefaultScaledTanh",
    params=edited_defaults(ScaledTanhHyperparameters, scale=2.0),
)


@validated(bound_to(SCALED_TANH_STALE_DEFAULT, ScaledTanhHyperparameters))
class StaleDefaultScaledTanh(ScaledTanh):
    """Bound to the model as it was before the spec's scale default changed to 2.0: it still takes 1.0."""


# === loss =====================================================================================

DENOISING_DETACHED = variant(
    DENOISING,
    "suite-denoising-detached",
    "model_gradients",
    "no gradient reaches the model's parameters",
    target="detached_denoising_loss",
)


@validated(DENOISING_DETACHED.spec)
def detached_denoising_loss(
    model: nn.Module, x: Tensor, generator: torch.Generator | None = None, *, sigma: float, reduction: str
) -> Tensor:
    """Detaches the model's output: no gradient reaches the parameters (the loss itself still needs one)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    value = (model(x + sigma * noise).detach() - x).square().sum(1)
    return reduce(value + 0 * x.sum().requires_grad_(), reduction, DENOISING_DETACHED.name)


DENOISING_NOISELESS = variant(
    DENOISING,
    "suite-denoising-noiseless",
    "generator_matters",
    "does not draw its noise from its generator",
    target="noiseless_denoising_loss",
    collateral={"hyperparameters_have_effect"},
)


@validated(DENOISING_NOISELESS.spec)
def noiseless_denoising_loss(
    model: nn.Module, x: Tensor, generator: torch.Generator | None = None, *, sigma: float, reduction: str
) -> Tensor:
    """Forgets to draw the noise: a reconstruction loss that ignores its generator."""
    return reduce((model(x) - x).square().sum(1), reduction, DENOISING_NOISELESS.name)


DEFAULT_WEIGHTS = torch.ones(3)
"""What a loss spec's target must not point at: a tensor is not callable."""

SQUARED_ERROR_TENSOR_TARGET = variant(
    SQUARED_ERROR,
    "suite-squared-error-tensor-target",
    "spec_valid",
    "target must be an nn.Module subclass or a function",
    target="DEFAULT_WEIGHTS",
    collateral=None,
)
SQUARED_ERROR_UNCHECKED = variant(
    SQUARED_ERROR,
    "suite-squared-error-unchecked",
    "hyperparameters_validated",
    "weight=-1 was accepted",
    target="unchecked_squared_error",
)


def unchecked_squared_error(prediction: Tensor, target: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """No validation (and its defaults written a second time): a negative weight turns the loss into a reward."""
    return reduce(weight * (prediction - target) ** 2, reduction, SQUARED_ERROR_UNCHECKED.name)


SQUARED_ERROR_SUBSAMPLED = variant(
    SQUARED_ERROR,
    "suite-squared-error-subsampled",
    "deterministic",
    "two runs from the same seed",
    target="subsampled_squared_error",
    collateral={"devices_agree", "gradient_exact", "reduction_consistent"},
)


@validated(SQUARED_ERROR_SUBSAMPLED.spec)
def subsampled_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Averages a random half of the elements, drawn from the global RNG."""
    keep = (torch.rand(prediction.shape) < 0.5).to(device=prediction.device, dtype=prediction.dtype)
    return reduce(weight * keep * (prediction - target) ** 2, reduction, SQUARED_ERROR_SUBSAMPLED.name)


SQUARED_ERROR_FLOAT32 = variant(
    SQUARED_ERROR,
    "suite-squared-error-float32",
    "forward_backward",
    "output 0 is torch.float32; inputs are torch.float64",
    target="float32_squared_error",
    collateral={"gradient_exact"},
)


@validated(SQUARED_ERROR_FLOAT32.spec)
def float32_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Hard-codes float32 (a 'mixed-precision' shortcut) whatever the inputs' dtype."""
    return reduce(weight * (prediction.float() - target.float()) ** 2, reduction, SQUARED_ERROR_FLOAT32.name)


SQUARED_ERROR_WRONG_BACKWARD = variant(
    SQUARED_ERROR,
    "suite-squared-error-wrong-backward",
    "gradient_exact",
    "its gradient is declared exact but gradcheck fails in torch.float64",
    target="hand_differentiated_squared_error",
)


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


@validated(SQUARED_ERROR_WRONG_BACKWARD.spec)
def hand_differentiated_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    values = weight * SquaredErrorWithoutFactorTwo.apply(prediction, target)
    return reduce(values, reduction, SQUARED_ERROR_WRONG_BACKWARD.name)


ZERO_ONE_NO_SURROGATE = variant(
    ZERO_ONE,
    "suite-zero-one-no-surrogate",
    "gradient_flows",
    "its surrogate gradient is zero everywhere on the example",
    target="sign_zero_one",
    collateral={"hyperparameters_have_effect"},
)


@validated(ZERO_ONE_NO_SURROGATE.spec)
def sign_zero_one(scores: Tensor, labels: Tensor, *, temperature: float, reduction: str) -> Tensor:
    """Declared a surrogate, but sign() has zero gradient: nothing reaches the scores."""
    return reduce((1 - torch.sign(scores * labels)) / 2, reduction, ZERO_ONE_NO_SURROGATE.name)


SQUARED_ERROR_KEEPDIM = variant(
    SQUARED_ERROR,
    "suite-squared-error-keepdim",
    "returns_scalar",
    "with the default reduction it returned (1,), not a scalar tensor",
    target="keepdim_squared_error",
)


@validated(SQUARED_ERROR_KEEPDIM.spec)
def keepdim_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Reduces with keepdim: 'mean' and 'sum' come back with shape (1,), not as scalars."""
    values = (weight * (prediction - target) ** 2).flatten()
    if reduction == "mean":
        return values.mean(0, keepdim=True)
    if reduction == "sum":
        return values.sum(0, keepdim=True)
    return reduce(values.view_as(prediction), reduction, SQUARED_ERROR_KEEPDIM.name)


SQUARED_ERROR_SUM_AVERAGED = variant(
    SQUARED_ERROR,
    "suite-squared-error-sum-averaged",
    "reduction_consistent",
    "reduction='sum' gives",
    target="batch_averaged_squared_error",
)


@validated(SQUARED_ERROR_SUM_AVERAGED.spec)
def batch_averaged_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """'sum' sums per sample and then averages over the batch (so 'sum' is not the sum of 'none')."""
    values = weight * (prediction - target) ** 2
    if reduction == "sum":
        return values.sum() / values.shape[0]
    return reduce(values, reduction, SQUARED_ERROR_SUM_AVERAGED.name)


SQUARED_ERROR_DEVICE_DEPENDENT = variant(
    SQUARED_ERROR,
    "suite-squared-error-device-dependent",
    "devices_agree",
    "cpu vs ",
    target="device_dependent_squared_error",
)


@validated(SQUARED_ERROR_DEVICE_DEPENDENT.spec)
def device_dependent_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    weight = weight * (1.01 if on_accelerator(prediction) else 1.0)
    return reduce(weight * (prediction - target) ** 2, reduction, SQUARED_ERROR_DEVICE_DEPENDENT.name)


SQUARED_ERROR_STALE_DEFAULT = variant(
    SQUARED_ERROR,
    "suite-squared-error-stale-default",
    "signature_matches_model",
    "the signature's default of 'weight' is 1.0 but the model's is 2.0",
    target="stale_default_squared_error",
    params=edited_defaults(SquaredErrorHyperparameters, weight=2.0),
)


@validated(SQUARED_ERROR_STALE_DEFAULT.spec, SquaredErrorHyperparameters)
def stale_default_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Validated against the model as it was before the spec's weight default changed to 2.0: it still takes 1.0."""
    return weighted_squared_error.__wrapped__(prediction, target, weight=weight, reduction=reduction)


# === solver ===================================================================================


def _iterates(matrix: Tensor, rhs: Tensor, tol: float, max_iter: int, start: Tensor | None = None) -> list[Iterate]:
    """CG driven by hand, as a solver without the ``@solver`` frame does: until residual <= tol or max_iter."""
    history = []
    for iterate in conjugate_gradient_iterates(matrix, rhs, start):
        history.append(iterate)
        if float(iterate.residual) <= tol or len(history) > max_iter:
            break
    return history


def _result(history: list[Iterate], tol: float) -> SolverResult:
    residuals = torch.stack([torch.as_tensor(iterate.residual) for iterate in history])
    return SolverResult(history[-1].solution, bool(residuals[-1] <= tol), len(history) - 1, residuals)


CG_MUTE = variant(
    CONJUGATE_GRADIENT, "suite-cg-mute", "progress_reported", "never called it", target="mute_conjugate_gradient"
)


@validated(CG_MUTE.spec)
def mute_conjugate_gradient(
    matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int, progress: Any = None
) -> SolverResult:
    """Takes a progress callback and ignores it."""
    return _result(_iterates(matrix, rhs, tol, max_iter), tol)


CG_CHATTY = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-chatty",
    "progress_reported",
    "library calls stay silent",
    target="chatty_conjugate_gradient",
)


@validated(CG_CHATTY.spec)
def chatty_conjugate_gradient(
    matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int, progress: Any = None
) -> SolverResult:
    """Prints every residual when nobody asked."""
    history = _iterates(matrix, rhs, tol, max_iter)
    for step, iterate in enumerate(history):
        if progress is not None:
            progress(ProgressEvent(CG_CHATTY.name, step, max_iter, {}, done=step == len(history) - 1))
        else:
            print(f"iteration {step}: residual {float(iterate.residual):.3g}")
    return _result(history, tol)


CG_RESULT_TARGET = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-result-target",
    "spec_valid",
    "target must be a function returning gradhub.kinds.solver.SolverResult",
    target="gradhub.kinds.solver:SolverResult",
    collateral=None,
)


class ToleranceOnlyHyperparameters(Hyperparameters):
    """A solver's model that forgot max_iter."""

    tol: float = 1e-8


CG_NO_MAX_ITER = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-no-max-iter",
    "spec_valid",
    "must take the hyperparameter 'max_iter'; its model lacks it",
    target="forgotten_max_iter_cg",
    params=ToleranceOnlyHyperparameters,
)


@solver(bound_to(CG_NO_MAX_ITER, ConjugateGradientHyperparameters))
def forgotten_max_iter_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> Iterator[Iterate]:
    """The good solver; its spec's model (ToleranceOnlyHyperparameters) is the broken part."""
    yield from conjugate_gradient_iterates(matrix, rhs)


CG_PLAIN_ERRORS = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-plain-errors",
    "hyperparameters_validated",
    "tol=-1 raised ValueError",
    target="plain_error_cg",
)


def plain_error_cg(matrix: Tensor, rhs: Tensor, tol: float = 1e-8, max_iter: int = 100) -> SolverResult:
    """Validates by hand, with builtin exceptions a caller cannot tell from a crash."""
    if not tol >= 0 or math.isinf(tol):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    return _result(_iterates(matrix, rhs, tol, max_iter), tol)


CG_RANDOM_START = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-random-start",
    "deterministic",
    "two runs from the same seed",
    target="random_start_cg",
    collateral={"devices_agree"},
)


@validated(CG_RANDOM_START.spec)
def random_start_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Starts from a random guess drawn from the global RNG."""
    start = 0.01 * torch.randn(rhs.shape).to(device=rhs.device, dtype=rhs.dtype)
    return _result(_iterates(matrix, rhs, tol, max_iter, start), tol)


CG_SHORT_HISTORY = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-short-history",
    "result_contract",
    "residuals recorded for",
    target="short_history_cg",
)


@validated(CG_SHORT_HISTORY.spec)
def short_history_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Records the residual after each iteration but not the one before the first."""
    result = _result(_iterates(matrix, rhs, tol, max_iter), tol)
    return SolverResult(result.solution, result.converged, result.iterations, result.residuals[1:])


CG_TENSOR_FLAG = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-tensor-flag",
    "result_contract",
    "result.converged is Tensor, not bool",
    target="tensor_flag_cg",
)


@validated(CG_TENSOR_FLAG.spec)
def tensor_flag_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Reports converged as a 0-d bool tensor (a device sync waiting to happen in the caller)."""
    result = _result(_iterates(matrix, rhs, tol, max_iter), tol)
    return SolverResult(result.solution, result.residuals[-1] <= tol, result.iterations, result.residuals)  # type: ignore[arg-type]


CG_STALE_SOLUTION = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-stale-solution",
    "converges_within_tol",
    "it reports convergence, but the returned solution's residual is",
    target="stale_solution_cg",
)


@validated(CG_STALE_SOLUTION.spec)
def stale_solution_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Off by one: returns the iterate from before the last update, with the last residual."""
    history = _iterates(matrix, rhs, tol, max_iter)
    result = _result(history, tol)
    return SolverResult(
        history[max(len(history) - 2, 0)].solution, result.converged, result.iterations, result.residuals
    )


CG_OWN_CAP = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-own-cap",
    "max_iter_respected",
    "max_iter=1 but it ran",
    target="own_cap_cg",
    collateral={"hyperparameters_have_effect"},
)


@validated(CG_OWN_CAP.spec)
def own_cap_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Ignores max_iter for its own cap (CG 'converges in n steps', so it allows 2n)."""
    return _result(_iterates(matrix, rhs, tol, 2 * rhs.numel()), tol)


CG_ALWAYS_CONVERGED = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-always-converged",
    "max_iter_respected",
    "it reports convergence although the residual is above tol",
    target="always_converged_cg",
)


@validated(CG_ALWAYS_CONVERGED.spec)
def always_converged_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Reports converged=True whenever it stops, also when max_iter stopped it."""
    result = _result(_iterates(matrix, rhs, tol, max_iter), tol)
    return SolverResult(result.solution, True, result.iterations, result.residuals)


CG_DEVICE_DEPENDENT = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-device-dependent",
    "devices_agree",
    "cpu vs ",
    target="device_dependent_cg",
)


@solver(CG_DEVICE_DEPENDENT.spec)
def device_dependent_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> Iterator[Iterate]:
    """Solves a slightly different system on CUDA."""
    yield from conjugate_gradient_iterates(matrix, rhs * 1.01 if on_accelerator(rhs) else rhs)


CG_STALE_DEFAULT = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-stale-default",
    "signature_matches_model",
    "the signature's default of 'max_iter' is 100 but the model's is 50",
    target="stale_default_cg",
    params=edited_defaults(ConjugateGradientHyperparameters, max_iter=50),
)


@solver(bound_to(CG_STALE_DEFAULT, ConjugateGradientHyperparameters))
def stale_default_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> Iterator[Iterate]:
    """Bound to the model as it was before the spec's max_iter default changed to 50: it still allows 100."""
    yield from conjugate_gradient_iterates(matrix, rhs)


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
    step_of_eps: float | None = None,
) -> AttackResult:
    """PGD as in methods.py, with one switch per bug below (the defaults are the correct attack)."""
    perturbation = random_start(inputs, eps, generator if use_generator else None)
    steps = max_iter if iterations is None else iterations
    step_size = step_size if step_of_eps is None else eps * step_of_eps
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


def _attack_variant(
    broken: BrokenVariant, params: type[Hyperparameters] | None = None, **bug: Any
) -> Callable[..., AttackResult]:
    """``broken``'s attack, with one of :func:`_pgd`'s bugs, validated against ``params`` (default: its spec's)."""

    @validated(broken.spec, params)
    def attack(
        model: nn.Module,
        inputs: Tensor,
        labels: Tensor,
        generator: torch.Generator | None = None,
        *,
        eps: float,
        step_size: float,
        max_iter: int,
    ) -> AttackResult:
        return _pgd(model, inputs, labels, generator, eps, step_size, max_iter, **bug)

    return attack


PGD_MUTE = variant(
    PGD, "suite-pgd-mute", "progress_reported", "never called it", target="mute_projected_gradient_descent"
)


@validated(PGD_MUTE.spec)
def mute_projected_gradient_descent(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    eps: float,
    step_size: float,
    max_iter: int,
    progress: Any = None,
) -> AttackResult:
    """Takes a progress callback and ignores it."""
    return projected_gradient_descent.__wrapped__(
        model, inputs, labels, generator, eps=eps, step_size=step_size, max_iter=max_iter
    )


PGD_RESULT_TARGET = variant(
    PGD,
    "suite-pgd-result-target",
    "spec_valid",
    "target must be a function returning gradhub.kinds.attack.AttackResult",
    target="gradhub.kinds.attack:AttackResult",
    collateral=None,
)
PGD_UNCHECKED = variant(
    PGD, "suite-pgd-unchecked", "hyperparameters_validated", "eps=-1 was accepted", target="unchecked_pgd"
)


def unchecked_pgd(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    eps: float = 0.1,
    step_size: float = 0.05,
    max_iter: int = 3,
) -> AttackResult:
    """No validation (and its defaults written a second time): eps=-1 silently inverts the clamp."""
    return _pgd(model, inputs, labels, generator, eps, step_size, max_iter)


PGD_GLOBAL_RNG = variant(
    PGD, "suite-pgd-global-rng", "deterministic", "two runs from the same seed", target="global_rng_pgd"
)
global_rng_pgd = _attack_variant(PGD_GLOBAL_RNG, use_generator=False)

PGD_BACKWARD = variant(
    PGD,
    "suite-pgd-backward",
    "model_unchanged",
    "it changed the .grad of parameter '0.weight'; use torch.autograd.grad instead of backward()",
    target="backward_pgd",
)
backward_pgd = _attack_variant(PGD_BACKWARD, use_backward=True)

PGD_LEAVES_EVAL = variant(
    PGD,
    "suite-pgd-leaves-eval",
    "model_unchanged",
    "it changed the training mode of ['<root>', '0', '1', '2', '3']",
    target="eval_leaking_pgd",
)
eval_leaking_pgd = _attack_variant(PGD_LEAVES_EVAL, restore_mode=False)

PGD_TRAIN_MODE = variant(
    PGD,
    "suite-pgd-train-mode",
    "model_unchanged",
    "it changed the model's buffer '1.running_mean'",
    target="train_mode_pgd",
)
train_mode_pgd = _attack_variant(PGD_TRAIN_MODE, switch_to_eval=False)

PGD_FREEZES_MODEL = variant(
    PGD,
    "suite-pgd-freezes-model",
    "model_unchanged",
    "it changed requires_grad of parameter '0.weight'",
    target="freezing_pgd",
)
freezing_pgd = _attack_variant(PGD_FREEZES_MODEL, freeze_weights=True)

PGD_PROJECTS_FIRST = variant(PGD, "suite-pgd-projects-first", "budget_respected", "> eps=0.1", target="unclamped_pgd")
unclamped_pgd = _attack_variant(PGD_PROJECTS_FIRST, project_after_step=False)

PGD_EXTRA_STEP = variant(
    PGD,
    "suite-pgd-extra-step",
    "budget_respected",
    "it ran 4 iterations with max_iter=3",
    target="extra_step_pgd",
    collateral={"hyperparameters_have_effect"},
)
extra_step_pgd = _attack_variant(PGD_EXTRA_STEP, iterations=4)

PGD_STALE_DEFAULT = variant(
    PGD,
    "suite-pgd-stale-default",
    "signature_matches_model",
    "the signature's default of 'eps' is 0.1 but the model's is 0.3",
    target="stale_default_pgd",
    params=edited_defaults(ProjectedGradientHyperparameters, eps=0.3),
)
# Validated against the model as it was before the spec's eps default changed to 0.3: it still takes 0.1.
stale_default_pgd = _attack_variant(PGD_STALE_DEFAULT, ProjectedGradientHyperparameters)


# === sampler ==================================================================================


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


def _sampler_variant(broken: BrokenVariant, **bug: Any) -> Callable[..., SampleResult]:
    """The sampler of ``broken`` with one of :func:`_langevin`'s bugs switched on."""

    @validated(broken.spec)
    def sample(
        score: Callable[[Tensor], Tensor],
        start: Tensor,
        generator: torch.Generator | None = None,
        *,
        steps: int,
        step_size: float,
    ) -> SampleResult:
        return _langevin(score, start, generator, steps, step_size, **bug)

    return sample


GRADIENT_FLOW_JITTERED = variant(
    GRADIENT_FLOW,
    "suite-gradient-flow-jittered",
    "generator_matters",
    "declares stochastic=False",
    target="jittered_gradient_flow",
)


@sampler(GRADIENT_FLOW_JITTERED.spec, grid="ts")
def jittered_gradient_flow(call: SamplerCall, x: Tensor, t: float, t_next: float, *, rate: float) -> Tensor:
    """Declared deterministic, but perturbs its start with noise from the generator."""
    if call.index == 0:
        x = x + 1e-3 * call.noise(x)
    return gradient_flow.__wrapped__(call, x, t, t_next, rate=rate)


LANGEVIN_MUTE = variant(
    LANGEVIN, "suite-langevin-mute", "progress_reported", "never called it", target="mute_langevin_dynamics"
)


@validated(LANGEVIN_MUTE.spec)
def mute_langevin_dynamics(
    score: Any,
    start: Tensor,
    generator: torch.Generator | None = None,
    *,
    steps: int,
    step_size: float,
    progress: Any = None,
) -> Any:
    """Takes a progress callback and ignores it."""
    return langevin_dynamics.__wrapped__(score, start, generator, steps=steps, step_size=step_size)


LANGEVIN_RESULT_TARGET = variant(
    LANGEVIN,
    "suite-langevin-result-target",
    "spec_valid",
    "target must be a function returning gradhub.kinds.sampler.SampleResult",
    target="gradhub.kinds.sampler:SampleResult",
    collateral=None,
)
LANGEVIN_UNCHECKED = variant(
    LANGEVIN,
    "suite-langevin-unchecked",
    "hyperparameters_validated",
    "steps=0 was accepted",
    target="unchecked_langevin",
)


def unchecked_langevin(
    score: Callable[[Tensor], Tensor],
    start: Tensor,
    generator: torch.Generator | None = None,
    steps: int = 8,
    step_size: float = 0.1,
) -> SampleResult:
    """No validation (and its defaults written a second time): steps=0 returns the start point as 'samples'."""
    return _langevin(score, start, generator, steps, step_size)


LANGEVIN_GLOBAL_RNG = variant(
    LANGEVIN, "suite-langevin-global-rng", "deterministic", "two runs from the same seed", target="global_rng_langevin"
)
# Accepts a generator and ignores it: the noise comes from the global RNG.
global_rng_langevin = _sampler_variant(LANGEVIN_GLOBAL_RNG, noise_source=lambda start, given: None)

LANGEVIN_FIXED_SEED = variant(
    LANGEVIN,
    "suite-langevin-fixed-seed",
    "generator_matters",
    "generators seeded 0 and 1 gave identical samples",
    target="fixed_seed_langevin",
)
# "Reproducible by default": seeds its own generator with 0 and ignores the caller's.
fixed_seed_langevin = _sampler_variant(
    LANGEVIN_FIXED_SEED, noise_source=lambda start, given: torch.Generator(device=start.device).manual_seed(0)
)

LANGEVIN_UNCOUNTED_CORRECTOR = variant(
    LANGEVIN,
    "suite-langevin-uncounted-corrector",
    "evaluations_counted",
    "it reports 6 model evaluations but called the model 12 times",
    target="corrector_langevin",
)
# A corrector evaluation per step that the count leaves out.
corrector_langevin = _sampler_variant(LANGEVIN_UNCOUNTED_CORRECTOR, evaluations_per_step=2)

LANGEVIN_COUNTS_SAMPLES = variant(
    LANGEVIN,
    "suite-langevin-counts-samples",
    "evaluations_counted",
    "it reports 96 model evaluations but called the model 6 times",
    target="per_sample_count_langevin",
)
# Counts one evaluation per sample, although one batched call is one evaluation.
per_sample_count_langevin = _sampler_variant(
    LANGEVIN_COUNTS_SAMPLES, reported=lambda steps, samples: steps * samples.shape[0]
)

GRADIENT_FLOW_STALE_DEFAULT = variant(
    GRADIENT_FLOW,
    "suite-gradient-flow-stale-default",
    "signature_matches_model",
    "the signature's default of 'rate' is 1.0 but the model's is 0.5",
    target="stale_default_gradient_flow",
    params=edited_defaults(GradientFlowHyperparameters, rate=0.5),
)


@sampler(bound_to(GRADIENT_FLOW_STALE_DEFAULT, GradientFlowHyperparameters), grid="ts")
def stale_default_gradient_flow(call: SamplerCall, x: Tensor, t: float, t_next: float, *, rate: float) -> Tensor:
    """Bound to the model as it was before the spec's rate default changed to 0.5: it still takes 1.0."""
    return gradient_flow.__wrapped__(call, x, t, t_next, rate=rate)


# === schedule =================================================================================

COSINE_PATH_REVERSED = variant(
    COSINE_PATH,
    "suite-cosine-path-reversed",
    "noise_monotone",
    "the signal-to-noise ratio must strictly decrease",
    target="ReversedCosinePath",
)


@validated(COSINE_PATH_REVERSED.spec)
class ReversedCosinePath(CosinePath):
    """Noise at t_min and data at t_max: the time convention backwards."""

    def angle(self, t: Tensor) -> Tensor:
        return super().angle(1 - t)


SIGMOID_RAMP_NEGATIVE = variant(
    SIGMOID_RAMP,
    "suite-sigmoid-ramp-negative",
    "rates_nonnegative",
    "its value at p=",
    target="negative_ramp",
    collateral={"hyperparameters_have_effect"},
)


@validated(SIGMOID_RAMP_NEGATIVE.spec)
def negative_ramp(p: float, *, gamma: float) -> float:
    """A function of progress whose values dip below zero."""
    return math.sin(2 * math.pi * p)


COSINE_FACTORY_FUNCTION = variant(
    COSINE_FACTORY,
    "suite-cosine-factory-function",
    "rates_nonnegative",
    "as a factory it must give a torch LRScheduler",
    target="cosine_not_scheduler",
    collateral=None,
)


@validated(COSINE_FACTORY_FUNCTION.spec)
def cosine_not_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int) -> Any:
    """A factory that returns the multiplier function instead of the scheduler."""
    return lambda step: 1.0


WARMUP_DECAY_MODEL_TARGET = variant(
    WARMUP_DECAY,
    "suite-warmup-decay-model-target",
    "spec_valid",
    "a schedule target must be an LRScheduler (or factory)",
    target=f"{METHODS}:WarmupDecayHyperparameters",
    collateral=None,
)
WARMUP_DECAY_UNCHECKED = variant(
    WARMUP_DECAY,
    "suite-warmup-decay-unchecked",
    "hyperparameters_validated",
    "warmup_steps=-1 was accepted",
    target="UncheckedWarmupLinearDecay",
)


class UncheckedWarmupLinearDecay(WarmupLinearDecay):
    """No validation (and its defaults written a second time): warmup_steps=-1 gives rates above the base rate."""

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


WARMUP_DECAY_JITTER = variant(
    WARMUP_DECAY,
    "suite-warmup-decay-jitter",
    "deterministic",
    "two runs from the same seed",
    target="JitteredWarmupLinearDecay",
    collateral={"devices_agree", "state_dict_round_trip"},
)


@validated(WARMUP_DECAY_JITTER.spec)
class JitteredWarmupLinearDecay(WarmupLinearDecay):
    """Multiplies each rate by random jitter from the global RNG."""

    def get_lr(self) -> list[float]:
        jitter = 1 + 0.01 * torch.rand(()).item()
        return [rate * jitter for rate in super().get_lr()]


WARMUP_DECAY_UNCLAMPED = variant(
    WARMUP_DECAY,
    "suite-warmup-decay-unclamped",
    "rates_nonnegative",
    "rates must be finite and non-negative",
    target="UnclampedWarmupLinearDecay",
)


@validated(WARMUP_DECAY_UNCLAMPED.spec)
class UnclampedWarmupLinearDecay(WarmupLinearDecay):
    """The decay is not clamped at total_steps: past it, the rate goes negative."""

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 1 - (1 - self.final_ratio) * progress


WARMUP_DECAY_FORGETFUL = variant(
    WARMUP_DECAY,
    "suite-warmup-decay-forgetful",
    "state_dict_round_trip",
    "after a state_dict round trip the rate at step",
    target="ForgetfulWarmupLinearDecay",
)


@validated(WARMUP_DECAY_FORGETFUL.spec)
class ForgetfulWarmupLinearDecay(WarmupLinearDecay):
    """state_dict() saves only the base rates, not where in the schedule it is."""

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs}


WARMUP_DECAY_DEVICE_DEPENDENT = variant(
    WARMUP_DECAY,
    "suite-warmup-decay-device-dependent",
    "devices_agree",
    "cpu vs ",
    target="DeviceDependentWarmupLinearDecay",
)


@validated(WARMUP_DECAY_DEVICE_DEPENDENT.spec)
class DeviceDependentWarmupLinearDecay(WarmupLinearDecay):
    def get_lr(self) -> list[float]:
        factor = 1.01 if on_accelerator(self.optimizer.param_groups[0]["params"][0]) else 1.0
        return [rate * factor for rate in super().get_lr()]


SIGMOID_RAMP_STALE_DEFAULT = variant(
    SIGMOID_RAMP,
    "suite-sigmoid-ramp-stale-default",
    "signature_matches_model",
    "the signature's default of 'gamma' is 10.0 but the model's is 5.0",
    target="stale_default_ramp",
    params=edited_defaults(RampHyperparameters, gamma=5.0),
)


@validated(SIGMOID_RAMP_STALE_DEFAULT.spec, RampHyperparameters)
def stale_default_ramp(p: float, *, gamma: float) -> float:
    """Validated against the model as it was before the spec's gamma default changed to 5.0: it still takes 10.0."""
    return sigmoid_ramp.__wrapped__(p, gamma=gamma)


# === probe ====================================================================================

GRADIENT_NORM_CLIPPING = variant(
    GRADIENT_NORM,
    "suite-gradient-norm-clipping",
    "recorder_passive",
    "it changed the .grad of parameter",
    target="ClippingRecorder",
)


@validated(GRADIENT_NORM_CLIPPING.spec)
class ClippingRecorder(GradientNormRecorder):
    """Clips the gradients while measuring them: recording changes the run."""

    def record(self) -> Tensor:
        value = super().record()
        torch.nn.utils.clip_grad_norm_(self.parameters, 0.01)
        return value


GRADIENT_NORM_AMNESIC = variant(
    GRADIENT_NORM,
    "suite-gradient-norm-amnesic",
    "recorder_resume",
    "the final state_dict after a round trip",
    target="AmnesicRecorder",
)


@validated(GRADIENT_NORM_AMNESIC.spec)
class AmnesicRecorder(GradientNormRecorder):
    """load_state_dict() ignores the saved history: a resumed run loses the steps before the checkpoint."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = []


SHARPNESS_MUTE = variant(
    SHARPNESS, "suite-sharpness-mute", "progress_reported", "never called it", target="mute_random_direction_sharpness"
)


@validated(SHARPNESS_MUTE.spec)
def mute_random_direction_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
    progress: Any = None,
) -> Any:
    """Takes a progress callback and ignores it."""
    return random_direction_sharpness.__wrapped__(
        model, inputs, labels, generator, radius=radius, directions=directions
    )


SHARPNESS_CLASS_TARGET = variant(
    SHARPNESS,
    "suite-sharpness-class-target",
    "spec_valid",
    "a probe target must be the function itself",
    target="SharpnessProbe",
    collateral=None,
)


class SharpnessProbe:
    """The probe wrapped in a class: a probe target must be the function itself."""

    def __call__(self, model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        return random_direction_sharpness(model, *args, **kwargs)


SHARPNESS_UNCHECKED = variant(
    SHARPNESS,
    "suite-sharpness-unchecked",
    "hyperparameters_validated",
    "radius=-1 was accepted",
    target="unchecked_sharpness",
)


def unchecked_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    radius: float = 0.05,
    directions: int = 4,
) -> dict[str, Tensor]:
    """No validation (and its defaults written a second time): radius=-1 measures along the opposite directions."""
    return random_direction_sharpness.__wrapped__(
        model, inputs, labels, generator, radius=radius, directions=directions
    )


SHARPNESS_GLOBAL_RNG = variant(
    SHARPNESS,
    "suite-sharpness-global-rng",
    "deterministic",
    "two runs from the same seed",
    target="global_rng_sharpness",
)


@validated(SHARPNESS_GLOBAL_RNG.spec)
def global_rng_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
) -> dict[str, Tensor]:
    """Accepts a generator and ignores it: directions come from the global RNG."""
    return random_direction_sharpness.__wrapped__(model, inputs, labels, None, radius=radius, directions=directions)


SHARPNESS_IN_PLACE = variant(
    SHARPNESS,
    "suite-sharpness-in-place",
    "model_unchanged",
    "it changed the model's parameter",
    target="in_place_sharpness",
)


@validated(SHARPNESS_IN_PLACE.spec)
def in_place_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
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


SHARPNESS_TRAIN_MODE = variant(
    SHARPNESS,
    "suite-sharpness-train-mode",
    "model_unchanged",
    "it changed the model's buffer '1.running_mean'",
    target="train_mode_sharpness",
)


@validated(SHARPNESS_TRAIN_MODE.spec)
def train_mode_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
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


SHARPNESS_TEXT = variant(
    SHARPNESS,
    "suite-sharpness-text",
    "model_unchanged",
    "it returned str with no tensor or number in it",
    target="text_sharpness",
    collateral={"hyperparameters_have_effect"},
)


@validated(SHARPNESS_TEXT.spec)
def text_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
) -> str:
    """Returns a formatted report instead of the measurement."""
    result = random_direction_sharpness.__wrapped__(
        model, inputs, labels, generator, radius=radius, directions=directions
    )
    return f"sharpness {result['sharpness'].item():.4f}"


SHARPNESS_STALE_DEFAULT = variant(
    SHARPNESS,
    "suite-sharpness-stale-default",
    "signature_matches_model",
    "the signature's default of 'radius' is 0.05 but the model's is 0.1",
    target="stale_default_sharpness",
    params=edited_defaults(SharpnessHyperparameters, radius=0.1),
)


@validated(SHARPNESS_STALE_DEFAULT.spec, SharpnessHyperparameters)
def stale_default_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
) -> dict[str, Tensor]:
    """Validated against the model as it was before the spec's radius default changed to 0.1: it still takes 0.05."""
    return random_direction_sharpness.__wrapped__(
        model, inputs, labels, generator, radius=radius, directions=directions
    )


# --- Lion, as a stranger writes it from CONTRIBUTING.md, with one bug planted at a time ------------


def _lion_paths(step: Callable[..., None]) -> dict[str, Any]:
    """Both paths of a Lion variant from one per-tensor update ``step(param, grad, exp_avg, options)``."""

    def paths(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], options: Any) -> None:
        for param, grad, exp_avg in zip(params, grads, exp_avgs):
            step(param, grad, exp_avg, options)

    return {"single_tensor": staticmethod(paths), "multi_tensor": staticmethod(paths)}


LION_FORGETS_WEIGHT_DECAY = variant(
    LION,
    "suite-lion-forgets-weight-decay",
    "hyperparameters_have_effect",
    "changing weight_decay from its value in the example",
    target="LionForgetsWeightDecay",
)


def _lion_without_decay(param: Tensor, grad: Tensor, exp_avg: Tensor, options: LionHyperparameters) -> None:
    (beta1, beta2), lr = options.betas, options.lr
    param.add_(torch.lerp(grad, exp_avg, beta1).sign_(), alpha=-lr)
    exp_avg.lerp_(grad, 1 - beta2)


class LionForgetsWeightDecay(Lion):
    """Lion whose update never applies weight decay (every path forgets it alike)."""

    spec = LION_FORGETS_WEIGHT_DECAY.spec
    locals().update(_lion_paths(_lion_without_decay))


LION_SIGN_OF_MOMENTUM = variant(
    LION,
    "suite-lion-sign-of-momentum",
    "hyperparameters_have_effect",
    "changing betas[0] from its value in the example",
    target="LionSignOfMomentum",
)


def _lion_sign_of_m(param: Tensor, grad: Tensor, exp_avg: Tensor, options: LionHyperparameters) -> None:
    _, beta2 = options.betas
    param.mul_(1 - options.lr * options.weight_decay)
    exp_avg.lerp_(grad, 1 - beta2)
    param.add_(exp_avg.sign(), alpha=-options.lr)  # sign(m), not sign(c): beta1 is never used


class LionSignOfMomentum(Lion):
    """Lion stepping along sign(m) (the momentum after its update) instead of sign(c) = sign(b1 m + (1 - b1) g)."""

    spec = LION_SIGN_OF_MOMENTUM.spec
    locals().update(_lion_paths(_lion_sign_of_m))


LION_SCALES_GRADIENTS = variant(
    LION,
    "suite-lion-scales-gradients",
    "gradients_left_as_autograd_made_them",
    "changed the gradient of parameter 0 in place",
    target="LionScalesGradients",
)


def _lion_scaling_grad(param: Tensor, grad: Tensor, exp_avg: Tensor, options: LionHyperparameters) -> None:
    (beta1, beta2), lr = options.betas, options.lr
    grad.mul_(1 - beta1)  # reuses .grad as scratch: the caller's gradient is changed
    param.mul_(1 - lr * options.weight_decay).add_(exp_avg.mul(beta1).add_(grad).sign_(), alpha=-lr)
    exp_avg.lerp_(grad.div_(1 - beta1), 1 - beta2)


class LionScalesGradients(Lion):
    """Lion that scales p.grad in place to build c and scales it back: .grad is rounded, not as autograd made it."""

    spec = LION_SCALES_GRADIENTS.spec
    locals().update(_lion_paths(_lion_scaling_grad))


LION_ACCEPTS_HALF = variant(
    LION,
    "suite-lion-accepts-half",
    "undeclared_dtypes_refused",
    "a float16 parameter was accepted",
    target="LionAcceptsHalf",
)


class LionAcceptsHalf(Lion):
    """Lion whose add_param_group skips gradhub's checks (torch's alone): undeclared dtypes get in."""

    spec = LION_ACCEPTS_HALF.spec

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        torch.optim.Optimizer.add_param_group(self, param_group)


SQUARED_ERROR_EDITS_TARGET = variant(
    SQUARED_ERROR,
    "suite-squared-error-edits-target",
    "inputs_not_modified",
    "changed input tensor 1",
    target="squared_error_editing_target",
)


@validated(SQUARED_ERROR_EDITS_TARGET.spec)
def squared_error_editing_target(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Clips the caller's target in place before using it: the loss is right once, the caller's data is not."""
    target.detach().clamp_(-0.5, 0.5)
    return reduce(weight * (prediction - target) ** 2, reduction, SQUARED_ERROR_EDITS_TARGET.spec.name)


def _edits_its_input(function: Callable[..., Any], position: int) -> Callable[..., Any]:
    """``function``, but it shifts the tensor passed at ``position`` by 0.5 in place once it has its result."""

    @functools.wraps(function)
    def edited(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        args[position].detach().add_(0.5)
        return result

    return edited


CG_EDITS_RHS = variant(
    CONJUGATE_GRADIENT,
    "suite-cg-edits-rhs",
    "inputs_not_modified",
    "changed input tensor 1",
    target="cg_editing_rhs",
    collateral={"converges_within_tol"},  # the example's residual reads the shifted right-hand side
)
cg_editing_rhs = _edits_its_input(solver(CG_EDITS_RHS.spec)(gradhub_suite_methods.conjugate_gradient.__wrapped__), 1)

PGD_EDITS_INPUTS = variant(
    PGD,
    "suite-pgd-edits-inputs",
    "inputs_not_modified",
    "changed input tensor 0",
    target="pgd_editing_inputs",
    collateral={"budget_respected"},  # the budget is measured from the (shifted) clean input
)
pgd_editing_inputs = _edits_its_input(validated(PGD_EDITS_INPUTS.spec)(projected_gradient_descent.__wrapped__), 1)

LANGEVIN_EDITS_START = variant(
    LANGEVIN,
    "suite-langevin-edits-start",
    "inputs_not_modified",
    "changed input tensor 0",
    target="langevin_editing_start",
)
langevin_editing_start = _edits_its_input(validated(LANGEVIN_EDITS_START.spec)(langevin_dynamics.__wrapped__), 1)

SHARPNESS_EDITS_INPUTS = variant(
    SHARPNESS,
    "suite-sharpness-edits-inputs",
    "inputs_not_modified",
    "changed input tensor 0",
    target="sharpness_editing_inputs",
)
sharpness_editing_inputs = _edits_its_input(
    validated(SHARPNESS_EDITS_INPUTS.spec)(random_direction_sharpness.__wrapped__), 1
)

SCALED_TANH_EDITS_INPUTS = variant(
    SCALED_TANH,
    "suite-scaled-tanh-edits-inputs",
    "inputs_not_modified",
    "changed input tensor 0",
    target="ScaledTanhEditingInputs",
    # Editing an input autograd saved breaks every backward through it, and a second forward sees other data.
    collateral={
        "devices_agree",
        "hyperparameters_have_effect",
        "deterministic",
        "forward_backward",
        "gradient_exact",
        "state_dict_round_trip",
    },
)


@validated(SCALED_TANH_EDITS_INPUTS.spec)
class ScaledTanhEditingInputs(ScaledTanh):
    """ScaledTanh that shifts its input in place after using it."""

    def forward(self, inputs: Tensor) -> Tensor:
        output = super().forward(inputs)
        inputs.detach().add_(0.5)
        return output


# --- an optimizer whose compiled step recompiles every step ---------------------------------

FUSED_MOMENTUM_READ_BACK = variant(
    FUSED_MOMENTUM,
    "suite-fused-momentum-read-back",
    "compiled_step",
    "the step ran eagerly",
    target="ReadBackMomentumSGD",
)


def _first_step_copies(
    params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], steps: list[Any], options: Any
) -> None:
    """torch.optim.SGD's first step (buffer = g), keyed on ``int(step)``: a host read-back of the count."""
    lr, momentum = options.lr, options.momentum
    for param, grad, buffer, step in zip(params, grads, buffers, steps):
        if int(step) == 1:
            buffer.copy_(grad)
        else:
            buffer.mul_(momentum).add_(grad)
        if options.weight_decay:
            param.mul_(1 - lr * options.weight_decay)
        param.add_(buffer, alpha=-lr)


def _without_steps(path: Callable[..., Any]) -> Any:
    return staticmethod(lambda params, grads, buffers, steps, options: path(params, grads, buffers, options))


class ReadBackMomentumSGD(FusedMomentumSGD):
    """Counts steps and branches on ``int(step)``: under torch.compile the read-back stops the trace (eager)."""

    spec = FUSED_MOMENTUM_READ_BACK.spec
    counts_steps = True
    single_tensor = staticmethod(_first_step_copies)
    multi_tensor = _without_steps(multi_tensor_momentum)
    fused_kernel = _without_steps(fused_momentum)


# --- a hyperparameter declared, validated and then never read: one per kind ------------------


def _ignores(good: MethodSpec, name: str, field: str, target: str, **fields: Any) -> BrokenVariant:
    return variant(
        good, name, "hyperparameters_have_effect", f"changing {field} from its value", target=target, **fields
    )


SCALED_TANH_UNSCALED = _ignores(SCALED_TANH, "suite-scaled-tanh-unscaled", "scale", "UnscaledTanh")


@validated(SCALED_TANH_UNSCALED.spec)
class UnscaledTanh(ScaledTanh):
    """Stores ``scale`` and forgets to multiply by it."""

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.tanh(self.linear(inputs))


SQUARED_ERROR_UNWEIGHTED = _ignores(SQUARED_ERROR, "suite-squared-error-unweighted", "weight", "unweighted_error")


@validated(SQUARED_ERROR_UNWEIGHTED.spec)
def unweighted_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Takes ``weight`` and never applies it."""
    return reduce((prediction - target) ** 2, reduction, SQUARED_ERROR_UNWEIGHTED.name)


CG_OWN_TOLERANCE = _ignores(CONJUGATE_GRADIENT, "suite-cg-own-tolerance", "tol", "own_tolerance_cg")


@validated(CG_OWN_TOLERANCE.spec)
def own_tolerance_cg(matrix: Tensor, rhs: Tensor, *, tol: float, max_iter: int) -> SolverResult:
    """Stops at a tolerance of its own, relative to the precision, whatever ``tol`` says."""
    own = 1e-10 if rhs.dtype == torch.float64 else 1e-4
    return _result(_iterates(matrix, rhs, own, max_iter), own)


PGD_RULE_OF_THUMB_STEP = _ignores(PGD, "suite-pgd-rule-of-thumb-step", "step_size", "rule_of_thumb_pgd")


# Steps eps/2 (a common rule of thumb) instead of the given step_size.
rule_of_thumb_pgd = _attack_variant(PGD_RULE_OF_THUMB_STEP, step_of_eps=0.5)


LANGEVIN_FIXED_STEP = _ignores(LANGEVIN, "suite-langevin-fixed-step", "step_size", "fixed_step_langevin")


@validated(LANGEVIN_FIXED_STEP.spec)
def fixed_step_langevin(
    score: Callable[[Tensor], Tensor],
    start: Tensor,
    generator: torch.Generator | None = None,
    *,
    steps: int,
    step_size: float,
) -> SampleResult:
    """Takes ``step_size`` and steps by the default 0.1 whatever it is."""
    return _langevin(score, start, generator, steps, 0.1)


WARMUP_DECAY_TO_ZERO = _ignores(WARMUP_DECAY, "suite-warmup-decay-to-zero", "final_ratio", "WarmupDecayToZero")


@validated(WARMUP_DECAY_TO_ZERO.spec)
class WarmupDecayToZero(WarmupLinearDecay):
    """Decays to zero whatever ``final_ratio`` says."""

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return 1 - min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))


SHARPNESS_FIXED_RADIUS = _ignores(SHARPNESS, "suite-sharpness-fixed-radius", "radius", "fixed_radius_sharpness")


@validated(SHARPNESS_FIXED_RADIUS.spec)
def fixed_radius_sharpness(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    radius: float,
    directions: int,
) -> dict[str, Tensor]:
    """Moves the weights by the default radius 0.05 whatever ``radius`` says."""
    return random_direction_sharpness.__wrapped__(model, inputs, labels, generator, radius=0.05, directions=directions)


BROKEN_VARIANTS: tuple[BrokenVariant, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, BrokenVariant)
)
"""Every broken variant above, in order, read from the module as the registry reads an entry module's specs.

All are registered in-process (``entry_module_torch_free`` needs an installed distribution;
``test_entry_module.py`` builds those)."""


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


SQUARED_ERROR_ANY_REDUCTION = variant(
    SQUARED_ERROR,
    "suite-squared-error-any-reduction",
    "hyperparameters_validated",
    "reduction='bogus' was accepted",
    target="any_reduction_squared_error",
)


@validated(SQUARED_ERROR_ANY_REDUCTION.spec, LooseReductionHyperparameters)
def any_reduction_squared_error(prediction: Tensor, target: Tensor, *, weight: float, reduction: str) -> Tensor:
    """Anything but 'none' and 'sum' is taken as 'mean': reduction='bogus' is silently accepted."""
    values = weight * (prediction - target) ** 2
    return values if reduction == "none" else values.sum() if reduction == "sum" else values.mean()


PGD_UNDER_REPORTS = variant(
    PGD, "suite-pgd-under-reports", "budget_respected", "iterations with max_iter=3", target="under_reporting_pgd"
)


@validated(PGD_UNDER_REPORTS.spec)
def under_reporting_pgd(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    generator: torch.Generator | None = None,
    *,
    eps: float,
    step_size: float,
    max_iter: int,
) -> AttackResult:
    """Runs twice the allowed iterations and reports max_iter."""
    result = _pgd(model, inputs, labels, generator, eps, step_size, max_iter, iterations=2 * max_iter)
    return AttackResult(output=result.output, iterations=max_iter)


SQUARED_ERROR_SUM_AVERAGED_NO_NONE = variant(
    SQUARED_ERROR,
    "suite-squared-error-sum-averaged-no-none",
    "reduction_consistent",
    "reduction='sum' gives",
    target="batch_averaged_squared_error_without_none",
    capabilities=with_capabilities(SQUARED_ERROR, reductions=("mean", "sum")),
)


@validated(SQUARED_ERROR_SUM_AVERAGED_NO_NONE.spec)
def batch_averaged_squared_error_without_none(
    prediction: Tensor, target: Tensor, *, weight: float, reduction: str
) -> Tensor:
    """batch_averaged_squared_error under its own name; its spec declares only 'mean' and 'sum'."""
    return batch_averaged_squared_error.__wrapped__(prediction, target, weight=weight, reduction=reduction)


MOMENTUM_OWN_DEFAULTS = variant(
    MOMENTUM,
    "suite-momentum-own-defaults",
    "signature_matches_model",
    "the signature's default of 'lr' is 0.01 but the model's is 0.1",
    target="OwnDefaultsMomentumSGD",
)


class OwnDefaultsMomentumSGD(MomentumSGD):
    """Bound to its spec, with a constructor of its own that writes lr=0.01: the signature users see says 0.1."""

    spec = MOMENTUM_OWN_DEFAULTS.spec

    def __init__(self, params: Any, lr: float = 0.01, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, lr, *args, **kwargs)


UNSEEN_BUGS = {
    "literal_hyperparameters_never_tried": SQUARED_ERROR_ANY_REDUCTION,
    "self_reported_iterations": PGD_UNDER_REPORTS,
    "reductions_without_none": SQUARED_ERROR_SUM_AVERAGED_NO_NONE,
    "constructor_defaults_hidden": MOMENTUM_OWN_DEFAULTS,
}
"""Broken methods that pass the check that should catch them; see test_problems.py."""
