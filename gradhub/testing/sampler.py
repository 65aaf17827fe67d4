"""Conformance checks for samplers: seeded by their generator, evaluations counted."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradhub.kinds.sampler import SampleResult, SamplerExample
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_finite,
    fail,
    generator_for,
    load_example,
    load_target,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> SamplerExample:
    return load_example(spec, device, dtype, seed, SamplerExample)


def _sample(spec: MethodSpec, example: SamplerExample, hparams: dict[str, Any], generator: Any = None) -> SampleResult:
    result = load_target(spec)(example.model, *example.args, generator=generator, **hparams)
    if not isinstance(result, SampleResult):
        fail(spec, f"it returned {type(result).__name__}; a sampler returns gradhub.kinds.sampler.SampleResult")
    return result


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    return [_sample(spec, example, example.hparams, generator_for(device, seed)).samples.detach()]


RUNNERS["sampler"] = _run
INVOKERS["sampler"] = (SamplerExample, _sample)


@conformance_check("sampler")
def check_generator_matters(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Different generator seeds give different samples (the generator is actually used)."""
    example = _example(spec, device, dtype)
    first = _sample(spec, example, example.hparams, generator_for(device, 0)).samples
    second = _sample(spec, example, example.hparams, generator_for(device, 1)).samples
    if torch.equal(first, second):
        fail(spec, "generators seeded 0 and 1 gave identical samples: it does not draw from its generator")


@conformance_check("sampler", dtypes="declared")
def check_evaluations_counted(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """result.evaluations equals the number of calls it made to the model; samples are finite."""
    example = _example(spec, device, dtype)
    calls = [0]
    model = example.model
    if isinstance(model, nn.Module):
        handle = model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
        try:
            result = _sample(spec, example, example.hparams, generator_for(device, 0))
        finally:
            handle.remove()
    else:

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return model(*args, **kwargs)

        example.model = counted
        result = _sample(spec, example, example.hparams, generator_for(device, 0))
    if result.evaluations != calls[0]:
        fail(spec, f"it reports {result.evaluations} model evaluations but called the model {calls[0]} times")
    assert_finite(spec, [result.samples.detach()], "samples")
    if result.samples.device.type != device.type or result.samples.dtype != dtype:
        fail(spec, f"samples are {result.samples.dtype} on {result.samples.device}; expected {dtype} on {device}")
