"""Conformance checks for optimizers (after PyTorch's own optimizer tests)."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import torch
from torch import nn

from gradhub.errors import GradhubError
from gradhub.kernels.native import KernelUnavailableWarning
from gradhub.kinds.optimizer import FusedFallbackWarning, OptimizerExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_close,
    assert_finite,
    fail,
    load_example,
    load_target,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> OptimizerExample:
    return load_example(spec, device, dtype, seed, OptimizerExample)


def _optimizer(spec: MethodSpec, params: Any, hparams: dict[str, Any], **overrides: Any) -> torch.optim.Optimizer:
    return load_target(spec)(params, **{**hparams, **overrides})


def _closure(example: OptimizerExample, optimizers: list[torch.optim.Optimizer]) -> Any:
    def closure() -> torch.Tensor:
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss = example.loss()
        loss.backward()
        return loss

    return closure


def _train(spec: MethodSpec, example: OptimizerExample, optimizers: list[torch.optim.Optimizer], steps: int) -> None:
    closure = _closure(example, optimizers)
    for _ in range(steps):
        if spec.capabilities.requires_closure:
            for optimizer in optimizers:
                optimizer.step(closure)
        else:
            closure()
            for optimizer in optimizers:
                optimizer.step()


def _state_tensors(optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> list[torch.Tensor]:
    tensors = []
    for param in params:
        state = optimizer.state.get(param, {})
        for key in sorted(state):
            value = state[key]
            tensors.append(value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value)))
    return tensors


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    params = list(example.model.parameters())
    optimizer = _optimizer(spec, params, example.hparams)
    _train(spec, example, [optimizer], example.steps)
    return [p.detach().clone() for p in params] + _state_tensors(optimizer, params)


def _invoke(spec: MethodSpec, example: OptimizerExample, hparams: dict[str, Any]) -> Any:
    return _optimizer(spec, example.model.parameters(), hparams)


RUNNERS["optimizer"] = _run
INVOKERS["optimizer"] = (OptimizerExample, _invoke)


@conformance_check("optimizer")
def check_loss_decreases(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """The example's loss goes down over its steps, and nothing becomes NaN."""
    example = _example(spec, device, dtype)
    with torch.no_grad():
        before = example.loss().item()
    optimizer = _optimizer(spec, example.model.parameters(), example.hparams)
    _train(spec, example, [optimizer], example.steps)
    assert_finite(spec, [p.detach() for p in example.model.parameters()], "parameters after the example's steps")
    with torch.no_grad():
        after = example.loss().item()
    if not after < before:
        fail(
            spec,
            f"the example's loss did not go down: {before:.6g} -> {after:.6g} after {example.steps} steps with "
            f"{example.hparams}",
        )


