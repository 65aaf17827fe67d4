"""Checks every kind gets: the spec, the entry module, hyperparameters, determinism, devices."""

from __future__ import annotations

import contextlib
import inspect
import io
import itertools
import subprocess
import sys
import warnings
from typing import Any

import torch
from pydantic import ValidationError

import gradhub
from gradhub._text import with_article
from gradhub.kinds import attack, layer, loss, optimizer, probe, sampler, schedule, solver
from gradhub.registry import import_target
from gradhub.specs import MethodSpec
from gradhub.testing._helpers import (
    INVOKERS,
    RUNNERS,
    assert_close,
    assert_finite,
    assert_model_unchanged,
    call_with_model,
    default_device_and_dtype,
    deterministic_algorithms,
    expect_hyperparameter_error,
    fail,
    fingerprint,
    generator_for,
    hyperparameters_overridden,
    invalid_hyperparameters,
    load_example,
    load_target,
    scramble_global_rng,
    tensors_of,
    variations,
)
from gradhub.testing._suite import conformance_check, definitions

TARGET_TESTS = {
    "optimizer": (optimizer.is_optimizer_target, "a torch.optim.Optimizer subclass"),
    "layer": (layer.is_layer_target, "an nn.Module subclass or a function"),
    "loss": (loss.is_loss_target, "an nn.Module subclass or a function"),
    "solver": (solver.is_solver_target, "a function returning gradhub.kinds.solver.SolverResult"),
    "attack": (attack.is_attack_target, "a function returning gradhub.kinds.attack.AttackResult"),
    "sampler": (sampler.is_sampler_target, "a function returning gradhub.kinds.sampler.SampleResult"),
    "schedule": (
        schedule.is_schedule_target,
        "an LRScheduler (or factory), a function of step or progress, or a noise schedule",
    ),
    "probe": (probe.is_probe_target, "a function (a class for form='recorder')"),
}
REQUIRED_HYPERPARAMETERS = {"solver": ("tol", "max_iter")}
TEMPLATE_AUTHORS = ("Replace Me",)
"""What ``gradhub new`` writes as the paper's authors, for its author to replace."""
TEMPLATE_SUMMARY = "(a template: replace"
"""What every ``gradhub new`` template's summary contains, for its author to replace."""


def _entry_module(spec: MethodSpec) -> str | None:
    for entry in gradhub.list():
        if entry.name == spec.name and entry.module:
            return entry.module
    return None


