"""Bad input gives gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import pytest
import torch
from gradhub_dcdm.cg import cg
from gradhub_dcdm.dcdm import dcdm
from gradhub_dcdm.loss import dcdm_loss
from gradhub_dcdm.network import DCDMNet

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError

A = torch.eye(4, dtype=torch.float64) * 2
B = torch.ones(4, dtype=torch.float64)


def identity(r: torch.Tensor) -> torch.Tensor:
    return r


@pytest.mark.parametrize(
    "args,kwargs,words",
    [
        ((torch.ones(3, 4, dtype=torch.float64), B, identity), {}, ["dcdm", "A", "square"]),
        ((A, torch.ones(5, dtype=torch.float64), identity), {}, ["dcdm", "b", "n = 4"]),
        ((A.long(), B, identity), {}, ["dcdm", "A", "floating"]),
        ((A.float(), B, identity), {}, ["dcdm", "dtype", "float32"]),
        ((A.half(), B.half(), identity), {}, ["dcdm", "dtype", "float32"]),
        ((A, B, "not a model"), {}, ["dcdm", "model", "callable"]),
        ((A, B, identity), {"x0": torch.ones(3)}, ["dcdm", "x0", "shaped like b"]),
        ((A, B, identity), {"grid": (3, 3)}, ["dcdm", "grid", "n = 4"]),
        ((A, B, lambda r: r[:, :2]), {}, ["dcdm", "model output", "as many entries"]),
        ((A, B, lambda r: r * float("nan")), {}, ["dcdm", "model output", "finite"]),
        ((A - 3 * torch.eye(4, dtype=torch.float64), B, identity), {}, ["dcdm", "A", "p^T A p", "positive definite"]),
        ((torch.triu(torch.ones(4, 4, dtype=torch.float64)), B, identity), {}, ["dcdm", "A", "symmetric"]),
        ((lambda v: -v, B, identity), {}, ["dcdm", "A", "positive definite"]),
        ((lambda v: v[:2], B, identity), {}, ["dcdm", "A (callable)", "shaped like its input"]),
    ],
)
def test_dcdm_input_errors(args, kwargs, words) -> None:
    with pytest.raises(UnsupportedInputError) as info:
        dcdm(*args, **kwargs)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_zero_direction_is_reported() -> None:
    with pytest.raises(UnsupportedInputError, match="A-orthogonal"):
        dcdm(A, B, lambda r: torch.zeros_like(r))


@pytest.mark.parametrize(
    "kwargs,name",
    [({"tol": -1.0}, "tol"), ({"max_iter": 0}, "max_iter"), ({"n_orth": -1}, "n_orth"), ({"dtype": "int8"}, "dtype")],
)
def test_dcdm_hyperparameter_errors(kwargs, name) -> None:
    with pytest.raises(HyperparameterError, match=f"dcdm: invalid {name}="):
        dcdm(A, B, identity, **kwargs)


def test_unknown_keywords() -> None:
    with pytest.raises(UnknownHyperparameterError, match="did you mean 'n_orth'"):
        dcdm(A, B, identity, n_ortho=2)
    with pytest.raises(UnknownHyperparameterError, match="cg: unknown hyperparameter"):
        cg(A, B, model=identity)
    with pytest.raises(UnknownHyperparameterError, match="dcdm_net"):
        DCDMNet(width=3)


def test_cg_errors() -> None:
    with pytest.raises(UnsupportedInputError, match=r"cg: .*p\^T A p"):
        cg(-A, B)
    with pytest.raises(UnsupportedInputError, match=r"cg: .*b"):
        cg(A, torch.ones(2, 2, 4, dtype=torch.float64))


def test_loss_and_network_errors() -> None:
    f = torch.ones(2, 4, dtype=torch.float64)
    with pytest.raises(UnsupportedInputError, match=r"dcdm_loss: .*f_b, b must have the same shape"):
        dcdm_loss(f, torch.ones(2, 5, dtype=torch.float64), A)
    with pytest.raises(UnsupportedInputError, match=r"dcdm_loss: .*A must be \(4, 4\)"):
        dcdm_loss(f, f, torch.eye(3, dtype=torch.float64))
    with pytest.raises(HyperparameterError, match="dcdm_loss: invalid reduction"):
        dcdm_loss(f, f, A, reduction="max")
    with pytest.raises(HyperparameterError, match="dcdm_net: invalid dim=4"):
        DCDMNet(dim=4)
    with pytest.raises(UnsupportedInputError, match=r"dcdm_net: .*\(B, 1, N, N\)"):
        DCDMNet(dim=2, channels=2)(torch.ones(1, 8, 8))
