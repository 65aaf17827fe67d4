"""Conformance checks for probes: the model is untouched, results finite."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.probe import ProbeExample
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
    tensors_of,
)
from gradhub.testing._suite import conformance_check


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> ProbeExample:
    return load_example(spec, device, dtype, seed, ProbeExample)


def _probe(spec: MethodSpec, example: ProbeExample, hparams: dict[str, Any], generator: Any = None) -> Any:
    return load_target(spec)(example.model, *example.args, generator=generator, **hparams)


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    example = _example(spec, device, dtype, seed)
    return tensors_of(_probe(spec, example, example.hparams, generator_for(device, seed)))


RUNNERS["probe"] = _run
INVOKERS["probe"] = (ProbeExample, _probe)


@conformance_check("probe", dtypes="declared")
def check_model_unchanged(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Weights, buffers, gradients, requires_grad and training mode are as they were; results finite."""
    example = _example(spec, device, dtype)
    before = fingerprint(example.model)
    result = _probe(spec, example, example.hparams, generator_for(device, 0))
    assert_model_unchanged(spec, before, example.model)
    values = tensors_of(result)
    if not values:
        fail(spec, f"it returned {type(result).__name__} with no tensor or number in it")
    assert_finite(spec, values, "the probe's result")
