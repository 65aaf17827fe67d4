"""The sampler: one step is exactly G(x_T, T); a longer grid re-noises with the path between evaluations."""

from __future__ import annotations

import torch
from gradhub_diffusion.paths import GaussianPath
from gradhub_fdistill.examples import AffineStudent
from gradhub_fdistill.sampler import fdistill_sampler

from gradhub.progress import ProgressEvent


def student() -> AffineStudent:
    torch.manual_seed(0)
    return AffineStudent().double()


def test_one_step_is_the_student_at_the_largest_time_and_draws_nothing():
    G = student()
    x_T = 80 * torch.randn(16, 2, dtype=torch.float64)
    with torch.no_grad():
        expected = G(x_T, torch.full((16,), 80.0, dtype=torch.float64))
    results = [fdistill_sampler(G, x_T, [80.0, 0.0], generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    for result in results:
        assert torch.equal(result.samples, expected) and result.evaluations == 1
    assert not results[0].samples.requires_grad


def test_two_steps_renoise_with_the_path():
    G = student()
    path = GaussianPath(kind="vp_cosine")
    x_T = torch.randn(16, 2, dtype=torch.float64)
    result = fdistill_sampler(G, x_T, [1.0, 0.4, 0.0], path="vp_cosine", generator=torch.Generator().manual_seed(3))
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        x0 = G(x_T, torch.full((16,), 1.0, dtype=torch.float64))
        x = path.alpha(0.4).item() * x0 + path.sigma(0.4).item() * noise
        expected = G(x, torch.full((16,), 0.4, dtype=torch.float64))
    torch.testing.assert_close(result.samples, expected, rtol=1e-12, atol=1e-12)
    assert result.evaluations == 2
    # a wrong multistep (no re-noising: the clean sample fed back) is another result
    with torch.no_grad():
        wrong = G(x0, torch.full((16,), 0.4, dtype=torch.float64))
    assert not torch.allclose(result.samples, wrong, rtol=1e-3)


def test_prediction_is_converted_through_the_path():
    """A student returning eps: x0 = (x - sigma eps) / alpha on the VE path (alpha = 1)."""
    x_T = torch.randn(8, 2, dtype=torch.float64)
    eps_student = lambda x, t: 0.5 * x  # noqa: E731
    result = fdistill_sampler(eps_student, x_T, [1.0, 0.0], path="ve", prediction="eps")
    sigma = GaussianPath(kind="ve").sigma(1.0).item()
    torch.testing.assert_close(result.samples, x_T - sigma * 0.5 * x_T, rtol=1e-12, atol=0)


def test_trajectory_and_progress():
    events: list[ProgressEvent] = []
    result = fdistill_sampler(
        student(),
        torch.randn(4, 2, dtype=torch.float64),
        [80.0, 10.0, 1.0, 0.0],
        return_trajectory=True,
        progress=events.append,
    )
    assert result.trajectory.shape == (4, 4, 2) and result.evaluations == 3
    assert events[-1].done and [e.step for e in events if not e.done] == [1, 2, 3]
