"""Bad input raises gradhub errors that name the method, the argument and the value (and which function failed)."""

from __future__ import annotations

import warnings

import pytest
import torch
from gradhub_lvhba.lvhba import LVHBA, lv_hba
from gradhub_lvhba.problems import coupled_toy
from gradhub_lvhba.projections import product

from gradhub import HyperparameterError, UnsupportedInputError
from gradhub.errors import UnknownHyperparameterError

D = torch.float64
TOY = coupled_toy((1,), n=3)
X0 = torch.zeros(1, 3, dtype=D)


def _solve(F=TOY.F, f=TOY.f, g=TOY.g, x0=X0, y0=X0, **kwargs):
    kwargs.setdefault("proj_C", TOY.proj_C)
    kwargs.setdefault("max_iter", 2)
    return lv_hba(F, f, g, x0, y0, **kwargs)


STEP_BAD = [
    ("alpha", 0.0),
    ("beta", -1.0),
    ("eta", 0.0),
    ("gamma1", 0.0),
    ("gamma2", -2.0),
    ("c0", 0.0),
    ("p", 0.0),
    ("p", 0.5),
    ("lam_max", 0.0),
    ("constraint", "both"),
    ("alpha", "0.1"),
    ("alpha", float("inf")),
]


@pytest.mark.parametrize(("name", "value"), [*STEP_BAD, ("tol", -1.0), ("max_iter", 0), ("max_iter", 2.5)])
def test_bad_hyperparameters_of_the_solver(name, value):
    with pytest.raises(HyperparameterError, match=rf"lv_hba.*{name}"):
        _solve(**{name: value})


@pytest.mark.parametrize(("name", "value"), STEP_BAD)
def test_bad_hyperparameters_of_the_stepper(name, value):
    with pytest.raises(HyperparameterError, match=rf"lv_hba.*{name}"):
        LVHBA(TOY.F, TOY.f, TOY.g, X0, X0, proj_C=TOY.proj_C, **{name: value})


def test_the_stepper_has_no_stopping_rule():
    with pytest.raises(UnknownHyperparameterError, match=r"lv_hba.*tol"):
        LVHBA(TOY.F, TOY.f, TOY.g, X0, X0, proj_C=TOY.proj_C, tol=1e-3)


def test_unknown_keyword():
    with pytest.raises(UnknownHyperparameterError, match=r"lv_hba.*lr"):
        _solve(lr=0.1)


@pytest.mark.parametrize(
    ("x0", "y0", "what"),
    [
        (torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=D), "x0 dtype"),
        (torch.zeros(1, 1, 3, dtype=D), torch.zeros(1, 1, 3, dtype=D), "x0 shape"),
        (torch.zeros(0, dtype=D), torch.zeros(3, dtype=D), "x0 shape"),
        ([0.0, 1.0], torch.zeros(2, dtype=D), "x0"),
        (torch.zeros(3, dtype=D), torch.zeros(1, 3, dtype=D), "x0, y0 shapes"),
        (torch.zeros(2, 3, dtype=D), torch.zeros(1, 3, dtype=D), "x0, y0 shapes"),
        (torch.zeros(3, dtype=D), torch.zeros(3, dtype=torch.float32), "y0 dtype"),
        (torch.zeros(3, dtype=torch.float16), torch.zeros(3, dtype=torch.float16), "x0 dtype"),
    ],
)
def test_bad_starting_points(x0, y0, what):
    with pytest.raises(UnsupportedInputError, match=f"lv_hba: unsupported {what}"):
        _solve(x0=x0, y0=y0, proj_C=None, g=None)


