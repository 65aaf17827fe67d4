"""Conformance for probes: function probes share ``model_unchanged`` with attacks (common.py);
recorders (``form="recorder"``) are driven through a short training run here."""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.probe import ProbeExample, Recorder
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_close,
    assert_finite,
    assert_model_unchanged,
    fail,
    fingerprint,
    load_example,
    load_target,
    register_model_kind,
    tensors_of,
)
from gradhub.testing._suite import conformance_check

register_model_kind("probe", ProbeExample, None)
_function_run = RUNNERS["probe"]
_function_invoke = INVOKERS["probe"][1]


def is_recorder(spec: MethodSpec) -> bool:
    return getattr(spec.capabilities, "form", "function") == "recorder"


def _example(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int = 0) -> ProbeExample:
    return load_example(spec, device, dtype, seed, ProbeExample)


def _recorder(spec: MethodSpec, example: ProbeExample, hparams: dict[str, Any]) -> Recorder:
    recorder = load_target(spec)(example.model, **hparams)
    if not isinstance(recorder, Recorder):
        fail(spec, "a recorder needs record(), state_dict() and load_state_dict() (gradhub.kinds.probe.Recorder)")
    return recorder


def _loss_function(spec: MethodSpec, example: ProbeExample) -> Any:
    if not example.args or not callable(example.args[0]):
        fail(spec, "a recorder's example must give args=(loss_fn,), with loss_fn(model) -> scalar tensor")
    return example.args[0]


def record_run(
    spec: MethodSpec,
    example: ProbeExample,
    recorder: Recorder,
    steps: range,
    optimizer: torch.optim.Optimizer,
    check_passive: bool = False,
) -> list[torch.Tensor]:
    """Train ``example.model`` with ``optimizer`` over ``steps``, calling ``record()`` after each backward."""
    loss_fn = _loss_function(spec, example)
    values = []
    for step in steps:
        optimizer.zero_grad()
        loss_fn(example.model).backward()
        before = fingerprint(example.model) if check_passive else None
        measured = tensors_of(recorder.record())
        if before is not None:
            assert_model_unchanged(spec, before, example.model)
        if not measured:
            fail(spec, f"record() at step {step} returned no tensor or number")
        values.extend(value.detach().clone() for value in measured)
        optimizer.step()
    return values


def _optimizer(example: ProbeExample) -> torch.optim.Optimizer:
    return torch.optim.SGD(example.model.parameters(), lr=0.05)


def _run(spec: MethodSpec, device: torch.device, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    if not is_recorder(spec):
        return _function_run(spec, device, dtype, seed)
    example = _example(spec, device, dtype, seed)
    recorder = _recorder(spec, example, example.hparams)
    return record_run(spec, example, recorder, range(example.steps), _optimizer(example))


def _invoke(spec: MethodSpec, example: ProbeExample, hparams: dict[str, Any]) -> Any:
    return _recorder(spec, example, hparams) if is_recorder(spec) else _function_invoke(spec, example, hparams)


RUNNERS["probe"] = _run
INVOKERS["probe"] = (ProbeExample, _invoke)


@conformance_check("probe", dtypes="declared", applies=is_recorder, when="it is a recorder")
def check_recorder_passive(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """record() changes no weight, buffer, gradient, requires_grad or mode; its values are finite."""
    example = _example(spec, device, dtype)
    recorder = _recorder(spec, example, example.hparams)
    values = record_run(spec, example, recorder, range(example.steps), _optimizer(example), check_passive=True)
    assert_finite(spec, values, "recorded values")


@conformance_check("probe", applies=is_recorder, when="it is a recorder")
def check_recorder_resume(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """k steps, state_dict into a fresh recorder, the rest: the same values and final state as one recorder."""
    example = _example(spec, device, dtype)
    total, first = example.steps, example.steps // 2
    recorder = _recorder(spec, example, example.hparams)
    straight = record_run(spec, example, recorder, range(total), _optimizer(example))
    final = tensors_of(recorder.state_dict())

    example = _example(spec, device, dtype)
    optimizer = _optimizer(example)
    recorder = _recorder(spec, example, example.hparams)
    resumed = record_run(spec, example, recorder, range(first), optimizer)
    saved = recorder.state_dict()
    fresh = _recorder(spec, example, example.hparams)
    fresh.load_state_dict(saved)
    resumed += record_run(spec, example, fresh, range(first, total), optimizer)
    assert_close(spec, straight, resumed, "values recorded across a state_dict round trip")
    assert_close(spec, final, tensors_of(fresh.state_dict()), "the final state_dict after a round trip")
