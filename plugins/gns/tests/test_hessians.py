"""The approximate Hessians against exact Hessians and their closed forms."""

from __future__ import annotations

import torch
from gradhub_gns.hessians import (
    exact_hessian,
    fisher_term,
    gauss_newton,
    logsumexp_gauss_newton,
    nonlinear_equations_hessian,
)
from gradhub_gns.problems import logsumexp

D = torch.float64


def _data(seed=0, n=15, d=4):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=generator, dtype=D),
        torch.randn(n, generator=generator, dtype=D),
        torch.randn(d, generator=generator, dtype=D),
    )


def test_logsumexp_gauss_newton_is_exact_plus_dropped_rank_one_term():
    A, b, x = _data()
    mu = 0.3
    approximate = logsumexp_gauss_newton(A, b, mu)(x)
    exact = exact_hessian(logsumexp(A, b, mu))(x)
    weights = torch.softmax((A @ x - b) / mu, 0)
    rank_one = torch.outer(A.T @ weights, A.T @ weights) / mu
    torch.testing.assert_close(approximate - rank_one, exact, rtol=1e-10, atol=1e-10)
    assert torch.linalg.eigvalsh(approximate - exact).min() >= -1e-10  # upper bound


def test_nonlinear_equations_hessian_is_exact_for_affine_u():
    A, b, x = _data(1)
    for p in (2.0, 3.0, 4.5):

        def f(z, p=p):
            return torch.linalg.vector_norm(A @ z - b) ** p / p

        approximate = nonlinear_equations_hessian(lambda z: A @ z - b, p)(x)
        torch.testing.assert_close(approximate, exact_hessian(f)(x), rtol=1e-10, atol=1e-10)


def test_fisher_term_is_scaled_gradient_outer_product():
    A, b, x = _data(2)
    p = 3.5

    def u(z):
        return torch.tanh(A @ z) - b

    point = x.clone().requires_grad_(True)
    norm_u = torch.linalg.vector_norm(u(point))
    (gradient,) = torch.autograd.grad(norm_u**p / p, point)
    expected = (p - 2) / norm_u.detach() ** p * torch.outer(gradient, gradient)
    torch.testing.assert_close(fisher_term(u, p)(x), expected, rtol=1e-10, atol=1e-12)
    assert torch.count_nonzero(fisher_term(u, 2.0)(x)) == 0


def test_gauss_newton_is_jacobian_gram_and_exact_for_affine_residuals():
    A, b, x = _data(3)
    torch.testing.assert_close(gauss_newton(lambda z: A @ z - b)(x), A.T @ A, rtol=1e-12, atol=1e-12)

    def residual(z):
        return torch.sin(A @ z) - b

    jacobian = torch.cos(A @ x).unsqueeze(1) * A
    torch.testing.assert_close(gauss_newton(residual)(x), jacobian.T @ jacobian, rtol=1e-12, atol=1e-12)
