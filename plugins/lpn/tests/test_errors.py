"""Bad hyperparameters and inputs give gradhub errors naming the method, the parameter, the value and the rule."""

from __future__ import annotations

import math

import pytest
import torch
from gradhub_lpn.examples import small_lpn
from gradhub_lpn.loss import ProximalMatchingLoss, default_gamma_min, proximal_matching_schedule
from gradhub_lpn.networks import LPN, ConvLPN
from gradhub_lpn.pnp import pnp_admm, pnp_pgd
from gradhub_lpn.prior import lpn_prior
from gradhub_lpn.training import Stage, laplace_sampler, train_lpn

from gradhub.errors import HyperparameterError, MissingHyperparameterError, UnsupportedInputError


@pytest.mark.parametrize(
    "build,name,value",
    [
        (lambda: LPN(2, beta=0.0), "beta", "0.0"),
        (lambda: LPN(2, beta=-1.0), "beta", "-1.0"),
        (lambda: LPN(2, beta=math.inf), "beta", "inf"),
        (lambda: LPN(2, alpha=-0.1), "alpha", "-0.1"),
        (lambda: LPN(0), "in_dim", "0"),
        (lambda: LPN(2, hidden=0), "hidden", "0"),
        (lambda: LPN(2, layers=-1), "layers", "-1"),
        (lambda: LPN(2.5), "in_dim", "2.5"),
        (lambda: ConvLPN(img_size=30), "img_size", "30"),
        (lambda: ConvLPN(beta=-2.0), "beta", "-2.0"),
        (lambda: ProximalMatchingLoss(0.0), "gamma", "0.0"),
        (lambda: ProximalMatchingLoss(-0.5), "gamma", "-0.5"),
        (lambda: ProximalMatchingLoss(math.nan), "gamma", "nan"),
        (lambda: ProximalMatchingLoss(1.0, reduction="max"), "reduction", "max"),
    ],
)
def test_hyperparameter_errors(build, name, value) -> None:
    with pytest.raises(HyperparameterError) as info:
        build()
    message = str(info.value)
    assert f"invalid {name}=" in message and value in message, message
    assert message.split(":")[0] in ("lpn", "lpn_conv", "proximal_matching"), message


def test_gamma_is_required_and_checked_when_reassigned() -> None:
    with pytest.raises(MissingHyperparameterError, match="proximal_matching: missing required hyperparameter 'gamma'"):
        ProximalMatchingLoss()
    loss = ProximalMatchingLoss(0.5)
    loss.gamma = 0.25
    assert loss.gamma == 0.25
    with pytest.raises(HyperparameterError, match=r"proximal_matching: invalid gamma=-1\.0; gamma must be a finite"):
        loss.gamma = -1.0


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"step": -1, "total": 8, "gamma_min": 0.1}, "step"),
        ({"step": 0, "total": 3, "gamma_min": 0.1}, "total"),
        ({"step": 0, "total": 8, "gamma_min": 0.0}, "gamma_min"),
        ({"step": 0, "total": 8, "gamma_min": -0.1}, "gamma_min"),
        ({"step": 0, "total": 8, "gamma_min": 0.1, "n_stages": 0}, "n_stages"),
        ({"step": 1.5, "total": 8, "gamma_min": 0.1}, "step"),
    ],
)
def test_schedule_errors(kwargs, name) -> None:
    with pytest.raises(HyperparameterError, match=f"proximal_matching_schedule: invalid {name}="):
        proximal_matching_schedule(**kwargs)
    with pytest.raises(HyperparameterError, match="invalid n="):
        default_gamma_min(0)


def test_solver_hyperparameter_errors() -> None:
    model, x = small_lpn(2, "cpu", torch.float64, 0), torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(HyperparameterError, match="lpn_prior: invalid tol=-1"):
        lpn_prior(model, x, tol=-1.0)
    with pytest.raises(HyperparameterError, match="lpn_prior: invalid max_iter=0"):
        lpn_prior(model, x, max_iter=0)
    A, b = torch.eye(2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(HyperparameterError, match="lpn_pnp_pgd: invalid step=0"):
        pnp_pgd(b, A, model, step=0.0)
    with pytest.raises(MissingHyperparameterError, match="lpn_pnp_pgd: missing required hyperparameter 'step'"):
        pnp_pgd(b, A, model)
    with pytest.raises(HyperparameterError, match="lpn_pnp_admm: invalid rho=-1"):
        pnp_admm(b, A, model, rho=-1.0)


@pytest.mark.parametrize(
    "network,y,words",
    [
        ("fc", torch.zeros(3), ["lpn", "y shape", "(3,)", "at least 2-D"]),
        ("fc", torch.zeros(4, 3), ["lpn", "y shape", "(4, 3)", "(B, 2)"]),
        ("fc", torch.zeros(4, 2, dtype=torch.float64), ["lpn", "input dtype", "float64", "float32"]),
        ("fc", torch.zeros(4, 2, dtype=torch.int64), ["lpn", "y dtype", "floating"]),
        ("fc", torch.tensor([[0.0, math.nan]]), ["lpn", "y values", "1 of 2 entries non-finite", "finite"]),
        ("fc", torch.tensor([[math.inf, 0.0]]), ["lpn", "y values", "non-finite", "finite"]),
        ("conv", torch.zeros(2, 1, 4, 4), ["lpn_conv", "y shape", "(2, 1, 4, 4)", "(B, 1, 8, 8)"]),
        ("conv", torch.zeros(1, 8, 8), ["lpn_conv", "y shape", "4-D"]),
        ("conv", torch.full((1, 1, 8, 8), math.nan), ["lpn_conv", "y values", "non-finite"]),
    ],
)
def test_network_input_errors(network, y, words) -> None:
    model = LPN(2, hidden=3, layers=1) if network == "fc" else ConvLPN(hidden=2, img_size=8, head=2)
    for call in (model, model.scalar):
        with pytest.raises(UnsupportedInputError) as info:
            call(y)
        for word in words:
            assert word in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "prediction,target,words",
    [
        (torch.zeros(3, 2), torch.zeros(3, 3), ["proximal_matching", "shapes", "(3, 2)", "(3, 3)", "same shape"]),
        (torch.zeros(()), torch.zeros(()), ["proximal_matching", "prediction shape", "at least 1-D"]),
        (torch.tensor([[0.0, math.nan]]), torch.zeros(1, 2), ["proximal_matching", "prediction values", "nan"]),
        (torch.zeros(1, 2), torch.tensor([[math.inf, 0.0]]), ["proximal_matching", "target values", "inf"]),
        (torch.zeros(0, 2), torch.zeros(0, 2), ["proximal_matching", "prediction shape", "at least one element"]),
    ],
)
def test_loss_input_errors(prediction, target, words) -> None:
    with pytest.raises(UnsupportedInputError) as info:
        ProximalMatchingLoss(0.5)(prediction, target)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_prior_input_errors() -> None:
    model = small_lpn(2, "cpu", torch.float64, 0)
    good = torch.zeros(3, 2, dtype=torch.float64)
    cases = [
        ((torch.nn.Linear(2, 1), good), ["lpn_prior", "model", "scalar(y)"]),
        ((model, torch.zeros(3, 5, dtype=torch.float64)), ["lpn_prior", "x (y shape)", "(3, 5)", "(B, 2)"]),
        ((model, torch.tensor([[0.0, math.nan]], dtype=torch.float64)), ["lpn_prior", "x (y values)", "non-finite"]),
        ((model, good.float()), ["lpn_prior", "x (input dtype)", "float32", "float64"]),
        ((model, good, torch.zeros(2, 2, dtype=torch.float64)), ["lpn_prior", "y0 shape", "(2, 2)", "shaped like x"]),
    ]
    for args, words in cases:
        with pytest.raises(UnsupportedInputError) as info:
            lpn_prior(*args)
        for word in words:
            assert word in str(info.value), str(info.value)