@conformance_check(dtypes="none", per_device=False)
def check_spec_valid(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """The spec validates, carries no template placeholder, its target, example and claims import and fit."""
    placeholders = [f"authors {spec.paper.authors!r}"] if set(spec.paper.authors) & set(TEMPLATE_AUTHORS) else []
    if TEMPLATE_SUMMARY in spec.summary:
        placeholders.append(f"summary {spec.summary!r}")
    if placeholders:
        fail(
            spec,
            f"its spec still has the `gradhub new` template's placeholder {' and '.join(placeholders)}: "
            "give the paper's authors and a one-line summary of the method",
        )
    again = type(spec).model_validate(spec.model_dump())
    if again != spec:
        fail(spec, "the spec does not survive a dump/validate round trip")
    is_valid, wanted = TARGET_TESTS[spec.kind.value]
    target = load_target(spec)
    if not is_valid(target):
        fail(spec, f"its target {spec.target!r} is {target!r}; {with_article(spec.kind.value)} target must be {wanted}")
    if spec.kind.value == "probe" and isinstance(target, type) != (spec.capabilities.form == "recorder"):
        fail(
            spec,
            f"its target {spec.target!r} is {target!r}; a probe target must be the function itself, "
            "or a class for form='recorder' (built as cls(model, **hparams))",
        )
    for path in (spec.example, *spec.claims):
        try:
            function = import_target(path)
        except Exception as error:
            fail(spec, f"{path!r} does not import: {type(error).__name__}: {error}")
        if not callable(function):
            fail(spec, f"{path!r} is not callable")
    required = list(REQUIRED_HYPERPARAMETERS.get(spec.kind.value, ()))
    if getattr(spec.capabilities, "perturbation_norm", None) is not None:
        required.append("eps")  # the norm bound it declares is eps
    for name in required:
        if name not in spec.params.model_fields:
            fail(spec, f"{with_article(spec.kind.value)} must take the hyperparameter {name!r}; its model lacks it")
    reductions = getattr(spec.capabilities, "reductions", ())
    if reductions and "none" not in reductions:
        fail(spec, f"it declares reductions {reductions} without 'none'; the others are checked against 'none'")
    known = {definition.id for definition in definitions(spec.kind.value)}
    for check_id in spec.expected_failures:
        if check_id not in known:
            fail(spec, f"expected_failures names {check_id!r}, which is not a {spec.kind.value} check: {sorted(known)}")


def _signature_of(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


@conformance_check(dtypes="none", per_device=False)
def check_signature_matches_model(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """The target's signature takes every hyperparameter with the model's default (one source of truth)."""
    target = load_target(spec)
    signature = _signature_of(target)
    if signature is None:
        fail(spec, f"its target {spec.target!r} has no inspectable signature; set __signature__ (the core's bases do)")
    parameters = signature.parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, field in spec.params.model_fields.items():
        parameter = parameters.get(name)
        if parameter is None:
            if not open_ended:
                fail(spec, f"its model declares {name!r} but the target's signature {signature} does not take it")
            continue
        wanted = inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True)
        given = parameter.default
        same = given is wanted or (
            given is not inspect.Parameter.empty
            and wanted is not inspect.Parameter.empty
            and type(given) is type(wanted)
            and bool(given == wanted)
        )
        if not same:
            shown = lambda value: "no default" if value is inspect.Parameter.empty else repr(value)  # noqa: E731
            fail(
                spec,
                f"the signature's default of {name!r} is {shown(given)} but the model's is {shown(wanted)}; derive "
                "the signature from the model (spec = ... on an Optimizer, @validated(spec) on a function or module)",
            )


@conformance_check(
    dtypes="none",
    per_device=False,
    applies=lambda spec: _entry_module(spec) is not None,
    when="installed through an entry point",
)
def check_entry_module_torch_free(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """Importing the plugin's entry module (and its specs) does not import torch."""
    module = _entry_module(spec)
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if completed.returncode != 0:
        fail(spec, f"importing its entry module {module!r} failed: {completed.stderr.strip()[-500:]}")
    if completed.stdout.strip() != "[]":
        fail(
            spec,
            f"importing its entry module {module!r} imports torch; keep specs torch-free and import the "
            "implementation only from the spec's target",
        )


@conformance_check(dtypes="none", per_device=False)
def check_hyperparameters_validated(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """Bad or unknown hyperparameters raise gradhub.HyperparameterError naming method, parameter, value."""
    example_type, invoke = INVOKERS[spec.kind.value]
    example = load_example(spec, *default_device_and_dtype(spec), 0, example_type)
    cases = [*invalid_hyperparameters(spec.params, example.hparams), ("not_a_hyperparameter", 1)]
    for name, value in cases:
        hparams = {**example.hparams, name: value}
        expect_hyperparameter_error(spec, lambda hparams=hparams: invoke(spec, example, hparams), name, value)


@conformance_check()
def check_deterministic(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Two runs from the same seed agree bit for bit, whatever state the global RNG is in."""
    run = RUNNERS[spec.kind.value]
    with deterministic_algorithms():
        scramble_global_rng(1)
        first = run(spec, device, dtype, 0)
        scramble_global_rng(2)
        second = run(spec, device, dtype, 0)
    assert_close(spec, first, second, "two runs from the same seed (global RNG in different states)")


def _differ(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return len(first) != len(second) or any(
        a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b) for a, b in zip(first, second)
    )


def _run_with(spec: MethodSpec, dtype: torch.dtype, overrides: dict[str, Any]) -> list[torch.Tensor]:
    """The example's result (as the determinism check gets it) with ``overrides`` on its hyperparameters."""
    device, _ = default_device_and_dtype(spec)
    with hyperparameters_overridden(overrides), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RUNNERS[spec.kind.value](spec, device, dtype, 0)


def _moves(spec: MethodSpec, name: str, value: Any, known: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """:func:`variations` of one field, less the values its model rejects (with the rest as in ``known``)."""
    kept = []
    for varied, candidates in variations(spec.params, name, value):
        valid = []
        for label, candidate in candidates:
            try:
                spec.params.model_validate({**known, name: candidate})
            except ValidationError:
                continue
            valid.append((label, candidate))
        kept.append((varied, valid))
    return kept


def _has_effect(
    spec: MethodSpec, dtype: torch.dtype, baseline: list[torch.Tensor], context: dict[str, Any], name: str, moves: Any
) -> bool:
    """True when one of ``moves`` changes the result from ``baseline``, or makes the example raise.

    An error counts as an effect (an ``in_features`` that no longer fits the example's inputs is read);
    whether the error is a clear one is for the checks of bad input, not this one.
    """
    for _, candidate in moves:
        try:
            result = _run_with(spec, dtype, {**context, name: candidate})
        except Exception:
            return True
        if _differ(baseline, result):
            return True
    return False


def _modes(spec: MethodSpec, name: str, given: dict[str, Any], known: dict[str, Any]) -> list[dict[str, Any]]:
    """Other settings of the example's switches (choices and flags but ``name``) its model accepts."""
    from gradhub.hyperparameters import is_path_option

    modes = []
    for other, field in spec.params.model_fields.items():
        if other == name or is_path_option(spec.params, other):
            continue
        value = given.get(other, None if field.is_required() else field.get_default(call_default_factory=True))
        if not isinstance(value, bool | str):
            continue
        for _, candidates in _moves(spec, other, value, known):
            modes.extend({other: candidate} for _, candidate in candidates)
    return modes


@conformance_check(dtypes="precise", per_device=False)
def check_hyperparameters_have_effect(spec: MethodSpec, device: Any, dtype: torch.dtype) -> None:
    """Changing any hyperparameter from its value in the example changes the result (or it is declared inert).

    The example runs as the determinism check runs it (an optimizer's parameters and state after its
    steps, a sampler's samples, a solver's solution...), once as given and then with one hyperparameter
    moved at a time (:func:`variations`; values the model rejects are skipped). The first value that
    changes the result, or that makes the example raise, shows the hyperparameter is read.
    One that changes nothing is tried again under each other setting of the example's switches (a
    ``beta`` read only with ``metric='fbeta'``, a ``k`` read only with ``method='lanczos'``).
    ``PathOption`` fields (foreach, fused, a check of valid inputs) are left out: they pick how, not what.
    """
    from gradhub.hyperparameters import is_path_option

    model = spec.params
    device, _ = default_device_and_dtype(spec)
    given = dict(load_example(spec, device, dtype, 0, INVOKERS[spec.kind.value][0]).hparams)
    known = {key: value for key, value in given.items() if key in model.model_fields}
    baseline = _run_with(spec, dtype, {})
    for name, field in model.model_fields.items():
        if name in spec.inert or is_path_option(model, name):
            continue
        value = given.get(name, None if field.is_required() else field.get_default(call_default_factory=True))
        for varied, moves in _moves(spec, name, value, known):
            if not moves or _has_effect(spec, dtype, baseline, {}, name, moves):
                continue
            for mode in _modes(spec, name, given, known):
                try:
                    mode_baseline = _run_with(spec, dtype, mode)
                except Exception:
                    continue  # a setting the example cannot run under
                mode_moves = [move for _, group in _moves(spec, name, value, {**known, **mode}) for move in group]
                if _has_effect(spec, dtype, mode_baseline, mode, name, mode_moves):
                    break
            else:
                fail(
                    spec,
                    f"changing {varied} from its value in the example ({', '.join(label for label, _ in moves)}) "
                    "left the example's result as it was, also under every other setting of its switches: the "
                    f"method ignores it. Fix the method, or declare {name} in the spec's inert with the reason it "
                    "has no effect on this example",
                )


@conformance_check(
    "optimizer", "layer", "loss", "solver", "schedule", dtypes="precise", per_device=False, compares_devices=True
)
def check_devices_agree(spec: MethodSpec, devices: tuple[torch.device, ...], dtype: torch.dtype) -> None:
    """The example gives the same results (to round-off) on every usable device as on the first (CPU only:
    as the CPU running the accelerator formulation of every path)."""
    from gradhub.kernels import accelerator_formulation
    from gradhub.testing._suite import AcceleratorStandIn

    run = RUNNERS[spec.kind.value]
    tolerance = 1e-7 if dtype == torch.float64 else 1e-3
    with deterministic_algorithms():
        reference = [t.cpu() for t in run(spec, devices[0], dtype, 0)]
        for device in devices[1:]:
            stand_in = isinstance(device, AcceleratorStandIn)
            with accelerator_formulation() if stand_in else contextlib.nullcontext():
                other = [t.cpu() for t in run(spec, torch.device("cpu") if stand_in else device, dtype, 0)]
            assert_close(spec, reference, other, f"{devices[0]} vs {device}", rtol=tolerance, atol=tolerance)


@conformance_check(
    "attack",
    "probe",
    dtypes="declared",
    applies=lambda spec: getattr(spec.capabilities, "form", "function") != "recorder",
    when="it is not a recorder",
)
def check_model_unchanged(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """Weights, buffers, gradients, requires_grad and training mode are as they were; results are finite."""
    example_type, _ = INVOKERS[spec.kind.value]
    example = load_example(spec, device, dtype, 0, example_type)
    before = fingerprint(example.model)
    result = call_with_model(spec, example, example.hparams, generator_for(device, 0))
    assert_model_unchanged(spec, before, example.model)
    values = tensors_of(result)
    if not values:
        fail(spec, f"it returned {type(result).__name__} with no tensor or number in it")
    assert_finite(spec, values, "its result")


def accepts_progress(spec: MethodSpec) -> bool:
    """For ``applies``: the target takes a ``progress`` keyword (and one that does not import: spec_valid says)."""
    try:
        target = import_target(spec.target)
        return "progress" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    except Exception:
        return True


@conformance_check(
    "solver",
    "attack",
    "sampler",
    "probe",
    dtypes="none",
    per_device=False,
    applies=accepts_progress,
    when="it takes a progress callback",
)
def check_progress_reported(spec: MethodSpec, device: Any, dtype: Any) -> None:
    """progress=callback gets counted steps and one final done event; without it the call prints nothing.

    Listening must not change the result.
    """
    from gradhub.progress import ProgressEvent

    example_type, invoke = INVOKERS[spec.kind.value]
    device, dtype = default_device_and_dtype(spec)
    events: list[ProgressEvent] = []
    example = load_example(spec, device, dtype, 0, example_type)
    listened = _progress_call(invoke, spec, example, {**example.hparams, "progress": events.append})
    if not events:
        fail(spec, "it takes a progress callback but never called it")
    if not all(isinstance(event, ProgressEvent) for event in events):
        fail(spec, "progress callbacks receive gradhub.progress.ProgressEvent objects (use gradhub.progress.tracker)")
    steps = [event.step for event in events]
    if any(later < earlier for earlier, later in itertools.pairwise(steps)):
        fail(spec, f"the reported steps go backwards: {steps}")
    finals = [index for index, event in enumerate(events) if event.done]
    if finals != [len(events) - 1] and not _several_tasks(events):
        fail(spec, "the last progress event must be the only one with done=True (close the tracker)")
    stream = io.StringIO()
    example = load_example(spec, device, dtype, 0, example_type)
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        silent = _progress_call(invoke, spec, example, example.hparams)
    if stream.getvalue():
        fail(spec, f"without a progress callback it printed {stream.getvalue()[:80]!r}; library calls stay silent")
    assert_close(spec, tensors_of(silent), tensors_of(listened), "the result with and without a progress callback")


def _progress_call(invoke: Any, spec: MethodSpec, example: Any, hparams: dict[str, Any]) -> Any:
    if spec.kind.value in ("attack", "sampler", "probe"):
        return call_with_model(spec, example, hparams, generator_for(torch.device("cpu"), 0))
    return invoke(spec, example, hparams)


def _several_tasks(events: list[Any]) -> bool:
    """A method running sub-tasks (trials, stages) sends one done event per task, each last for its task."""
    tasks: dict[str, list[bool]] = {}
    for event in events:
        tasks.setdefault(event.task, []).append(event.done)
    return len(tasks) > 1 and all(flags[-1] and not any(flags[:-1]) for flags in tasks.values())


def _given_tensors(example: Any) -> list[torch.Tensor]:
    """The tensors the caller hands the method: the example's ``inputs`` or ``args`` (views, not copies)."""
    given = tensors_of(getattr(example, "inputs", None) or getattr(example, "args", ()), detach=True)
    return [tensor.values() if tensor.layout != torch.strided else tensor for tensor in given]


@conformance_check(
    "layer",
    "loss",
    "solver",
    "attack",
    "sampler",
    "probe",
    applies=lambda spec: getattr(spec.capabilities, "form", None) != "recorder",
    when="it is called on inputs (not a recorder)",
)
def check_inputs_not_modified(spec: MethodSpec, device: torch.device, dtype: torch.dtype) -> None:
    """The tensors passed in (inputs, targets, right-hand sides, starting points) are left as they were."""
    example_type, invoke = INVOKERS[spec.kind.value]
    example = load_example(spec, device, dtype, 0, example_type)
    given = _given_tensors(example)
    before = [tensor.clone() for tensor in given]
    if spec.kind.value in ("attack", "sampler", "probe"):
        call_with_model(spec, example, example.hparams, generator_for(device, 0))
    else:
        result = invoke(spec, example, example.hparams)
        if isinstance(result, torch.nn.Module):  # a layer class: built by invoke, called here
            result(*example.inputs)
    for index, (kept, tensor) in enumerate(zip(before, given)):
        same = torch.equal(kept, tensor) or (
            kept.is_floating_point()
            and torch.equal(kept.isnan(), tensor.isnan())
            and torch.equal(kept.nan_to_num(), tensor.nan_to_num())
        )
        if not same:
            fail(spec, f"it changed input tensor {index} (shape {tuple(tensor.shape)}) in place; work on a copy")
