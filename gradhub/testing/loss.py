"""Conformance checks for losses (forward/backward and gradient checks are shared with layers)."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds import bind
from gradhub.kinds.loss import LossExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import INVOKERS, RUNNERS, fail, load_example, load_target
from gradhub.testing._suite import conformance_check
from gradhub.testing.layer import build, differentiable_inputs, forward_backward


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> LossExample:
    return load_example(spec, device, dtype, seed, LossExample)


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    outputs, gradients = forward_backward(
        build(spec, example.hparams, device, dtype, seed), differentiable_inputs(example.inputs)
    )
    return outputs + gradients


def _invoke(spec: MethodSpec, example: LossExample, hparams: dict[str, Any]) -> Any:
    loss = bind(load_target(spec), hparams)
    return loss(*example.inputs)


RUNNERS["loss"] = _run
INVOKERS["loss"] = (LossExample, _invoke)


@conformance_check("loss")
def check_returns_scalar(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """With its default reduction the loss is one finite scalar that requires grad."""
    example = _example(spec, device, dtype)
    hparams = {k: v for k, v in example.hparams.items() if k != "reduction"}
    value = build(spec, hparams, device, dtype)(*differentiable_inputs(example.inputs))
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        fail(spec, f"with the default reduction it returned {shape}, not a scalar tensor")
    if not torch.isfinite(value):
        fail(spec, f"it returned {value.item()} on its example")
    if not value.requires_grad:
        fail(spec, "its value does not require grad: the prediction's graph is cut")


@conformance_check("loss", applies=lambda spec: len(spec.capabilities.reductions) > 1, when="it declares reductions")
def check_reduction_consistent(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """reduction='none' values sum to reduction='sum' and average to reduction='mean'."""
    example = _example(spec, device, dtype)
    values = {}
    for reduction in spec.capabilities.reductions:
        loss = build(spec, {**example.hparams, "reduction": reduction}, device, dtype)
        values[reduction] = loss(*example.inputs).detach()
    if "none" not in values:
        return
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype != torch.float64 else dict(rtol=1e-10, atol=1e-12)
    for reduction, reduce in (("sum", torch.sum), ("mean", torch.mean)):
        if reduction in values and not torch.allclose(reduce(values["none"]), values[reduction], **tolerance):
            fail(
                spec,
                f"reduction='{reduction}' gives {values[reduction].item():.6g} but reduction='none' values "
                f"{reduction} to {reduce(values['none']).item():.6g}",
            )