def test_pnp_input_errors() -> None:
    model = small_lpn(2, "cpu", torch.float64, 0)
    A, b = torch.eye(2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    cases = [
        (lambda: pnp_pgd(b, torch.eye(3, dtype=torch.float64), model, step=1.0), ["lpn_pnp_pgd", "b shape", "(B, 3)"]),
        (lambda: pnp_pgd(b, lambda x: x, model, step=1.0), ["lpn_pnp_pgd", "At", "adjoint"]),
        (lambda: pnp_pgd(b, "A", model, step=1.0), ["lpn_pnp_pgd", "A", "matrix or a callable"]),
        (lambda: pnp_pgd(b, A, "prox", step=1.0), ["lpn_pnp_pgd", "prox", "callable"]),
        (lambda: pnp_pgd(b, A, lambda v: v[:, :1], step=1.0), ["lpn_pnp_pgd", "prox output", "shape (3, 2)"]),
        (lambda: pnp_pgd(b * math.nan, A, model, step=1.0), ["lpn_pnp_pgd", "b values", "non-finite"]),
        (lambda: pnp_pgd(b, A.float(), model, step=1.0), ["lpn_pnp_pgd", "A dtype", "float64"]),
        (lambda: pnp_admm(b, lambda x: x, model), ["lpn_pnp_admm", "A", "closed form"]),
        (lambda: pnp_admm(b, A, model, torch.zeros(3, 5, dtype=torch.float64)), ["lpn_pnp_admm", "x0 shape", "(3, 2)"]),
    ]
    for call, words in cases:
        with pytest.raises(UnsupportedInputError) as info:
            call()
        for word in words:
            assert word in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"sigma": 0.0}, ["train_lpn", "sigma", "0.0", "> 0"]),
        ({"sigma": -1.0}, ["train_lpn", "sigma", "-1.0", "> 0"]),
        ({"sigma": math.nan}, ["train_lpn", "sigma", "nan", "finite"]),
        ({"batch_size": 0}, ["train_lpn", "batch_size", ">= 1"]),
        ({"batch_size": 3, "antithetic": True}, ["train_lpn", "batch_size", "even"]),
        ({"stages": []}, ["train_lpn", "stages", "non-empty"]),
    ],
)
def test_training_errors(kwargs, words) -> None:
    options = {"sigma": 1.0, "stages": [Stage("l2", 1, 1e-3)], "batch_size": 4, **kwargs}
    with pytest.raises(UnsupportedInputError) as info:
        train_lpn(LPN(1, hidden=2, layers=1), laplace_sampler(), **options)
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "stage,words",
    [
        (lambda: Stage("pm", 10, 1e-3), ["train_lpn", "gamma", "None", "> 0"]),
        (lambda: Stage("pm", 10, 1e-3, 0.0), ["train_lpn", "gamma", "0.0", "> 0"]),
        (lambda: Stage("pm", 10, 1e-3, -0.2), ["train_lpn", "gamma", "-0.2"]),
        (lambda: Stage("l3", 10, 1e-3), ["train_lpn", "stage loss", "'l3'"]),
        (lambda: Stage("l1", 0, 1e-3), ["train_lpn", "stage steps", ">= 1"]),
        (lambda: Stage("l1", 10, 0.0), ["train_lpn", "stage lr", "> 0"]),
        (lambda: laplace_sampler(scale=-1.0), ["train_lpn", "scale", "> 0"]),
    ],
)
def test_stage_errors(stage, words) -> None:
    with pytest.raises(UnsupportedInputError) as info:
        stage()
    for word in words:
        assert word in str(info.value), str(info.value)