@conformance_check("optimizer")
def check_step_with_closure(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """step(closure) evaluates the closure and returns its loss, as torch.optim optimizers do."""
    example = _example(spec, device, dtype)
    optimizer = _optimizer(spec, example.model.parameters(), example.hparams)
    calls = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = example.loss()
        loss.backward()
        calls.append(loss)
        return loss

    returned = optimizer.step(closure)
    if not calls:
        fail(spec, "step(closure) never called the closure")
    if not isinstance(returned, torch.Tensor) or not any(returned is loss for loss in calls):
        fail(spec, f"step(closure) returned {returned!r}, not the loss the closure returned")
    if spec.capabilities.requires_closure:
        try:
            optimizer.step()
        except GradhubError as error:
            if "closure" not in str(error):
                fail(spec, f"step() without a closure raised {error!r}, which does not say a closure is needed")
        else:
            fail(spec, "it declares requires_closure, but step() without a closure did not raise")


@conformance_check(
    "optimizer", dtypes="precise", applies=lambda spec: spec.capabilities.supports_foreach, when="supports_foreach"
)
def check_foreach_matches_single(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """The multi-tensor path (foreach=True) gives the per-tensor path's parameters and state, and on a CPU
    so does its accelerator formulation (what a GPU runs, on CPU tensors: kernels.accelerator_formulation)."""
    from gradhub.kernels import accelerator_formulation

    runs = [("foreach=False", False, False), ("foreach=True", True, False)]
    if device.type == "cpu":
        runs.append(("foreach=True in the accelerator formulation (as on a GPU)", True, True))
    results = []
    for _, foreach, accelerator in runs:
        example = _example(spec, device, dtype)
        params = list(example.model.parameters())
        optimizer = _optimizer(spec, params, example.hparams, foreach=foreach)
        with accelerator_formulation() if accelerator else contextlib.nullcontext():
            _train(spec, example, [optimizer], example.steps)
        results.append([p.detach().clone() for p in params] + _state_tensors(optimizer, params))
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for (label, _, _), result in zip(runs[1:], results[1:]):
        assert_close(spec, results[0], result, f"{label} vs foreach=False", rtol=tolerance, atol=tolerance)


@conformance_check(
    "optimizer", dtypes="precise", applies=lambda spec: bool(spec.capabilities.fused), when="declares a fused path"
)
def check_fused_matches_single(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """fused=True gives the per-tensor path's parameters and state, and it really ran fused.

    On the CPU the example's tensors must all take the fused kernel: a kernel that could not
    be compiled here, or tensors it turned away, fail the check with the warning's text. On
    other devices fused=True may fall back (with a warning); the results must still agree.
    """
    results = []
    for fused in (False, True):
        example = _example(spec, device, dtype)
        params = list(example.model.parameters())
        options = {"fused": True} if fused else {"foreach": False}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimizer = _optimizer(spec, params, example.hparams, **options)
            _train(spec, example, [optimizer], example.steps)
        fallbacks = [w for w in caught if issubclass(w.category, (FusedFallbackWarning, KernelUnavailableWarning))]
        if fused and device.type == "cpu" and fallbacks:
            fail(spec, f"fused=True did not run its fused kernel: {fallbacks[0].message}")
        results.append([p.detach().clone() for p in params] + _state_tensors(optimizer, params))
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    assert_close(spec, results[0], results[1], "fused=True vs foreach=False", rtol=tolerance, atol=tolerance)


def _lr_override(spec: MethodSpec, hparams: dict[str, Any]) -> dict[str, Any]:
    if "lr" not in spec.params.model_fields:
        return {}
    lr = hparams.get("lr", spec.params.model_fields["lr"].default)
    return {"lr": lr * 0.5} if isinstance(lr, float | int) else {}


@conformance_check(
    "optimizer",
    dtypes="precise",
    applies=lambda spec: spec.capabilities.param_groups and not spec.capabilities.requires_closure,
    when="param_groups and not requires_closure (a closure re-evaluates the whole model between optimizers)",
)
def check_param_groups_independent(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Two param groups (the second with half the lr) behave like two separate optimizers."""
    runs = []
    for joint in (True, False):
        example = _example(spec, device, dtype)
        params = list(example.model.parameters())
        first, second = params[: len(params) // 2], params[len(params) // 2 :]
        override = _lr_override(spec, example.hparams)
        if joint:
            optimizers = [_optimizer(spec, [{"params": first}, {"params": second, **override}], example.hparams)]
        else:
            optimizers = [
                _optimizer(spec, first, example.hparams),
                _optimizer(spec, second, example.hparams, **override),
            ]
        _train(spec, example, optimizers, example.steps)
        runs.append([p.detach().clone() for p in params])
    tolerance = 1e-12 if dtype == torch.float64 else 1e-6
    assert_close(spec, runs[1], runs[0], "one optimizer with two param groups vs two optimizers", tolerance, tolerance)


@conformance_check("optimizer", dtypes="declared")
def check_none_gradients_skipped(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """A parameter whose .grad is None is neither changed nor given state."""
    example = _example(spec, device, dtype)
    unused = nn.Parameter(torch.ones(3, 4, device=device, dtype=dtype))
    optimizer = _optimizer(spec, [*example.model.parameters(), unused], example.hparams)
    _train(spec, example, [optimizer], 3)
    if not torch.equal(unused.detach(), torch.ones_like(unused)):
        fail(spec, "it changed a parameter whose .grad is None (weight decay applied without a gradient?)")
    if optimizer.state.get(unused):
        fail(spec, f"it created state {sorted(optimizer.state[unused])} for a parameter whose .grad is None")


def _round_trip(value: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@conformance_check("optimizer", dtypes="declared")
def check_resume_exact(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """n steps equal k steps, save, load into a fresh optimizer (torch.load, weights_only), n-k steps.

    The fresh optimizer first loads its own (empty) state, as accelerate's wrapper does before the
    Hugging Face Trainer loads the checkpoint into it: a second load must work like the first.
    """
    total, first = 6, 3
    straight = _example(spec, device, dtype)
    params = list(straight.model.parameters())
    _train(spec, straight, [_optimizer(spec, params, straight.hparams)], total)

    interrupted = _example(spec, device, dtype)
    optimizer = _optimizer(spec, interrupted.model.parameters(), interrupted.hparams)
    _train(spec, interrupted, [optimizer], first)
    model_state, optimizer_state = _round_trip(interrupted.model.state_dict()), _round_trip(optimizer.state_dict())

    resumed = _example(spec, device, dtype)
    resumed.model.load_state_dict(model_state)
    fresh = _optimizer(spec, resumed.model.parameters(), resumed.hparams)
    fresh.load_state_dict(fresh.state_dict())
    fresh.load_state_dict(optimizer_state)
    _train(spec, resumed, [fresh], total - first)
    assert_close(
        spec,
        [p.detach() for p in params],
        [p.detach() for p in resumed.model.parameters()],
        f"{total} steps vs {first} steps + state_dict save/load + {total - first} steps "
        "(does state_dict() hold all the state?)",
    )


@conformance_check("optimizer", dtypes="declared")
def check_state_on_parameter_device(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Every non-scalar state tensor lives on its parameter's device, in its parameter's dtype."""
    example = _example(spec, device, dtype)
    params = list(example.model.parameters())
    optimizer = _optimizer(spec, params, example.hparams)
    _train(spec, example, [optimizer], 2)
    for index, param in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue
            if value.device != param.device:
                fail(spec, f"state {key!r} of parameter {index} is on {value.device}, the parameter on {param.device}")
            if value.is_floating_point() and value.dtype != param.dtype:
                fail(spec, f"state {key!r} of parameter {index} is {value.dtype}, the parameter {param.dtype}")


@conformance_check("optimizer", dtypes="declared")
def check_parameter_dtype_kept(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Steps keep each parameter's dtype, device and storage, and leave it finite."""
    example = _example(spec, device, dtype)
    params = list(example.model.parameters())
    originals = [p.data for p in params]  # kept alive, so a replaced storage cannot reuse the address
    optimizer = _optimizer(spec, params, example.hparams)
    _train(spec, example, [optimizer], 3)
    for index, (param, original) in enumerate(zip(params, originals)):
        if param.dtype != dtype or param.device.type != device.type:
            fail(spec, f"parameter {index} became {param.dtype} on {param.device} (was {dtype} on {device})")
        if param.data_ptr() != original.data_ptr():
            fail(spec, f"parameter {index} was replaced instead of updated in place")
    assert_finite(spec, [p.detach() for p in params], f"parameters after 3 steps in {dtype}")


@conformance_check(
    "optimizer", applies=lambda spec: not spec.capabilities.sparse_gradients, when="not sparse_gradients"
)
def check_sparse_gradients_rejected(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """A sparse gradient raises a gradhub error naming the method, and nothing is changed."""
    example = _example(spec, device, dtype)
    embedding = nn.Parameter(torch.ones(5, 3, device=device, dtype=dtype))
    params = [*example.model.parameters(), embedding]
    optimizer = _optimizer(spec, params, example.hparams)
    closure = _closure(example, [optimizer])
    closure()
    embedding.grad = torch.ones(5, 3, device=device, dtype=dtype).to_sparse()
    before = [p.detach().clone() for p in params]
    try:
        if spec.capabilities.requires_closure:
            optimizer.step(lambda: example.loss())
        else:
            optimizer.step()
    except GradhubError as error:
        if spec.name not in str(error).lower() and type(optimizer).__name__.lower() not in str(error).lower():
            fail(spec, f"the sparse-gradient error does not name the method: {error}")
    except Exception as error:
        fail(spec, f"a sparse gradient raised {type(error).__name__}: {error}; raise gradhub.UnsupportedInputError")
    else:
        fail(spec, "a sparse gradient was accepted, but the spec does not declare sparse_gradients")
    for index, (old, param) in enumerate(zip(before, params)):
        if not torch.equal(old, param.detach()):
            fail(spec, f"parameter {index} changed although the step raised (check inputs before updating)")
    if any(optimizer.state.get(param) for param in params):
        fail(spec, "state was created although the step raised")


COMPILED_STEPS = 10
COMPILED_TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}
"""float32: Inductor fuses and reorders the step's arithmetic, so the compiled run differs from the eager
one by round-off that 10 steps carry along; a wrong compiled step differs at the first step by the size
of an update."""


@conformance_check(
    "optimizer",
    dtypes="float32",
    applies=lambda spec: spec.capabilities.compile.status == "tested",
    when='compile status is "tested"',
)
def check_compiled_step(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """torch.compile of step() (Inductor) over 10 steps, lr changed every step by a LambdaLR: every frame
    compiles at most twice, the math runs compiled, and the parameters equal an eager run's to round-off."""
    import torch._dynamo

    runs = []
    for compiled in (False, True):
        example = _example(spec, device, dtype)
        params = list(example.model.parameters())
        optimizer = _optimizer(spec, params, example.hparams)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
        step = optimizer.step
        closure = _closure(example, [optimizer])
        if compiled:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            step = torch.compile(optimizer.step)
        with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True):
            for index in range(COMPILED_STEPS):
                if spec.capabilities.requires_closure:
                    arguments: tuple[Any, ...] = (closure,)
                else:
                    closure()
                    arguments = ()
                try:
                    step(*arguments)
                except Exception as error:
                    if not compiled:
                        raise
                    fail(
                        spec,
                        f"the compiled step {index + 1} raised {type(error).__name__}: {str(error)[:600]} (a frame "
                        "compiled a third time is a step count or step size kept as a Python number: keep counts "
                        "as tensors and compute from them, see gradhub.kinds.optimizer.step_count)",
                    )
                scheduler.step()
        if compiled and not torch._dynamo.utils.counters["stats"]["unique_graphs"]:
            fail(spec, "torch.compile of step() captured no graph: the step ran eagerly")
        runs.append([p.detach().clone() for p in params])
    torch._dynamo.reset()
    for index, (eager, compiled_value) in enumerate(zip(*runs)):
        if not torch.allclose(compiled_value, eager, **COMPILED_TOLERANCE):
            difference = (compiled_value - eager).abs().max().item()
            fail(
                spec,
                f"after {COMPILED_STEPS} compiled steps parameter {index} differs from the eager run by "
                f"{difference:.3g} (allowed: rtol {COMPILED_TOLERANCE['rtol']}, atol {COMPILED_TOLERANCE['atol']})",
            )


@conformance_check("optimizer", applies=lambda spec: not spec.capabilities.requires_closure, when="it needs no closure")
def check_gradients_left_as_autograd_made_them(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """step() reads each .grad and leaves it as autograd made it (no in-place scaling, clipping or sign)."""
    example = _example(spec, device, dtype)
    params = list(example.model.parameters())
    optimizer = _optimizer(spec, params, example.hparams)
    closure = _closure(example, [optimizer])
    for step in range(2):
        closure()
        before = [None if p.grad is None else p.grad.detach().clone() for p in params]
        optimizer.step()
        for index, (param, grad) in enumerate(zip(params, before)):
            now = param.grad
            if (grad is None) != (now is None) or (grad is not None and not torch.equal(grad, now)):
                fail(spec, f"step {step + 1} changed the gradient of parameter {index} in place; leave .grad as it was")


@conformance_check("optimizer", dtypes="none", per_device=False)
def check_undeclared_dtypes_refused(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """Parameters of a floating dtype the spec does not declare are refused at construction, with a gradhub error."""
    undeclared = [name for name in ("float16", "bfloat16", "float32", "float64") if name not in spec.dtypes]
    for name in undeclared:
        param = nn.Parameter(torch.zeros(2, 3, dtype=getattr(torch, name)))
        example = _example(
            spec, torch.device("cpu") if "cpu" in spec.devices else torch.device(spec.devices[0]), torch.float32
        )
        try:
            _optimizer(spec, [param], example.hparams)
        except GradhubError:
            continue
        except Exception as error:
            fail(
                spec,
                f"a {name} parameter (not declared in dtypes) raised {type(error).__name__}: {error}; "
                "raise a gradhub error",
            )
        fail(
            spec,
            f"a {name} parameter was accepted, but the spec declares dtypes {list(spec.dtypes)}; "
            "refuse it at construction",
        )
