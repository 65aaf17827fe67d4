"""Correctness tests: schedules, HVP, exactness on quadratics, reductions, normalisation."""

from __future__ import annotations

import pytest
import torch
from gradhub_harpg import schedules
from gradhub_harpg._steps import ClosureOutput, hessian_vector_product
from gradhub_harpg.claims import _NoCorrection
from gradhub_harpg.gpomdp import gpomdp_surrogate
from gradhub_harpg.harpg import HARPG, NHARPG, correction_point
from gradhub_harpg.npg_igt import NPGIGT


@pytest.fixture(autouse=True)
def _float64_default():
    """Float64 in these tests only (restored after each, so other modules keep float32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_paper_schedules() -> None:
    assert schedules.eta_igt_paper(0) == 1.0 and schedules.eta_harpg_paper(0) == 1.0
    assert schedules.eta_igt_paper(3) == pytest.approx((2 / 5) ** 0.8, rel=1e-15)
    assert schedules.eta_harpg_paper(3) == pytest.approx(2 / 5, rel=1e-15)
    assert schedules.step_size("paper", 0.5, 6) == pytest.approx(0.5 * 2 / 8, rel=1e-15)
    assert schedules.step_size("constant", 0.5, 6) == 0.5
    assert schedules.momentum_weight(NPGIGT.paper_eta, "constant", 0.3, 0) == 1.0
    assert schedules.momentum_weight(NPGIGT.paper_eta, "constant", 0.3, 5) == 0.3
    assert schedules.momentum_weight(HARPG.paper_eta, "paper", 0.3, 2) == 0.5


def _bandit_closure(theta: torch.Tensor, optimum: torch.Tensor, generator: torch.Generator):
    def closure():
        action = theta.detach() + torch.randn(theta.shape, generator=generator)
        log_prob = -0.5 * (action - theta).pow(2).sum()
        reward = -(action - optimum).pow(2).sum()
        return gpomdp_surrogate(log_prob[None], reward[None], 1.0)

    return closure


def test_hvp_matches_dense_hessian_estimate() -> None:
    """Closure-built B v equals the dense matrix (grad L grad logp^T + Hessian L) v for one trajectory."""
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(4, generator=generator).requires_grad_()
    weights = torch.randn(4, 4, generator=generator)
    action = torch.randn(4, generator=generator)

    def surrogate(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = -0.5 * (action - torch.tanh(weights @ t)).pow(2).sum()
        reward = (action * t.detach()).sum()
        return -reward * logp + 0.1 * (t**3).sum(), logp

    vector = torch.randn(4, generator=generator)
    loss, logp = surrogate(theta)
    product, grads = hessian_vector_product(ClosureOutput(loss, logp, plain=False), [theta], [vector])
    gradient = torch.autograd.functional.jacobian(lambda t: surrogate(t)[0], theta)
    score = torch.autograd.functional.jacobian(lambda t: surrogate(t)[1], theta)
    hessian = torch.autograd.functional.hessian(lambda t: surrogate(t)[0], theta)
    dense = torch.outer(gradient, score) + hessian
    torch.testing.assert_close(product[0], dense @ vector, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], gradient, rtol=1e-12, atol=1e-12)


def test_hvp_unbiased_on_gaussian_bandit() -> None:
    """1-D bandit, r = -(a - a*)^2: E[B v] = Hessian(-J) v = 2 v and E[g] = 2 (theta - a*) (minimisation form).

    The closure-built estimate is checked against the per-sample formula on 50 samples
    (1e-12), and the per-sample formula is averaged over 2e6 samples (within 2%;
    2e5 samples leave a standard error of ~1.5%).
    """
    theta_value, optimum, v = 0.3, torch.tensor([1.5]), torch.tensor([1.0])
    generator = torch.Generator().manual_seed(1)
    theta = torch.tensor([theta_value], requires_grad=True)
    for _ in range(50):
        state = generator.get_state()
        loss, logp = _bandit_closure(theta, optimum, generator)()
        product, grads = hessian_vector_product(ClosureOutput(loss, logp, plain=False), [theta], [v])
        replay = torch.Generator().manual_seed(0)
        replay.set_state(state)
        action = theta_value + torch.randn(1, generator=replay)
        reward, score = -((action - optimum) ** 2), action - theta_value
        # L = -r logp: g = -r s, B v = -r (s^2 - 1) v.
        torch.testing.assert_close(grads[0], -reward * score, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(product[0], -reward * (score**2 - 1) * v, rtol=1e-12, atol=1e-12)
    samples = torch.randn(2_000_000, generator=torch.Generator().manual_seed(2))
    reward = -((theta_value + samples - optimum) ** 2)
    assert (-reward * (samples**2 - 1)).mean().item() == pytest.approx(2.0, rel=0.02)
    assert (-reward * samples).mean().item() == pytest.approx(2 * (theta_value - optimum.item()), rel=0.02)


def _quadratic(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    root = torch.randn(5, 5, generator=generator)
    return root @ root.T / 5 + torch.eye(5), torch.randn(5, generator=generator)


@pytest.mark.parametrize("plain", [False, True], ids=["tuple-closure", "plain-closure"])
@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (NPGIGT, {}),
        (NPGIGT, {"eta_schedule": "constant", "eta": 0.3, "lr_schedule": "constant"}),
        (HARPG, {"lr": 0.05}),
        (HARPG, {"lr": 0.05, "eta_schedule": "constant", "eta": 0.2}),
        (NHARPG, {"eta_schedule": "constant", "eta": 0.7, "seed": 3}),
    ],
)
def test_direction_is_exact_gradient_on_quadratic(cls, options, plain: bool) -> None:
    """With an exact oracle, d_t = grad L(theta_t) for any eta_t (pins (1 - eta)/eta and the correction sign)."""
    matrix, linear = _quadratic()
    first = torch.randn(3, generator=torch.Generator().manual_seed(5)).requires_grad_()
    second = torch.randn(2, generator=torch.Generator().manual_seed(6)).requires_grad_()
    params = [first, second]
    optimizer = cls(params, **options)

    def loss_at() -> torch.Tensor:
        theta = torch.cat(params)
        return 0.5 * theta @ matrix @ theta - linear @ theta

    def closure():
        if plain:
            optimizer.zero_grad()
            loss = loss_at()
            loss.backward()
            return loss
        return (loss_at(),)

    for _ in range(12):
        theta = torch.cat([p.detach() for p in params])
        optimizer.step(closure)
        direction = torch.cat([optimizer.state[p]["direction"] for p in params])
        torch.testing.assert_close(direction, matrix @ theta - linear, rtol=1e-10, atol=1e-10)


def test_no_hessian_correction_is_not_exact() -> None:
    """The check above catches a HARPG without v_t."""
    matrix, linear = _quadratic()
    theta = torch.zeros(5, requires_grad=True)
    optimizer = _NoCorrection([theta], lr=0.5, eta_schedule="constant", eta=0.3)
    errors = []
    for _ in range(5):
        point = theta.detach().clone()
        optimizer.step(lambda: (0.5 * theta @ matrix @ theta - linear @ theta,))
        errors.append((optimizer.state[theta]["direction"] - (matrix @ point - linear)).norm().item())
    assert max(errors) > 1e-2


def test_eta_one_is_normalized_pg() -> None:
    """eta_t = 1: N-PG-IGT and N-HARPG take exactly normalized PG steps (deterministic oracle) ..."""
    matrix, linear = _quadratic(1)
    runs = []
    for cls in (NPGIGT, NHARPG):
        theta = torch.zeros(5, requires_grad=True)
        optimizer = cls([theta], lr=0.4, eta_schedule="constant", eta=1.0)
        path = []
        for _ in range(8):
            optimizer.step(lambda: (0.5 * theta @ matrix @ theta - linear @ theta,))  # noqa: B023
            path.append(theta.detach().clone())
        runs.append(torch.stack(path))
    reference, point = [], torch.zeros(5)
    for t in range(8):
        gradient = matrix @ point - linear
        point = point - 0.4 * 2 / (t + 2) * gradient / gradient.norm()
        reference.append(point)
    torch.testing.assert_close(runs[0], torch.stack(reference), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(runs[1], torch.stack(reference), rtol=1e-12, atol=1e-12)


def test_eta_one_igt_is_normalized_pg_on_samples() -> None:
    """... and N-PG-IGT with eta = 1 equals normalized PG on a stochastic closure (same samples)."""
    optimum = torch.tensor([2.0, -1.0, 0.5])
    theta = torch.zeros(3, requires_grad=True)
    generator = torch.Generator().manual_seed(4)
    optimizer = NPGIGT([theta], lr=1.0, eta_schedule="constant", eta=1.0)
    sample = _bandit_closure(theta, optimum, generator)
    reference_theta = torch.zeros(3, requires_grad=True)
    reference_sample = _bandit_closure(reference_theta, optimum, torch.Generator().manual_seed(4))
    for t in range(10):
        optimizer.step(lambda: (sample()[0],))
        (gradient,) = torch.autograd.grad(reference_sample()[0], reference_theta)
        with torch.no_grad():
            reference_theta -= 2 / (t + 2) * gradient / gradient.norm()
        torch.testing.assert_close(theta.detach(), reference_theta.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [NPGIGT, NHARPG])
@pytest.mark.parametrize("foreach", [False, True])
def test_normalized_steps_have_length_gamma(cls, foreach: bool) -> None:
    optimum = torch.tensor([2.0, -1.0, 0.5, 3.0])
    first = torch.zeros(3, requires_grad=True)
    second = torch.zeros(1, requires_grad=True)
    generator = torch.Generator().manual_seed(7)

    def closure():
        theta = torch.cat([first, second])
        action = theta.detach() + torch.randn(4, generator=generator)
        logp = -0.5 * (action - theta).pow(2).sum()
        return gpomdp_surrogate(logp[None], (-(action - optimum).pow(2).sum())[None], 1.0)

    optimizer = cls([first, second], lr=0.7, foreach=foreach)
    for t in range(10):
        before = torch.cat([first.detach(), second.detach()])
        optimizer.step(closure)
        after = torch.cat([first.detach(), second.detach()])
        assert (after - before).norm().item() == pytest.approx(0.7 * 2 / (t + 2), rel=1e-12)


def test_closure_points_and_final_parameters() -> None:
    """The closure runs at theta~_t (IGT) / theta^_t then theta_t (HARPG); afterwards params hold theta_{t+1}."""
    matrix, linear = _quadratic(2)
    for cls in (NPGIGT, NHARPG):
        theta = torch.zeros(5, requires_grad=True)
        optimizer = cls([theta], lr=0.3, seed=11) if cls is NHARPG else cls([theta], lr=0.3)
        seen: list[torch.Tensor] = []

        def closure():
            seen.append(theta.detach().clone())  # noqa: B023
            return (0.5 * theta @ matrix @ theta - linear @ theta,)  # noqa: B023

        iterates = [theta.detach().clone()]
        for t in range(6):
            seen.clear()
            optimizer.step(closure)
            current, previous = iterates[-1], iterates[-2] if t > 0 else None
            if cls is NPGIGT:
                expected = [current]
                if t > 0:
                    eta = schedules.eta_igt_paper(t)
                    expected = [current + (1 - eta) / eta * (current - previous)]
            else:
                expected = [current]
                if t > 0:
                    q = correction_point(11, t)
                    expected = [q * current + (1 - q) * previous, current]
            assert len(seen) == len(expected)
            for got, want in zip(seen, expected):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
            direction = optimizer.state[theta]["direction"]
            step = 0.3 * 2 / (t + 2) * direction / direction.norm()
            torch.testing.assert_close(theta.detach(), current - step, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(optimizer.state[theta]["previous"], current, rtol=0, atol=0)
            iterates.append(theta.detach().clone())


def test_foreach_matches_single_on_hvp_path() -> None:
    """The (loss, logp) closure path (not exercised by the conformance suite) agrees across paths."""
    results = []
    for foreach in (False, True):
        first = torch.zeros(3, requires_grad=True)
        second = torch.zeros(2, requires_grad=True)
        generator = torch.Generator().manual_seed(3)
        optimum = torch.arange(5.0)

        def closure():
            theta = torch.cat([first, second])  # noqa: B023
            action = theta.detach() + torch.randn(5, generator=generator)  # noqa: B023
            logp = -0.5 * (action - theta).pow(2).sum()
            return gpomdp_surrogate(logp[None], (-(action - optimum).pow(2).sum())[None], 1.0)  # noqa: B023

        optimizer = NHARPG([first, second], lr=0.5, foreach=foreach)
        for _ in range(20):
            optimizer.step(closure)
        results.append([first.detach(), second.detach(), *[optimizer.state[p]["direction"] for p in (first, second)]])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gpomdp_surrogate_gradient() -> None:
    log_probs_param = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    rewards = torch.tensor([1.0, 2.0, 3.0])
    loss, logp = gpomdp_surrogate(log_probs_param, rewards, 0.5)
    (gradient,) = torch.autograd.grad(loss, log_probs_param)
    to_go = torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 0.5 * 2 + 0.25 * 3, 0.25 * 3])
    torch.testing.assert_close(gradient, -to_go)
    assert logp.item() == pytest.approx(0.2)
