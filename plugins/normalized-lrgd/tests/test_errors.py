"""Bad input raises gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import pytest
import torch
from gradhub_normalized_lrgd.optimizer import NormalizedLRGD
from gradhub_normalized_lrgd.solvers import batch_perceptron, lr_gd

from gradhub import HyperparameterError, UnsupportedInputError

X = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([1.0, -1.0] * 4, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"lr": -1.0}, "lr"), ({"normalize": "max"}, "normalize"), ({"eps": -0.1}, "eps"), ({"lr": "0.1"}, "lr")],
)
def test_optimizer_hyperparameters(kwargs, name) -> None:
    with pytest.raises(HyperparameterError, match=rf"normalized_lrgd: invalid {name}="):
        NormalizedLRGD([torch.zeros(2, requires_grad=True)], **kwargs)


def test_optimizer_needs_a_closure() -> None:
    w = torch.zeros(2, requires_grad=True)
    w.grad = torch.ones(2)
    with pytest.raises(UnsupportedInputError, match="normalized_lrgd: unsupported closure"):
        NormalizedLRGD([w]).step()
    assert torch.equal(w.detach(), torch.zeros(2))


@pytest.mark.parametrize("solver", [lr_gd, batch_perceptron])
@pytest.mark.parametrize(
    ("kwargs", "name"), [({"tol": -0.1}, "tol"), ({"tol": 1.0}, "tol"), ({"max_iter": 0}, "max_iter")]
)
def test_solver_hyperparameters(solver, kwargs, name) -> None:
    with pytest.raises(HyperparameterError, match=rf"{solver.__name__}: invalid {name}="):
        solver(X, Y, **kwargs)


def test_lr_and_tie_bounds() -> None:
    with pytest.raises(HyperparameterError, match=r"lr_gd: invalid lr=0.0; lr must be a finite number > 0"):
        lr_gd(X, Y, lr=0.0)
    with pytest.raises(HyperparameterError, match=r"batch_perceptron: invalid tie=1.5"):
        batch_perceptron(X, Y, tie=1.5)


@pytest.mark.parametrize("solver", [lr_gd, batch_perceptron])
def test_bad_data(solver) -> None:
    name = solver.__name__
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported X shape: \(8,\)"):
        solver(X[:, 0], Y)
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported X dtype: torch.int64"):
        solver(X.long(), Y)
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported y shape: \(7,\)"):
        solver(X, Y[:7])
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported y values"):
        solver(X, (Y > 0).double())
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported w0 shape: \(2,\)"):
        solver(X, Y, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported w0 dtype: torch.float32"):
        solver(X, Y, torch.zeros(3))
