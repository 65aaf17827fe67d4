"""Bad input raises gradhub errors naming the method, the parameter and the value; nothing non-finite converges."""

from __future__ import annotations

import pytest
import torch
from convex_relu_testkit import D, classification, regression
from gradhub_convex_relu import ConvexReLUADMM, GatedReLUSCP, RobustConvexReLU
from gradhub_convex_relu.admm import convex_relu_admm
from gradhub_convex_relu.adversarial import convex_relu_adv
from gradhub_convex_relu.arrangements import sample_arrangements
from gradhub_convex_relu.network import recover_network, train_relu_network
from gradhub_convex_relu.scp import convex_relu_scp

from gradhub import HyperparameterError, UnsupportedInputError
from gradhub.errors import MissingHyperparameterError, UnknownHyperparameterError

SOLVERS = [convex_relu_admm, convex_relu_scp]


@pytest.mark.parametrize("solve", SOLVERS)
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("beta", 0.0),
        ("beta", -1.0),
        ("rho", 0.0),
        ("n_arrangements", 0),
        ("tol", -1.0),
        ("max_iter", 0),
        ("loss", "l1"),
    ],
)
def test_bad_hyperparameters(solve, name, value):
    X, y = regression()
    with pytest.raises(HyperparameterError, match=rf"{solve.spec.name}.*{name}"):
        solve(X, y, **{name: value})


def test_gamma_bounds_and_hinge_needs_admm():
    X, y = classification()
    with pytest.raises(HyperparameterError, match=r"convex_relu_admm.*gamma"):
        convex_relu_admm(X, y, gamma=1.7)
    with pytest.raises(HyperparameterError, match=r"convex_relu_scp.*hinge.*admm"):
        convex_relu_scp(X, y, loss="hinge")
    with pytest.raises(MissingHyperparameterError, match=r"convex_relu_adv.*'eps'"):
        convex_relu_adv(X, y)
    with pytest.raises(UnknownHyperparameterError, match=r"convex_relu_admm.*lr"):
        convex_relu_admm(X, y, lr=0.1)


@pytest.mark.parametrize("solve", SOLVERS)
def test_bad_shapes_and_dtypes(solve):
    X, y = regression()
    name = solve.spec.name
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported X shape: \(20,\)"):
        solve(X[:, 0], y)
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported shapes: X \(20, 2\), y \(19,\)"):
        solve(X, y[:-1])
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported shapes"):
        solve(X, y.reshape(4, 5))
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported X dtype: torch.int64"):
        solve(X.long(), y)
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported X shape: \(0, 2\)"):
        solve(X[:0], y[:0])
    with pytest.raises(UnsupportedInputError, match=rf"{name}: unsupported gates"):
        solve(X, y, torch.ones(2, 3, dtype=D))


@pytest.mark.parametrize("solve", SOLVERS)
def test_non_finite_data(solve):
    X, y = regression()
    bad = X.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(UnsupportedInputError, match=rf"{solve.spec.name}: unsupported X values: 1 of 40"):
        solve(bad, y)
    worse = y.clone()
    worse[0] = float("inf")
    with pytest.raises(UnsupportedInputError, match=rf"{solve.spec.name}: unsupported y values"):
        solve(X, worse)


def test_labels_must_be_signs_for_classification_losses():
    X, y = regression()
    with pytest.raises(UnsupportedInputError, match=r"convex_relu_admm: unsupported y values.*-1 or \+1"):
        convex_relu_admm(X, y, loss="logistic")
    with pytest.raises(UnsupportedInputError, match=r"convex_relu_adv: unsupported y values"):
        convex_relu_adv(X, y, eps=0.1)


def test_zero_arrangements():
    """Every sampled gate leaves every sample inactive: no pattern to train on."""
    X = torch.tensor([[1.0], [2.0]], dtype=D)
    seed = next(s for s in range(100) if torch.randn(1, 1, generator=torch.Generator().manual_seed(s), dtype=D) < 0)
    with pytest.raises(UnsupportedInputError, match=r"convex_relu_admm: unsupported arrangements: no non-zero"):
        convex_relu_admm(X, torch.ones(2, dtype=D), n_arrangements=1, include_bias=False, seed=seed)
    with pytest.raises(UnsupportedInputError, match=r"sample_arrangements: unsupported P: 0"):
        sample_arrangements(X, 0)


def test_exact_enumeration_is_for_tiny_problems():
    X = torch.randn(400, 5, dtype=D, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedInputError, match=r"convex_relu_admm: unsupported exact: True with n=400, d=6"):
        convex_relu_admm(X, torch.ones(400, dtype=D), exact=True)


def test_non_finite_answer_never_converges():
    """Targets whose squares overflow: the iteration meets a non-finite residual and reports no convergence."""
    X, y = regression()
    result = convex_relu_admm(X, y * 1e300, n_arrangements=4, beta=0.1, tol=1e300, max_iter=50)
    assert not result.converged
    assert not torch.isfinite(result.residuals[-1]) or not torch.isfinite(result.solution).all()


def test_not_converged_within_max_iter():
    X, y = regression()
    result = convex_relu_admm(X, y, n_arrangements=4, beta=0.1, tol=0.0, max_iter=3)
    assert not result.converged and result.iterations == 3 and result.residuals.shape == (4,)


def test_helper_errors():
    with pytest.raises(UnsupportedInputError, match=r"recover_network: unsupported weights shape: \(3, 2, 3\)"):
        recover_network(torch.zeros(3, 2, 3, dtype=D))
    X, y = regression()
    with pytest.raises(UnsupportedInputError, match=r"train_relu_network: unsupported width: 0"):
        train_relu_network(X, y, 0, beta=1e-3)
    with pytest.raises(UnsupportedInputError, match=r"train_relu_network: unsupported loss: 'hinge'"):
        train_relu_network(X, y, 3, beta=1e-3, loss="hinge")


def test_estimators():
    X, y = regression()
    model = ConvexReLUADMM(n_arrangements=8, beta=0.1, rho=0.1, tol=1e-6, max_iter=2000)
    with pytest.raises(UnsupportedInputError, match=r"convex_relu_admm: unsupported estimator: not fitted"):
        model.predict(X)
    assert model.fit(X, y) is model and model.converged_
    assert model.objective_history.shape == (model.result_.iterations + 1,)
    torch.testing.assert_close(model.predict(X), model.to_network()(X).squeeze(-1))
    with pytest.raises(HyperparameterError, match=r"convex_relu_admm.*rho"):
        ConvexReLUADMM(rho=-1.0)
    gated = GatedReLUSCP(n_arrangements=8, beta=0.3).fit(X, y)
    assert gated.gates_.shape[0] == 3 and gated.predict(X).shape == (20,)
    with pytest.raises(UnsupportedInputError, match=r"convex_relu_scp: unsupported X shape: \(20, 3\)"):
        gated.predict(torch.ones(20, 3, dtype=D))
    Xc, yc = classification(8)
    robust = RobustConvexReLU(0.05, n_arrangements=3, beta=1.0, rho=0.3, max_iter=100).fit(Xc, yc)
    assert robust.to_network()[0].in_features == 2
    assert "RobustConvexReLU(eps=0.05" in repr(robust)
