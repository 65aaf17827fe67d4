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


# --- non-finite inputs (issue 11) -----------------------------------------------------------------


@pytest.mark.parametrize("solver", [lr_gd, batch_perceptron])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_data_is_rejected(solver, bad) -> None:
    """A NaN margin is not <= 0, so a NaN in X used to count as classified; now it is an error up front."""
    name = solver.__name__
    X_bad = X.clone()
    X_bad[3, 1] = bad
    with pytest.raises(
        UnsupportedInputError, match=rf"{name}: unsupported X values: 1 of 24 entries non-finite .*X must be finite"
    ):
        solver(X_bad, Y)
    y_bad = Y.clone()
    y_bad[0] = bad
    with pytest.raises(
        UnsupportedInputError, match=rf"{name}: unsupported y values: {bad!r} .*y must hold only -1 and \+1"
    ):
        solver(X, y_bad)
    w0 = torch.zeros(3, dtype=torch.float64)
    w0[2] = bad
    with pytest.raises(
        UnsupportedInputError, match=rf"{name}: unsupported w0 values: 1 of 3 entries non-finite .*w0 must be finite"
    ):
        solver(X, Y, w0)


def _nan_closure(optimizer, w, *, loss_nan: bool):
    """A closure whose loss is NaN (loss_nan), or finite with one infinite gradient entry."""

    def closure():
        optimizer.zero_grad()
        loss = (w * float("nan")).sum() if loss_nan else w.square().sum() + 1.0
        loss.backward()
        if not loss_nan:
            w.grad[1] = float("inf")
        return loss

    return closure


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("normalize", ["loss", "grad_norm"])
@pytest.mark.parametrize(
    ("loss_nan", "pattern"),
    [
        (True, r"normalized_lrgd: unsupported loss: nan \(the closure's f\(w\)\); the closure must return a finite"),
        (False, r"normalized_lrgd: unsupported gradient values: 1 of 3 entries non-finite; .*must be finite"),
    ],
)
def test_non_finite_loss_or_gradient_never_reaches_the_parameters(normalize, foreach, loss_nan, pattern) -> None:
    w = torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = NormalizedLRGD([w], lr=0.1, normalize=normalize, foreach=foreach)
    finite = _closure_of(optimizer, w)
    optimizer.step(finite)  # a good step first, so the state dict is not the fresh one
    before_w, before_state = w.detach().clone(), optimizer.state_dict()
    with pytest.raises(UnsupportedInputError, match=pattern):
        optimizer.step(_nan_closure(optimizer, w, loss_nan=loss_nan))
    assert torch.equal(w.detach(), before_w)
    assert optimizer.state_dict() == before_state
    optimizer.step(finite)  # and it steps again once the loss is finite
    assert not torch.equal(w.detach(), before_w)
    assert torch.isfinite(w).all()


def _closure_of(optimizer, w):
    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.softplus(-Y[:3] * (X[:3] @ w)).mean()
        loss.backward()
        return loss

    return closure