def test_outputs_of_F_f_g_are_checked_and_named():
    with pytest.raises(UnsupportedInputError, match=r"unsupported F output: \(1, 3\).*one value per row: shape \(1,\)"):
        _solve(F=lambda x, y: (x - y).square())
    with pytest.raises(UnsupportedInputError, match=r"unsupported f output: \(3,\).*scalar tensor"):
        _solve(f=lambda x, y: y.square(), x0=X0[0], y0=X0[0], g=lambda x, y: y - x)
    with pytest.raises(UnsupportedInputError, match=r"unsupported F output: float"):
        _solve(F=lambda x, y: 1.0, x0=X0[0], y0=X0[0], g=lambda x, y: y - x)
    with pytest.raises(UnsupportedInputError, match=r"unsupported g output: \(1, 1, 3\).*\(1, m\)"):
        _solve(g=lambda x, y: (y - x).unsqueeze(0))
    with pytest.raises(UnsupportedInputError, match=r"unsupported g output: \(3, 1\).*1-D"):
        _solve(g=lambda x, y: (y - x).unsqueeze(-1), x0=X0[0], y0=X0[0])
    with pytest.raises(UnsupportedInputError, match=r"unsupported g output dtype: torch.bool"):
        _solve(g=lambda x, y: y > x)
    with pytest.raises(UnsupportedInputError, match=r"unsupported F\b.*callable"):
        _solve(F="F")
    with pytest.raises(UnsupportedInputError, match=r"unsupported g\b.*callable"):
        _solve(g=3)


@pytest.mark.parametrize("name", ["F", "f", "g"])
def test_non_finite_values_at_the_start_are_named(name):
    functions = {"F": TOY.F, "f": TOY.f, "g": TOY.g}
    original = functions[name]
    functions[name] = lambda x, y: original(x, y) * float("nan") if name != "g" else original(x, y) + float("inf")
    with pytest.raises(UnsupportedInputError, match=rf"lv_hba: unsupported {name} value.*non-finite.*{name}\(x0, y0\)"):
        _solve(**functions)


def test_a_constraint_count_that_changes_is_an_error():
    calls = []

    def g(x, y):
        calls.append(1)
        return (y - x) if len(calls) == 1 else (y - x)[..., :2]

    with pytest.raises(UnsupportedInputError, match="m must not change"):
        _solve(g=g)


def test_projections_are_checked():
    with pytest.raises(UnsupportedInputError, match=r"proj_C output.*must return \(x, y\)"):
        _solve(proj_C=lambda x, y: x)
    with pytest.raises(UnsupportedInputError, match=r"proj_C \(y\) output.*like its input"):
        _solve(proj_C=lambda x, y: (x, y[..., :2]))
    with pytest.raises(UnsupportedInputError, match=r"proj_Y output.*float32.*like its input"):
        _solve(proj_Y=lambda t: t.float())
    with pytest.raises(UnsupportedInputError, match=r"proj_X.*given with proj_C"):
        _solve(proj_X=lambda x: x)
    with pytest.raises(UnsupportedInputError, match=r"proj_Y.*callable"):
        _solve(proj_Y=1.0)


def test_multiplier_starts_are_checked():
    with pytest.raises(UnsupportedInputError, match=r"lam0 shape: \(3,\).*\(1, 3\)"):
        _solve(lam0=torch.zeros(3, dtype=D))
    with pytest.raises(UnsupportedInputError, match=r"z0 dtype"):
        _solve(z0=torch.zeros(1, 3, dtype=torch.int64))


def test_run_checks_its_count():
    run = LVHBA(TOY.F, TOY.f, TOY.g, X0, X0, proj_C=TOY.proj_C)
    with pytest.raises(UnsupportedInputError, match="n_iter"):
        run.run(-1)


def test_missing_proj_C_with_a_coupled_constraint_warns():
    with pytest.warns(UserWarning, match=r"proj_C is None.*not enforced.*pass proj_C"):
        _solve(proj_C=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _solve(proj_C=None, g=None)  # nothing to enforce: no warning
        _solve(proj_C=product(), g=lambda x, y: -torch.ones(1, 1, dtype=D))  # feasible: no warning


def test_a_proj_C_that_leaves_the_constraint_violated_warns():
    # y0 > x0 and a proj_C that does not know about g(x, y) = y - x <= 0
    with pytest.warns(UserWarning, match=r"violates the lower-level constraint by 1.*infeasible"):
        _solve(proj_C=product(), y0=torch.ones(1, 3, dtype=D))
    with pytest.warns(UserWarning, match=r"g\(x0, y0\) != 0"):
        _solve(proj_C=product(), y0=torch.ones(1, 3, dtype=D), constraint="equality")


def test_infeasible_box_is_an_error_before_anything_runs():
    from gradhub_lvhba.projections import box

    with pytest.raises(UnsupportedInputError, match="infeasible"):
        _solve(proj_Y=box(1.0, -1.0))
