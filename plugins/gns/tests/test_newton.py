"""Correctness of gns_newton (Algorithm 1) against closed forms and limits (gamma -> inf: Newton; H = 0)."""

from __future__ import annotations

import torch
from gradhub_gns.newton import gns_newton, gradient_method
from gradhub_gns.problems import rosenbrock

D = torch.float64


def _quadratic(seed: int = 0, d: int = 5):
    generator = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=generator, dtype=D)
    Q = M @ M.T + 0.5 * torch.eye(d, dtype=D)
    c = torch.randn(d, generator=generator, dtype=D)
    x0 = torch.randn(d, generator=generator, dtype=D)
    return Q, c, x0, (lambda x: 0.5 * x @ Q @ x - c @ x)


def test_quadratic_step_is_the_regularised_newton_step():
    Q, c, x0, f = _quadratic()
    gamma = 0.3
    result = gns_newton(f, x0, max_iter=1, tol=0.0, gamma0=gamma, adaptive=False, eps=0.0)
    g = Q @ x0 - c
    lam = torch.linalg.vector_norm(g) / gamma
    expected = x0 - torch.linalg.solve(Q + lam * torch.eye(5, dtype=D), g)
    torch.testing.assert_close(result.solution, expected, rtol=1e-12, atol=1e-12)
    assert bool(result.accepted[0]) and result.iterations == 1


def test_large_gamma_is_newton_and_solves_a_quadratic_in_one_step():
    Q, c, x0, f = _quadratic(1)
    result = gns_newton(f, x0, max_iter=1, tol=1e-8, gamma0=1e12, adaptive=False)
    torch.testing.assert_close(result.solution, torch.linalg.solve(Q, c), rtol=1e-9, atol=1e-9)
    assert result.converged and result.iterations == 1


def test_adaptive_quadratic_one_accepted_step_doubles_gamma():
    Q, c, x0, f = _quadratic(2)
    result = gns_newton(f, x0, max_iter=5, tol=1e-8, gamma0=1e12)
    assert result.iterations == 1 and result.converged
    assert result.trials.tolist() == [1]
    assert result.gammas.tolist() == [1e12, 2e12]
    torch.testing.assert_close(result.solution, torch.linalg.solve(Q, c), rtol=1e-9, atol=1e-9)


def test_zero_hessian_is_normalised_gradient_descent():
    Q, c, x0, f = _quadratic(3)
    gamma = 0.7
    result = gns_newton(
        f, x0, max_iter=1, tol=0.0, gamma0=gamma, adaptive=False, eps=0.0, hessian=lambda x: torch.zeros(5, 5, dtype=D)
    )
    g = Q @ x0 - c
    torch.testing.assert_close(result.solution, x0 - gamma * g / torch.linalg.vector_norm(g), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(torch.linalg.vector_norm(result.solution - x0), torch.tensor(gamma, dtype=D))


def _trial(f, x, gamma, hessian):
    """One trial of Algorithm 1 written out directly: (step, lambda, passes the Lemma 1 test)."""
    point = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(point), point)
    lam = torch.linalg.vector_norm(g) / (gamma + 1e-8)
    step = -torch.linalg.solve(hessian + lam * torch.eye(x.numel(), dtype=D), g)
    new = (x + step).requires_grad_(True)
    value = f(new)
    (g_new,) = torch.autograd.grad(value, new)
    return step, bool(f(x) - value.detach() >= g_new.square().sum() / (8 * lam))


def test_acceptance_rule_halves_gamma_until_the_progress_test_holds_then_doubles():
    # pseudo-Huber sqrt(1 + x^2): the Newton step from 3 lands on -27 and raises f, so a near-Newton
    # first trial (gamma0 = 1e3) must be rejected
    def huber(x):
        return (1 + x.square()).sqrt().sum()

    x0 = torch.tensor([3.0, -2.0], dtype=D)
    gamma0 = 1e3
    result = gns_newton(huber, x0, max_iter=1, tol=0.0, gamma0=gamma0)
    trials = int(result.trials[0])
    assert trials > 1, "the near-Newton first trial should be rejected"
    hessian = torch.func.hessian(huber)(x0)
    for rejected in range(trials - 1):
        _, passes = _trial(huber, x0, gamma0 * 0.5**rejected, hessian)
        assert not passes, f"trial {rejected} passes the test directly, yet the solver rejected it"
    accepted_gamma = gamma0 * 0.5 ** (trials - 1)
    step, passes = _trial(huber, x0, accepted_gamma, hessian)
    assert passes
    torch.testing.assert_close(result.solution, x0 + step, rtol=1e-12, atol=1e-12)
    assert float(result.gammas[1]) == 2 * accepted_gamma


