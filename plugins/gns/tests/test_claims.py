"""The claim check passes, and its criterion fails for deliberately wrong variants of Algorithm 1."""

from __future__ import annotations

import torch
from gradhub_gns.claims import logsumexp_approximate_hessian
from gradhub_gns.hessians import exact_hessian
from gradhub_gns.newton import gns_newton


def test_claim_passes():
    result = logsumexp_approximate_hessian()
    assert result.passed, result.report()
    assert result.measured["gns_gauss_newton_iterations_to_1e-8"] <= 100
    assert result.measured["speedup_vs_gd"] >= 10
    assert result.figures


def _plain_newton(fn, x0, hessian, max_iter):
    """No gradient regularisation: lambda ~ 0 (gamma = 1e12, no search)."""
    result = gns_newton(fn, x0, hessian=hessian, max_iter=max_iter, tol=0.0, gamma0=1e12, adaptive=False)
    return result.values, result.residuals


def _no_acceptance_test(fn, x0, hessian, max_iter):
    """Wrong: gamma doubles after every step without checking Lemma 1's progress condition."""
    hessian = hessian or exact_hessian(fn)
    x, gamma, values, norms = x0.clone(), 1.0, [], []
    for _ in range(max_iter + 1):
        point = x.clone().requires_grad_(True)
        value = fn(point)
        (gradient,) = torch.autograd.grad(value, point)
        values.append(value.detach())
        norms.append(gradient.norm())
        lam = gradient.norm() / gamma
        x = x - torch.linalg.solve(hessian(x) + lam * torch.eye(x.numel(), dtype=x.dtype), gradient)
        gamma *= 2
    return torch.stack(values), torch.stack(norms)


def test_claim_fails_without_gradient_regularisation():
    result = logsumexp_approximate_hessian(solve=_plain_newton)
    assert not result.passed
    assert result.measured["gns_exact_iterations_to_1e-8"] != result.measured["gns_exact_iterations_to_1e-8"]  # nan


def test_claim_fails_without_the_acceptance_test():
    assert not logsumexp_approximate_hessian(solve=_no_acceptance_test).passed
