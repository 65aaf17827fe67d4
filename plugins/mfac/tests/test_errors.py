"""Bad input raises gradhub errors that name the method, the parameter and the value."""

from __future__ import annotations

import pytest
import torch
from gradhub_mfac.ihvp import SlidingWindowIHVP, StaticIHVP, dynamic_ihvp, static_ihvp
from gradhub_mfac.optimizer import MFAC
from gradhub_mfac.pruning import MFACPruner, obs_prune
from torch import nn

import gradhub


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"lr": -1.0}, "lr"),
        ({"ngrads": 0}, "ngrads"),
        ({"damp": 0.0}, "damp"),
        ({"momentum": 1.0}, "momentum"),
        ({"ngrads": 2.5}, "ngrads"),
    ],
)
def test_optimizer_hyperparameters(kwargs: dict, parameter: str) -> None:
    with pytest.raises(gradhub.HyperparameterError, match=rf"mfac.*{parameter}"):
        MFAC([nn.Parameter(torch.zeros(2))], **kwargs)


def test_optimizer_unknown_keyword() -> None:
    with pytest.raises(gradhub.HyperparameterError, match="optdev"):
        MFAC([nn.Parameter(torch.zeros(2))], optdev="cpu")


def test_static_bad_inputs() -> None:
    grads = torch.randn(4, 10, dtype=torch.float64)
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_ihvp_static.*damp"):
        StaticIHVP(grads, damp=-1.0)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_ihvp_static.*grads"):
        StaticIHVP(torch.randn(10))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_ihvp_static.*grads.*int64"):
        StaticIHVP(torch.ones(4, 10, dtype=torch.int64))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_ihvp_static.*x.*shape"):
        StaticIHVP(grads).mul(torch.randn(11, dtype=torch.float64))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_ihvp_static.*row"):
        StaticIHVP(grads).entry(10, 0)
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_ihvp_static.*blocksize"):
        StaticIHVP.blocked(grads, 0)


def test_dynamic_bad_inputs() -> None:
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_ihvp_dynamic.*m"):
        SlidingWindowIHVP(10, 0)
    window = SlidingWindowIHVP(10, 3, dtype=torch.float64)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_ihvp_dynamic.*g.*shape"):
        window.update(torch.randn(9, dtype=torch.float64))


def test_solver_functions_bad_inputs() -> None:
    grads, x = torch.randn(4, 10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_ihvp_static.*tol"):
        static_ihvp(grads, x, tol=-1.0)
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_ihvp_dynamic.*ngrads"):
        dynamic_ihvp(grads, x, ngrads=0)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_ihvp_static.*x"):
        static_ihvp(grads, x.float())


def test_pruner_bad_inputs() -> None:
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_prune.*ngrads"):
        MFACPruner(nn.Linear(2, 2), [], lambda: [], ngrads=0)
    with pytest.raises(gradhub.HyperparameterError, match=r"mfac_prune.*sparsity"):
        obs_prune(torch.ones(4), torch.ones(4, dtype=torch.bool), torch.ones(2, 4), 1.5)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac_prune.*grads"):
        obs_prune(torch.ones(4), torch.ones(4, dtype=torch.bool), torch.ones(2, 5), 0.5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_optimizer_refuses_half_precision_parameters(dtype: torch.dtype) -> None:
    """Before: bfloat16 parameters were accepted and never changed (the update rounded away against them)."""
    name = str(dtype).removeprefix("torch.")
    params = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=dtype))]
    with pytest.raises(
        gradhub.UnsupportedInputError,
        match=rf"^mfac: .*parameter 1 of param group 0: dtype torch\.{name};.*float32, float64.*rounds away",
    ):
        MFAC(params)
    optimizer = MFAC([nn.Parameter(torch.zeros(2))])
    with pytest.raises(
        gradhub.UnsupportedInputError, match=rf"mfac: .*parameter 0 of param group 1: dtype torch\.{name}"
    ):
        optimizer.add_param_group({"params": [nn.Parameter(torch.zeros(3, dtype=dtype))]})
    assert len(optimizer.param_groups) == 1
