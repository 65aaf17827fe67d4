"""A fault suite over every kind, through the public API (issue 11): each bad input gets the exact class of
outcome, an error that names the method and what is wrong, never a silent wrong answer or a torch traceback.

The registry's faults are in test_registry_faults.py, the CLI's in test_cli_faults.py and the optimizers'
state in test_optimizer_faults.py; the plugins keep their own in plugins/*/tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import gradhub
from gradhub.errors import (
    HyperparameterError,
    MethodNotFoundError,
    MissingHyperparameterError,
    UnknownHyperparameterError,
    UnsupportedInputError,
)

NAN = float("nan")


def _get(name: str) -> Any:
    return gradhub.get(name)


def _param(*shape: int, dtype: torch.dtype = torch.float32) -> nn.Parameter:
    return nn.Parameter(torch.ones(*shape, dtype=dtype))


def _grid(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.ones(3, 2), torch.ones(3, 1))]


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    # losses
    (
        "any_fbeta: NaN prediction, check_values=True (the opt-in value check names it)",
        lambda: _get("any_fbeta")(torch.tensor([0.2, NAN]), torch.tensor([0.0, 1.0]), check_values=True),
        UnsupportedInputError,
        r"^any_fbeta: unsupported prediction values: nan",
    ),
    (
        "any_fbeta: NaN prediction, by default (the loss frame catches the NaN loss)",
        lambda: _get("any_fbeta")(torch.tensor([0.2, NAN]), torch.tensor([0.0, 1.0])),
        UnsupportedInputError,
        r"^any_fbeta: unsupported loss value: 1 of 1 entries non-finite",
    ),
    (
        "any_fbeta: shapes differ",
        lambda: _get("any_fbeta")(torch.rand(3), torch.ones(4)),
        UnsupportedInputError,
        r"^any_fbeta: unsupported shapes: prediction \(3,\), target \(4,\)",
    ),
    (
        "any_fbeta: integer prediction",
        lambda: _get("any_fbeta")(torch.ones(3, dtype=torch.long), torch.ones(3)),
        UnsupportedInputError,
        r"^any_fbeta: unsupported prediction dtype: torch.int64",
    ),
    (
        "any_fbeta: beta <= 0",
        lambda: _get("any_fbeta")(torch.rand(3), torch.ones(3), beta=0.0),
        HyperparameterError,
        r"^any_fbeta: invalid beta=0.0",
    ),
    (
        "anyloss: unknown metric",
        lambda: _get("anyloss")(metric="f7"),
        HyperparameterError,
        r"^anyloss: invalid metric='f7'",
    ),
    (
        "wbce_any: label 2, check_values=True (value checks are opt-in: per call they cost passes over the batch)",
        lambda: _get("wbce_any")(torch.rand(3), torch.tensor([0.0, 1.0, 2.0]), check_values=True),
        UnsupportedInputError,
        r"^wbce_any: unsupported target values: 2.0",
    ),
    (
        "dcdm_loss: empty batch",
        lambda: _get("dcdm_loss")(torch.ones(0, 4), torch.ones(0, 4), torch.eye(4)),
        UnsupportedInputError,
        r"^dcdm_loss: unsupported",
    ),
    (
        "edm_loss: not a model",
        lambda: _get("edm_loss")("model", torch.ones(2, 2)),
        UnsupportedInputError,
        r"^edm_loss: unsupported model",
    ),
    (
        "flow_matching_loss: unknown reduction",
        lambda: _get("flow_matching_loss")(lambda x, t: x, torch.ones(2, 2), reduction="max"),
        HyperparameterError,
        r"^flow_matching_loss: invalid reduction='max'",
    ),
    (
        "edm_loss: the model returns NaN",
        lambda: _get("edm_loss")(
            lambda x, sigma: x * NAN, torch.ones(4, 2), generator=torch.Generator().manual_seed(0)
        ),
        UnsupportedInputError,
        r"^edm_loss: unsupported loss value: 1 of 1 entries non-finite",
    ),
    (
        "flow_matching_loss: check_finite not a flag",
        lambda: _get("flow_matching_loss")(lambda x, t: x, torch.ones(2, 2), check_finite="no"),
        HyperparameterError,
        r"^flow_matching_loss: invalid check_finite='no'",
    ),
    # samplers
    (
        "ddim: denoiser returns NaN",
        lambda: _get("ddim")(lambda x, t: x * NAN, torch.randn(2, 2), _grid(0.9, 0.0)),
        UnsupportedInputError,
        r"^ddim: unsupported model output at step 0 \(t=0.9\): a tensor with non-finite entries "
        r"\(NaN; min nan, max nan\)",
    ),
    (
        "euler_ode: grid increases",
        lambda: _get("euler_ode")(lambda x, t: x, torch.randn(2, 2), _grid(1.0, 2.0)),
        UnsupportedInputError,
        r"^euler_ode: unsupported sigmas: sigmas\[0\]=1, sigmas\[1\]=2; sigmas must strictly decrease",
    ),
    (
        "euler_ode: NaN in the grid",
        lambda: _get("euler_ode")(lambda x, t: x, torch.randn(2, 2), _grid(1.0, NAN)),
        UnsupportedInputError,
        r"^euler_ode: unsupported sigmas: .*must be finite",
    ),
    (
        "heun_edm: negative churn",
        lambda: _get("heun_edm")(lambda x, t: x, torch.randn(2, 2), _grid(1.0, 0.0), S_churn=-1.0),
        HyperparameterError,
        r"^heun_edm: invalid S_churn=-1.0",
    ),
    (
        "heun_edm: empty churn window",
        lambda: _get("heun_edm")(lambda x, t: x, torch.randn(2, 2), _grid(1.0, 0.0), S_tmin=2.0, S_tmax=1.0),
        HyperparameterError,
        r"^heun_edm: invalid S_tmax=1.0",
    ),
    (
        "dpmpp_2m: output of another shape",
        lambda: _get("dpmpp_2m")(lambda x, t: x[:1], torch.randn(2, 2), _grid(1.0, 0.0)),
        UnsupportedInputError,
        r"^dpmpp_2m: unsupported model output: \(1, 2\) on cpu",
    ),
    (
        "ddpm_ancestral: integer x_T",
        lambda: _get("ddpm_ancestral")(lambda x, t: x, torch.ones(2, 2, dtype=torch.long), _grid(0.9, 0.0)),
        UnsupportedInputError,
        r"^ddpm_ancestral: unsupported x_T",
    ),
    (
        "fm_euler: return_trajectory not a flag",
        lambda: _get("fm_euler")(lambda x, t: x, torch.randn(2, 2), _grid(0.9, 0.0), return_trajectory="yes"),
        HyperparameterError,
        r"^fm_euler: invalid return_trajectory='yes'",
    ),
    (
        "euler_maruyama_sde: generator not a Generator",
        lambda: _get("euler_maruyama_sde")(lambda x, t: x, torch.randn(2, 2), _grid(1.0, 0.0), generator=3),
        UnsupportedInputError,
        r"^euler_maruyama_sde: unsupported generator: int",
    ),
    # solvers
    (
        "cg: NaN in b",
        lambda: _get("cg")(torch.eye(3, dtype=torch.float64), torch.tensor([1.0, NAN, 0.0], dtype=torch.float64)),
        UnsupportedInputError,
        r"^cg: unsupported b values: 1 of 3 entries non-finite",
    ),
    (
        "cg: NaN in a dense A",
        lambda: _get("cg")(torch.tensor([[1.0, NAN], [0.0, 1.0]]), torch.ones(2)),
        UnsupportedInputError,
        r"^cg: unsupported A values",
    ),
    (
        "cg: negative tol",
        lambda: _get("cg")(torch.eye(3), torch.ones(3), tol=-1.0),
        HyperparameterError,
        r"^cg: invalid tol=-1.0",
    ),
    (
        "dcdm: NaN in a dense A",
        lambda: _get("dcdm")(
            torch.tensor([[1.0, NAN], [0.0, 1.0]], dtype=torch.float64), torch.ones(2, dtype=torch.float64), lambda r: r
        ),
        UnsupportedInputError,
        r"^dcdm: unsupported A values",
    ),
    (
        "lr_gd: NaN in X",
        lambda: _get("lr_gd")(torch.tensor([[1.0, NAN], [0.0, 1.0]]), torch.tensor([1.0, -1.0])),
        UnsupportedInputError,
        r"^lr_gd: unsupported X values: 1 of 4 entries non-finite",
    ),
    (
        "batch_perceptron: NaN in X",
        lambda: _get("batch_perceptron")(torch.tensor([[1.0, NAN], [0.0, 1.0]]), torch.tensor([1.0, -1.0])),
        UnsupportedInputError,
        r"^batch_perceptron: unsupported X values",
    ),
    (
        "gns_newton: max_iter 0",
        lambda: _get("gns_newton")(lambda x: (x**2).sum(), torch.ones(2), max_iter=0),
        HyperparameterError,
        r"^gns_newton: invalid max_iter=0",
    ),
    (
        "mfac_ihvp_static: negative damping",
        lambda: _get("mfac_ihvp_static")(torch.ones(2, 3), torch.ones(3), damp=-1.0),
        HyperparameterError,
        r"^mfac_ihvp_static: invalid damp=-1.0",
    ),
    # layers
    (
        "biper_linear: negative frequency",
        lambda: _get("biper_linear")(3, 2, freq=-1.0),
        HyperparameterError,
        r"^biper_linear: invalid freq=-1.0",
    ),
    (
        "biper_linear: float64 input",
        lambda: _get("biper_linear")(3, 2)(torch.ones(2, 3, dtype=torch.float64)),
        UnsupportedInputError,
        r"^biper_linear: unsupported input dtype: torch.float64",
    ),
    (
        "grad_reverse: lambd a string",
        lambda: _get("grad_reverse")(torch.ones(2, requires_grad=True), lambd="x"),
        HyperparameterError,
        r"^grad_reverse: invalid lambd='x'",
    ),
    (
        "mask_dropout: p = 1.5",
        lambda: _get("mask_dropout")(p=1.5),
        HyperparameterError,
        r"^mask_dropout: invalid p=1.5",
    ),
    (
        "dcdm_net: float64 input",
        lambda: _get("dcdm_net")(dim=2)(torch.ones(1, 1, 4, 4, dtype=torch.float64)),
        UnsupportedInputError,
        r"^dcdm_net: unsupported input dtype: torch.float64",
    ),
    # schedules
    (
        "dann_lambda: progress 1.5",
        lambda: _get("dann_lambda")(1.5),
        UnsupportedInputError,
        r"^dann_lambda: unsupported p: 1.5",
    ),
    (
        "linear_decay: warm-up as long as the run",
        lambda: _get("linear_decay")(torch.optim.SGD([_param(1)], lr=0.1), 10, 10),
        HyperparameterError,
        r"^linear_decay: invalid warmup_steps=10",
    ),
    (
        "gaussian_path: unknown kind",
        lambda: _get("gaussian_path")(kind="vp_sine"),
        HyperparameterError,
        r"^gaussian_path: invalid kind='vp_sine'",
    ),
    # probes
    (
        "hessian_spectrum: k = 0",
        lambda: _get("hessian_spectrum")(nn.Linear(2, 1), nn.functional.mse_loss, _data(), method="lanczos", k=0),
        HyperparameterError,
        r"^hessian_spectrum: invalid k=0",
    ),
    (
        "m_coherence: empty batch",
        lambda: _get("m_coherence")(nn.Linear(2, 1), nn.functional.mse_loss, torch.ones(0, 2), torch.ones(0, 1)),
        UnsupportedInputError,
        r"^m_coherence: unsupported inputs shape: \(0, 2\)",
    ),
    (
        "per_example_grads: targets of another batch",
        lambda: _get("per_example_grads")(nn.Linear(2, 1), nn.functional.mse_loss, torch.ones(3, 2), torch.ones(4, 1)),
        UnsupportedInputError,
        r"^per_example_grads: unsupported targets: 4 examples",
    ),
    (
        "gns_radius: r_min >= r_max",
        lambda: _get("gns_radius")(lambda x: (x**2).sum(), torch.ones(2), r_min=1.0, r_max=0.5),
        HyperparameterError,
        r"^gns_radius: invalid",
    ),
    # attacks
    (
        "dia: negative max_iter",
        lambda: _get("dia")(nn.Linear(2, 1), [torch.ones(1, 2)], torch.ones(1, dtype=torch.long), (2,), max_iter=-1),
        HyperparameterError,
        r"^dia: invalid max_iter=-1",
    ),
    # optimizers
    (
        "adamp: beta2 = 1",
        lambda: _get("adamp")([_param(2)], betas=(0.9, 1.0)),
        HyperparameterError,
        r"^adamp: invalid betas=\(0.9, 1.0\)",
    ),
    (
        "sgdp: lr missing",
        lambda: _get("sgdp")([_param(2)]),
        MissingHyperparameterError,
        r"^sgdp: missing required hyperparameter 'lr'",
    ),
    (
        "diffgrad: misspelt keyword",
        lambda: _get("diffgrad")([_param(2)], lrr=0.1),
        UnknownHyperparameterError,
        r"^diffgrad: unknown hyperparameter lrr=0.1 \(did you mean 'lr'\?\)",
    ),
    (
        "diffgrad: float16 parameters",
        lambda: _get("diffgrad")([_param(2, dtype=torch.float16)], lr=0.1),
        UnsupportedInputError,
        r"^diffgrad: .*dtype torch.float16",
    ),
    (
        "mfac: bfloat16 parameters",
        lambda: _get("mfac")([_param(2, dtype=torch.bfloat16)], lr=0.1),
        UnsupportedInputError,
        r"^mfac: .*bfloat16",
    ),
    (
        "adamp: complex parameters",
        lambda: _get("adamp")([nn.Parameter(torch.ones(2, dtype=torch.complex64))]),
        UnsupportedInputError,
        r"^adamp: .*complex64",
    ),
    (
        "normalized_lrgd: fused and foreach",
        lambda: _get("adamp")([_param(2)], foreach=True, fused=True),
        HyperparameterError,
        r"^adamp: invalid fused=True",
    ),
    # the registry, through the public API
    (
        "get: a misspelt name",
        lambda: gradhub.get("adamq"),
        MethodNotFoundError,
        r"no method named 'adamq' is installed. Did you mean 'adamp'\?",
    ),
    ("get: a number", lambda: gradhub.get(3), TypeError, r"a method name is a string, not int: 3"),
    (
        "list: an unknown kind",
        lambda: gradhub.list(kind="optimiser"),
        ValueError,
        r"unknown kind 'optimiser'; kinds are: optimizer",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "pattern"), CASES, ids=[case[0] for case in CASES])
def test_fault_gets_a_clear_error(case: str, call: Callable[[], Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


def test_the_fault_suite_covers_every_kind() -> None:
    named = {case.split(":")[0] for case, *_ in CASES}
    kinds = {gradhub.spec(name).kind.value for name in named if name not in ("get", "list")}
    assert kinds == {"optimizer", "layer", "loss", "solver", "attack", "sampler", "schedule", "probe"}


def test_a_loss_can_skip_its_finiteness_check() -> None:
    value = gradhub.get("dsm_loss")(lambda x, t: x * NAN, torch.ones(4, 2), check_finite=False)
    assert torch.isnan(value)


def test_a_solver_iteration_with_variadic_arguments_is_refused_when_declared() -> None:
    """Hyperparameters are validated, defaulted and documented by name: ``**options`` would skip all three."""
    from gradhub.kinds.solver import solver
    from gradhub.specs import MethodSpec, Paper

    class Model(gradhub.hyperparameters.Hyperparameters):
        tol: float = 1e-6
        max_iter: int = 10

    spec = MethodSpec(
        name="variadic_solver",
        kind="solver",
        summary="a solver whose iteration takes **options",
        paper=Paper(title="A paper", authors=("A. Author",), year=2024),
        target="tests.test_faults",
        params=Model,
        example="tests.test_faults:nothing",
    )
    with pytest.raises(TypeError, match=r"^variadic_solver: a solver's iteration names each .* it declares \*options"):

        @solver(spec)
        def iterate(matrix: Any, *, tol: float, max_iter: int, **options: Any) -> Any:
            yield from ()
