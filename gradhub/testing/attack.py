"""Conformance checks for attacks: the budget (``model_unchanged`` is shared with probes, in common.py)."""

from __future__ import annotations

import torch

from gradhub.kinds.attack import AttackExample, AttackResult
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    call_with_model,
    fail,
    generator_for,
    load_example,
    register_model_kind,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> AttackExample:
    return load_example(spec, device, dtype, seed, AttackExample)


register_model_kind("attack", AttackExample, AttackResult)


@conformance_check("attack")
def check_budget_respected(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """At most max_iter iterations; within eps of the reference in the declared norm."""
    example = _example(spec, device, dtype)
    result = call_with_model(spec, example, example.hparams, generator_for(device, 0))
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
