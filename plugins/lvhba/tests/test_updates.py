"""LV-HBA's updates pinned to the paper's equations (Algorithm 1, steps 3a-3c) and to the official code.

Float64 throughout. Each key check is shown to fail for a deliberately wrong variant.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from gradhub_lvhba.lvhba import LVHBA, lv_hba
from gradhub_lvhba.problems import coupled_toy
from gradhub_lvhba.projections import product

D = torch.float64
HP = {"alpha": 0.1, "beta": 0.2, "eta": 0.3, "gamma1": 2.0, "gamma2": 4.0, "c0": 1.5, "p": 0.25, "lam_max": 10.0}


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=D)


# -- 1. one (two) iterations against the update equations written out by hand -------------------------


def _tiny(**overrides):
    """F = 0.5 (x - 1)^2 + 0.5 y^2, f = 0.5 (y - x)^2, g = -y (y >= 0), C = {y >= 0}, 1-D."""

    def F(x, y):
        return 0.5 * (x - 1).square().sum() + 0.5 * y.square().sum()

    def f(x, y):
        return 0.5 * (y - x).square().sum()

    def g(x, y):
        return -y

    def proj_C(x, y):
        return x, y.clamp_min(0)

    return LVHBA(F, f, g, _t(2.0), _t(0.5), proj_C=proj_C, lam0=_t(0.3), z0=_t(0.1), **{**HP, **overrides})


def _by_hand(x, y, z, theta, lam, k, jacobi=False):
    """Steps 3a-3c for the tiny problem with every gradient written out (Python floats)."""
    a, b, e, g1, g2, r = HP["alpha"], HP["beta"], HP["eta"], HP["gamma1"], HP["gamma2"], HP["lam_max"]
    c = HP["c0"] * (k + 1) ** HP["p"]
    # 3a: grad_theta [f(x, theta) + lam g(x, theta)] = (theta - x) - lam;  g(x, theta) = -theta
    theta_new = theta - e * ((theta - x) - lam + (theta - y) / g1)
    lam_new = min(max(lam + e * (-theta - (lam - z) / g2), 0.0), r)
    if jacobi:  # the wrong variant: the outer step with the old inner iterates
        theta_new_used, lam_new_used = theta, lam
    else:
        theta_new_used, lam_new_used = theta_new, lam_new
    # 3b: grad_x F = x - 1, grad_x f(x, y) = x - y, grad_x f(x, theta) = x - theta, J_x g = 0
    d_x = (x - 1) / c + (x - y) - (x - theta_new_used)
    d_y = y / c + (y - x) - (y - theta_new_used) / g1
    d_z = (z - lam_new_used) / g2
    # 3c: projections onto C = {y >= 0} and [0, r]
    return (
        x - a * d_x,
        max(y - a * d_y, 0.0),
        min(max(z - b * d_z, 0.0), r),
        theta_new,
        lam_new,
    )


def test_two_iterations_match_the_update_equations_by_hand():
    run = _tiny()
    state = (2.0, 0.5, 0.1, 0.5, 0.3)  # x, y, z, theta^0 = y^0, lam
    for k in range(2):
        run.step()
        state = _by_hand(*state, k)
        got = (run.x.item(), run.y.item(), run.z.item(), run.theta.item(), run.lam.item())
        for name, mine, expected in zip(("x", "y", "z", "theta", "lam"), got, state):
            assert mine == pytest.approx(expected, abs=1e-12, rel=1e-12), (k, name)
    assert run.k == 2


def test_the_outer_step_with_the_old_inner_iterates_is_a_different_update():
    """Wrong variant (Jacobi order): using theta^k, lam^k in 3b misses the hand values by far more than 1e-12."""
    run = _tiny()
    run.step()
    wrong = _by_hand(2.0, 0.5, 0.1, 0.5, 0.3, 0, jacobi=True)
    assert abs(run.x.item() - wrong[0]) > 1e-3
    assert abs(run.z.item() - wrong[2]) > 1e-5


def test_the_penalty_schedule_is_c0_times_k_plus_one_to_the_p():
    run = _tiny()
    assert [run.penalty(k) for k in range(4)] == [1.5 * (k + 1) ** 0.25 for k in range(4)]
    metrics = [run.step()["penalty"].item() for _ in range(3)]
    assert metrics == [1.5 * (k + 1) ** 0.25 for k in range(3)]


# -- 2. Danskin: at the inner saddle point, (d_x, d_y, d_z) is the gradient of F / c + f - v ----------------


M = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=D)
H = _t(0.2, 1.5)
B = _t(0.4, -0.7)
CU = _t(1.0, 0.3)
G1, G2 = 0.7, 2.5


def _upper(x, y):
    return 0.5 * (x - B).square().sum() + 0.5 * (y - CU).square().sum() + (x * y).sum()


def _lower(x, theta):
    return 0.5 * (theta - M @ x).square().sum()


def _constraint(x, theta):
    return theta - H


def _saddle(x, y, z):
    """The inner saddle point of v(x, y, z) in closed form (per coordinate, r large): (theta*, lam*)."""
    u = M @ x
    theta_free = (u + y / G1) / (1 + 1 / G1)  # lam* = 0 when z + gamma2 (theta - h) <= 0 there
    theta_active = (u + y / G1 - z + G2 * H) / (1 + 1 / G1 + G2)
    active = z + G2 * (theta_free - H) > 0
    theta = torch.where(active, theta_active, theta_free)
    lam = torch.where(active, z + G2 * (theta - H), torch.zeros_like(theta))
    return theta, lam


def _v(x, y, z):
    theta, lam = _saddle(x, y, z)
    return (
        _lower(x, theta)
        + (lam * _constraint(x, theta)).sum()
        + (theta - y).square().sum() / (2 * G1)
        - (lam - z).square().sum() / (2 * G2)
    )


POINT = (_t(0.6, -0.4), _t(1.1, 0.9), _t(0.5, 0.8))  # x, y, z: one multiplier active, one not


def _stepper_at(x, y, z, **overrides):
    hp = {**HP, "gamma1": G1, "gamma2": G2, "lam_max": 1e3, "eta": 0.3, **overrides}
    with warnings.catch_warnings():  # y > h: (x, y) is outside C, which the min-max defining v does not need
        warnings.simplefilter("ignore", UserWarning)
        return LVHBA(_upper, _lower, _constraint, x, y, proj_C=product(), z0=z, **hp)


def _phi_gradient(x, y, z, c, v=_v):
    x, y, z = (t.clone().requires_grad_(True) for t in (x, y, z))
    phi = _upper(x, y) / c + _lower(x, y) - v(x, y, z)
    return torch.autograd.grad(phi, [x, y, z])


def test_the_saddle_point_is_one_where_both_cases_occur():
    theta, lam = _saddle(*POINT)
    assert (lam > 0).sum() == 1 and (lam == 0).sum() == 1
    # stationarity of the min-max objective at (theta*, lam*)
    x, y, _ = POINT
    grad_theta = (theta - M @ x) + lam + (theta - y) / G1
    assert torch.allclose(grad_theta, torch.zeros(2, dtype=D), atol=1e-14)


def test_directions_at_the_exact_saddle_point_are_the_gradient_of_the_penalised_objective():
    run = _stepper_at(*POINT)
    c = run.penalty()
    theta, lam = _saddle(*POINT)
    d_x, d_y, d_z, values = run.directions(theta, lam, c)
    expected = _phi_gradient(*POINT, c)
    for mine, reference in zip((d_x, d_y, d_z), expected):
        assert torch.allclose(mine, reference, atol=1e-12, rtol=0)
    assert values["v"].item() == pytest.approx(_v(*POINT).item(), abs=1e-14)


def test_the_inner_gradient_descent_ascent_converges_to_the_saddle_point_and_danskin_holds():
    """3a iterated at fixed (x, y, z) reaches the saddle point (the GDA contracts by about 0.9 per step: 2,000
    steps reach round-off; 10,000 steps take 2 s more), and there 3b is grad phi."""
    run = _stepper_at(*POINT)
    theta, lam = run.theta, run.lam
    for _ in range(2_000):
        theta, lam = run.inner_update(theta, lam)
    exact_theta, exact_lam = _saddle(*POINT)
    assert torch.allclose(theta, exact_theta, atol=1e-12) and torch.allclose(lam, exact_lam, atol=1e-12)
    d_x, d_y, d_z, _ = run.directions(theta, lam)
    for mine, reference in zip((d_x, d_y, d_z), _phi_gradient(*POINT, run.penalty())):
        assert torch.allclose(mine, reference, atol=1e-6, rtol=0)


def test_a_flipped_value_function_gradient_is_not_the_gradient():
    """Wrong variant: d = grad(F / c + f) + grad v (the sign of v's gradient flipped) fails the same check."""
    run = _stepper_at(*POINT)
    c = run.penalty()
    theta, lam = _saddle(*POINT)
    d_x, d_y, d_z, _ = run.directions(theta, lam, c)
    flipped = _phi_gradient(*POINT, c, v=lambda x, y, z: -_v(x, y, z))
    assert not all(torch.allclose(m, r, atol=1e-6) for m, r in zip((d_x, d_y, d_z), flipped))


# -- 3. the unconstrained lower-level limit --------------------------------------------------------------

A_LL = torch.tensor([[1.0, 0.2], [0.3, -0.5], [0.1, 0.4]], dtype=D)  # y*(x) = A x, x in R^2, y in R^3
B_UL, C_UL = _t(1.0, -2.0), _t(0.5, 0.0, -1.0)


def _F_ul(x, y):
    return 0.5 * (x - B_UL).square().sum() + 0.5 * (y - C_UL).square().sum()


def _f_ll(x, y):
    return 0.5 * (y - A_LL @ x).square().sum()


def test_an_inactive_constraint_reduces_to_the_unconstrained_method_and_converges():
    """g == -1 (never active): lam and z stay 0 and the run is the one without g, to the last bit;
    it converges to argmin_x F(x, A x) = (I + A^T A)^{-1} (b + A^T c)."""
    hp = {**HP, "alpha": 0.5, "eta": 0.5, "c0": 4.0, "p": 0.45, "gamma1": 10.0, "gamma2": 10.0}
    zero_x, zero_y = torch.zeros(2, dtype=D), torch.zeros(3, dtype=D)

    def never_active(x, y):
        return -torch.ones(1, dtype=D)

    with_g = LVHBA(_F_ul, _f_ll, never_active, zero_x, zero_y, proj_C=product(), **hp)
    without = LVHBA(_F_ul, _f_ll, None, zero_x, zero_y, **hp)
    for _ in range(500):
        with_g.step()
        without.step()
    assert torch.equal(with_g.x, without.x) and torch.equal(with_g.y, without.y)
    assert torch.equal(with_g.lam, torch.zeros(1, dtype=D)) and torch.equal(with_g.z, torch.zeros(1, dtype=D))
    x_star = torch.linalg.solve(torch.eye(2, dtype=D) + A_LL.T @ A_LL, B_UL + A_LL.T @ C_UL)
    y_star = A_LL @ x_star
    # the penalty leaves an O(1 / c_k) bias (c_499 = 65): measured 2.3e-3 (x) and 1.0e-2 (y) after 500 iterations
    assert ((with_g.x - x_star).norm() / x_star.norm()).item() < 0.01
    assert ((with_g.y - y_star).norm() / y_star.norm()).item() < 0.04


# -- 4. first order only ----------------------------------------------------------------------------------------


def test_no_second_order_autograd_and_two_backward_passes_per_iteration(monkeypatch):
    calls = []
    original = torch.autograd.grad

    def recording(outputs, inputs, *args, **kwargs):
        calls.append(kwargs)
        return original(outputs, inputs, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("LV-HBA is Hessian-free: no Hessian, Jacobian or vector-Jacobian helper may be used")

    monkeypatch.setattr(torch.autograd, "grad", recording)
    for name in ("hessian", "hvp", "vhp", "jacobian", "jvp", "vjp"):
        monkeypatch.setattr(torch.autograd.functional, name, forbidden)
    toy = coupled_toy((1,), n=4)
    zero = torch.zeros_like(toy.a)
    result = lv_hba(toy.F, toy.f, toy.g, zero, zero, proj_C=toy.proj_C, tol=0.0, max_iter=5)
    assert result.iterations == 5
    assert len(calls) == 2 * 6  # 5 iterations + the step that measures the last iterate's residual
    assert not any(call.get("create_graph") for call in calls)
    assert not any(call.get("retain_graph") for call in calls)


# -- 5. the projections hold after every step -------------------------------------------------------------


@pytest.mark.parametrize("constraint", ["inequality", "equality"])
def test_multipliers_stay_in_their_box_and_x_y_in_C_after_every_step(constraint):
    toy = coupled_toy((1, 2), n=6)
    zero = torch.zeros_like(toy.a)
    r = 0.05  # small enough that the multiplier box is hit
    hp = {"alpha": 0.5, "beta": 0.5, "eta": 0.5, "c0": 8.0, "p": 0.45, "lam_max": r, "constraint": constraint}
    run = LVHBA(toy.F, toy.f, toy.g, zero, zero, proj_C=toy.proj_C, **hp)
    low = 0.0 if constraint == "inequality" else -r
    hit = False
    for _ in range(200):
        run.step()
        for name in ("lam", "z"):
            value = getattr(run, name)
            assert value.min() >= low and value.max() <= r, name
        assert (run.y <= run.x).all()
        hit |= bool((run.lam == r).any())
    assert hit, "the test must exercise the upper clip"


def test_the_start_is_projected_and_the_inputs_are_left_alone():
    toy = coupled_toy((1,), n=3)
    x0 = torch.zeros_like(toy.a)
    y0 = torch.ones_like(toy.a)
    lam0 = torch.full_like(toy.a, -1.0)
    run = LVHBA(toy.F, toy.f, toy.g, x0, y0, proj_C=toy.proj_C, lam0=lam0)
    assert torch.equal(run.x, torch.full_like(x0, 0.5)) and torch.equal(run.y, run.x)
    assert torch.equal(run.theta, run.y) and torch.equal(run.lam, torch.zeros_like(lam0))
    assert torch.equal(x0, torch.zeros_like(x0)) and torch.equal(y0, torch.ones_like(y0))
    assert torch.equal(lam0, torch.full_like(lam0, -1.0))


# -- restarts, the solver frame ----------------------------------------------------------------------------------


CLAIMLIKE = {"alpha": 0.5, "beta": 0.5, "eta": 0.5, "c0": 8.0, "p": 0.45, "lam_max": 100.0}


def test_batched_restarts_equal_separate_runs():
    toy = coupled_toy((1, 2, 3), n=5)
    zero = torch.zeros_like(toy.a)
    batch = LVHBA(toy.F, toy.f, toy.g, zero, zero, proj_C=toy.proj_C, **CLAIMLIKE)
    singles = []
    for row in range(3):
        one = coupled_toy(((1, 2, 3)[row],), n=5)
        a, b, c = one.a[0], one.b[0], one.c[0]
        singles.append(
            LVHBA(
                lambda x, y, b=b, c=c: 0.5 * (x - b).square().sum() + 0.5 * (y - c).square().sum(),
                lambda x, y, a=a: 0.5 * (y - a).square().sum(),
                lambda x, y: y - x,
                torch.zeros(5, dtype=D),
                torch.zeros(5, dtype=D),
                proj_C=toy.proj_C,
                **CLAIMLIKE,
            )
        )
    for _ in range(50):
        metrics = batch.step()
        single_metrics = [run.step() for run in singles]
    for row, run in enumerate(singles):
        for name in ("x", "y", "z", "theta", "lam"):
            assert torch.allclose(getattr(batch, name)[row], getattr(run, name), atol=1e-13, rtol=0), name
        assert metrics["residual"][row].item() == pytest.approx(single_metrics[row]["residual"].item(), rel=1e-10)


def test_the_solver_returns_the_iterate_with_its_own_residual():
    toy = coupled_toy((1, 2), n=4)
    zero = torch.zeros_like(toy.a)
    result = lv_hba(toy.F, toy.f, toy.g, zero, zero, proj_C=toy.proj_C, tol=0.0, max_iter=30, **CLAIMLIKE)
    run = LVHBA(toy.F, toy.f, toy.g, zero, zero, proj_C=toy.proj_C, **CLAIMLIKE)
    residuals = []
    for _ in range(30):
        residuals.append(run.step()["residual"].amax().item())
    assert torch.equal(result.x, run.x) and torch.equal(result.y, run.y)
    assert torch.equal(result.z, run.z) and torch.equal(result.theta, run.theta) and torch.equal(result.lam, run.lam)
    last = run.step()
    residuals.append(last["residual"].amax().item())
    assert result.iterations == 30 and not result.converged
    assert result.residuals.tolist() == residuals
    assert result.stationarity.shape == (31, 2) and result.value_gaps.shape == (31, 2)
    assert torch.equal(result.penalties[:, 0], torch.tensor([8.0 * (k + 1) ** 0.45 for k in range(31)], dtype=D))
    assert torch.equal(result.residuals[-1], torch.maximum(last["stationarity"], last["value_gap"].abs()).amax())


def test_a_diverging_run_stops_and_never_reports_convergence():
    toy = coupled_toy((1,), n=4)
    zero = torch.zeros_like(toy.a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = lv_hba(toy.F, toy.f, toy.g, zero, zero, proj_C=toy.proj_C, alpha=1e6, eta=1e6, tol=1e-12, max_iter=500)
    assert not result.converged
    assert result.iterations < 500
    assert not math.isfinite(result.residuals[-1].item())


# -- parity with the official code's update order (our transcription of Toy-example/LLC/LV-HBA.py's loop) --------


def test_equality_mode_matches_the_official_llc_iteration():
    """The official LLC toy: F = 0.5||x - B y||^2 + 0.5||A y - 1||^2, f = 0.5||A y||^2 - x^T A y + 1^T B y,
    g = 1^T x + 1^T y = 0 (one equality, multipliers clipped to [-u, u]), (x, y) projected onto
    {sum(x) + sum(y) = 0}; its loop written out with the hand gradients of the script, lam^0 = 1, z^0 = -1."""
    n = 4
    eye, zeros = torch.eye(n, dtype=D), torch.zeros(n, n, dtype=D)
    A, Bm = torch.cat([eye, zeros], 1), torch.cat([zeros, eye], 1)
    ones = torch.ones(n, dtype=D)
    alpha, beta, eta, g1, g2, u = 0.008, 0.02, 0.01, 10.0, 10.0, 1000.0

    def F(x, y):
        return 0.5 * (x - Bm @ y).square().sum() + 0.5 * (A @ y - ones).square().sum()

    def f(x, y):
        return 0.5 * (A @ y).square().sum() - x @ (A @ y) + ones @ (Bm @ y)

    def g(x, y):
        return (x.sum() + y.sum()).reshape(1)

    def centre(x, y):
        w = torch.cat([x, y])
        w = w - w.mean()
        return w[:n], w[n:]

    generator = torch.Generator().manual_seed(0)
    x, y = centre(torch.randn(n, generator=generator, dtype=D), torch.randn(2 * n, generator=generator, dtype=D))
    run = LVHBA(F, f, g, x, y, proj_C=centre, lam0=_t(1.0), z0=_t(-1.0), constraint="equality")
    theta, lam, z = y.clone(), 1.0, -1.0
    for k in range(40):
        ck = 0.025 * (k + 1) ** 0.3
        d_theta = (A.T @ A @ theta - A.T @ x + Bm.T @ ones) + lam * torch.ones(2 * n, dtype=D) + (theta - y) / g1
        d_lam = -(x.sum() + theta.sum()).item() + (lam - z) / g2
        theta = theta - eta * d_theta
        lam = min(max(lam - eta * d_lam, -u), u)
        d1 = (x - Bm @ y) / ck + (-A @ y) - (-A @ theta) - lam * ones
        d2 = ((A.T @ (A @ y - ones)) - Bm.T @ (x - Bm @ y)) / ck + (A.T @ A @ y - A.T @ x + Bm.T @ ones)
        d2 = d2 - (y - theta) / g1
        x, y = centre(x - alpha * d1, y - alpha * d2)
        z = min(max(z + beta * (lam - z) / g2, -u), u)
        run.step()
        assert torch.allclose(run.x, x, atol=1e-13, rtol=0) and torch.allclose(run.y, y, atol=1e-13, rtol=0), k
        assert run.lam.item() == pytest.approx(lam, abs=1e-13) and run.z.item() == pytest.approx(z, abs=1e-13)
        assert torch.allclose(run.theta, theta, atol=1e-13, rtol=0)
