"""Bad input gives gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import warnings

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


# --- non-finite and degenerate inputs (issue 11) ----------------------------------------------------

NAN_B = torch.tensor([1.0, float("nan"), 1.0, 1.0], dtype=torch.float64)
NAN_A = A.clone()
NAN_A[0, 0] = float("nan")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    NAN_CSR = NAN_A.to_sparse_csr()


def _dcdm(A, b, *rest, **kwargs):
    return dcdm(A, b, identity, *rest, **kwargs)


def _solvers():
    return [("cg", cg), ("dcdm", _dcdm)]


@pytest.mark.parametrize(("name", "solve"), _solvers())
@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((A, NAN_B), r"unsupported b values: 1 of 4 entries non-finite \(first: nan\); b must be finite"),
        ((A, B, NAN_B), r"unsupported x0 values: 1 of 4 entries non-finite \(first: nan\); x0 must be finite"),
        ((NAN_A, B), r"unsupported A values: 1 of 16 entries non-finite \(first: nan\); A must be finite"),
        ((NAN_CSR, B), r"unsupported A \(sparse CSR, stored\) values: 1 of 4 entries non-finite"),
        (
            (A, torch.full((4,), 1e39, dtype=torch.float64)),
            r"unsupported b values: 4 of 4 entries non-finite \(first: inf\)",
        ),
    ],
)
def test_non_finite_problem_is_rejected(name, solve, args, pattern) -> None:
    """NaN in b used to return zeros; NaN in a dense A gave torch's 'atol must be ... got -nan'."""
    kwargs = {"dtype": torch.float32} if args[1].abs().max() > 1e38 else {}  # the float32 cast overflows
    with pytest.raises(UnsupportedInputError, match=rf"^{name}: {pattern}"):
        solve(*args, **kwargs)


@pytest.mark.parametrize(("name", "solve"), _solvers())
def test_non_finite_callable_operator_stops_unconverged(name, solve) -> None:
    """A callable A cannot be checked up front: its NaN residual stops the frame with converged=False."""
    result = solve(lambda v: NAN_A @ v, B)
    assert not result.converged
    assert result.iterations == 0 and torch.isnan(result.residuals[-1])


def test_network_input_dtype_must_match_the_layer() -> None:
    net = DCDMNet(dim=2, channels=2)
    with pytest.raises(
        UnsupportedInputError,
        match=r"^dcdm_net: unsupported input dtype: torch.float64; input must be torch.float32 like the layer's",
    ):
        net(torch.ones(1, 1, 4, 4, dtype=torch.float64))
    assert net.double()(torch.ones(1, 1, 4, 4, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("shape", [(0, 4), (0, 1, 2, 2)])
def test_loss_needs_a_nonempty_batch(shape) -> None:
    empty = torch.ones(shape, dtype=torch.float64)
    pattern = r"^dcdm_loss: unsupported b shape: \(0, .*\); f_b and b must hold a batch of at least one sample"
    with pytest.raises(UnsupportedInputError, match=pattern):
        dcdm_loss(empty, empty, A)
