"""Conformance checks for attacks: the model is untouched, the budget respected, randomness seeded."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.attack import AttackExample, AttackResult
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_finite,
    assert_model_unchanged,
    fail,
    fingerprint,
    generator_for,
    load_example,
    load_target,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> AttackExample:
    return load_example(spec, device, dtype, seed, AttackExample)


def _attack(spec: MethodSpec, example: AttackExample, hparams: dict[str, Any], generator: Any = None) -> AttackResult:
    result = load_target(spec)(example.model, *example.args, generator=generator, **hparams)
    if not isinstance(result, AttackResult):
        fail(spec, f"it returned {type(result).__name__}; an attack returns gradhub.kinds.attack.AttackResult")
    return result


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    return [_attack(spec, example, example.hparams, generator_for(device, seed)).output.detach()]


RUNNERS["attack"] = _run
INVOKERS["attack"] = (AttackExample, _attack)


@conformance_check("attack")
def check_model_unchanged(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Weights, buffers, gradients, requires_grad and training mode are as they were."""
    example = _example(spec, device, dtype)
    before = fingerprint(example.model)
    result = _attack(spec, example, example.hparams, generator_for(device, 0))
    assert_model_unchanged(spec, before, example.model)
    assert_finite(spec, [result.output.detach()], "the attack's output")


@conformance_check("attack")
def check_budget_respected(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """At most max_iter iterations; within eps of the reference in the declared norm."""
    example = _example(spec, device, dtype)
    result = _attack(spec, example, example.hparams, generator_for(device, 0))
    if "max_iter" in spec.params.model_fields:
        limit = example.hparams.get("max_iter", spec.params.model_fields["max_iter"].default)
        if result.iterations > limit:
            fail(spec, f"it ran {result.iterations} iterations with max_iter={limit}")
    norm = spec.capabilities.perturbation_norm
    if norm is not None:
        if example.reference is None:
            fail(spec, "it declares a perturbation norm but its example gives no reference input")
        eps = example.hparams.get("eps", spec.params.model_fields["eps"].default)
        difference = (result.output.detach() - example.reference).flatten(1).double()
        sizes = difference.abs().amax(1) if norm == "linf" else difference.norm(dim=1)
        tolerance = 1e-6 if dtype == torch.float64 else 1e-4
        if sizes.max().item() > eps * (1 + tolerance) + tolerance:
            fail(spec, f"its perturbation has {norm} norm {sizes.max().item():.6g} > eps={eps}")
