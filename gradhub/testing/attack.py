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
    """At most max_iter iterations, counted as model calls; within eps of the reference in the declared norm.

    The model's forward calls are counted with a hook (it survives a deep copy of the model) and
    may not exceed ``model_calls_per_iteration * max_iter + setup_model_calls``.
    """
    example = _example(spec, device, dtype)
    calls = [0]
    handle = example.model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    try:
        result = call_with_model(spec, example, example.hparams, generator_for(device, 0))
    finally:
        handle.remove()
    if "max_iter" in spec.params.model_fields:
        limit = example.hparams.get("max_iter", spec.params.model_fields["max_iter"].default)
        if result.iterations > limit:
            fail(spec, f"it ran {result.iterations} iterations with max_iter={limit}")
        capabilities = spec.capabilities
        allowed = capabilities.model_calls_per_iteration * limit + capabilities.setup_model_calls
        if calls[0] > allowed:
            fail(
                spec,
                f"it called the model {calls[0]} times with max_iter={limit}; its spec allows "
                f"{capabilities.model_calls_per_iteration} call(s) per iteration + {capabilities.setup_model_calls} "
                f"= {allowed} (it reported {result.iterations} iterations)",
            )
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