def test_indefinite_hessian_does_not_raise_and_shrinks_gamma():
    x0 = torch.tensor([0.0, 1.0], dtype=D)  # Hessian diag(-398, 200): indefinite; ||g|| ~ 200
    assert torch.linalg.eigvalsh(torch.func.hessian(rosenbrock)(x0)).min() < 0
    result = gns_newton(rosenbrock, x0, max_iter=1, tol=0.0, gamma0=1.0)
    assert bool(result.accepted[0]) and int(result.trials[0]) >= 2  # gamma=1 (lambda ~ 200) fails the factorisation
    assert float(result.values[1]) < float(result.values[0])
    # with adaptive search off, the factorisation failure still only halves gamma
    fixed = gns_newton(rosenbrock, x0, max_iter=1, tol=0.0, gamma0=1.0, adaptive=False)
    assert float(fixed.gammas[1]) == 0.5 and bool(fixed.accepted[0])


def test_values_non_increasing_on_rosenbrock():
    x0 = torch.full((10,), -1.2, dtype=D)
    x0[1::2] = 1.0
    result = gns_newton(rosenbrock, x0, max_iter=200, tol=1e-8)
    assert result.converged
    assert bool((result.values.diff() <= 0).all())
    assert int(result.accepted.sum()) == result.iterations


def test_metric_B_equals_change_of_variables():
    generator = torch.Generator().manual_seed(4)
    d = 4
    M = torch.randn(d, d, generator=generator, dtype=D)
    B = M @ M.T + torch.eye(d, dtype=D)
    eigenvalues, vectors = torch.linalg.eigh(B)
    root = vectors @ torch.diag(eigenvalues.sqrt()) @ vectors.T
    root_inverse = vectors @ torch.diag(eigenvalues.rsqrt()) @ vectors.T
    A = torch.randn(12, d, generator=generator, dtype=D)
    b = torch.randn(12, generator=generator, dtype=D)

    def f(x):
        return torch.logsumexp(A @ x - b, 0) + 0.1 * (x**4).sum()

    def g(y):
        return f(root_inverse @ y)

    x0 = torch.randn(d, generator=generator, dtype=D)
    with_metric = gns_newton(f, x0, max_iter=8, tol=0.0, gamma0=0.5, B=B)
    changed = gns_newton(g, root @ x0, max_iter=8, tol=0.0, gamma0=0.5)
    torch.testing.assert_close(with_metric.residuals, changed.residuals, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(with_metric.values, changed.values, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(with_metric.gammas, changed.gammas)
    torch.testing.assert_close(root @ with_metric.solution, changed.solution, rtol=1e-9, atol=1e-10)
    # and the dual norm is the B^-1 one
    point = x0.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(f(point), point)
    torch.testing.assert_close(with_metric.residuals[0], (gradient @ torch.linalg.solve(B, gradient)).sqrt())


def test_float32_runs_in_float32():
    _Q, _c, x0, f = _quadratic(5)
    # residuals 10, 6.4, 2.9, 0.66, 5.5e-2, 3.4e-4 (then ~1e-7, f32 round-off): tol sits 5x and 30x from them
    result = gns_newton(lambda x: f(x.double()).float(), x0.float(), max_iter=20, tol=1e-2)
    assert result.solution.dtype == torch.float32 and result.converged


def test_gradient_method_decreases_and_converges_on_quadratic():
    Q, c, x0, f = _quadratic(6)
    x, values, norms = gradient_method(f, x0, max_iter=2000)
    assert bool((values.diff() <= 1e-12).all())
    torch.testing.assert_close(x, torch.linalg.solve(Q, c), rtol=1e-6, atol=1e-6)
    assert norms.shape == (2001,)
