"""Conformance checks for samplers: seeded by their generator, evaluations counted."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.sampler import SampleResult, SamplerExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    assert_finite,
    call_with_model,
    fail,
    generator_for,
    load_example,
    register_model_kind,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> SamplerExample:
    return load_example(spec, device, dtype, seed, SamplerExample)


register_model_kind("sampler", SamplerExample, SampleResult)


@conformance_check("sampler")
def check_generator_matters(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Different generator seeds give different samples (with ``deterministic``: it draws from its generator);
    for a sampler declared not stochastic, the same samples."""
    example = _example(spec, device, dtype)
    first = call_with_model(spec, example, example.hparams, generator_for(device, 0)).samples
    second = call_with_model(spec, example, example.hparams, generator_for(device, 1)).samples
    stochastic = getattr(spec.capabilities, "stochastic", True)
    if stochastic and torch.equal(first, second):
        fail(spec, "generators seeded 0 and 1 gave identical samples: it does not draw from its generator")
    if not stochastic and not torch.equal(first, second):
        fail(
            spec,
            "it declares stochastic=False, but generators seeded 0 and 1 gave different samples",
        )


@conformance_check("sampler", dtypes="declared")
def check_evaluations_counted(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """result.evaluations equals the number of calls it made to the model; samples are finite."""
    example = _example(spec, device, dtype)
    calls = [0]
    model = example.model
    if isinstance(model, nn.Module):
        handle = model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
        try:
            result = call_with_model(spec, example, example.hparams, generator_for(device, 0))
        finally:
            handle.remove()
    else:

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return model(*args, **kwargs)

        example.model = counted
        result = call_with_model(spec, example, example.hparams, generator_for(device, 0))
    if result.evaluations != calls[0]:
        fail(spec, f"it reports {result.evaluations} model evaluations but called the model {calls[0]} times")
    assert_finite(spec, [result.samples.detach()], "samples")
    if result.samples.device.type != device.type or result.samples.dtype != dtype:
        fail(spec, f"samples are {result.samples.dtype} on {result.samples.device}; expected {dtype} on {device}")
