"""Bad input raises gradhub errors that name the method, the parameter and the value."""

from __future__ import annotations

import pytest
import torch
from gradhub_gns.newton import gns_newton
from gradhub_gns.radius import gns_radius, gns_radius_at
from torch import nn

from gradhub import HyperparameterError, UnsupportedInputError
from gradhub.errors import UnknownHyperparameterError

D = torch.float64


def _f(x):
    return x.square().sum()


@pytest.mark.parametrize(
    ("name", "value"), [("gamma0", 0.0), ("max_inner", 0), ("tol", -1.0), ("gamma_min", -1.0), ("eps", "x")]
)
def test_bad_hyperparameters(name, value):
    with pytest.raises(HyperparameterError, match=rf"gns_newton.*{name}"):
        gns_newton(_f, torch.zeros(2, dtype=D), **{name: value})


def test_unknown_keyword():
    with pytest.raises(UnknownHyperparameterError, match=r"gns_newton.*lr"):
        gns_newton(_f, torch.zeros(2, dtype=D), lr=0.1)


@pytest.mark.parametrize(
    ("x0", "what"),
    [
        (torch.zeros(2, 2, dtype=D), "x0 shape"),
        (torch.zeros(2, dtype=torch.int64), "x0 dtype"),
        ([0.0, 1.0], "x0"),
        (torch.zeros(0, dtype=D), "x0 shape"),
    ],
)
def test_bad_start(x0, what):
    with pytest.raises(UnsupportedInputError, match=f"gns_newton: unsupported {what}"):
        gns_newton(_f, x0)


def test_bad_metric():
    x0 = torch.ones(2, dtype=D)
    with pytest.raises(UnsupportedInputError, match=r"metric B.*\(3, 3\)"):
        gns_newton(_f, x0, B=torch.eye(3, dtype=D))
    with pytest.raises(UnsupportedInputError, match="not positive definite"):
        gns_newton(_f, x0, B=-torch.eye(2, dtype=D))
    with pytest.raises(UnsupportedInputError, match="symmetric"):
        gns_newton(_f, x0, B=torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=D))
    with pytest.raises(UnsupportedInputError, match=r"metric B device.*meta"):
        gns_newton(_f, x0, B=torch.eye(2, dtype=D, device="meta"))


def test_bad_objective_and_hessian():
    x0 = torch.ones(2, dtype=D)
    with pytest.raises(UnsupportedInputError, match=r"objective output: \(2,\)"):
        gns_newton(lambda x: x * 2, x0)
    with pytest.raises(UnsupportedInputError, match=r"Hessian shape: \(3, 3\)"):
        gns_newton(_f, x0, hessian=lambda x: torch.eye(3, dtype=D))
    with pytest.raises(UnsupportedInputError, match="hessian"):
        gns_newton(_f, x0, hessian=torch.eye(2, dtype=D))


def test_radius_errors():
    with pytest.raises(UnsupportedInputError, match="gns_radius: unsupported model"):
        gns_radius("not a model", _f)
    with pytest.raises(UnsupportedInputError, match=r"gns_radius: unsupported x shape: \(2, 2\)"):
        gns_radius_at(_f, torch.zeros(2, 2, dtype=D))
    with pytest.raises(UnsupportedInputError, match=r"gns_radius: unsupported H: \(3, 3\)"):
        gns_radius_at(_f, torch.ones(2, dtype=D), torch.eye(3, dtype=D))
    with pytest.raises(HyperparameterError, match=r"gns_radius.*rel_tol"):
        gns_radius(nn.Linear(2, 1), _f, torch.zeros(1, 2), rel_tol=0.0)


def test_generator_on_another_device_than_x():
    x = torch.ones(2, dtype=D, device="meta")
    with pytest.raises(UnsupportedInputError, match=r"gns_radius: unsupported generator device: cpu"):
        gns_radius_at(_f, x, generator=torch.Generator())
    with pytest.raises(UnsupportedInputError, match=r"gns_radius: unsupported generator: int"):
        gns_radius_at(_f, torch.ones(2, dtype=D), generator=1)
